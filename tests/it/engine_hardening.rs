//! `vigoenvoy apply` and `run` hardening over the real binary: a stop
//! signal during an exec leaves no process and no secret file behind, a
//! temporary file an interrupted write left is removed by the next apply,
//! and a secret-bearing file is refused in a folder everyone can write to.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{EnvoyHost, TestDir, cli_ok, stderr};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use vigo_test_support::process_gone;

/// Upper bound for waiting on something that should happen; not a
/// performance expectation.
const PATIENCE: Duration = Duration::from_secs(30);
const CANARY: &str = "canary-envoy-h4rd-5521";

vigo_test_support::scratch_fixture!(
    /// A temporary folder with the catalog, the envoy's data folder and the
    /// files the catalog writes.
    Case
);

impl Case {
    fn secret_files(&self) -> PathBuf {
        self.path("data").join("secret-files")
    }

    fn command(&self, resources: Value) -> Command {
        let catalog = json!({
            "envoy": "test1",
            "resources": resources,
            "secrets": {"app/pw": {"version": 1, "value": CANARY}},
        });
        crate::support::envoy_apply_command(self, &catalog)
    }

    fn apply(&self, resources: Value) -> Output {
        self.command(resources).output().unwrap()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The pid the exec wrote to `pid_file` once it started its sleep.
fn started_sleep(pid_file: &Path) -> i32 {
    wait_until("the exec to start its sleep", || {
        fs::read_to_string(pid_file).is_ok_and(|s| s.ends_with('\n'))
    });
    fs::read_to_string(pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn wait_for_exit(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > PATIENCE {
            let _ = child.kill();
            panic!("vigoenvoy did not exit after the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An exec whose shell starts `sleep 30` in the background, writes its pid
/// to `pid_file` and waits, with the secret in a transient file.
fn slow_exec(pid_file: &Path) -> Value {
    json!({
        "name": "slow", "type": "exec", "timeout_secs": 300,
        "secret_file": [{"secret": "app/pw"}],
        "command": format!(
            "test -s {{{{secret_file}}}} || exit 9; sleep 30 & echo $! > {}; wait",
            pid_file.display()
        ),
    })
}

fn stop_during_exec(signal: Signal, expected_code: i32) {
    let case = Case::new();
    let pid_file = case.path("sleep.pid");
    let marker = case.path("after-ran");
    let mut child = case
        .command(json!([
            slow_exec(&pid_file),
            {"name": "after", "type": "exec", "timeout_secs": 30,
             "command": format!("touch {}", marker.display())},
        ]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sleep_pid = started_sleep(&pid_file);
    assert_eq!(
        fs::read_dir(case.secret_files()).unwrap().count(),
        1,
        "the secret file should exist while the command runs"
    );

    let envoy_pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
    kill(envoy_pid, signal).unwrap();
    let status = wait_for_exit(&mut child);
    let output = child.wait_with_output().unwrap();
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(status.code(), Some(expected_code), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(
            "failed   exec[slow]: interrupted: the envoy was told to stop; the command's process group was killed\n"
        ) && stdout
            .contains("failed   exec[after]: not applied: the envoy was told to stop\n"),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("error: stopped by {}: ", signal.as_str())),
        "{stderr}"
    );
    assert!(!stdout.contains(CANARY) && !stderr.contains(CANARY));

    wait_until("the exec's background sleep to die", || {
        process_gone(sleep_pid)
    });
    let left: Vec<_> = fs::read_dir(case.secret_files())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "secret files left behind: {left:?}");
    assert!(!marker.exists(), "a resource after the stop was applied");
}

#[test]
fn issue_12_item_7_sigterm_during_apply_kills_the_command_group_and_removes_the_secret_file() {
    stop_during_exec(Signal::SIGTERM, 143);
}

#[test]
fn issue_12_item_7_sigint_during_apply_stops_it_the_same_way() {
    stop_during_exec(Signal::SIGINT, 130);
}

#[test]
fn issue_12_item_8_a_stale_temporary_file_is_removed_by_the_next_apply() {
    let case = Case::new();
    let folder = case.path("etc");
    fs::create_dir(&folder).unwrap();
    let target = folder.join("app.conf");
    // What SIGKILL between the temporary file and the rename leaves behind.
    let stale = folder.join(".app.conf.vigo-4194301-3");
    fs::write(&stale, format!("password = {CANARY}")).unwrap();
    fs::set_permissions(&stale, fs::Permissions::from_mode(0o600)).unwrap();
    let output = case.apply(json!([{
        "name": "app", "type": "file", "target_path": target, "mode": "0600",
        "content": [{"text": "password = "}, {"secret": "app/pw"}],
    }]));
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        !stale.exists(),
        "the stale temporary file survived the apply"
    );
    let names: Vec<_> = fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["app.conf"]);
    assert_eq!(
        fs::read_to_string(&target).unwrap(),
        format!("password = {CANARY}")
    );
}

#[test]
fn issue_12_item_6_a_secret_file_is_refused_in_a_folder_everyone_can_write() {
    let case = Case::new();
    let shared = case.path("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
    let target = shared.join("app.conf");
    let output = case.apply(json!([{
        "name": "app", "type": "file", "target_path": target, "mode": "0600",
        "content": [{"text": "password = "}, {"secret": "app/pw"}],
    }]));
    assert_eq!(output.status.code(), Some(2));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains(&format!(
            "failed   file[app]: refusing to write secret-bearing {}: folder {} is writable by every user (mode 1777); ",
            target.display(),
            shared.display()
        )),
        "{stdout}"
    );
    assert!(!target.exists());
}

/// `vigoenvoy run --once`, then the first cycle of `vigoenvoy run`, each
/// stopped by SIGTERM while the catalog's exec runs.
#[test]
fn issue_12_item_7_sigterm_during_run_once_and_the_first_run_cycle_stops_cleanly() {
    let dir = TestDir::new();
    let out = dir.cli(&["secrets", "bootstrap"]);
    assert!(out.status.success(), "bootstrap: {}", stderr(&out));
    let out = dir.cli(&["secrets", "set", "vigo/app/pw", CANARY]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pid_file = dir.path().join("sleep.pid");
    dir.write(
        "config/nodes.vgo",
        "envoys:\n  - match: \"app1.example.com\"\n    roles: [slow]\n",
    );
    dir.write(
        "config/modules/slow.vgo",
        &format!(
            "resources:\n  - name: slow\n    type: exec\n    command: \"test -s {{{{secret_file}}}} || exit 9; sleep 30 & echo $! > {}; wait\"\n    secret_file: \"secret:vigo/app/pw\"\n    timeout: 300s\n",
            pid_file.display()
        ),
    );
    let _server = dir.start_server(&[]);
    let token = cli_ok(&dir, &["envoys", "token"]);
    let envoy = EnvoyHost::new(&dir, "app1.example.com", Some(token.trim()));
    let secret_files = envoy.root.join("data").join("secret-files");

    for run_args in [&["--once"][..], &[][..]] {
        let _ = fs::remove_file(&pid_file);
        let mut child = envoy
            .command(&[], run_args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let sleep_pid = started_sleep(&pid_file);
        assert_eq!(fs::read_dir(&secret_files).unwrap().count(), 1);
        kill(
            Pid::from_raw(i32::try_from(child.id()).unwrap()),
            Signal::SIGTERM,
        )
        .unwrap();
        let status = wait_for_exit(&mut child);
        let output = child.wait_with_output().unwrap();
        let all = format!("{}{}", text(&output.stdout), text(&output.stderr));
        assert_eq!(status.code(), Some(143), "run {run_args:?}:\n{all}");
        assert!(
            all.contains("exec[slow]: interrupted: the envoy was told to stop")
                && all.contains("error: stopped by SIGTERM: "),
            "run {run_args:?}:\n{all}"
        );
        assert!(!all.contains(CANARY));
        wait_until("the exec's background sleep to die", || {
            process_gone(sleep_pid)
        });
        assert_eq!(
            fs::read_dir(&secret_files).unwrap().count(),
            0,
            "run {run_args:?} left a secret file"
        );
    }
}
