//! Shared helpers for the end-to-end tests: a temporary folder per test with
//! a server config in it, free ports, the real binaries (`vigosrv`,
//! `vigocli`, `vigoenvoy`) run as child processes, and HTTPS calls that
//! trust only the exported CA certificate.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An upper bound for waiting on a child process, so a broken build fails
/// the test instead of hanging it. Not a performance expectation.
pub(crate) const PATIENCE: Duration = Duration::from_secs(90);

/// The secrets a first start (or `vigocli secrets bootstrap`) generates,
/// as docs/secrets.md "First start" lists them.
pub(crate) const SERVER_SECRETS: [&str; 7] = [
    "vigo/tls/ca_cert",
    "vigo/tls/ca_key",
    "vigo/tls/server_cert",
    "vigo/tls/server_key",
    "vigo/db/dsn",
    "vigo/server/admin_token",
    "vigo/server/hmac_key",
];

/// The path of one of the project's binaries.
pub(crate) fn bin(name: &str) -> PathBuf {
    PathBuf::from(match name {
        "vigosrv" => env!("CARGO_BIN_EXE_vigosrv"),
        "vigocli" => env!("CARGO_BIN_EXE_vigocli"),
        "vigoenvoy" => env!("CARGO_BIN_EXE_vigoenvoy"),
        other => panic!("no binary named {other}"),
    })
}

/// Whether `text` is an RFC 3339 UTC time as Vigo's log lines start with
/// (`2026-12-01T21:40:39.123456Z`).
pub(crate) fn is_log_timestamp(text: &str) -> bool {
    let pattern = b"dddd-dd-ddTdd:dd:dd.ddddddZ";
    text.len() == pattern.len()
        && text.bytes().zip(pattern).all(|(c, p)| match p {
            b'd' => c.is_ascii_digit(),
            other => c == *other,
        })
}

/// `log` without the timestamp that starts each text line, so tests can
/// match lines exactly.
pub(crate) fn strip_log_timestamps(log: &str) -> String {
    log.split_inclusive('\n')
        .map(|line| match line.split_once(' ') {
            Some((first, rest)) if is_log_timestamp(first) => rest,
            _ => line,
        })
        .collect()
}

/// A port nothing listens on right now (bound once, then released).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding an ephemeral port")
}

/// A temporary folder holding a server config whose data lives under
/// `<root>/data` and whose config repository is `<root>/config`. Removed
/// when dropped.
#[derive(Debug)]
pub(crate) struct TestDir {
    dir: tempfile::TempDir,
    /// The port written into `listen`.
    pub(crate) port: u16,
}

impl TestDir {
    /// A new folder with `vigosrv.yaml` listening on a free loopback port.
    pub(crate) fn new() -> Self {
        Self::with_config_extra("")
    }

    /// Like [`TestDir::new`], with `extra` YAML appended to the config.
    pub(crate) fn with_config_extra(extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("creating a temporary folder");
        let port = free_port();
        let this = Self { dir, port };
        this.write(
            "vigosrv.yaml",
            &format!(
                "listen: \"127.0.0.1:{port}\"\ndata_dir: data\nconfig_dir: config\ndatabase:\n  dsn: \"secret:vigo/db/dsn\"\n{extra}"
            ),
        );
        this
    }

    /// The folder.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `contents` to `rel` (parents created) and returns the path.
    pub(crate) fn write(&self, rel: &str, contents: &str) -> PathBuf {
        let file = self.path().join(rel);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).expect("creating a folder");
        }
        std::fs::write(&file, contents).expect("writing a file");
        file
    }

    /// Writes a config repository: `config/nodes.vgo` and
    /// `config/modules/NAME.vgo` for each module, every `{out}` in a
    /// module replaced by the folder `out` of this test (created), which
    /// is returned.
    pub(crate) fn write_repo(&self, nodes: &str, modules: &[(&str, &str)]) -> PathBuf {
        let out = self.path().join("out");
        std::fs::create_dir_all(&out).expect("creating the out folder");
        self.write("config/nodes.vgo", nodes);
        for (name, text) in modules {
            self.write(
                &format!("config/modules/{name}.vgo"),
                &text.replace("{out}", &out.display().to_string()),
            );
        }
        out
    }

    /// `vigosrv.yaml`.
    pub(crate) fn config(&self) -> PathBuf {
        self.path().join("vigosrv.yaml")
    }

    /// `data_dir`.
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.path().join("data")
    }

    /// The local backend's master key file.
    pub(crate) fn key_file(&self) -> PathBuf {
        self.data_dir().join("master.key")
    }

    /// The local backend's secrets folder.
    pub(crate) fn secrets_dir(&self) -> PathBuf {
        self.data_dir().join("secrets")
    }

    /// The file that holds secret `path` in the local backend.
    pub(crate) fn secret_file(&self, path: &str) -> PathBuf {
        self.secrets_dir().join(path)
    }

    /// The exported CA certificate.
    pub(crate) fn ca_file(&self) -> PathBuf {
        self.data_dir().join("ca.crt")
    }

    /// `vigocli --config <this config>`, ready for more arguments.
    pub(crate) fn vigocli(&self) -> Command {
        let mut cmd = Command::new(bin("vigocli"));
        cmd.arg("--config").arg(self.config());
        cmd
    }

    /// Runs `vigocli` with `args` and no stdin.
    pub(crate) fn cli(&self, args: &[&str]) -> Output {
        run(self.vigocli().args(args).stdin(Stdio::null()))
    }

    /// Runs `vigocli` with `args`, feeding `input` on stdin.
    pub(crate) fn cli_with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        run_with_stdin(self.vigocli().args(args), input)
    }

    /// Starts `vigosrv` on this folder's config and waits until it answers
    /// `/healthz`.
    pub(crate) fn start_server(&self, extra_args: &[&str]) -> ServerProcess {
        let mut server = ServerProcess::spawn(&self.config(), extra_args);
        server.wait_healthy(self.port, &self.ca_file());
        server
    }

    /// Every file under the folder with its bytes.
    pub(crate) fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        snapshot(self.path())
    }
}

/// Runs a command to completion, capturing its output.
pub(crate) fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("running a binary")
}

/// Runs a command with `input` on stdin.
pub(crate) fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning a binary");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(input).expect("writing stdin");
    drop(stdin);
    child.wait_with_output().expect("waiting for a binary")
}

/// stdout as text.
pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// stderr as text.
pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every regular file under `dir` (recursively) with its bytes.
pub(crate) fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => pending.push(path),
                Ok(t) if t.is_file() => {
                    if let Ok(bytes) = std::fs::read(&path) {
                        files.insert(path, bytes);
                    }
                }
                _ => {}
            }
        }
    }
    files
}

/// Whether `needle` occurs in `haystack`.
pub(crate) fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Runs `vigocli` with `args`, asserting success; returns stdout.
pub(crate) fn cli_ok(dir: &TestDir, args: &[&str]) -> String {
    let out = dir.cli(args);
    assert!(
        out.status.success(),
        "vigocli {args:?} failed:\n{}",
        all_output(&out)
    );
    stdout(&out)
}

/// stdout then stderr of a finished command.
pub(crate) fn all_output(out: &Output) -> String {
    format!("{}{}", stdout(out), stderr(out))
}

/// A managed host for `vigoenvoy`: `envoy.yaml` and a data folder under
/// `<test folder>/envoys/<name>`, talking to the test folder's server.
pub(crate) struct EnvoyHost {
    pub(crate) name: String,
    pub(crate) root: PathBuf,
    pub(crate) config: PathBuf,
}

impl EnvoyHost {
    /// Writes the envoy's config; with `token`, also a 0600 enrollment
    /// token file.
    pub(crate) fn new(dir: &TestDir, name: &str, token: Option<&str>) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let root = dir.path().join("envoys").join(name);
        std::fs::create_dir_all(&root).unwrap();
        let mut yaml = format!(
            "server: \"https://localhost:{}\"\nname: \"{name}\"\nca_cert: \"{}\"\ndata_dir: \"{}\"\n",
            dir.port,
            dir.ca_file().display(),
            root.join("data").display()
        );
        if let Some(token) = token {
            let file = root.join("enroll-token");
            std::fs::write(&file, format!("{token}\n")).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
            yaml.push_str(&format!("enroll_token_file: \"{}\"\n", file.display()));
        }
        let config = root.join("envoy.yaml");
        std::fs::write(&config, yaml).unwrap();
        Self {
            name: name.to_owned(),
            root,
            config,
        }
    }

    /// `vigoenvoy --config <config> <global_args> run <run_args>`, not started.
    pub(crate) fn command(&self, global_args: &[&str], run_args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("vigoenvoy"));
        cmd.arg("--config")
            .arg(&self.config)
            .args(global_args)
            .arg("run")
            .args(run_args)
            .stdin(Stdio::null());
        cmd
    }

    /// `vigoenvoy run --once`.
    pub(crate) fn run_once(&self) -> Output {
        self.run_once_with(&[])
    }

    /// `vigoenvoy <global_args> run --once`.
    pub(crate) fn run_once_with(&self, global_args: &[&str]) -> Output {
        run(&mut self.command(global_args, &["--once"]))
    }
}

/// A running `vigosrv`, killed when dropped. Its stderr (the log) is
/// collected in the background.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    child: Child,
    log: Arc<Mutex<Vec<u8>>>,
    status: Option<ExitStatus>,
}

impl ServerProcess {
    /// Starts `vigosrv --config <config> <extra_args>` without waiting.
    pub(crate) fn spawn(config: &Path, extra_args: &[&str]) -> Self {
        Self::from_command(
            Command::new(bin("vigosrv"))
                .arg("--config")
                .arg(config)
                .args(extra_args),
        )
    }

    /// Everything the server logged so far.
    pub(crate) fn log_bytes(&self) -> Vec<u8> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Everything the server logged so far, as text, without the
    /// timestamp that starts each line ([`strip_log_timestamps`]).
    pub(crate) fn log(&self) -> String {
        strip_log_timestamps(&String::from_utf8_lossy(&self.log_bytes()))
    }

    /// How many waits `envoy` has opened at this server so far (its
    /// `holding a wait` debug lines).
    pub(crate) fn waits_opened(&self, envoy: &str) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("holding a wait") && l.contains(envoy))
            .count()
    }

    /// Waits until `ca_file` exists and `GET https://127.0.0.1:<port>/healthz`
    /// answers `ok`. Panics with the log if the server exits first.
    pub(crate) fn wait_healthy(&mut self, port: u16, ca_file: &Path) {
        let deadline = Instant::now() + PATIENCE;
        let url = format!("https://127.0.0.1:{port}/healthz");
        loop {
            if let Some(status) = self.try_status() {
                panic!(
                    "vigosrv exited ({status}) before it was healthy; log:\n{}",
                    self.log()
                );
            }
            if let Ok(ca) = std::fs::read_to_string(ca_file)
                && let Ok((200, body)) = https_get(&url, &ca)
                && body == "ok"
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "vigosrv never became healthy; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the log contains `needle`; false if it never does.
    pub(crate) fn wait_for_log(&mut self, needle: &str) -> bool {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            if self.try_status().is_some() {
                // Give the reader thread a moment to drain the pipe.
                std::thread::sleep(Duration::from_millis(100));
                return self.log().contains(needle);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The exit status, if the process has ended.
    pub(crate) fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits for the process to exit by itself.
    pub(crate) fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.try_status() {
                // Let the reader thread drain what is left in the pipe.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "vigosrv did not exit; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the process (it keeps running unless the signal
    /// stops it).
    pub(crate) fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits i32"));
        nix::sys::signal::kill(pid, signal).expect("signalling vigosrv");
    }

    /// Sends SIGTERM and waits for the exit.
    pub(crate) fn terminate(&mut self) -> ExitStatus {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits i32"));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        self.wait_exit()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.try_status().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `GET url` over HTTPS trusting only `ca_pem`; the status and body text.
pub(crate) fn https_get(url: &str, ca_pem: &str) -> Result<(u16, String), String> {
    let tls = vigo_pki::client_tls_config(ca_pem, None).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(Arc::unwrap_or_clone(tls))
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        let response = client.get(url).send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|e| e.to_string())?;
        Ok((status, body))
    })
}

/// A small pseudo-random generator for tests (xorshift), seeded from the
/// clock; the seed is printed so a failure can be replayed.
#[derive(Debug)]
pub(crate) struct TestRng(u64);

impl TestRng {
    /// Seeded from the clock.
    pub(crate) fn from_clock() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64)
            | 1;
        eprintln!("TestRng seed {seed}");
        Self(seed)
    }

    /// The next number below `bound`.
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound.max(1)
    }

    /// A hex token of 16 random-looking characters.
    pub(crate) fn token(&mut self) -> String {
        format!("{:016x}", self.below(u64::MAX))
    }
}

/// The database a test over both backends runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Database {
    Sqlite,
    Postgres,
}

/// A prepared test folder: secrets bootstrapped, the database password
/// stored, the config repository written, the database chosen.
pub(crate) struct BackendEnv {
    pub(crate) dir: TestDir,
    pub(crate) postgres: Option<PgSchema>,
}

impl BackendEnv {
    /// Prepares a folder on `database` (storing `db_password` as
    /// `vigo/db/password` and writing the repository with `write_repo`),
    /// then runs `scenario`. Without a PostgreSQL server to use, the
    /// PostgreSQL variant returns at once, by the rule of
    /// `vigo_test_support::postgres_url`.
    pub(crate) fn prepare(
        database: Database,
        db_password: &str,
        write_repo: fn(&TestDir),
        scenario: fn(&BackendEnv),
    ) {
        let dir = TestDir::new();
        let out = dir.cli(&["secrets", "bootstrap"]);
        assert!(out.status.success(), "bootstrap: {}", stderr(&out));
        let postgres = match database {
            Database::Sqlite => None,
            Database::Postgres => {
                let Some(admin_url) = vigo_test_support::postgres_url() else {
                    return;
                };
                Some(PgSchema::create(&dir, admin_url))
            }
        };
        let out = dir.cli(&["secrets", "set", "vigo/db/password", db_password]);
        assert!(out.status.success(), "{}", stderr(&out));
        write_repo(&dir);
        scenario(&BackendEnv { dir, postgres });
    }

    /// Starts vigosrv and waits until it says which database it uses.
    pub(crate) fn start(&self) -> ServerProcess {
        let mut server = self.dir.start_server(&[]);
        let backend = if self.postgres.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        };
        assert!(
            server.wait_for_log(&format!("database ready backend={backend}")),
            "{}",
            server.log()
        );
        server
    }
}

/// A fresh schema of the `VIGO_TEST_POSTGRES` server, made the test
/// folder's database (its DSN stored as the `vigo/db/dsn` secret, as in
/// production); dropped afterwards.
pub(crate) struct PgSchema(vigo_test_support::PgSchema);

impl PgSchema {
    /// Creates the schema and stores the DSN that selects it.
    pub(crate) fn create(dir: &TestDir, admin_url: String) -> Self {
        let schema = vigo_test_support::PgSchema::create(&admin_url);
        let out = dir.cli_with_stdin(
            &["secrets", "set", "vigo/db/dsn", "-"],
            schema.dsn().as_bytes(),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        Self(schema)
    }

    /// The schema's name.
    pub(crate) fn name(&self) -> &str {
        self.0.name()
    }
}

impl ServerProcess {
    /// Starts a prepared `vigosrv` command (extra environment, a shell
    /// wrapper setting limits, ...) with its stderr collected, without
    /// waiting.
    pub(crate) fn from_command(cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning vigosrv");
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut pipe = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&buf[..n]);
            }
        });
        Self {
            child,
            log,
            status: None,
        }
    }

    /// SIGKILL, as a crash or the OOM killer would, and waits for the exit.
    pub(crate) fn kill_now(&mut self) {
        if self.try_status().is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }
}

/// Whether a `vigoenvoy run --once` found the host in sync: it printed only
/// the summary line, with nothing changed, failed or skipped (every run
/// checks every resource, docs/ARCHITECTURE.md "A check-in").
pub(crate) fn in_sync(output: &Output) -> bool {
    let text = stdout(output);
    text.lines().count() == 1 && text.contains(" resources: 0 changed, 0 failed, 0 skipped, ")
}

/// The `db*` envoys of the seed's example, as a `nodes.vgo` entry: role
/// `database` with the password as a secret reference.
pub(crate) const DB_NODES: &str = "  - match: \"db*.example.com\"\n    roles: [database]\n    vars:\n      db_password: \"secret:vigo/db/password\"\n";

/// A whole `nodes.vgo`: the `app*` envoys get role `app`, with the secret
/// `vigo/app/password` as `.Vars.password`.
pub(crate) const APP_NODES: &str = "envoys:\n  - match: \"app*.example.com\"\n    roles: [app]\n    vars:\n      password: \"secret:vigo/app/password\"\n";

/// The `web*` envoys of the seed's example, as a `nodes.vgo` entry.
pub(crate) const WEB_NODES: &str =
    "  - match: \"web*.example.com\"\n    roles: [web]\n    vars:\n      site_name: \"Example\"\n";

/// The seed's `database` module, writing under `out`: `pg-config` holds
/// the password, watches it and notifies `pg-restart` (an exec standing in
/// for a service, counting restarts in `restarts.log`); `set-db-password`
/// reads the password on stdin when it rotates, runs `before_count` (shell,
/// may be empty) and counts its runs in `password-runs.log`.
pub(crate) fn database_module(out: &Path, before_count: &str) -> String {
    let out = out.display();
    format!(
        r#"resources:
  - name: pg-config
    type: file
    target_path: {out}/db.conf
    content: |
      password = {{{{ .Vars.db_password }}}}
    watch_secret: ["vigo/db/password"]
    notify: [pg-restart]

  - name: pg-restart
    type: exec
    command: "echo restart >> {out}/restarts.log"
    when: changed

  - name: set-db-password
    type: exec
    command: "cat > /dev/null; {before_count}echo ran >> {out}/password-runs.log"
    stdin: "secret:vigo/db/password"
    watch_secret: ["vigo/db/password"]
    when: changed
"#
    )
}

/// A new test folder, bootstrapped (`vigocli secrets bootstrap`), with an
/// empty `out` folder for the files envoys write; returns both.
pub(crate) fn bootstrapped_with_out() -> (TestDir, PathBuf) {
    let dir = TestDir::new();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    cli_ok(&dir, &["secrets", "bootstrap"]);
    (dir, out)
}

/// `vigoenvoy apply` of the catalog in `folder/catalog.json` (written from
/// `catalog`), with `folder/data` as its data folder and no envoy config.
pub(crate) fn envoy_apply_command(
    folder: &vigo_test_support::Scratch,
    catalog: &serde_json::Value,
) -> Command {
    let file = folder.path("catalog.json");
    std::fs::write(&file, serde_json::to_string_pretty(catalog).unwrap()).unwrap();
    let mut command = Command::new(bin("vigoenvoy"));
    command
        .arg("--config")
        .arg(folder.path("no-envoy.yaml"))
        .arg("apply")
        .arg("--catalog")
        .arg(&file)
        .arg("--data-dir")
        .arg(folder.path("data"));
    command
}

/// Asserts that `text` holds `needle`, showing the whole text when not.
#[track_caller]
pub(crate) fn assert_contains(text: &str, needle: &str) {
    assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
}
