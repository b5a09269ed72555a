//! Hardening of the three binaries, end to end: no core dumps (item 10),
//! `vigocli` on a closed pipe (13), `catalog --reveal` into a file (14),
//! `secrets set PATH -` (15) and error lines that say their cause once (20).

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    TestDir, all_output, assert_contains, bin, cli_ok, free_port, stderr, stdout,
};

/// `nobody`: who a root test runs the binaries as, so that the owner of
/// `/proc/PID` tells whether the process is dumpable.
const NOBODY: u32 = 65534;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether `pid` has a core-file limit of 0 (soft and hard).
fn core_limit_is_zero(pid: u32) -> bool {
    let Ok(limits) = std::fs::read_to_string(format!("/proc/{pid}/limits")) else {
        return false;
    };
    limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .is_some_and(|l| {
            let fields: Vec<&str> = l["Max core file size".len()..].split_whitespace().collect();
            fields.first() == Some(&"0") && fields.get(1) == Some(&"0")
        })
}

/// Whether `pid` (running as a user other than root) is not dumpable: the
/// kernel then gives its `/proc/PID` files to root.
fn not_dumpable(pid: u32) -> bool {
    std::fs::metadata(format!("/proc/{pid}/environ")).is_ok_and(|m| m.uid() == 0)
}

/// Polls until `check` holds for the child, or the deadline passes.
fn eventually(child: &mut Child, check: impl Fn(u32) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if check(child.id()) {
            return true;
        }
        if child.try_wait().ok().flatten().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Runs `cmd` as `nobody` when the test is root (as itself otherwise).
fn as_unprivileged(cmd: &mut Command) -> &mut Command {
    if is_root() {
        cmd.uid(NOBODY).gid(NOBODY);
    }
    cmd
}

/// Asserts that the running `child` (the binary `name`) turned its core
/// dumps off and is not dumpable, then kills it.
fn assert_no_core_dumps(name: &str, mut child: Child) {
    let limited = eventually(&mut child, core_limit_is_zero);
    let hidden = eventually(&mut child, not_dumpable);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(limited, "{name} left RLIMIT_CORE above 0");
    assert!(hidden, "{name} is dumpable");
}

#[test]
fn issue_12_item_10_vigocli_turns_core_dumps_off_before_reading_a_secret() {
    // Blocks reading the value from stdin, which the test holds open.
    let child = as_unprivileged(
        Command::new(bin("vigocli"))
            .args(["--config", "/nonexistent/vigosrv.yaml"])
            .args(["secrets", "set", "vigo/app/x", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .spawn()
    .unwrap();
    assert_no_core_dumps("vigocli", child);
}

#[test]
fn issue_12_item_10_vigoenvoy_turns_core_dumps_off() {
    // An envoy whose server never answers keeps retrying: it stays up.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    if is_root() {
        nix::unistd::chown(&data, Some(NOBODY.into()), Some(NOBODY.into())).unwrap();
    }
    let config = dir.path().join("envoy.yaml");
    std::fs::write(
        &config,
        format!(
            "server: \"https://127.0.0.1:{}\"\nname: \"db1.example.com\"\nca_cert: \"{}\"\ndata_dir: \"{}\"\n",
            free_port(),
            dir.path().join("ca.crt").display(),
            data.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let child = as_unprivileged(
        Command::new(bin("vigoenvoy"))
            .arg("--config")
            .arg(&config)
            .arg("run")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .spawn()
    .unwrap();
    assert_no_core_dumps("vigoenvoy", child);
}

#[test]
fn issue_12_item_10_vigosrv_turns_core_dumps_off() {
    let dir = TestDir::new();
    let server = dir.start_server(&[]);
    assert!(
        core_limit_is_zero(server.pid()),
        "vigosrv left RLIMIT_CORE above 0"
    );
    if !is_root() {
        assert!(not_dumpable(server.pid()), "vigosrv is dumpable");
    }
}

/// A test folder with bootstrapped secrets, a module whose file holds
/// `vigo/app/pw`, and that secret set to `value`.
fn repo_with_secret(value: &str) -> TestDir {
    let dir = TestDir::new();
    cli_ok(&dir, &["secrets", "bootstrap"]);
    dir.write(
        "config/nodes.vgo",
        "envoys:\n  - match: \"*\"\n    roles: [app]\n",
    );
    dir.write(
        "config/modules/app.vgo",
        "resources:\n  - name: conf\n    type: file\n    target_path: /etc/app.conf\n    content: \"secret:vigo/app/pw\"\n",
    );
    let out = dir.cli_with_stdin(&["secrets", "set", "vigo/app/pw", "-"], value.as_bytes());
    assert!(out.status.success(), "{}", all_output(&out));
    dir
}

/// Runs `vigocli args` with a stdout pipe whose reader is already gone.
fn with_closed_stdout(dir: &TestDir, args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    dir.vigocli()
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn issue_12_item_13_vigocli_exits_quietly_when_its_reader_goes_away() {
    let dir = repo_with_secret("v");
    for args in [
        &["secrets", "list"][..],
        &["--output", "json", "secrets", "list"],
        &["catalog", "h1"],
        &["check"],
    ] {
        let out = with_closed_stdout(&dir, args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{args:?}");
    }
}

#[test]
fn issue_12_item_14_reveal_into_a_file_makes_it_private_first() {
    let canary = "canary-reveal-83c1f0";
    let dir = repo_with_secret(canary);
    let target = dir.path().join("catalog.txt");
    let file = std::fs::File::create(&target).unwrap();
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
        .unwrap();
    let out = dir
        .vigocli()
        .args(["catalog", "h1", "--reveal"])
        .stdin(Stdio::null())
        .stdout(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mode = std::fs::metadata(&target).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o600, "the revealed catalog is readable by others");
    assert!(std::fs::read_to_string(&target).unwrap().contains(canary));
    assert_contains(
        &stderr(&out),
        "note: standard output is a file; its mode is now 0600 because it holds secret values",
    );
    // Without --reveal nothing secret is printed and the mode is left alone.
    let plain = dir.path().join("plain.txt");
    let file = std::fs::File::create(&plain).unwrap();
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
        .unwrap();
    let out = dir
        .vigocli()
        .args(["catalog", "h1"])
        .stdin(Stdio::null())
        .stdout(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::metadata(&plain).unwrap().mode() & 0o7777, 0o644);
}

#[test]
fn issue_12_item_15_an_empty_value_is_refused_unless_allowed() {
    let dir = TestDir::new();
    cli_ok(&dir, &["secrets", "bootstrap"]);
    for input in [&b""[..], b"\n"] {
        let out = dir.cli_with_stdin(&["secrets", "set", "vigo/app/x", "-"], input);
        assert!(!out.status.success());
        assert_eq!(
            stderr(&out),
            "error: the value for 'vigo/app/x' is empty; nothing was stored (pass --allow-empty to store an empty value)\n"
        );
    }
    let out = dir.cli(&["secrets", "set", "vigo/app/x", ""]);
    assert!(!out.status.success());
    let out = dir.cli(&["secrets", "get", "vigo/app/x"]);
    assert!(!out.status.success(), "an empty value was stored");
    let out = dir.cli_with_stdin(&["secrets", "set", "--allow-empty", "vigo/app/x", "-"], b"");
    assert!(out.status.success(), "{}", all_output(&out));
    assert_eq!(stdout(&dir.cli(&["secrets", "get", "vigo/app/x"])), "\n");
}

/// Whether the terminal of the `vigocli` whose command line holds `marker`
/// has echo off (`stty -a` says `-echo`).
fn echo_is_off(marker: &str) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        if comm.trim() != "vigocli" || !String::from_utf8_lossy(&cmdline).contains(marker) {
            continue;
        }
        let Ok(tty) = std::fs::read_link(dir.join("fd/0")) else {
            continue;
        };
        let Ok(out) = Command::new("stty").arg("-F").arg(&tty).arg("-a").output() else {
            continue;
        };
        let settings = String::from_utf8_lossy(&out.stdout);
        return settings.split_whitespace().any(|flag| flag == "-echo");
    }
    false
}

/// Quotes `arg` for `sh -c`.
fn sh_quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', "'\\''"))
}

#[test]
fn issue_12_item_15_a_value_typed_on_a_terminal_is_not_echoed() {
    use std::io::Read;
    let canary = "canary-typed-4e2a9b";
    let dir = TestDir::new();
    cli_ok(&dir, &["secrets", "bootstrap"]);
    let command = [
        bin("vigocli").display().to_string(),
        "--config".to_owned(),
        dir.config().display().to_string(),
        "secrets".to_owned(),
        "set".to_owned(),
        "vigo/app/typed".to_owned(),
        "-".to_owned(),
    ]
    .iter()
    .map(|a| sh_quote(a))
    .collect::<Vec<_>>()
    .join(" ");
    // `script` runs the command on a new pseudo-terminal and copies what
    // the terminal shows to its stdout.
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running script(1)");
    let mut screen = child.stdout.take().unwrap();
    // Type only once the prompt is shown (echo is decided as input arrives).
    let mut shown = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !String::from_utf8_lossy(&shown).contains("(not echoed): ") {
        assert!(
            Instant::now() < deadline,
            "no prompt: {}",
            String::from_utf8_lossy(&shown)
        );
        let mut buf = [0u8; 256];
        let n = screen.read(&mut buf).unwrap();
        assert!(n > 0, "no prompt: {}", String::from_utf8_lossy(&shown));
        shown.extend_from_slice(&buf[..n]);
    }
    // rpassword shows the prompt, then turns echo off: wait for that.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !echo_is_off("vigo/app/typed") {
        assert!(Instant::now() < deadline, "echo was never turned off");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut keyboard = child.stdin.take().unwrap();
    keyboard
        .write_all(format!("{canary}\r").as_bytes())
        .unwrap();
    keyboard.flush().unwrap();
    screen.read_to_end(&mut shown).unwrap();
    let status = child.wait().unwrap();
    drop(keyboard);
    let screen = String::from_utf8_lossy(&shown);
    assert!(status.success(), "{screen}");
    assert_contains(&screen, "Value for vigo/app/typed (not echoed): ");
    assert!(!screen.contains(canary), "the value was echoed: {screen}");
    assert_eq!(
        stdout(&dir.cli(&["secrets", "get", "vigo/app/typed"])),
        format!("{canary}\n")
    );
}

/// The `error:` line of `text`, checked to say each of its parts once.
fn error_line_says_each_cause_once(text: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in:\n{text}"))
        .to_owned();
    for part in line.trim_start_matches("error: ").split(": ") {
        assert_eq!(
            line.matches(part).count(),
            1,
            "{part:?} is repeated in {line:?}"
        );
    }
    line
}

#[test]
fn issue_12_item_20_a_missing_file_says_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("envoy.yaml");
    let out = Command::new(bin("vigoenvoy"))
        .arg("--config")
        .arg(&missing)
        .args(["run", "--once"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let line = error_line_says_each_cause_once(&stderr(&out));
    assert_contains(&line, "No such file or directory");
}

#[test]
fn issue_12_item_20_an_enrollment_refusal_is_printed_once() {
    let dir = TestDir::new();
    cli_ok(&dir, &["secrets", "bootstrap"]);
    let _server = dir.start_server(&[]);
    let envoy = crate::support::EnvoyHost::new(&dir, "web1.example.com", Some("not-a-valid-token"));
    let out = envoy.run_once();
    assert!(!out.status.success());
    let line = error_line_says_each_cause_once(&stderr(&out));
    assert_contains(&line, "enrolling: ");
}
