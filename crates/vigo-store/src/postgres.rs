//! The shared backend: PostgreSQL, for several server replicas.
//!
//! Connection failures are reported with `host:port/database` and the
//! driver's reason scrubbed of the DSN and its password.

use std::fmt;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::dsn::{PostgresDsn, scrub};
use crate::error::StoreError;
use crate::model::Backend;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// Connections in the pool.
const MAX_CONNECTIONS: u32 = 10;

/// How long to wait for a connection before failing.
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The [`Store`](crate::Store) over PostgreSQL.
pub(crate) struct PostgresStore {
    pub(crate) pool: PgPool,
    pub(crate) target: String,
    /// The DSN's credentials, to scrub from the wake listener's errors.
    pub(crate) secrets: Vec<zeroize::Zeroizing<String>>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The connect options hold the password: show only the target.
        crate::debug_one_field(f, "PostgresStore", "target", &self.target)
    }
}

impl PostgresStore {
    /// Connects and migrates.
    pub(crate) async fn connect(dsn: PostgresDsn) -> Result<Self, StoreError> {
        let PostgresDsn {
            options,
            target,
            secrets,
        } = dsn;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|error| connect_failed(&target, &secrets, &error))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|error| StoreError::Migrate {
                backend: Backend::Postgres,
                reason: scrub(&error.to_string(), &secrets),
            })?;
        Ok(Self {
            pool,
            target,
            secrets,
        })
    }
}

/// A failure to connect to `target`, the driver's reason scrubbed of the
/// DSN's `secrets`.
pub(crate) fn connect_failed(
    target: &str,
    secrets: &[zeroize::Zeroizing<String>],
    error: &sqlx::Error,
) -> StoreError {
    StoreError::Connect {
        backend: Backend::Postgres,
        target: target.to_owned(),
        reason: scrub(&error.to_string(), secrets),
    }
}
