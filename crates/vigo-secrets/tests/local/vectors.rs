//! Pinned test vectors for the secret file format (`tests/vectors/`).
//!
//! `vectors.json` lists each case: which key file, which secret file, the
//! secret path it is read as, and the expected outcome. The valid files were
//! written once by `regenerate_vectors` (ignored; run it only when the format
//! version changes) and must keep decrypting to the same values forever:
//! a change that breaks them breaks every installed Vigo's secrets.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vigo_secrets::{LocalProvider, MasterKey, SecretError, SecretProvider};

use super::{install_key, path, value};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    about: String,
    cases: Vec<Case>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    key: String,
    file: String,
    path: String,
    expect: Expect,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Expect {
    Ok,
    Integrity,
    Format,
}

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn manifest() -> Manifest {
    let text = fs::read_to_string(vectors_dir().join("vectors.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Reads one case's file as its secret path, with its key.
async fn run(
    case: &Case,
) -> (
    tempfile::TempDir,
    LocalProvider,
    Result<vigo_secrets::VersionedSecret, SecretError>,
) {
    let work = tempfile::tempdir().unwrap();
    let key = install_key(&vectors_dir().join(&case.key), work.path());
    let secrets = work.path().join("secrets");
    let target = secrets.join(&case.path);
    fs::create_dir_all(target.parent().unwrap()).unwrap();
    fs::copy(vectors_dir().join(&case.file), &target).unwrap();
    let provider = LocalProvider::open(&key, &secrets).unwrap();
    let result = provider.get(&path(&case.path)).await;
    (work, provider, result)
}

#[tokio::test]
async fn pinned_vectors_keep_their_meaning() {
    let manifest = manifest();
    assert!(
        manifest
            .cases
            .iter()
            .filter(|c| c.expect == Expect::Ok)
            .count()
            >= 3
    );
    assert!(
        manifest
            .cases
            .iter()
            .filter(|c| c.expect != Expect::Ok)
            .count()
            >= 8
    );
    for case in &manifest.cases {
        let (_work, provider, result) = run(case).await;
        let name = &case.name;
        match (case.expect, result) {
            (Expect::Ok, Ok(got)) => {
                assert_eq!(
                    Some(got.value.expose_secret()),
                    case.value.as_deref(),
                    "{name}"
                );
                assert_eq!(Some(got.version), case.version, "{name}");
                let listed = provider.list("").await.unwrap();
                assert_eq!(listed.len(), 1, "{name}");
                assert_eq!(Some(listed[0].version), case.version, "{name}");
            }
            (Expect::Integrity, Err(SecretError::Integrity)) => {}
            (Expect::Format, Err(err @ SecretError::Format { .. })) => {
                let file = provider.file_for(&path(&case.path));
                assert!(
                    err.to_string().contains(&file.display().to_string()),
                    "{name}: the error does not name the file: {err}"
                );
            }
            (expect, Ok(_)) => panic!("{name}: expected {expect:?}, but the file decrypted"),
            (expect, Err(err)) => panic!("{name}: expected {expect:?}, got {err}"),
        }
    }
}

#[test]
fn vector_keys_are_well_formed() {
    for name in ["master.key", "other.key"] {
        let work = tempfile::tempdir().unwrap();
        let key = install_key(&vectors_dir().join(name), work.path());
        assert!(MasterKey::load(&key).is_ok(), "{name}");
    }
}

/// Writes a fresh set of vectors. The valid files get new random nonces, so
/// the committed ones change: run this only with a new format version, and
/// keep the old vectors readable.
#[tokio::test]
#[ignore = "rewrites the pinned vectors; run only when the format version changes"]
async fn regenerate_vectors() {
    let dir = vectors_dir();
    fs::create_dir_all(&dir).unwrap();
    let work = tempfile::tempdir().unwrap();
    let key_path = work.path().join("master.key");
    let key = MasterKey::generate_to(&key_path).unwrap();
    fs::copy(&key_path, dir.join("master.key")).unwrap();
    MasterKey::generate_to(&work.path().join("other.key")).unwrap();
    fs::copy(work.path().join("other.key"), dir.join("other.key")).unwrap();
    let provider = LocalProvider::new(key, work.path().join("secrets"));

    let mut cases = Vec::new();
    let valid = [
        (
            "valid-dsn",
            "vigo/db/dsn",
            &[
                "postgres://vigo:first@localhost/vigo",
                "postgres://vigo:second@localhost/vigo",
                "postgres://vigo:vector-canary-5e1f@localhost:5432/vigo",
            ][..],
        ),
        (
            "valid-unicode",
            "vigo/app/pass",
            &["pässwörd 🔑 \"quoted\"\n"][..],
        ),
        ("valid-empty", "vigo/empty", &[""][..]),
    ];
    for (name, secret, values) in valid {
        for v in values {
            provider.set(&path(secret), &value(v)).await.unwrap();
        }
        let file = format!("{name}.bin");
        fs::copy(provider.file_for(&path(secret)), dir.join(&file)).unwrap();
        cases.push(Case {
            name: name.to_owned(),
            key: "master.key".to_owned(),
            file,
            path: secret.to_owned(),
            expect: Expect::Ok,
            value: Some((*values.last().unwrap()).to_owned()),
            version: Some(values.len() as u64),
        });
    }

    let base = fs::read(dir.join("valid-dsn.bin")).unwrap();
    let last = base.len() - 1;
    let damaged: [(&str, &str, Expect, Vec<u8>); 11] = [
        (
            "copied-over-other-path",
            "vigo/db/password",
            Expect::Integrity,
            base.clone(),
        ),
        ("version-edited", "vigo/db/dsn", Expect::Integrity, {
            let mut b = base.clone();
            b[8..16].copy_from_slice(&4u64.to_be_bytes());
            b
        }),
        (
            "nonce-flipped",
            "vigo/db/dsn",
            Expect::Integrity,
            flip(&base, 16),
        ),
        (
            "ciphertext-flipped",
            "vigo/db/dsn",
            Expect::Integrity,
            flip(&base, 28),
        ),
        (
            "tag-flipped",
            "vigo/db/dsn",
            Expect::Integrity,
            flip(&base, last),
        ),
        (
            "tag-truncated",
            "vigo/db/dsn",
            Expect::Integrity,
            base[..last].to_vec(),
        ),
        (
            "header-truncated",
            "vigo/db/dsn",
            Expect::Format,
            base[..20].to_vec(),
        ),
        ("empty-file", "vigo/db/dsn", Expect::Format, Vec::new()),
        ("bad-magic", "vigo/db/dsn", Expect::Format, flip(&base, 0)),
        ("future-format", "vigo/db/dsn", Expect::Format, {
            let mut b = base.clone();
            b[7] = 2;
            b
        }),
        (
            "plaintext-file",
            "vigo/db/dsn",
            Expect::Format,
            b"postgres://vigo:plain@localhost/vigo\n".to_vec(),
        ),
    ];
    cases.push(Case {
        name: "wrong-key".to_owned(),
        key: "other.key".to_owned(),
        file: "valid-dsn.bin".to_owned(),
        path: "vigo/db/dsn".to_owned(),
        expect: Expect::Integrity,
        value: None,
        version: None,
    });
    for (name, secret, expect, bytes) in damaged {
        let file = if name == "copied-over-other-path" {
            "valid-dsn.bin".to_owned()
        } else {
            let file = format!("{name}.bin");
            fs::write(dir.join(&file), bytes).unwrap();
            file
        };
        cases.push(Case {
            name: name.to_owned(),
            key: "master.key".to_owned(),
            file,
            path: secret.to_owned(),
            expect,
            value: None,
            version: None,
        });
    }
    let manifest = Manifest {
        about: "Vigo local secret file vectors (format version 1). Keys are 64 hex characters; install them with mode 0600 before loading. Each case reads `file` as the secret `path` with `key` and must give `expect`.".to_owned(),
        cases,
    };
    let text = serde_json::to_string_pretty(&manifest).unwrap();
    fs::write(dir.join("vectors.json"), text + "\n").unwrap();
}

fn flip(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at] ^= 0x01;
    b
}
