//! The secret store's lifecycle over the real binaries: `vigocli secrets
//! rekey` under a running server (the crash points are tested in
//! vigo-secrets' `local/rekey.rs`).

use std::path::Path;

use vigo_secrets::SecretProvider;

use crate::support::{
    APP_NODES, EnvoyHost, TestDir, TestRng, all_output, assert_contains, cli_ok, contains_bytes,
    stdout,
};

const APP1: &str = "app1.example.com";
const PASSWORD: &str = "vigo/app/password";

/// A config repository that writes `password = <secret>` to `out/secret.conf`.
fn write_config_repo(dir: &TestDir, out: &Path) {
    dir.write("config/nodes.vgo", APP_NODES);
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
    assert_contains(&text, &format!("{PASSWORD}  1\n"));
    assert_contains(&text, "until `vigocli secrets rekey --finish`");
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
    assert_contains(&text, "Server notified");
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
    let dry = migrate(&dir, "isopass", target, false);
    let text = all_output(&dry);
    outputs.push_str(&text);
    assert!(dry.status.success(), "{text}");
    assert_contains(&text, &format!("{PASSWORD}  2 -> isopass\n"));
    assert!(
        text.contains(&format!(
            "Dry run: {} secrets would be copied from local to isopass; nothing was written.",
            paths.len()
        )),
        "{text}"
    );
    assert!(runtime.block_on(client.list("")).unwrap().is_empty());

    // A target of the wrong kind is refused.
    let wrong = migrate(&dir, "local", target, false);
    assert!(!wrong.status.success());
    assert!(all_output(&wrong).contains("names the isopass backend, not local"));

    let apply = migrate(&dir, "isopass", target, true);
    let text = all_output(&apply);
    outputs.push_str(&text);
    assert!(apply.status.success(), "{text}");
    assert_contains(&text, &format!("{PASSWORD}  2 -> isopass 1  copied\n"));
    assert_contains(&text, "replace the `secrets:` section of");
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
    let again = migrate(&dir, "isopass", target, true);
    let text = all_output(&again);
    assert_contains(&text, &format!("{PASSWORD}  2 -> isopass 1  unchanged\n"));

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
    let dry = migrate(&dir, "local", target, false);
    let text = all_output(&dry);
    assert!(dry.status.success(), "{text}");
    assert_contains(&text, "A new master key would be generated at");
    assert!(
        !local_dir.exists(),
        "a dry run wrote {}",
        local_dir.display()
    );
    let apply = migrate(&dir, "local", target, true);
    let text = all_output(&apply);
    outputs.push_str(&text);
    assert!(apply.status.success(), "{text}");
    assert_contains(&text, &format!("{PASSWORD}  2 -> local 1  copied\n"));
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

#[test]
fn issue_17_backup_restore_into_a_new_folder_and_the_envoy_checks_in_unchanged() {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;

    let a = TestDir::new();
    let out = a.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let canary = format!("canary-{}", TestRng::from_clock().token());
    cli_ok(&a, &["secrets", "bootstrap"]);
    let set = a.cli_with_stdin(&["secrets", "set", PASSWORD, "-"], canary.as_bytes());
    assert!(set.status.success(), "{}", all_output(&set));
    write_config_repo(&a, &out);
    let mut server = a.start_server(&[]);
    let token = cli_ok(&a, &["envoys", "token"]);
    let host = EnvoyHost::new(&a, APP1, Some(token.trim()));
    let run = host.run_once();
    assert!(run.status.success(), "{}", all_output(&run));
    let converged = secret_conf(&out);
    assert_eq!(converged, format!("password = {canary}\n"));

    // Online: the server keeps running during the backup.
    let passphrase = a.write("passphrase", "correct horse battery staple\n");
    let archive = a.path().join("vigo.backup");
    let backup = a.cli(&[
        "backup",
        archive.to_str().unwrap(),
        "--passphrase-file",
        passphrase.to_str().unwrap(),
    ]);
    let text = all_output(&backup);
    assert!(backup.status.success(), "{text}");
    assert_contains(&text, ", the database, the CA certificate.");
    assert_contains(&text, "The master key is not in it");
    assert_eq!(
        std::fs::metadata(&archive).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let sealed = std::fs::read(&archive).unwrap();
    assert!(!contains_bytes(&sealed, canary.as_bytes()));
    // Decrypted, it holds the expected entries and not the master key.
    let key_text = std::fs::read_to_string(a.key_file()).unwrap();
    let decryptor = age::Decryptor::new(&sealed[..]).unwrap();
    let identity = age::scrypt::Identity::new(age::secrecy::SecretString::from(
        "correct horse battery staple".to_owned(),
    ));
    let mut plain = Vec::new();
    decryptor
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .unwrap()
        .read_to_end(&mut plain)
        .unwrap();
    assert!(!contains_bytes(&plain, key_text.trim().as_bytes()));
    let names: Vec<String> = tar::Archive::new(&plain[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    for expected in [
        "vigo-backup.json",
        "vigo.db",
        "ca.crt",
        "secrets/vigo/app/password",
    ] {
        assert!(names.iter().any(|n| n == expected), "{names:?}");
    }
    assert!(
        !names
            .iter()
            .any(|n| n.contains("master.key") || n.ends_with(".lock"))
    );
    assert!(server.terminate().success());

    // A new folder, same port (the envoy's config names it).
    let b = TestDir::new();
    b.write(
        "vigosrv.yaml",
        &format!(
            "listen: \"127.0.0.1:{}\"\ndata_dir: data\nconfig_dir: config\ndatabase:\n  dsn: \"secret:vigo/db/dsn\"\n",
            a.port
        ),
    );
    write_config_repo(&b, &out);
    let refused = b.cli(&[
        "restore",
        archive.to_str().unwrap(),
        "--passphrase-file",
        passphrase.to_str().unwrap(),
    ]);
    assert!(all_output(&refused).contains("copy the master key from its own backup"));
    std::fs::create_dir_all(b.data_dir()).unwrap();
    std::fs::set_permissions(b.data_dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::copy(a.key_file(), b.key_file()).unwrap();
    std::fs::set_permissions(b.key_file(), std::fs::Permissions::from_mode(0o600)).unwrap();
    let wrong = b.write("wrong", "not the passphrase\n");
    let refused = b.cli(&[
        "restore",
        archive.to_str().unwrap(),
        "--passphrase-file",
        wrong.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    let restore = b.cli(&[
        "restore",
        archive.to_str().unwrap(),
        "--passphrase-file",
        passphrase.to_str().unwrap(),
    ]);
    let text = all_output(&restore);
    assert!(restore.status.success(), "{text}");
    assert_contains(&text, "the database, the CA certificate into");
    assert_eq!(
        stdout(&b.cli(&["secrets", "get", PASSWORD])),
        format!("{canary}\n")
    );
    // Not into a folder that holds an installation.
    let again = b.cli(&[
        "restore",
        archive.to_str().unwrap(),
        "--passphrase-file",
        passphrase.to_str().unwrap(),
    ]);
    assert_contains(&all_output(&again), "is not empty");

    let mut server = crate::support::ServerProcess::spawn(&b.config(), &[]);
    server.wait_healthy(a.port, &b.ca_file());
    let run = host.run_once();
    assert!(
        run.status.success(),
        "{}\n{}",
        all_output(&run),
        server.log()
    );
    assert_eq!(secret_conf(&out), converged);
    let listed = stdout(&b.cli(&["envoys", "list"]));
    assert_contains(&listed, APP1);
    server.terminate();
    assert!(!server.log().contains(canary.as_str()));
}

#[test]
fn issue_17_rekey_sigkilled_at_every_step_leaves_every_secret_readable() {
    use std::os::unix::process::ExitStatusExt;

    let dir = TestDir::new();
    let canary = format!("canary-{}", TestRng::from_clock().token());
    cli_ok(&dir, &["secrets", "bootstrap"]);
    let set = dir.cli_with_stdin(&["secrets", "set", PASSWORD, "-"], canary.as_bytes());
    assert!(set.status.success(), "{}", all_output(&set));
    let listed = stdout(&dir.cli(&["secrets", "list"]));
    let expected: Vec<(String, String)> = listed
        .lines()
        .map(|l| {
            let path = l.split_whitespace().next().unwrap().to_owned();
            let value = stdout(&dir.cli(&["secrets", "get", &path]));
            (path, value)
        })
        .collect();
    let old_file = dir.data_dir().join("master.key.old");
    let (mut killed, mut changed) = (0, 0);
    for step in 1.. {
        let key_before = std::fs::read(dir.key_file()).unwrap();
        let out = crate::support::run(
            dir.vigocli()
                .args(["secrets", "rekey"])
                .env("VIGO_TEST_REKEY_KILL_AT", step.to_string())
                .stdin(std::process::Stdio::null()),
        );
        let finished = out.status.success();
        if !finished {
            assert_eq!(
                out.status.signal(),
                Some(9),
                "step {step}: {}",
                all_output(&out)
            );
            killed += 1;
        }
        // The next command recovers, whichever side of the commit it was.
        assert_eq!(
            stdout(&dir.cli(&["secrets", "list"])),
            listed,
            "step {step}"
        );
        for (path, value) in &expected {
            let got = dir.cli(&["secrets", "get", path]);
            assert_eq!(
                &stdout(&got),
                value,
                "step {step}, {path}: {}",
                all_output(&got)
            );
        }
        assert!(
            !dir.data_dir().join("master.key.new").exists(),
            "step {step}"
        );
        if std::fs::read(dir.key_file()).unwrap() != key_before {
            changed += 1;
            assert_eq!(std::fs::read(&old_file).unwrap(), key_before, "step {step}");
            // Every file opens under the new key alone.
            let finish = dir.cli(&["secrets", "rekey", "--finish"]);
            assert!(
                finish.status.success(),
                "step {step}: {}",
                all_output(&finish)
            );
        } else {
            assert!(!old_file.exists(), "step {step}");
        }
        if finished {
            break;
        }
        assert!(step < 100, "the rekey never finished");
    }
    // Killed before and after the commit, at every secret.
    assert!(killed > 2 * expected.len(), "{killed} kill points");
    assert!(changed > expected.len(), "{changed} runs changed the key");
}

/// `vigocli secrets migrate --to TO --target-config TARGET [--apply]`.
fn migrate(dir: &TestDir, to: &str, target: &str, apply: bool) -> std::process::Output {
    let mut args = vec!["secrets", "migrate", "--to", to, "--target-config", target];
    if apply {
        args.push("--apply");
    }
    dir.cli(&args)
}
