//! The compiler end to end: the example repository's catalogs and the
//! error texts of every broken fixture under `tests/fixtures/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vigo_compiler::{ConfigRepo, Diagnostics, catalog_json, render_catalog_text};
use vigo_secrets::{SecretPath, SecretValue, VersionedSecret};

/// Appears in every secret value handed to the compiler; no diagnostic may
/// ever contain it.
const CANARY: &str = "CANARY-7f3a9c";

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/config")
}

fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(case)
}

fn path(p: &str) -> SecretPath {
    SecretPath::parse(p).unwrap()
}

/// A value for every secret the repository references, each carrying the
/// canary; `vigo/db/password` is at version 3.
fn secrets_for(repo: &ConfigRepo) -> BTreeMap<SecretPath, VersionedSecret> {
    repo.referenced_secrets()
        .into_iter()
        .map(|p| {
            let version = if p.as_str() == "vigo/db/password" {
                3
            } else {
                1
            };
            let value = SecretValue::new(format!("{CANARY}-{p}"));
            (p, VersionedSecret { value, version })
        })
        .collect()
}

/// Facts like those an envoy reports: the stand-in facts of `check`, with
/// a custom fact.
fn example_facts() -> serde_json::Value {
    let mut facts = vigo_proto::facts::Facts::stand_in();
    facts.custom.insert("tier".into(), "gold".into());
    serde_json::Value::Object(facts.to_json())
}

fn load_examples() -> ConfigRepo {
    ConfigRepo::load(&examples()).unwrap_or_else(|d| panic!("examples/config does not load:\n{d}"))
}

/// Everything wrong with a fixture: load errors, or else check errors.
fn diagnostics_of(case: &str) -> Diagnostics {
    match ConfigRepo::load(&fixture(case)) {
        Err(d) => d,
        Ok(repo) => repo.check(&secrets_for(&repo)),
    }
}

fn assert_no_canary(text: &str) {
    assert!(!text.contains(CANARY), "a secret value leaked:\n{text}");
}

#[test]
fn examples_reference_exactly_the_seed_secrets() {
    let repo = load_examples();
    let found: Vec<String> = repo
        .referenced_secrets()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        found,
        [
            "vigo/db/password",
            "vigo/deploy/key",
            "vigo/grafana/admin_password"
        ]
    );
    assert!(repo.check(&secrets_for(&repo)).is_empty());
}

#[test]
fn db1_catalog_redacted_and_revealed() {
    let repo = load_examples();
    let compiled = repo
        .compile("db1.example.com", &example_facts(), &secrets_for(&repo))
        .unwrap();
    let redacted = catalog_json(&compiled.catalog, false);
    assert_no_canary(&redacted);
    insta::assert_snapshot!("db1_redacted", redacted);
    let revealed = catalog_json(&compiled.catalog, true);
    assert!(revealed.contains(&format!("{CANARY}-vigo/db/password")));
    insta::assert_snapshot!("db1_revealed", revealed);
    let text = render_catalog_text(&compiled.catalog);
    assert_no_canary(&text);
    insta::assert_snapshot!("db1_text", text);
}

#[test]
fn db1_secret_index_names_users_and_watchers() {
    let repo = load_examples();
    let compiled = repo
        .compile("db1.example.com", &example_facts(), &secrets_for(&repo))
        .unwrap();
    let db = path("vigo/db/password");
    assert_eq!(
        compiled.index.uses[&db].iter().collect::<Vec<_>>(),
        ["pg-config"]
    );
    assert_eq!(
        compiled.index.watches[&db].iter().collect::<Vec<_>>(),
        ["pg-config"]
    );
    assert_eq!(compiled.index.uses.len(), 1);
    // Only the secrets the catalog uses travel with it.
    assert_eq!(compiled.catalog.secrets.keys().collect::<Vec<_>>(), [&db]);
    assert_eq!(compiled.catalog.secrets[&db].version, 3);
}

#[test]
fn web1_catalog_has_no_secret() {
    let repo = load_examples();
    let compiled = repo
        .compile("web1.example.com", &example_facts(), &secrets_for(&repo))
        .unwrap();
    assert!(compiled.catalog.secrets.is_empty());
    assert_eq!(
        catalog_json(&compiled.catalog, true),
        catalog_json(&compiled.catalog, false)
    );
    insta::assert_snapshot!("web1", catalog_json(&compiled.catalog, false));
    insta::assert_snapshot!("web1_text", render_catalog_text(&compiled.catalog));
}

#[test]
fn grafana_catalog_passes_secrets_by_stdin_and_file() {
    let repo = load_examples();
    let compiled = repo
        .compile(
            "grafana1.example.com",
            &example_facts(),
            &secrets_for(&repo),
        )
        .unwrap();
    let text = render_catalog_text(&compiled.catalog);
    assert_no_canary(&text);
    insta::assert_snapshot!("grafana1_text", text);
    let grafana = path("vigo/grafana/admin_password");
    assert_eq!(
        compiled.index.watches[&grafana].iter().collect::<Vec<_>>(),
        ["set-grafana-password"]
    );
    assert_eq!(
        compiled.index.uses[&path("vigo/deploy/key")]
            .iter()
            .collect::<Vec<_>>(),
        ["deploy-with-key"]
    );
}

#[test]
fn an_envoy_that_matches_nothing_gets_an_empty_catalog() {
    let repo = load_examples();
    // No facts: the match_facts entry does not apply either.
    let compiled = repo
        .compile(
            "mail.example.org",
            &serde_json::Value::Null,
            &secrets_for(&repo),
        )
        .unwrap();
    assert!(compiled.catalog.resources.is_empty());
    assert!(compiled.catalog.secrets.is_empty());
    assert_eq!(compiled.catalog.envoy, "mail.example.org");
    // With Debian's facts it matches by facts alone.
    let compiled = repo
        .compile("mail.example.org", &example_facts(), &secrets_for(&repo))
        .unwrap();
    let names: Vec<&str> = compiled
        .catalog
        .resources
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["apt-no-recommends"]);
}

#[test]
fn a_secret_missing_from_the_map_is_named() {
    let repo = load_examples();
    let mut secrets = secrets_for(&repo);
    secrets.remove(&path("vigo/db/password"));
    let err = repo
        .compile("db1.example.com", &example_facts(), &secrets)
        .unwrap_err();
    assert_no_canary(&err.to_string());
    insta::assert_snapshot!(err.to_string());
}

#[test]
fn secret_in_command_is_refused() {
    let d = diagnostics_of("secret-in-command");
    let text = d.to_string();
    assert_no_canary(&text);
    assert!(text.contains(
        "resource 'set-grafana-password': secret 'vigo/grafana/admin_password' would appear in the command line; pass it with stdin or secret_file"
    ));
    insta::assert_snapshot!(text);
}

#[test]
fn compile_reports_the_taint_for_a_real_envoy_too() {
    let repo = ConfigRepo::load(&fixture("secret-in-command")).unwrap();
    let err = repo
        .compile(
            "grafana1.example.com",
            &example_facts(),
            &secrets_for(&repo),
        )
        .unwrap_err();
    assert_eq!(err.len(), 1);
    assert_eq!(
        err.iter().next().unwrap().resource.as_deref(),
        Some("set-grafana-password")
    );
    assert_no_canary(&err.to_string());
}

#[test]
fn cycle_is_named_in_full() {
    let text = diagnostics_of("cycle").to_string();
    assert!(
        text.contains("dependency cycle: a -> b -> c -> a"),
        "{text}"
    );
    insta::assert_snapshot!(text);
}

#[test]
fn missing_var_names_var_resource_and_position() {
    let text = diagnostics_of("missing-var").to_string();
    assert!(text.contains("resource 'pg-config'"), "{text}");
    assert!(text.contains("'db_password'"), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn duplicate_name_names_both_places() {
    let text = diagnostics_of("duplicate-name").to_string();
    assert!(text.contains("modules/base.vgo:2:11"), "{text}");
    assert!(text.starts_with("modules/web.vgo:5:11"), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn unknown_type_lists_valid_types() {
    insta::assert_snapshot!(diagnostics_of("unknown-type").to_string());
}

#[test]
fn relative_target_path_is_refused() {
    insta::assert_snapshot!(diagnostics_of("relative-path").to_string());
}

#[test]
fn notify_to_a_missing_resource_is_refused() {
    insta::assert_snapshot!(diagnostics_of("notify-missing").to_string());
}

#[test]
fn unknown_fields_are_refused_with_the_valid_list() {
    let d = diagnostics_of("unknown-field");
    assert_eq!(d.len(), 2, "{d}");
    insta::assert_snapshot!(d.to_string());
}

#[test]
fn missing_module_names_role_and_path() {
    let text = diagnostics_of("missing-module").to_string();
    assert_eq!(
        text,
        "nodes.vgo:3:13: role 'database' has no module: expected the file modules/database.vgo"
    );
}

#[test]
fn check_reports_every_problem_in_one_run() {
    let d = diagnostics_of("many-errors");
    let text = d.to_string();
    assert_no_canary(&text);
    assert_eq!(d.len(), 3, "{text}");
    assert!(text.contains("missing var 'db_password'"), "{text}");
    assert!(text.contains("would appear in the command line"), "{text}");
    assert!(text.contains("missing var 'host'"), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn a_missing_nodes_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let d = ConfigRepo::load(dir.path()).unwrap_err();
    assert_eq!(d.len(), 1);
    let first = d.iter().next().unwrap();
    assert_eq!(first.file, "nodes.vgo");
    assert_eq!(first.line, 0);
}
