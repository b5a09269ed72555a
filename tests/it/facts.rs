//! Facts end to end (issue 15): a real `vigoenvoy` reports its facts and
//! its custom facts (`facts_dir`) to a real `vigosrv`; a changed custom
//! fact changes the catalog at the next check-in; `vigocli envoys show`
//! lists the facts; a custom fact's value never reaches a log; `vigocli
//! check` catches an unknown fact used in a template.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::{EnvoyHost, TestDir, TestRng, all_output, cli_ok, stderr, stdout};

const DEBUG: &[&str] = &["--log-level", "debug"];
const HOST: &str = "app1.example.com";

fn write_repo(dir: &TestDir, out: &Path) {
    dir.write(
        "config/nodes.vgo",
        "envoys:\n  - match: \"*\"\n    roles: [motd]\n  - match_facts: {custom.tier: gold}\n    roles: [gold]\n",
    );
    dir.write(
        "config/modules/motd.vgo",
        &format!(
            "resources:\n  - name: motd\n    type: file\n    target_path: {}/motd\n    content: \"{{{{ .Facts.kernel.name }}}} {{{{ .Facts.processors.count }}}} tier={{{{ .Facts.custom.tier }}}}\\n\"\n",
            out.display()
        ),
    );
    dir.write(
        "config/modules/gold.vgo",
        &format!(
            "resources:\n  - name: gold\n    type: file\n    target_path: {}/gold\n    content: \"gold service\\n\"\n",
            out.display()
        ),
    );
}

fn write_fact(folder: &Path, name: &str, text: &str, mode: u32) {
    let file = folder.join(name);
    std::fs::write(&file, text).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn issue_15_a_custom_fact_changes_the_catalog_at_the_next_check_in() {
    let dir = TestDir::new();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let canary = format!("canary-{}", TestRng::from_clock().token());
    let mut logs = cli_ok(&dir, &["secrets", "bootstrap"]);
    write_repo(&dir, &out);
    let server = dir.start_server(DEBUG);
    let token = cli_ok(&dir, &["envoys", "token"]);
    let host = EnvoyHost::new(&dir, HOST, Some(token.trim()));
    let facts_dir = host.root.join("facts.d");
    std::fs::create_dir_all(&facts_dir).unwrap();
    let mut yaml = std::fs::read_to_string(&host.config).unwrap();
    yaml.push_str(&format!("facts_dir: \"{}\"\n", facts_dir.display()));
    std::fs::write(&host.config, yaml).unwrap();

    write_fact(&facts_dir, "tier.txt", "tier=silver\n", 0o644);
    // Used nowhere in the catalog: its value must appear in no log.
    write_fact(
        &facts_dir,
        "canary",
        &format!("#!/bin/sh\necho '{{\"canary_value\": \"{canary}\"}}'\n"),
        0o755,
    );
    write_fact(
        &facts_dir,
        "broken",
        &format!("#!/bin/sh\necho token={canary}\necho {canary} >&2\nexit 1\n"),
        0o755,
    );

    let run = |logs: &mut String| {
        let output = crate::support::run(&mut host.command(DEBUG, &["--once"]));
        let text = all_output(&output);
        logs.push_str(&text);
        assert!(output.status.success(), "{text}");
        text
    };

    let first = run(&mut logs);
    assert!(
        first.contains("custom fact ") && first.contains("/broken: it failed (exit status: 1)"),
        "{first}"
    );
    let motd = std::fs::read_to_string(out.join("motd")).unwrap();
    assert!(
        motd.starts_with("Linux ") && motd.ends_with(" tier=silver\n"),
        "{motd}"
    );
    assert!(!out.join("gold").exists());

    // The fact changes: the next check-in compiles the catalog again.
    write_fact(&facts_dir, "tier.txt", "tier=gold\n", 0o644);
    let second = run(&mut logs);
    assert!(second.contains("2 resources: 2 changed"), "{second}");
    let motd = std::fs::read_to_string(out.join("motd")).unwrap();
    assert!(motd.ends_with(" tier=gold\n"), "{motd}");
    assert_eq!(
        std::fs::read_to_string(out.join("gold")).unwrap(),
        "gold service\n"
    );

    // The operator sees the facts of the latest check-in.
    let shown = cli_ok(&dir, &["envoys", "show", HOST]);
    assert!(shown.contains("  custom.tier: gold\n"), "{shown}");
    assert!(shown.contains("  os.family: "), "{shown}");
    assert!(shown.contains("  kernel.name: Linux\n"), "{shown}");
    let json = dir.cli(&["envoys", "show", HOST, "--output", "json"]);
    assert!(json.status.success(), "{}", stderr(&json));
    let detail: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(detail["facts"]["custom"]["tier"], "gold");
    assert!(detail["facts"]["processors"]["count"].as_u64().unwrap() >= 1);
    assert!(
        detail["facts"]["networking"]["interfaces"]["lo"]["ipv4"]
            .as_array()
            .is_some_and(|a| a.iter().any(|ip| ip == "127.0.0.1"))
    );

    // `vigocli catalog` compiles with those facts too.
    let catalog = cli_ok(&dir, &["catalog", HOST]);
    assert!(
        catalog.contains("tier=gold") && catalog.contains("name: gold"),
        "{catalog}"
    );

    logs.push_str(&server.log());
    assert!(
        !logs.contains(&canary),
        "a custom fact's value reached a log:\n{logs}"
    );
}

#[test]
fn issue_15_check_catches_an_unknown_fact_in_a_template() {
    let dir = TestDir::new();
    cli_ok(&dir, &["secrets", "bootstrap"]);
    dir.write(
        "config/nodes.vgo",
        "envoys:\n  - match: \"*\"\n    roles: [motd]\n",
    );
    dir.write(
        "config/modules/motd.vgo",
        "resources:\n  - name: motd\n    type: file\n    target_path: /etc/motd\n    content: |\n      {{ .Facts.os.family }} {{ .Facts.custom.anything }}\n      {{ .Facts.os.famly }}\n",
    );
    let out = dir.cli(&["check"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(
            "modules/motd.vgo:7:10: resource 'motd': unknown fact 'os.famly' (.Facts.os.famly)"
        ),
        "{err}"
    );
    assert!(!err.contains("anything"), "{err}");
}
