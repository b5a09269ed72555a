//! Replicas sharing one PostgreSQL (issue 14): real `vigosrv` processes,
//! each test in a fresh schema of `VIGO_TEST_POSTGRES`.
//!
//! - A change made through replica A (a rotation, a revoke) wakes a wait
//!   held at replica B within a second: B learns it only from A's `NOTIFY`
//!   (B reads its own copy of the secrets, so its watcher sees nothing, and
//!   its one periodic sweep runs every 30 s).
//! - The listening connections are terminated, as a database restart
//!   would: both replicas listen again by themselves and a wait held across
//!   the loss is woken by the next change.
//! - Behind HAProxy (TCP mode, mutual TLS ends at vigosrv), when Debian's
//!   `haproxy` is installed: stopping A moves its envoys to B and a
//!   rotation made then reaches every envoy.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{EnvoyHost, PATIENCE, PgSchema, ServerProcess, TestDir, all_output, cli_ok};
use vigo_pki::CertifiedKey;
use vigo_proto::WaitResponse;
use vigo_secrets::SecretValue;

const DEBUG: &[&str] = &["--log-level", "debug"];
/// The generous bound of the acceptance criterion.
const WAKE_BOUND: Duration = Duration::from_secs(1);
const ROTATION_QUEUED: &str = "rotation queued";

/// The envoys of the tests: `web*` use `app/token`, `api*` `app/other`;
/// each writes its own file `out/<name>.token`.
const ENVOYS: [&str; 4] = [
    "web1.example.com",
    "web2.example.com",
    "api1.example.com",
    "api2.example.com",
];

fn write_config_repo(dir: &TestDir) {
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let mut nodes = String::from("envoys:\n");
    for name in ENVOYS {
        let short = name.split('.').next().unwrap();
        let path = if short.starts_with("web") {
            "app/token"
        } else {
            "app/other"
        };
        nodes.push_str(&format!(
            "  - match: \"{name}\"\n    roles: [{short}]\n    vars:\n      token: \"secret:{path}\"\n"
        ));
        dir.write(
            &format!("config/modules/{short}.vgo"),
            &format!(
                "resources:\n  - name: app-token\n    type: file\n    target_path: {}/{name}.token\n    content: \"{{{{ .Vars.token }}}}\"\n    watch_secret: [\"{path}\"]\n",
                out.display()
            ),
        );
    }
    dir.write("config/nodes.vgo", &nodes);
}

/// Copies a folder tree (the local secrets backend, for replica B).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Runs a query with `psql` and returns its unaligned output.
fn psql_value(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
        .stdin(Stdio::null())
        .output()
        .expect("running psql");
    assert!(out.status.success(), "psql {sql}: {}", all_output(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Polls `done` every 20 ms until it holds; panics after `PATIENCE`.
fn eventually(what: &str, done: impl FnMut() -> bool) {
    eventually_or(what, done, String::new);
}

/// [`eventually`], with `context` in the panic message.
fn eventually_or(what: &str, mut done: impl FnMut() -> bool, context: impl Fn() -> String) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Two replicas on one schema; B with its own copy of the secrets.
struct Replicas {
    dir: TestDir,
    schema: PgSchema,
    admin_url: String,
    a: ServerProcess,
    b: ServerProcess,
    port_b: u16,
}

impl Replicas {
    fn start(admin_url: String) -> Self {
        let dir = TestDir::new();
        cli_ok(&dir, &["secrets", "bootstrap"]);
        cli_ok(&dir, &["secrets", "set", "app/token", "token-1"]);
        cli_ok(&dir, &["secrets", "set", "app/other", "other-1"]);
        write_config_repo(&dir);
        let schema = PgSchema::create(&dir, admin_url.clone());
        copy_tree(&dir.data_dir(), &dir.path().join("data-b"));
        let port_b = crate::support::free_port();
        let config = std::fs::read_to_string(dir.config()).unwrap();
        let config_b = dir.write(
            "vigosrv-b.yaml",
            &config
                .replace(&dir.port.to_string(), &port_b.to_string())
                .replace("data_dir: data", "data_dir: data-b"),
        );
        let a = dir.start_server(DEBUG);
        let mut b = ServerProcess::spawn(&config_b, DEBUG);
        b.wait_healthy(port_b, &dir.data_dir().join("ca.crt"));
        let mut this = Self {
            dir,
            schema,
            admin_url,
            a,
            b,
            port_b,
        };
        for server in [&mut this.a, &mut this.b] {
            assert!(
                server.wait_for_log("listening for other replicas' wake-ups"),
                "{}",
                server.log()
            );
        }
        this
    }

    /// Enrolls `name` through A with a token; returns its identity.
    fn enroll(&self, name: &str) -> CertifiedKey {
        let token = cli_ok(&self.dir, &["envoys", "token"]);
        let host = EnvoyHost::new(&self.dir, name, Some(token.trim()));
        let run = host.run_once();
        assert!(run.status.success(), "{name}: {}", all_output(&run));
        let data = host.root.join("data");
        CertifiedKey {
            cert_pem: std::fs::read_to_string(data.join("envoy.crt")).unwrap(),
            key_pem: SecretValue::new(std::fs::read_to_string(data.join("envoy.key")).unwrap()),
        }
    }

    /// Holds `GET /v1/wait` at B for `identity`, in a thread; returns once
    /// B logged that it holds it.
    fn hold_wait_at_b(&self, name: &str, identity: &CertifiedKey) -> HeldWait {
        let before = self.held_count(name);
        let held = hold_wait(self.port_b, &self.dir.ca_file(), identity);
        eventually(&format!("B holding the wait of {name}"), || {
            self.held_count(name) > before
        });
        held
    }

    fn held_count(&self, name: &str) -> usize {
        self.b.waits_opened(name)
    }

    /// The listening connections of this schema, by backend pid.
    fn listeners(&self) -> Vec<String> {
        let text = psql_value(
            &self.admin_url,
            &format!(
                "SELECT pid FROM pg_stat_activity WHERE application_name = '{}' AND query = 'LISTEN \"vigo_wake:{}\"'",
                vigo_store::LISTENER_APPLICATION_NAME,
                self.schema.name()
            ),
        );
        text.lines().map(str::to_owned).collect()
    }
}

/// A wait held in a thread; `answer` is when and what it answered.
struct HeldWait {
    answered: mpsc::Receiver<(Instant, Result<WaitResponse, String>)>,
}

impl HeldWait {
    fn answer(&self) -> (Instant, WaitResponse) {
        let (at, answer) = self
            .answered
            .recv_timeout(PATIENCE)
            .expect("the wait answers within the test's patience");
        (at, answer.expect("the wait succeeds"))
    }
}

fn hold_wait(port: u16, ca_file: &Path, identity: &CertifiedKey) -> HeldWait {
    let ca = std::fs::read_to_string(ca_file).unwrap();
    let tls = vigo_pki::client_tls_config(&ca, Some(identity)).unwrap();
    let (tx, answered) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let answer = runtime.block_on(async {
            let client = reqwest::Client::builder()
                .use_preconfigured_tls(std::sync::Arc::unwrap_or_clone(tls))
                .timeout(Duration::from_secs(120))
                .build()
                .map_err(|e| e.to_string())?;
            let response = client
                .get(format!("https://localhost:{port}/v1/wait"))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            let body = response.text().await.map_err(|e| e.to_string())?;
            if !status.is_success() {
                return Err(format!("{status}: {body}"));
            }
            serde_json::from_str::<WaitResponse>(&body).map_err(|e| e.to_string())
        });
        let _ = tx.send((Instant::now(), answer));
    });
    HeldWait { answered }
}

/// Sets `path` to `value` through replica A (the CLI notifies A); returns
/// when the CLI returned and when A's log showed the rotation committed.
fn rotate_through_a(replicas: &Replicas, path: &str, value: &str) -> (Instant, Instant) {
    let before = replicas.a.log().matches(ROTATION_QUEUED).count();
    let out = replicas
        .dir
        .cli_with_stdin(&["secrets", "set", path, "-"], value.as_bytes());
    assert!(out.status.success(), "{}", all_output(&out));
    let returned = Instant::now();
    eventually("A's rotation", || {
        replicas.a.log().matches(ROTATION_QUEUED).count() > before
    });
    (returned, Instant::now())
}

#[test]
fn issue_14_a_change_through_replica_a_wakes_a_wait_held_at_replica_b() {
    let Some(admin_url) = vigo_test_support::postgres_url() else {
        return;
    };
    let replicas = Replicas::start(admin_url);
    let web1 = replicas.enroll("web1.example.com");
    let api1 = replicas.enroll("api1.example.com");
    assert_eq!(replicas.listeners().len(), 2);

    // A rotation committed by A: B's wait for web1 answers "check in now".
    let wait = replicas.hold_wait_at_b("web1.example.com", &web1);
    let (set_returned, committed_seen) = rotate_through_a(&replicas, "app/token", "token-2");
    let (answered, response) = wait.answer();
    assert!(response.checkin_now, "B:\n{}", replicas.b.log());
    let after_commit = answered.saturating_duration_since(committed_seen);
    assert!(
        after_commit < WAKE_BOUND,
        "B answered {after_commit:?} after A's commit was seen"
    );
    let after_set = answered.saturating_duration_since(set_returned);
    assert!(
        after_set < vigo_server::COALESCE_WINDOW + WAKE_BOUND,
        "B answered {after_set:?} after `secrets set` returned"
    );
    // B did not rotate by itself: it learnt of the change only from A.
    assert!(!replicas.b.log().contains(ROTATION_QUEUED));

    // A revoke made through A ends api1's wait at B.
    let wait = replicas.hold_wait_at_b("api1.example.com", &api1);
    cli_ok(&replicas.dir, &["envoys", "revoke", "api1.example.com"]);
    let revoked = Instant::now();
    let (answered, response) = wait.answer();
    assert!(response.checkin_now);
    let elapsed = answered.saturating_duration_since(revoked);
    assert!(
        elapsed < WAKE_BOUND,
        "B answered {elapsed:?} after the revoke"
    );
}

#[test]
fn issue_14_waits_are_woken_again_after_the_listeners_lose_their_connection() {
    let Some(admin_url) = vigo_test_support::postgres_url() else {
        return;
    };
    let replicas = Replicas::start(admin_url);
    let api2 = replicas.enroll("api2.example.com");

    // The wait is held across the loss of both replicas' listeners.
    let wait = replicas.hold_wait_at_b("api2.example.com", &api2);
    let old = replicas.listeners();
    assert_eq!(old.len(), 2);
    let terminated = psql_value(
        &replicas.admin_url,
        &format!(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid IN ({})) AS t",
            old.join(",")
        ),
    );
    assert_eq!(terminated, "2");
    for server in [&replicas.a, &replicas.b] {
        eventually("the replica listening again", || {
            server
                .log()
                .contains("listening for other replicas' wake-ups again")
        });
    }
    eventually("two new listeners", || {
        let now = replicas.listeners();
        now.len() == 2 && now.iter().all(|pid| !old.contains(pid))
    });
    assert!(
        replicas
            .b
            .log()
            .contains("lost the connection listening for other replicas' wake-ups"),
        "{}",
        replicas.b.log()
    );

    // No restart: a rotation through A reaches the held wait at B.
    let (set_returned, committed_seen) = rotate_through_a(&replicas, "app/other", "other-2");
    let (answered, response) = wait.answer();
    assert!(response.checkin_now, "B:\n{}", replicas.b.log());
    let after_commit = answered.saturating_duration_since(committed_seen);
    assert!(
        after_commit < WAKE_BOUND,
        "{after_commit:?} after A's commit"
    );
    assert!(
        answered.saturating_duration_since(set_returned)
            < vigo_server::COALESCE_WINDOW + WAKE_BOUND
    );
}

// --- HAProxy ------------------------------------------------------------------

/// A running `haproxy -db`, killed when dropped.
struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn haproxy_binary() -> Option<std::path::PathBuf> {
    [
        "/usr/sbin/haproxy",
        "/usr/bin/haproxy",
        "/usr/local/sbin/haproxy",
    ]
    .iter()
    .map(std::path::PathBuf::from)
    .find(|p| p.exists())
}

/// The `haproxy.cfg` of docs/operations.md, on test ports.
fn haproxy_config(front: u16, a: u16, b: u16) -> String {
    format!(
        "global\n  maxconn 2000\n\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 90s\n  timeout server 90s\n  retries 3\n  option redispatch\n\nfrontend vigo\n  bind 127.0.0.1:{front}\n  default_backend vigosrv\n\nbackend vigosrv\n  balance leastconn\n  server a 127.0.0.1:{a} check inter 500ms fall 2 rise 2\n  server b 127.0.0.1:{b} check inter 500ms fall 2 rise 2\n"
    )
}

#[test]
fn issue_14_behind_haproxy_stopping_a_replica_moves_its_envoys_without_losing_a_trigger() {
    let Some(admin_url) = vigo_test_support::postgres_url() else {
        return;
    };
    let Some(haproxy) = haproxy_binary() else {
        eprintln!(
            "skipped: haproxy is not installed (Debian: apt-get install haproxy); the HAProxy replica test did not run"
        );
        return;
    };
    // Both replicas share the secrets folder here, as they would share a
    // secrets backend. A short interval: an envoy whose wait failed (its
    // replica went away mid-request) falls back to it.
    let dir = TestDir::with_config_extra("checkin:\n  interval: \"5s\"\n");
    cli_ok(&dir, &["secrets", "bootstrap"]);
    cli_ok(&dir, &["secrets", "set", "app/token", "token-1"]);
    cli_ok(&dir, &["secrets", "set", "app/other", "other-1"]);
    write_config_repo(&dir);
    let _schema = PgSchema::create(&dir, admin_url);
    let port_b = crate::support::free_port();
    let front = crate::support::free_port();
    let config = std::fs::read_to_string(dir.config()).unwrap();
    let config_b = dir.write(
        "vigosrv-b.yaml",
        &config.replace(&dir.port.to_string(), &port_b.to_string()),
    );
    let mut a = dir.start_server(DEBUG);
    let mut b = ServerProcess::spawn(&config_b, DEBUG);
    b.wait_healthy(port_b, &dir.ca_file());
    let cfg = dir.write("haproxy.cfg", &haproxy_config(front, dir.port, port_b));
    let proxy = Haproxy(
        Command::new(haproxy)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("haproxy.log")).unwrap())
            .spawn()
            .expect("starting haproxy"),
    );
    let haproxy_log =
        || std::fs::read_to_string(dir.path().join("haproxy.log")).unwrap_or_default();
    let deadline = Instant::now() + PATIENCE;
    while std::net::TcpStream::connect(("127.0.0.1", front)).is_err() {
        assert!(
            Instant::now() < deadline,
            "haproxy does not listen:\n{}",
            haproxy_log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Four envoys in their run loop, all through HAProxy.
    let names = ENVOYS;
    let mut envoys = Vec::new();
    for name in names {
        let token = cli_ok(&dir, &["envoys", "token"]);
        let host = EnvoyHost::new(&dir, name, Some(token.trim()));
        let yaml = std::fs::read_to_string(&host.config).unwrap();
        std::fs::write(
            &host.config,
            yaml.replace(
                &format!("localhost:{}", dir.port),
                &format!("localhost:{front}"),
            ),
        )
        .unwrap();
        let child = host
            .command(&[], &[])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join(format!("{name}.log"))).unwrap())
            .spawn()
            .expect("starting vigoenvoy");
        envoys.push(KillOnDrop(child));
    }
    let token_file = |name: &str| dir.path().join("out").join(format!("{name}.token"));
    let logs = || {
        let mut text = format!(
            "A:\n{}\nB:\n{}\nhaproxy:\n{}\n",
            a.log(),
            b.log(),
            haproxy_log()
        );
        for name in names {
            let log = std::fs::read_to_string(dir.path().join(format!("{name}.log")));
            text.push_str(&format!("{name}:\n{}\n", log.unwrap_or_default()));
        }
        text
    };
    eventually_or(
        "every envoy converged",
        || {
            names.iter().all(|n| {
                let want = if n.starts_with("web") {
                    "token-1"
                } else {
                    "other-1"
                };
                std::fs::read_to_string(token_file(n)).is_ok_and(|t| t == want)
            })
        },
        logs,
    );
    // Every envoy holds a wait at one of the two replicas.
    let holding = |server: &ServerProcess, name: &str| server.waits_opened(name) > 0;
    eventually("every envoy holding a wait", || {
        names.iter().all(|n| holding(&a, n) || holding(&b, n))
    });

    let held_at = |server: &ServerProcess, name: &str| server.waits_opened(name);
    let at_a: Vec<&str> = names.iter().copied().filter(|n| holding(&a, n)).collect();
    assert!(!at_a.is_empty(), "HAProxy sent no envoy to A:\n{}", logs());
    let at_b_before: Vec<usize> = at_a.iter().map(|n| held_at(&b, n)).collect();

    // A stops; its envoys come back through HAProxy to B. A rotation of
    // both secrets made now, through B, reaches every envoy.
    a.terminate();
    let vigocli_b = || {
        let mut cmd = Command::new(crate::support::bin("vigocli"));
        cmd.arg("--config").arg(&config_b);
        cmd
    };
    let set = |path: &str, value: &str| {
        let out = crate::support::run_with_stdin(
            vigocli_b().args(["secrets", "set", path, "-"]),
            value.as_bytes(),
        );
        assert!(out.status.success(), "{}", all_output(&out));
    };
    set("app/token", "token-2");
    set("app/other", "other-2");
    eventually("every envoy applied the rotation through B", || {
        names.iter().all(|n| {
            let want = if n.starts_with("web") {
                "token-2"
            } else {
                "other-2"
            };
            std::fs::read_to_string(token_file(n)).is_ok_and(|t| t == want)
        })
    });
    // Every trigger was delivered and reported applied.
    eventually("no trigger left queued", || {
        names.iter().all(|n| {
            let out =
                crate::support::run(vigocli_b().args(["envoys", "show", n, "--output", "json"]));
            let show: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            show["queued_triggers"]
                .as_array()
                .is_some_and(Vec::is_empty)
        })
    });
    eventually("every envoy holding a wait at B", || {
        names.iter().all(|n| holding(&b, n))
    });
    // Those that waited at A wait at B now.
    for (name, before) in at_a.iter().zip(at_b_before) {
        assert!(held_at(&b, name) > before, "{name} never moved to B");
    }
    drop(envoys);
    drop(proxy);
}

/// A child process killed when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn issue_18_a_run_request_through_replica_a_wakes_a_wait_held_at_replica_b() {
    let Some(admin_url) = vigo_test_support::postgres_url() else {
        return;
    };
    let replicas = Replicas::start(admin_url);
    let web1 = replicas.enroll("web1.example.com");
    let wait = replicas.hold_wait_at_b("web1.example.com", &web1);
    // `vigocli` talks to A; nothing answers the run (the wait is ours), so
    // the CLI reports web1 as not answering.
    let asked = Instant::now();
    let out = replicas
        .dir
        .cli(&["run", "web1.example.com", "--timeout", "1s"]);
    assert!(!out.status.success(), "{}", all_output(&out));
    let (answered, response) = wait.answer();
    assert!(response.checkin_now, "B:\n{}", replicas.b.log());
    // Measured from before the CLI started (it opens the secrets backend
    // first): well inside the 30 s sweep, so the notification woke it.
    let elapsed = answered.saturating_duration_since(asked);
    assert!(
        elapsed < WAKE_BOUND * 5,
        "B answered {elapsed:?} after the run was asked through A"
    );
}
