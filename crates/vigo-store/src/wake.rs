//! Wake-ups across server replicas that share one PostgreSQL database.
//!
//! A replica that changes what an envoy's held `GET /v1/wait` depends on
//! (force-push, queued triggers, its status) sends `NOTIFY` on the wake
//! channel with the envoy names; every replica `LISTEN`s on it and wakes the
//! waits it holds for those names. [`Store::commit_rotation`] and
//! [`Store::set_force_push`] notify inside their own transaction, so the
//! notification is delivered exactly when (and only if) the change commits;
//! other changes call [`Store::notify_wake`] after their commit.
//!
//! - The channel is per schema (`vigo_wake:<schema>`, or the MD5 of a long
//!   schema name), so several Vigo installations sharing one database do
//!   not wake each other.
//! - A payload is `<origin>\n<name>\n<name>...`, at most
//!   [`MAX_PAYLOAD_BYTES`] bytes (PostgreSQL refuses 8,000 and more): a
//!   long list is split over several notifications, and one longer than
//!   [`MAX_PAYLOADS`] notifications becomes a single `*` ("re-check every
//!   held wait", one query per replica). `origin` identifies the process,
//!   so a replica skips its own notifications: it woke its waits already.
//! - SQLite is one process: nothing is sent and there is no listener.
//!
//! [`Store::commit_rotation`]: crate::Store::commit_rotation
//! [`Store::set_force_push`]: crate::Store::set_force_push
//! [`Store::notify_wake`]: crate::Store::notify_wake

use std::fmt;
use std::future::Future;
use std::sync::OnceLock;

use sqlx::postgres::{PgListener, PgPoolOptions};

use crate::error::StoreError;
use crate::postgres::{ACQUIRE_TIMEOUT, PostgresStore, connect_failed};
use crate::sqlite::SqliteStore;

/// The largest payload sent; PostgreSQL's limit is 7,999 bytes.
pub const MAX_PAYLOAD_BYTES: usize = 7_900;

/// Beyond this many notifications for one change, one `*` is sent instead.
pub const MAX_PAYLOADS: usize = 8;

/// The `application_name` of the listening connection (find it in
/// `pg_stat_activity`).
pub const LISTENER_APPLICATION_NAME: &str = "vigosrv-wake-listener";

/// The payload line that means "every held wait".
const ALL: &str = "*";

/// The wake channel of the current schema, computed by PostgreSQL on both
/// sides. Channel names are identifiers (at most 63 bytes).
macro_rules! channel_sql {
    () => {
        "(SELECT CASE WHEN octet_length(s) <= 53 THEN 'vigo_wake:' || s \
         ELSE 'vigo_wake:' || md5(s) END FROM (SELECT COALESCE(current_schema(), '') AS s) AS cs)"
    };
}

/// Sends one wake payload (`$1`).
const NOTIFY_SQL: &str = concat!("SELECT pg_notify(", channel_sql!(), ", $1)");

/// The channel of the current schema.
const CHANNEL_SQL: &str = concat!("SELECT ", channel_sql!());

/// What a notification asks of the replicas that receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    /// Re-check the held waits of these envoys.
    Envoys(Vec<String>),
    /// Re-check every held wait.
    All,
}

/// This process's origin tag: process id and start time, enough to tell
/// replicas apart.
fn origin() -> &'static str {
    static ORIGIN: OnceLock<String> = OnceLock::new();
    ORIGIN.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{:x}.{nanos:x}", std::process::id())
    })
}

/// The payloads announcing `names` from `origin` (none for no names).
pub(crate) fn payloads(origin: &str, names: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for name in names {
        // A name never holds a newline (`EnvoyName`); skip anything odd
        // rather than corrupt the framing.
        if name.is_empty()
            || name.contains('\n')
            || name.len() + origin.len() + 2 > MAX_PAYLOAD_BYTES
        {
            continue;
        }
        if !current.is_empty() && current.len() + 1 + name.len() > MAX_PAYLOAD_BYTES {
            out.push(std::mem::take(&mut current));
        }
        if current.is_empty() {
            current.push_str(origin);
        }
        current.push('\n');
        current.push_str(name);
    }
    if !current.is_empty() {
        out.push(current);
    }
    if out.len() > MAX_PAYLOADS {
        return vec![format!("{origin}\n{ALL}")];
    }
    out
}

/// What `payload` asks, or `None` for this process's own notifications and
/// anything that is not a wake payload.
pub(crate) fn parse(payload: &str, own_origin: &str) -> Option<Wake> {
    let mut lines = payload.split('\n');
    let from = lines.next()?;
    if from == own_origin || from.is_empty() {
        return None;
    }
    let mut names = Vec::new();
    for line in lines {
        if line == ALL {
            return Some(Wake::All);
        }
        if !line.is_empty() {
            names.push(line.to_owned());
        }
    }
    (!names.is_empty()).then_some(Wake::Envoys(names))
}

/// Sends the wake notifications for `names` within a transaction of the
/// backend (delivered at commit); nothing on SQLite.
pub(crate) trait NotifyInTx: sqlx::Database {
    /// Queues the notifications on `tx`.
    fn notify_wake<'a>(
        tx: &'a mut sqlx::Transaction<'_, Self>,
        names: &'a [&'a str],
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a;
}

impl NotifyInTx for sqlx::Sqlite {
    async fn notify_wake<'a>(
        _tx: &'a mut sqlx::Transaction<'_, Self>,
        _names: &'a [&'a str],
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

impl NotifyInTx for sqlx::Postgres {
    async fn notify_wake<'a>(
        tx: &'a mut sqlx::Transaction<'_, Self>,
        names: &'a [&'a str],
    ) -> Result<(), StoreError> {
        for payload in payloads(origin(), names) {
            sqlx::query(NOTIFY_SQL)
                .bind(payload)
                .execute(&mut **tx)
                .await
                .map_err(StoreError::query("notify other replicas"))?;
        }
        Ok(())
    }
}

impl SqliteStore {
    /// One process writes the embedded database: nobody else to tell.
    #[allow(clippy::unused_async)]
    pub(crate) async fn send_wake(&self, _names: &[&str]) -> Result<(), StoreError> {
        Ok(())
    }

    /// No listener: see [`SqliteStore::send_wake`].
    #[allow(clippy::unused_async)]
    pub(crate) async fn listen_wake(&self) -> Result<Option<WakeListener>, StoreError> {
        Ok(None)
    }
}

impl PostgresStore {
    /// [`Store::notify_wake`](crate::Store::notify_wake) for PostgreSQL.
    pub(crate) async fn send_wake(&self, names: &[&str]) -> Result<(), StoreError> {
        if names.is_empty() {
            return Ok(());
        }
        let failed = || StoreError::query("notify other replicas");
        let mut tx = self.pool.begin().await.map_err(failed())?;
        <sqlx::Postgres as NotifyInTx>::notify_wake(&mut tx, names).await?;
        tx.commit().await.map_err(failed())
    }

    /// [`Store::wake_listener`](crate::Store::wake_listener) for PostgreSQL:
    /// a connection of its own (not one of the pool's), listening.
    pub(crate) async fn listen_wake(&self) -> Result<Option<WakeListener>, StoreError> {
        let options = (*self.pool.connect_options())
            .clone()
            .application_name(LISTENER_APPLICATION_NAME);
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        let mut listener = PgListener::connect_with(&pool)
            .await
            .map_err(|error| connect_failed(&self.target, &self.secrets, &error))?;
        // A lost connection is reported, not silently re-made: the caller
        // must re-check its waits after a gap.
        listener.eager_reconnect(false);
        let channel: String = sqlx::query_scalar(CHANNEL_SQL)
            .fetch_one(&mut listener)
            .await
            .map_err(StoreError::query("listen for wake-ups"))?;
        listener
            .listen(&channel)
            .await
            .map_err(StoreError::query("listen for wake-ups"))?;
        Ok(Some(WakeListener {
            listener,
            pool,
            channel,
        }))
    }
}

/// A connection listening on the wake channel (PostgreSQL only). Drop it
/// after an error and make a new one: notifications sent meanwhile are
/// lost, so re-check every held wait once it listens again.
pub struct WakeListener {
    listener: PgListener,
    pool: sqlx::PgPool,
    channel: String,
}

impl fmt::Debug for WakeListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::debug_one_field(f, "WakeListener", "channel", &self.channel)
    }
}

impl WakeListener {
    /// The channel listened on.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The next wake-up another replica sent. An error means the
    /// connection is gone (database restart, terminated backend, network).
    pub async fn recv(&mut self) -> Result<Wake, StoreError> {
        loop {
            match self.listener.try_recv().await {
                Ok(Some(notification)) => {
                    if let Some(wake) = parse(notification.payload(), origin()) {
                        return Ok(wake);
                    }
                }
                Ok(None) => {
                    return Err(StoreError::query("listen for wake-ups")(sqlx::Error::Io(
                        std::io::Error::new(
                            std::io::ErrorKind::ConnectionAborted,
                            "the listening connection was lost",
                        ),
                    )));
                }
                Err(error) => return Err(StoreError::query("listen for wake-ups")(error)),
            }
        }
    }

    /// Closes the connection.
    pub async fn close(self) {
        drop(self.listener);
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `count` envoy names, and the payloads origin `o1` sends for them.
    fn announce(count: usize) -> (Vec<String>, Vec<String>) {
        let names: Vec<String> = (0..count)
            .map(|i| format!("web-{i:05}.example.com"))
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let out = payloads("o1", &refs);
        (names, out)
    }

    #[test]
    fn names_are_split_under_the_payload_limit() {
        let (names, out) = announce(1_000);
        assert!(out.len() > 1 && out.len() <= MAX_PAYLOADS, "{}", out.len());
        let mut seen = Vec::new();
        for payload in &out {
            assert!(payload.len() <= MAX_PAYLOAD_BYTES);
            match parse(payload, "other") {
                Some(Wake::Envoys(names)) => seen.extend(names),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(seen, names);
    }

    #[test]
    fn too_many_names_become_one_recheck_of_everything() {
        let (_, out) = announce(10_000);
        assert_eq!(out, vec!["o1\n*".to_owned()]);
        assert_eq!(parse(&out[0], "other"), Some(Wake::All));
    }

    #[test]
    fn own_and_foreign_payloads_are_ignored() {
        assert_eq!(parse("o1\ndb1.example.com", "o1"), None);
        assert_eq!(parse("", "o1"), None);
        assert_eq!(parse("o2", "o1"), None);
        assert_eq!(
            parse("o2\ndb1.example.com\n", "o1"),
            Some(Wake::Envoys(vec!["db1.example.com".to_owned()]))
        );
        assert!(payloads("o1", &[]).is_empty());
        assert!(payloads("o1", &["bad\nname"]).is_empty());
    }
}
