//! `vigosrv` start-up, end to end: first start, fail-fast on missing or
//! tampered secrets, unsafe master keys, and shutdown on SIGTERM.

use std::os::unix::fs::PermissionsExt;

use crate::support::{SERVER_SECRETS, TestDir, assert_contains, https_get};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn first_start_generates_key_secrets_and_ca_then_serves_https() {
    let dir = TestDir::new();
    let mut server = dir.start_server(&[]);

    let key = std::fs::read_to_string(dir.key_file()).unwrap();
    let hex = key.strip_suffix('\n').unwrap_or(&key);
    assert_eq!(hex.len(), 64, "master key holds 32 bytes as hex");
    assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(mode(&dir.key_file()), 0o600);

    for path in SERVER_SECRETS {
        let file = dir.secret_file(path);
        assert!(file.is_file(), "{path} was not generated");
        assert_eq!(mode(&file), 0o600, "{path}");
    }

    let ca = std::fs::read_to_string(dir.ca_file()).unwrap();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(mode(&dir.ca_file()), 0o644);
    let fingerprint = vigo_pki::cert_fingerprint_sha256(&ca).unwrap();
    let log = server.log();
    let expected = format!(
        "INFO wrote CA certificate path={} sha256={fingerprint}",
        dir.ca_file().display()
    );
    assert!(log.contains(&expected), "missing {expected:?} in:\n{log}");

    let (status, body) =
        https_get(&format!("https://127.0.0.1:{}/healthz", dir.port), &ca).unwrap();
    assert_eq!((status, body.as_str()), (200, "ok"));
    // The certificate is also valid for `localhost`.
    let (status, _) = https_get(&format!("https://localhost:{}/healthz", dir.port), &ca).unwrap();
    assert_eq!(status, 200);

    assert!(server.terminate().success(), "log:\n{}", server.log());
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let dir = TestDir::new();
    let mut server = dir.start_server(&[]);
    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "log:\n{}", server.log());
    assert!(
        server.log().contains("INFO server stopped"),
        "log:\n{}",
        server.log()
    );
}

#[test]
fn a_missing_dsn_stops_the_start_with_the_exact_line() {
    let dir = TestDir::new();
    dir.start_server(&[]).terminate();
    std::fs::remove_file(dir.secret_file("vigo/db/dsn")).unwrap();

    let before = dir.snapshot();
    let mut server = crate::support::ServerProcess::spawn(&dir.config(), &[]);
    let status = server.wait_exit();
    assert!(!status.success());
    let log = server.log();
    let expected = "ERROR server failed error=\"loading server config: resolving secret 'vigo/db/dsn': file not found\"";
    assert!(
        log.lines().any(|l| l == expected),
        "missing {expected:?} in:\n{log}"
    );
    assert_eq!(
        before,
        dir.snapshot(),
        "a failed start must not change any file"
    );
}

#[test]
fn a_tampered_secret_stops_the_start_with_an_integrity_error() {
    let dir = TestDir::new();
    dir.start_server(&[]).terminate();
    let file = dir.secret_file("vigo/db/dsn");
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();

    let log = refused_start_log(&dir);
    let expected = "ERROR server failed error=\"loading server config: resolving secret 'vigo/db/dsn': integrity check failed (wrong key or tampered file)\"";
    assert!(
        log.lines().any(|l| l == expected),
        "missing {expected:?} in:\n{log}"
    );
}

#[test]
fn a_group_readable_key_file_is_refused_with_a_chmod_hint() {
    let dir = TestDir::new();
    dir.start_server(&[]).terminate();
    std::fs::set_permissions(dir.key_file(), std::fs::Permissions::from_mode(0o644)).unwrap();

    let log = refused_start_log(&dir);
    let errors: Vec<_> = log.lines().filter(|l| l.starts_with("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert!(
        errors[0].contains(&format!("chmod 600 {}", dir.key_file().display())),
        "{log}"
    );
}

#[test]
fn a_key_of_the_wrong_length_is_refused() {
    let dir = TestDir::new();
    dir.start_server(&[]).terminate();
    std::fs::write(dir.key_file(), "abcd\n").unwrap();

    let log = refused_start_log(&dir);
    assert_contains(&log, "ERROR server failed");
    assert_contains(&log, "expected 64 hex characters");
}

#[test]
fn a_lost_key_next_to_existing_secrets_is_not_replaced() {
    let dir = TestDir::new();
    dir.start_server(&[]).terminate();
    std::fs::remove_file(dir.key_file()).unwrap();

    let log = refused_start_log(&dir);
    assert_contains(&log, "restore the key file instead of generating a new one");
    assert!(!dir.key_file().exists());
}

#[test]
fn a_literal_dsn_is_a_startup_error() {
    let dir = TestDir::new();
    dir.write(
        "vigosrv.yaml",
        &format!(
            "listen: \"127.0.0.1:{}\"\ndata_dir: data\ndatabase:\n  dsn: \"sqlite:///tmp/x.db\"\n",
            dir.port
        ),
    );
    let mut server = crate::support::ServerProcess::spawn(&dir.config(), &[]);
    assert!(!server.wait_exit().success());
    let log = server.log();
    assert_contains(&log, "database.dsn must be a secret: reference");
    assert!(
        !dir.data_dir().exists(),
        "nothing may be generated for an invalid config"
    );
}

#[test]
fn unknown_keys_name_the_key_and_position() {
    let dir = TestDir::with_config_extra("secrets:\n  backend: local\n  keyfile: /x\n");
    let mut server = crate::support::ServerProcess::spawn(&dir.config(), &[]);
    assert!(!server.wait_exit().success());
    let log = server.log();
    let position = format!("{}:8:3", dir.config().display());
    assert!(log.contains(&position) && log.contains("keyfile"), "{log}");
}

#[test]
fn help_and_version_work() {
    for flag in ["--help", "--version"] {
        let out = crate::support::run(
            std::process::Command::new(crate::support::bin("vigosrv")).arg(flag),
        );
        assert!(out.status.success(), "{flag}");
        assert!(!out.stdout.is_empty());
    }
}

/// Starts `vigosrv` on `dir`'s config expecting it to refuse: it must exit
/// with a failure and leave every file in the folder as it was. Its log.
fn refused_start_log(dir: &TestDir) -> String {
    let before = dir.snapshot();
    let mut server = crate::support::ServerProcess::spawn(&dir.config(), &[]);
    assert!(!server.wait_exit().success());
    let log = server.log();
    assert_eq!(
        before,
        dir.snapshot(),
        "a refused start changed files; log:\n{log}"
    );
    log
}
