//! Helpers shared by Vigo's tests; a dev-dependency only, never linked into
//! a binary.
//!
//! It holds the one rule for PostgreSQL tests. They run against the server
//! named by `VIGO_TEST_POSTGRES`. Without it they skip, printing why —
//! unless `VIGO_REQUIRE_POSTGRES=1` (set by `.ci/run`), under which a
//! PostgreSQL test that cannot run fails instead, so a CI run cannot pass
//! green without ever reaching PostgreSQL.

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::OnceLock;
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

    use super::{POSTGRES_VAR, REQUIRE_VAR, host_and_port, postgres_url};

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
