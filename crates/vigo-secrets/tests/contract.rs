//! The contract every secrets backend keeps, run against each of them:
//! [`MemoryProvider`], [`LocalProvider`] (temporary folder, fresh master
//! key) and [`IsopassProvider`] talking TLS to the isopass stand-in (a
//! throw-away CA from vigo-pki, trusted through `ca_file`).
//!
//! Each behaviour is one `async fn` taking a backend; `contract!` turns it
//! into one test per backend (`get_and_set_count_versions::local`, ...).
//! Behaviours only the isopass client has are in `contract/isopass.rs`.

#[path = "contract/isopass.rs"]
mod isopass;

use std::any::Any;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use isopass_standin::{StandinOptions, Transport};
use vigo_secrets::{
    IsopassConfig, IsopassProvider, LocalProvider, MasterKey, MemoryProvider, SecretPath,
    SecretProvider, SecretValue,
};
use zeroize::Zeroizing;

/// A backend under test, with whatever must stay alive while it is used
/// (temporary folders, a running stand-in).
struct Backend {
    provider: Box<dyn SecretProvider>,
    _keep: Vec<Box<dyn Any>>,
}

async fn memory() -> Backend {
    Backend {
        provider: Box::new(MemoryProvider::new()),
        _keep: Vec::new(),
    }
}

async fn local() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::generate_to(&dir.path().join("master.key")).unwrap();
    Backend {
        provider: Box::new(LocalProvider::new(key, dir.path().join("secrets"))),
        _keep: vec![Box::new(dir)],
    }
}

async fn isopass() -> Backend {
    let (site, standin, provider) = TlsSite::serving().await;
    Backend {
        provider: Box::new(provider),
        _keep: vec![Box::new(StopOnDrop(Some(standin))), Box::new(site)],
    }
}

/// Stops a stand-in when the test that started it ends.
struct StopOnDrop(Option<isopass_standin::Handle>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            // The test's runtime is still alive while its locals drop.
            drop(tokio::spawn(handle.shutdown()));
        }
    }
}

/// A temporary folder with a CA, a server certificate for 127.0.0.1 signed
/// by it, a token file (0600) and a stand-in data file location.
struct TlsSite {
    dir: tempfile::TempDir,
}

const TOKEN: &str = "tok-contract-0b8e41";

impl TlsSite {
    fn new() -> TlsSite {
        let dir = tempfile::tempdir().unwrap();
        vigo_test_support::write_loopback_tls(dir.path(), "isopass stand-in test CA");
        write_private(&dir.path().join("token"), &format!("{TOKEN}\n"));
        TlsSite { dir }
    }

    /// A new site, a stand-in serving it, and a client of that stand-in.
    async fn serving() -> (TlsSite, isopass_standin::Handle, IsopassProvider) {
        let site = TlsSite::new();
        let standin = site.spawn().await;
        let provider = site.provider(&standin);
        (site, standin, provider)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn options(&self) -> StandinOptions {
        StandinOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            token: Zeroizing::new(TOKEN.to_owned()),
            transport: Transport::Tls {
                cert_file: self.file("server.pem"),
                key_file: self.file("server.key"),
            },
            data_file: Some(self.file("standin.json")),
        }
    }

    async fn spawn(&self) -> isopass_standin::Handle {
        isopass_standin::spawn(self.options()).await.unwrap()
    }

    fn config(&self, standin: &isopass_standin::Handle) -> IsopassConfig {
        IsopassConfig {
            url: format!("https://127.0.0.1:{}", standin.addr.port()),
            token_file: self.file("token"),
            ca_file: Some(self.file("ca.pem")),
        }
    }

    fn provider(&self, standin: &isopass_standin::Handle) -> IsopassProvider {
        IsopassProvider::new(self.config(standin)).unwrap()
    }
}

fn write_private(file: &Path, content: &str) {
    fs::write(file, content).unwrap();
    fs::set_permissions(file, fs::Permissions::from_mode(0o600)).unwrap();
}

fn path(p: &str) -> SecretPath {
    SecretPath::parse(p).unwrap()
}

fn value(v: &str) -> SecretValue {
    SecretValue::from(v)
}

/// One test per backend for each named behaviour.
macro_rules! contract {
    ($($behaviour:ident),* $(,)?) => {$(
        mod $behaviour {
            #[tokio::test]
            async fn memory() {
                super::$behaviour(super::memory().await).await;
            }
            #[tokio::test]
            async fn local() {
                super::$behaviour(super::local().await).await;
            }
            #[tokio::test]
            async fn isopass() {
                super::$behaviour(super::isopass().await).await;
            }
        }
    )*};
}

contract!(
    set_counts_versions_and_get_returns_the_latest,
    values_round_trip_exactly,
    list_filters_by_whole_segments_and_sorts,
    delete_removes_and_reports_absent,
    versions_omit_absent_paths,
    absent_secret_is_not_found,
);

async fn set_counts_versions_and_get_returns_the_latest(b: Backend) {
    let p = path("vigo/db/dsn");
    assert!(!b.provider.exists(&p).await.unwrap());
    assert_eq!(b.provider.set(&p, &value("first")).await.unwrap(), 1);
    assert_eq!(b.provider.set(&p, &value("second")).await.unwrap(), 2);
    assert_eq!(b.provider.set(&p, &value("third")).await.unwrap(), 3);
    let got = b.provider.get(&p).await.unwrap();
    assert_eq!(got.version, 3);
    assert_eq!(got.value.expose_secret(), "third");
    assert!(b.provider.exists(&p).await.unwrap());
    // Versions are per path.
    assert_eq!(
        b.provider
            .set(&path("vigo/other"), &value("x"))
            .await
            .unwrap(),
        1
    );
}

async fn values_round_trip_exactly(b: Backend) {
    let large: String = (0..40_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let all_controls: String = (1u8..0x20).map(char::from).collect();
    let cases = [
        ("empty", String::new()),
        ("plain", "hunter2".to_owned()),
        ("newlines", "line 1\nline 2\r\n\n".to_owned()),
        (
            "pem",
            "-----BEGIN KEY-----\nAAAA/+==\n-----END KEY-----\n".to_owned(),
        ),
        (
            "escapes",
            "quote\" back\\slash tab\t slash/ {\"json\": 1}".to_owned(),
        ),
        ("unicode", "ünïcödé ☃ 日本語 🦀 \u{200b}".to_owned()),
        ("nul", "before\u{0}after".to_owned()),
        ("controls", all_controls),
        ("spaces", "  leading and trailing  ".to_owned()),
        ("large", large),
    ];
    for (name, text) in &cases {
        let p = path(&format!("roundtrip/{name}"));
        b.provider.set(&p, &value(text)).await.unwrap();
        let got = b.provider.get(&p).await.unwrap();
        assert!(
            got.value.expose_secret() == text.as_str(),
            "{} changed the {name} value",
            b.provider.backend()
        );
    }
}

async fn list_filters_by_whole_segments_and_sorts(b: Backend) {
    for p in ["vigo/smtp/password", "vigo/db/dsn", "vigo/dbx", "other/x"] {
        b.provider.set(&path(p), &value("v")).await.unwrap();
    }
    b.provider
        .set(&path("vigo/db/dsn"), &value("v2"))
        .await
        .unwrap();
    let listed = |infos: Vec<vigo_secrets::SecretInfo>| {
        infos
            .into_iter()
            .map(|i| (i.path.as_str().to_owned(), i.version))
            .collect::<Vec<_>>()
    };
    let owned = |items: &[(&str, u64)]| {
        items
            .iter()
            .map(|(p, v)| ((*p).to_owned(), *v))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        listed(b.provider.list("vigo/db").await.unwrap()),
        owned(&[("vigo/db/dsn", 2)])
    );
    let all_vigo = owned(&[
        ("vigo/db/dsn", 2),
        ("vigo/dbx", 1),
        ("vigo/smtp/password", 1),
    ]);
    assert_eq!(listed(b.provider.list("vigo").await.unwrap()), all_vigo);
    assert_eq!(listed(b.provider.list("vigo/").await.unwrap()), all_vigo);
    assert_eq!(b.provider.list("").await.unwrap().len(), 4);
    assert!(b.provider.list("nothing/here").await.unwrap().is_empty());
    assert!(b.provider.list("vigo/d").await.unwrap().is_empty());
}

async fn delete_removes_and_reports_absent(b: Backend) {
    let p = path("vigo/grafana/admin-password");
    b.provider.set(&p, &value("old")).await.unwrap();
    b.provider
        .set(&path("vigo/grafana/keep"), &value("k"))
        .await
        .unwrap();
    b.provider.delete(&p).await.unwrap();
    assert!(b.provider.get(&p).await.unwrap_err().is_not_found());
    assert!(!b.provider.exists(&p).await.unwrap());
    assert!(b.provider.delete(&p).await.unwrap_err().is_not_found());
    let left: Vec<_> = b.provider.list("vigo/grafana").await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].path.as_str(), "vigo/grafana/keep");
    // The path can be used again.
    b.provider.set(&p, &value("new")).await.unwrap();
    assert_eq!(
        b.provider.get(&p).await.unwrap().value.expose_secret(),
        "new"
    );
}

async fn versions_omit_absent_paths(b: Backend) {
    b.provider.set(&path("a/b"), &value("1")).await.unwrap();
    b.provider.set(&path("a/b"), &value("2")).await.unwrap();
    b.provider.set(&path("c/d"), &value("1")).await.unwrap();
    let asked = [path("c/d"), path("absent/x"), path("a/b")];
    let expected = BTreeMap::from([(path("a/b"), 2), (path("c/d"), 1)]);
    assert_eq!(b.provider.versions(&asked).await.unwrap(), expected);
    assert!(b.provider.versions(&[]).await.unwrap().is_empty());
    assert!(
        b.provider
            .versions(&[path("absent/x")])
            .await
            .unwrap()
            .is_empty()
    );
}

async fn absent_secret_is_not_found(b: Backend) {
    let err = b.provider.get(&path("vigo/absent")).await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    let expected = match b.provider.backend() {
        "local" => "file not found".to_owned(),
        other => format!("{other}: not found"),
    };
    assert_eq!(err.to_string(), expected);
}
