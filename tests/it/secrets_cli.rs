//! `vigocli secrets ...`, end to end against the local backend, with and
//! without a running server: rotation output, stdin values, listings,
//! tampering, invalid paths, leak canaries and crash safety.

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

use crate::support::{TestDir, TestRng, assert_contains, contains_bytes, stderr, stdout};

const PASSWORD: &str = "vigo/grafana/admin-password";

/// A folder whose first start has run (key and server secrets exist) and no
/// server is running.
fn initialised() -> TestDir {
    let dir = TestDir::new();
    let mut server = dir.start_server(&[]);
    assert!(server.terminate().success());
    dir
}

#[test]
fn set_with_a_running_server_notifies_it() {
    let dir = TestDir::new();
    let mut server = dir.start_server(&[]);

    let out = dir.cli(&["secrets", "set", PASSWORD, "newpass"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "Secret \"vigo/grafana/admin-password\" stored.\nServer notified — affected envoys will apply on next check-in.\n"
    );
    assert!(
        server.wait_for_log("INFO secret changed path=vigo/grafana/admin-password version=1"),
        "log:\n{}",
        server.log()
    );

    let out = dir.cli(&["secrets", "get", PASSWORD]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "newpass\n");
    server.terminate();
}

#[test]
fn set_without_a_server_says_so_and_succeeds() {
    let dir = initialised();
    let out = dir.cli(&["secrets", "set", PASSWORD, "newpass"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "Secret \"vigo/grafana/admin-password\" stored.\nServer not reachable — the change will be applied when it next starts.\n"
    );
    assert_eq!(stdout(&dir.cli(&["secrets", "get", PASSWORD])), "newpass\n");
}

#[test]
fn list_shows_versions_and_never_values() {
    let dir = initialised();
    dir.cli(&["secrets", "set", PASSWORD, "first-value"]);
    dir.cli(&["secrets", "set", PASSWORD, "second-value"]);
    let out = dir.cli(&["secrets", "list", "vigo/grafana"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "vigo/grafana/admin-password  2\n");

    let all = stdout(&dir.cli(&["secrets", "list"]));
    assert!(all.lines().any(|l| l == "vigo/db/dsn  1"), "{all}");
    assert!(!all.contains("second-value"));

    let json = dir.cli(&["--output", "json", "secrets", "list", "vigo/grafana/"]);
    let parsed: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        parsed,
        serde_json::json!([{"path": PASSWORD, "version": 2}])
    );
}

#[test]
fn set_dash_reads_the_value_from_stdin() {
    let dir = initialised();
    let out = dir.cli_with_stdin(&["secrets", "set", "vigo/app/token", "-"], b"from stdin\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&dir.cli(&["secrets", "get", "vigo/app/token"])),
        "from stdin\n"
    );

    // Only one trailing newline is dropped.
    dir.cli_with_stdin(&["secrets", "set", "vigo/app/token", "-"], b"two\n\n");
    assert_eq!(
        stdout(&dir.cli(&["secrets", "get", "vigo/app/token"])),
        "two\n\n"
    );
}

#[test]
fn invalid_paths_are_rejected_before_anything_happens() {
    let dir = initialised();
    let before = dir.snapshot();
    for args in [
        &["secrets", "set", "../../etc/shadow", "x"][..],
        &["secrets", "get", "../../etc/shadow"],
        &["secrets", "rm", "/etc/shadow", "--force"],
        &["secrets", "set", "vigo//x", "x"],
    ] {
        let out = dir.cli(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("error: invalid secret path"),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty());
    }
    assert_eq!(before, dir.snapshot());
}

#[test]
fn a_flipped_byte_is_an_integrity_error_naming_the_path() {
    let dir = initialised();
    dir.cli(&["secrets", "set", PASSWORD, "newpass"]);
    let file = dir.secret_file(PASSWORD);
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x80;
    std::fs::write(&file, &bytes).unwrap();

    let before = dir.snapshot();
    let out = dir.cli(&["secrets", "get", PASSWORD]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: resolving secret 'vigo/grafana/admin-password': integrity check failed (wrong key or tampered file)"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "no garbage output");
    assert_eq!(before, dir.snapshot());
}

#[test]
fn a_file_copied_over_another_secret_fails_to_decrypt() {
    let dir = initialised();
    dir.cli(&["secrets", "set", "vigo/a", "value-a"]);
    dir.cli(&["secrets", "set", "vigo/b", "value-b"]);
    std::fs::copy(dir.secret_file("vigo/a"), dir.secret_file("vigo/b")).unwrap();

    let before = dir.snapshot();
    let out = dir.cli(&["secrets", "get", "vigo/b"]);
    assert_eq!(out.status.code(), Some(1));
    assert_contains(
        &stderr(&out),
        "resolving secret 'vigo/b': integrity check failed",
    );
    assert!(!contains_bytes(&out.stdout, b"value-a"));
    assert_eq!(before, dir.snapshot());
}

#[test]
fn an_unsafe_or_malformed_key_file_is_refused() {
    let dir = initialised();
    dir.cli(&["secrets", "set", PASSWORD, "newpass"]);
    std::fs::set_permissions(dir.key_file(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = dir.snapshot();
    let out = dir.cli(&["secrets", "get", PASSWORD]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("chmod 600 {}", dir.key_file().display())),
        "{err}"
    );
    let out = dir.cli(&["secrets", "set", PASSWORD, "other"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(before, dir.snapshot());

    std::fs::set_permissions(dir.key_file(), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(dir.key_file(), "0123\n").unwrap();
    let before = dir.snapshot();
    let out = dir.cli(&["secrets", "get", PASSWORD]);
    assert_eq!(out.status.code(), Some(1));
    assert_contains(&stderr(&out), "expected 64 hex characters");
    assert_eq!(before, dir.snapshot());
}

#[test]
fn rm_is_refused_while_referenced() {
    let dir = initialised();
    let out = dir.cli(&["secrets", "rm", "vigo/db/dsn"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: secret 'vigo/db/dsn' is still referenced by the server"),
        "{err}"
    );
    assert_contains(&err, "\nhint: ");
    assert!(dir.secret_file("vigo/db/dsn").exists());

    dir.cli(&["secrets", "set", "vigo/tmp/x", "v"]);
    let out = dir.cli(&["secrets", "rm", "vigo/tmp/x"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "Secret \"vigo/tmp/x\" removed.\n");
    assert!(!dir.cli(&["secrets", "get", "vigo/tmp/x"]).status.success());
}

#[test]
fn bootstrap_creates_only_what_is_missing() {
    let dir = TestDir::new();
    let out = dir.cli(&["secrets", "bootstrap"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_contains(&text, "Secret \"vigo/server/admin_token\" created.");
    let token = stdout(&dir.cli(&["secrets", "get", "vigo/server/admin_token"]));

    let out = dir.cli(&["secrets", "bootstrap"]);
    assert_eq!(
        stdout(&out),
        "Nothing to create: every generated secret exists.\n"
    );
    assert_eq!(
        stdout(&dir.cli(&["secrets", "get", "vigo/server/admin_token"])),
        token
    );
}

#[test]
fn canary_values_never_reach_files_or_logs() {
    let dir = TestDir::new();
    let mut rng = TestRng::from_clock();
    let canary_stdin = format!("canary-stdin-{}", rng.token());
    let canary_argv = format!("canary-argv-{}", rng.token());
    let mut server = dir.start_server(&["--log-level", "trace"]);

    let mut cli_output = Vec::new();
    let out = dir.cli_with_stdin(
        &[
            "--log-level",
            "trace",
            "secrets",
            "set",
            "vigo/canary/stdin",
            "-",
        ],
        format!("{canary_stdin}\n").as_bytes(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    cli_output.push(out);
    let out = dir.cli(&[
        "--log-level",
        "trace",
        "secrets",
        "set",
        "vigo/canary/argv",
        &canary_argv,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    cli_output.push(out);
    cli_output.push(dir.cli(&["--log-level", "trace", "secrets", "list"]));
    assert!(server.wait_for_log("secret changed path=vigo/canary/argv"));

    // The canaries are really stored: `get` (the one expected place) shows them.
    let got = dir.cli(&[
        "--log-level",
        "trace",
        "secrets",
        "get",
        "vigo/canary/stdin",
    ]);
    assert_eq!(stdout(&got), format!("{canary_stdin}\n"));
    cli_output.push(std::process::Output {
        stdout: Vec::new(),
        ..got
    });
    server.terminate();

    let mut places = vec![("server log".to_owned(), server.log_bytes())];
    for (i, out) in cli_output.iter().enumerate() {
        places.push((format!("vigocli run {i} stdout"), out.stdout.clone()));
        places.push((format!("vigocli run {i} stderr"), out.stderr.clone()));
    }
    for (file, bytes) in dir.snapshot() {
        places.push((file.display().to_string(), bytes));
    }
    assert!(places.len() > 10);
    for canary in [&canary_stdin, &canary_argv] {
        for (place, bytes) in &places {
            assert!(
                !contains_bytes(bytes, canary.as_bytes()),
                "{canary} leaked into {place}"
            );
        }
    }
}

#[test]
fn killing_set_at_random_moments_never_tears_a_secret() {
    let dir = initialised();
    let path = "vigo/crash/value";
    assert!(dir.cli(&["secrets", "set", path, "v0"]).status.success());
    let mut rng = TestRng::from_clock();
    for round in 1..=50 {
        let mut child = dir
            .vigocli()
            .args(["secrets", "set", path, &format!("value-{round}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.below(40)));
        let _ = child.kill();
        let _ = child.wait();

        let out = dir.cli(&["secrets", "get", path]);
        assert!(out.status.success(), "round {round}: {}", stderr(&out));
        let value = stdout(&out);
        assert!(
            value.starts_with("v0") || value.starts_with("value-"),
            "round {round}: {value:?}"
        );
    }
    let out = dir.cli(&["secrets", "list", "vigo/crash"]);
    assert!(out.status.success(), "{}", stderr(&out));
}
