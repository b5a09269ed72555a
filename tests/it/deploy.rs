//! Deploying config changes and the rotation promise, over the real
//! binaries (issue 11): a running `vigosrv` with a running `vigoenvoy run`
//! loop picks up config repository changes — by its watcher, on SIGHUP and
//! on `vigocli config reload` — without a restart, keeps serving the last
//! good repository when an edit is invalid, and a check-in that starts
//! right after `vigocli secrets set` (or right after a start that found a
//! changed secret) gets the new value.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    DB_NODES, EnvoyHost, PATIENCE, ServerProcess, TestDir, all_output, assert_contains,
    bootstrapped_with_out, cli_ok, database_module, stderr, stdout,
};
use nix::sys::signal::Signal;
use serde_json::Value;

const WEB1: &str = "web1.example.com";
const DB1: &str = "db1.example.com";
const DB_PASSWORD: &str = "vigo/db/password";
const DEBUG: &[&str] = &["--log-level", "debug"];

/// How soon a deployed change must reach a running envoy (the acceptance
/// bound of the issue; the flow normally takes about a second).
const DEPLOY_DEADLINE: Duration = Duration::from_secs(3);

/// The seed's example roles: `web` (a page) and `database` (a file with
/// the password, watching it and notifying a counting exec, and an exec
/// that reads the password on stdin when it rotates).
fn write_repo(root: &Path, out: &Path, web_extra: &str) {
    write(
        root,
        "nodes.vgo",
        &format!("envoys:\n{DB_NODES}  - match: \"web*.example.com\"\n    roles: [web]\n"),
    );
    write(root, "modules/database.vgo", &database_module(out, ""));
    let out = out.display();
    write(
        root,
        "modules/web.vgo",
        &format!(
            "resources:\n  - name: index\n    type: file\n    target_path: {out}/index.html\n    content: \"<h1>{{{{ .Envoy.Name }}}}</h1>\"\n{web_extra}"
        ),
    );
}

/// A file resource to deploy, as a `web.vgo` continuation.
fn file_resource(out: &Path, name: &str) -> String {
    format!(
        "  - name: {name}\n    type: file\n    target_path: {}/{name}\n    content: \"deployed {name}\"\n",
        out.display()
    )
}

fn write(root: &Path, rel: &str, text: &str) {
    let file = root.join(rel);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    // Written whole and renamed into place, as editors and checkouts do.
    let temp = file.with_extension("tmp-write");
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(&temp, &file).unwrap();
}

struct Rig {
    dir: TestDir,
    out: PathBuf,
}

impl Rig {
    /// Bootstrapped, with the password set. `config` in the test folder is
    /// a symlink to `config-a`, so that a later step can switch the whole
    /// repository without the watcher seeing it.
    fn new() -> Self {
        let (dir, out) = bootstrapped_with_out();
        cli_ok(&dir, &["secrets", "set", DB_PASSWORD, "first-password"]);
        write_repo(&dir.path().join("config-a"), &out, "");
        std::os::unix::fs::symlink("config-a", dir.path().join("config")).unwrap();
        Self { dir, out }
    }

    fn envoy(&self, name: &str) -> EnvoyHost {
        let token = cli_ok(&self.dir, &["envoys", "token"]);
        EnvoyHost::new(&self.dir, name, Some(token.trim()))
    }

    /// Points `config` at `release` (a fresh folder) atomically.
    fn switch_to(&self, release: &str) {
        let link = self.dir.path().join("config.new-link");
        std::os::unix::fs::symlink(release, &link).unwrap();
        std::fs::rename(&link, self.dir.path().join("config")).unwrap();
    }

    fn read(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.out.join(name)).ok()
    }

    fn count(&self, name: &str) -> usize {
        self.read(&format!("{name}.log"))
            .map(|text| text.lines().count())
            .unwrap_or(0)
    }

    fn metrics(&self) -> String {
        let ca = std::fs::read_to_string(self.dir.ca_file()).unwrap();
        crate::support::https_get(&format!("https://127.0.0.1:{}/metrics", self.dir.port), &ca)
            .unwrap()
            .1
    }
}

/// A `vigoenvoy run` loop, killed when dropped; its log goes to a file.
struct EnvoyLoop {
    child: Child,
    log: PathBuf,
}

impl EnvoyLoop {
    fn start(host: &EnvoyHost) -> Self {
        let log = host.root.join("run.log");
        let child = host
            .command(DEBUG, &[])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for EnvoyLoop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits up to `limit` for `out/<name>` to hold `text`.
fn wait_for_file(rig: &Rig, name: &str, text: &str, limit: Duration, why: &str) -> Duration {
    let started = Instant::now();
    loop {
        if rig.read(name).as_deref() == Some(text) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "{why}: out/{name} did not become {text:?} within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn still_running(server: &mut ServerProcess, pid: u32) {
    assert!(
        server.try_status().is_none(),
        "vigosrv stopped:\n{}",
        server.log()
    );
    assert_eq!(server.pid(), pid);
}

fn config_status(dir: &TestDir) -> Value {
    serde_json::from_str(&cli_ok(dir, &["config", "status", "--output", "json"])).unwrap()
}

#[test]
fn issue_11_config_changes_reach_a_running_envoy_without_a_restart() {
    let rig = Rig::new();
    let mut server = rig.dir.start_server(DEBUG);
    let pid = server.pid();
    let web1 = rig.envoy(WEB1);
    let first = web1.run_once();
    assert!(first.status.success(), "{}", all_output(&first));
    assert_eq!(
        rig.read("index.html").as_deref(),
        Some("<h1>web1.example.com</h1>")
    );
    let envoy = EnvoyLoop::start(&web1);
    let deadline = Instant::now() + PATIENCE;
    while config_status(&rig.dir)["watching"] != true {
        assert!(Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = config_status(&rig.dir);
    assert_eq!(started["loaded_by"], "startup", "{started}");
    let serving = started["serving"]["hash"].as_str().unwrap().to_owned();
    assert!(
        rig.metrics().contains("vigo_config_reload_success 1"),
        "{}",
        rig.metrics()
    );

    // 1. An invalid edit (an unknown resource type): the server keeps
    //    serving the last good repository and says where the error is.
    let config_a = rig.dir.path().join("config-a");
    write_repo(
        &config_a,
        &rig.out,
        "  - name: motd\n    type: fiel\n    target_path: /tmp/x\n",
    );
    let reload = rig.dir.cli(&["config", "reload"]);
    assert!(!reload.status.success(), "{}", all_output(&reload));
    let said = stderr(&reload);
    let first_line = said.lines().next().unwrap_or_default();
    assert!(
        first_line.starts_with("modules/web.vgo:7:") && first_line.contains("fiel"),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "error: config not reloaded (1 error); revision {} keeps serving",
            &serving[..12]
        )),
        "{said}"
    );
    let json = rig.dir.cli(&["config", "reload", "--output", "json"]);
    assert!(!json.status.success());
    let answer: Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(answer["ok"], false, "{answer}");
    assert_eq!(answer["errors"][0]["file"], "modules/web.vgo", "{answer}");
    assert_eq!(answer["errors"][0]["line"], 7, "{answer}");
    assert_eq!(answer["serving"]["hash"], serving.as_str(), "{answer}");
    let status = config_status(&rig.dir);
    assert_eq!(status["serving"]["hash"], serving.as_str(), "{status}");
    assert_eq!(status["last_attempt"]["ok"], false, "{status}");
    assert_eq!(status["last_failure"]["errors"][0]["line"], 7, "{status}");
    let text = cli_ok(&rig.dir, &["config", "status"]);
    assert_contains(&text, "last reload: FAILED at ");
    assert_contains(&text, "  modules/web.vgo:7:");
    assert!(rig.metrics().contains("vigo_config_reload_success 0"));
    assert!(
        server
            .log()
            .lines()
            .any(|l| l.contains("ERROR config reload failed") && l.contains("modules/web.vgo:7:")),
        "{}",
        server.log()
    );
    still_running(&mut server, pid);

    // 2. Fixed, with a new file: the watcher alone deploys it.
    write_repo(&config_a, &rig.out, &file_resource(&rig.out, "by-watcher"));
    wait_for_file(
        &rig,
        "by-watcher",
        "deployed by-watcher",
        DEPLOY_DEADLINE,
        "watcher",
    );
    let status = config_status(&rig.dir);
    assert_eq!(status["loaded_by"], "watcher", "{status}");
    assert_ne!(status["serving"]["hash"], serving.as_str(), "{status}");
    assert!(rig.metrics().contains("vigo_config_reload_success 1"));
    still_running(&mut server, pid);

    // 3. A new release switched in by a symlink (the watcher keeps watching
    //    the old folder) and SIGHUP.
    let mut web_extra = file_resource(&rig.out, "by-watcher");
    web_extra.push_str(&file_resource(&rig.out, "by-sighup"));
    write_repo(&rig.dir.path().join("config-b"), &rig.out, &web_extra);
    rig.switch_to("config-b");
    server.signal(Signal::SIGHUP);
    wait_for_file(
        &rig,
        "by-sighup",
        "deployed by-sighup",
        DEPLOY_DEADLINE,
        "SIGHUP",
    );
    assert_eq!(config_status(&rig.dir)["loaded_by"], "SIGHUP");
    still_running(&mut server, pid);

    // 4. Another release and `vigocli config reload`.
    web_extra.push_str(&file_resource(&rig.out, "by-cli"));
    write_repo(&rig.dir.path().join("config-c"), &rig.out, &web_extra);
    rig.switch_to("config-c");
    let said = cli_ok(&rig.dir, &["config", "reload"]);
    assert!(
        said.starts_with("Config reloaded: revision ")
            && said.contains("; 1 envoy's catalog changed.\n  web1.example.com\n"),
        "{said}"
    );
    wait_for_file(
        &rig,
        "by-cli",
        "deployed by-cli",
        DEPLOY_DEADLINE,
        "config reload",
    );
    let status = config_status(&rig.dir);
    assert_eq!(status["loaded_by"], "cli", "{status}");
    assert_eq!(status["last_attempt"]["ok"], true, "{status}");
    // Reloading the same content again changes no catalog.
    let said = cli_ok(&rig.dir, &["config", "reload"]);
    assert_contains(&said, "; 0 envoys' catalogs changed.\n");

    // One process throughout; SIGHUP logged as a reload, never a stop.
    still_running(&mut server, pid);
    assert!(
        server
            .log()
            .contains("reloading the config repository signal=SIGHUP")
    );
    assert!(!server.log().contains("stopping"), "{}", server.log());
    assert!(
        !envoy.log().contains("ERROR"),
        "the envoy loop failed:\n{}",
        envoy.log()
    );
    drop(envoy);
    // SIGTERM still drains and stops.
    assert!(server.terminate().success());
    assert!(server.log().contains("server stopped"));
}

/// db1 enrolled and converged on `first-password`.
fn converged_db1(rig: &Rig) -> EnvoyHost {
    let db1 = rig.envoy(DB1);
    let run = db1.run_once();
    assert!(run.status.success(), "{}", all_output(&run));
    assert_eq!(
        rig.read("db.conf").as_deref(),
        Some("password = first-password\n")
    );
    assert_eq!((rig.count("restarts"), rig.count("password-runs")), (1, 1));
    db1
}

fn set_password(rig: &Rig, value: &str) -> String {
    let out = rig
        .dir
        .cli_with_stdin(&["secrets", "set", DB_PASSWORD, "-"], value.as_bytes());
    assert!(out.status.success(), "{}", all_output(&out));
    all_output(&out)
}

#[test]
fn issue_11_a_run_right_after_secrets_set_gets_the_new_value() {
    let rig = Rig::new();
    let server = rig.dir.start_server(DEBUG);
    let db1 = converged_db1(&rig);

    let said = set_password(&rig, "second-password");
    assert_contains(
        &said,
        "Server notified — affected envoys will apply on next check-in.",
    );
    // At once: inside the server's coalescing window.
    let run = db1.run_once_with(DEBUG);
    assert!(run.status.success(), "{}", all_output(&run));
    assert_eq!(
        rig.read("db.conf").as_deref(),
        Some("password = second-password\n"),
        "{}\n{}",
        all_output(&run),
        server.log()
    );
    assert_eq!(
        (rig.count("restarts"), rig.count("password-runs")),
        (2, 2),
        "the watching resources ran once"
    );
}

#[test]
fn issue_11_a_run_right_after_a_start_gets_a_value_set_while_stopped() {
    let rig = Rig::new();
    let mut server = rig.dir.start_server(DEBUG);
    let db1 = converged_db1(&rig);
    assert!(server.terminate().success());

    let said = set_password(&rig, "set-while-down");
    assert_contains(
        &said,
        "Server not reachable — the change will be applied when it next starts.",
    );
    let server = rig.dir.start_server(DEBUG);
    // At once: the start-up comparison of versions may still be running.
    let run = db1.run_once_with(DEBUG);
    assert!(run.status.success(), "{}", all_output(&run));
    assert_eq!(
        rig.read("db.conf").as_deref(),
        Some("password = set-while-down\n"),
        "{}\n{}",
        all_output(&run),
        server.log()
    );
    assert_eq!((rig.count("restarts"), rig.count("password-runs")), (2, 2));
    let deadline = Instant::now() + PATIENCE;
    while !server
        .log()
        .contains("secrets changed while the server was down")
    {
        assert!(Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}
