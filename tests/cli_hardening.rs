//! Hardening of the three binaries, end to end: no core dumps (item 10),
//! `vigocli` on a closed pipe (13), `catalog --reveal` into a file (14),
//! `secrets set PATH -` (15) and error lines that say their cause once (20).

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{TestDir, bin, free_port};

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

#[test]
fn issue_12_item_10_vigocli_turns_core_dumps_off_before_reading_a_secret() {
    // Blocks reading the value from stdin, which the test holds open.
    let mut child = as_unprivileged(
        Command::new(bin("vigocli"))
            .args(["--config", "/nonexistent/vigosrv.yaml"])
            .args(["secrets", "set", "vigo/app/x", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .spawn()
    .unwrap();
    let limited = eventually(&mut child, core_limit_is_zero);
    let hidden = eventually(&mut child, not_dumpable);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(limited, "vigocli left RLIMIT_CORE above 0");
    assert!(hidden, "vigocli is dumpable");
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
    let mut child = as_unprivileged(
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
    let limited = eventually(&mut child, core_limit_is_zero);
    let hidden = eventually(&mut child, not_dumpable);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(limited, "vigoenvoy left RLIMIT_CORE above 0");
    assert!(hidden, "vigoenvoy is dumpable");
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
