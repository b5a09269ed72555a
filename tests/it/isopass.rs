//! `vigosrv` and `vigocli` with the isopass backend (docs/secrets.md "The isopass backend",
//! "Fail-fast", "Rotation"), end to end against the isopass stand-in over TLS: fail-fast start-up
//! (isopass down, wrong token, unsafe token file, missing secrets), `vigocli secrets
//! bootstrap|set|get|list`, the token never reaching any output, and the secret watchers (isopass
//! poller, local file watcher).

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::{
    EnvoyHost, SERVER_SECRETS, ServerProcess, TestDir, TestRng, all_output, assert_contains,
    cli_ok, free_port, stderr, stdout,
};
use isopass_standin::{Handle, StandinOptions, Transport};
use vigo_secrets::{IsopassConfig, IsopassProvider, SecretPath, SecretProvider, SecretValue};
use zeroize::Zeroizing;

/// A stand-in isopass over TLS on a fixed loopback port, with its CA, token
/// file and data file in a temporary folder. The stand-in runs on its own
/// tokio runtime, so the tests can drive the binaries synchronously.
pub(crate) struct Isopass {
    runtime: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    port: u16,
    pub(crate) token: String,
    handle: Option<Handle>,
}

impl Isopass {
    /// Everything set up, nothing listening yet.
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        vigo_test_support::write_loopback_tls(dir.path(), "isopass test CA");
        let token = format!("tok-canary-{}", TestRng::from_clock().token());
        write_private(&dir.path().join("token"), &format!("{token}\n"));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        Self {
            runtime,
            dir,
            port: free_port(),
            token,
            handle: None,
        }
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts (or restarts) the stand-in on its port with its data file.
    pub(crate) fn start(&mut self) {
        assert!(self.handle.is_none());
        let options = StandinOptions {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)),
            token: Zeroizing::new(self.token.clone()),
            transport: Transport::Tls {
                cert_file: self.file("server.pem"),
                key_file: self.file("server.key"),
            },
            data_file: Some(self.file("standin.json")),
        };
        self.handle = Some(
            self.runtime
                .block_on(isopass_standin::spawn(options))
                .unwrap(),
        );
    }

    /// Stops it; the port is closed when this returns.
    fn stop(&mut self) {
        if let Some(handle) = self.handle.take() {
            self.runtime.block_on(handle.shutdown());
        }
    }

    /// The `secrets:` section of a server config that uses this isopass
    /// (token file given), plus a 1 s poll interval.
    pub(crate) fn config(&self, token_file: &Path) -> String {
        format!(
            "secrets:\n  backend: isopass\n  url: \"https://127.0.0.1:{}\"\n  token_file: \"{}\"\n  ca_file: \"{}\"\nwatcher:\n  poll_interval: \"1s\"\n",
            self.port,
            token_file.display(),
            self.file("ca.pem").display()
        )
    }

    /// A client of this isopass, as a second writer beside Vigo.
    pub(crate) fn client(&self) -> IsopassProvider {
        IsopassProvider::new(IsopassConfig {
            url: format!("https://127.0.0.1:{}", self.port),
            token_file: self.file("token"),
            ca_file: Some(self.file("ca.pem")),
        })
        .unwrap()
    }

    /// Stores `value` at `path` straight into isopass; returns the version.
    fn put(&self, path: &str, value: &str) -> u64 {
        let client = self.client();
        self.runtime
            .block_on(client.set(&SecretPath::parse(path).unwrap(), &SecretValue::from(value)))
            .unwrap()
    }

    /// Removes `path` from isopass.
    fn remove(&self, path: &str) {
        let client = self.client();
        self.runtime
            .block_on(client.delete(&SecretPath::parse(path).unwrap()))
            .unwrap();
    }
}

impl Drop for Isopass {
    fn drop(&mut self) {
        self.stop();
    }
}

fn write_private(file: &Path, content: &str) {
    std::fs::write(file, content).unwrap();
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A server folder configured for `isopass` with its own token file.
fn server_dir(isopass: &Isopass) -> TestDir {
    TestDir::with_config_extra(&isopass.config(&isopass.file("token")))
}

/// Starts `vigosrv`, expects it to fail, and returns its log.
fn failed_start(dir: &TestDir) -> String {
    let mut server = ServerProcess::spawn(&dir.config(), &["--log-level", "trace"]);
    let status = server.wait_exit();
    assert!(!status.success(), "vigosrv started; log:\n{}", server.log());
    server.log()
}

fn assert_line(log: &str, expected: &str) {
    assert!(
        log.lines().any(|l| l.ends_with(expected)),
        "missing {expected:?} in:\n{log}"
    );
}

#[test]
fn an_unreachable_isopass_stops_the_start() {
    let isopass = Isopass::new();
    let dir = server_dir(&isopass);
    let log = failed_start(&dir);
    assert_line(
        &log,
        "ERROR server failed error=\"loading server config: resolving secret 'vigo/db/dsn': isopass unreachable: connection refused\"",
    );
    assert!(!log.contains(&isopass.token));
    assert!(
        !dir.data_dir().exists(),
        "nothing is generated or written with isopass"
    );
}

#[test]
fn a_wrong_token_stops_the_start() {
    let mut isopass = Isopass::new();
    isopass.start();
    let wrong = format!("tok-wrong-{}", TestRng::from_clock().token());
    write_private(&isopass.file("wrong-token"), &wrong);
    let dir = TestDir::with_config_extra(&isopass.config(&isopass.file("wrong-token")));
    let log = failed_start(&dir);
    assert_line(
        &log,
        "ERROR server failed error=\"loading server config: resolving secret 'vigo/db/dsn': isopass: unauthorized (check the token in token_file)\"",
    );
    assert!(!log.contains(&wrong) && !log.contains(&isopass.token));
}

#[test]
fn a_group_readable_token_file_is_refused_with_a_chmod_hint() {
    let mut isopass = Isopass::new();
    isopass.start();
    let token_file = isopass.file("token");
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let dir = server_dir(&isopass);
    let log = failed_start(&dir);
    let error = log
        .lines()
        .find(|l| l.contains("ERROR server failed"))
        .unwrap_or_else(|| panic!("no error line in:\n{log}"));
    assert_contains(error, "mode 0644");
    assert!(
        error.contains(&format!("chmod 600 {}", token_file.display())),
        "{error}"
    );
    assert!(!log.contains(&isopass.token));
    assert_eq!(isopass.handle.as_ref().unwrap().requests_seen(), 0);

    // The CLI refuses it the same way.
    let out = dir.cli(&["secrets", "list"]);
    assert!(!out.status.success());
    assert_contains(&stderr(&out), "chmod 600");
}

/// The one line a start that misses `path` in isopass ends with.
fn not_found_line(path: &str) -> String {
    format!(
        "ERROR server failed error=\"loading server config: resolving secret '{path}': isopass: not found\""
    )
}

#[test]
fn missing_secrets_stop_the_start_then_bootstrap_makes_it_serve() {
    let mut isopass = Isopass::new();
    isopass.start();
    let dir = server_dir(&isopass);
    assert_line(&failed_start(&dir), &not_found_line("vigo/db/dsn"));

    let created = cli_ok(&dir, &["secrets", "bootstrap"]);
    for path in SERVER_SECRETS {
        assert_contains(&created, &format!("Secret \"{path}\" created."));
    }
    let again = dir.cli(&["secrets", "bootstrap"]);
    assert_eq!(
        stdout(&again),
        "Nothing to create: every generated secret exists.\n"
    );

    // TLS material is fetched from isopass too, and named when missing;
    // bootstrap then issues a new server certificate from the stored CA.
    isopass.remove("vigo/tls/server_key");
    isopass.remove("vigo/tls/server_cert");
    assert_line(&failed_start(&dir), &not_found_line("vigo/tls/server_cert"));
    cli_ok(&dir, &["secrets", "bootstrap"]);

    let mut server = dir.start_server(&["--log-level", "trace"]);
    assert!(server.terminate().success(), "{}", server.log());
    assert!(!server.log().contains(&isopass.token));
}

#[test]
fn the_cli_sets_gets_and_lists_through_isopass_and_the_token_never_shows() {
    let mut isopass = Isopass::new();
    isopass.start();
    let dir = server_dir(&isopass);
    let mut outputs = Vec::new();
    let out = dir.cli(&["--log-level", "trace", "secrets", "bootstrap"]);
    assert!(out.status.success(), "{}", stderr(&out));
    outputs.push(out);

    // Server down: stored, and said so.
    let out = dir.cli_with_stdin(
        &[
            "--log-level",
            "trace",
            "secrets",
            "set",
            "app/grafana/admin-password",
            "-",
        ],
        b"first-value\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "Secret \"app/grafana/admin-password\" stored.\nServer not reachable — the change will be applied when it next starts.\n"
    );
    outputs.push(out);

    let mut server = dir.start_server(&["--log-level", "trace"]);
    let out = dir.cli_with_stdin(
        &[
            "--log-level",
            "trace",
            "secrets",
            "set",
            "app/grafana/admin-password",
            "-",
        ],
        b"second-value\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "Secret \"app/grafana/admin-password\" stored.\nServer notified — affected envoys will apply on next check-in.\n"
    );
    outputs.push(out);

    let out = dir.cli(&[
        "--log-level",
        "trace",
        "secrets",
        "get",
        "app/grafana/admin-password",
    ]);
    assert_eq!(stdout(&out), "second-value\n", "{}", stderr(&out));
    outputs.push(out);
    let out = dir.cli(&["--log-level", "trace", "secrets", "list", "app"]);
    assert_eq!(
        stdout(&out),
        "app/grafana/admin-password  2\n",
        "{}",
        stderr(&out)
    );
    outputs.push(out);
    let out = dir.cli(&["--log-level", "trace", "secrets", "get", "app/none"]);
    assert!(!out.status.success());
    assert_contains(&stderr(&out), "isopass: not found");
    outputs.push(out);

    assert!(server.terminate().success(), "{}", server.log());
    let token = isopass.token.as_bytes();
    assert!(!crate::support::contains_bytes(&server.log_bytes(), token));
    for out in &outputs {
        assert!(!crate::support::contains_bytes(&out.stdout, token));
        assert!(!crate::support::contains_bytes(&out.stderr, token));
    }
    for (file, bytes) in dir.snapshot() {
        assert!(
            !crate::support::contains_bytes(&bytes, token),
            "{} holds the token",
            file.display()
        );
    }
}

/// A config repository in which `web*` envoys write `app/pw` to
/// `out/web.pw`, watching it with an exec that counts its runs in
/// `out/web.runs`, and `db*` envoys write `out/plain.txt`, no secret.
fn write_repo(dir: &TestDir) {
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let out = out.display();
    dir.write(
        "config/nodes.vgo",
        "envoys:\n  - match: \"web*\"\n    roles: [web]\n    vars:\n      pw: \"secret:app/pw\"\n  - match: \"db*\"\n    roles: [plain]\n",
    );
    dir.write(
        "config/modules/web.vgo",
        &format!(
            "resources:\n  - name: pw-file\n    type: file\n    target_path: {out}/web.pw\n    content: \"{{{{ .Vars.pw }}}}\"\n    watch_secret: [app/pw]\n  - name: pw-reload\n    type: exec\n    command: \"echo ran >> {out}/web.runs\"\n    watch_secret: [app/pw]\n    when: changed\n"
        ),
    );
    dir.write(
        "config/modules/plain.vgo",
        &format!(
            "resources:\n  - name: plain-file\n    type: file\n    target_path: {out}/plain.txt\n    content: \"plain\"\n"
        ),
    );
}

/// `web1.example.com` (uses `app/pw`) and `db1.example.com` (does not),
/// enrolled with tokens and converged once.
fn converged_envoys(dir: &TestDir) -> (EnvoyHost, EnvoyHost) {
    let enroll = |name: &str| {
        let token = cli_ok(dir, &["envoys", "token"]);
        let host = EnvoyHost::new(dir, name, Some(token.trim()));
        let run = host.run_once();
        assert!(run.status.success(), "{name}: {}", all_output(&run));
        host
    };
    (enroll("web1.example.com"), enroll("db1.example.com"))
}

/// What `web1` holds: the file's value and how often its exec ran.
fn web1_state(dir: &TestDir) -> (String, usize) {
    let out = dir.path().join("out");
    let value = std::fs::read_to_string(out.join("web.pw")).unwrap();
    let runs = std::fs::read_to_string(out.join("web.runs"))
        .map(|t| t.lines().count())
        .unwrap_or(0);
    (value, runs)
}

/// Runs the envoy once and says whether it found nothing to change.
fn unchanged_run(host: &EnvoyHost) -> bool {
    let run = host.run_once();
    assert!(run.status.success(), "{}: {}", host.name, all_output(&run));
    crate::support::in_sync(&run)
}

#[test]
fn the_poller_notices_a_change_made_straight_in_isopass_and_survives_an_outage() {
    let mut isopass = Isopass::new();
    isopass.start();
    let dir = server_dir(&isopass);
    write_repo(&dir);
    assert!(dir.cli(&["secrets", "bootstrap"]).status.success());
    isopass.put("app/pw", "value-one");
    let mut server = dir.start_server(&["--log-level", "trace"]);
    let (web1, db1) = converged_envoys(&dir);
    assert_eq!(web1_state(&dir), ("value-one".to_owned(), 1));

    // Changed straight in isopass: only the envoy that references it
    // re-applies, and its watching exec runs once more.
    isopass.put("app/pw", "value-two");
    assert!(
        server.wait_for_log("rotation queued paths=app/pw envoys=1 triggers=2"),
        "{}",
        server.log()
    );
    assert!(!unchanged_run(&web1));
    assert_eq!(web1_state(&dir), ("value-two".to_owned(), 2));
    assert!(unchanged_run(&db1));
    assert!(unchanged_run(&web1));

    // isopass down: errors in the log, envoys still served.
    isopass.stop();
    assert!(
        server.wait_for_log("ERROR secret poll failed"),
        "{}",
        server.log()
    );
    assert!(unchanged_run(&web1));
    assert!(unchanged_run(&db1));
    assert_eq!(web1_state(&dir), ("value-two".to_owned(), 2));

    // Back: rotation works again.
    isopass.start();
    assert!(
        server.wait_for_log("INFO secret poll recovered"),
        "{}",
        server.log()
    );
    let before = server.log().matches("rotation queued paths=app/pw").count();
    isopass.put("app/pw", "value-three");
    let deadline = std::time::Instant::now() + crate::support::PATIENCE;
    while server.log().matches("rotation queued paths=app/pw").count() == before {
        assert!(std::time::Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!unchanged_run(&web1));
    assert_eq!(web1_state(&dir), ("value-three".to_owned(), 3));
    assert!(unchanged_run(&db1));

    assert!(server.terminate().success());
    let log = server.log();
    for secret in [
        "value-one",
        "value-two",
        "value-three",
        isopass.token.as_str(),
    ] {
        assert!(!log.contains(secret), "{secret} leaked:\n{log}");
    }
}

#[test]
fn the_local_file_watcher_notices_a_secret_written_by_another_process() {
    let dir = TestDir::new();
    write_repo(&dir);
    // The key and the server's secrets; then the repository's secret.
    assert!(dir.cli(&["secrets", "bootstrap"]).status.success());
    let other = vigo_secrets::LocalProvider::open(&dir.key_file(), &dir.secrets_dir()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pw = SecretPath::parse("app/pw").unwrap();
    runtime
        .block_on(other.set(&pw, &SecretValue::from("local-one")))
        .unwrap();
    let mut server = dir.start_server(&["--log-level", "trace"]);
    let (web1, db1) = converged_envoys(&dir);
    assert_eq!(web1_state(&dir), ("local-one".to_owned(), 1));

    // Written by another process (no notification reaches the server).
    runtime
        .block_on(other.set(&pw, &SecretValue::from("local-two")))
        .unwrap();
    assert!(
        server.wait_for_log("rotation queued paths=app/pw envoys=1 triggers=2"),
        "{}",
        server.log()
    );
    assert!(!unchanged_run(&web1));
    assert_eq!(web1_state(&dir), ("local-two".to_owned(), 2));
    assert!(unchanged_run(&db1));
    assert!(server.terminate().success());
    let log = server.log();
    assert!(
        !log.contains("local-one") && !log.contains("local-two"),
        "{log}"
    );
}
