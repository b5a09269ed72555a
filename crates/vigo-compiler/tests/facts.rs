//! Facts and module reuse (issue 15): `.Facts` in templates, `match_facts`
//! in `nodes.vgo`, `include:` in modules, and every error they add, each
//! with file:line:column. Repositories are written into temporary folders.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;
use vigo_compiler::{ConfigRepo, Diagnostics, render_catalog_text};
use vigo_secrets::{SecretPath, VersionedSecret};

fn repo(nodes: &str, modules: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("modules")).unwrap();
    std::fs::write(dir.path().join("nodes.vgo"), nodes).unwrap();
    for (role, text) in modules {
        std::fs::write(dir.path().join(format!("modules/{role}.vgo")), text).unwrap();
    }
    dir
}

fn secrets(repo: &ConfigRepo) -> BTreeMap<SecretPath, VersionedSecret> {
    common::secrets_for(repo, |p| (format!("value-of-{p}"), 1))
}

/// Load errors, or else check errors.
fn problems_in(dir: &Path) -> Diagnostics {
    match ConfigRepo::load(dir) {
        Err(d) => d,
        Ok(repo) => repo.check(&secrets(&repo)),
    }
}

fn debian_facts() -> serde_json::Value {
    json!({
        "hostname": "db1",
        "fqdn": "db1.example.com",
        "os": {"family": "debian", "distribution": "debian", "release": "12"},
        "processors": {"count": 4},
        "networking": {"ip": "192.0.2.7", "interfaces": {"eth0": {"ipv4": ["192.0.2.7"], "ipv6": []}}},
        "custom": {"role": "primary", "rack": {"row": 3}},
    })
}

fn compile_text(dir: &Path, envoy: &str, facts: &serde_json::Value) -> String {
    let repo = ConfigRepo::load(dir).unwrap_or_else(|d| panic!("{d}"));
    let compiled = repo
        .compile(envoy, facts, &secrets(&repo))
        .unwrap_or_else(|d| panic!("{d}"));
    render_catalog_text(&compiled.catalog)
}

const MOTD: &str = "resources:\n  - name: motd\n    type: file\n    target_path: /etc/motd\n    content: |\n      {{ .Facts.os.distribution }} {{ .Facts.os.release }} on {{ .Facts.processors.count }} cpus, ip {{ .Facts.networking.interfaces.eth0.ipv4 }}\n      role {{ .Facts.custom.role }} row {{ .Facts.custom.rack.row }}\n";

#[test]
fn issue_15_facts_in_templates() {
    let dir = repo(
        "envoys:\n  - match: \"*\"\n    roles: [motd]\n",
        &[("motd", MOTD)],
    );
    insta::assert_snapshot!(compile_text(dir.path(), "db1.example.com", &debian_facts()));
    assert!(
        problems_in(dir.path()).is_empty(),
        "{}",
        problems_in(dir.path())
    );
}

#[test]
fn issue_15_a_fact_is_never_a_secret_reference() {
    let dir = repo(
        "envoys:\n  - match: \"*\"\n    roles: [m]\n",
        &[(
            "m",
            "resources:\n  - name: f\n    type: file\n    target_path: /etc/f\n    content: \"{{ .Facts.custom.role }}\"\n",
        )],
    );
    let facts = json!({"custom": {"role": "secret:vigo/db/password"}});
    let repo = ConfigRepo::load(dir.path()).unwrap();
    let compiled = repo.compile("h1", &facts, &BTreeMap::new()).unwrap();
    assert!(compiled.catalog.secrets.is_empty());
    assert!(compiled.index.uses.is_empty());
    assert!(render_catalog_text(&compiled.catalog).contains("secret:vigo/db/password"));
}

#[test]
fn issue_15_unknown_facts_are_errors_in_compile_and_check() {
    let module = "resources:\n  - name: motd\n    type: file\n    target_path: /etc/motd\n    content: |\n      family {{ .Facts.os.famly }}\n  - name: role\n    type: file\n    target_path: /etc/role\n    content: \"{{ .Facts.custom.role }}\"\n";
    let dir = repo(
        "envoys:\n  - match: \"*\"\n    roles: [m]\n",
        &[("m", module)],
    );
    // `check` finds the misspelt built-in fact; a custom fact it cannot
    // know about is taken as present.
    let check = problems_in(dir.path()).to_string();
    let repo = ConfigRepo::load(dir.path()).unwrap();
    let compile = repo
        .compile("h1", &json!({"os": {"family": "debian"}}), &secrets(&repo))
        .unwrap_err()
        .to_string();
    insta::assert_snapshot!(format!("check:\n{check}\ncompile:\n{compile}"));
}

#[test]
fn issue_15_match_facts_selects_entries() {
    let nodes = "envoys:\n  - match: \"*\"\n    roles: [base]\n  - match_facts: {os.family: debian}\n    roles: [apt]\n  - match: \"db*\"\n    match_facts:\n      os.family: debian\n      processors.count: 4\n    roles: [db]\n  - match_facts: {os.family: rhel}\n    roles: [dnf]\n";
    let file = |name: &str| {
        format!("resources:\n  - name: {name}\n    type: file\n    target_path: /etc/{name}\n")
    };
    let (base, apt, db, dnf) = (file("base"), file("apt"), file("db"), file("dnf"));
    let dir = repo(
        nodes,
        &[("base", &base), ("apt", &apt), ("db", &db), ("dnf", &dnf)],
    );
    let db1 = compile_text(dir.path(), "db1.example.com", &debian_facts());
    let web1 = compile_text(dir.path(), "web1.example.com", &debian_facts());
    let rhel = compile_text(
        dir.path(),
        "db2.example.com",
        &json!({"os": {"family": "rhel"}, "processors": {"count": 4}}),
    );
    let no_facts = compile_text(dir.path(), "db3.example.com", &serde_json::Value::Null);
    insta::assert_snapshot!(format!(
        "db1:\n{db1}\nweb1:\n{web1}\nrhel db2:\n{rhel}\nno facts:\n{no_facts}"
    ));
    assert!(
        problems_in(dir.path()).is_empty(),
        "{}",
        problems_in(dir.path())
    );
}

#[test]
fn issue_15_match_facts_errors() {
    let dir = repo(
        "envoys:\n  - roles: [m]\n  - match_facts:\n      os.famly: debian\n    roles: [m]\n  - match_facts:\n      os.family: [debian]\n    roles: [m]\n  - match: \"*\"\n    match_facts: {custom.role: web, processors.count: 2}\n    roles: [m]\n",
        &[("m", "resources: []\n")],
    );
    insta::assert_snapshot!(problems_in(dir.path()).to_string());
}

const BASE: &str = "vars:\n  ntp: ntp.example.com\nresources:\n  - name: ntp-conf\n    type: file\n    target_path: /etc/ntp.conf\n    content: \"server {{ .Vars.ntp }}\\n\"\n";
const MONITORING: &str = "include: [base]\nresources:\n  - name: node-exporter\n    type: package\n    package: prometheus-node-exporter\n    depends_on: [ntp-conf]\n";
const WEB: &str = "include: [base, monitoring]\nvars:\n  port: 80\nresources:\n  - name: nginx\n    type: package\n    package: nginx\n    depends_on: [node-exporter]\n";

#[test]
fn issue_15_include_adds_modules_once() {
    let dir = repo(
        "envoys:\n  - match: \"*\"\n    roles: [web, base]\n    vars:\n      ntp: time.example.com\n",
        &[("base", BASE), ("monitoring", MONITORING), ("web", WEB)],
    );
    let text = compile_text(dir.path(), "web1.example.com", &serde_json::Value::Null);
    insta::assert_snapshot!(text);
    assert!(
        problems_in(dir.path()).is_empty(),
        "{}",
        problems_in(dir.path())
    );
    let repo = ConfigRepo::load(dir.path()).unwrap();
    assert_eq!(
        repo.roles_of("web1.example.com", &serde_json::Value::Null),
        ["base", "monitoring", "web"]
    );
}

#[test]
fn issue_15_an_included_module_is_checked_with_its_includer() {
    // `monitoring` is named by no entry, but `web` includes it: it is
    // compiled with web's entry, where `ntp-conf` exists, not alone.
    let dir = repo(
        "envoys:\n  - match: \"*\"\n    roles: [web]\n",
        &[("base", BASE), ("monitoring", MONITORING), ("web", WEB)],
    );
    assert!(
        problems_in(dir.path()).is_empty(),
        "{}",
        problems_in(dir.path())
    );
}

#[test]
fn issue_15_include_errors() {
    let cycle = repo(
        "envoys:\n  - match: \"*\"\n    roles: [a]\n",
        &[
            ("a", "include: [b]\nresources: []\n"),
            ("b", "include:\n  - c\nresources: []\n"),
            ("c", "include: [a]\n"),
            ("self", "include: [self]\n"),
        ],
    );
    let missing = repo(
        "envoys:\n  - match: \"*\"\n    roles: [a]\n",
        &[("a", "include: [base, \"bad name\"]\nresources: []\n")],
    );
    insta::assert_snapshot!(format!(
        "{}\n{}",
        problems_in(cycle.path()),
        problems_in(missing.path())
    ));
}

#[test]
fn issue_15_check_takes_any_interface_as_present() {
    let dir = repo(
        "envoys:\n  - match: \"*\"\n    roles: [m]\n",
        &[(
            "m",
            "resources:\n  - name: f\n    type: file\n    target_path: /etc/f\n    content: \"{{ .Facts.networking.interfaces.ens3.ipv4 }} {{ .Facts.networking.interfaces.ens3.ipv6 }}\"\n  - name: g\n    type: file\n    target_path: /etc/g\n    content: \"{{ .Facts.networking.interfaces.ens3.mac }}\"\n",
        )],
    );
    insta::assert_snapshot!(problems_in(dir.path()).to_string());
}

#[test]
fn issue_15_the_facts_table_lists_every_fact() {
    let docs = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/modules.md"),
    )
    .unwrap();
    let mut rows: Vec<String> = vigo_proto::facts::Facts::known_paths()
        .into_iter()
        .filter(|p| !vigo_proto::facts::OPEN_MAPS.contains(&p.as_str()))
        .collect();
    rows.extend(
        [
            "networking.interfaces.NAME.ipv4",
            "networking.interfaces.NAME.ipv6",
            "custom.NAME",
        ]
        .map(String::from),
    );
    for row in rows {
        assert!(
            docs.contains(&format!("\n| `{row}` |")),
            "docs/modules.md, \"Facts\", has no row for `{row}`"
        );
    }
}
