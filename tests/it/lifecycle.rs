//! The secret store's lifecycle over the real binaries: `vigocli secrets
//! rekey` under a running server (the crash points are tested in
//! vigo-secrets' `local/rekey.rs`).

use std::path::Path;

use vigo_secrets::SecretProvider;

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

/// A server config like `dir`'s, with `secrets` as its `secrets:` section.
fn target_config(dir: &TestDir, name: &str, secrets: &str) -> std::path::PathBuf {
    dir.write(
        name,
        &format!(
            "listen: \"127.0.0.1:{}\"\ndata_dir: data\nconfig_dir: config\ndatabase:\n  dsn: \"secret:vigo/db/dsn\"\n{secrets}",
            dir.port
        ),
    )
}

fn cli_config(config: &Path, args: &[&str]) -> std::process::Output {
    crate::support::run(
        std::process::Command::new(crate::support::bin("vigocli"))
            .arg("--config")
            .arg(config)
            .args(args)
            .stdin(std::process::Stdio::null()),
    )
}

#[test]
fn issue_17_migrate_local_to_isopass_and_back() {
    let mut isopass = crate::isopass::Isopass::new();
    isopass.start();
    let client = isopass.client();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = TestDir::new();
    let mut rng = TestRng::from_clock();
    let (first, second) = (
        format!("canary-{}", rng.token()),
        format!("canary-{}", rng.token()),
    );
    let mut outputs = cli_ok(&dir, &["secrets", "bootstrap"]);
    for _ in 0..2 {
        let set = dir.cli_with_stdin(&["secrets", "set", PASSWORD, "-"], first.as_bytes());
        assert!(set.status.success(), "{}", all_output(&set));
    }
    let listed = stdout(&dir.cli(&["secrets", "list"]));
    let paths: Vec<&str> = listed
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert!(paths.len() > 5, "{listed}");
    let to_isopass = target_config(
        &dir,
        "isopass.yaml",
        &isopass.config(&isopass.file("token")),
    );
    let target = to_isopass.to_str().unwrap();

    // Dry run: nothing written.
    let dry = dir.cli(&[
        "secrets",
        "migrate",
        "--to",
        "isopass",
        "--target-config",
        target,
    ]);
    let text = all_output(&dry);
    outputs.push_str(&text);
    assert!(dry.status.success(), "{text}");
    assert!(
        text.contains(&format!("{PASSWORD}  2 -> isopass\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Dry run: {} secrets would be copied from local to isopass; nothing was written.",
            paths.len()
        )),
        "{text}"
    );
    assert!(runtime.block_on(client.list("")).unwrap().is_empty());

    // A target of the wrong kind is refused.
    let wrong = dir.cli(&[
        "secrets",
        "migrate",
        "--to",
        "local",
        "--target-config",
        target,
    ]);
    assert!(!wrong.status.success());
    assert!(all_output(&wrong).contains("names the isopass backend, not local"));

    let apply = dir.cli(&[
        "secrets",
        "migrate",
        "--to",
        "isopass",
        "--target-config",
        target,
        "--apply",
    ]);
    let text = all_output(&apply);
    outputs.push_str(&text);
    assert!(apply.status.success(), "{text}");
    assert!(
        text.contains(&format!("{PASSWORD}  2 -> isopass 1  copied\n")),
        "{text}"
    );
    assert!(text.contains("replace the `secrets:` section of"), "{text}");
    for path in &paths {
        let local = stdout(&dir.cli(&["secrets", "get", path]));
        let remote = runtime
            .block_on(client.get(&vigo_secrets::SecretPath::parse(path).unwrap()))
            .unwrap();
        assert_eq!(
            format!("{}\n", remote.value.expose_secret()),
            local,
            "{path}"
        );
    }
    // Again: nothing to change.
    let again = dir.cli(&[
        "secrets",
        "migrate",
        "--to",
        "isopass",
        "--target-config",
        target,
        "--apply",
    ]);
    let text = all_output(&again);
    assert!(
        text.contains(&format!("{PASSWORD}  2 -> isopass 1  unchanged\n")),
        "{text}"
    );

    // The switched server starts on isopass alone.
    std::fs::copy(&to_isopass, dir.config()).unwrap();
    let mut server = dir.start_server(&[]);
    assert!(server.terminate().success(), "{}", server.log());

    // And back to a new local store.
    runtime
        .block_on(client.set(
            &vigo_secrets::SecretPath::parse(PASSWORD).unwrap(),
            &vigo_secrets::SecretValue::from(second.as_str()),
        ))
        .unwrap();
    let local_dir = dir.path().join("local");
    let to_local = target_config(
        &dir,
        "local.yaml",
        &format!(
            "secrets:\n  backend: local\n  key_file: \"{0}/master.key\"\n  secrets_dir: \"{0}/secrets\"\n",
            local_dir.display()
        ),
    );
    let target = to_local.to_str().unwrap();
    let dry = dir.cli(&[
        "secrets",
        "migrate",
        "--to",
        "local",
        "--target-config",
        target,
    ]);
    let text = all_output(&dry);
    assert!(dry.status.success(), "{text}");
    assert!(
        text.contains("A new master key would be generated at"),
        "{text}"
    );
    assert!(
        !local_dir.exists(),
        "a dry run wrote {}",
        local_dir.display()
    );
    let apply = dir.cli(&[
        "secrets",
        "migrate",
        "--to",
        "local",
        "--target-config",
        target,
        "--apply",
    ]);
    let text = all_output(&apply);
    outputs.push_str(&text);
    assert!(apply.status.success(), "{text}");
    assert!(
        text.contains(&format!("{PASSWORD}  2 -> local 1  copied\n")),
        "{text}"
    );
    let got = cli_config(&to_local, &["secrets", "get", PASSWORD]);
    assert_eq!(stdout(&got), format!("{second}\n"));
    assert_eq!(
        stdout(&cli_config(&to_local, &["secrets", "list"]))
            .lines()
            .count(),
        paths.len()
    );
    for canary in [&first, &second, &isopass.token] {
        assert!(!outputs.contains(canary.as_str()));
    }
}
