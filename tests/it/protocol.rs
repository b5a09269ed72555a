//! The envoy protocol end to end (docs/operations.md "Enroll envoys", "Replicas behind HAProxy";
//! docs/ARCHITECTURE.md "A check-in", `envoys`): a real `vigosrv`, `vigocli envoys ...`, and envoys
//! that enroll, check in, apply and report — the real `vigoenvoy` for the acceptance run, a bare
//! protocol client for the refusals an honest envoy never provokes.
//!
//! Every scenario runs on the embedded database and, when
//! `VIGO_TEST_POSTGRES` names a PostgreSQL server, again on a fresh schema
//! of it (the DSN stored as the `vigo/db/dsn` secret, as in production).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::support::{
    BackendEnv as Env, DB_NODES, Database, EnvoyHost, TestDir, WEB_NODES, all_output,
    assert_contains, cli_ok, stderr,
};
use crate::wire::{ProtocolEnvoy, one_time_token, runtime};
use serde_json::{Value, json};
use vigo_pki::CertifiedKey;
use vigo_secrets::SecretValue;

const DB1: &str = "db1.example.com";
const WEB1: &str = "web1.example.com";
const DB_PASSWORD: &str = "vigo/db/password";

// --- scenarios, each run on both backends ---------------------------------------------

#[test]
fn acceptance_two_envoys_enroll_and_converge() {
    with_backend(Database::Sqlite, acceptance);
}

#[test]
fn acceptance_two_envoys_enroll_and_converge_postgres() {
    with_backend(Database::Postgres, acceptance);
}

#[test]
fn refusals_keep_every_envoy_to_its_own_identity() {
    with_backend(Database::Sqlite, refusals);
}

#[test]
fn refusals_keep_every_envoy_to_its_own_identity_postgres() {
    with_backend(Database::Postgres, refusals);
}

#[test]
fn force_push_answers_the_wait_at_once_and_resends_the_catalog() {
    with_backend(Database::Sqlite, force_push);
}

#[test]
fn force_push_answers_the_wait_at_once_and_resends_the_catalog_postgres() {
    with_backend(Database::Postgres, force_push);
}

#[test]
fn envoys_commands_need_a_running_server() {
    let dir = TestDir::new();
    dir.start_server(&[]).terminate();
    let out = dir.cli(&["envoys", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "error: server not reachable at 127.0.0.1:{}",
            dir.port
        )),
        "{err}"
    );
}

/// Two envoys, one enrolled with a token and one approved by the operator,
/// both converge their files; a second run is an "unchanged" check-in.
fn acceptance(env: &Env) {
    let dir = &env.dir;
    let mut server = env.start();

    // db1: a one-time token in a 0600 file.
    let token = cli_ok(dir, &["envoys", "token"]);
    let token = token.trim();
    assert_eq!(token.len(), 64, "{token}");
    let db1 = EnvoyHost::new(dir, DB1, Some(token));
    let run = db1.run_once();
    assert!(run.status.success(), "db1 first run:\n{}", all_output(&run));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/db.conf")).unwrap(),
        "password = s3cret-db\n"
    );
    assert_eq!(mode(&dir.path().join("out/db.conf")), 0o600);

    // web1: no token; waits for approval.
    let web1 = EnvoyHost::new(dir, WEB1, None);
    let run = web1.run_once();
    assert!(!run.status.success(), "web1 must wait for approval");
    assert_contains(&all_output(&run), "waiting for approval");
    let listed = cli_ok(dir, &["envoys", "list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(WEB1) && l.contains("pending")),
        "{listed}"
    );
    // The operator approves the key the host printed.
    let printed = all_output(&run);
    let fingerprint = printed
        .split("its key fingerprint is ")
        .nth(1)
        .and_then(|rest| rest.get(..64))
        .unwrap_or_else(|| panic!("no key fingerprint in:\n{printed}"));
    let approved = cli_ok(
        dir,
        &["envoys", "approve", WEB1, "--fingerprint", fingerprint],
    );
    assert_contains(&approved, "approved");
    let run = web1.run_once();
    assert!(
        run.status.success(),
        "web1 after approval:\n{}",
        all_output(&run)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/index.html")).unwrap(),
        "<h1>Example on web1.example.com</h1>\n"
    );

    // Second runs: every resource checked again (docs/ARCHITECTURE.md "A check-in"), nothing to do.
    for host in [&db1, &web1] {
        let run = host.run_once();
        assert!(run.status.success(), "{}", all_output(&run));
        assert!(
            crate::support::in_sync(&run),
            "{}: {}",
            host.name,
            all_output(&run)
        );
    }

    // The operator's view.
    let listed = cli_ok(dir, &["envoys", "list"]);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "NAME",
            "STATUS",
            "PENDING-KEY",
            "LAST-CHECKIN",
            "LAST-REPORT"
        ]
    );
    for name in [DB1, WEB1] {
        let line = lines
            .iter()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing from:\n{listed}"));
        // STATUS is the derived state: the last run changed files.
        let status = line.split_whitespace().nth(1);
        assert!(matches!(status, Some("ok" | "changed")), "{line}");
        assert!(line.contains("Z"), "no last check-in in {line}");
        assert!(line.contains("resources:"), "no last report in {line}");
    }
    let json: Value =
        serde_json::from_str(&cli_ok(dir, &["envoys", "list", "--output", "json"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    assert!(json[0]["last_checkin"].is_string(), "{json}");
    assert_eq!(json[0]["status"], "approved", "{json}");
    assert!(
        matches!(json[0]["state"].as_str(), Some("ok" | "changed")),
        "{json}"
    );

    let shown: Value =
        serde_json::from_str(&cli_ok(dir, &["envoys", "show", DB1, "--output", "json"])).unwrap();
    assert_eq!(shown["name"], DB1);
    assert_eq!(shown["status"], "approved");
    assert_eq!(shown["force_push"], false);
    assert_eq!(shown["facts"]["kernel"]["name"], "Linux");
    assert!(shown["facts"]["os"]["family"].is_string(), "{shown}");
    assert!(shown["cert_fingerprint"].as_str().unwrap().contains(':'));
    let text = cli_ok(dir, &["envoys", "show", DB1]);
    assert_contains(&text, "queued triggers:   none");

    // Nothing the server stored or logged holds the secret value.
    assert!(!server.log().contains("s3cret-db"), "{}", server.log());
    let report = serde_json::to_string(&shown).unwrap();
    assert!(!report.contains("s3cret-db"));

    let metrics = https_text(&env.dir, "/metrics");
    // Every `run --once` asks for the full catalog (docs/ARCHITECTURE.md "A check-in"): four
    // answers.
    assert_contains(&metrics, "vigo_checkins_total{result=\"catalog\"} 4");
    assert_contains(&metrics, "vigo_enrollments_total{result=\"token\"} 1");
    assert_contains(&metrics, "vigo_enrollments_total{result=\"approved\"} 1");
    assert!(server.terminate().success(), "{}", server.log());
}

/// Everything a dishonest or outdated client might try is refused.
fn refusals(env: &Env) {
    let dir = &env.dir;
    let mut server = env.start();
    let rt = runtime();
    rt.block_on(async {
        // db1 enrolls with a token.
        let token = one_time_token(dir);
        let mut db1 = ProtocolEnvoy::new(dir, DB1);
        let (status, body) = db1.enroll(Some(&token)).await;
        assert_eq!(status, 200, "{body}");

        // The token is single-use.
        let mut other = ProtocolEnvoy::new(dir, "db2.example.com");
        let (status, body) = other.enroll(Some(&token)).await;
        assert_eq!(status, 403, "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("already used"),
            "{body}"
        );
        // An unknown token too.
        let (status, _) = other.enroll(Some(&"0".repeat(64))).await;
        assert_eq!(status, 403);

        // No one takes over db1's name with another key...
        let mut impostor = ProtocolEnvoy::new(dir, DB1);
        let fresh = one_time_token(dir);
        let (status, body) = impostor.enroll(Some(&fresh)).await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(
            body["message"],
            "envoy 'db1.example.com' is already enrolled with another key; revoke and remove it first"
        );
        // ...while db1 itself asking again gets its certificate back.
        let (status, body) = db1.enroll(None).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("approved")));

        // No client certificate: 401 on every envoy route.
        let anonymous = ProtocolEnvoy::new(dir, WEB1);
        let (status, body) = anonymous.checkin(None).await;
        assert_eq!(status, 401, "{body}");
        let (status, _) = anonymous.wait().await;
        assert_eq!(status, 401);
        let (status, _) = anonymous.report(&json!({})).await;
        assert_eq!(status, 401);

        // web1 enrolls; its certificate only ever gets web1's catalog.
        let mut web1 = ProtocolEnvoy::new(dir, WEB1);
        let (status, _) = web1.enroll(Some(&fresh)).await;
        assert_eq!(status, 200);
        let (status, body) = web1.checkin(None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "catalog");
        assert_eq!(body["catalog"]["envoy"], WEB1);
        let names: Vec<&str> = body["catalog"]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["web-index"]);
        assert!(body["catalog"].get("secrets").is_none(), "{body}");
        assert!(!body.to_string().contains("s3cret-db"));

        // db1's catalog carries db1's secret, to db1 only.
        let (status, body) = db1.checkin(None).await;
        assert_eq!(status, 200);
        assert_eq!(body["catalog"]["envoy"], DB1);
        assert_eq!(
            body["catalog"]["secrets"][DB_PASSWORD]["value"],
            "s3cret-db"
        );
        let fingerprint = body["fingerprint"].as_str().unwrap().to_owned();
        let (status, body) = db1.checkin(Some(&fingerprint)).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("unchanged")));
        // Reports: stored and shown; a malformed one is refused.
        let report = json!({"fingerprint": fingerprint, "report": {
            "envoy": DB1, "noop": false, "duration_ms": 2,
            "resources": [{"name": "pg-config", "type": "file", "status": "changed",
                           "duration_ms": 1, "message": "content updated"}],
            "summary": {"total": 1, "changed": 1, "failed": 0, "skipped": 0, "unchanged": 0},
            "secret_triggered_applied": []
        }});
        let (status, body) = db1.report(&report).await;
        assert_eq!(status, 204, "{body}");
        let (status, body) = db1.report(&json!({"fingerprint": fingerprint})).await;
        assert_eq!(status, 400, "{body}");
        let shown = cli_ok(dir, &["envoys", "show", DB1]);
        assert_contains(&shown, "file[pg-config] changed (1 ms): content updated");
        assert_contains(&shown, "1 resources: 1 changed, 0 failed, 0 skipped, 0 unchanged");

        // web1 presenting db1's fingerprint is not db1.
        let (_, body) = web1.checkin(Some(&fingerprint)).await;
        assert_eq!(body["status"], "catalog");
        assert_eq!(body["catalog"]["envoy"], WEB1);

        // A certificate signed by the Vigo CA but not the one on record
        // (db1's name with another key) is refused.
        let ca = ca_key(dir).await;
        let db1_name = vigo_secrets::EnvoyName::parse(DB1).unwrap();
        let (forged_key, forged_csr) = vigo_pki::generate_envoy_key_and_csr(&db1_name).unwrap();
        let forged_cert =
            vigo_pki::sign_envoy_csr(&ca, &forged_csr, &db1_name, Duration::from_secs(3600))
                .unwrap();
        let forged = ProtocolEnvoy::with_identity(dir, DB1, forged_key, forged_csr, forged_cert);
        let (status, body) = forged.checkin(None).await;
        assert_eq!(status, 403, "{body}");

        // Revoked: refused from then on, and cannot enroll again.
        cli_ok(dir, &["envoys", "revoke", WEB1]);
        let (status, body) = web1.checkin(None).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["message"], "envoy 'web1.example.com' is revoked");
        let (status, _) = web1.wait().await;
        assert_eq!(status, 403);
        let (status, _) = web1.enroll(None).await;
        assert_eq!(status, 403);
        let listed: Value =
            serde_json::from_str(&cli_ok(dir, &["envoys", "list", "--output", "json"])).unwrap();
        let web = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == WEB1)
            .unwrap();
        assert_eq!(web["status"], "revoked");
        // Approving a revoked envoy is refused; unknown envoys are 404.
        let out = dir.cli(&["envoys", "approve", WEB1]);
        assert_eq!(out.status.code(), Some(1));
        assert_contains(&stderr(&out), "revoked");
        let out = dir.cli(&["envoys", "show", "nobody.example.com"]);
        assert_eq!(out.status.code(), Some(1));
        assert_contains(&stderr(&out), "no envoy named");

        // Bad input is a 400 naming the problem.
        let mut bad = ProtocolEnvoy::new(dir, "10.0.0.1");
        let (status, body) = bad.enroll(None).await;
        assert_eq!(status, 400, "{body}");
    });
    assert!(!server.log().contains("s3cret-db"));
    assert!(server.terminate().success(), "{}", server.log());
}

/// Force-push set in the database: the wait answers at once, the next
/// check-in gets the whole catalog even with a current fingerprint, and the
/// one after that is "unchanged" again.
fn force_push(env: &Env) {
    let dir = &env.dir;
    let mut server = env.start();
    let rt = runtime();
    rt.block_on(async {
        let token = cli_ok(dir, &["envoys", "token", "--ttl", "5m"])
            .trim()
            .to_owned();
        let mut db1 = ProtocolEnvoy::new(dir, DB1);
        db1.enroll(Some(&token)).await;
        let (_, body) = db1.checkin(None).await;
        let fingerprint = body["fingerprint"].as_str().unwrap().to_owned();

        let store = vigo_store::connect(&dsn(dir))
            .await
            .expect("open the server's database");
        store.set_force_push(&[DB1], true).await.unwrap();
        let (status, body) = db1.wait().await;
        assert_eq!((status, body), (200, json!({"checkin_now": true})));

        let (_, body) = db1.checkin(Some(&fingerprint)).await;
        assert_eq!(body["status"], "catalog", "force-push resends the catalog");
        assert_eq!(body["fingerprint"], fingerprint.as_str());
        let (_, body) = db1.checkin(Some(&fingerprint)).await;
        assert_eq!(
            body["status"], "unchanged",
            "force-push is cleared once sent"
        );
        assert!(!store.force_push(DB1).await.unwrap());

        // A wait already held is woken when force-push is set meanwhile
        // (noticed by the server's periodic re-check of the database).
        let waiting = {
            let db1 = db1.clone();
            tokio::spawn(async move { db1.wait().await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        store.set_force_push(&[DB1], true).await.unwrap();
        let (status, body) = waiting.await.unwrap();
        assert_eq!((status, body), (200, json!({"checkin_now": true})));
        store.close().await;
    });
    // Shutdown is not held up by waits.
    let rt = runtime();
    let web1 = rt.block_on(async {
        let token = one_time_token(dir);
        let mut web1 = ProtocolEnvoy::new(dir, WEB1);
        web1.enroll(Some(&token)).await;
        web1.checkin(None).await;
        web1
    });
    let held = rt.spawn(async move { web1.wait().await });
    std::thread::sleep(Duration::from_millis(300));
    assert!(server.terminate().success(), "{}", server.log());
    let (status, body) = rt.block_on(held).unwrap();
    assert_eq!((status, body), (200, json!({"checkin_now": false})));
}

// --- backends ------------------------------------------------------------------------

/// The server's DSN, read back through the CLI as an operator would.
fn dsn(dir: &TestDir) -> SecretValue {
    SecretValue::new(
        cli_ok(dir, &["secrets", "get", "vigo/db/dsn"])
            .trim()
            .to_owned(),
    )
}

fn with_backend(database: Database, scenario: fn(&Env)) {
    Env::prepare(database, "s3cret-db", write_config_repo, scenario);
}

/// `db*` gets a 0600 file holding the database password; `web*` a page.
/// Both land under `<root>/out`.
fn write_config_repo(dir: &TestDir) {
    let out = dir.path().join("out");
    dir.write(
        "config/nodes.vgo",
        &format!("envoys:\n{DB_NODES}{WEB_NODES}"),
    );
    dir.write(
        "config/modules/database.vgo",
        &format!(
            "resources:\n  - name: db-out\n    type: directory\n    target_path: {out}\n  - name: pg-config\n    type: file\n    target_path: {out}/db.conf\n    content: |\n      password = {{{{ .Vars.db_password }}}}\n    watch_secret: [\"vigo/db/password\"]\n    depends_on: [db-out]\n",
            out = out.display()
        ),
    );
    dir.write(
        "config/modules/web.vgo",
        &format!(
            "resources:\n  - name: web-index\n    type: file\n    target_path: {out}/index.html\n    content: |\n      <h1>{{{{ .Vars.site_name }}}} on {{{{ .Envoy.Name }}}}</h1>\n",
            out = out.display()
        ),
    );
    std::fs::create_dir_all(&out).unwrap();
}

// --- the envoy as bare protocol calls --------------------------------------------------

/// The CA as the server holds it, read through the CLI (tests only: it lets
/// a test forge a certificate the CA signed but the server never issued).
async fn ca_key(dir: &TestDir) -> CertifiedKey {
    CertifiedKey {
        cert_pem: cli_ok(dir, &["secrets", "get", "vigo/tls/ca_cert"]),
        key_pem: SecretValue::new(cli_ok(dir, &["secrets", "get", "vigo/tls/ca_key"])),
    }
}

// --- small things --------------------------------------------------------------------

/// Runs `vigocli` and returns its stdout, failing the test on a non-zero exit.
fn https_text(dir: &TestDir, route: &str) -> String {
    let ca = std::fs::read_to_string(dir.ca_file()).unwrap();
    let (status, body) =
        crate::support::https_get(&format!("https://127.0.0.1:{}{route}", dir.port), &ca).unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
