//! Helpers shared by Vigo's tests; a dev-dependency only, never linked into
//! a binary.
//!
//! It holds the one rule for PostgreSQL tests. They run against the server
//! named by `VIGO_TEST_POSTGRES`. Without it they skip, printing why —
//! unless `VIGO_REQUIRE_POSTGRES=1` (set by `.ci/run`), under which a
//! PostgreSQL test that cannot run fails instead, so a CI run cannot pass
//! green without ever reaching PostgreSQL.
//!
//! [`PgSchema`] gives a test its own schema on that server (made and dropped
//! with `psql`), the one way every suite isolates its PostgreSQL data.

use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The variable naming the PostgreSQL server the tests use (an admin DSN;
/// each test makes its own schema in it).
pub const POSTGRES_VAR: &str = "VIGO_TEST_POSTGRES";

/// The variable that turns a skipped PostgreSQL test into a failure.
pub const REQUIRE_VAR: &str = "VIGO_REQUIRE_POSTGRES";

/// How long the reachability check waits for a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The DSN PostgreSQL tests should use, or `None` when they should skip
/// (the reason is printed).
///
/// # Panics
///
/// Under `VIGO_REQUIRE_POSTGRES=1` when `VIGO_TEST_POSTGRES` is unset or
/// empty; and whenever it is set but nothing accepts a TCP connection at its
/// host and port (a test asked to use a server must not pass without it).
pub fn postgres_url() -> Option<String> {
    let url = std::env::var(POSTGRES_VAR)
        .ok()
        .filter(|url| !url.trim().is_empty());
    let Some(url) = url else {
        skip_postgres(&format!("{POSTGRES_VAR} not set"));
        return None;
    };
    if let Err(problem) = reachable(&url) {
        panic!(
            "{POSTGRES_VAR} names a PostgreSQL server that is not reachable ({problem}): \
             start it, or unset {POSTGRES_VAR} to skip the PostgreSQL tests"
        );
    }
    Some(url)
}

/// Skips a PostgreSQL test for `reason`: prints `skipped: <reason>`, or
/// fails the test under `VIGO_REQUIRE_POSTGRES=1`. The caller returns
/// afterwards.
///
/// # Panics
///
/// Under `VIGO_REQUIRE_POSTGRES=1`.
pub fn skip_postgres(reason: &str) {
    if postgres_required() {
        panic!(
            "a PostgreSQL test cannot run ({reason}) and {REQUIRE_VAR}=1 forbids skipping it: \
             export {POSTGRES_VAR}=postgres://USER@HOST:PORT/DB, or unset {REQUIRE_VAR}"
        );
    }
    println!("skipped: {reason}");
}

/// Whether `VIGO_REQUIRE_POSTGRES=1` is in force.
///
/// # Panics
///
/// When the variable holds anything but `1`, `0` or nothing, so a typo
/// cannot quietly turn the requirement off.
pub fn postgres_required() -> bool {
    match std::env::var(REQUIRE_VAR).as_deref() {
        Ok("1") => true,
        Ok("" | "0") | Err(std::env::VarError::NotPresent) => false,
        Ok(other) => panic!("{REQUIRE_VAR} is {other:?}: set it to 1 (or 0, or unset it)"),
        Err(std::env::VarError::NotUnicode(_)) => {
            panic!("{REQUIRE_VAR} is not UTF-8: set it to 1 (or 0, or unset it)")
        }
    }
}

/// A fresh schema on the `VIGO_TEST_POSTGRES` server, dropped (with all it
/// holds) when this value is dropped.
#[derive(Debug)]
pub struct PgSchema {
    admin_url: String,
    name: String,
}

impl PgSchema {
    /// Creates a schema named `vigo_test_<pid>_<n>` (unique within the
    /// machine while the process runs) in the database of `admin_url`.
    ///
    /// # Panics
    ///
    /// When `psql` cannot create it.
    pub fn create(admin_url: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "vigo_test_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        psql(
            admin_url,
            &format!("DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"),
        );
        Self {
            admin_url: admin_url.to_owned(),
            name,
        }
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A DSN for the same server whose connections use only this schema.
    pub fn dsn(&self) -> String {
        let separator = if self.admin_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!(
            "{}{separator}options=-c%20search_path%3D{}",
            self.admin_url, self.name
        )
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        psql(
            &self.admin_url,
            &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
        );
    }
}

/// Runs SQL with `psql` against `url`, stopping at the first error.
///
/// # Panics
///
/// When `psql` cannot run or the SQL fails (its stderr is in the message).
pub fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .stdin(Stdio::null())
        .output()
        .expect("running psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether something accepts TCP connections at the host and port of
/// `url`, checked once per test process. The error names host and port
/// only: the DSN may hold a password.
fn reachable(url: &str) -> Result<(), String> {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    CHECKED.get_or_init(|| try_connect(url)).clone()
}

fn try_connect(url: &str) -> Result<(), String> {
    let Some((host, port)) = host_and_port(url) else {
        // A socket path or an unusual form: the connection itself will tell.
        return Ok(());
    };
    let addresses = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("{host}:{port} does not resolve: {e}"))?;
    let mut last = format!("{host}:{port} has no address");
    for address in addresses {
        match TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) {
            Ok(_) => return Ok(()),
            Err(e) => last = format!("{host}:{port}: {e}"),
        }
    }
    Err(last)
}

/// Host and port of a `postgres://[user[:password]@]host[:port][/db][?...]`
/// URL (port 5432 by default); `None` for a URL without a host (a Unix
/// socket), which the check cannot judge.
fn host_and_port(url: &str) -> Option<(String, u16)> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    if host_port.is_empty() {
        return None;
    }
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    let port = match port {
        Some(port) => port.parse().ok()?,
        None => 5432,
    };
    Some((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Output};

    use super::{POSTGRES_VAR, PgSchema, REQUIRE_VAR, host_and_port, postgres_url};

    /// Asks for the PostgreSQL DSN the way every PostgreSQL test does; run
    /// only as a child process of the tests below, with a chosen environment.
    #[test]
    #[ignore = "a probe run by the issue_13 tests in a child process"]
    fn probe() {
        if let Some(url) = postgres_url() {
            println!("would use {}", url.len());
        }
    }

    /// Runs [`probe`] in a child process with `VIGO_TEST_POSTGRES` and
    /// `VIGO_REQUIRE_POSTGRES` as given (`None`: unset).
    fn run_probe(postgres: Option<&str>, require: Option<&str>) -> Output {
        let mut cmd = Command::new(std::env::current_exe().expect("test binary path"));
        cmd.args([
            "--exact",
            "tests::probe",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ]);
        cmd.env_remove(POSTGRES_VAR).env_remove(REQUIRE_VAR);
        if let Some(value) = postgres {
            cmd.env(POSTGRES_VAR, value);
        }
        if let Some(value) = require {
            cmd.env(REQUIRE_VAR, value);
        }
        cmd.output().expect("running the probe")
    }

    fn text(out: &Output) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Whether schema `name` exists on the server of `url`.
    fn schema_exists(url: &str, name: &str) -> bool {
        let out = Command::new("psql")
            .arg(url)
            .args(["-tA", "-c"])
            .arg(format!(
                "SELECT count(*) FROM information_schema.schemata WHERE schema_name = '{name}'"
            ))
            .output()
            .expect("running psql");
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }

    #[test]
    fn issue_13_a_schema_is_private_to_its_test_and_dropped_after_it() {
        let Some(url) = postgres_url() else {
            return;
        };
        let first = PgSchema::create(&url);
        let second = PgSchema::create(&url);
        assert_ne!(first.name(), second.name());
        super::psql(&first.dsn(), "CREATE TABLE probe (id integer)");
        // The table went into the first schema, not the second.
        super::psql(&first.dsn(), "SELECT id FROM probe");
        let out = Command::new("psql")
            .arg(second.dsn())
            .args(["-c", "SELECT id FROM probe"])
            .output()
            .expect("running psql");
        assert!(!out.status.success(), "the second schema sees the table");
        let name = first.name().to_owned();
        assert!(schema_exists(&url, &name));
        drop(first);
        assert!(!schema_exists(&url, &name), "{name} was not dropped");
    }

    #[test]
    fn issue_13_without_a_server_a_postgres_test_skips_and_says_so() {
        for require in [None, Some("0"), Some("")] {
            let out = run_probe(None, require);
            let text = text(&out);
            assert!(out.status.success(), "{require:?}: {text}");
            assert!(
                text.contains("skipped: VIGO_TEST_POSTGRES not set"),
                "{text}"
            );
        }
    }

    #[test]
    fn issue_13_required_postgres_fails_instead_of_skipping() {
        for postgres in [None, Some(""), Some("  ")] {
            let out = run_probe(postgres, Some("1"));
            let text = text(&out);
            assert!(!out.status.success(), "{postgres:?}: {text}");
            assert!(
                text.contains("VIGO_REQUIRE_POSTGRES=1 forbids skipping it"),
                "{text}"
            );
        }
    }

    #[test]
    fn issue_13_an_unreachable_server_fails_and_hides_the_password() {
        // Port 1 on the loopback: nothing listens there.
        let dsn = "postgres://vigo:Canary-Pw-13@127.0.0.1:1/test";
        for require in [None, Some("1")] {
            let out = run_probe(Some(dsn), require);
            let text = text(&out);
            assert!(!out.status.success(), "{text}");
            assert!(text.contains("not reachable (127.0.0.1:1:"), "{text}");
            assert!(!text.contains("Canary"), "{text}");
        }
    }

    #[test]
    fn issue_13_a_misspelt_requirement_is_an_error() {
        let out = run_probe(None, Some("yes"));
        let text = text(&out);
        assert!(!out.status.success(), "{text}");
        assert!(text.contains("VIGO_REQUIRE_POSTGRES is \"yes\""), "{text}");
    }

    #[test]
    fn host_and_port_of_the_usual_dsns() {
        let cases = [
            (
                "postgres://postgres@127.0.0.1:5432/test",
                Some(("127.0.0.1", 5432)),
            ),
            (
                "postgres://u:p%40ss@db.example:6543/x?sslmode=disable",
                Some(("db.example", 6543)),
            ),
            ("postgresql://db.example/x", Some(("db.example", 5432))),
            ("postgres://u@[::1]:5433/x", Some(("::1", 5433))),
            ("postgres://u@[::1]/x", Some(("::1", 5432))),
            ("postgres:///x?host=/run/postgresql", None),
            ("mysql://h/x", None),
            ("postgres://u@h:notaport/x", None),
        ];
        for (url, expected) in cases {
            let got = host_and_port(url);
            let got = got.as_ref().map(|(h, p)| (h.as_str(), *p));
            assert_eq!(got, expected, "{url}");
        }
    }
}

/// A temporary folder a test lays out its files in (catalogs, data folders,
/// targets); removed when dropped.
#[derive(Debug)]
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    /// A new, empty temporary folder.
    ///
    /// # Panics
    ///
    /// When the temporary folder cannot be made.
    #[must_use]
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("make a temporary folder"),
        }
    }

    /// `name` inside the folder.
    #[must_use]
    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// `name` inside the folder, as a string (for catalogs).
    ///
    /// # Panics
    ///
    /// When the temporary folder's path is not UTF-8.
    #[must_use]
    pub fn p(&self, name: &str) -> String {
        self.path(name)
            .to_str()
            .expect("temporary paths are UTF-8")
            .to_owned()
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether process `pid` is gone (or a zombie nobody has reaped yet: in a
/// container the init process may not reap orphans).
#[must_use]
pub fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// Declares `struct $name(Scratch)` that derefs to [`Scratch`] (so it has
/// `path` and `p`) with a `new()`, for a test's own fixture methods.
#[macro_export]
macro_rules! scratch_fixture {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        struct $name($crate::Scratch);

        impl ::std::ops::Deref for $name {
            type Target = $crate::Scratch;

            fn deref(&self) -> &$crate::Scratch {
                &self.0
            }
        }

        impl $name {
            fn new() -> Self {
                Self($crate::Scratch::new())
            }
        }
    };
}

/// The permission bits of `path` (file type masked off, set-id and sticky
/// bits kept), to compare with an octal mode such as `0o600`.
///
/// # Panics
///
/// When `path` cannot be read.
#[must_use]
pub fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("reading the mode of {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Every file below `dir`, in the order the folders list them.
///
/// # Panics
///
/// When a folder cannot be read.
#[must_use]
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read a test folder") {
        let path = entry.expect("read a test folder entry").path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Writes a throwaway CA and a server certificate for `localhost` and
/// 127.0.0.1 into `dir`, as `ca.pem`, `server.pem` and `server.key`, for a
/// TLS service on loopback (the isopass stand-in, mostly). Returns the CA
/// certificate's PEM, for clients that trust it in memory.
///
/// # Panics
///
/// When the certificates cannot be made or the files cannot be written.
pub fn write_loopback_tls(dir: &std::path::Path, ca_name: &str) -> String {
    let ca = vigo_pki::generate_ca(ca_name).expect("generate a test CA");
    let server = vigo_pki::issue_server_cert(
        &ca,
        &["localhost".to_owned()],
        &[std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)],
    )
    .expect("issue a loopback server certificate");
    std::fs::write(dir.join("ca.pem"), &ca.cert_pem).expect("write ca.pem");
    std::fs::write(dir.join("server.pem"), &server.cert_pem).expect("write server.pem");
    std::fs::write(dir.join("server.key"), server.key_pem.expose_secret())
        .expect("write server.key");
    ca.cert_pem
}
