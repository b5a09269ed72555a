//! Starts a server in-process on a temporary data folder and talks HTTPS to
//! it, trusting only the exported CA certificate.

use std::path::Path;
use std::sync::Arc;

use vigo_server::Server;

fn write_config(dir: &Path) -> std::path::PathBuf {
    let file = dir.join("vigosrv.yaml");
    std::fs::write(&file, "listen: \"127.0.0.1:0\"\ndata_dir: data\n").unwrap();
    file
}

fn client(ca_pem: &str) -> reqwest::Client {
    let tls = vigo_pki::client_tls_config(ca_pem, None).unwrap();
    reqwest::Client::builder()
        .use_preconfigured_tls(Arc::unwrap_or_clone(tls))
        .build()
        .unwrap()
}

#[tokio::test]
async fn first_start_serves_health_and_guards_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&write_config(dir.path())).await.unwrap();
    let port = server.local_addr().port();
    let token = server.admin_token().expose_secret().to_owned();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));

    let ca = std::fs::read_to_string(dir.path().join("data/ca.crt")).unwrap();
    let http = client(&ca);
    let base = format!("https://127.0.0.1:{port}");
    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok");

    let url = format!("{base}/v1/admin/secrets/changed");
    let body = serde_json::json!({"path": "vigo/x", "version": 2});
    let no_token = http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(no_token.status(), 401);
    let answer: serde_json::Value = no_token.json().await.unwrap();
    assert_eq!(answer["code"], "unauthorized");

    let wrong = http
        .post(&url)
        .bearer_auth("nope")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    // Sending mail is the admin's alone; without smtp it says so.
    let mail = format!("{base}/v1/admin/notify/test");
    let refused = http.post(&mail).bearer_auth("nope").send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let unset = http.post(&mail).bearer_auth(&token).send().await.unwrap();
    assert_eq!(unset.status(), 409);
    let answer: serde_json::Value = unset.json().await.unwrap();
    assert_eq!(answer["code"], "conflict");

    let bad_path = serde_json::json!({"path": "../../etc/shadow"});
    let bad = http
        .post(&url)
        .bearer_auth(&token)
        .json(&bad_path)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let answer: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(answer["code"], "bad_request");

    let ok = http
        .post(&url)
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);

    let missing = http.get(format!("{base}/nowhere")).send().await.unwrap();
    assert_eq!(missing.status(), 404);

    stop.send(()).unwrap();
    running.await.unwrap();
}

#[tokio::test]
async fn a_second_start_reuses_the_generated_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let first = Server::start(&config).await.unwrap();
    let token = first.admin_token().expose_secret().to_owned();
    drop(first);
    let second = Server::start(&config).await.unwrap();
    assert_eq!(second.admin_token().expose_secret(), token);
}
