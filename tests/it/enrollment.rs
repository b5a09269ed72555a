//! Enrollment hardening over the real binaries (docs/operations.md "Enroll envoys", `envoys`):
//! a pending name is bound to the first key that asked, approval names that
//! key's fingerprint, `remove` frees a name, names are one lower-case form,
//! unauthenticated requests are capped per source, and token lifetimes are
//! checked in the terms of the flag.
//!
//! The real `vigoenvoy` plays the honest host; a bare protocol client with
//! its own key plays whoever else can reach the port. Every scenario that
//! touches the database runs on the embedded one and, when
//! `VIGO_TEST_POSTGRES` names a PostgreSQL server, on a fresh schema of it.

use std::sync::Arc;

use crate::support::{
    BackendEnv as Env, Database, EnvoyHost, TestDir, all_output, assert_contains, cli_ok, stderr,
    stdout,
};
use crate::wire::{ProtocolEnvoy, decode, one_time_token, runtime};
use serde_json::{Value, json};

const DB1: &str = "db1.example.com";
const WEB1: &str = "web1.example.com";
const DB_PASSWORD: &str = "vigo/db/password";
const SECRET: &str = "s3cret-db-issue12";

// --- scenarios, each on both backends ----------------------------------------------------

#[test]
fn issue_12_pending_name_is_bound_to_the_first_key() {
    with_backend(Database::Sqlite, pending_name_is_bound);
}

#[test]
fn issue_12_pending_name_is_bound_to_the_first_key_postgres() {
    with_backend(Database::Postgres, pending_name_is_bound);
}

#[test]
fn issue_12_remove_frees_a_name_to_enroll_again() {
    with_backend(Database::Sqlite, remove_then_enroll_again);
}

#[test]
fn issue_12_remove_frees_a_name_to_enroll_again_postgres() {
    with_backend(Database::Postgres, remove_then_enroll_again);
}

#[test]
fn issue_12_upper_case_names_are_the_same_envoy() {
    with_backend(Database::Sqlite, upper_case_names);
}

#[test]
fn issue_12_upper_case_names_are_the_same_envoy_postgres() {
    with_backend(Database::Postgres, upper_case_names);
}

#[test]
fn issue_12_pending_requests_are_capped_per_source() {
    with_backend(Database::Sqlite, capped_per_source);
}

#[test]
fn issue_12_pending_requests_are_capped_per_source_postgres() {
    with_backend(Database::Postgres, capped_per_source);
}

#[test]
fn issue_16_token_ttl_is_checked_in_flag_terms() {
    // Checked before anything is opened: no server, no secrets needed.
    let dir = TestDir::new();
    for ttl in ["0s", "500ms", "59s", "31d"] {
        let out = dir.cli(&["envoys", "token", "--ttl", ttl]);
        assert_eq!(out.status.code(), Some(1), "{ttl}: {}", all_output(&out));
        assert_eq!(
            stderr(&out),
            format!("error: --ttl must be between 1m and 30d (got {ttl})\n"),
            "{ttl}"
        );
        assert_eq!(stdout(&out), "");
    }
}

// --- the scenarios ---------------------------------------------------------------------

/// While the real host waits, another key asking for its name is refused
/// and logged; the operator sees the host's fingerprint and approval needs
/// it. (Before: the second request replaced the CSR and `approve` signed
/// the attacker's key, which then received the host's catalog.)
fn pending_name_is_bound(env: &Env) {
    let dir = &env.dir;
    let mut server = env.start();
    let web1 = EnvoyHost::new(dir, WEB1, None);
    let run = web1.run_once();
    assert!(!run.status.success(), "web1 must wait for approval");
    let fingerprint = printed_fingerprint(&all_output(&run));

    let rt = runtime();
    rt.block_on(async {
        // Someone else, with their own key, asks for the pending name.
        let mut attacker = ProtocolEnvoy::new(dir, WEB1);
        let (status, body) = attacker.enroll(None).await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["code"], "conflict", "{body}");
        assert_eq!(
            body["message"],
            "envoy 'web1.example.com' already has a pending enrollment request from another key; if that request is not this host's, an operator must remove it (`vigocli envoys remove web1.example.com`)"
        );
        // In upper case it is the same name, and a token does not rebind it.
        let token = one_time_token(dir);
        let mut shouting = ProtocolEnvoy::new(dir, "WEB1.EXAMPLE.COM");
        let (status, body) = shouting.enroll(Some(&token)).await;
        assert_eq!(status, 409, "{body}");
        assert!(
            server.wait_for_log("refused an enrollment request for a pending name from another key"),
            "{}",
            server.log()
        );
        let warned = server
            .log()
            .lines()
            .find(|l| l.contains("refused an enrollment request"))
            .unwrap()
            .to_owned();
        assert_contains(&warned, "WARN");
        assert_contains(&warned, "remote=127.0.0.1");
        assert_contains(&warned, &attacker.fingerprint());

        // The operator's view shows the host's key, in text and JSON.
        let listed = cli_ok(dir, &["envoys", "list"]);
        let row = listed.lines().find(|l| l.starts_with(WEB1)).unwrap();
        assert!(row.contains("pending") && row.contains(&fingerprint), "{listed}");
        let json: Value =
            serde_json::from_str(&cli_ok(dir, &["envoys", "list", "--output", "json"])).unwrap();
        assert_eq!(json[0]["pending_fingerprint"], fingerprint.as_str(), "{json}");
        let shown = cli_ok(dir, &["envoys", "show", WEB1]);
        assert_contains(&shown, &format!("pending key:       {fingerprint}\n"));
        let shown: Value =
            serde_json::from_str(&cli_ok(dir, &["envoys", "show", WEB1, "--output", "json"]))
                .unwrap();
        assert_eq!(shown["pending_fingerprint"], fingerprint.as_str());

        // Approval without a fingerprint refuses and shows the one to compare.
        let out = dir.cli(&["envoys", "approve", WEB1]);
        assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
        assert_eq!(
            stderr(&out),
            format!(
                "error: approving needs --fingerprint: envoy 'web1.example.com' waits with key fingerprint {fingerprint}; check that vigoenvoy on the host printed the same, then run `vigocli envoys approve web1.example.com --fingerprint {fingerprint}` (if it differs, the request is not the host's: `vigocli envoys remove web1.example.com`)\n"
            )
        );
        // A wrong key, too short a prefix, or garbage: refused.
        let wrong = attacker.fingerprint();
        let out = dir.cli(&["envoys", "approve", WEB1, "--fingerprint", &wrong]);
        assert_eq!(out.status.code(), Some(1));
        assert_contains(&stderr(&out), &format!(
                "the pending request of 'web1.example.com' comes from key {fingerprint}, not {wrong}"
            ));
        for bad in [&fingerprint[..15], "not-a-fingerprint"] {
            let out = dir.cli(&["envoys", "approve", WEB1, "--fingerprint", bad]);
            assert_eq!(out.status.code(), Some(1));
            assert!(
                stderr(&out).starts_with("error: --fingerprint must be"),
                "{}",
                stderr(&out)
            );
        }
        // The raw API refuses an approval without a fingerprint as well.
        let (status, body) = admin_post(dir, &format!("/v1/admin/envoys/{WEB1}/approve"), &json!({})).await;
        assert_eq!(status, 400, "{body}");
        let listed: Value =
            serde_json::from_str(&cli_ok(dir, &["envoys", "list", "--output", "json"])).unwrap();
        assert_eq!(listed[0]["status"], "pending");

        // An ambiguous prefix: one key pending under two names.
        let mut twin_a = ProtocolEnvoy::new(dir, "twin-a.example.com");
        let twin_b = twin_a.with_name("twin-b.example.com");
        let mut twin_b = twin_b;
        assert_eq!(twin_a.enroll(None).await.0, 200);
        assert_eq!(twin_b.enroll(None).await.0, 200);
        let twin = twin_a.fingerprint();
        let out = dir.cli(&["envoys", "approve", "twin-a.example.com", "--fingerprint", &twin[..16]]);
        assert_eq!(out.status.code(), Some(1));
        assert_contains(&stderr(&out), "is ambiguous: the pending key of twin-b.example.com starts with it too");
        cli_ok(dir, &["envoys", "approve", "twin-a.example.com", "--fingerprint", &twin]);
    });

    // The host's key, by a 16-digit prefix: approved, and the host gets
    // its catalog; the attacker gets nothing.
    let approved = cli_ok(
        dir,
        &[
            "envoys",
            "approve",
            WEB1,
            "--fingerprint",
            &fingerprint[..16],
        ],
    );
    assert_contains(&approved, "approved");
    let run = web1.run_once();
    assert!(run.status.success(), "{}", all_output(&run));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/index.html")).unwrap(),
        "<h1>web1.example.com</h1>\n"
    );
    rt.block_on(async {
        let mut attacker = ProtocolEnvoy::new(dir, WEB1);
        let (status, body) = attacker.enroll(None).await;
        assert_eq!(status, 409, "{body}");
        assert!(attacker.cert.is_none());
    });
    assert!(server.terminate().success(), "{}", server.log());
}

/// A squatter's pending request blocks the real host until the operator
/// removes it; approved envoys are never removed; revoked ones are, and
/// their name enrolls again.
fn remove_then_enroll_again(env: &Env) {
    let dir = &env.dir;
    let mut server = env.start();
    let rt = runtime();
    rt.block_on(async {
        let mut squatter = ProtocolEnvoy::new(dir, DB1);
        assert_eq!(squatter.enroll(None).await.0, 200);
    });
    let token = cli_ok(dir, &["envoys", "token", "--ttl", "1m"])
        .trim()
        .to_owned();
    let db1 = EnvoyHost::new(dir, DB1, Some(&token));
    let run = db1.run_once();
    assert!(!run.status.success());
    assert_contains(
        &all_output(&run),
        "already has a pending enrollment request from another key",
    );

    let out = cli_ok(dir, &["envoys", "remove", DB1]);
    assert_eq!(
        out,
        format!("Envoy \"{DB1}\" removed; the name can enroll again.\n")
    );
    let run = db1.run_once();
    assert!(run.status.success(), "{}", all_output(&run));
    assert!(dir.path().join("out/db.conf").exists());

    // Approved: refused, with the way out.
    let out = dir.cli(&["envoys", "remove", DB1]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "error: envoy '{DB1}' is approved; revoke it first (`vigocli envoys revoke {DB1}`), then remove it\n"
        )
    );
    let out = dir.cli(&["envoys", "remove", "nobody.example.com"]);
    assert_eq!(out.status.code(), Some(1));
    assert_contains(&stderr(&out), "no envoy named 'nobody.example.com'");

    // Revoked, removed, enrolled again with a new key and token.
    cli_ok(dir, &["envoys", "revoke", DB1]);
    let json: Value =
        serde_json::from_str(&cli_ok(dir, &["envoys", "remove", DB1, "--output", "json"])).unwrap();
    assert_eq!(json, json!({"removed": [DB1]}));
    let token = one_time_token(dir);
    rt.block_on(async {
        let mut reborn = ProtocolEnvoy::new(dir, DB1);
        let (status, body) = reborn.enroll(Some(&token)).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("approved")),
            "{body}"
        );
        let (status, body) = reborn.checkin(None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["catalog"]["envoy"], DB1);
    });
    assert!(server.terminate().success(), "{}", server.log());
}

/// Names are lower-cased once: an upper-case variant is the same envoy and
/// never a second one beside it. (Before: `DB1.EXAMPLE.COM` enrolled beside
/// `db1.example.com` and received its catalog and secret; after revoking
/// `web1.example.com`, `Web1.example.com` enrolled again.)
fn upper_case_names(env: &Env) {
    let dir = &env.dir;
    let mut server = env.start();
    let rt = runtime();
    rt.block_on(async {
        ProtocolEnvoy::enrolled(dir, DB1).await;

        for variant in ["DB1.EXAMPLE.COM", "Db1.Example.Com"] {
            let token = one_time_token(dir);
            let mut impostor = ProtocolEnvoy::new(dir, variant);
            let (status, body) = impostor.enroll(Some(&token)).await;
            assert_eq!(status, 409, "{variant}: {body}");
            assert!(impostor.cert.is_none());
            let (status, _) = impostor.enroll(None).await;
            assert_eq!(status, 409, "{variant}");
        }
        // Not a host name under the one rule: refused outright.
        let mut odd = ProtocolEnvoy::new(dir, "db1.example.com");
        odd.name = "db_1.example.com".to_owned();
        let (status, body) = odd.enroll(None).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("invalid envoy name"),
            "{body}"
        );
    });

    // The real envoy configured in mixed case is web1.example.com.
    let token = one_time_token(dir);
    let web1 = EnvoyHost::new(dir, "Web1.Example.com", Some(&token));
    let run = web1.run_once();
    assert!(run.status.success(), "{}", all_output(&run));
    let listed: Value =
        serde_json::from_str(&cli_ok(dir, &["envoys", "list", "--output", "json"])).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [DB1, WEB1]);
    let shown: Value = serde_json::from_str(&cli_ok(
        dir,
        &["envoys", "show", "WEB1.example.COM", "--output", "json"],
    ))
    .unwrap();
    assert_eq!(shown["name"], WEB1);
    // The operator's view of a catalog is compiled for the same name.
    let catalog: Value = serde_json::from_str(&cli_ok(
        dir,
        &["catalog", "WEB1.Example.COM", "--output", "json"],
    ))
    .unwrap();
    assert_eq!(catalog["envoy"], WEB1, "{catalog}");

    // Revoked stays revoked in every spelling.
    cli_ok(dir, &["envoys", "revoke", WEB1]);
    rt.block_on(async {
        let token = one_time_token(dir);
        let mut again = ProtocolEnvoy::new(dir, "Web1.example.com");
        let (status, body) = again.enroll(Some(&token)).await;
        assert_eq!(status, 403, "{body}");
        assert!(again.cert.is_none());
    });
    assert!(!server.log().contains(SECRET));
    assert!(server.terminate().success(), "{}", server.log());
}

/// Twenty new pending requests a minute from one address; the next is a
/// 429, while a request with a token still enrolls.
fn capped_per_source(env: &Env) {
    let dir = &env.dir;
    let mut server = env.start();
    let rt = runtime();
    rt.block_on(async {
        let first = ProtocolEnvoy::new(dir, "host0.example.com");
        for i in 0..20 {
            let mut envoy = first.with_name(&format!("host{i}.example.com"));
            let (status, body) = envoy.enroll(None).await;
            assert_eq!((status, body["status"].as_str()), (200, Some("pending")), "{i}: {body}");
        }
        // Asking again for a name already pending is no new request.
        let mut again = first.with_name("host3.example.com");
        assert_eq!(again.enroll(None).await.0, 200);

        let mut one_more = first.with_name("host20.example.com");
        let (status, body) = one_more.enroll(None).await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(body["code"], "too_many_requests");
        assert_eq!(
            body["message"],
            "more than 20 new enrollment requests from 127.0.0.1 within a minute; try again later or enroll with a token"
        );
        let token = one_time_token(dir);
        let (status, body) = one_more.enroll(Some(&token)).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("approved")), "{body}");
    });
    let listed: Value =
        serde_json::from_str(&cli_ok(dir, &["envoys", "list", "--output", "json"])).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 21);
    assert!(server.terminate().success(), "{}", server.log());
}

// --- the envoy as bare protocol calls ----------------------------------------------

/// A raw admin API call with the bearer token, for what the CLI never sends.
async fn admin_post(dir: &TestDir, route: &str, body: &Value) -> (u16, Value) {
    let token = cli_ok(dir, &["secrets", "get", "vigo/server/admin_token"]);
    let ca = std::fs::read_to_string(dir.ca_file()).unwrap();
    let tls = vigo_pki::client_tls_config(&ca, None).unwrap();
    let response = reqwest::Client::builder()
        .use_preconfigured_tls(Arc::unwrap_or_clone(tls))
        .build()
        .unwrap()
        .post(format!("https://localhost:{}{route}", dir.port))
        .bearer_auth(token.trim())
        .json(body)
        .send()
        .await
        .unwrap();
    decode(response).await
}

/// The key fingerprint `vigoenvoy run --once` printed while it waits.
pub(crate) fn printed_fingerprint(output: &str) -> String {
    let fingerprint = output
        .split("its key fingerprint is ")
        .nth(1)
        .and_then(|rest| rest.get(..64))
        .unwrap_or_else(|| panic!("no key fingerprint in:\n{output}"));
    assert!(
        fingerprint.bytes().all(|b| b.is_ascii_hexdigit()),
        "{output}"
    );
    fingerprint.to_owned()
}

// --- backends ------------------------------------------------------------------------

fn with_backend(database: Database, scenario: fn(&Env)) {
    Env::prepare(database, SECRET, write_config_repo, scenario);
}

/// `db*` gets a file holding the database password; `web*` a page. Node
/// patterns are globs, matched against the normalised name.
fn write_config_repo(dir: &TestDir) {
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    dir.write(
        "config/nodes.vgo",
        &format!(
            "envoys:\n  - match: \"db*.example.com\"\n    roles: [database]\n    vars:\n      db_password: \"secret:{DB_PASSWORD}\"\n  - match: \"web*.example.com\"\n    roles: [web]\n"
        ),
    );
    dir.write(
        "config/modules/database.vgo",
        &format!(
            "resources:\n  - name: pg-config\n    type: file\n    target_path: {out}/db.conf\n    content: |\n      password = {{{{ .Vars.db_password }}}}\n",
            out = out.display()
        ),
    );
    dir.write(
        "config/modules/web.vgo",
        &format!(
            "resources:\n  - name: web-index\n    type: file\n    target_path: {out}/index.html\n    content: |\n      <h1>{{{{ .Envoy.Name }}}}</h1>\n",
            out = out.display()
        ),
    );
}
