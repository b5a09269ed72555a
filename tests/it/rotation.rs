//! Secret rotation end to end (docs/secrets.md "Rotation"): a real `vigosrv`, `vigocli` and
//! two real `vigoenvoy` processes on the seed's example shape.
//!
//! - `db1.example.com` (role database): a file holding the database
//!   password, watching it and notifying `pg-restart` — an exec standing in
//!   for the PostgreSQL service, because systemd does not run here — plus a
//!   `when: changed` exec that watches the password and reads it on stdin.
//! - `web1.example.com` (role web): a page that uses no secret.
//!
//! The execs append a line to a counter file each time they run, so the
//! tests see exactly how often each ran. Every process logs at debug level
//! and a unique canary value is grepped for everywhere it must not be.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{
    DB_NODES, EnvoyHost, PATIENCE, ServerProcess, TestDir, TestRng, WEB_NODES, all_output,
    assert_contains, bootstrapped_with_out, cli_ok, database_module,
};
use serde_json::Value;

const DB1: &str = "db1.example.com";
const WEB1: &str = "web1.example.com";
const DB_PASSWORD: &str = "vigo/db/password";
const FIRST_PASSWORD: &str = "first-db-password";
const DEBUG: &[&str] = &["--log-level", "debug"];

/// A bootstrapped test folder with the database password set, the config
/// repository written and both envoys configured (enrolled by token on
/// their first run).
struct Rig {
    dir: TestDir,
    out: PathBuf,
    db1: EnvoyHost,
    web1: EnvoyHost,
}

impl Rig {
    fn new() -> Self {
        let (dir, out) = bootstrapped_with_out();
        cli_ok(&dir, &["secrets", "set", DB_PASSWORD, FIRST_PASSWORD]);
        write_config_repo(&dir, &out);
        let db1 = EnvoyHost::new(&dir, DB1, None);
        let web1 = EnvoyHost::new(&dir, WEB1, None);
        Self {
            dir,
            out,
            db1,
            web1,
        }
    }

    fn start_server(&self) -> ServerProcess {
        self.dir.start_server(DEBUG)
    }

    /// Gives each envoy a fresh one-time token (rewriting its config in
    /// place) and runs it once: both enroll and converge.
    fn enroll_and_converge(&self) {
        for host in [&self.db1, &self.web1] {
            let token = cli_ok(&self.dir, &["envoys", "token"]);
            let host = EnvoyHost::new(&self.dir, &host.name, Some(token.trim()));
            let run = host.run_once_with(DEBUG);
            assert!(run.status.success(), "{}: {}", host.name, all_output(&run));
        }
        assert_eq!(self.db_conf(), format!("password = {FIRST_PASSWORD}\n"));
        assert_eq!(self.count("restarts"), 1, "first converge notifies once");
        assert_eq!(self.count("password-runs"), 1, "never ran before");
    }

    fn db_conf(&self) -> String {
        std::fs::read_to_string(self.out.join("db.conf")).unwrap()
    }

    /// How many times the exec writing `<name>.log` ran.
    fn count(&self, name: &str) -> usize {
        std::fs::read_to_string(self.out.join(format!("{name}.log")))
            .map(|text| text.lines().count())
            .unwrap_or(0)
    }

    /// `secrets set vigo/db/password -` with the value on stdin.
    fn set_password(&self, value: &str) -> String {
        let out = self.dir.cli_with_stdin(
            &["--log-level", "debug", "secrets", "set", DB_PASSWORD, "-"],
            value.as_bytes(),
        );
        assert!(out.status.success(), "{}", all_output(&out));
        all_output(&out)
    }

    fn show(&self, name: &str) -> Value {
        serde_json::from_str(&cli_ok(
            &self.dir,
            &["envoys", "show", name, "--output", "json"],
        ))
        .unwrap()
    }
}

/// The seed's example modules, writing under `out`.
fn write_config_repo(dir: &TestDir, out: &Path) {
    dir.write(
        "config/nodes.vgo",
        &format!("envoys:\n{DB_NODES}{WEB_NODES}"),
    );
    // With the `slow` marker present, set-db-password stops in the
    // middle, to be killed there.
    let o = out.display();
    dir.write(
        "config/modules/database.vgo",
        &database_module(
            out,
            &format!("if [ -e {o}/slow ]; then touch {o}/started; sleep 60; fi; "),
        ),
    );
    let out = out.display();
    dir.write(
        "config/modules/web.vgo",
        &format!(
            "resources:\n  - name: web-index\n    type: file\n    target_path: {out}/index.html\n    content: |\n      <h1>{{{{ .Vars.site_name }}}} on {{{{ .Envoy.Name }}}}</h1>\n"
        ),
    );
}

/// Waits until the server has logged `needle` `times` times.
fn wait_for_count(server: &ServerProcess, needle: &str, times: usize) {
    let deadline = Instant::now() + PATIENCE;
    while server.log().matches(needle).count() < times {
        assert!(
            Instant::now() < deadline,
            "no {times}x {needle:?} in:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What db1 has queued after the password rotates.
fn db1_triggers() -> serde_json::Value {
    serde_json::json!([
        "pg-config <- vigo/db/password",
        "set-db-password <- vigo/db/password"
    ])
}

const ROTATION_DONE: &str = "rotation queued paths=vigo/db/password";

#[test]
fn rotation_reaches_only_the_envoy_that_uses_the_secret_and_leaks_nowhere() {
    let rig = Rig::new();
    let mut server = rig.start_server();
    rig.enroll_and_converge();
    let canary = format!("canary-{}", TestRng::from_clock().token());
    let mut outputs = String::new();

    // Who would be touched, asked before the rotation.
    let who = cli_ok(&rig.dir, &["secrets", "who-uses", DB_PASSWORD]);
    assert_eq!(
        who,
        "ENVOY            RESOURCE         WATCHES\n\
         db1.example.com  pg-config        yes\n\
         db1.example.com  set-db-password  yes\n",
    );
    outputs.push_str(&who);

    let said = rig.set_password(&canary);
    assert!(
        said.starts_with(
            "Secret \"vigo/db/password\" stored.\nServer notified — affected envoys will apply on next check-in.\n"
        ),
        "{said}"
    );
    outputs.push_str(&said);
    wait_for_count(&server, ROTATION_DONE, 1);

    let db1 = rig.show(DB1);
    assert_eq!(db1["force_push"], true, "{db1}");
    assert_eq!(db1["queued_triggers"], db1_triggers(), "{db1}");
    let web1 = rig.show(WEB1);
    assert_eq!(web1["force_push"], false, "{web1}");
    assert_eq!(web1["queued_triggers"], serde_json::json!([]), "{web1}");

    // db1 applies the new value; the restart and the watching exec run once.
    let run = rig.db1.run_once_with(DEBUG);
    assert!(run.status.success(), "{}", all_output(&run));
    outputs.push_str(&all_output(&run));
    assert_eq!(rig.db_conf(), format!("password = {canary}\n"));
    assert_eq!(rig.count("restarts"), 2);
    assert_eq!(rig.count("password-runs"), 2);

    // web1 is untouched.
    let run = rig.web1.run_once_with(DEBUG);
    assert!(run.status.success(), "{}", all_output(&run));
    assert!(crate::support::in_sync(&run), "{}", all_output(&run));
    outputs.push_str(&all_output(&run));

    // A third check-in changes nothing.
    let run = rig.db1.run_once_with(DEBUG);
    assert!(run.status.success(), "{}", all_output(&run));
    assert!(crate::support::in_sync(&run), "{}", all_output(&run));
    outputs.push_str(&all_output(&run));
    assert_eq!((rig.count("restarts"), rig.count("password-runs")), (2, 2));

    // The triggers cleared, with a rotation lag on record.
    let db1 = rig.show(DB1);
    assert_eq!(db1["queued_triggers"], serde_json::json!([]), "{db1}");
    assert_eq!(db1["force_push"], false, "{db1}");
    assert!(db1["last_rotation_lag_ms"].is_u64(), "{db1}");
    outputs.push_str(&db1.to_string());
    let shown = cli_ok(&rig.dir, &["envoys", "show", DB1]);
    assert_contains(&shown, "last rotation lag: ");
    assert!(!shown.contains("last rotation lag: -"), "{shown}");
    outputs.push_str(&shown);
    let ca = std::fs::read_to_string(rig.dir.ca_file()).unwrap();
    let (_, metrics) =
        crate::support::https_get(&format!("https://127.0.0.1:{}/metrics", rig.dir.port), &ca)
            .unwrap();
    assert_contains(
        &metrics,
        "vigo_rotation_lag_seconds{envoy=\"db1.example.com\"}",
    );
    outputs.push_str(&metrics);

    // The audit trail: the change by the CLI and the deliveries, no values.
    let history = cli_ok(&rig.dir, &["secrets", "history", DB_PASSWORD]);
    let lines: Vec<&str> = history.lines().collect();
    assert!(lines[0].starts_with("AT "), "{history}");
    // One change, by the CLI (the file watcher saw it too; it is not
    // recorded twice).
    let changes: Vec<&&str> = lines.iter().filter(|l| l.contains(" changed ")).collect();
    assert_eq!(changes.len(), 1, "{history}");
    assert!(
        changes[0].contains(DB_PASSWORD) && changes[0].ends_with(" cli"),
        "{history}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" delivered ") && l.ends_with(DB1)),
        "{history}"
    );
    assert!(!history.contains(WEB1), "{history}");
    outputs.push_str(&history);
    outputs.push_str(&cli_ok(
        &rig.dir,
        &["secrets", "history", "--output", "json"],
    ));
    outputs.push_str(&cli_ok(&rig.dir, &["envoys", "list"]));

    assert!(server.terminate().success());

    // Leak canary: only the target file holds the value in plain text.
    let log = server.log();
    assert!(
        log.contains("DEBUG"),
        "the server did not log at debug level"
    );
    assert!(
        !log.contains(&canary),
        "the server log holds the value:\n{log}"
    );
    assert!(
        !outputs.contains(&canary),
        "an output holds the value:\n{outputs}"
    );
    let holders: Vec<PathBuf> = rig
        .dir
        .snapshot()
        .into_iter()
        .filter(|(_, bytes)| crate::support::contains_bytes(bytes, canary.as_bytes()))
        .map(|(path, _)| path)
        .collect();
    assert_eq!(holders, vec![rig.out.join("db.conf")]);
    // The database files and both envoys' data folders were in that
    // snapshot; say so, so a layout change cannot make this check vacuous.
    let snapshot = rig.dir.snapshot();
    assert!(
        snapshot
            .keys()
            .any(|p| p.starts_with(rig.dir.data_dir()) && p.extension().is_some_and(|e| e == "db")),
        "no database file under {}",
        rig.dir.data_dir().display()
    );
    for host in [&rig.db1, &rig.web1] {
        assert!(
            snapshot
                .keys()
                .any(|p| p.starts_with(host.root.join("data"))),
            "no data folder for {}",
            host.name
        );
    }
}

#[test]
fn a_set_while_the_server_is_stopped_reaches_db1_after_restart() {
    let rig = Rig::new();
    let mut server = rig.start_server();
    rig.enroll_and_converge();
    assert!(server.terminate().success());

    let said = rig.set_password("set-while-down");
    assert_contains(
        &said,
        "Server not reachable — the change will be applied when it next starts.\n",
    );

    let server = rig.start_server();
    wait_for_count(&server, ROTATION_DONE, 1);
    assert!(
        server
            .log()
            .contains("secrets changed while the server was down")
    );
    let run = rig.db1.run_once_with(DEBUG);
    assert!(run.status.success(), "{}", all_output(&run));
    assert_eq!(rig.db_conf(), "password = set-while-down\n");
    assert_eq!((rig.count("restarts"), rig.count("password-runs")), (2, 2));
    let run = rig.web1.run_once();
    assert!(crate::support::in_sync(&run), "{}", all_output(&run));
}

#[test]
fn a_trigger_survives_a_server_restart_and_a_killed_envoy() {
    let rig = Rig::new();
    let mut server = rig.start_server();
    rig.enroll_and_converge();

    // Queued, then the server restarts before db1 checks in.
    rig.set_password("second-password");
    wait_for_count(&server, ROTATION_DONE, 1);
    assert!(server.terminate().success());
    let server = rig.start_server();

    // db1 is killed in the middle of the watching exec.
    std::fs::write(rig.out.join("slow"), "").unwrap();
    let mut child = rig
        .db1
        .command(DEBUG, &["--once"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while !rig.out.join("started").exists() {
        assert!(Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_file(rig.out.join("slow")).unwrap();
    assert_eq!(
        rig.count("password-runs"),
        1,
        "the killed run did not finish"
    );
    let db1 = rig.show(DB1);
    assert_eq!(db1["queued_triggers"], db1_triggers(), "{db1}");

    // The next run gets the trigger again and finishes it.
    let run = rig.db1.run_once_with(DEBUG);
    assert!(run.status.success(), "{}", all_output(&run));
    assert_eq!(rig.db_conf(), "password = second-password\n");
    assert_eq!(rig.count("password-runs"), 2);
    let db1 = rig.show(DB1);
    assert_eq!(db1["queued_triggers"], serde_json::json!([]), "{db1}");
    let run = rig.db1.run_once();
    assert!(crate::support::in_sync(&run), "{}", all_output(&run));
    drop(server);
}

#[test]
fn sets_in_quick_succession_coalesce_into_one_rotation() {
    let rig = Rig::new();
    let server = rig.start_server();
    rig.enroll_and_converge();

    // Two sets at the same moment (as from a script or two operators).
    let setters: Vec<_> = ["quick-one", "quick-two"]
        .into_iter()
        .map(|value| {
            let mut child = rig
                .dir
                .vigocli()
                .args(["secrets", "set", DB_PASSWORD, "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(value.as_bytes())
                .unwrap();
            child
        })
        .collect();
    for mut child in setters {
        assert!(child.wait().unwrap().success());
    }
    wait_for_count(&server, ROTATION_DONE, 1);
    // The flow handles notifications in order: once a later one (another
    // secret's) is done, a second batch of the two sets would have run.
    let marker = "vigo/test/marker";
    let set = rig
        .dir
        .cli_with_stdin(&["secrets", "set", marker, "-"], b"marker");
    assert!(set.status.success(), "{}", all_output(&set));
    wait_for_count(&server, &format!("rotation queued paths={marker}"), 1);
    assert_eq!(
        server.log().matches(ROTATION_DONE).count(),
        1,
        "{}",
        server.log()
    );
    let last = cli_ok(&rig.dir, &["secrets", "get", DB_PASSWORD]);

    let run = rig.db1.run_once();
    assert!(run.status.success(), "{}", all_output(&run));
    assert_eq!(rig.db_conf(), format!("password = {}\n", last.trim_end()));
    assert_eq!((rig.count("restarts"), rig.count("password-runs")), (2, 2));
}

/// docs/operations.md "Replicas behind HAProxy": several replicas share one PostgreSQL; a rotation
/// handled by one reaches an envoy that checks in at another, with the new value.
#[test]
fn a_rotation_handled_by_one_replica_reaches_envoys_of_another() {
    let Some(admin_url) = vigo_test_support::postgres_url() else {
        return;
    };
    let rig = Rig::new();
    let _schema = crate::support::PgSchema::create(&rig.dir, admin_url);
    // Replica A on the folder's config; replica B the same but its port.
    let server_a = rig.start_server();
    let port_b = crate::support::free_port();
    let config = std::fs::read_to_string(rig.dir.config()).unwrap();
    let config_b = rig.dir.write(
        "vigosrv-b.yaml",
        &config.replace(&rig.dir.port.to_string(), &port_b.to_string()),
    );
    let mut server_b = ServerProcess::spawn(&config_b, DEBUG);
    server_b.wait_healthy(port_b, &rig.dir.ca_file());
    rig.enroll_and_converge();

    // db1 now checks in at B; the CLI notifies A.
    let envoy_yaml = std::fs::read_to_string(&rig.db1.config).unwrap();
    std::fs::write(
        &rig.db1.config,
        envoy_yaml.replace(
            &format!("localhost:{}", rig.dir.port),
            &format!("localhost:{port_b}"),
        ),
    )
    .unwrap();
    rig.set_password("rotated-at-a");
    // A was notified, B's file watcher saw the write: whichever records
    // the new version first queues the triggers, the other only reloads.
    let done = || {
        server_a.log().matches(ROTATION_DONE).count()
            + server_b.log().matches(ROTATION_DONE).count()
    };
    let deadline = Instant::now() + PATIENCE;
    while done() == 0 {
        assert!(Instant::now() < deadline, "{}", server_a.log());
        std::thread::sleep(Duration::from_millis(50));
    }

    let run = rig.db1.run_once_with(DEBUG);
    assert!(run.status.success(), "{}", all_output(&run));
    assert_eq!(
        rig.db_conf(),
        "password = rotated-at-a\n",
        "{}",
        server_b.log()
    );
    assert_eq!((rig.count("restarts"), rig.count("password-runs")), (2, 2));
    let run = rig.db1.run_once();
    assert!(crate::support::in_sync(&run), "{}", all_output(&run));
    assert_eq!((rig.count("restarts"), rig.count("password-runs")), (2, 2));
    assert_eq!(done(), 1, "A:\n{}\nB:\n{}", server_a.log(), server_b.log());
    drop(server_b);
}
