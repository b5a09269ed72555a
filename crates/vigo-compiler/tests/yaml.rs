//! YAML as the user writes it: modes, booleans, and parser errors in the
//! user's terms. Each case is a repository in a temporary folder.

mod common;

use vigo_catalog::{Catalog, ResourceKind};
use vigo_compiler::{ConfigRepo, Diagnostics};

/// Writes `nodes.vgo` (every envoy gets role `m`, with `vars`) and
/// `modules/m.vgo`; returns the catalog of `h1` or every problem.
fn compile(vars: &str, module: &str) -> Result<Catalog, Diagnostics> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("modules")).unwrap();
    std::fs::write(
        dir.path().join("nodes.vgo"),
        format!("envoys:\n  - match: \"*\"\n    roles: [m]\n    vars:\n{vars}"),
    )
    .unwrap();
    std::fs::write(dir.path().join("modules/m.vgo"), module).unwrap();
    let repo = ConfigRepo::load(dir.path())?;
    let secrets = common::secrets_for(&repo, |_| ("CANARY-value".to_owned(), 1));
    let problems = repo.check(&secrets);
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(repo
        .compile("h1", &serde_json::Value::Null, &secrets)
        .map_err(|_| repo.check(&secrets))?
        .catalog)
}

fn file_mode(mode: &str) -> Result<String, String> {
    let module = format!(
        "resources:\n  - name: f\n    type: file\n    target_path: /etc/f\n    mode: {mode}\n"
    );
    match compile("      x: 1\n", &module) {
        Ok(catalog) => match &catalog.resources[0].kind {
            ResourceKind::File(f) => Ok(f.mode.to_string()),
            other => panic!("unexpected {}", other.type_name()),
        },
        Err(d) => Err(d.to_string()),
    }
}

/// The text a file resource renders with `content`.
fn content(vars: &str, template: &str) -> Result<String, String> {
    let module = format!(
        "resources:\n  - name: f\n    type: file\n    target_path: /etc/f\n    content: '{template}'\n"
    );
    match compile(vars, &module) {
        Ok(catalog) => Ok(serde_json::to_value(&catalog.resources[0])
            .unwrap()
            .get("content")
            .unwrap()
            .to_string()),
        Err(d) => Err(d.to_string()),
    }
}

#[test]
fn issue_12_item_17_unquoted_prefixed_modes_are_octal_or_an_error() {
    for (written, want) in [
        ("0644", "0644"),
        ("\"0644\"", "0644"),
        ("644", "0644"),
        ("0o644", "0644"),
        ("\"0o640\"", "0640"),
        ("0o4755", "4755"),
    ] {
        assert_eq!(file_mode(written).as_deref(), Ok(want), "{written}");
    }
    for written in ["0x1A4", "0b110100100", "0x1a4"] {
        let error = file_mode(written).expect_err(written);
        assert_eq!(
            error,
            format!(
                "modules/m.vgo:5:11: resource 'f': invalid mode '{written}': write it as an octal string such as \"0644\""
            )
        );
    }
}

#[test]
fn issue_12_item_17_only_lower_case_true_and_false_are_booleans() {
    let vars = "      a: True\n      b: FALSE\n      c: true\n      d: [True, false, TRUE]\n      e: {k: False}\n";
    let text = content(
        vars,
        "{{ .Vars.a }} {{ .Vars.b }} {{ .Vars.c }} {{ .Vars.d }} {{ .Vars.e.k }} {{ if .Vars.c }}yes{{ end }}",
    )
    .unwrap();
    assert!(
        text.contains("True FALSE true [True false TRUE] False yes"),
        "{text}"
    );
    // A typed boolean field refuses the other spellings.
    let module =
        "resources:\n  - name: s\n    type: service\n    service: nginx\n    enabled: True\n";
    let error = compile("      x: 1\n", module).unwrap_err().to_string();
    assert_eq!(
        error,
        "modules/m.vgo:5:14: resource 's': 'enabled' must be true or false, not a string"
    );
    let module =
        "resources:\n  - name: s\n    type: service\n    service: nginx\n    enabled: false\n";
    compile("      x: 1\n", module).unwrap();
}

/// Every problem of a module whose text is `module`.
fn module_problems(module: &str) -> String {
    compile("      x: 1\n", module).unwrap_err().to_string()
}

#[test]
fn issue_12_item_17_yaml_errors_are_in_the_users_terms() {
    let mut bomb = String::from("vars:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for (name, previous) in ["b", "c", "d", "e", "f", "g", "h", "i"]
        .iter()
        .zip(["a", "b", "c", "d", "e", "f", "g", "h"])
    {
        bomb.push_str(&format!(
            "  {name}: &{name} [{}]\n",
            vec![format!("*{previous}"); 10].join(", ")
        ));
    }
    bomb.push_str("resources: []\n");
    for (module, want) in [
        (
            "resources: []\n---\nresources: []\n".to_owned(),
            "modules/m.vgo:3:1: the file holds more than one YAML document; remove the '---' line that starts the second",
        ),
        (
            "resources: []\nresources: []\n".to_owned(),
            "modules/m.vgo:2:1: key 'resources' is written twice in the same mapping; keep one of them",
        ),
        (
            bomb,
            "the file expands to too much data through anchors and aliases (&name, *name); write the values out instead",
        ),
    ] {
        let text = module_problems(&module);
        assert!(text.ends_with(want), "{text}");
        assert_eq!(text.lines().count(), 1, "{text}");
    }
    for module in [
        "resources: [\n",
        "resources:\n  - name: a\n   type: file\n",
        "\t- x\n",
    ] {
        let text = module_problems(module);
        for internal in ["Options", "from_str", "Policy", "serde", " at line "] {
            assert!(!text.contains(internal), "{text}");
        }
    }
}
