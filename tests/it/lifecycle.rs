//! The secret store's lifecycle over the real binaries: `vigocli secrets
//! rekey` under a running server (the crash points are tested in
//! vigo-secrets' `local/rekey.rs`).

use std::path::Path;

use crate::support::{EnvoyHost, TestDir, TestRng, all_output, cli_ok, contains_bytes, stdout};

const APP1: &str = "app1.example.com";
const PASSWORD: &str = "vigo/app/password";

/// A config repository that writes `password = <secret>` to `out/secret.conf`.
fn write_config_repo(dir: &TestDir, out: &Path) {
    dir.write(
        "config/nodes.vgo",
        "envoys:\n  - match: \"app*.example.com\"\n    roles: [app]\n    vars:\n      password: \"secret:vigo/app/password\"\n",
    );
    dir.write(
        "config/modules/app.vgo",
        &format!(
            "resources:\n  - name: app-secret\n    type: file\n    target_path: {}/secret.conf\n    content: |\n      password = {{{{ .Vars.password }}}}\n",
            out.display()
        ),
    );
}

fn secret_conf(out: &Path) -> String {
    std::fs::read_to_string(out.join("secret.conf")).unwrap_or_default()
}

#[test]
fn issue_17_rekey_under_a_running_server_keeps_every_secret_and_needs_no_restart() {
    let dir = TestDir::new();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let mut rng = TestRng::from_clock();
    let (first, second) = (
        format!("canary-{}", rng.token()),
        format!("canary-{}", rng.token()),
    );
    let mut outputs = cli_ok(&dir, &["secrets", "bootstrap"]);
    let set = dir.cli_with_stdin(&["secrets", "set", PASSWORD, "-"], first.as_bytes());
    assert!(set.status.success(), "{}", all_output(&set));
    write_config_repo(&dir, &out);
    let mut server = dir.start_server(&[]);
    let token = cli_ok(&dir, &["envoys", "token"]);
    let host = EnvoyHost::new(&dir, APP1, Some(token.trim()));
    let run = host.run_once();
    assert!(run.status.success(), "{}", all_output(&run));
    outputs.push_str(&all_output(&run));
    assert_eq!(secret_conf(&out), format!("password = {first}\n"));

    let before: Vec<(String, String)> = stdout(&dir.cli(&["secrets", "list"]))
        .lines()
        .map(|l| {
            let path = l.split_whitespace().next().unwrap().to_owned();
            let value = stdout(&dir.cli(&["secrets", "get", &path]));
            (l.to_owned(), value)
        })
        .collect();
    let old_key = std::fs::read(dir.key_file()).unwrap();

    let rekey = dir.cli(&["secrets", "rekey"]);
    let text = all_output(&rekey);
    outputs.push_str(&text);
    assert!(rekey.status.success(), "{text}");
    assert!(text.contains(&format!("{PASSWORD}  1\n")), "{text}");
    assert!(
        text.contains("until `vigocli secrets rekey --finish`"),
        "{text}"
    );
    assert_ne!(std::fs::read(dir.key_file()).unwrap(), old_key);
    let old_file = dir.data_dir().join("master.key.old");
    assert_eq!(std::fs::read(&old_file).unwrap(), old_key);

    // Same paths, versions and values.
    for (line, value) in &before {
        let path = line.split_whitespace().next().unwrap();
        assert_eq!(
            &stdout(&dir.cli(&["secrets", "get", path])),
            value,
            "{path}"
        );
    }
    assert_eq!(
        stdout(&dir.cli(&["secrets", "list"]))
            .lines()
            .collect::<Vec<_>>(),
        before.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>()
    );

    // The running server reads a secret written under the new key.
    let set = dir.cli_with_stdin(&["secrets", "set", PASSWORD, "-"], second.as_bytes());
    let text = all_output(&set);
    outputs.push_str(&text);
    assert!(text.contains("Server notified"), "{text}");
    let run = host.run_once();
    outputs.push_str(&all_output(&run));
    assert!(run.status.success(), "{}", all_output(&run));
    assert_eq!(secret_conf(&out), format!("password = {second}\n"));

    let finish = dir.cli(&["secrets", "rekey", "--finish"]);
    assert!(finish.status.success(), "{}", all_output(&finish));
    assert!(!old_file.exists());
    // A restart opens everything under the new key alone.
    assert!(server.terminate().success());
    let mut server = dir.start_server(&[]);
    let run = host.run_once();
    outputs.push_str(&all_output(&run));
    assert!(run.status.success(), "{}", all_output(&run));
    server.terminate();
    let log = server.log();
    for canary in [&first, &second] {
        assert!(!contains_bytes(outputs.as_bytes(), canary.as_bytes()));
        assert!(!log.contains(canary.as_str()));
    }
}
