//! The stand-in through HTTP: token checks, the contract's answers,
//! persistence across a restart on the same port, TLS, and the binary's
//! first output line.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use isopass_standin::{Handle, StandinError, StandinOptions, Transport, spawn};
use reqwest::StatusCode;
use serde_json::{Value, json};
use zeroize::Zeroizing;

const TOKEN: &str = "tok-standin-41aa";

fn options(data_dir: &Path) -> StandinOptions {
    StandinOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        token: Zeroizing::new(TOKEN.to_owned()),
        transport: Transport::InsecureLoopback,
        data_file: Some(data_dir.join("data.json")),
    }
}

fn url(handle: &Handle, rest: &str) -> String {
    format!("http://{}{rest}", handle.addr)
}

async fn call(
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Option<Value>) {
    let client = reqwest::Client::new();
    let mut request = client.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status();
    let bytes = answer.bytes().await.unwrap();
    (status, serde_json::from_slice(&bytes).ok())
}

#[tokio::test]
async fn every_route_needs_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let handle = spawn(options(dir.path())).await.unwrap();
    let routes = [
        (reqwest::Method::GET, "/v1/secrets/a/b"),
        (reqwest::Method::PUT, "/v1/secrets/a/b"),
        (reqwest::Method::DELETE, "/v1/secrets/a/b"),
        (reqwest::Method::GET, "/v1/secrets?prefix=a"),
        (reqwest::Method::POST, "/v1/versions"),
    ];
    for (method, route) in routes {
        for token in [None, Some("wrong"), Some("tok-standin-41a")] {
            let body = Some(json!({"value": "v", "paths": ["a/b"]}));
            let (status, _) = call(method.clone(), &url(&handle, route), token, body).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {route} {token:?}"
            );
        }
    }
    assert!(!dir.path().join("data.json").exists());
    handle.shutdown().await;
}

#[tokio::test]
async fn contract_answers() {
    let dir = tempfile::tempdir().unwrap();
    let handle = spawn(options(dir.path())).await.unwrap();
    let put = |path: &'static str, value: &'static str| {
        let u = url(&handle, &format!("/v1/secrets/{path}"));
        async move {
            call(
                reqwest::Method::PUT,
                &u,
                Some(TOKEN),
                Some(json!({"value": value})),
            )
            .await
        }
    };
    assert_eq!(
        put("vigo/db/dsn", "one").await,
        (
            StatusCode::OK,
            Some(json!({"path": "vigo/db/dsn", "version": 1}))
        )
    );
    assert_eq!(
        put("vigo/db/dsn", "two").await.1,
        Some(json!({"path": "vigo/db/dsn", "version": 2}))
    );
    put("vigo/dbx", "x").await;

    let got = call(
        reqwest::Method::GET,
        &url(&handle, "/v1/secrets/vigo/db/dsn"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(
        got,
        (
            StatusCode::OK,
            Some(json!({"path": "vigo/db/dsn", "version": 2, "value": "two"}))
        )
    );
    let absent = call(
        reqwest::Method::GET,
        &url(&handle, "/v1/secrets/vigo/none"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(absent.0, StatusCode::NOT_FOUND);

    let versions = call(
        reqwest::Method::POST,
        &url(&handle, "/v1/versions"),
        Some(TOKEN),
        Some(json!({"paths": ["vigo/db/dsn", "vigo/none"]})),
    )
    .await;
    assert_eq!(versions.1, Some(json!({"versions": {"vigo/db/dsn": 2}})));

    let listed = call(
        reqwest::Method::GET,
        &url(&handle, "/v1/secrets?prefix=vigo/db"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(
        listed.1,
        Some(json!({"secrets": [{"path": "vigo/db/dsn", "version": 2}]}))
    );

    let deleted = call(
        reqwest::Method::DELETE,
        &url(&handle, "/v1/secrets/vigo/dbx"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(deleted.0, StatusCode::NO_CONTENT);
    let again = call(
        reqwest::Method::DELETE,
        &url(&handle, "/v1/secrets/vigo/dbx"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(again.0, StatusCode::NOT_FOUND);

    let bad = call(
        reqwest::Method::GET,
        &url(&handle, "/v1/secrets/a%20b"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(bad.0, StatusCode::BAD_REQUEST);
    let bad_body = call(
        reqwest::Method::PUT,
        &url(&handle, "/v1/secrets/a"),
        Some(TOKEN),
        Some(json!({"v": 1})),
    )
    .await;
    assert_eq!(bad_body.0, StatusCode::BAD_REQUEST);
    handle.shutdown().await;
}

#[tokio::test]
async fn data_survives_a_restart_on_the_same_port() {
    let dir = tempfile::tempdir().unwrap();
    let handle = spawn(options(dir.path())).await.unwrap();
    let first_addr = handle.addr;
    let secret = url(&handle, "/v1/secrets/vigo/server/hmac_key");
    call(
        reqwest::Method::PUT,
        &secret,
        Some(TOKEN),
        Some(json!({"value": "k\nü"})),
    )
    .await;
    let restart = handle.restart_options();
    handle.shutdown().await;

    let handle = spawn(restart).await.unwrap();
    assert_eq!(handle.addr, first_addr);
    let got = call(reqwest::Method::GET, &secret, Some(TOKEN), None).await;
    assert_eq!(
        got.1,
        Some(json!({"path": "vigo/server/hmac_key", "version": 1, "value": "k\nü"}))
    );
    let put = call(
        reqwest::Method::PUT,
        &secret,
        Some(TOKEN),
        Some(json!({"value": "k2"})),
    )
    .await;
    assert_eq!(
        put.1,
        Some(json!({"path": "vigo/server/hmac_key", "version": 2}))
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn scheduled_failures_answer_503_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let handle = spawn(options(dir.path())).await.unwrap();
    handle.fail_next(2);
    let secret = url(&handle, "/v1/secrets/a");
    for _ in 0..2 {
        let (status, _) = call(reqwest::Method::GET, &secret, Some(TOKEN), None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
    let (status, _) = call(reqwest::Method::GET, &secret, Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(handle.requests_seen(), 3);
    handle.shutdown().await;
}

#[tokio::test]
async fn plain_http_is_refused_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let err = spawn(StandinOptions {
        listen: "0.0.0.0:0".parse().unwrap(),
        ..options(dir.path())
    })
    .await
    .unwrap_err();
    assert!(matches!(err, StandinError::NotLoopback { .. }), "{err:?}");
}

#[tokio::test]
async fn serves_tls_with_the_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca_pem = vigo_test_support::write_loopback_tls(dir.path(), "stand-in test CA");
    let handle = spawn(StandinOptions {
        transport: Transport::Tls {
            cert_file: dir.path().join("server.pem"),
            key_file: dir.path().join("server.key"),
        },
        ..options(dir.path())
    })
    .await
    .unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let answer = client
        .put(format!(
            "https://127.0.0.1:{}/v1/secrets/a",
            handle.addr.port()
        ))
        .bearer_auth(TOKEN)
        .json(&json!({"value": "v"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    handle.shutdown().await;
}

#[test]
fn binary_prints_its_address_first_and_says_it_is_a_stand_in() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let binary = env!("CARGO_BIN_EXE_isopass-standin");

    let help = Command::new(binary).arg("--help").output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("DEVELOPMENT STAND-IN"), "{help}");
    assert!(help.contains("NOT a product"), "{help}");

    let mut child = Command::new(binary)
        .args(["--insecure-loopback", "--token-file"])
        .arg(&token)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let addr = first
        .strip_prefix("listening on 127.0.0.1:")
        .unwrap_or_else(|| panic!("first line was {first:?}"));
    assert!(addr.trim_end().parse::<u16>().unwrap() > 0);
}
