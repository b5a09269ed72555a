//! Server hardening over the real binaries (issue 12):
//! - a rotation interrupted at any step — SIGKILL or a database error —
//!   reaches every affected envoy after a restart, exactly once
//!   (SQLite and PostgreSQL);
//! - idle, half-sent and kept-alive connections are closed, connections are
//!   capped in total and per address, `/healthz` stays reachable;
//! - reports are capped in size and rate;
//! - `vigo_queued_triggers` comes from the store, and the size and time
//!   metrics are histograms.
//!
//! The binaries are built with the `test-hooks` feature for these tests:
//! `VIGO_FAULT` stops or fails the server at a named point, and
//! `VIGO_TEST_LISTENER` shortens the listener's timeouts.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{
    DB_NODES, EnvoyHost, PATIENCE, ServerProcess, TestDir, all_output, assert_contains,
    bootstrapped_with_out, cli_ok, database_module,
};
use serde_json::{Value, json};
use vigo_pki::CertifiedKey;
use vigo_secrets::SecretValue;

const DB1: &str = "db1.example.com";
const DB_PASSWORD: &str = "vigo/db/password";
const ROTATION_DONE: &str = "rotation queued paths=vigo/db/password";

// --- a rig: server, config repository, one envoy ---------------------------------------

struct Rig {
    dir: TestDir,
    out: PathBuf,
    db1: EnvoyHost,
    _schema: Option<crate::support::PgSchema>,
}

impl Rig {
    /// `None` when PostgreSQL is asked for but `VIGO_TEST_POSTGRES` is unset.
    fn new(postgres: bool) -> Option<Self> {
        let (dir, out) = bootstrapped_with_out();
        let schema = if postgres {
            let admin_url = vigo_test_support::postgres_url()?;
            Some(crate::support::PgSchema::create(&dir, admin_url))
        } else {
            None
        };
        cli_ok(&dir, &["secrets", "set", DB_PASSWORD, "first-password"]);
        write_config_repo(&dir, &out);
        let db1 = EnvoyHost::new(&dir, DB1, None);
        Some(Self {
            dir,
            out,
            db1,
            _schema: schema,
        })
    }

    /// `vigosrv` with extra environment, waited for until healthy.
    fn start(&self, env: &[(&str, &str)]) -> ServerProcess {
        let mut cmd = Command::new(crate::support::bin("vigosrv"));
        cmd.arg("--config").arg(self.dir.config());
        cmd.args(["--log-level", "debug"]);
        for (key, value) in env {
            cmd.env(key, value);
        }
        let mut server = ServerProcess::from_command(&mut cmd);
        server.wait_healthy(self.dir.port, &self.dir.ca_file());
        server
    }

    /// Enrolls db1 with a token and converges it once.
    fn enroll(&mut self) {
        let token = cli_ok(&self.dir, &["envoys", "token"]);
        self.db1 = EnvoyHost::new(&self.dir, DB1, Some(token.trim()));
        let run = self.db1.run_once();
        assert!(run.status.success(), "{}", all_output(&run));
        assert_eq!(self.count("restarts"), 1);
        assert_eq!(self.count("password-runs"), 1);
    }

    fn count(&self, name: &str) -> usize {
        std::fs::read_to_string(self.out.join(format!("{name}.log")))
            .map(|text| text.lines().count())
            .unwrap_or(0)
    }

    fn db_conf(&self) -> String {
        std::fs::read_to_string(self.out.join("db.conf")).unwrap_or_default()
    }

    fn set_password(&self, value: &str) {
        let out = self
            .dir
            .cli_with_stdin(&["secrets", "set", DB_PASSWORD, "-"], value.as_bytes());
        assert!(out.status.success(), "{}", all_output(&out));
    }

    /// The envoy's certificate and key, as `vigoenvoy` stored them.
    fn db1_identity(&self) -> CertifiedKey {
        let data = self.db1.root.join("data");
        CertifiedKey {
            cert_pem: std::fs::read_to_string(data.join("envoy.crt")).unwrap(),
            key_pem: SecretValue::new(std::fs::read_to_string(data.join("envoy.key")).unwrap()),
        }
    }

    /// Restarts the server without faults and checks that db1's next run
    /// writes `value` and runs the watching resources (`runs` in all so
    /// far) once, and that a further run changes nothing.
    fn converges_once_after_restart(&self, fault: &str, value: &str, runs: usize) {
        let server = self.start(&[]);
        let run = self.db1.run_once();
        assert!(
            run.status.success(),
            "{fault}: {}\nserver:\n{}",
            all_output(&run),
            server.log()
        );
        assert_eq!(self.db_conf(), format!("password = {value}\n"), "{fault}");
        assert_eq!(
            (self.count("restarts"), self.count("password-runs")),
            (runs, runs),
            "{fault}: the watching resources ran once\n{}",
            server.log()
        );
        // Nothing is left queued: another run changes nothing.
        let again = self.db1.run_once();
        assert!(again.status.success(), "{fault}: {}", all_output(&again));
        assert_eq!(
            (self.count("restarts"), self.count("password-runs")),
            (runs, runs),
            "{fault}: ran again: {}",
            all_output(&again)
        );
    }

    fn ca(&self) -> String {
        std::fs::read_to_string(self.dir.ca_file()).unwrap()
    }
}

/// db1: a file with the password that watches it and notifies a counted
/// "restart", and a counted exec that watches it too.
fn write_config_repo(dir: &TestDir, out: &Path) {
    dir.write("config/nodes.vgo", &format!("envoys:\n{DB_NODES}"));
    dir.write("config/modules/database.vgo", &database_module(out, ""));
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool, log: impl Fn() -> String) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "no {what}; log:\n{}", log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

// --- item 3: an interrupted rotation loses nothing ------------------------------------

/// The rotation's fault points, in the order the flow passes them.
const ROTATION_POINTS: &[&str] = &[
    "rotation.after_reload",
    "rotation.after_versions",
    "rotation.before_commit",
    "store.rotation.after_claim",
    "store.rotation.after_triggers",
    "store.rotation.after_force_push",
    "rotation.after_commit",
    "rotation.after_wake",
];

/// The full catalog answer's fault points.
const CHECKIN_POINTS: &[&str] = &[
    "store.checkin.after_delivered",
    "store.checkin.after_force_push",
    "store.checkin.after_deliveries",
];

#[test]
fn issue_12_an_interrupted_rotation_reaches_the_envoy_once_after_restart() {
    interrupted_rotations(false);
}

#[test]
fn issue_12_an_interrupted_rotation_reaches_the_envoy_once_after_restart_postgres() {
    interrupted_rotations(true);
}

fn interrupted_rotations(postgres: bool) {
    let Some(mut rig) = Rig::new(postgres) else {
        return;
    };
    let server = rig.start(&[]);
    rig.enroll();
    drop(server);
    let mut runs = 1;
    for point in ROTATION_POINTS {
        for action in ["hang", "fail"] {
            runs += 1;
            let value = format!("pw-{runs}-{action}-{point}");
            let fault = format!("{point}:{action}");
            let mut server = rig.start(&[("VIGO_FAULT", &fault)]);
            rig.set_password(&value);
            match action {
                "hang" => {
                    wait_for(
                        &format!("fault {fault}"),
                        || server.log().contains(&format!("point={point}")),
                        || server.log(),
                    );
                    server.kill_now();
                }
                _ => {
                    wait_for(
                        &format!("failed rotation at {point}"),
                        || server.log().contains("rotation failed"),
                        || server.log(),
                    );
                    assert!(server.terminate().success(), "{}", server.log());
                }
            }
            rig.converges_once_after_restart(&fault, &value, runs);
        }
    }

    // A catalog answer interrupted between its writes: the envoy gets
    // nothing (or an error), and after a restart gets the catalog once.
    for point in CHECKIN_POINTS {
        for action in ["hang", "fail"] {
            runs += 1;
            let value = format!("pw-{runs}-{action}-{point}");
            let fault = format!("{point}:{action}");
            let mut server = rig.start(&[("VIGO_FAULT", &fault)]);
            rig.set_password(&value);
            wait_for(
                "the rotation",
                || server.log().contains(ROTATION_DONE),
                || server.log(),
            );
            let mut envoy = rig
                .db1
                .command(&[], &["--once"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            wait_for(
                &format!("fault {fault}"),
                || server.log().contains(&format!("point={point}")),
                || server.log(),
            );
            if action == "hang" {
                server.kill_now();
            }
            let status = envoy.wait().unwrap();
            assert!(!status.success(), "{fault}: the envoy got no catalog");
            assert_eq!(
                (rig.count("restarts"), rig.count("password-runs")),
                (runs - 1, runs - 1)
            );
            drop(server);
            rig.converges_once_after_restart(&fault, &value, runs);
        }
    }
}

// --- item 5: connections ----------------------------------------------------------------

/// Opens a TCP connection to the server from `source` (any 127.0.0.0/8
/// address works on Linux), as a blocking std stream.
fn connect_from(
    runtime: &tokio::runtime::Runtime,
    source: Ipv4Addr,
    port: u16,
) -> std::io::Result<TcpStream> {
    runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(source.into(), 0))?;
        let stream = socket
            .connect(SocketAddr::from(([127, 0, 0, 1], port)))
            .await?;
        let stream = stream.into_std()?;
        stream.set_nonblocking(false)?;
        Ok(stream)
    })
}

fn small_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Whether the server closes `stream` (EOF or reset) before `deadline`;
/// whatever it sends first (a 408, a TLS alert) is read and ignored.
fn closed_by_server(stream: &TcpStream, within: Duration) -> bool {
    let mut reader = stream;
    closed_within(&mut reader, stream, within)
}

/// Whether reading `stream` (over the socket `sock`) meets its end (EOF, an
/// error other than a timeout) within `within`.
fn closed_within(stream: &mut impl Read, sock: &TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        sock.set_read_timeout(Some(
            left.clamp(Duration::from_millis(10), Duration::from_millis(200)),
        ))
        .unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

/// `GET /healthz` from `source` over TLS; the status.
fn healthz_from(source: Ipv4Addr, port: u16, ca: &str) -> Result<u16, String> {
    let tls = vigo_pki::client_tls_config(ca, None).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(Arc::unwrap_or_clone(tls))
            .local_address(std::net::IpAddr::V4(source))
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        let response = client
            .get(format!("https://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        Ok(response.status().as_u16())
    })
}

#[test]
fn issue_12_idle_connections_from_one_address_do_not_starve_healthz() {
    let dir = TestDir::new();
    cli_ok(&dir, &["secrets", "bootstrap"]);
    // A file limit of 256, and handshakes that may take a minute: the
    // flood below stays open for the whole test.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -n 256 && exec \"$0\" --config \"$1\"")
        .arg(crate::support::bin("vigosrv"))
        .arg(dir.config())
        .env("VIGO_TEST_LISTENER", "handshake_ms=60000");
    let mut server = ServerProcess::from_command(&mut cmd);
    server.wait_healthy(dir.port, &dir.ca_file());
    let ca = std::fs::read_to_string(dir.ca_file()).unwrap();

    let local = Ipv4Addr::new(127, 0, 0, 1);
    let runtime = small_runtime();
    let flood: Vec<TcpStream> = (0..400)
        .filter_map(|_| connect_from(&runtime, local, dir.port).ok())
        .collect();
    assert!(flood.len() > 300, "only {} connections opened", flood.len());
    // Another address is still served at once.
    let monitor = Ipv4Addr::new(127, 0, 0, 2);
    let status = healthz_from(monitor, dir.port, &ca);
    assert_eq!(status, Ok(200), "{}", server.log());

    // Beyond its cap the flooding address is refused at once.
    let refused = flood
        .iter()
        .rev()
        .take(100)
        .filter(|s| closed_by_server(s, Duration::from_millis(200)))
        .count();
    assert_eq!(refused, 100, "{}", server.log());

    let log = server.log();
    assert!(!log.contains("Too many open files"), "{log}");
    let warnings = log
        .matches("too many connections without a client certificate")
        .count();
    assert!((1..=2).contains(&warnings), "rate-limited warnings: {log}");
    drop(flood);
}

/// Behind a TCP load balancer every envoy comes from its address:
/// `connections.max_per_address` raises the cap for it.
#[test]
fn issue_14_connections_max_per_address_raises_the_per_address_cap() {
    let dir = TestDir::with_config_extra("connections:\n  max_per_address: 100\n");
    cli_ok(&dir, &["secrets", "bootstrap"]);
    let mut cmd = Command::new(crate::support::bin("vigosrv"));
    cmd.arg("--config")
        .arg(dir.config())
        .env("VIGO_TEST_LISTENER", "handshake_ms=60000");
    let mut server = ServerProcess::from_command(&mut cmd);
    server.wait_healthy(dir.port, &dir.ca_file());

    let local = Ipv4Addr::new(127, 0, 0, 1);
    let runtime = small_runtime();
    let flood: Vec<TcpStream> = (0..130)
        .filter_map(|_| connect_from(&runtime, local, dir.port).ok())
        .collect();
    assert_eq!(flood.len(), 130);
    // Past the default of 64, still open; past 100, closed at once.
    let kept = flood[64..70]
        .iter()
        .filter(|s| !closed_by_server(s, Duration::from_millis(200)))
        .count();
    assert_eq!(kept, 6, "{}", server.log());
    let refused = flood[110..]
        .iter()
        .filter(|s| closed_by_server(s, Duration::from_millis(200)))
        .count();
    assert_eq!(refused, 20, "{}", server.log());
    drop(flood);
}

#[test]
fn issue_12_the_global_connection_cap_refuses_cleanly() {
    let dir = TestDir::new();
    cli_ok(&dir, &["secrets", "bootstrap"]);
    let mut cmd = Command::new(crate::support::bin("vigosrv"));
    cmd.arg("--config").arg(dir.config()).env(
        "VIGO_TEST_LISTENER",
        "max_connections=20,max_per_address=1000,handshake_ms=60000",
    );
    let mut server = ServerProcess::from_command(&mut cmd);
    server.wait_healthy(dir.port, &dir.ca_file());
    let ca = std::fs::read_to_string(dir.ca_file()).unwrap();

    let runtime = small_runtime();
    let held: Vec<TcpStream> = (0..40u8)
        .map(|i| connect_from(&runtime, Ipv4Addr::new(127, 0, 1, i + 1), dir.port).unwrap())
        .collect();
    let closed = held
        .iter()
        .filter(|s| closed_by_server(s, Duration::from_millis(500)))
        .count();
    // 20 held, the rest refused (one more when the server has not yet
    // seen the health check of the start close).
    assert!(
        (20..=21).contains(&closed),
        "{closed} closed:\n{}",
        server.log()
    );
    let log = server.log();
    let warnings = log
        .matches("the server's connection limit is reached")
        .count();
    assert!((1..=2).contains(&warnings), "{log}");

    // Once the held ones go, the server answers again.
    drop(held);
    wait_for(
        "healthz after the flood",
        || healthz_from(Ipv4Addr::new(127, 0, 0, 3), dir.port, &ca) == Ok(200),
        || server.log(),
    );
}

/// A TLS client connection over `tcp` trusting the test's CA.
fn tls_client(
    ca: &str,
    identity: Option<&CertifiedKey>,
    tcp: TcpStream,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let config = vigo_pki::client_tls_config(ca, identity).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(config, name).unwrap();
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).unwrap();
    }
    stream
}

/// Whether the server ends the TLS stream (close, EOF, reset) within `within`.
fn tls_closed(
    stream: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    within: Duration,
) -> bool {
    // A second handle on the same socket: its read timeout is the socket's.
    let sock = stream.sock.try_clone().unwrap();
    closed_within(stream, &sock, within)
}

#[test]
fn issue_12_idle_and_half_sent_connections_are_closed_but_held_waits_are_not() {
    let Some(mut rig) = Rig::new(false) else {
        return;
    };
    let limits = "handshake_ms=1000,header_ms=1000,idle_ms=1000,request_ms=2000";
    let server = rig.start(&[("VIGO_TEST_LISTENER", limits)]);
    rig.enroll();
    let ca = rig.ca();
    let port = rig.dir.port;
    let within = Duration::from_secs(30);
    let open = || TcpStream::connect(("127.0.0.1", port)).unwrap();

    // No TLS at all.
    let raw = open();
    assert!(closed_by_server(&raw, within), "{}", server.log());
    // TLS, then nothing.
    let mut idle = tls_client(&ca, None, open());
    assert!(tls_closed(&mut idle, within), "idle after the handshake");
    // Half a request's headers.
    let mut half = tls_client(&ca, None, open());
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        .unwrap();
    half.flush().unwrap();
    assert!(tls_closed(&mut half, within), "half-sent headers");
    // A body that never completes.
    let mut slow = tls_client(&ca, None, open());
    slow.write_all(
        b"POST /v1/enroll HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"name\"",
    )
    .unwrap();
    slow.flush().unwrap();
    assert!(tls_closed(&mut slow, within), "slow body");
    // Kept alive after an answer.
    let mut kept = tls_client(&ca, None, open());
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    kept.flush().unwrap();
    let mut first = [0u8; 12];
    kept.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    assert!(tls_closed(&mut kept, within), "kept alive after an answer");

    // An envoy's held wait outlives the idle limit and is answered when
    // the secret rotates.
    let identity = rig.db1_identity();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tls = vigo_pki::client_tls_config(&ca, Some(&identity)).unwrap();
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(Arc::unwrap_or_clone(tls))
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let wait = runtime.spawn(async move {
        let response = client
            .get(format!("https://localhost:{port}/v1/wait"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((status, body))
    });
    // Well past the idle limit.
    std::thread::sleep(Duration::from_secs(3));
    assert!(!wait.is_finished(), "the wait ended early");
    rig.set_password("rotated-during-the-wait");
    let answer = runtime.block_on(wait).unwrap();
    assert_eq!(
        answer,
        Ok((200, json!({"checkin_now": true}))),
        "{}",
        server.log()
    );
}

// --- item 11: reports -------------------------------------------------------------------

fn report_body(name: &str, marker: &str) -> Value {
    json!({
        "fingerprint": marker,
        "report": {
            "envoy": name,
            "noop": false,
            "resources": [],
            "summary": {"total": 0, "changed": 0, "failed": 0, "skipped": 0, "unchanged": 0},
            "duration_ms": 1,
        }
    })
}

#[test]
fn issue_12_reports_are_capped_in_size_and_rate() {
    let Some(mut rig) = Rig::new(false) else {
        return;
    };
    let server = rig.start(&[]);
    rig.enroll();
    let ca = rig.ca();
    let port = rig.dir.port;
    let identity = rig.db1_identity();
    let dsn = SecretValue::new(
        cli_ok(&rig.dir, &["secrets", "get", "vigo/db/dsn"])
            .trim()
            .to_owned(),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let tls = vigo_pki::client_tls_config(&ca, Some(&identity)).unwrap();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(Arc::unwrap_or_clone(tls))
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let url = format!("https://localhost:{port}/v1/report");
        let post = |body: Vec<u8>| {
            let request = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body);
            async move {
                let response = request.send().await.expect("POST /v1/report");
                let status = response.status().as_u16();
                let retry = response
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_owned());
                let text = response.text().await.unwrap();
                (status, retry, text)
            }
        };
        let store = vigo_store::connect(&dsn).await.expect("open the store");
        let last_id = || async { store.last_report(DB1).await.unwrap().map_or(0, |r| r.id) };

        // Too large: refused, nothing stored.
        let before = last_id().await;
        let big = report_body(DB1, &"x".repeat(1024 * 1024 + 1));
        let (status, _, text) = post(serde_json::to_vec(&big).unwrap()).await;
        assert_eq!(status, 413, "{text}");
        assert_contains(&text, "payload_too_large");
        assert_eq!(last_id().await, before);
        // Just under the limit: stored.
        let fits = report_body(DB1, &"y".repeat(1024 * 1024 - 400));
        let (status, _, text) = post(serde_json::to_vec(&fits).unwrap()).await;
        assert_eq!(status, 204, "{text}");

        // Quickly one after another: a burst is stored, the rest refused.
        let started = Instant::now();
        let before = last_id().await;
        let (mut stored, mut limited) = (Vec::new(), 0);
        for i in 0..40 {
            let marker = format!("report-{i}");
            let (status, retry, text) =
                post(serde_json::to_vec(&report_body(DB1, &marker)).unwrap()).await;
            match status {
                204 => stored.push(marker),
                429 => {
                    limited += 1;
                    assert!(retry.is_some(), "429 without Retry-After");
                    assert_contains(&text, "too_many_requests");
                }
                other => panic!("unexpected {other}: {text}"),
            }
        }
        let allowed = vigo_server::REPORT_BURST as usize
            + (started.elapsed().as_secs() / vigo_server::REPORT_REFILL.as_secs()) as usize
            + 1;
        assert!(
            limited > 0 && stored.len() <= allowed,
            "{} stored, {limited} limited",
            stored.len()
        );
        let after = last_id().await;
        assert_eq!(
            after - before,
            stored.len() as i64,
            "only admitted reports are stored"
        );
        let last = store.last_report(DB1).await.unwrap().unwrap();
        assert_eq!(last.body["fingerprint"], json!(stored.last().unwrap()));
        store.close().await;
    });
    drop(server);
}

// --- item 19: metrics -------------------------------------------------------------------

#[test]
fn issue_12_queued_triggers_come_from_the_store_and_sizes_are_histograms() {
    let Some(mut rig) = Rig::new(false) else {
        return;
    };
    let server = rig.start(&[]);
    rig.enroll();
    let ca = rig.ca();
    let metrics_url = format!("https://127.0.0.1:{}/metrics", rig.dir.port);
    let (_, before) = crate::support::https_get(&metrics_url, &ca).unwrap();
    assert_contains(&before, "vigo_queued_triggers{envoy=\"db1.example.com\"} 0");
    // db1 is not running: only the store knows about its triggers.
    rig.set_password("while-db1-is-down");
    wait_for(
        "the rotation",
        || server.log().contains(ROTATION_DONE),
        || server.log(),
    );
    let (_, after) = crate::support::https_get(&metrics_url, &ca).unwrap();
    assert_contains(&after, "vigo_queued_triggers{envoy=\"db1.example.com\"} 2");
    assert_contains(&after, "# TYPE vigo_compile_seconds histogram");
    assert_contains(&after, "# TYPE vigo_catalog_bytes histogram");
    assert_contains(&after, "vigo_catalog_bytes_bucket{le=\"+Inf\"}");
    assert!(!after.contains("quantile="), "{after}");

    // Applied: the gauge drops back.
    let run = rig.db1.run_once();
    assert!(run.status.success(), "{}", all_output(&run));
    let (_, applied) = crate::support::https_get(&metrics_url, &ca).unwrap();
    assert_contains(
        &applied,
        "vigo_queued_triggers{envoy=\"db1.example.com\"} 0",
    );
}
