//! The store contract: one suite run against SQLite (a temporary folder) and
//! against PostgreSQL when `VIGO_TEST_POSTGRES` names a server (each test in
//! a fresh schema, dropped afterwards).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sqlx::Connection;
use vigo_secrets::{SecretPath, SecretValue};
use vigo_store::{
    AuditEvent, CatalogSent, CheckinRecord, EnvoyRecord, EnvoyRotation, EnvoyStatus, ReportSummary,
    RotationClaim, StoreError, StoreHandle, Timestamp, TokenRejection,
};

use vigo_test_support::PgSchema;

use vigo_store::{
    EnrollmentRecorded, EnrollmentRequest, LastRunRecord, PendingLimits, PrunePolicy, ReportFilter,
};

const KEY: &str = "5f1c0e9a8b7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170f6e5d4c";

fn t(millis: i64) -> Timestamp {
    Timestamp::from_unix_millis(1_700_000_000_000 + millis)
}

fn path(text: &str) -> SecretPath {
    SecretPath::parse(text).expect("valid secret path")
}

// --- backends ----------------------------------------------------------------

/// A store on a fresh database, plus what it takes to reopen and clean it.
struct TestDb {
    store: StoreHandle,
    dsn: SecretValue,
    cleanup: Cleanup,
}

/// What goes away with the database: a folder or a PostgreSQL schema.
enum Cleanup {
    Folder(#[expect(dead_code, reason = "held to be removed on drop")] tempfile::TempDir),
    Schema(#[expect(dead_code, reason = "held to be dropped on drop")] PgSchema),
}

impl TestDb {
    async fn sqlite() -> Self {
        let folder = tempfile::tempdir().expect("temporary folder");
        let dsn = SecretValue::new(format!(
            "sqlite://{}/vigo.db?key={KEY}",
            folder.path().display()
        ));
        let store = vigo_store::connect(&dsn).await.expect("open SQLite store");
        Self {
            store,
            dsn,
            cleanup: Cleanup::Folder(folder),
        }
    }

    async fn postgres() -> Option<Self> {
        let schema = PgSchema::create(&vigo_test_support::postgres_url()?);
        let dsn = SecretValue::new(schema.dsn());
        let store = vigo_store::connect(&dsn)
            .await
            .expect("open PostgreSQL store");
        Some(Self {
            store,
            dsn,
            cleanup: Cleanup::Schema(schema),
        })
    }

    async fn finish(self) {
        self.store.close().await;
        drop(self.cleanup);
    }
}

/// Awaits a store call that must succeed: `what` it did and to `whom` name
/// it in the panic.
async fn ok<T>(call: impl Future<Output = Result<T, StoreError>>, what: &str, whom: &str) -> T {
    call.await.unwrap_or_else(|e| panic!("{what} {whom}: {e}"))
}

/// The envoy `name`'s enrollment request (a new one, or the one it has).
async fn enroll(s: &StoreHandle, name: &str, csr: &str, at: Timestamp) -> EnvoyRecord {
    ok(
        s.upsert_enrollment_request(name, csr, at),
        "enrolling",
        name,
    )
    .await
}

/// Approves `name` with a certificate and its fingerprint.
async fn approve(s: &StoreHandle, name: &str, cert: &str, fp: &str, at: Timestamp) -> EnvoyRecord {
    ok(s.approve_envoy(name, cert, fp, at), "approving", name).await
}

/// The stored envoy `name`, which must exist.
async fn read_envoy(s: &StoreHandle, name: &str) -> EnvoyRecord {
    let found = ok(s.envoy(name), "reading", name).await;
    found.unwrap_or_else(|| panic!("envoy {name} exists"))
}

/// Queues `triggers` (resource, secret) for `envoy`.
async fn queue(s: &StoreHandle, envoy: &str, triggers: &[(&str, &SecretPath)], at: Timestamp) {
    ok(s.queue_triggers(envoy, triggers, at), "queueing for", envoy).await;
}

/// Marks `resources`' triggers delivered to `envoy`.
async fn deliver(s: &StoreHandle, envoy: &str, resources: &[&str], at: Timestamp) {
    let call = s.mark_triggers_delivered(envoy, resources, at);
    ok(call, "marking delivered to", envoy).await;
}

/// Clears the delivered triggers of `resources`: the rotation lag it reports.
async fn clear(
    s: &StoreHandle,
    envoy: &str,
    resources: &[&str],
    at: Timestamp,
) -> Option<Duration> {
    ok(
        s.clear_triggers(envoy, resources, at),
        "clearing for",
        envoy,
    )
    .await
}

/// Why the token with `hash` is refused to `envoy`; panics when it is taken.
async fn rejection(s: &StoreHandle, hash: &str, envoy: &str, at: Timestamp) -> TokenRejection {
    match s.consume_token(hash, envoy, at).await {
        Err(StoreError::TokenRejected { reason }) => reason,
        other => panic!("token {hash} for {envoy}: expected a rejection, got {other:?}"),
    }
}

/// Which answer `recorded` is, without its envoy record.
fn answer(recorded: &EnrollmentRecorded) -> &'static str {
    match recorded {
        EnrollmentRecorded::Created(_) => "created",
        EnrollmentRecorded::Existing(_) => "existing",
        EnrollmentRecorded::TotalLimit => "total limit",
        EnrollmentRecorded::SourceLimit => "source limit",
    }
}

/// Records an enrollment request without limits ([`request`]'s fields).
async fn record_request(
    s: &StoreHandle,
    name: &str,
    key: &str,
    src: &str,
    at: i64,
) -> EnrollmentRecorded {
    let request = request(name, key, src, at);
    ok(
        s.record_enrollment_request(&request, None),
        "recording",
        name,
    )
    .await
}

/// Whether storing `version` of `secret` was a change.
async fn claim_version(s: &StoreHandle, secret: &SecretPath, version: u64, at: Timestamp) -> bool {
    let call = s.set_secret_version(secret, version, at);
    ok(call, "storing a version of", secret.as_str()).await
}

/// Runs each named contract check once per backend.
macro_rules! contract {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let db = super::TestDb::sqlite().await;
                    super::$check(&db).await;
                    db.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let Some(db) = super::TestDb::postgres().await else { return };
                    super::$check(&db).await;
                    db.finish().await;
                }
            )*
        }
    };
}

contract!(
    enrollment_flow,
    revoked_envoys_stay_revoked,
    tokens_are_single_use_and_expire,
    concurrent_consumers_exactly_one_wins,
    checkin_bookkeeping,
    batched_checkins_never_move_time_back,
    envoy_auth_reads_status_force_push_and_trigger_count,
    force_push_is_stored,
    triggers_coalesce_and_clear_only_applied_resources,
    reports_keep_the_latest,
    secret_versions_are_numbers,
    audit_log_filters_by_prefix,
    deliveries_filter_by_envoy_and_path,
    migrations_are_idempotent,
    issue_12_pending_requests_stay_bound_to_the_first_key,
    issue_12_pending_requests_are_capped,
    issue_12_pending_requests_expire,
    issue_12_remove_deletes_pending_and_revoked_envoys_only,
    issue_12_rotation_commit_claims_and_queues_together,
    issue_12_rotation_commit_failing_midway_records_nothing,
    issue_12_concurrent_rotation_commits_claim_once,
    issue_12_catalog_sent_is_recorded_in_one_write,
    issue_12_queued_trigger_counts_cover_every_envoy,
    issue_11_the_last_run_comes_from_check_ins_and_reports,
    issue_18_run_requests_are_delivered_once_and_record_outcomes,
    issue_16_history_lists_newest_first_with_filters,
    issue_16_pruning_by_age_and_count_in_batches,
);

// --- the contract -------------------------------------------------------------

async fn enrollment_flow(db: &TestDb) {
    let store = &db.store;
    let pending = enroll(store, "web1.example.com", "CSR-1", t(0)).await;
    assert_eq!(pending.status, EnvoyStatus::Pending);
    assert_eq!(pending.csr_pem.as_deref(), Some("CSR-1"));
    assert_eq!(pending.enrolled_at, t(0));
    assert_eq!(pending.facts, json!({}));
    assert!(!pending.force_push);

    let again = enroll(store, "web1.example.com", "CSR-2", t(5)).await;
    assert_eq!(
        again.csr_pem.as_deref(),
        Some("CSR-1"),
        "a pending request stays bound to the first one"
    );
    assert_eq!(again.enrolled_at, t(0), "first request time is kept");

    let approved = approve(store, "web1.example.com", "CERT-1", "ab12", t(10)).await;
    assert_eq!(approved.status, EnvoyStatus::Approved);
    assert_eq!(approved.cert_pem.as_deref(), Some("CERT-1"));
    assert_eq!(approved.cert_fingerprint.as_deref(), Some("ab12"));
    assert_eq!(approved.approved_at, Some(t(10)));

    store
        .set_envoy_certificate("web1.example.com", "CERT-2", "cd34")
        .await
        .expect("renew");
    let renewed = store
        .envoy("web1.example.com")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(renewed.cert_fingerprint.as_deref(), Some("cd34"));
    assert_eq!(renewed.status, EnvoyStatus::Approved);

    // A new CSR from an approved envoy keeps it approved.
    let requested = enroll(store, "web1.example.com", "CSR-3", t(20)).await;
    assert_eq!(requested.status, EnvoyStatus::Approved);
    assert_eq!(requested.cert_pem.as_deref(), Some("CERT-2"));

    enroll(store, "db1.example.com", "CSR-DB", t(30)).await;
    assert!(matches!(
        store.set_envoy_certificate("db1.example.com", "C", "f").await,
        Err(StoreError::EnvoyNotApproved { name }) if name == "db1.example.com"
    ));
    let names: Vec<String> = store
        .list_envoys()
        .await
        .expect("list")
        .into_iter()
        .map(|envoy| envoy.name)
        .collect();
    assert_eq!(names, ["db1.example.com", "web1.example.com"]);

    assert!(store.envoy("nobody").await.expect("read").is_none());
    assert!(matches!(
        store.approve_envoy("nobody", "C", "f", t(40)).await,
        Err(StoreError::EnvoyNotFound { name }) if name == "nobody"
    ));
}

async fn revoked_envoys_stay_revoked(db: &TestDb) {
    let store = &db.store;
    enroll(store, "a", "CSR-A", t(0)).await;
    approve(store, "a", "CERT-A", "fa", t(1)).await;
    store.set_force_push(&["a"], true).await.expect("force");
    store.revoke_envoy("a", t(2)).await.expect("revoke");

    let revoked = read_envoy(store, "a").await;
    assert_eq!(revoked.status, EnvoyStatus::Revoked);
    assert_eq!(revoked.revoked_at, Some(t(2)));
    assert!(!revoked.force_push);

    assert!(matches!(
        store.approve_envoy("a", "CERT-B", "fb", t(3)).await,
        Err(StoreError::EnvoyRevoked { .. })
    ));
    assert!(matches!(
        store.set_envoy_certificate("a", "CERT-B", "fb").await,
        Err(StoreError::EnvoyRevoked { .. })
    ));
    let after = enroll(store, "a", "CSR-EVIL", t(4)).await;
    assert_eq!(after.status, EnvoyStatus::Revoked);
    assert_eq!(after.csr_pem.as_deref(), Some("CSR-A"));
    assert_eq!(after.cert_fingerprint.as_deref(), Some("fa"));

    store.revoke_envoy("a", t(9)).await.expect("revoke twice");
    let twice = read_envoy(store, "a").await;
    assert_eq!(
        twice.revoked_at,
        Some(t(2)),
        "first revocation time is kept"
    );
    assert!(matches!(
        store.revoke_envoy("nobody", t(5)).await,
        Err(StoreError::EnvoyNotFound { .. })
    ));
}

async fn tokens_are_single_use_and_expire(db: &TestDb) {
    let store = &db.store;
    for hash in ["hash-1", "hash-2"] {
        store
            .create_token(hash, t(0), t(1_000))
            .await
            .expect("create");
    }
    assert!(matches!(
        store.create_token("hash-1", t(0), t(1_000)).await,
        Err(StoreError::TokenExists)
    ));
    store
        .consume_token("hash-1", "a", t(10))
        .await
        .expect("first use");
    // In order: (token hash, envoy, at, why it is refused).
    let refusals = [
        ("hash-1", "b", 11, TokenRejection::AlreadyUsed),
        ("no-such-hash", "a", 10, TokenRejection::Unknown),
        ("hash-2", "a", 1_000, TokenRejection::Expired),
        // Still unusable later, and an expired token is not marked used.
        ("hash-2", "a", 5_000, TokenRejection::Expired),
    ];
    for (hash, envoy, at, why) in refusals {
        assert_eq!(
            rejection(store, hash, envoy, t(at)).await,
            why,
            "{hash} at {at}"
        );
    }

    // The rejection says what to do and never echoes the hash.
    let text = store
        .consume_token("secret-hash-value", "a", t(0))
        .await
        .expect_err("unknown token")
        .to_string();
    assert!(text.contains("vigocli envoys token"), "{text}");
    assert!(!text.contains("secret-hash-value"), "{text}");
}

async fn concurrent_consumers_exactly_one_wins(db: &TestDb) {
    for round in 0..5 {
        let hash = format!("race-{round}");
        db.store
            .create_token(&hash, t(0), t(60_000))
            .await
            .expect("create");
        let mut tasks = Vec::new();
        for contender in 0..8 {
            let store = Arc::clone(&db.store);
            let hash = hash.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .consume_token(&hash, &format!("envoy-{contender}"), t(1))
                    .await
            }));
        }
        let mut wins = 0;
        for task in tasks {
            match task.await.expect("task") {
                Ok(()) => wins += 1,
                Err(StoreError::TokenRejected {
                    reason: TokenRejection::AlreadyUsed,
                }) => {}
                Err(other) => panic!("unexpected error: {other}"),
            }
        }
        assert_eq!(wins, 1, "round {round}");
    }
}

async fn checkin_bookkeeping(db: &TestDb) {
    let store = &db.store;
    enroll(store, "a", "CSR", t(0)).await;
    approve(store, "a", "CERT", "f", t(1)).await;
    let facts = json!({"os": "debian", "cpus": 2, "tags": ["x", "y"]});
    store
        .record_checkin("a", &facts, Some("fp-1"), t(100))
        .await
        .expect("check-in");
    let envoy = read_envoy(store, "a").await;
    assert_eq!(envoy.facts, facts);
    assert_eq!(envoy.catalog_fingerprint.as_deref(), Some("fp-1"));
    assert_eq!(envoy.last_checkin_at, Some(t(100)));

    store
        .record_checkin("a", &json!({}), None, t(200))
        .await
        .expect("check-in");
    let envoy = read_envoy(store, "a").await;
    assert_eq!(envoy.catalog_fingerprint, None);
    assert_eq!(envoy.last_checkin_at, Some(t(200)));

    assert!(matches!(
        store.record_checkin("nobody", &facts, None, t(1)).await,
        Err(StoreError::EnvoyNotFound { .. })
    ));
}

async fn batched_checkins_never_move_time_back(db: &TestDb) {
    let store = &db.store;
    for name in ["a", "b"] {
        enroll(store, name, "CSR", t(0)).await;
    }
    let record = |name: &str, at: i64| CheckinRecord {
        name: name.to_owned(),
        facts: json!({ "seen": at }),
        catalog_fingerprint: Some(format!("fp-{at}")),
        at: t(at),
        last_run: None,
    };
    store
        .record_checkins(&[record("a", 100), record("b", 100), record("nobody", 100)])
        .await
        .expect("batch");
    // A direct write newer than a batch that lands afterwards wins.
    store
        .record_checkin("a", &json!({ "seen": 300 }), Some("fp-300"), t(300))
        .await
        .expect("check-in");
    store
        .record_checkins(&[record("a", 200), record("b", 200)])
        .await
        .expect("batch");
    let a = read_envoy(store, "a").await;
    assert_eq!(a.last_checkin_at, Some(t(300)));
    assert_eq!(a.facts, json!({ "seen": 300 }));
    let b = read_envoy(store, "b").await;
    assert_eq!(b.last_checkin_at, Some(t(200)));
    assert_eq!(b.catalog_fingerprint.as_deref(), Some("fp-200"));
    store.record_checkins(&[]).await.expect("empty batch");
}

async fn envoy_auth_reads_status_force_push_and_trigger_count(db: &TestDb) {
    let store = &db.store;
    assert_eq!(store.envoy_auth("a").await.expect("read"), None);
    enroll(store, "a", "CSR", t(0)).await;
    let auth = store.envoy_auth("a").await.expect("read").expect("exists");
    assert_eq!(auth.status, EnvoyStatus::Pending);
    assert_eq!(auth.cert_fingerprint, None);
    approve(store, "a", "CERT", "f", t(1)).await;
    let (one, two) = (path("app/one"), path("app/two"));
    queue(
        store,
        "a",
        &[("file-x", &one), ("file-x", &two), ("exec-y", &one)],
        t(2),
    )
    .await;
    store.set_force_push(&["a"], true).await.expect("force");
    let auth = store.envoy_auth("a").await.expect("read").expect("exists");
    assert_eq!(auth.name, "a");
    assert_eq!(auth.status, EnvoyStatus::Approved);
    assert_eq!(auth.cert_fingerprint.as_deref(), Some("f"));
    assert!(auth.force_push);
    // Two resources, three (resource, path) pairs.
    assert_eq!(auth.queued_triggers, 2);
}

async fn force_push_is_stored(db: &TestDb) {
    let store = &db.store;
    for name in ["a", "b", "c"] {
        enroll(store, name, "CSR", t(0)).await;
    }
    assert_eq!(
        store
            .set_force_push(&["a", "b", "nobody"], true)
            .await
            .expect("set"),
        2
    );
    assert!(store.force_push("a").await.expect("read"));
    assert!(store.force_push("b").await.expect("read"));
    assert!(!store.force_push("c").await.expect("read"));
    assert!(!store.force_push("nobody").await.expect("read"));
    assert_eq!(store.set_force_push(&[], true).await.expect("nothing"), 0);

    store.set_force_push(&["a"], false).await.expect("clear");
    assert!(!store.force_push("a").await.expect("read"));
    assert!(store.force_push("b").await.expect("read"));
}

async fn triggers_coalesce_and_clear_only_applied_resources(db: &TestDb) {
    let store = &db.store;
    let (db_pw, api_key) = (path("vigo/db/password"), path("vigo/api/key"));
    enroll(store, "a", "CSR", t(0)).await;

    queue(
        store,
        "a",
        &[
            ("file:/etc/app.conf", &db_pw),
            ("file:/etc/app.conf", &api_key),
            ("exec:restart", &db_pw),
        ],
        t(100),
    )
    .await;
    queue(store, "b", &[("file:/etc/other", &db_pw)], t(100)).await;
    // A second rotation of the same secret soon after coalesces.
    queue(store, "a", &[("file:/etc/app.conf", &db_pw)], t(150)).await;

    let triggers = store.triggers_for("a").await.expect("read");
    assert_eq!(triggers.len(), 2);
    let (restart, conf) = (&triggers[0], &triggers[1]);
    assert_eq!(restart.resource, "exec:restart");
    assert_eq!(restart.secret_paths, vec![db_pw.clone()]);
    assert_eq!(conf.resource, "file:/etc/app.conf");
    assert_eq!(conf.secret_paths, vec![api_key.clone(), db_pw.clone()]);
    assert_eq!(conf.queued_at, t(100), "earliest queue time is kept");
    assert_eq!(conf.last_queued_at, t(150));
    assert_eq!(conf.delivered_at, None);

    // Nothing clears before it was delivered.
    assert_eq!(
        clear(store, "a", &["file:/etc/app.conf"], t(160)).await,
        None
    );
    assert_eq!(store.triggers_for("a").await.expect("read").len(), 2);

    deliver(store, "a", &["file:/etc/app.conf", "exec:restart"], t(200)).await;
    let delivered = store.triggers_for("a").await.expect("read");
    assert!(
        delivered
            .iter()
            .all(|trigger| trigger.delivered_at == Some(t(200)))
    );

    // A rotation after the delivery must survive the report about it.
    queue(store, "a", &[("exec:restart", &db_pw)], t(250)).await;

    assert_eq!(
        clear(store, "a", &["file:/etc/app.conf", "exec:restart"], t(400)).await,
        Some(Duration::from_millis(300))
    );
    let left = store.triggers_for("a").await.expect("read");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].resource, "exec:restart");
    assert_eq!(left[0].delivered_at, None);
    assert_eq!(left[0].queued_at, t(100));

    let envoy = read_envoy(store, "a").await;
    assert_eq!(envoy.last_rotation_lag, Some(Duration::from_millis(300)));
    assert_eq!(
        store.triggers_for("b").await.expect("read").len(),
        1,
        "other envoys untouched"
    );

    // Only the applied resource clears.
    deliver(store, "a", &["exec:restart"], t(500)).await;
    queue(store, "a", &[("file:/etc/new", &api_key)], t(510)).await;
    deliver(store, "a", &["file:/etc/new"], t(520)).await;
    assert_eq!(
        clear(store, "a", &["file:/etc/new"], t(600)).await,
        Some(Duration::from_millis(90))
    );
    let left = store.triggers_for("a").await.expect("read");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].resource, "exec:restart");
    assert_eq!(clear(store, "a", &[], t(700)).await, None);
}

async fn reports_keep_the_latest(db: &TestDb) {
    let store = &db.store;
    enroll(store, "a", "CSR", t(0)).await;
    assert!(store.last_report("a").await.expect("read").is_none());
    let summary = ReportSummary {
        changed: 2,
        failed: 1,
        skipped: 0,
        unchanged: 7,
    };
    let first = store
        .insert_report(
            "a",
            t(10),
            summary,
            false,
            &json!({"resources": [{"id": "x", "status": "changed"}]}),
        )
        .await
        .expect("insert");
    let second = store
        .insert_report(
            "a",
            t(20),
            ReportSummary::default(),
            true,
            &json!({"resources": []}),
        )
        .await
        .expect("insert");
    assert!(second > first);
    store
        .insert_report("b", t(30), summary, false, &json!({}))
        .await
        .expect("report from an unknown envoy is kept");

    let last = store.last_report("a").await.expect("read").expect("exists");
    assert_eq!(last.id, second);
    assert_eq!(last.envoy, "a");
    assert_eq!(last.received_at, t(20));
    assert!(last.noop);
    assert_eq!(last.summary, ReportSummary::default());
    assert_eq!(last.body, json!({"resources": []}));
    let envoy = read_envoy(store, "a").await;
    assert_eq!(envoy.last_report_at, Some(t(20)));
    assert_eq!(
        store
            .last_report("b")
            .await
            .expect("read")
            .expect("exists")
            .summary,
        summary
    );
}

async fn secret_versions_are_numbers(db: &TestDb) {
    let store = &db.store;
    assert!(store.secret_versions().await.expect("read").is_empty());
    assert!(claim_version(store, &path("vigo/db/password"), 1, t(0)).await);
    assert!(claim_version(store, &path("vigo/api/key"), 4, t(0)).await);
    assert!(claim_version(store, &path("vigo/db/password"), 2, t(1)).await);
    // The same version again (a second replica handling the same change)
    // does not count as a change.
    assert!(!claim_version(store, &path("vigo/db/password"), 2, t(2)).await);
    let versions = store.secret_versions().await.expect("read");
    assert_eq!(
        versions.into_iter().collect::<Vec<_>>(),
        vec![(path("vigo/api/key"), 4), (path("vigo/db/password"), 2)]
    );
    store
        .remove_secret_version(&path("vigo/api/key"))
        .await
        .expect("remove");
    assert_eq!(store.secret_versions().await.expect("read").len(), 1);
    assert!(matches!(
        store
            .set_secret_version(&path("vigo/x"), u64::MAX, t(0))
            .await,
        Err(StoreError::OutOfRange { .. })
    ));
}

async fn audit_log_filters_by_prefix(db: &TestDb) {
    let store = &db.store;
    let entries = [
        ("cli", "vigo/db", 1, AuditEvent::Changed),
        ("watcher", "vigo/db/password", 3, AuditEvent::Changed),
        ("startup", "vigo/dbx", 2, AuditEvent::Changed),
        ("cli", "vigo/db/password", 3, AuditEvent::Deleted),
    ];
    for (index, (actor, secret, version, event)) in entries.iter().enumerate() {
        let at = t(i64::try_from(index).expect("small"));
        store
            .record_secret_change(actor, &path(secret), *version, *event, at)
            .await
            .expect("record");
    }
    let all = store.secret_history(None).await.expect("read");
    assert_eq!(all.len(), 4);
    assert_eq!(all[1].actor, "watcher");
    assert_eq!(all[1].path, path("vigo/db/password"));
    assert_eq!(all[1].version, 3);
    assert_eq!(all[3].event, AuditEvent::Deleted);
    assert!(all.windows(2).all(|pair| pair[0].id < pair[1].id));

    let under: Vec<String> = store
        .secret_history(Some("vigo/db/"))
        .await
        .expect("read")
        .into_iter()
        .map(|entry| entry.path.as_str().to_owned())
        .collect();
    assert_eq!(under, ["vigo/db", "vigo/db/password", "vigo/db/password"]);
    assert_eq!(store.secret_history(Some("")).await.expect("read").len(), 4);
    assert!(
        store
            .secret_history(Some("other"))
            .await
            .expect("read")
            .is_empty()
    );
}

async fn deliveries_filter_by_envoy_and_path(db: &TestDb) {
    let store = &db.store;
    let (one, two) = (path("vigo/one"), path("vigo/two"));
    store
        .record_delivery("a", &one, 1, t(0))
        .await
        .expect("record");
    store
        .record_delivery("a", &two, 5, t(1))
        .await
        .expect("record");
    store
        .record_delivery("b", &one, 2, t(2))
        .await
        .expect("record");

    assert_eq!(store.deliveries(None, None).await.expect("read").len(), 3);
    let for_a = store.deliveries(Some("a"), None).await.expect("read");
    assert_eq!(for_a.len(), 2);
    assert_eq!(
        (for_a[1].path.clone(), for_a[1].version, for_a[1].at),
        (two, 5, t(1))
    );
    let of_one = store.deliveries(None, Some(&one)).await.expect("read");
    assert_eq!(
        of_one.iter().map(|d| d.envoy.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    let both = store.deliveries(Some("b"), Some(&one)).await.expect("read");
    assert_eq!(both.len(), 1);
    assert_eq!(both[0].version, 2);
    assert!(
        store
            .deliveries(Some("c"), None)
            .await
            .expect("read")
            .is_empty()
    );
}

async fn migrations_are_idempotent(db: &TestDb) {
    enroll(&db.store, "a", "CSR", t(0)).await;
    let again = vigo_store::connect(&db.dsn)
        .await
        .expect("connect a second time");
    assert_eq!(again.backend(), db.store.backend());
    assert!(
        again.envoy("a").await.expect("read").is_some(),
        "data survives"
    );
    again.close().await;
}

// --- issue 12: writes that land together ----------------------------------------

async fn approved(db: &TestDb, names: &[&str]) {
    for name in names {
        enroll(&db.store, name, "CSR", t(0)).await;
        approve(&db.store, name, "CERT", &format!("fp-{name}"), t(0)).await;
    }
}

fn claim(text: &str, version: Option<u64>) -> RotationClaim {
    RotationClaim {
        path: path(text),
        version,
        actor: "cli".to_owned(),
    }
}

fn rotation(envoy: &str, references: &[&str], triggers: &[(&str, &str)]) -> EnvoyRotation {
    EnvoyRotation {
        envoy: envoy.to_owned(),
        references: references.iter().map(|p| path(p)).collect(),
        triggers: triggers
            .iter()
            .map(|(resource, p)| ((*resource).to_owned(), path(p)))
            .collect(),
    }
}

async fn issue_12_rotation_commit_claims_and_queues_together(db: &TestDb) {
    let store = &db.store;
    approved(db, &["a", "b", "c"]).await;
    store
        .set_secret_version(&path("app/pw"), 1, t(0))
        .await
        .expect("seen");
    store
        .set_secret_version(&path("app/key"), 7, t(0))
        .await
        .expect("seen");
    let envoys = [
        rotation(
            "a",
            &["app/pw"],
            &[("conf", "app/pw"), ("restart", "app/pw")],
        ),
        // Uses the secret without watching it: force-push, no trigger.
        rotation("b", &["app/pw"], &[]),
        // Only references a path whose version did not move.
        rotation("c", &["app/key"], &[("key-file", "app/key")]),
    ];
    let claims = [claim("app/pw", Some(2)), claim("app/key", Some(7))];
    let outcome = store
        .commit_rotation(&claims, &envoys, t(10))
        .await
        .expect("commit");
    assert_eq!(
        outcome.claimed.into_iter().collect::<Vec<_>>(),
        [path("app/pw")]
    );
    assert_eq!(outcome.envoys, ["a", "b"]);
    assert_eq!(outcome.triggers, 2);
    let versions = store.secret_versions().await.expect("versions");
    assert_eq!(versions[&path("app/pw")], 2);
    let triggers = store.triggers_for("a").await.expect("triggers");
    let resources: Vec<&str> = triggers.iter().map(|t| t.resource.as_str()).collect();
    assert_eq!(resources, ["conf", "restart"]);
    assert!(store.triggers_for("b").await.expect("b").is_empty());
    assert!(store.triggers_for("c").await.expect("c").is_empty());
    assert!(store.force_push("a").await.expect("a"));
    assert!(store.force_push("b").await.expect("b"));
    assert!(!store.force_push("c").await.expect("c"));
    let history = store.secret_history(None).await.expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(
        (
            history[0].path.as_str(),
            history[0].version,
            history[0].event
        ),
        ("app/pw", 2, AuditEvent::Changed)
    );

    // The same change committed again (another replica, or a retry) claims
    // nothing and queues nothing.
    deliver(store, "a", &["conf", "restart"], t(20)).await;
    let again = store
        .commit_rotation(&claims, &envoys, t(30))
        .await
        .expect("again");
    assert!(
        again.claimed.is_empty() && again.envoys.is_empty(),
        "{again:?}"
    );
    let triggers = store.triggers_for("a").await.expect("triggers");
    assert!(
        triggers
            .iter()
            .all(|trigger| trigger.delivered_at == Some(t(20)))
    );
    assert_eq!(store.secret_history(None).await.expect("history").len(), 1);

    // A deletion is always claimed and recorded.
    let deleted = store
        .commit_rotation(&[claim("app/key", None)], &envoys, t(40))
        .await
        .expect("delete");
    assert_eq!(deleted.envoys, ["c"]);
    assert!(
        !store
            .secret_versions()
            .await
            .expect("v")
            .contains_key(&path("app/key"))
    );
    let history = store
        .secret_history(Some("app/key"))
        .await
        .expect("history");
    assert_eq!(history.last().map(|e| e.event), Some(AuditEvent::Deleted));
}

async fn issue_12_rotation_commit_failing_midway_records_nothing(db: &TestDb) {
    let store = &db.store;
    approved(db, &["a"]).await;
    // `app/a` is claimed first; `app/b` fails (a version out of range)
    // after it, inside the same transaction.
    let result = store
        .commit_rotation(
            &[claim("app/a", Some(3)), claim("app/b", Some(u64::MAX))],
            &[rotation("a", &["app/a"], &[("conf", "app/a")])],
            t(10),
        )
        .await;
    assert!(
        matches!(result, Err(StoreError::OutOfRange { .. })),
        "{result:?}"
    );
    assert!(store.secret_versions().await.expect("versions").is_empty());
    assert!(
        store
            .secret_history(None)
            .await
            .expect("history")
            .is_empty()
    );
    assert!(store.triggers_for("a").await.expect("triggers").is_empty());
    assert!(!store.force_push("a").await.expect("force"));

    // Retried, it claims and queues everything.
    let outcome = store
        .commit_rotation(
            &[claim("app/a", Some(3))],
            &[rotation("a", &["app/a"], &[("conf", "app/a")])],
            t(20),
        )
        .await
        .expect("retry");
    assert_eq!((outcome.envoys.len(), outcome.triggers), (1, 1));
    assert!(store.force_push("a").await.expect("force"));
}

async fn issue_12_concurrent_rotation_commits_claim_once(db: &TestDb) {
    approved(db, &["a", "b"]).await;
    let replica = vigo_store::connect(&db.dsn).await.expect("second pool");
    let claims = [claim("app/a", Some(5)), claim("app/b", Some(6))];
    let envoys = [
        rotation("a", &["app/a", "app/b"], &[("x", "app/a"), ("y", "app/b")]),
        rotation("b", &["app/b"], &[("z", "app/b")]),
    ];
    let (one, two) = tokio::join!(
        db.store.commit_rotation(&claims, &envoys, t(10)),
        replica.commit_rotation(&claims, &envoys, t(11)),
    );
    let (one, two) = (one.expect("one"), two.expect("two"));
    let mut claimed: Vec<SecretPath> = one.claimed.iter().chain(&two.claimed).cloned().collect();
    claimed.sort();
    assert_eq!(claimed, [path("app/a"), path("app/b")], "{one:?} {two:?}");
    assert_eq!(one.triggers + two.triggers, 3, "{one:?} {two:?}");
    assert_eq!(
        db.store.secret_history(None).await.expect("history").len(),
        2
    );
    replica.close().await;
}

async fn issue_12_catalog_sent_is_recorded_in_one_write(db: &TestDb) {
    let store = &db.store;
    approved(db, &["a"]).await;
    let pw = path("app/pw");
    queue(store, "a", &[("conf", &pw), ("gone", &pw)], t(10)).await;
    store.set_force_push(&["a"], true).await.expect("force");
    let sent = |name: &str| CatalogSent {
        checkin: CheckinRecord {
            name: name.to_owned(),
            facts: json!({"os": "linux"}),
            catalog_fingerprint: Some("fp1".to_owned()),
            at: t(20),
            last_run: None,
        },
        delivered: vec!["conf".to_owned()],
        dropped: vec!["gone".to_owned()],
        clear_force_push: true,
        deliveries: vec![(pw.clone(), 4)],
    };

    // An unknown envoy: refused, and nothing at all is written.
    let refused = store.record_catalog_sent(&sent("nobody")).await;
    assert!(
        matches!(refused, Err(StoreError::EnvoyNotFound { .. })),
        "{refused:?}"
    );
    assert!(
        store
            .deliveries(None, None)
            .await
            .expect("deliveries")
            .is_empty()
    );

    store.record_catalog_sent(&sent("a")).await.expect("record");
    let triggers = store.triggers_for("a").await.expect("triggers");
    assert_eq!(triggers.len(), 1, "{triggers:?}");
    assert_eq!(triggers[0].resource, "conf");
    assert_eq!(triggers[0].delivered_at, Some(t(20)));
    assert!(!store.force_push("a").await.expect("force"));
    let deliveries = store.deliveries(Some("a"), None).await.expect("deliveries");
    assert_eq!(deliveries.len(), 1);
    assert_eq!((deliveries[0].version, deliveries[0].at), (4, t(20)));
    let envoy = read_envoy(store, "a").await;
    assert_eq!(envoy.last_checkin_at, Some(t(20)));
    assert_eq!(envoy.catalog_fingerprint.as_deref(), Some("fp1"));
    assert_eq!(envoy.facts, json!({"os": "linux"}));
    // Dropping a removed resource's trigger is not a rotation applied.
    assert_eq!(envoy.last_rotation_lag, None);

    // A trigger queued after the answer was built is neither marked
    // delivered nor dropped.
    queue(store, "a", &[("conf", &pw)], t(30)).await;
    store.record_catalog_sent(&sent("a")).await.expect("record");
    let triggers = store.triggers_for("a").await.expect("triggers");
    assert_eq!(triggers[0].delivered_at, None, "{triggers:?}");
}

async fn issue_12_queued_trigger_counts_cover_every_envoy(db: &TestDb) {
    let store = &db.store;
    approved(db, &["a", "b", "r"]).await;
    enroll(store, "p", "CSR", t(0)).await;
    let (one, two) = (path("app/one"), path("app/two"));
    queue(store, "a", &[("x", &one), ("x", &two), ("y", &one)], t(1)).await;
    queue(store, "r", &[("x", &one)], t(1)).await;
    store.revoke_envoy("r", t(2)).await.expect("revoke");
    assert_eq!(
        store.queued_trigger_counts().await.expect("counts"),
        [
            ("a".to_owned(), 2),
            ("b".to_owned(), 0),
            ("p".to_owned(), 0)
        ]
    );
}

// --- enrollment binding, caps, expiry and removal (issue 12) -------------------

fn request<'a>(name: &'a str, key: &'a str, source: &'a str, at: i64) -> EnrollmentRequest<'a> {
    EnrollmentRequest {
        name,
        csr_pem: key,
        key_fingerprint: key,
        source,
        at: t(at),
    }
}

async fn issue_12_pending_requests_stay_bound_to_the_first_key(db: &TestDb) {
    let store = &db.store;
    let created = record_request(store, "web1", "KEY-A", "10.0.0.1", 0).await;
    let EnrollmentRecorded::Created(record) = created else {
        panic!("expected a new pending envoy, got {created:?}");
    };
    assert_eq!(record.status, EnvoyStatus::Pending);
    assert_eq!(record.key_fingerprint.as_deref(), Some("KEY-A"));
    assert_eq!(record.csr_pem.as_deref(), Some("KEY-A"));

    // Another key for the same name changes nothing.
    let second = record_request(store, "web1", "KEY-EVIL", "10.6.6.6", 5).await;
    let EnrollmentRecorded::Existing(existing) = second else {
        panic!("expected the existing envoy, got {second:?}");
    };
    assert_eq!(existing.key_fingerprint.as_deref(), Some("KEY-A"));
    assert_eq!(existing.csr_pem.as_deref(), Some("KEY-A"));
    assert_eq!(existing.enrolled_at, t(0));
    let after = enroll(store, "web1", "CSR-EVIL", t(6)).await;
    assert_eq!(after.csr_pem.as_deref(), Some("KEY-A"));

    // Approval keeps the bound fingerprint.
    let approved = approve(store, "web1", "CERT", "CF", t(7)).await;
    assert_eq!(approved.key_fingerprint.as_deref(), Some("KEY-A"));
}

async fn issue_12_pending_requests_are_capped(db: &TestDb) {
    let store = &db.store;
    let limits = PendingLimits {
        total: 3,
        per_source: 2,
        window: Duration::from_secs(60),
    };
    let ask = |name: &'static str, source: &'static str, at: i64| {
        let store = store.clone();
        async move {
            store
                .record_enrollment_request(&request(name, name, source, at), Some(&limits))
                .await
                .expect("request")
        }
    };
    // In order: (name, source, at, the answer).
    let asks = [
        ("a", "s1", 0, "created"),
        ("b", "s1", 1, "created"),
        ("c", "s1", 2, "source limit"),
        // Polling again for a name already pending is no new request.
        ("a", "s1", 3, "existing"),
        // Another source, and the same source once the minute has passed.
        ("c", "s2", 4, "created"),
        ("d", "s1", 61_000, "total limit"),
        ("d", "s3", 61_000, "total limit"),
    ];
    for (name, source, at, expected) in asks {
        assert_eq!(
            answer(&ask(name, source, at).await),
            expected,
            "{name} from {source} at {at}"
        );
    }
    // Approved envoys do not count; requests with a token are not capped.
    approve(store, "a", "C", "F", t(62_000)).await;
    assert!(matches!(
        ask("d", "s1", 62_001).await,
        EnrollmentRecorded::Created(_)
    ));
    let token = record_request(store, "e", "e", "s1", 62_002).await;
    assert!(matches!(token, EnrollmentRecorded::Created(_)));
    let pending = store
        .list_envoys()
        .await
        .expect("list")
        .into_iter()
        .filter(|e| e.status == EnvoyStatus::Pending)
        .count();
    assert_eq!(pending, 4);
}

async fn issue_12_pending_requests_expire(db: &TestDb) {
    let store = &db.store;
    for (name, at) in [("old", 0), ("new", 10), ("kept", 0)] {
        record_request(store, name, name, "s", at).await;
    }
    approve(store, "kept", "C", "F", t(1)).await;
    let expired = store.expire_pending(t(5)).await.expect("expire");
    assert_eq!(expired, ["old"]);
    assert!(store.envoy("old").await.expect("read").is_none());
    assert!(store.envoy("new").await.expect("read").is_some());
    assert!(store.envoy("kept").await.expect("read").is_some());
    assert!(store.expire_pending(t(5)).await.expect("again").is_empty());
}

async fn issue_12_remove_deletes_pending_and_revoked_envoys_only(db: &TestDb) {
    let store = &db.store;
    for name in ["pending", "revoked", "approved"] {
        record_request(store, name, name, "s", 0).await;
    }
    for name in ["revoked", "approved"] {
        approve(store, name, "C", "F", t(1)).await;
    }
    let api = path("vigo/api/key");
    queue(store, "revoked", &[("svc", &api)], t(2)).await;
    store.revoke_envoy("revoked", t(3)).await.expect("revoke");

    assert_eq!(
        store.remove_envoy("pending").await.expect("remove"),
        ["pending"]
    );
    assert_eq!(
        store.remove_envoy("revoked").await.expect("remove"),
        ["revoked"]
    );
    assert!(
        store
            .triggers_for("revoked")
            .await
            .expect("read")
            .is_empty()
    );
    assert!(matches!(
        store.remove_envoy("approved").await,
        Err(StoreError::EnvoyApproved { name }) if name == "approved"
    ));
    assert!(store.envoy("approved").await.expect("read").is_some());
    assert!(matches!(
        store.remove_envoy("pending").await,
        Err(StoreError::EnvoyNotFound { .. })
    ));

    // The name can enroll again, with another key.
    let again = record_request(store, "revoked", "NEW-KEY", "s", 10).await;
    let EnrollmentRecorded::Created(record) = again else {
        panic!("expected a new pending envoy, got {again:?}");
    };
    assert_eq!(record.key_fingerprint.as_deref(), Some("NEW-KEY"));
    assert_eq!(record.revoked_at, None);
}

async fn issue_11_the_last_run_comes_from_check_ins_and_reports(db: &TestDb) {
    let store = &db.store;
    approved(db, &["a"]).await;
    assert_eq!(store.last_run("a").await.expect("read"), None);
    let counts = |changed, unchanged| ReportSummary {
        changed,
        failed: 0,
        skipped: 0,
        unchanged,
    };
    let checkin = |at: i64, run: Option<(i64, ReportSummary)>| CheckinRecord {
        name: "a".to_owned(),
        facts: json!({}),
        catalog_fingerprint: None,
        at: t(at),
        last_run: run.map(|(at, summary)| LastRunRecord { at: t(at), summary }),
    };
    // A batched check-in telling of a clean run.
    store
        .record_checkins(&[checkin(100, Some((90, counts(0, 4))))])
        .await
        .expect("check-in");
    let run = store.last_run("a").await.expect("read").expect("stored");
    assert_eq!((run.at, run.summary), (t(90), counts(0, 4)));
    // A real run's report is a later run; a noop report is no run.
    store
        .insert_report("a", t(120), counts(1, 3), false, &json!({}))
        .await
        .expect("report");
    store
        .insert_report("a", t(130), counts(4, 0), true, &json!({}))
        .await
        .expect("noop report");
    let run = store.last_run("a").await.expect("read").expect("stored");
    assert_eq!((run.at, run.summary), (t(120), counts(1, 3)));
    // A later check-in still carrying an older run, or none, keeps it.
    store
        .record_checkins(&[checkin(140, Some((110, counts(0, 4))))])
        .await
        .expect("check-in");
    store
        .record_checkins(&[checkin(150, None)])
        .await
        .expect("check-in");
    let run = store.last_run("a").await.expect("read").expect("stored");
    assert_eq!((run.at, run.summary), (t(120), counts(1, 3)));
    assert_eq!(store.last_run("nobody").await.expect("read"), None);
}

// --- migration 0003 on a database from before it (issue 12) -------------------

/// Rows a database written before names were normalised may hold: a
/// mixed-case name alone, and names differing only in case.
const LEGACY_ROWS: &str = "\
INSERT INTO envoys (name, status, facts, enrolled_at, force_push) VALUES \
  ('Web1.Example.com', 'approved', '{}', 1, FALSE), \
  ('db1.example.com', 'approved', '{}', 1, FALSE), \
  ('DB1.EXAMPLE.COM', 'pending', '{}', 2, FALSE), \
  ('Mx.one', 'approved', '{}', 1, TRUE), \
  ('MX.ONE', 'pending', '{}', 2, FALSE); \
INSERT INTO triggers (envoy, resource, secret_path, queued_at, last_queued_at) \
  VALUES ('Web1.Example.com', 'svc', 'vigo/api/key', 5, 5); \
INSERT INTO deliveries (at, envoy, path, version) VALUES (6, 'Web1.Example.com', 'vigo/api/key', 1);";

/// A copy of the migrations before 0003, to bring a database to that state.
fn migrations_before_0003(backend: &str) -> tempfile::TempDir {
    let copy = tempfile::tempdir().expect("temporary folder");
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    for entry in std::fs::read_dir(source).expect("migrations folder") {
        let entry = entry.expect("migration file");
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.as_str() < "0003" {
            std::fs::copy(entry.path(), copy.path().join(&name)).expect("copy migration");
        }
    }
    copy
}

/// After 0003, on a database holding [`LEGACY_ROWS`].
async fn check_names_after_0003(store: &StoreHandle) {
    let names: Vec<(String, EnvoyStatus)> = store
        .list_envoys()
        .await
        .expect("list")
        .into_iter()
        .map(|e| (e.name, e.status))
        .collect();
    assert_eq!(
        names,
        [
            ("DB1.EXAMPLE.COM".to_owned(), EnvoyStatus::Revoked),
            ("MX.ONE".to_owned(), EnvoyStatus::Revoked),
            ("Mx.one".to_owned(), EnvoyStatus::Revoked),
            ("db1.example.com".to_owned(), EnvoyStatus::Approved),
            ("web1.example.com".to_owned(), EnvoyStatus::Approved),
        ]
    );
    let triggers = store
        .triggers_for("web1.example.com")
        .await
        .expect("triggers");
    assert_eq!(triggers.len(), 1);
    let deliveries = store
        .deliveries(Some("web1.example.com"), None)
        .await
        .expect("deliveries");
    assert_eq!(deliveries.len(), 1);
    let mx = store.envoy("Mx.one").await.expect("read").expect("kept");
    assert!(!mx.force_push && mx.revoked_at.is_some());

    // `remove` in lower case clears the look-alikes, never an approved envoy.
    assert_eq!(
        store.remove_envoy("db1.example.com").await.expect("remove"),
        ["DB1.EXAMPLE.COM"]
    );
    assert_eq!(
        store.remove_envoy("mx.one").await.expect("remove"),
        ["MX.ONE", "Mx.one"]
    );
    assert!(
        store
            .envoy("db1.example.com")
            .await
            .expect("read")
            .is_some()
    );
}

/// Migrates the empty database on `conn` to 0002 (the migrations of
/// `backend` before 0003), writes [`LEGACY_ROWS`] and closes it.
async fn fill_legacy_database<C>(mut conn: C, backend: &str)
where
    C: Connection + sqlx::migrate::Migrate,
    for<'c> &'c mut C:
        sqlx::Acquire<'c, Connection = &'c mut C> + sqlx::Executor<'c, Database = C::Database>,
{
    let before = migrations_before_0003(backend);
    sqlx::migrate::Migrator::new(before.path())
        .await
        .expect("read migrations")
        .run(&mut conn)
        .await
        .expect("migrate to 0002");
    sqlx::raw_sql(LEGACY_ROWS)
        .execute(&mut conn)
        .await
        .expect("legacy rows");
    conn.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_migration_0003_lower_cases_stored_names_sqlite() {
    let folder = tempfile::tempdir().expect("temporary folder");
    let file = folder.path().join("vigo.db");
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&file)
        .create_if_missing(true)
        .pragma("key", format!("\"x'{KEY}'\""));
    let conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("open SQLite");
    fill_legacy_database(conn, "sqlite").await;

    let dsn = SecretValue::new(format!("sqlite://{}?key={KEY}", file.display()));
    let store = vigo_store::connect(&dsn).await.expect("migrate to 0003");
    check_names_after_0003(&store).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_migration_0003_lower_cases_stored_names_postgres() {
    let Some(admin_url) = vigo_test_support::postgres_url() else {
        return;
    };
    let schema = PgSchema::create(&admin_url);
    let conn = sqlx::PgConnection::connect(&schema.dsn())
        .await
        .expect("connect");
    fill_legacy_database(conn, "postgres").await;

    let store = vigo_store::connect(&SecretValue::new(schema.dsn()))
        .await
        .expect("migrate to 0003");
    check_names_after_0003(&store).await;
    store.close().await;
}

async fn issue_18_run_requests_are_delivered_once_and_record_outcomes(db: &TestDb) {
    use vigo_store::{NewRunRequest, PendingRun};
    let store = &db.store;
    approved(db, &["web1", "web2", "db1"]).await;
    let request = |id: &str, noop: bool, envoys: &[&str]| NewRunRequest {
        id: id.to_owned(),
        at: t(10),
        requested_by: "alice (vigocli)".to_owned(),
        target: "web*".to_owned(),
        noop,
        envoys: envoys.iter().map(|e| (*e).to_owned()).collect(),
    };
    store
        .create_run_request(&request("r1", true, &["web1", "web2"]))
        .await
        .expect("create");
    // Due: the waits of the asked envoys answer "check in now", no other.
    assert!(store.checkin_due("web1").await.unwrap());
    assert!(!store.checkin_due("db1").await.unwrap());
    let auth = |name: &'static str| async move { store.envoy_auth(name).await.unwrap().unwrap() };
    assert!(auth("web1").await.run_pending);
    assert!(!auth("db1").await.run_pending);
    let mut due = store.checkin_due_envoys().await.unwrap();
    due.sort();
    assert_eq!(due, ["web1", "web2"]);
    assert_eq!(
        store.pending_run("web1").await.unwrap(),
        Some(PendingRun {
            id: "r1".to_owned(),
            noop: true
        })
    );
    store.run_delivered("r1", "web1", t(20)).await.unwrap();
    assert_eq!(store.pending_run("web1").await.unwrap(), None);
    assert!(!store.checkin_due("web1").await.unwrap());
    assert!(!auth("web1").await.run_pending);
    store
        .record_run_result(
            "r1",
            "web1",
            t(30),
            "changed",
            &json!({"report": {"noop": true}}),
        )
        .await
        .unwrap();
    // A newer request replaces one not yet picked up.
    store
        .create_run_request(&request("r2", false, &["web2"]))
        .await
        .unwrap();
    assert_eq!(store.pending_run("web2").await.unwrap().unwrap().id, "r2");
    let r1 = store.run_request("r1").await.unwrap().expect("r1 stored");
    assert_eq!(r1.requested_by, "alice (vigocli)");
    assert!(r1.noop);
    let outcomes: Vec<(&str, Option<&str>)> = r1
        .envoys
        .iter()
        .map(|e| (e.envoy.as_str(), e.outcome.as_deref()))
        .collect();
    assert_eq!(
        outcomes,
        [("web1", Some("changed")), ("web2", Some("superseded"))]
    );
    assert_eq!(r1.envoys[0].report, Some(json!({"report": {"noop": true}})));
    assert_eq!(r1.envoys[0].delivered_at, Some(t(20)));
    assert_eq!(r1.envoys[0].reported_at, Some(t(30)));
    assert!(store.run_request("nope").await.unwrap().is_none());
}

fn failing(failed: u32) -> ReportSummary {
    ReportSummary {
        changed: 1,
        failed,
        skipped: 0,
        unchanged: 2,
    }
}

fn filter(envoy: Option<&str>, failed_only: bool, since: Option<i64>, limit: u32) -> ReportFilter {
    ReportFilter {
        envoy: envoy.map(str::to_owned),
        failed_only,
        since: since.map(t),
        limit,
    }
}

async fn report_ids(store: &StoreHandle, filter: &ReportFilter) -> Vec<i64> {
    let reports = ok(store.list_reports(filter), "list reports", "history").await;
    reports.iter().map(|r| r.id).collect()
}

async fn issue_16_history_lists_newest_first_with_filters(db: &TestDb) {
    let store = &db.store;
    approved(db, &["a", "b"]).await;
    let mut ids = Vec::new();
    for (envoy, at, failed) in [("a", 10, 0), ("b", 20, 1), ("a", 30, 1), ("a", 40, 0)] {
        let body = json!({"report": {"envoy": envoy, "duration_ms": at}});
        let id = ok(
            store.insert_report(envoy, t(at), failing(failed), false, &body),
            "insert",
            envoy,
        )
        .await;
        ids.push(id);
    }
    let all = report_ids(store, &filter(None, false, None, 100)).await;
    assert_eq!(all, [ids[3], ids[2], ids[1], ids[0]], "newest first");
    assert_eq!(
        report_ids(store, &filter(Some("a"), false, None, 100)).await,
        [ids[3], ids[2], ids[0]]
    );
    assert_eq!(
        report_ids(store, &filter(None, true, None, 100)).await,
        [ids[2], ids[1]]
    );
    assert_eq!(
        report_ids(store, &filter(Some("a"), true, None, 100)).await,
        [ids[2]]
    );
    assert_eq!(
        report_ids(store, &filter(None, false, Some(30), 100)).await,
        [ids[3], ids[2]],
        "since is inclusive"
    );
    assert_eq!(
        report_ids(store, &filter(None, false, None, 2)).await,
        [ids[3], ids[2]]
    );
    assert!(
        report_ids(store, &filter(Some("nobody"), false, None, 100))
            .await
            .is_empty()
    );

    let one = ok(store.report(ids[1]), "read", "report")
        .await
        .expect("stored");
    assert_eq!(one.envoy, "b");
    assert_eq!(one.received_at, t(20));
    assert_eq!(one.summary, failing(1));
    assert_eq!(one.body["report"]["duration_ms"], 20);
    assert!(
        ok(store.report(ids[3] + 1000), "read", "report")
            .await
            .is_none()
    );
}

async fn issue_16_pruning_by_age_and_count_in_batches(db: &TestDb) {
    let store = &db.store;
    approved(db, &["a", "b"]).await;
    // a: 7 reports at 100..=700; b: 2 reports at 150, 250.
    for at in (1..=7).map(|n| n * 100) {
        ok(
            store.insert_report("a", t(at), failing(0), false, &json!({})),
            "insert",
            "a",
        )
        .await;
    }
    for at in [150, 250] {
        ok(
            store.insert_report("b", t(at), failing(0), false, &json!({})),
            "insert",
            "b",
        )
        .await;
    }
    let secret = path("vigo/app/key");
    for at in [100, 200, 900] {
        ok(
            store.record_delivery("a", &secret, 1, t(at)),
            "deliver",
            "a",
        )
        .await;
        ok(
            store.record_secret_change("cli", &secret, 1, AuditEvent::Changed, t(at)),
            "audit",
            "a",
        )
        .await;
    }
    // Older than 220 goes; each envoy keeps its newest 3; two rows per
    // table and batch, so it takes several batches.
    let policy = PrunePolicy {
        before: t(220),
        max_runs: 3,
        batch: 2,
    };
    let mut batches = 0;
    let mut total = vigo_store::Pruned::default();
    loop {
        let pruned = ok(store.prune_batch(&policy), "prune", "history").await;
        assert!(pruned.reports <= 4 && pruned.deliveries <= 2 && pruned.audit <= 2);
        if pruned.total() == 0 {
            break;
        }
        total.add(pruned);
        batches += 1;
        assert!(batches < 10, "pruning never finished");
    }
    assert!(batches >= 2, "a batch deleted more than its size");
    // a: 100, 200 by age, then 300, 400 beyond its newest three; b: 150 by age.
    assert_eq!(total.reports, 5);
    assert_eq!(total.deliveries, 2);
    assert_eq!(total.audit, 2);
    let left: Vec<(String, Timestamp)> = ok(
        store.list_reports(&filter(None, false, None, 100)),
        "list",
        "history",
    )
    .await
    .into_iter()
    .map(|r| (r.envoy, r.received_at))
    .collect();
    assert_eq!(
        left,
        [
            ("b".to_owned(), t(250)),
            ("a".to_owned(), t(700)),
            ("a".to_owned(), t(600)),
            ("a".to_owned(), t(500)),
        ],
        "newest stored first"
    );
    let deliveries = ok(store.deliveries(None, None), "read", "deliveries").await;
    assert_eq!(
        deliveries.iter().map(|d| d.at).collect::<Vec<_>>(),
        [t(900)]
    );
    let audit = ok(store.secret_history(None), "read", "audit").await;
    assert_eq!(audit.iter().map(|e| e.at).collect::<Vec<_>>(), [t(900)]);
    // The envoys' last-report bookkeeping is untouched.
    assert_eq!(read_envoy(store, "a").await.last_report_at, Some(t(700)));
}
