//! Encryption at rest of the embedded database, DSN handling, and keeping
//! the DSN's credentials out of every error.

use vigo_secrets::SecretValue;
use vigo_store::{Backend, StoreError, Timestamp};

const KEY: &str = "9c0b8a7f6e5d4c3b2a19080706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3";
const OTHER_KEY: &str = "0000000000000000000000000000000000000000000000000000000000000001";

fn sqlite_dsn(folder: &std::path::Path, key: &str) -> SecretValue {
    SecretValue::new(format!("sqlite://{}/vigo.db?key={key}", folder.display()))
}

/// Opens (creating it) the embedded database in `folder` under [`KEY`].
async fn open_embedded(folder: &std::path::Path) -> vigo_store::StoreHandle {
    vigo_store::connect(&sqlite_dsn(folder, KEY))
        .await
        .expect("open")
}

/// The message of `error`, asserted to be a connection failure of `backend`.
fn connect_failure_text(error: &StoreError, backend: Backend) -> String {
    let text = error.to_string();
    assert!(
        matches!(error, StoreError::Connect { backend: b, .. } if *b == backend),
        "{text}"
    );
    text
}

async fn connect_error(dsn: &str) -> StoreError {
    vigo_store::connect(&SecretValue::new(dsn.to_owned()))
        .await
        .expect_err("connecting should fail")
}

#[tokio::test]
async fn embedded_database_is_encrypted_and_private() {
    let folder = tempfile::tempdir().expect("temporary folder");
    let store = open_embedded(folder.path()).await;
    assert_eq!(store.backend(), Backend::Sqlite);
    store
        .upsert_enrollment_request("plaintext-marker.example.com", "CSR", Timestamp::now())
        .await
        .expect("write");
    store.close().await;

    let file = folder.path().join("vigo.db");
    let bytes = std::fs::read(&file).expect("read database file");
    assert!(bytes.len() > 1024, "the schema was written");
    assert!(
        !bytes.starts_with(b"SQLite format 3\0"),
        "plaintext SQLite header"
    );
    let haystack = String::from_utf8_lossy(&bytes);
    assert!(!haystack.contains("plaintext-marker"));
    assert!(!haystack.contains("CREATE TABLE"));
    assert_eq!(vigo_test_support::mode(&file), 0o600);

    // Reopening with the right key works; with another key it fails clearly.
    let reopened = vigo_store::connect(&sqlite_dsn(folder.path(), KEY))
        .await
        .expect("reopen");
    assert!(
        reopened
            .envoy("plaintext-marker.example.com")
            .await
            .expect("read")
            .is_some()
    );
    reopened.close().await;
    let error = vigo_store::connect(&sqlite_dsn(folder.path(), OTHER_KEY))
        .await
        .expect_err("wrong key");
    assert!(matches!(error, StoreError::WrongKey { .. }), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("does not match") && text.contains("vigo.db"),
        "{text}"
    );
    assert!(!text.contains(OTHER_KEY) && !format!("{error:?}").contains(OTHER_KEY));
}

#[tokio::test]
async fn store_debug_never_shows_the_key() {
    let folder = tempfile::tempdir().expect("temporary folder");
    let store = open_embedded(folder.path()).await;
    let debug = format!("{store:?}");
    assert!(debug.contains("vigo.db"), "{debug}");
    assert!(!debug.to_ascii_lowercase().contains(KEY), "{debug}");
    store.close().await;
}

#[tokio::test]
async fn missing_folder_is_named_without_the_key() {
    let folder = tempfile::tempdir().expect("temporary folder");
    let missing = folder.path().join("no-such-folder");
    let error = vigo_store::connect(&sqlite_dsn(&missing, KEY))
        .await
        .expect_err("no folder");
    let text = connect_failure_text(&error, Backend::Sqlite);
    assert!(text.contains("no-such-folder"), "{text}");
    assert!(
        !text.contains(KEY) && !format!("{error:?}").contains(KEY),
        "{text}"
    );
}

#[tokio::test]
async fn invalid_dsns_are_refused_without_echoing_them() {
    let cases = [
        ("mysql://root:Canary-Mysql-1@db/vigo", "'mysql'"),
        ("sqlite://relative.db", "absolute"),
        ("sqlite:///srv/vigo.db?key=Canary-Short", "64 hexadecimal"),
        ("Canary-Pasted-Password", "does not start with"),
        ("postgres://vigo:Canary-Port-9@db:notaport/vigo", ""),
    ];
    for (dsn, expected) in cases {
        let error = connect_error(dsn).await;
        let text = error.to_string();
        assert!(
            matches!(error, StoreError::InvalidDsn { .. }),
            "{dsn}: {text}"
        );
        assert!(text.contains(expected), "{dsn}: {text}");
        assert!(!text.contains("Canary"), "{text}");
        assert!(!format!("{error:?}").contains("Canary"), "{error:?}");
    }
}

#[tokio::test]
async fn postgres_connection_failure_hides_the_password() {
    // Port 1 on loopback refuses at once.
    let error = connect_error("postgres://vigo:Canary-Pw-3f9e%21@127.0.0.1:1/vigo").await;
    let text = connect_failure_text(&error, Backend::Postgres);
    assert!(text.contains("127.0.0.1:1/vigo"), "{text}");
    let debug = format!("{error:?}");
    for shown in [&text, &debug] {
        assert!(!shown.contains("Canary"), "{shown}");
        assert!(!shown.contains("postgres://"), "{shown}");
    }
}

#[tokio::test]
async fn postgres_authentication_failure_hides_the_password() {
    let Some(base) = vigo_test_support::postgres_url() else {
        return;
    };
    // A role that does not exist fails however the server authenticates.
    let Some(rest) = base.split_once('@').map(|(_, rest)| rest) else {
        vigo_test_support::skip_postgres("VIGO_TEST_POSTGRES has no user part");
        return;
    };
    let dsn = format!("postgres://vigo_no_such_role:Canary-Auth-77@{rest}");
    let error = connect_error(&dsn).await;
    let text = format!("{error} {error:?}");
    assert!(matches!(error, StoreError::Connect { .. }), "{text}");
    assert!(!text.contains("Canary"), "{text}");
}
