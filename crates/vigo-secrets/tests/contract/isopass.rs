//! Behaviours of the isopass client beyond the shared contract: credentials,
//! transport rules, retries, error texts, and that the token never shows.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use isopass_standin::{StandinOptions, Transport};
use vigo_secrets::{IsopassConfig, IsopassProvider, SecretError, SecretProvider};

use super::{TOKEN, TlsSite, path, value, write_private};

#[tokio::test]
async fn wrong_token_is_unauthorized_and_not_retried() {
    let site = TlsSite::new();
    let standin = site.spawn().await;
    write_private(&site.file("other-token"), "tok-wrong-77d1");
    let provider = IsopassProvider::new(IsopassConfig {
        token_file: site.file("other-token"),
        ..site.config(&standin)
    })
    .unwrap();
    let before = standin.requests_seen();
    let err = provider.get(&path("vigo/db/dsn")).await.unwrap_err();
    assert!(
        matches!(err, SecretError::Unauthorized { backend: "isopass" }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "isopass: unauthorized (check the token in token_file)"
    );
    assert_eq!(standin.requests_seen() - before, 1);
    let err = provider
        .set(&path("vigo/db/dsn"), &value("v"))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::Unauthorized { .. }), "{err:?}");
    standin.shutdown().await;
}

#[tokio::test]
async fn stopped_isopass_is_unreachable_then_back_with_its_data() {
    let (_site, standin, provider) = TlsSite::serving().await;
    let p = path("vigo/db/dsn");
    provider
        .set(&p, &value("postgres://vigo@db/vigo"))
        .await
        .unwrap();

    let restart = standin.restart_options();
    standin.shutdown().await;
    let err = provider.get(&p).await.unwrap_err();
    assert!(
        matches!(
            err,
            SecretError::Unreachable {
                backend: "isopass",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "isopass unreachable: connection refused");
    let err = provider.set(&p, &value("x")).await.unwrap_err();
    assert_eq!(err.to_string(), "isopass unreachable: connection refused");

    // Back on the same port with the same data file: the same client works.
    let standin = isopass_standin::spawn(restart).await.unwrap();
    let got = provider.get(&p).await.unwrap();
    assert_eq!(got.version, 1);
    assert_eq!(got.value.expose_secret(), "postgres://vigo@db/vigo");
    standin.shutdown().await;
}

#[tokio::test]
async fn server_errors_are_retried_twice_then_stand() {
    let (_site, standin, provider) = TlsSite::serving().await;
    let p = path("vigo/server/hmac_key");
    provider.set(&p, &value("k1")).await.unwrap();

    // Two failures, then the third attempt succeeds.
    standin.fail_next(2);
    let before = standin.requests_seen();
    assert_eq!(provider.get(&p).await.unwrap().value.expose_secret(), "k1");
    assert_eq!(standin.requests_seen() - before, 3);

    // Writes are retried on 5xx too.
    standin.fail_next(2);
    let before = standin.requests_seen();
    assert_eq!(provider.set(&p, &value("k2")).await.unwrap(), 2);
    assert_eq!(standin.requests_seen() - before, 3);

    // Three failures: the error stands after the two retries.
    standin.fail_next(3);
    let before = standin.requests_seen();
    let err = provider
        .versions(std::slice::from_ref(&p))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SecretError::Backend {
                backend: "isopass",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "isopass: HTTP 503");
    assert_eq!(standin.requests_seen() - before, 3);
    standin.shutdown().await;
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let (_site, standin, provider) = TlsSite::serving().await;
    let before = standin.requests_seen();
    let err = provider.get(&path("vigo/absent")).await.unwrap_err();
    assert_eq!(err.to_string(), "isopass: not found");
    let err = provider.delete(&path("vigo/absent")).await.unwrap_err();
    assert_eq!(err.to_string(), "isopass: not found");
    assert_eq!(standin.requests_seen() - before, 2);
    standin.shutdown().await;
}

#[tokio::test]
async fn untrusted_certificate_is_a_tls_error() {
    let site = TlsSite::new();
    let standin = site.spawn().await;
    let stranger = vigo_pki::generate_ca("some other CA").unwrap();
    fs::write(site.file("other-ca.pem"), &stranger.cert_pem).unwrap();
    let provider = IsopassProvider::new(IsopassConfig {
        ca_file: Some(site.file("other-ca.pem")),
        ..site.config(&standin)
    })
    .unwrap();
    let err = provider.get(&path("vigo/db/dsn")).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, SecretError::Unreachable { .. }), "{err:?}");
    assert!(
        text.starts_with("isopass unreachable: TLS: invalid peer certificate"),
        "{text}"
    );
    assert!(!text.contains("https://"), "{text}");
    standin.shutdown().await;
}

#[tokio::test]
async fn plain_http_works_on_loopback_only() {
    let site = TlsSite::new();
    let standin = isopass_standin::spawn(StandinOptions {
        transport: Transport::InsecureLoopback,
        data_file: None,
        ..site.options()
    })
    .await
    .unwrap();
    let provider = IsopassProvider::new(IsopassConfig {
        url: format!("http://localhost:{}", standin.addr.port()),
        token_file: site.file("token"),
        ca_file: None,
    })
    .unwrap();
    provider.set(&path("a/b"), &value("v")).await.unwrap();
    assert_eq!(provider.get(&path("a/b")).await.unwrap().version, 1);
    standin.shutdown().await;

    for url in ["http://isopass.example:8443", "http://10.1.2.3:8443"] {
        let err = IsopassProvider::new(IsopassConfig {
            url: url.to_owned(),
            token_file: site.file("token"),
            ca_file: None,
        })
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("plain http:// to a host that is not loopback"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn https_client_refuses_a_plain_http_server() {
    let site = TlsSite::new();
    let standin = isopass_standin::spawn(StandinOptions {
        transport: Transport::InsecureLoopback,
        ..site.options()
    })
    .await
    .unwrap();
    let provider = site.provider(&standin);
    let err = provider.get(&path("a/b")).await.unwrap_err();
    assert!(
        err.to_string().starts_with("isopass unreachable: TLS: "),
        "{err}"
    );
    standin.shutdown().await;
}

#[test]
fn unsafe_or_unusable_token_files_are_refused() {
    let site = TlsSite::new();
    let config = |token_file| IsopassConfig {
        url: "https://isopass.internal:8443".to_owned(),
        token_file,
        ca_file: None,
    };
    let token = site.file("token");
    fs::set_permissions(&token, fs::Permissions::from_mode(0o644)).unwrap();
    let err = IsopassProvider::new(config(token.clone())).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "isopass: token file {0} is readable or writable by group or others (mode 0644); run: chmod 600 {0}",
            token.display()
        )
    );

    let err = IsopassProvider::new(config(site.file("absent"))).unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");

    write_private(&site.file("empty"), "");
    let err = IsopassProvider::new(config(site.file("empty"))).unwrap_err();
    assert!(err.to_string().contains("is empty"), "{err}");

    write_private(&site.file("good-token"), "tok-1");
    fs::write(site.file("bad-ca.pem"), "not a certificate").unwrap();
    let err = IsopassProvider::new(IsopassConfig {
        ca_file: Some(site.file("bad-ca.pem")),
        ..config(site.file("good-token"))
    })
    .unwrap_err();
    assert!(err.to_string().contains("holds no certificate"), "{err}");
    let err = IsopassProvider::new(IsopassConfig {
        ca_file: Some(site.file("absent-ca.pem")),
        ..config(site.file("good-token"))
    })
    .unwrap_err();
    assert!(err.to_string().contains("ca_file"), "{err}");
}

#[tokio::test]
async fn token_never_shows_in_errors_or_debug() {
    const CANARY: &str = "canary-token-5f2e9c";
    let site = TlsSite::new();
    write_private(&site.file("canary-token"), CANARY);
    let standin = site.spawn().await;
    let good = IsopassProvider::new(IsopassConfig {
        token_file: site.file("canary-token"),
        ..site.config(&standin)
    })
    .unwrap();
    let mut shown = vec![format!("{good:?}")];
    let mut record = |err: SecretError| {
        shown.push(err.to_string());
        shown.push(format!("{err:?}"));
    };
    // Wrong token (the stand-in expects TOKEN, the client sends the canary).
    record(good.get(&path("a/b")).await.unwrap_err());
    record(good.set(&path("a/b"), &value("v")).await.unwrap_err());
    record(good.list("").await.unwrap_err());
    record(good.versions(&[path("a/b")]).await.unwrap_err());
    // Server errors and an unreachable server.
    standin.fail_next(3);
    record(good.get(&path("a/b")).await.unwrap_err());
    standin.shutdown().await;
    record(good.get(&path("a/b")).await.unwrap_err());
    // An unsafe token file.
    fs::set_permissions(site.file("canary-token"), fs::Permissions::from_mode(0o640)).unwrap();
    record(
        IsopassProvider::new(IsopassConfig {
            token_file: site.file("canary-token"),
            url: "https://isopass.internal".to_owned(),
            ca_file: None,
        })
        .unwrap_err(),
    );
    assert!(shown.len() > 10);
    for text in &shown {
        assert!(!text.contains(CANARY), "the token leaked into: {text}");
    }
    assert!(shown[0].contains("[REDACTED]"), "{}", shown[0]);
    // The stand-in's own token is not the canary, so it could not leak it.
    assert_ne!(TOKEN, CANARY);
}

#[tokio::test]
async fn values_never_show_in_errors() {
    const CANARY: &str = "canary-value-a17c";
    let (_site, standin, provider) = TlsSite::serving().await;
    let p = path("vigo/db/dsn");
    provider.set(&p, &value(CANARY)).await.unwrap();
    let got = provider.get(&p).await.unwrap();
    assert!(!format!("{got:?}").contains(CANARY));
    standin.fail_next(3);
    let err = provider.get(&p).await.unwrap_err();
    assert!(!format!("{err} {err:?}").contains(CANARY));
    standin.shutdown().await;
}
