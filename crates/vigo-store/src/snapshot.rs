//! A consistent copy of the embedded database while the server runs
//! (`vigocli backup`).

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use vigo_secrets::SecretValue;

use crate::StoreError;
use crate::dsn::Dsn;
use crate::model::Backend;

/// The file of the embedded database `dsn` names; `None` for PostgreSQL.
pub fn embedded_db_file(dsn: &SecretValue) -> Result<Option<PathBuf>, StoreError> {
    match Dsn::parse(dsn.expose_secret())? {
        Dsn::Sqlite(sqlite) => Ok(Some(sqlite.path)),
        Dsn::Postgres(_) => Ok(None),
    }
}

/// Writes a consistent snapshot of the embedded database `dsn` names to
/// `dest` (which must not exist), encrypted with the same key. Safe while
/// the server writes: SQLCipher's `sqlcipher_export` runs as one statement,
/// inside one read transaction, so it copies one committed state (never a
/// file copy of a database being written). Refused for PostgreSQL (use
/// `pg_dump`).
pub async fn snapshot_embedded(dsn: &SecretValue, dest: &Path) -> Result<(), StoreError> {
    let Dsn::Sqlite(sqlite) = Dsn::parse(dsn.expose_secret())? else {
        return Err(StoreError::InvalidDsn {
            reason: "the database is PostgreSQL; back it up with pg_dump".to_owned(),
        });
    };
    let target = sqlite.path.display().to_string();
    let failed = |reason: String| StoreError::Connect {
        backend: Backend::Sqlite,
        target: target.clone(),
        reason,
    };
    let mut options = SqliteConnectOptions::from_str("sqlite://")
        .map_err(|e| failed(e.to_string()))?
        .filename(&sqlite.path)
        .create_if_missing(false)
        .read_only(false)
        .log_statements(log::LevelFilter::Off);
    let raw_key = sqlite.key.as_ref().map(|k| format!("x'{}'", k.as_str()));
    if let Some(key) = &sqlite.key {
        options = options.pragma("key", format!("\"x'{}'\"", key.as_str()));
    }
    // An empty 0600 file: ATTACH fills it (the connection, opened without
    // create, could not create it), and it is never readable by others.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .map_err(|e| failed(format!("creating {}: {e}", dest.display())))?;
    let mut conn = options.connect().await.map_err(|e| failed(e.to_string()))?;
    let dest_text = dest
        .to_str()
        .ok_or_else(|| failed("the snapshot path is not UTF-8".to_owned()))?;
    let result = async {
        sqlx::query("ATTACH DATABASE ?1 AS snapshot KEY ?2")
            .bind(dest_text)
            .bind(raw_key.as_deref().unwrap_or(""))
            .execute(&mut conn)
            .await?;
        sqlx::query("SELECT sqlcipher_export('snapshot')")
            .execute(&mut conn)
            .await?;
        sqlx::query("DETACH DATABASE snapshot")
            .execute(&mut conn)
            .await?;
        Ok::<(), sqlx::Error>(())
    }
    .await;
    let _ = conn.close().await;
    result.map_err(|e| failed(format!("taking a snapshot to {}: {e}", dest.display())))
}
