//! Held waits (issue 14): whether an envoy is due to check in, in one query
//! per envoy or one for all, on both backends; and the PostgreSQL wake
//! channel between replicas (each PostgreSQL test in a fresh schema).

use std::time::Duration;

use sqlx::Connection;
use vigo_secrets::{SecretPath, SecretValue};
use vigo_store::{
    CatalogSent, CheckinRecord, EnvoyRotation, RotationClaim, StoreHandle, Timestamp, Wake,
};
use vigo_test_support::PgSchema;

const KEY: &str = "5f1c0e9a8b7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170f6e5d4c";

/// How long a notification may take to arrive before the test fails; not
/// a performance expectation.
const PATIENCE: Duration = Duration::from_secs(20);

fn at(millis: i64) -> Timestamp {
    Timestamp::from_unix_millis(1_700_000_000_000 + millis)
}

/// A PostgreSQL schema of its own and stores opened on it.
struct Pg(PgSchema);

impl Pg {
    fn create() -> Option<Self> {
        Some(Self(PgSchema::create(&vigo_test_support::postgres_url()?)))
    }

    async fn store(&self) -> StoreHandle {
        vigo_store::connect(&SecretValue::new(self.0.dsn()))
            .await
            .unwrap()
    }
}

async fn approved(store: &StoreHandle, name: &str) {
    store
        .upsert_enrollment_request(name, "csr", at(0))
        .await
        .unwrap();
    store
        .approve_envoy(name, "cert", &format!("fp-{name}"), at(1))
        .await
        .unwrap();
}

/// Checks that `name` is due and is the only envoy due.
async fn only_due(store: &StoreHandle, name: &str) {
    assert!(store.checkin_due(name).await.unwrap(), "{name} is due");
    assert_eq!(
        store.checkin_due_envoys().await.unwrap(),
        vec![name.to_owned()]
    );
}

async fn due_follows_the_state(store: &StoreHandle) {
    for name in ["db1.example.com", "web1.example.com", "web2.example.com"] {
        approved(store, name).await;
    }
    assert!(!store.checkin_due("db1.example.com").await.unwrap());
    assert!(store.checkin_due_envoys().await.unwrap().is_empty());

    // Force-push.
    store
        .set_force_push(&["web1.example.com"], true)
        .await
        .unwrap();
    only_due(store, "web1.example.com").await;
    store
        .set_force_push(&["web1.example.com"], false)
        .await
        .unwrap();

    // An undelivered trigger is due; once delivered it no longer is.
    let path = SecretPath::parse("db/password").unwrap();
    store
        .queue_triggers("db1.example.com", &[("config", &path)], at(10))
        .await
        .unwrap();
    only_due(store, "db1.example.com").await;
    store
        .record_catalog_sent(&CatalogSent {
            checkin: CheckinRecord {
                name: "db1.example.com".to_owned(),
                facts: serde_json::json!({}),
                catalog_fingerprint: None,
                at: at(20),
                last_run: None,
            },
            delivered: vec!["config".to_owned()],
            dropped: vec![],
            clear_force_push: false,
            deliveries: vec![],
        })
        .await
        .unwrap();
    assert!(!store.checkin_due("db1.example.com").await.unwrap());

    // Revoked, or unknown: due, so the wait ends and the next request is
    // refused.
    store
        .revoke_envoy("web2.example.com", at(30))
        .await
        .unwrap();
    assert!(store.checkin_due("web2.example.com").await.unwrap());
    assert!(store.checkin_due("nobody.example.com").await.unwrap());
    assert_eq!(
        store.checkin_due_envoys().await.unwrap(),
        vec!["web2.example.com".to_owned()]
    );
}

#[tokio::test]
async fn issue_14_checkin_due_sqlite() {
    let folder = tempfile::tempdir().unwrap();
    let dsn = SecretValue::new(format!(
        "sqlite://{}/vigo.db?key={KEY}",
        folder.path().display()
    ));
    let store = vigo_store::connect(&dsn).await.unwrap();
    due_follows_the_state(&store).await;
    // One process: nothing to send, nobody to listen.
    store.notify_wake(&["db1.example.com"]).await.unwrap();
    assert!(store.wake_listener().await.unwrap().is_none());
    store.close().await;
}

#[tokio::test]
async fn issue_14_checkin_due_postgres() {
    let Some(pg) = Pg::create() else { return };
    let store = pg.store().await;
    due_follows_the_state(&store).await;
    store.close().await;
    drop(pg);
}

/// The payloads that arrive on `channel` within `PATIENCE`, until `enough`
/// says so.
async fn collect(
    listener: &mut sqlx::postgres::PgListener,
    mut enough: impl FnMut(&[String]) -> bool,
) -> Vec<String> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !enough(&seen) {
        let notification = tokio::time::timeout_at(deadline, listener.recv())
            .await
            .expect("the notification arrives")
            .unwrap();
        seen.push(notification.payload().to_owned());
    }
    seen
}

#[tokio::test]
async fn issue_14_changes_notify_the_schema_channel_at_commit() {
    let Some(pg) = Pg::create() else { return };
    let store = pg.store().await;
    for name in ["db1.example.com", "web1.example.com"] {
        approved(&store, name).await;
    }
    let wake = store
        .wake_listener()
        .await
        .unwrap()
        .expect("PostgreSQL listens");
    assert!(
        wake.channel().starts_with("vigo_wake:") && wake.channel().contains(pg.0.name()),
        "{}",
        wake.channel()
    );
    // A stand-in for another replica, listening on the same channel.
    let mut other = sqlx::postgres::PgListener::connect(&pg.0.dsn())
        .await
        .unwrap();
    other.listen(wake.channel()).await.unwrap();

    store
        .set_force_push(&["web1.example.com"], true)
        .await
        .unwrap();
    let seen = collect(&mut other, |seen| !seen.is_empty()).await;
    assert!(seen[0].ends_with("\nweb1.example.com"), "{seen:?}");

    // The rotation's transaction names the envoys it set force-push on.
    let path = SecretPath::parse("db/password").unwrap();
    let outcome = store
        .commit_rotation(
            &[RotationClaim {
                path: path.clone(),
                version: Some(2),
                actor: "cli".to_owned(),
            }],
            &[EnvoyRotation {
                envoy: "db1.example.com".to_owned(),
                references: vec![path.clone()],
                triggers: vec![("config".to_owned(), path.clone())],
            }],
            at(50),
        )
        .await
        .unwrap();
    assert_eq!(outcome.envoys, vec!["db1.example.com".to_owned()]);
    let seen = collect(&mut other, |seen| !seen.is_empty()).await;
    assert!(seen[0].ends_with("\ndb1.example.com"), "{seen:?}");

    // A long list is split under the payload limit, every name once.
    let names: Vec<String> = (0..1_500)
        .map(|i| format!("web-{i:05}.example.com"))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    store.notify_wake(&refs).await.unwrap();
    let seen = collect(&mut other, |seen| {
        seen.iter().map(|p| p.lines().count() - 1).sum::<usize>() >= names.len()
    })
    .await;
    assert!(seen.len() > 1);
    assert!(
        seen.iter()
            .all(|p| p.len() <= vigo_store::MAX_PAYLOAD_BYTES)
    );
    let got: Vec<&str> = seen.iter().flat_map(|p| p.lines().skip(1)).collect();
    assert_eq!(got, refs);

    wake.close().await;
    store.close().await;
    drop(pg);
}

#[tokio::test]
async fn issue_14_the_listener_reports_a_lost_connection_and_a_new_one_listens() {
    let Some(pg) = Pg::create() else { return };
    let store = pg.store().await;
    let mut wake = store
        .wake_listener()
        .await
        .unwrap()
        .expect("PostgreSQL listens");
    let channel = wake.channel().to_owned();
    let mut admin = sqlx::PgConnection::connect(&pg.0.dsn()).await.unwrap();

    // Another replica's names arrive.
    assert_eq!(
        notify_and_hear(&mut admin, &mut wake, "other-replica\nweb1.example.com").await,
        Wake::Envoys(vec!["web1.example.com".to_owned()])
    );
    assert_eq!(
        notify_and_hear(&mut admin, &mut wake, "other-replica\n*").await,
        Wake::All
    );

    // Its backend is terminated (as by a database restart): `recv` fails.
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = $1 AND query = $2",
    )
    .bind(vigo_store::LISTENER_APPLICATION_NAME)
    .bind(format!("LISTEN \"{channel}\""))
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(terminated, vec![true]);
    let got = tokio::time::timeout(PATIENCE, wake.recv()).await.unwrap();
    assert!(got.is_err(), "{got:?}");

    // A new listener hears again.
    let mut wake = store
        .wake_listener()
        .await
        .unwrap()
        .expect("PostgreSQL listens");
    assert_eq!(
        notify_and_hear(&mut admin, &mut wake, "other-replica\ndb1.example.com").await,
        Wake::Envoys(vec!["db1.example.com".to_owned()])
    );

    admin.close().await.ok();
    wake.close().await;
    store.close().await;
    drop(pg);
}

/// Sends `payload` on `wake`'s channel from the `admin` connection, as
/// another replica would, and returns what `wake` hears.
async fn notify_and_hear(
    admin: &mut sqlx::PgConnection,
    wake: &mut vigo_store::WakeListener,
    payload: &str,
) -> Wake {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(wake.channel().to_owned())
        .bind(payload.to_owned())
        .execute(admin)
        .await
        .unwrap();
    tokio::time::timeout(PATIENCE, wake.recv())
        .await
        .unwrap()
        .unwrap()
}
