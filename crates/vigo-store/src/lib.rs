//! Vigo's database layer (docs/secrets.md "What is stored"; docs/operations.md "Replicas behind
//! HAProxy"): envoys and their enrollment, one-time enrollment tokens, queued rotation triggers,
//! envoy reports, the secret versions the server has seen, the secret audit log and secret
//! deliveries.
//!
//! [`connect`] picks the backend from the DSN — the embedded SQLite file
//! (`sqlite:///…/vigo.db?key=<64 hex>`, encrypted at rest with SQLCipher) or
//! a shared PostgreSQL (`postgres://…`) — runs the migrations, and returns a
//! [`StoreHandle`] (`Arc<dyn Store>`). Both backends run the same SQL over
//! concrete sqlx pools; the `Any` driver is not used.
//!
//! Main types: [`Store`] (every operation), [`EnvoyRecord`], [`Trigger`],
//! [`ReportRecord`], [`AuditEntry`], [`Delivery`], [`Timestamp`] (UTC unix
//! milliseconds, stored as integers on both backends) and [`StoreError`],
//! which never contains the DSN, its password or its key.
//!
//! Run history ([`HistoryStore`]): reports listed with a [`ReportFilter`]
//! and pruned in batches by a [`PrunePolicy`].
//!
//! Secret values are never stored: only paths, version numbers and hashes.

mod batch;
mod dsn;
mod enrollment;
mod error;
pub mod fault;
mod history;
mod model;
mod postgres;
mod queries;
mod runs;
mod snapshot;
mod sqlite;
mod store;
mod wake;

use std::fmt;
use std::sync::Arc;

use vigo_secrets::SecretValue;

pub use batch::{CatalogSent, EnvoyRotation, RotationClaim, RotationOutcome};
pub use enrollment::{EnrollmentRecorded, EnrollmentRequest, PendingLimits};
pub use error::StoreError;
pub use history::{HistoryStore, PrunePolicy, Pruned, ReportFilter};
pub use model::{
    AuditEntry, AuditEvent, Backend, CheckinRecord, Delivery, EnvoyAuth, EnvoyRecord, EnvoyState,
    EnvoyStatus, LastRunRecord, ReportRecord, ReportSummary, STALE_AFTER_INTERVALS, Timestamp,
    TokenRejection, Trigger,
};
pub use runs::{NewRunRequest, PendingRun, RunEnvoyRecord, RunRecord, RunStore};
pub use snapshot::{embedded_db_file, snapshot_embedded};
pub use store::{Store, StoreHandle};
pub use wake::{LISTENER_APPLICATION_NAME, MAX_PAYLOAD_BYTES, MAX_PAYLOADS, Wake, WakeListener};

/// Opens the database named by `dsn` and brings its schema up to date.
/// Calling it again on the same database is harmless.
pub async fn connect(dsn: &SecretValue) -> Result<StoreHandle, StoreError> {
    match dsn::Dsn::parse(dsn.expose_secret())? {
        dsn::Dsn::Sqlite(parsed) => Ok(Arc::new(sqlite::SqliteStore::connect(parsed).await?)),
        dsn::Dsn::Postgres(parsed) => {
            Ok(Arc::new(postgres::PostgresStore::connect(*parsed).await?))
        }
    }
}

/// `Name { field: value, .. }`: the Debug print of a type that holds connect
/// options (with their password or key) or a live connection, showing only
/// the one field that says what it is connected to.
fn debug_one_field(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    field: &str,
    value: &dyn fmt::Debug,
) -> fmt::Result {
    f.debug_struct(name)
        .field(field, value)
        .finish_non_exhaustive()
}
