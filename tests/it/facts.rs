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
    let dir = bootstrapped();
    dir.write(
        "config/nodes.vgo",
        "envoys:\n  - match: \"*\"\n    roles: [motd]\n",
    );
    dir.write(
        "config/modules/motd.vgo",
        "resources:\n  - name: motd\n    type: file\n    target_path: /etc/motd\n    content: |\n      {{ .Facts.os.family }} {{ .Facts.custom.anything }}\n      {{ .Facts.os.famly }}\n",
    );
    let err = failed_check(&dir);
    assert!(
        err.contains(
            "modules/motd.vgo:7:10: resource 'motd': unknown fact 'os.famly' (.Facts.os.famly)"
        ),
        "{err}"
    );
    assert!(!err.contains("anything"), "{err}");

    // With no server to ask for its facts, `catalog` says it used the
    // stand-in facts, since this catalog depends on facts.
    dir.write(
        "config/modules/motd.vgo",
        "resources:\n  - name: motd\n    type: file\n    target_path: /etc/motd\n    content: \"{{ .Facts.os.family }}\\n\"\n",
    );
    let out = dir.cli(&["catalog", "web1.example.com"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("warning: compiling with the stand-in facts of `vigocli check`: "),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("      debian\n"), "{}", stdout(&out));
}

/// Copies `examples/config` into `dir/config`, every absolute path under
/// `/etc/` moved under `root` and the example's account `vigo-deploy`
/// renamed `account`, so that a real envoy can converge it here.
fn example_under(dir: &TestDir, root: &Path, account: &str) {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config");
    let prefix = format!("{}/etc/", root.display());
    let mut stack = vec![examples.clone()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(&examples).unwrap().display().to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            let moved = if rel.ends_with(".vgo") {
                text.replace(" /etc/", &format!(" {prefix}"))
                    .replace("vigo-deploy", account)
            } else {
                text
            };
            dir.write(&format!("config/{rel}"), &moved);
        }
    }
}

#[test]
fn issue_15_the_example_converges_with_facts_and_include() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: the example's user and group need root to be created");
        return;
    }
    let dir = TestDir::new();
    let root = dir.path().join("root");
    // What a host already has: the folders and the file `line` edits.
    std::fs::create_dir_all(root.join("etc/apt/apt.conf.d")).unwrap();
    std::fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    // The example's user and group, under a name of this run, removed
    // again however the test ends.
    let account = Account(format!("vigo-t{}", &TestRng::from_clock().token()[..8]));
    example_under(&dir, &root, &account.0);
    let mut logs = cli_ok(&dir, &["secrets", "bootstrap"]);
    for path in [
        "vigo/db/password",
        "vigo/grafana/admin_password",
        "vigo/deploy/key",
    ] {
        let set = dir.cli_with_stdin(&["secrets", "set", path, "-"], b"example-value");
        assert!(set.status.success(), "{}", all_output(&set));
    }
    let out = dir.cli(&["check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let server = dir.start_server(DEBUG);
    let token = cli_ok(&dir, &["envoys", "token"]);
    let host = EnvoyHost::new(&dir, "web1.example.com", Some(token.trim()));
    // The default folder, inside the data folder (which must stay 0700).
    let data = host.root.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let facts_dir = data.join("facts.d");
    std::fs::create_dir_all(&facts_dir).unwrap();
    write_fact(&facts_dir, "tier.txt", "tier=gold\n", 0o644);

    let first = host.run_once();
    logs.push_str(&all_output(&first));
    assert!(first.status.success(), "{}", all_output(&first));
    let motd = std::fs::read_to_string(root.join("etc/motd")).unwrap();
    assert!(motd.starts_with("web1.example.com: "), "{motd}");
    assert!(motd.ends_with("\ntier: gold\n"), "{motd}");
    assert!(root.join("etc/nginx/sites-enabled/example").is_symlink());
    let shown = cli_ok(&dir, &["envoys", "show", "web1.example.com"]);
    let debian = shown.contains("  os.family: debian\n");
    assert_eq!(
        root.join("etc/apt/apt.conf.d/99vigo-no-recommends")
            .exists(),
        debian,
        "match_facts on os.family:\n{shown}"
    );

    let passwd = getent("passwd", &account.0);
    assert!(
        passwd.ends_with(&format!(":/var/lib/{0}:/usr/sbin/nologin", account.0)),
        "{passwd}"
    );
    let group = getent("group", &account.0);
    let gid = group.split(':').nth(2).unwrap();
    assert_eq!(passwd.split(':').nth(3), Some(gid), "{passwd} / {group}");

    let second = host.run_once();
    logs.push_str(&all_output(&second));
    assert!(crate::support::in_sync(&second), "{}", all_output(&second));

    std::fs::write(root.join("etc/motd"), "edited by hand\n").unwrap();
    let noop = crate::support::run(&mut host.command(&[], &["--once", "--noop"]));
    let text = stdout(&noop);
    assert!(text.contains("changed  file[motd]: would write"), "{text}");
    assert!(text.contains("-edited by hand"), "{text}");
    assert!(text.contains("+web1.example.com: "), "{text}");
    logs.push_str(&server.log());
    assert!(!logs.contains("tier=gold"), "{logs}");
}

/// A user and group of the same name, deleted when dropped.
struct Account(String);

impl Drop for Account {
    fn drop(&mut self) {
        let _ = std::process::Command::new("userdel").arg(&self.0).status();
        let _ = std::process::Command::new("groupdel").arg(&self.0).status();
    }
}

/// The `getent DATABASE KEY` line, trimmed; panics when there is none.
fn getent(database: &str, key: &str) -> String {
    let out = std::process::Command::new("getent")
        .args([database, key])
        .output()
        .unwrap();
    assert!(out.status.success(), "no {database} entry {key}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn issue_15_check_catches_an_escaping_source_a_missing_template_and_a_secret_in_environment() {
    let dir = bootstrapped();
    dir.write("outside.conf", "not the repository's\n");
    dir.write(
        "config/nodes.vgo",
        "envoys:\n  - match: \"*\"\n    roles: [app]\n    vars:\n      token: \"secret:vigo/app/token\"\n",
    );
    dir.write(
        "config/modules/app.vgo",
        "resources:\n  - name: escaping\n    type: file\n    target_path: /etc/a.conf\n    source: ../outside.conf\n  - name: missing\n    type: file\n    target_path: /etc/b.conf\n    template: templates/none.tmpl\n  - name: env\n    type: exec\n    command: /bin/true\n    environment:\n      TOKEN: \"{{ .Vars.token }}\"\n",
    );
    insta::assert_snapshot!("issue_15_check_repository_files", failed_check(&dir));

    // The files resolved, the catalogs compile: the secret in
    // `environment` is refused as on a command line.
    dir.write("config/templates/none.tmpl", "templated\n");
    dir.write("config/files/inside.conf", "inside\n");
    let app = std::fs::read_to_string(dir.path().join("config/modules/app.vgo")).unwrap();
    dir.write(
        "config/modules/app.vgo",
        &app.replace("../outside.conf", "files/inside.conf"),
    );
    insta::assert_snapshot!("issue_15_check_secret_in_environment", failed_check(&dir));
}

/// A new installation with its generated secrets.
fn bootstrapped() -> TestDir {
    let dir = TestDir::new();
    cli_ok(&dir, &["secrets", "bootstrap"]);
    dir
}

/// `vigocli check`, which must fail; its stderr.
fn failed_check(dir: &TestDir) -> String {
    let out = dir.cli(&["check"]);
    assert!(!out.status.success(), "check passed:\n{}", all_output(&out));
    stderr(&out)
}
