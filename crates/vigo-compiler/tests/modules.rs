//! The module language of issue 15: files from the repository (`source`,
//! `template`), exec guards and fields, package versions, and the symlink,
//! user, group and line resources. Each repository is written into a
//! temporary folder; errors are compared whole, with file:line:column.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use vigo_catalog::ResourceKind;
use vigo_compiler::{ConfigRepo, Diagnostics, render_catalog_text};
use vigo_secrets::VersionedSecret;

const CANARY: &str = "CANARY-4e1d";

/// A repository: every envoy gets role `m` and the var `key`, a secret.
fn repo(module: &str, files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("modules")).unwrap();
    std::fs::write(
        dir.path().join("nodes.vgo"),
        "envoys:\n  - match: \"*\"\n    roles: [m]\n    vars:\n      key: \"secret:vigo/k\"\n      port: 8080\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("modules/m.vgo"), module).unwrap();
    for (rel, data) in files {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
    dir
}

fn secrets(repo: &ConfigRepo) -> BTreeMap<vigo_secrets::SecretPath, VersionedSecret> {
    common::secrets_for(repo, |p| (format!("{CANARY}-{p}"), 1))
}

/// Load errors, or else check errors.
fn problems_in(dir: &Path) -> Diagnostics {
    match ConfigRepo::load(dir) {
        Err(d) => d,
        Ok(repo) => repo.check(&secrets(&repo)),
    }
}

fn problems(module: &str, files: &[(&str, &[u8])]) -> String {
    let dir = repo(module, files);
    let text = problems_in(dir.path()).to_string();
    assert!(!text.contains(CANARY), "a secret value leaked:\n{text}");
    text
}

fn catalog_text(module: &str, files: &[(&str, &[u8])]) -> (String, vigo_catalog::Catalog) {
    let dir = repo(module, files);
    let repo = ConfigRepo::load(dir.path()).unwrap_or_else(|d| panic!("{d}"));
    let compiled = repo
        .compile(
            "web1.example.com",
            &serde_json::Value::Null,
            &secrets(&repo),
        )
        .unwrap_or_else(|d| panic!("{d}"));
    let text = render_catalog_text(&compiled.catalog);
    assert!(!text.contains(CANARY), "{text}");
    (text, compiled.catalog)
}

#[test]
fn issue_15_source_copies_bytes_and_template_renders() {
    let binary: Vec<u8> = (0..=255u8).chain([0, 0xfe, 0xff]).collect();
    let (text, catalog) = catalog_text(
        "resources:\n  - name: logo\n    type: file\n    target_path: /srv/logo.bin\n    source: files/logo.bin\n  - name: conf\n    type: file\n    target_path: /etc/app.conf\n    template: templates/app.conf.tmpl\n",
        &[
            ("files/logo.bin", &binary),
            (
                "templates/app.conf.tmpl",
                b"host = {{ .Envoy.Name }}\nport = {{ .Vars.port }}\nkey = {{ .Vars.key }}\n",
            ),
        ],
    );
    let ResourceKind::File(logo) = &catalog.resources[0].kind else {
        panic!("a file")
    };
    assert_eq!(logo.bytes.as_ref().unwrap().data, binary);
    let ResourceKind::File(conf) = &catalog.resources[1].kind else {
        panic!("a file")
    };
    // A template using a secret is a secret-bearing file: mode 0600.
    assert_eq!(conf.mode.to_string(), "0600");
    insta::assert_snapshot!(text);
}

#[test]
fn issue_15_template_errors_point_into_the_template_file() {
    let module = "resources:\n  - name: conf\n    type: file\n    target_path: /etc/app.conf\n    template: templates/app.conf.tmpl\n";
    let syntax = problems(
        module,
        &[(
            "templates/app.conf.tmpl",
            b"a = 1\nb = {{ if .Vars.port }}\n",
        )],
    );
    assert!(syntax.starts_with("templates/app.conf.tmpl:2:"), "{syntax}");
    let missing_var = problems(
        module,
        &[(
            "templates/app.conf.tmpl",
            b"a = 1\n\nb = {{ .Vars.nope }}\n",
        )],
    );
    let missing_file = problems(module, &[]);
    insta::assert_snapshot!(format!("{syntax}\n{missing_var}\n{missing_file}"));
}

#[test]
fn issue_15_source_must_stay_inside_the_config_directory() {
    let file = |source: &str| {
        format!(
            "resources:\n  - name: f\n    type: file\n    target_path: /etc/f\n    source: \"{source}\"\n"
        )
    };
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("passwd"), "root:x:0:0").unwrap();
    let dir = repo(&file("files/link"), &[]);
    std::fs::create_dir_all(dir.path().join("files")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("passwd"), dir.path().join("files/link"))
        .unwrap();
    let through_symlink = problems_in(dir.path())
        .to_string()
        .replace(&outside.path().display().to_string(), "OUTSIDE");

    let dots = problems(&file("files/../../etc/passwd"), &[]);
    let absolute = problems(&file("/etc/passwd"), &[]);
    let missing = problems(&file("files/none.conf"), &[]);
    let folder = problems(&file("files"), &[("files/x", b"x")]);

    let big = repo(&file("files/big.bin"), &[("files/big.bin", b"")]);
    std::fs::File::options()
        .write(true)
        .open(big.path().join("files/big.bin"))
        .unwrap()
        .set_len(4 * 1024 * 1024 + 1)
        .unwrap();
    let too_big = problems_in(big.path()).to_string();

    let both = problems(
        "resources:\n  - name: f\n    type: file\n    target_path: /etc/f\n    content: x\n    source: files/a\n",
        &[("files/a", b"a")],
    );
    insta::assert_snapshot!(
        [
            through_symlink,
            dots,
            absolute,
            missing,
            folder,
            too_big,
            both
        ]
        .join("\n")
    );
}

#[test]
fn issue_15_exec_guards_user_environment_and_umask() {
    let (text, catalog) = catalog_text(
        "resources:\n  - name: migrate\n    type: exec\n    command: \"app migrate --port {{ .Vars.port }}\"\n    unless: \"app migrated\"\n    onlyif: \"test -x /usr/bin/app\"\n    user: app\n    group: app\n    environment:\n      APP_ENV: production\n      APP_PORT: \"{{ .Vars.port }}\"\n    umask: 0027\n    stdin: \"{{ .Vars.key }}\"\n",
        &[],
    );
    let ResourceKind::Exec(exec) = &catalog.resources[0].kind else {
        panic!("an exec")
    };
    assert_eq!(exec.environment["APP_PORT"], "8080");
    assert_eq!(exec.umask.unwrap().bits(), 0o027);
    insta::assert_snapshot!(text);
}

#[test]
fn issue_15_secrets_stay_out_of_guards_environment_and_lines() {
    let compiled = problems(
        "resources:\n  - name: a\n    type: exec\n    command: run\n    environment:\n      TOKEN: \"{{ .Vars.key }}\"\n  - name: b\n    type: exec\n    command: run\n    unless: \"check {{ .Vars.key }}\"\n  - name: c\n    type: exec\n    command: run\n    onlyif: \"check secret:vigo/k\"\n  - name: d\n    type: line\n    target_path: /etc/d\n    line: \"pw={{ .Vars.key }}\"\n",
        &[],
    );
    let loaded = problems(
        "resources:\n  - name: e\n    type: exec\n    command: \"run {{secret_file}}\"\n    secret_file: \"{{ .Vars.key }}\"\n    user: app\n  - name: f\n    type: exec\n    command: run\n    environment:\n      9BAD: x\n",
        &[],
    );
    insta::assert_snapshot!(format!("{compiled}\n{loaded}"));
}

#[test]
fn issue_15_package_symlink_user_group_and_line() {
    let (text, _) = catalog_text(
        "resources:\n  - name: nginx\n    type: package\n    package: nginx\n    version: \"1.24.0-2\"\n  - name: site\n    type: symlink\n    target_path: /etc/nginx/sites-enabled/app\n    points_to: ../sites-available/app\n    force: true\n  - name: app-group\n    type: group\n    group: app\n    gid: 990\n    system: true\n  - name: app-user\n    type: user\n    user: app\n    uid: 990\n    gid: app\n    groups: [adm, www-data]\n    home: /srv/app\n    shell: /usr/sbin/nologin\n    system: true\n    password: \"secret:vigo/users/app\"\n    depends_on: app-group\n  - name: no-root-login\n    type: line\n    target_path: /etc/ssh/sshd_config\n    line: PermitRootLogin no\n    match: \"^#?PermitRootLogin\"\n  - name: old-line\n    type: line\n    target_path: /etc/hosts\n    match: \"^10\\\\.0\\\\.0\\\\.9 \"\n    state: absent\n",
        &[],
    );
    insta::assert_snapshot!(text);
}

#[test]
fn issue_15_new_resource_errors_are_positioned() {
    let text = problems(
        "resources:\n  - name: p\n    type: package\n    package: nginx\n    version: \"1.0\"\n    state: absent\n  - name: s\n    type: symlink\n    target_path: /etc/s\n  - name: u\n    type: user\n    user: app\n    password: \"$6$plain$hash\"\n  - name: u2\n    type: user\n    user: \"-rf\"\n  - name: g\n    type: group\n    group: app\n    gid: -1\n  - name: l\n    type: line\n    target_path: /etc/l\n    line: x\n    match: \"(unclosed\"\n  - name: l2\n    type: line\n    target_path: /etc/l\n  - name: x\n    type: file\n    target_path: /etc/x\n    umask: 0022\n",
        &[],
    );
    insta::assert_snapshot!(text);
}

#[test]
fn issue_15_tags_reach_the_catalog() {
    let (text, catalog) = catalog_text(
        "resources:\n  - name: conf\n    type: file\n    target_path: /etc/nginx.conf\n    content: x\n    tags: [nginx, web.front, nginx]\n  - name: pkg\n    type: package\n    package: nginx\n    tags: nginx\n  - name: year\n    type: package\n    package: y\n    tags: [2024, v1.10]\n  - name: plain\n    type: package\n    package: curl\n",
        &[],
    );
    let tags = |i: usize| -> Vec<&str> {
        catalog.resources[i]
            .tags
            .iter()
            .map(|t| t.as_str())
            .collect()
    };
    // Repeats dropped, a plain string is a list of one, numbers as written.
    assert_eq!(tags(0), ["nginx", "web.front"]);
    assert_eq!(tags(1), ["nginx"]);
    assert_eq!(tags(2), ["2024", "v1.10"]);
    assert!(tags(3).is_empty());
    let json = serde_json::to_value(&catalog.resources).unwrap();
    assert_eq!(json[0]["tags"], serde_json::json!(["nginx", "web.front"]));
    assert!(json[3].get("tags").is_none(), "{json}");
    insta::assert_snapshot!(text);
}

#[test]
fn issue_15_invalid_tags_are_positioned() {
    let text = problems(
        "resources:\n  - name: a\n    type: package\n    package: a\n    tags: [ok, \"web server\", \"\"]\n  - name: b\n    type: package\n    package: b\n    tags: {web: true}\n  - name: c\n    type: package\n    package: c\n    tags:\n      - true\n      - [x]\n      - \"a/b\"\n",
        &[],
    );
    insta::assert_snapshot!(text);
}
