//! Damaged, moved and edited files never decrypt to a value.

use std::fs;

use vigo_secrets::{LocalProvider, MasterKey, SecretError, SecretProvider};

use super::{Store, path, value};

/// Offsets in the file format: magic (7), format (1), version (8), nonce (12).
const FORMAT_AT: usize = 7;
const VERSION_AT: usize = 8;
const HEADER_LEN: usize = 28;

fn assert_refused(result: Result<vigo_secrets::VersionedSecret, SecretError>, what: &str) {
    match result {
        Err(SecretError::Integrity | SecretError::Format { .. }) => {}
        Err(other) => panic!("{what}: unexpected error {other}"),
        Ok(_) => panic!("{what}: a damaged file decrypted"),
    }
}

#[tokio::test]
async fn flipping_any_bit_pattern_of_any_byte_is_refused() {
    let s = Store::new();
    let p = path("vigo/db/dsn");
    s.provider.set(&p, &value("v1")).await.unwrap();
    s.provider.set(&p, &value("tamper-target")).await.unwrap();
    let file = s.provider.file_for(&p);
    let original = fs::read(&file).unwrap();
    for at in 0..original.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut damaged = original.clone();
            damaged[at] ^= mask;
            fs::write(&file, &damaged).unwrap();
            let result = s.provider.get(&p).await;
            let what = format!("byte {at} ^ {mask:#04x}");
            if at < VERSION_AT {
                // Magic and format bytes are checked before decryption.
                assert!(
                    matches!(result, Err(SecretError::Format { .. })),
                    "{what}: expected a format error"
                );
            } else {
                assert!(matches!(result, Err(SecretError::Integrity)), "{what}");
            }
        }
    }
    fs::write(&file, &original).unwrap();
    assert_eq!(
        s.provider.get(&p).await.unwrap().value.expose_secret(),
        "tamper-target"
    );
}

#[tokio::test]
async fn a_file_copied_over_another_secret_is_refused() {
    let s = Store::new();
    let (admin, readonly) = (
        path("vigo/db/admin_password"),
        path("vigo/db/readonly_password"),
    );
    s.provider
        .set(&admin, &value("admin-secret"))
        .await
        .unwrap();
    s.provider
        .set(&readonly, &value("readonly-secret"))
        .await
        .unwrap();
    fs::copy(s.provider.file_for(&admin), s.provider.file_for(&readonly)).unwrap();
    let err = s.provider.get(&readonly).await.unwrap_err();
    assert!(matches!(err, SecretError::Integrity));
    assert_eq!(
        err.to_string(),
        "integrity check failed (wrong key or tampered file)"
    );
}

#[tokio::test]
async fn an_edited_version_is_refused() {
    let s = Store::new();
    let p = path("vigo/token");
    for v in ["a", "b", "c"] {
        s.provider.set(&p, &value(v)).await.unwrap();
    }
    let file = s.provider.file_for(&p);
    let mut bytes = fs::read(&file).unwrap();
    assert_eq!(bytes[VERSION_AT..VERSION_AT + 8], 3u64.to_be_bytes());
    for forged in [1u64, 2, 4, u64::MAX] {
        bytes[VERSION_AT..VERSION_AT + 8].copy_from_slice(&forged.to_be_bytes());
        fs::write(&file, &bytes).unwrap();
        assert!(
            matches!(s.provider.get(&p).await, Err(SecretError::Integrity)),
            "{forged}"
        );
    }
}

#[tokio::test]
async fn an_older_file_put_back_keeps_its_own_version() {
    // Restoring an old file is not forgery: it decrypts, at its old version.
    let s = Store::new();
    let p = path("vigo/rollback");
    let old = s.store_and_read(&p, "old").await;
    s.provider.set(&p, &value("new")).await.unwrap();
    fs::write(s.provider.file_for(&p), &old).unwrap();
    let got = s.provider.get(&p).await.unwrap();
    assert_eq!((got.value.expose_secret(), got.version), ("old", 1));
}

#[tokio::test]
async fn a_wrong_key_is_refused() {
    let s = Store::new();
    let p = path("vigo/x");
    s.provider.set(&p, &value("v")).await.unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let other = LocalProvider::new(
        MasterKey::generate_to(&other_dir.path().join("k")).unwrap(),
        s.secrets_dir(),
    );
    assert!(matches!(other.get(&p).await, Err(SecretError::Integrity)));
}

#[tokio::test]
async fn truncated_files_are_refused() {
    let s = Store::new();
    let p = path("vigo/t");
    s.provider
        .set(&p, &value("a value long enough"))
        .await
        .unwrap();
    let file = s.provider.file_for(&p);
    let original = fs::read(&file).unwrap();
    for len in 0..original.len() {
        fs::write(&file, &original[..len]).unwrap();
        assert_refused(s.provider.get(&p).await, &format!("truncated to {len}"));
    }
    // Too short for a header: a format error naming the file.
    fs::write(&file, &original[..HEADER_LEN - 1]).unwrap();
    let err = s.provider.get(&p).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("unreadable secret file {}:", file.display())),
        "{text}"
    );
    // `list` and `versions` report a damaged header too, rather than skip it.
    assert!(matches!(
        s.provider.list("").await,
        Err(SecretError::Format { .. })
    ));
    assert!(s.provider.versions(std::slice::from_ref(&p)).await.is_err());
}

#[tokio::test]
async fn appended_bytes_are_refused() {
    let s = Store::new();
    let p = path("vigo/t");
    s.store_then_edit(&p, "v", |bytes| bytes.push(0)).await;
    assert!(matches!(
        s.provider.get(&p).await,
        Err(SecretError::Integrity)
    ));
}

#[tokio::test]
async fn an_unknown_format_version_is_a_format_error() {
    let s = Store::new();
    let p = path("vigo/t");
    s.store_then_edit(&p, "v", |bytes| bytes[FORMAT_AT] = 9)
        .await;
    let err = s.provider.get(&p).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("format version 9 is not supported"),
        "{err}"
    );
    // A damaged header also stops `set` from guessing the next version.
    assert!(matches!(
        s.provider.set(&p, &value("w")).await,
        Err(SecretError::Format { .. })
    ));
}

#[tokio::test]
async fn errors_never_hold_the_value() {
    let s = Store::new();
    let canary = "CANARY-91bd-never-in-errors";
    let p = path("vigo/c");
    s.store_then_edit(&p, canary, |bytes| *bytes.last_mut().unwrap() ^= 1)
        .await;
    let err = s.provider.get(&p).await.unwrap_err();
    assert!(!format!("{err} {err:?}").contains(canary));
}
