//! `vigocli run TARGET` (run now) over a real `vigosrv` and three envoys in
//! their `run` loop with a 60 s interval, so only the run request can make
//! them apply within the test: the matching envoys apply at once and their
//! results are printed, a noop run reports drift and changes nothing, a
//! stopped envoy is listed as not answering. And `vigoenvoy run --once
//! --noop` works beside a running loop.

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    EnvoyHost, PATIENCE, ServerProcess, TestDir, all_output, assert_contains, cli_ok, stdout,
};

const ENVOYS: [&str; 3] = ["web1.example.com", "web2.example.com", "db1.example.com"];
const DEBUG: &[&str] = &["--log-level", "debug"];

struct Rig {
    dir: TestDir,
    out: PathBuf,
    hosts: Vec<EnvoyHost>,
    loops: Vec<Option<Child>>,
    server: ServerProcess,
}

impl Rig {
    /// Server, config repository (every envoy manages `out/<name>.motd`,
    /// the web envoys `out/web-shared` too),
    /// three enrolled and converged envoys, each in its `run` loop and
    /// holding a wait.
    fn new() -> Self {
        let dir = TestDir::with_config_extra("checkin:\n  interval: \"60s\"\n");
        let out = dir.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        cli_ok(&dir, &["secrets", "bootstrap"]);
        let mut nodes = "envoys:\n  - match: \"web*.example.com\"\n    roles: [web]\n".to_owned();
        for name in ENVOYS {
            let role = host_role(name);
            nodes.push_str(&format!("  - match: \"{name}\"\n    roles: [{role}]\n"));
            dir.write(
                &format!("config/modules/{role}.vgo"),
                &file_module(
                    "motd",
                    &out.join(format!("{name}.motd")),
                    &format!("{name} v1"),
                ),
            );
        }
        dir.write("config/nodes.vgo", &nodes);
        dir.write(
            "config/modules/web.vgo",
            &file_module("web-shared", &out.join("web-shared"), "web v1"),
        );
        let server = dir.start_server(DEBUG);
        let mut hosts = Vec::new();
        for name in ENVOYS {
            let token = cli_ok(&dir, &["envoys", "token"]);
            let host = EnvoyHost::new(&dir, name, Some(token.trim()));
            let first = host.run_once();
            assert!(first.status.success(), "{}", all_output(&first));
            hosts.push(host);
        }
        let mut rig = Self {
            dir,
            out,
            hosts,
            loops: Vec::new(),
            server,
        };
        for name in ENVOYS {
            assert_eq!(rig.motd(name), format!("{name} v1\n"));
        }
        for i in 0..ENVOYS.len() {
            let child = rig.hosts[i]
                .command(DEBUG, &[])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            rig.loops.push(Some(child));
        }
        // Each loop's first cycle asks for its catalog, then holds a wait.
        let deadline = Instant::now() + PATIENCE;
        while !ENVOYS.iter().all(|name| rig.holds_wait(name)) {
            assert!(
                Instant::now() < deadline,
                "the loops never held a wait; server log:\n{}",
                rig.server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        rig
    }

    fn holds_wait(&self, name: &str) -> bool {
        self.server.waits_opened(name) > 0
    }

    fn motd_path(&self, name: &str) -> PathBuf {
        self.out.join(format!("{name}.motd"))
    }

    fn motd(&self, name: &str) -> String {
        std::fs::read_to_string(self.motd_path(name)).unwrap_or_default()
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        self.dir.cli(&all)
    }

    fn stop_loop(&mut self, i: usize) {
        if let Some(mut child) = self.loops[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        for i in 0..self.loops.len() {
            self.stop_loop(i);
        }
    }
}

/// The per-host role of `name` (`web1` for `web1.example.com`).
fn host_role(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

/// A module with one file resource.
fn file_module(resource: &str, path: &Path, content: &str) -> String {
    format!(
        "resources:\n  - name: {resource}\n    type: file\n    target_path: \"{}\"\n    content: \"{content}\\n\"\n    mode: \"0644\"\n",
        path.display()
    )
}

/// The line `vigocli run` printed for `name`, if any.
fn line_of<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(&format!("{name}  ")))
}

#[test]
fn issue_18_run_now_applies_on_the_matching_envoys_and_reports_each() {
    let mut rig = Rig::new();

    // Drift on every host: only a run can repair it before the 60 s
    // interval, and only the web envoys are asked.
    for name in ENVOYS {
        std::fs::remove_file(rig.motd_path(name)).unwrap();
    }
    let started = Instant::now();
    let out = rig.run(&["web*"]);
    let took = started.elapsed();
    let text = stdout(&out);
    assert!(out.status.success(), "{}", all_output(&out));
    for name in &ENVOYS[..2] {
        let line = line_of(&text, name).unwrap_or_else(|| panic!("no line for {name}:\n{text}"));
        assert!(
            line.contains("  changed  2 resources: 1 changed, 0 failed, 0 skipped, 1 unchanged  ("),
            "{line}"
        );
        assert_eq!(rig.motd(name), format!("{name} v1\n"));
    }
    assert_contains(&text, "    changed file[motd]");
    assert!(line_of(&text, ENVOYS[2]).is_none(), "{text}");
    assert!(!rig.motd_path(ENVOYS[2]).exists(), "db1 was not asked");
    assert!(
        took < Duration::from_secs(2),
        "the run took {took:?}:\n{text}"
    );

    // A module change: `run` brings it to the web envoys whatever their
    // interval (a config reload pushes changed catalogs too; here both).
    rig.dir.write(
        "config/modules/web.vgo",
        &file_module("web-shared", &rig.out.join("web-shared"), "web v2"),
    );
    cli_ok(&rig.dir, &["config", "reload"]);
    let out = rig.run(&["web*"]);
    assert!(out.status.success(), "{}", all_output(&out));
    for name in &ENVOYS[..2] {
        assert!(line_of(&stdout(&out), name).is_some(), "{}", stdout(&out));
    }
    assert_eq!(
        std::fs::read_to_string(rig.out.join("web-shared")).unwrap(),
        "web v2\n"
    );

    // Noop after a hand edit: the drift is reported on the edited envoy and
    // nothing changes anywhere.
    std::fs::write(rig.motd_path(ENVOYS[0]), "edited by hand\n").unwrap();
    let before = crate::support::snapshot(&rig.out);
    let out = rig.run(&["web*", "--noop", "--verbose"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", all_output(&out));
    let edited = line_of(&text, ENVOYS[0]).unwrap_or_else(|| panic!("{text}"));
    assert_contains(edited, "  changed  2 resources: 1 changed");
    assert_contains(&text, "would change file[motd]");
    let clean = line_of(&text, ENVOYS[1]).unwrap_or_else(|| panic!("{text}"));
    assert_contains(clean, "  ok  2 resources: 0 changed");
    assert_eq!(
        crate::support::snapshot(&rig.out),
        before,
        "noop changed a file"
    );
    assert_eq!(rig.motd(ENVOYS[0]), "edited by hand\n");

    // A stopped envoy does not answer: listed, exit status non-zero.
    rig.stop_loop(1);
    let out = rig.run(&["--role", "web", "--timeout", "3s"]);
    let text = stdout(&out);
    assert!(!out.status.success(), "{}", all_output(&out));
    assert!(line_of(&text, ENVOYS[0]).is_some(), "{text}");
    assert_contains(&text, "did not answer within 3s:");
    assert!(text.contains(&format!("  {}  (", ENVOYS[1])), "{text}");
    assert!(
        crate::support::stderr(&out).contains("1 envoy did not answer within the timeout"),
        "{}",
        all_output(&out)
    );
}

#[test]
fn issue_18_a_noop_check_in_leaves_a_pending_run_request_alone() {
    let mut rig = Rig::new();
    let name = ENVOYS[2];
    rig.stop_loop(2);
    // The request stays pending: nobody holds db1's wait.
    let out = rig.run(&[name, "--timeout", "1s"]);
    assert!(!out.status.success(), "{}", all_output(&out));
    assert!(
        stdout(&out).contains(&format!("  {name}  (")),
        "{}",
        all_output(&out)
    );
    let noop = crate::support::run(&mut rig.hosts[2].command(DEBUG, &["--once", "--noop"]));
    assert!(noop.status.success(), "{}", all_output(&noop));
    // A real run (`run --once`) is what picks the request up.
    let log = rig.server.log();
    assert!(
        !log.lines()
            .any(|l| l.contains("run request delivered") && l.contains(name)),
        "a noop check-in took the pending run request:\n{log}"
    );
    let again = rig.hosts[2].run_once();
    assert!(again.status.success(), "{}", all_output(&again));
    assert!(
        rig.server.wait_for_log("run request delivered"),
        "{}",
        rig.server.log()
    );
}

#[test]
fn issue_18_run_once_noop_works_beside_the_running_loop() {
    let rig = Rig::new();
    let name = ENVOYS[2];
    std::fs::write(rig.motd_path(name), "edited by hand\n").unwrap();
    let before = crate::support::snapshot(rig.dir.path().join("envoys").join(name).as_path());
    let out_before = crate::support::snapshot(&rig.out);
    let host = &rig.hosts[2];
    let noop = crate::support::run(&mut host.command(&[], &["--once", "--noop"]));
    assert!(noop.status.success(), "{}", all_output(&noop));
    assert_contains(&all_output(&noop), "1 changed");
    assert_eq!(crate::support::snapshot(&rig.out), out_before);
    assert_eq!(
        crate::support::snapshot(rig.dir.path().join("envoys").join(name).as_path()),
        before,
        "a noop changed the envoy's data folder"
    );
    // A real run beside the loop is refused with a clear line.
    let real = host.run_once();
    assert!(!real.status.success(), "{}", all_output(&real));
    assert_contains(&all_output(&real), "another vigoenvoy process is using");
}
