//! Smaller language rules, each on a repository written into a temporary
//! folder: secret_file pairing, `when: changed`, template syntax positions.

mod common;

use std::collections::BTreeMap;

use vigo_compiler::{ConfigRepo, Diagnostics};
use vigo_secrets::{SecretValue, VersionedSecret};

/// Writes `nodes.vgo` (every envoy gets role `m`) and `modules/m.vgo`, then
/// returns everything wrong with it (load errors, or else check errors).
fn problems(module: &str) -> Diagnostics {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("modules")).unwrap();
    std::fs::write(
        dir.path().join("nodes.vgo"),
        "envoys:\n  - match: \"*\"\n    roles: [m]\n    vars:\n      key: \"secret:vigo/k\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("modules/m.vgo"), module).unwrap();
    match ConfigRepo::load(dir.path()) {
        Err(d) => d,
        Ok(repo) => {
            let secrets = common::secrets_for(&repo, |_| ("CANARY-value".to_owned(), 1));
            repo.check(&secrets)
        }
    }
}

#[test]
fn secret_file_placeholder_needs_the_field() {
    let d =
        problems("resources:\n  - name: x\n    type: exec\n    command: \"run {{secret_file}}\"\n");
    assert_eq!(
        d.to_string(),
        "modules/m.vgo:4:15: resource 'x': the command uses {{secret_file}} but the resource sets no 'secret_file'"
    );
}

#[test]
fn secret_file_field_needs_the_placeholder() {
    let d = problems(
        "resources:\n  - name: x\n    type: exec\n    command: run\n    secret_file: \"{{ .Vars.key }}\"\n",
    );
    assert_eq!(
        d.to_string(),
        "modules/m.vgo:2:11: resource 'x': 'secret_file' is set but the command never uses {{secret_file}}, so the file could not be read"
    );
}

#[test]
fn secret_file_function_only_in_commands() {
    let d = problems(
        "resources:\n  - name: x\n    type: file\n    target_path: /etc/x\n    content: \"{{secret_file}}\"\n",
    );
    let text = d.to_string();
    assert!(text.starts_with("modules/m.vgo:5:"), "{text}");
    assert!(text.contains("resource 'x': content:"), "{text}");
}

#[test]
fn when_changed_only_on_exec() {
    let d = problems(
        "resources:\n  - name: x\n    type: file\n    target_path: /etc/x\n    when: changed\n",
    );
    assert_eq!(
        d.to_string(),
        "modules/m.vgo:5:11: resource 'x': 'when: changed' applies only to exec resources, not to type 'file'"
    );
}

#[test]
fn template_syntax_errors_point_into_the_file() {
    let d = problems(
        "resources:\n  - name: x\n    type: file\n    target_path: /etc/x\n    content: |\n      ok\n      {{ if .Vars.key }}\n",
    );
    let text = d.to_string();
    assert!(text.starts_with("modules/m.vgo:7:"), "{text}");
    assert!(text.contains("resource 'x': content:"), "{text}");
}

#[test]
fn invalid_values_are_reported_together() {
    let d = problems(
        "resources:\n  - name: a\n    type: file\n    target_path: /etc/a\n    mode: \"0999\"\n  - name: b\n    type: exec\n    command: run\n    timeout: soon\n  - name: c\n    type: service\n    service: x\n    enabled: yes\n  - name: d\n    type: file\n    target_path: /etc/d\n    watch_secret: [\"../etc/shadow\"]\n",
    );
    assert_eq!(d.len(), 4, "{d}");
    let text = d.to_string();
    assert!(!text.contains("CANARY"), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn secret_content_defaults_to_0600_and_explicit_mode_wins() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("modules")).unwrap();
    std::fs::write(
        dir.path().join("nodes.vgo"),
        "envoys:\n  - match: \"*\"\n    roles: [m]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("modules/m.vgo"),
        "resources:\n  - name: a\n    type: file\n    target_path: /etc/a\n    content: \"secret:vigo/tls/key\"\n  - name: b\n    type: file\n    target_path: /etc/b\n    content: \"secret:vigo/tls/key\"\n    mode: \"0640\"\n",
    )
    .unwrap();
    let repo = ConfigRepo::load(dir.path()).unwrap();
    let secrets: BTreeMap<_, _> = repo
        .referenced_secrets()
        .into_iter()
        .map(|p| {
            (
                p,
                VersionedSecret {
                    value: SecretValue::from("k"),
                    version: 2,
                },
            )
        })
        .collect();
    let catalog = repo
        .compile("h1", &serde_json::Value::Null, &secrets)
        .unwrap()
        .catalog;
    let modes: Vec<String> = catalog
        .resources
        .iter()
        .map(|r| match &r.kind {
            vigo_catalog::ResourceKind::File(f) => f.mode.to_string(),
            other => panic!("unexpected {}", other.type_name()),
        })
        .collect();
    assert_eq!(modes, ["0600", "0640"]);
}

/// A `secret:` reference written into a command's text would run with the
/// reference itself; it is the taint rule's error, like a secret var.
#[test]
fn issue_12_item_18_a_literal_secret_reference_in_a_command_is_the_taint_error() {
    for command in [
        "\"set-password secret:vigo/grafana/admin_password\"",
        "\"curl -u admin:secret:vigo/grafana/admin_password. http://x\"",
        "\"echo '{{ .Envoy.Name }}' secret:vigo/grafana/admin_password\"",
    ] {
        let d = problems(&format!(
            "resources:\n  - name: set-grafana-password\n    type: exec\n    command: {command}\n"
        ));
        assert_eq!(
            d.to_string(),
            "modules/m.vgo:4:15: resource 'set-grafana-password': secret 'vigo/grafana/admin_password' would appear in the command line; pass it with stdin or secret_file",
            "{command}"
        );
    }
    // Through a var that is not a whole reference, too.
    let d = problems(
        "vars:\n  cmd: \"x secret:vigo/k\"\nresources:\n  - name: x\n    type: exec\n    command: \"run {{ .Vars.cmd }}\"\n",
    );
    assert!(
        d.to_string()
            .ends_with("resource 'x': secret 'vigo/k' would appear in the command line; pass it with stdin or secret_file"),
        "{d}"
    );
    // The word alone, or a non-path after it, is fine.
    for command in [
        "\"grep secret: /etc/x\"",
        "\"echo secret:\"",
        "\"echo secret:/x\"",
    ] {
        let d = problems(&format!(
            "resources:\n  - name: x\n    type: exec\n    command: {command}\n"
        ));
        assert!(d.is_empty(), "{command}: {d}");
    }
}
