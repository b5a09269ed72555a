//! Operator ergonomics of the three binaries: shell completions, man pages,
//! `VIGO_CONFIG`/`VIGOENVOY_CONFIG`, `--help` and `--version` texts, and the
//! timestamp on log lines (left out under the journal).

use std::process::Command;

use crate::support::{assert_contains, bin, is_log_timestamp, run, stderr, stdout};

/// A config path that does not exist, with a name to find in errors.
const MISSING: &str = "/nonexistent/vigo-issue-17/from-env.yaml";

#[test]
fn issue_17_completions_for_bash_zsh_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(Command::new(bin("vigocli")).args(["completions", shell]));
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        assert!(script.len() > 1000, "{shell}: a short script:\n{script}");
        for word in [
            "vigocli",
            "secrets",
            "envoys",
            "catalog",
            "completions",
            "log-format",
        ] {
            assert!(script.contains(word), "{shell}: no {word} in:\n{script}");
        }
    }
    let out = run(Command::new(bin("vigocli")).args(["completions", "tcsh"]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn issue_17_man_pages_for_each_binary() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man");
    assert!(
        run(Command::new(bin("vigocli")).arg("manpages").arg(&out))
            .status
            .success()
    );
    assert!(
        run(Command::new(bin("vigosrv")).arg("--manpages").arg(&out))
            .status
            .success()
    );
    assert!(
        run(Command::new(bin("vigoenvoy")).arg("manpages").arg(&out))
            .status
            .success()
    );
    for page in [
        "vigocli.1",
        "vigocli-secrets-set.1",
        "vigocli-completions.1",
        "vigosrv.1",
        "vigoenvoy.1",
        "vigoenvoy-run.1",
    ] {
        let text =
            std::fs::read_to_string(out.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(
            text.starts_with(".ie \\n(.g .ds Aq") || text.contains(".TH"),
            "{page}:\n{text}"
        );
    }
    let srv = std::fs::read_to_string(out.join("vigosrv.1")).unwrap();
    assert_contains(&srv, "\\-\\-config");
    assert!(!out.join("vigocli-manpages.1").exists());
}

#[test]
fn issue_17_help_says_what_each_binary_is() {
    for (name, what) in [
        ("vigosrv", "vigosrv: the Vigo server"),
        ("vigocli", "vigocli: the Vigo operator CLI"),
        ("vigoenvoy", "vigoenvoy: the Vigo agent"),
    ] {
        let out = run(Command::new(bin(name)).arg("--help"));
        assert!(out.status.success());
        let help = stdout(&out);
        let first = help.lines().next().unwrap_or_default();
        assert!(first.starts_with(what), "{name}: first line {first:?}");
        let env = if name == "vigoenvoy" {
            "VIGOENVOY_CONFIG"
        } else {
            "VIGO_CONFIG"
        };
        assert!(help.contains(&format!("[env: {env}=")), "{name}:\n{help}");
    }
}

#[test]
fn issue_17_version_names_the_commit() {
    for name in ["vigosrv", "vigocli", "vigoenvoy"] {
        let out = run(Command::new(bin(name)).arg("--version"));
        assert!(out.status.success());
        let line = stdout(&out);
        let rest = line
            .trim_end()
            .strip_prefix(&format!("{name} {} (commit ", env!("CARGO_PKG_VERSION")))
            .unwrap_or_else(|| panic!("{name}: {line:?}"));
        let commit = rest.strip_suffix(')').unwrap_or_else(|| panic!("{line:?}"));
        assert!(
            commit == "unknown"
                || (commit.len() >= 7 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
            "{name}: {line:?}"
        );
    }
}

#[test]
fn issue_17_config_path_from_the_environment() {
    // vigocli and vigosrv read VIGO_CONFIG, vigoenvoy VIGOENVOY_CONFIG.
    let cli = run(Command::new(bin("vigocli"))
        .arg("check")
        .env("VIGO_CONFIG", MISSING));
    assert!(!cli.status.success());
    assert_contains(&stderr(&cli), &format!("reading {MISSING}"));

    let srv = run(Command::new(bin("vigosrv")).env("VIGO_CONFIG", MISSING));
    assert!(!srv.status.success());
    assert_contains(&stderr(&srv), &format!("reading {MISSING}"));

    let envoy = run(Command::new(bin("vigoenvoy"))
        .args(["run", "--once"])
        .env("VIGOENVOY_CONFIG", MISSING));
    assert!(!envoy.status.success());
    assert_contains(&stderr(&envoy), &format!("reading {MISSING}"));

    // --config wins over the variable.
    let other = "/nonexistent/vigo-issue-17/from-flag.yaml";
    let cli = run(Command::new(bin("vigocli"))
        .args(["check", "--config", other])
        .env("VIGO_CONFIG", MISSING));
    assert_contains(&stderr(&cli), &format!("reading {other}"));
}

/// The `ERROR server failed` line of a vigosrv that cannot read its config.
fn failed_start_line(format: &str, journal: bool) -> String {
    let mut cmd = Command::new(bin("vigosrv"));
    cmd.args(["--config", MISSING, "--log-format", format]);
    cmd.env_remove("JOURNAL_STREAM");
    if journal {
        cmd.env("JOURNAL_STREAM", "8:4242");
    }
    let out = run(&mut cmd);
    assert!(!out.status.success());
    let log = stderr(&out);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 1, "{log}");
    lines[0].to_owned()
}

#[test]
fn issue_17_text_log_lines_start_with_a_timestamp() {
    let line = failed_start_line("text", false);
    let (stamp, rest) = line.split_once(' ').unwrap();
    assert!(is_log_timestamp(stamp), "{line}");
    assert!(rest.starts_with("ERROR server failed error="), "{line}");

    let journal = failed_start_line("text", true);
    assert!(
        journal.starts_with("ERROR server failed error="),
        "{journal}"
    );
    assert_eq!(journal, rest);
}

#[test]
fn issue_17_json_log_lines_carry_a_timestamp() {
    let line = failed_start_line("json", false);
    let value: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(value["level"], "ERROR");
    assert_eq!(value["message"], "server failed");
    let stamp = value["timestamp"].as_str().unwrap_or_default();
    assert!(is_log_timestamp(stamp), "{line}");

    let journal = failed_start_line("json", true);
    let value: serde_json::Value = serde_json::from_str(&journal).unwrap();
    assert_eq!(value["level"], "ERROR");
    assert!(value.get("timestamp").is_none(), "{journal}");
}
