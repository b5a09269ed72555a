//! `vigoenvoy apply`: the real binary against catalog files in temporary
//! folders.

use std::fs;
use std::path::PathBuf;

use assert_cmd::Command;
use serde_json::{Value, json};
use vigo_test_support::files_under;

use crate::support::assert_contains;

vigo_test_support::scratch_fixture!(
    /// A temporary folder holding a catalog, the envoy's data folder and the
    /// files the catalog writes.
    Case
);

impl Case {
    fn write_catalog(&self, catalog: &Value) -> PathBuf {
        let path = self.path("catalog.json");
        fs::write(&path, serde_json::to_string_pretty(catalog).unwrap()).unwrap();
        path
    }

    fn apply(&self, catalog: &Value, extra: &[&str]) -> assert_cmd::assert::Assert {
        Command::from_std(crate::support::envoy_apply_command(self, catalog))
            .args(extra)
            .env_remove("NO_COLOR")
            .assert()
    }
}

fn stdout(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8(assert.get_output().stdout.clone()).unwrap()
}

fn stderr(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8(assert.get_output().stderr.clone()).unwrap()
}

#[test]
fn prints_one_line_per_change_then_the_summary_and_converges() {
    let case = Case::new();
    let target = case.p("app.conf");
    let catalog = json!({
        "envoy": "test1",
        "resources": [
            {"name": "conf", "type": "file", "target_path": target, "content": [{"text": "a=1\n"}], "mode": "0600"},
            {"name": "broken", "type": "exec", "command": "echo bad >&2; exit 1", "timeout_secs": 10},
            {"name": "after", "type": "exec", "command": "true", "timeout_secs": 10, "depends_on": ["broken"]},
        ]
    });
    let first = case.apply(&catalog, &[]).code(2);
    assert_eq!(
        stdout(&first),
        format!(
            "changed  file[conf]: wrote {target} (mode 0600)\n\
             failed   exec[broken]: exit status 1: bad\n\
             skipped  exec[after]: dependency 'broken' failed\n\
             3 resources: 1 changed, 1 failed, 1 skipped, 0 unchanged\n"
        )
    );
    assert_eq!(fs::read_to_string(&target).unwrap(), "a=1\n");

    let converged = json!({"envoy": "test1", "resources": [catalog["resources"][0].clone()]});
    let second = case.apply(&converged, &[]).success();
    assert_eq!(
        stdout(&second),
        "1 resources: 0 changed, 0 failed, 0 skipped, 1 unchanged\n"
    );
}

#[test]
fn noop_changes_nothing_and_says_what_would_change() {
    let case = Case::new();
    let target = case.p("new.conf");
    let catalog = json!({
        "envoy": "test1",
        "resources": [
            {"name": "conf", "type": "file", "target_path": target, "content": [{"text": "x"}], "mode": "0644"},
            {"name": "touch", "type": "exec", "command": format!("touch {}", case.p("ran")), "timeout_secs": 10},
        ]
    });
    let out = case.apply(&catalog, &["--noop"]).success();
    assert_eq!(
        stdout(&out),
        format!(
            "changed  file[conf]: would create missing {target} (mode 0644)\n\
             changed  exec[touch]: would run `touch {}`\n\
             2 resources: 2 changed, 0 failed, 0 skipped, 0 unchanged\n",
            case.p("ran")
        )
    );
    assert!(!case.path("new.conf").exists());
    assert!(!case.path("ran").exists());
}

#[test]
fn a_canary_secret_reaches_no_output_and_nothing_in_the_data_folder() {
    const CANARY: &str = "canary-5e0d93ab-envoy-apply";
    let case = Case::new();
    let catalog = json!({
        "envoy": "test1",
        "resources": [
            {
                "name": "leak", "type": "exec", "timeout_secs": 10,
                "command": "v=$(cat {{secret_file}}); echo \"stdout $v\"; echo \"stderr $v\" >&2; exit 7",
                "secret_file": [{"secret": "app/canary"}]
            },
            {
                "name": "leak-stdin", "type": "exec", "timeout_secs": 10,
                "command": "read v; echo \"$v\"; echo \"$v\" >&2; false",
                "stdin": [{"secret": "app/canary"}, {"text": "\n"}]
            },
            {
                "name": "conf", "type": "file", "target_path": case.p("secret.conf"), "mode": "0600",
                "content": [{"text": "token="}, {"secret": "app/canary"}]
            },
        ],
        "secrets": {"app/canary": {"version": 1, "value": CANARY}}
    });
    let out = case.apply(&catalog, &["--log-level", "trace"]).code(2);
    let (stdout, stderr) = (stdout(&out), stderr(&out));
    assert_contains(
        &stdout,
        "failed   exec[leak]: exit status 7: stderr [REDACTED]",
    );
    assert_contains(
        &stdout,
        "failed   exec[leak-stdin]: exit status 1: [REDACTED]",
    );
    for line in stdout.lines().chain(stderr.lines()) {
        assert!(!line.contains(CANARY), "canary in output line: {line}");
    }
    assert!(
        fs::read_to_string(case.path("secret.conf"))
            .unwrap()
            .contains(CANARY)
    );
    let files = files_under(&case.path("data"));
    assert!(files.iter().any(|f| f.ends_with("state.json")));
    for file in files {
        let bytes = fs::read(&file).unwrap();
        assert!(
            !bytes.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()),
            "canary in {}",
            file.display()
        );
    }
}

#[test]
fn bad_input_exits_1_naming_the_file_and_position() {
    let case = Case::new();
    let file = case.path("broken.json");
    fs::write(&file, "{\n  \"envoy\": \"x\",\n  \"resources\": [,]\n}\n").unwrap();
    let out = Command::cargo_bin("vigoenvoy")
        .unwrap()
        .args(["apply", "--catalog"])
        .arg(&file)
        .arg("--data-dir")
        .arg(case.path("data"))
        .assert()
        .code(1);
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!("error: {}:3:17: ", file.display())),
        "{err}"
    );
    assert!(stdout(&out).is_empty());

    let missing = Command::cargo_bin("vigoenvoy")
        .unwrap()
        .args(["apply", "--catalog"])
        .arg(case.path("missing.json"))
        .arg("--data-dir")
        .arg(case.path("data"))
        .assert()
        .code(1);
    assert!(
        stderr(&missing).starts_with("error: reading catalog "),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn a_type_error_does_not_quote_a_secret_value() {
    const CANARY: &str = "canary-type-error-77";
    let case = Case::new();
    let catalog = json!({
        "envoy": "x",
        "resources": [{"name": "n", "type": "exec", "command": "true", "timeout_secs": CANARY}],
        "secrets": {"a/b": {"version": 1, "value": CANARY}}
    });
    let out = case.apply(&catalog, &[]).code(1);
    let err = stderr(&out);
    assert_contains(&err, "catalog.json:");
    assert!(!err.contains(CANARY), "{err}");
}

#[test]
fn data_dir_comes_from_the_config_file() {
    let case = Case::new();
    fs::write(
        case.path("envoy.yaml"),
        "server: \"https://vigo:8443\"\ndata_dir: \"state-here\"\n",
    )
    .unwrap();
    let catalog = case.write_catalog(&json!({"envoy": "x", "resources": []}));
    Command::cargo_bin("vigoenvoy")
        .unwrap()
        .arg("--config")
        .arg(case.path("envoy.yaml"))
        .args(["apply", "--catalog"])
        .arg(&catalog)
        .assert()
        .success()
        .stdout("0 resources: 0 changed, 0 failed, 0 skipped, 0 unchanged\n");
    assert!(case.path("state-here/state.key").exists());
}

#[test]
fn help_and_version_work() {
    let help = Command::cargo_bin("vigoenvoy")
        .unwrap()
        .arg("--help")
        .assert()
        .success();
    let text = stdout(&help);
    for flag in ["--config", "--log-level", "--log-format", "apply"] {
        assert!(text.contains(flag), "{flag} missing from --help");
    }
    let version = Command::cargo_bin("vigoenvoy")
        .unwrap()
        .arg("--version")
        .assert()
        .success();
    assert!(stdout(&version).starts_with("vigoenvoy "));
}
