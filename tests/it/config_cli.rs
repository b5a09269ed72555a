//! `vigocli check` and `vigocli catalog` on real config repositories: the
//! seed's examples compile, and each kind of mistake fails with file:line.

use std::path::Path;

use crate::support::{TestDir, assert_contains, stderr, stdout};

/// Copies a config repository into the test folder's `config/`.
fn copy_repo(from: &Path, dir: &TestDir) {
    for entry in vigo_test_support::files_under(from) {
        let rel = entry.strip_prefix(from).expect("inside the repo");
        let text = std::fs::read_to_string(&entry).expect("reading a repo file");
        dir.write(&format!("config/{}", rel.display()), &text);
    }
}

fn prepared(repo: &Path) -> TestDir {
    let dir = TestDir::new();
    copy_repo(repo, &dir);
    let out = dir.cli(&["secrets", "bootstrap"]);
    assert!(out.status.success(), "{}", stderr(&out));
    dir
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/vigo-compiler/tests/fixtures")
        .join(name)
}

#[test]
fn seed_examples_compile_and_the_catalog_hides_the_password() {
    let dir = prepared(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config"));
    let canary = "canary-db-pw-5d1e7c";
    for (path, value) in [
        ("vigo/db/password", canary),
        ("vigo/grafana/admin_password", "gp-1"),
        ("vigo/deploy/key", "dk-1"),
    ] {
        let out = dir.cli_with_stdin(&["secrets", "set", path, "-"], value.as_bytes());
        assert!(out.status.success(), "{}", stderr(&out));
    }

    let out = dir.cli(&["check"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let out = dir.cli(&["catalog", "db1.example.com"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_contains(&text, "password = [secret:vigo/db/password]");
    assert!(!text.contains(canary));
    assert!(!stderr(&out).contains(canary));

    let out = dir.cli(&["catalog", "db1.example.com", "--output", "json"]);
    assert!(!stdout(&out).contains(canary));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON catalog");
    assert_eq!(json["envoy"], "db1.example.com");

    let out = dir.cli(&["catalog", "db1.example.com", "--reveal"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("password = {canary}")));
    assert!(stderr(&out).contains("warning: --reveal"));
}

#[test]
fn check_reports_each_mistake_with_file_and_line() {
    let cases: &[(&str, &str)] = &[
        (
            "secret-in-command",
            "resource 'set-grafana-password': secret 'vigo/grafana/admin_password' would appear in the command line; pass it with stdin or secret_file",
        ),
        ("cycle", "dependency cycle: "),
        ("missing-var", "missing var '"),
        ("duplicate-name", "duplicate"),
        ("unknown-type", "unknown"),
        ("relative-path", "must be absolute"),
        ("notify-missing", "notify"),
    ];
    for (name, expected) in cases {
        let dir = prepared(&fixture(name));
        // Store whatever the fixture references, so only the mistake fails.
        for path in ["vigo/grafana/admin_password", "vigo/db/password"] {
            dir.cli_with_stdin(&["secrets", "set", path, "-"], b"x");
        }
        let out = dir.cli(&["check"]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{name}: check passed");
        assert!(err.contains(expected), "{name}: {err}");
        assert!(
            err.lines()
                .any(|l| l.starts_with("modules/") && l.contains(".vgo:")),
            "{name}: no file:line in {err}"
        );
    }
}
