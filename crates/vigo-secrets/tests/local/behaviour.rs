//! What the local backend does through `SecretProvider` and its own API.

use std::fs;

use vigo_secrets::{LocalProvider, SecretError, SecretProvider};

use super::{Store, mode, path, value};

#[tokio::test]
async fn round_trip() {
    let s = Store::new();
    let p = path("vigo/db/dsn");
    assert_eq!(
        s.provider
            .set(&p, &value("postgres://u:pw@db/vigo"))
            .await
            .unwrap(),
        1
    );
    let got = s.provider.get(&p).await.unwrap();
    assert_eq!(got.value.expose_secret(), "postgres://u:pw@db/vigo");
    assert_eq!(got.version, 1);
    // A second provider (another process) reads the same value.
    let again = s.reopen().get(&p).await.unwrap();
    assert_eq!(again.value.expose_secret(), "postgres://u:pw@db/vigo");
}

#[tokio::test]
async fn versions_count_up_from_one() {
    let s = Store::new();
    let p = path("vigo/grafana/admin-password");
    for (expected, v) in [(1, "one"), (2, "two"), (3, "three")] {
        assert_eq!(s.provider.set(&p, &value(v)).await.unwrap(), expected);
        let got = s.provider.get(&p).await.unwrap();
        assert_eq!((got.value.expose_secret(), got.version), (v, expected));
    }
    let listed = s.provider.list("").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].version, 3);
}

#[tokio::test]
async fn same_value_twice_gives_different_bytes() {
    let s = Store::new();
    let p = path("a/b");
    let first = s.store_and_read(&p, "same value").await;
    let second = s.store_and_read(&p, "same value").await;
    assert_eq!(first.len(), second.len());
    // Everything after the version field differs: nonce, ciphertext, tag.
    assert_ne!(first[16..28], second[16..28], "nonce was reused");
    assert_ne!(first[28..], second[28..]);
}

#[tokio::test]
async fn the_value_never_appears_in_the_file() {
    let s = Store::new();
    let canary = "CANARY-7f3a9c1e-do-not-leak";
    let p = path("vigo/canary");
    s.provider.set(&p, &value(canary)).await.unwrap();
    let bytes = fs::read(s.provider.file_for(&p)).unwrap();
    assert!(
        !bytes
            .windows(8)
            .any(|w| canary.as_bytes().windows(8).any(|c| c == w))
    );
    // Nor does it appear in the folder's other files.
    for entry in fs::read_dir(s.secrets_dir()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            let other = fs::read(entry.path()).unwrap();
            assert!(!other.windows(canary.len()).any(|w| w == canary.as_bytes()));
        }
    }
}

#[tokio::test]
async fn files_are_0600_and_folders_0700() {
    let s = Store::new();
    let p = path("vigo/tls/server_key");
    s.provider.set(&p, &value("pem")).await.unwrap();
    let file = s.provider.file_for(&p);
    assert_eq!(file, s.secrets_dir().join("vigo/tls/server_key"));
    assert_eq!(mode(&file), 0o600);
    for folder in ["", "vigo", "vigo/tls"] {
        assert_eq!(mode(&s.secrets_dir().join(folder)), 0o700, "{folder:?}");
    }
    assert_eq!(mode(&s.key_file()), 0o600);
}

#[tokio::test]
async fn list_sorts_and_skips_what_is_not_a_secret() {
    let s = Store::new();
    let writes = [
        ("vigo/tls/ca_cert", "v"),
        ("app/token", "v"),
        ("vigo/db/dsn", "v"),
        ("vigo/dbx", "v"),
        ("vigo/db/dsn", "v2"),
    ];
    for (p, v) in writes {
        s.provider.set(&path(p), &value(v)).await.unwrap();
    }
    let dir = s.secrets_dir();
    fs::write(dir.join("vigo/db/.tmp-0123456789abcdef"), b"half-written").unwrap();
    fs::write(dir.join("vigo/not a path"), b"x").unwrap();

    let listed = s.provider.list("").await.unwrap();
    let shown: Vec<_> = listed
        .iter()
        .map(|i| (i.path.as_str(), i.version))
        .collect();
    assert_eq!(
        shown,
        [
            ("app/token", 1),
            ("vigo/db/dsn", 2),
            ("vigo/dbx", 1),
            ("vigo/tls/ca_cert", 1)
        ]
    );
}

#[tokio::test]
async fn list_filters_by_whole_segments() {
    let s = Store::new();
    for p in ["vigo/db/dsn", "vigo/db/password", "vigo/dbx", "other/db"] {
        s.provider.set(&path(p), &value("v")).await.unwrap();
    }
    let under = |prefix: &'static str| {
        let provider = s.provider.clone();
        async move {
            provider
                .list(prefix)
                .await
                .unwrap()
                .into_iter()
                .map(|i| i.path.to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(under("vigo/db").await, ["vigo/db/dsn", "vigo/db/password"]);
    assert_eq!(under("vigo/db/").await, ["vigo/db/dsn", "vigo/db/password"]);
    assert_eq!(
        under("vigo").await,
        ["vigo/db/dsn", "vigo/db/password", "vigo/dbx"]
    );
    assert_eq!(under("vigo/db/dsn").await, ["vigo/db/dsn"]);
    assert!(under("vigo/d").await.is_empty());
    assert!(under("../vigo").await.is_empty());
    assert_eq!(under("").await.len(), 4);
}

#[tokio::test]
async fn list_of_an_absent_folder_is_empty() {
    let s = Store::new();
    assert!(s.provider.list("").await.unwrap().is_empty());
}

#[tokio::test]
async fn delete_removes_and_then_reports_not_found() {
    let s = Store::new();
    let p = path("vigo/old");
    s.provider.set(&p, &value("v")).await.unwrap();
    s.provider.delete(&p).await.unwrap();
    assert!(!s.provider.file_for(&p).exists());
    let err = s.provider.get(&p).await.unwrap_err();
    assert!(matches!(err, SecretError::NotFound { backend: "local" }));
    assert_eq!(err.to_string(), "file not found");
    assert!(s.provider.delete(&p).await.unwrap_err().is_not_found());
    // Setting again starts the count afresh.
    assert_eq!(s.provider.set(&p, &value("v")).await.unwrap(), 1);
}

#[tokio::test]
async fn versions_reads_headers_in_one_call() {
    let s = Store::new();
    s.provider.set(&path("a"), &value("1")).await.unwrap();
    s.provider.set(&path("b/c"), &value("1")).await.unwrap();
    s.provider.set(&path("b/c"), &value("2")).await.unwrap();
    let found = s
        .provider
        .versions(&[path("a"), path("b/c"), path("missing")])
        .await
        .unwrap();
    let shown: Vec<_> = found.iter().map(|(p, v)| (p.as_str(), *v)).collect();
    assert_eq!(shown, [("a", 1), ("b/c", 2)]);
    assert!(s.provider.exists(&path("a")).await.unwrap());
    assert!(!s.provider.exists(&path("missing")).await.unwrap());
}

#[tokio::test]
async fn versions_and_list_need_no_decryption() {
    let s = Store::new();
    s.provider.set(&path("a"), &value("1")).await.unwrap();
    // A provider with another key can still tell versions, not values.
    let other_dir = tempfile::tempdir().unwrap();
    let other_key = vigo_secrets::MasterKey::generate_to(&other_dir.path().join("k")).unwrap();
    let other = LocalProvider::new(other_key, s.secrets_dir());
    assert_eq!(other.list("").await.unwrap()[0].version, 1);
    assert_eq!(other.versions(&[path("a")]).await.unwrap()[&path("a")], 1);
    assert!(matches!(
        other.get(&path("a")).await,
        Err(SecretError::Integrity)
    ));
}

#[tokio::test]
async fn holds_secrets_sees_only_secret_files() {
    let s = Store::new();
    let dir = s.secrets_dir();
    assert!(!LocalProvider::holds_secrets(&dir).unwrap());
    fs::create_dir_all(dir.join("vigo/db")).unwrap();
    fs::write(dir.join(".lock"), b"").unwrap();
    fs::write(dir.join("vigo/db/.tmp-00"), b"x").unwrap();
    assert!(!LocalProvider::holds_secrets(&dir).unwrap());
    s.provider
        .set(&path("vigo/db/dsn"), &value("v"))
        .await
        .unwrap();
    assert!(LocalProvider::holds_secrets(&dir).unwrap());
    s.provider.delete(&path("vigo/db/dsn")).await.unwrap();
    assert!(!LocalProvider::holds_secrets(&dir).unwrap());
}

#[tokio::test]
async fn open_refuses_an_unsafe_key_file() {
    let s = Store::new();
    std::fs::set_permissions(
        s.key_file(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let err = LocalProvider::open(&s.key_file(), &s.secrets_dir()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("(mode 0644); run: chmod 600 "), "{text}");
    assert_eq!(s.provider.secrets_dir(), s.secrets_dir());
}

#[tokio::test]
async fn unicode_and_large_values_round_trip() {
    let s = Store::new();
    let large = "x".repeat(1 << 20);
    for (p, v) in [
        ("u", "pässwörd 🔑\n\t\"'"),
        ("big", large.as_str()),
        ("empty", ""),
    ] {
        s.provider.set(&path(p), &value(v)).await.unwrap();
        assert_eq!(
            s.provider
                .get(&path(p))
                .await
                .unwrap()
                .value
                .expose_secret(),
            v
        );
    }
}

#[tokio::test]
async fn no_temporary_file_is_left_behind() {
    let s = Store::new();
    for i in 0..5 {
        s.provider
            .set(&path("vigo/x"), &value(&i.to_string()))
            .await
            .unwrap();
    }
    let names: Vec<_> = fs::read_dir(s.secrets_dir().join("vigo"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["x"]);
}
