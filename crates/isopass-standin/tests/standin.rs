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

/// [`call`] with the right token, on `route` of `handle`.
async fn authed(
    handle: &Handle,
    method: reqwest::Method,
    route: &str,
    body: Option<Value>,
) -> (StatusCode, Option<Value>) {
    call(method, &url(handle, route), Some(TOKEN), body).await
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
    use reqwest::Method;
    let dir = tempfile::tempdir().unwrap();
    let handle = spawn(options(dir.path())).await.unwrap();
    let value = |v: &str| Some(json!({ "value": v }));
    // In order: (method, route, body, status, the answer's body where it
    // is part of the contract).
    let steps = [
        (
            Method::PUT,
            "/v1/secrets/vigo/db/dsn",
            value("one"),
            StatusCode::OK,
            Some(json!({"path": "vigo/db/dsn", "version": 1})),
        ),
        (
            Method::PUT,
            "/v1/secrets/vigo/db/dsn",
            value("two"),
            StatusCode::OK,
            Some(json!({"path": "vigo/db/dsn", "version": 2})),
        ),
        (
            Method::PUT,
            "/v1/secrets/vigo/dbx",
            value("x"),
            StatusCode::OK,
            Some(json!({"path": "vigo/dbx", "version": 1})),
        ),
        (
            Method::GET,
            "/v1/secrets/vigo/db/dsn",
            None,
            StatusCode::OK,
            Some(json!({"path": "vigo/db/dsn", "version": 2, "value": "two"})),
        ),
        (
            Method::GET,
            "/v1/secrets/vigo/none",
            None,
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            Method::POST,
            "/v1/versions",
            Some(json!({"paths": ["vigo/db/dsn", "vigo/none"]})),
            StatusCode::OK,
            Some(json!({"versions": {"vigo/db/dsn": 2}})),
        ),
        (
            Method::GET,
            "/v1/secrets?prefix=vigo/db",
            None,
            StatusCode::OK,
            Some(json!({"secrets": [{"path": "vigo/db/dsn", "version": 2}]})),
        ),
        (
            Method::DELETE,
            "/v1/secrets/vigo/dbx",
            None,
            StatusCode::NO_CONTENT,
            None,
        ),
        (
            Method::DELETE,
            "/v1/secrets/vigo/dbx",
            None,
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            Method::GET,
            "/v1/secrets/a%20b",
            None,
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            Method::PUT,
            "/v1/secrets/a",
            Some(json!({"v": 1})),
            StatusCode::BAD_REQUEST,
            None,
        ),
    ];
    for (method, route, body, status, answer) in steps {
        let got = authed(&handle, method.clone(), route, body).await;
        assert_eq!(got.0, status, "{method} {route}");
        if answer.is_some() {
            assert_eq!(got.1, answer, "{method} {route}");
        }
    }
    handle.shutdown().await;
}

#[tokio::test]
async fn data_survives_a_restart_on_the_same_port() {
    let dir = tempfile::tempdir().unwrap();
    let handle = spawn(options(dir.path())).await.unwrap();
    let first_addr = handle.addr;
    let secret = "/v1/secrets/vigo/server/hmac_key";
    authed(
        &handle,
        reqwest::Method::PUT,
        secret,
        Some(json!({"value": "k\nü"})),
    )
    .await;
    let restart = handle.restart_options();
    handle.shutdown().await;

    let handle = spawn(restart).await.unwrap();
    assert_eq!(handle.addr, first_addr);
    let got = authed(&handle, reqwest::Method::GET, secret, None).await;
    assert_eq!(
        got.1,
        Some(json!({"path": "vigo/server/hmac_key", "version": 1, "value": "k\nü"}))
    );
    let put = authed(
        &handle,
        reqwest::Method::PUT,
        secret,
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
    let expected = [
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::NOT_FOUND,
    ];
    for status in expected {
        let got = authed(&handle, reqwest::Method::GET, "/v1/secrets/a", None).await;
        assert_eq!(got.0, status);
    }
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
