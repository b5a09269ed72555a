//! Golden output of `vigocli` and `vigoenvoy`: the whole stdout and stderr
//! of the common error lines and of a run's summary, compared with stored
//! snapshots (`tests/it/snapshots/`). Ports, temporary paths, fingerprints and
//! durations are replaced by placeholders, so a changed word, a lost hint or
//! a cause printed twice fails the test.
//!
//! Update after a deliberate change of wording:
//! `INSTA_UPDATE=always cargo test --test it golden::`, then review the diff.

use std::process::Output;

use crate::support::{EnvoyHost, TestDir, cli_ok, stderr, stdout};

/// stdout and stderr of `out` with its exit code, in the form the
/// snapshots hold, with the test folder's variable parts replaced.
fn transcript(dir: &TestDir, out: &Output) -> String {
    let text = format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        out.status
            .code()
            .map_or_else(|| "signal".to_owned(), |c| c.to_string()),
        stdout(out),
        stderr(out)
    );
    text.replace(&dir.path().display().to_string(), "[DIR]")
        .replace(&dir.port.to_string(), "[PORT]")
}

/// Snapshot assertion with the filters every transcript needs: key
/// fingerprints, times and durations.
macro_rules! assert_golden {
    ($name:expr, $text:expr) => {
        insta::with_settings!({
            prepend_module_to_snapshot => false,
            filters => vec![
                // Log lines start with their time (not under the journal).
                (r"(?m)^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d+Z ", ""),
                (r"\b[0-9a-f]{64}\b", "[FINGERPRINT]"),
                (r"\b\d+(\.\d+)?(ms|s|µs)\b", "[DURATION]"),
                (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z", "[TIME]"),
            ],
        }, {
            insta::assert_snapshot!($name, $text);
        });
    };
}

/// A bootstrapped test folder whose config repository gives every envoy one
/// file under `<root>/out`.
fn bootstrapped() -> TestDir {
    let dir = TestDir::new();
    cli_ok(&dir, &["secrets", "bootstrap"]);
    dir.write_repo(
        "envoys:\n  - match: \"*\"\n    roles: [motd]\n",
        &[(
            "motd",
            "resources:\n  - name: motd\n    type: file\n    target_path: {out}/motd\n    content: \"hello {{ .Envoy.Name }}\\n\"\n",
        )],
    );
    dir
}

#[test]
fn issue_13_vigocli_missing_config_file() {
    let dir = TestDir::new();
    let missing = dir.path().join("nowhere/vigosrv.yaml");
    let out = crate::support::run(
        std::process::Command::new(crate::support::bin("vigocli"))
            .arg("--config")
            .arg(&missing)
            .args(["secrets", "get", "vigo/db/dsn"]),
    );
    assert_golden!("vigocli_missing_config_file", transcript(&dir, &out));
}

#[test]
fn issue_13_vigocli_bad_secret_path() {
    let dir = bootstrapped();
    let out = dir.cli(&["secrets", "get", "vigo//../dsn"]);
    assert_golden!("vigocli_bad_secret_path", transcript(&dir, &out));
}

#[test]
fn issue_13_vigocli_missing_secret() {
    let dir = bootstrapped();
    let out = dir.cli(&["secrets", "get", "vigo/no/such"]);
    assert_golden!("vigocli_missing_secret", transcript(&dir, &out));
}

#[test]
fn issue_13_vigocli_unreachable_server() {
    let dir = bootstrapped();
    let out = dir.cli(&["envoys", "list"]);
    assert_golden!("vigocli_unreachable_server", transcript(&dir, &out));
}

#[test]
fn issue_13_vigoenvoy_missing_config_file() {
    let dir = TestDir::new();
    let host = EnvoyHost::new(&dir, "web1.example.com", None);
    std::fs::remove_file(&host.config).unwrap();
    let out = host.run_once();
    assert_golden!("vigoenvoy_missing_config_file", transcript(&dir, &out));
}

#[test]
fn issue_13_vigoenvoy_missing_ca_file() {
    // No server has run, so the CA certificate was never exported.
    let dir = TestDir::new();
    let host = EnvoyHost::new(&dir, "web1.example.com", None);
    let out = host.run_once();
    assert_golden!("vigoenvoy_missing_ca_file", transcript(&dir, &out));
}

/// One server for the lines that need it: a pending enrollment, an unknown
/// envoy, a converging run's summary and an in-sync run's summary.
#[test]
fn issue_13_lines_against_a_running_server() {
    let dir = bootstrapped();
    let _server = dir.start_server(&[]);

    let web1 = EnvoyHost::new(&dir, "web1.example.com", None);
    let out = web1.run_once();
    assert_golden!("vigoenvoy_pending_enrollment", transcript(&dir, &out));

    let out = dir.cli(&["envoys", "show", "nosuch.example.com"]);
    assert_golden!("vigocli_unknown_envoy", transcript(&dir, &out));

    let out = dir.cli(&[
        "envoys",
        "approve",
        "nosuch.example.com",
        "--fingerprint",
        "0123456789abcdef",
    ]);
    assert_golden!("vigocli_approve_unknown_envoy", transcript(&dir, &out));

    let token = cli_ok(&dir, &["envoys", "token"]);
    let db1 = EnvoyHost::new(&dir, "db1.example.com", Some(token.trim()));
    let out = db1.run_once();
    assert_golden!("vigoenvoy_first_run_summary", transcript(&dir, &out));
    let out = db1.run_once();
    assert_golden!("vigoenvoy_in_sync_summary", transcript(&dir, &out));
}
