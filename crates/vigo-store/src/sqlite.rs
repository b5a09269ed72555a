//! The embedded backend: one SQLite file, encrypted with SQLCipher.
//!
//! Every pooled connection runs `PRAGMA key` as its first statement (sqlx
//! issues the `key` pragma before all others), then WAL mode, a busy timeout
//! and foreign keys. Statement logging is off for this pool: the key pragma
//! is a statement, and sqlx would otherwise log its text at debug level.

use std::fmt;
use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::str::FromStr;
use std::time::Duration;

use log::LevelFilter;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};

use crate::dsn::SqliteDsn;
use crate::error::StoreError;
use crate::model::Backend;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a writer waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections in the pool; WAL lets readers run beside the one writer.
const MAX_CONNECTIONS: u32 = 4;

/// SQLite's "file is not a database" result code: what a wrong key gives.
const SQLITE_NOTADB: &str = "26";

/// The [`Store`](crate::Store) over an embedded SQLite database.
pub(crate) struct SqliteStore {
    pub(crate) pool: SqlitePool,
    path: String,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The connect options hold the key: show only the path.
        crate::debug_one_field(f, "SqliteStore", "path", &self.path)
    }
}

impl SqliteStore {
    /// Opens (creating it 0600 if missing) and migrates the database.
    pub(crate) async fn connect(dsn: SqliteDsn) -> Result<Self, StoreError> {
        let path = dsn.path.display().to_string();
        let connect_error = |reason: String| StoreError::Connect {
            backend: Backend::Sqlite,
            target: path.clone(),
            reason,
        };
        create_private_file(&dsn.path).map_err(|error| connect_error(error.to_string()))?;
        silence_cipher_log().await;

        let mut options = SqliteConnectOptions::new()
            .filename(&dsn.path)
            .create_if_missing(false)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            .log_statements(LevelFilter::Off)
            .log_slow_statements(LevelFilter::Off, Duration::MAX);
        if dsn.key.is_none() {
            tracing::warn!(
                path = %path,
                "the embedded database is not encrypted: its DSN has no key"
            );
        }
        if let Some(key) = &dsn.key {
            // A raw 256-bit key (`x'..'`): SQLCipher skips its passphrase KDF.
            // The key is 64 validated hex characters, so it cannot break out
            // of the quoting.
            options = options.pragma("key", format!("\"x'{}'\"", key.as_str()));
        }

        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|error| classify(error, &path))?;

        if dsn.key.is_some() {
            let cipher: Option<String> = sqlx::query_scalar("PRAGMA cipher_version")
                .fetch_optional(&pool)
                .await
                .map_err(|error| classify(error, &path))?;
            if cipher.is_none() {
                pool.close().await;
                return Err(StoreError::CipherUnavailable { path });
            }
        }
        // Reading the schema proves the key opens the file.
        sqlx::query("SELECT count(*) FROM sqlite_master")
            .execute(&pool)
            .await
            .map_err(|error| classify(error, &path))?;

        MIGRATOR
            .run(&pool)
            .await
            .map_err(|error| StoreError::Migrate {
                backend: Backend::Sqlite,
                reason: error.to_string(),
            })?;
        Ok(Self { pool, path })
    }
}

/// SQLCipher writes its own diagnostics ("hmac check failed ...") straight
/// to stderr, outside Vigo's log format. Its log level is process-wide, so
/// one throwaway in-memory connection turns it off before any keyed
/// connection can fail. The store reports such failures itself.
async fn silence_cipher_log() {
    let Ok(options) = SqliteConnectOptions::from_str("sqlite::memory:") else {
        return;
    };
    let options = options
        .log_statements(LevelFilter::Off)
        .log_slow_statements(LevelFilter::Off, Duration::MAX);
    if let Ok(mut connection) = options.connect().await {
        // On plain SQLite the pragma is unknown and silently ignored.
        let _ = sqlx::query("PRAGMA cipher_log_level = NONE")
            .execute(&mut connection)
            .await;
        let _ = connection.close().await;
    }
}

/// A wrong key surfaces as "file is not a database"; anything else is a
/// plain connection failure. SQLite's messages never contain the key.
fn classify(error: sqlx::Error, path: &str) -> StoreError {
    let not_a_database = error
        .as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| code == SQLITE_NOTADB);
    if not_a_database {
        return StoreError::WrongKey {
            path: path.to_owned(),
        };
    }
    StoreError::Connect {
        backend: Backend::Sqlite,
        target: path.to_owned(),
        reason: error.to_string(),
    }
}

/// Creates the database file readable by its owner only, if it is missing.
/// SQLite gives its `-wal` and `-shm` files the same mode.
fn create_private_file(path: &std::path::Path) -> std::io::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}
