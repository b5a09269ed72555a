//! Enforcement on every run (docs/ARCHITECTURE.md "A check-in"): a real `vigosrv`, `vigocli` and
//! `vigoenvoy`. After the first converge the host drifts (a secret-bearing
//! file edited and chmod'ed 0644, another managed file deleted, a plain
//! file edited); `run --once --noop` must list exactly what differs without
//! changing anything, `run --once` and the `run` loop must repair it, and a
//! unique canary secret value must never show up in any output or under the
//! envoy's data folder.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    APP_NODES, EnvoyHost, PATIENCE, ServerProcess, TestDir, TestRng, all_output, assert_contains,
    cli_ok, contains_bytes,
};

const APP1: &str = "app1.example.com";
const PASSWORD: &str = "vigo/app/password";
const DEBUG: &[&str] = &["--log-level", "debug"];
/// `checkin.interval` of the loop test.
const INTERVAL: Duration = Duration::from_secs(3);

/// A server with the config repository written, and one envoy enrolled and
/// converged.
struct Rig {
    dir: TestDir,
    out: PathBuf,
    host: EnvoyHost,
    canary: String,
    server: ServerProcess,
    /// Everything the binaries printed, to grep for the canary.
    outputs: String,
}

impl Rig {
    fn new() -> Self {
        let dir = TestDir::with_config_extra(&format!(
            "checkin:\n  interval: \"{}s\"\n",
            INTERVAL.as_secs()
        ));
        let out = dir.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        let canary = format!("canary-{}", TestRng::from_clock().token());
        let mut outputs = cli_ok(&dir, &["secrets", "bootstrap"]);
        let set = dir.cli_with_stdin(&["secrets", "set", PASSWORD, "-"], canary.as_bytes());
        assert!(set.status.success(), "{}", all_output(&set));
        outputs.push_str(&all_output(&set));
        write_config_repo(&dir, &out);
        let server = dir.start_server(DEBUG);
        let token = cli_ok(&dir, &["envoys", "token"]);
        let host = EnvoyHost::new(&dir, APP1, Some(token.trim()));
        let mut rig = Self {
            dir,
            out,
            host,
            canary,
            server,
            outputs,
        };
        let first = rig.run_once(&[]);
        assert_contains(&first, "4 resources: 4 changed");
        assert_eq!(rig.secret_conf(), format!("password = {}\n", rig.canary));
        assert_eq!(rig.mode("secret.conf"), 0o600);
        assert_eq!(rig.reloads(), 1, "the first converge notifies once");
        rig
    }

    /// `vigoenvoy run --once <args>`, asserting success; its output.
    fn run_once(&mut self, args: &[&str]) -> String {
        let mut run_args = vec!["--once"];
        run_args.extend_from_slice(args);
        let out = crate::support::run(&mut self.host.command(DEBUG, &run_args));
        let text = all_output(&out);
        self.outputs.push_str(&text);
        assert!(out.status.success(), "run {args:?}:\n{text}");
        crate::support::stdout(&out)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.out.join(name)
    }

    fn secret_conf(&self) -> String {
        std::fs::read_to_string(self.path("secret.conf")).unwrap()
    }

    fn mode(&self, name: &str) -> u32 {
        std::fs::metadata(self.path(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    /// How many times the `reload` exec ran.
    fn reloads(&self) -> usize {
        std::fs::read_to_string(self.path("reloads.log"))
            .map(|text| text.lines().count())
            .unwrap_or(0)
    }

    /// Hand edits: the secret-bearing file's content and mode, the plain
    /// file's content, and the other plain file deleted.
    fn drift(&self) {
        std::fs::write(self.path("secret.conf"), "password = edited-by-hand\n").unwrap();
        std::fs::set_permissions(
            self.path("secret.conf"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        std::fs::write(self.path("motd"), "Welcome to app1\nmaintenance tonight\n").unwrap();
        std::fs::remove_file(self.path("plain.conf")).unwrap();
    }

    /// `vigocli envoys show app1.example.com`.
    fn show(&mut self) -> String {
        let shown = cli_ok(&self.dir, &["envoys", "show", APP1]);
        self.outputs.push_str(&shown);
        shown
    }

    /// docs/operations.md "Security model": the canary appears in no output and nowhere under the
    /// envoy's data folder (only in the file the module writes).
    fn assert_canary_contained(&self) {
        let needle = self.canary.as_bytes();
        assert!(
            !contains_bytes(self.outputs.as_bytes(), needle),
            "the secret value reached an output"
        );
        assert!(
            !contains_bytes(&self.server.log_bytes(), needle),
            "the secret value reached the server log"
        );
        let data = self.host.root.join("data");
        let files = crate::support::snapshot(&data);
        assert!(!files.is_empty(), "{} holds files", data.display());
        for (path, bytes) in &files {
            assert!(
                !contains_bytes(bytes, needle),
                "the secret value is in {}",
                path.display()
            );
        }
    }
}

/// One envoy, one role: a file holding the password (notifying `reload`),
/// two plain files and a `when: changed` exec counting its runs.
fn write_config_repo(dir: &TestDir, out: &Path) {
    let out = out.display();
    dir.write("config/nodes.vgo", APP_NODES);
    dir.write(
        "config/modules/app.vgo",
        &format!(
            r#"resources:
  - name: app-secret
    type: file
    target_path: {out}/secret.conf
    content: |
      password = {{{{ .Vars.password }}}}
    notify: [reload]

  - name: app-plain
    type: file
    target_path: {out}/plain.conf
    content: |
      port = 8080
    mode: "0644"

  - name: motd
    type: file
    target_path: {out}/motd
    content: |
      Welcome to app1
    mode: "0644"

  - name: reload
    type: exec
    command: "echo reload >> {out}/reloads.log"
    when: changed
"#
        ),
    );
}

#[test]
fn issue_11_noop_lists_the_drift_and_run_once_repairs_it() {
    let mut rig = Rig::new();
    // Nothing drifted: a full check nonetheless, and nothing to do.
    let clean = rig.run_once(&[]);
    assert!(
        clean.ends_with("4 resources: 0 changed, 0 failed, 0 skipped, 4 unchanged\n"),
        "{clean}"
    );
    rig.drift();

    let noop = rig.run_once(&["--noop"]);
    let out = rig.out.display().to_string();
    let lines: Vec<&str> = noop.lines().collect();
    assert!(
        lines.contains(&format!(
            "changed  file[app-secret]: would write {out}/secret.conf: content differs (secret, not shown); set mode 0600 on {out}/secret.conf (was 0644)"
        ).as_str()),
        "{noop}"
    );
    assert!(
        lines.contains(
            &format!("changed  file[app-plain]: would create missing {out}/plain.conf (mode 0644)")
                .as_str()
        ),
        "{noop}"
    );
    let motd = format!(
        "changed  file[motd]: would write {out}/motd: content differs\n    --- {out}/motd\n    +++ {out}/motd (desired)\n    @@ -1,2 +1 @@\n     Welcome to app1\n    -maintenance tonight\n"
    );
    assert_contains(&noop, &motd);
    assert!(
        lines.contains(
            &format!("changed  exec[reload]: would run `echo reload >> {out}/reloads.log` (refresh from 'app-secret')")
                .as_str()
        ),
        "{noop}"
    );
    assert!(
        noop.ends_with("4 resources: 4 changed, 0 failed, 0 skipped, 0 unchanged\n"),
        "{noop}"
    );
    assert!(
        !noop.contains("edited-by-hand"),
        "secret-bearing content is never shown"
    );
    // Nothing changed.
    assert_eq!(rig.secret_conf(), "password = edited-by-hand\n");
    assert_eq!(rig.mode("secret.conf"), 0o644);
    assert!(!rig.path("plain.conf").exists());
    assert_eq!(rig.reloads(), 1);

    let repaired = rig.run_once(&[]);
    assert!(
        repaired.ends_with("4 resources: 4 changed, 0 failed, 0 skipped, 0 unchanged\n"),
        "{repaired}"
    );
    assert_eq!(rig.secret_conf(), format!("password = {}\n", rig.canary));
    assert_eq!(rig.mode("secret.conf"), 0o600);
    assert_eq!(
        std::fs::read_to_string(rig.path("plain.conf")).unwrap(),
        "port = 8080\n"
    );
    assert_eq!(
        std::fs::read_to_string(rig.path("motd")).unwrap(),
        "Welcome to app1\n"
    );
    assert_eq!(rig.reloads(), 2, "the repair notified the exec once");

    // Converged again: nothing runs twice.
    let again = rig.run_once(&[]);
    assert!(
        again.ends_with("4 resources: 0 changed, 0 failed, 0 skipped, 4 unchanged\n"),
        "{again}"
    );
    assert_eq!(rig.reloads(), 2);
    let shown = rig.show();
    assert!(
        shown.contains("last run:          ")
            && shown.contains(" 4 resources: 0 changed, 0 failed, 0 skipped, 4 unchanged\n"),
        "{shown}"
    );
    rig.assert_canary_contained();
}

/// The `run` loop as a child process with its stdout in a file.
struct Loop {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Loop {
    fn start(rig: &Rig) -> Self {
        let stdout = rig.dir.path().join("loop.out");
        let stderr = rig.dir.path().join("loop.err");
        let child = rig
            .host
            .command(DEBUG, &[])
            .stdout(Stdio::from(std::fs::File::create(&stdout).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()))
            .spawn()
            .unwrap();
        Self {
            child,
            stdout,
            stderr,
        }
    }

    fn output(&self) -> String {
        format!(
            "{}{}",
            std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    /// Waits until `ready` holds, failing with the loop's output after
    /// `limit`.
    fn wait_until(
        &mut self,
        limit: Duration,
        what: &str,
        mut ready: impl FnMut() -> bool,
    ) -> Duration {
        let started = Instant::now();
        while !ready() {
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "the loop exited:\n{}",
                self.output()
            );
            assert!(
                started.elapsed() < limit,
                "{what} within {limit:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        started.elapsed()
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn issue_11_the_run_loop_restores_a_deleted_file_within_one_interval() {
    let mut rig = Rig::new();
    let mut envoy = Loop::start(&rig);
    // The loop's first cycle asks for the full catalog and reports it.
    let stdout = envoy.stdout.clone();
    envoy.wait_until(PATIENCE, "the first cycle", || {
        std::fs::read_to_string(&stdout).is_ok_and(|t| t.contains(" resources: "))
    });

    // No change on the server: the deleted file comes back by enforcement.
    let plain = rig.path("plain.conf");
    std::fs::remove_file(&plain).unwrap();
    // One interval (with its 10% jitter) plus time to apply.
    let limit = INTERVAL.mul_f64(1.1) + Duration::from_secs(1);
    envoy.wait_until(limit, "plain.conf restored", || plain.exists());
    assert_eq!(std::fs::read_to_string(&plain).unwrap(), "port = 8080\n");
    assert_eq!(rig.reloads(), 1, "restoring plain.conf notifies nothing");

    // A clean cycle sends no report; its check-in tells the server.
    let mut shown = String::new();
    envoy.wait_until(PATIENCE, "a clean run shown", || {
        shown = cli_ok(&rig.dir, &["envoys", "show", APP1]);
        shown.contains(" 4 resources: 0 changed, 0 failed, 0 skipped, 4 unchanged\n")
            && shown.lines().any(|l| l.starts_with("last run:"))
    });
    let loop_output = envoy.output();
    drop(envoy);
    rig.outputs.push_str(&loop_output);
    rig.outputs.push_str(&shown);
    assert!(
        loop_output.contains(&format!("wrote {} (mode 0644)", plain.display())),
        "{loop_output}"
    );
    rig.assert_canary_contained();
}

#[test]
fn issue_11_a_secret_copied_into_a_plain_file_is_scrubbed_from_the_noop_diff() {
    let mut rig = Rig::new();
    let copied = format!("Welcome to app1\nadmin password: {}\n", rig.canary);
    std::fs::write(rig.path("motd"), &copied).unwrap();
    let noop = rig.run_once(&["--noop"]);
    assert_contains(&noop, "    -admin password: [REDACTED]\n");
    assert_eq!(std::fs::read_to_string(rig.path("motd")).unwrap(), copied);
    let shown = rig.show();
    assert_contains(&shown, "file[motd] changed");
    rig.run_once(&[]);
    assert_eq!(
        std::fs::read_to_string(rig.path("motd")).unwrap(),
        "Welcome to app1\n"
    );
    rig.assert_canary_contained();
}
