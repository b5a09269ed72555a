//! One-shot run requests (`vigocli run TARGET`): the request and its audit
//! record, one row per matched envoy, its delivery with a check-in and the
//! outcome the envoy's report carried. Written once for both backends, as
//! in `queries.rs`.

use async_trait::async_trait;
use sqlx::Row;

use crate::error::StoreError;
use crate::model::Timestamp;
use crate::postgres::PostgresStore;
use crate::sqlite::SqliteStore;

/// A new run request, as the admin API records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRunRequest {
    /// Unique id (the server makes it).
    pub id: String,
    /// When it was asked.
    pub at: Timestamp,
    /// Who asked, as the caller named itself (for the audit record).
    pub requested_by: String,
    /// The target as given (`web*`, `role:web`, a name).
    pub target: String,
    /// Evaluate only: never changes a host, never clears a trigger.
    pub noop: bool,
    /// The approved envoys it matched.
    pub envoys: Vec<String>,
}

/// The run request an envoy's next check-in answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRun {
    /// The request's id.
    pub id: String,
    /// Whether it asked for noop.
    pub noop: bool,
}

/// One envoy's part of a run request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEnvoyRecord {
    /// The envoy.
    pub envoy: String,
    /// When a check-in delivered the request.
    pub delivered_at: Option<Timestamp>,
    /// When its report arrived.
    pub reported_at: Option<Timestamp>,
    /// `ok`, `changed`, `failed` (or `superseded` by a later request).
    pub outcome: Option<String>,
    /// The stored (scrubbed) report request, JSON.
    pub report: Option<serde_json::Value>,
}

/// A run request and its envoys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    /// Id.
    pub id: String,
    /// When it was asked.
    pub at: Timestamp,
    /// Who asked.
    pub requested_by: String,
    /// The target as given.
    pub target: String,
    /// Noop or not.
    pub noop: bool,
    /// Its envoys, by name.
    pub envoys: Vec<RunEnvoyRecord>,
}

/// Run-request operations; every [`Store`](crate::Store) has them.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Records a request for its envoys (an older request still pending
    /// for one of them is superseded) and wakes their waits on the other
    /// replicas, in one transaction.
    async fn create_run_request(&self, request: &NewRunRequest) -> Result<(), StoreError>;

    /// The newest request not yet delivered to `envoy`.
    async fn pending_run(&self, envoy: &str) -> Result<Option<PendingRun>, StoreError>;

    /// Marks the request delivered to `envoy`.
    async fn run_delivered(&self, id: &str, envoy: &str, at: Timestamp) -> Result<(), StoreError>;

    /// Records the outcome of `envoy`'s run for request `id` (unknown ids
    /// and envoys are ignored).
    async fn record_run_result(
        &self,
        id: &str,
        envoy: &str,
        at: Timestamp,
        outcome: &str,
        report: &serde_json::Value,
    ) -> Result<(), StoreError>;

    /// A request and its envoys; `None` for an unknown id.
    async fn run_request(&self, id: &str) -> Result<Option<RunRecord>, StoreError>;
}

macro_rules! impl_runs {
    ($store:ty, $db:ty) => {
        #[async_trait]
        impl RunStore for $store {
            async fn create_run_request(&self, request: &NewRunRequest) -> Result<(), StoreError> {
                let what = "record a run request";
                let mut tx = self.pool.begin().await.map_err(StoreError::query(what))?;
                sqlx::query(
                    "INSERT INTO run_requests (id, requested_at, requested_by, target, noop) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&request.id)
                .bind(request.at.unix_millis())
                .bind(&request.requested_by)
                .bind(&request.target)
                .bind(request.noop)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query(what))?;
                for envoy in &request.envoys {
                    sqlx::query(
                        "UPDATE run_request_envoys SET delivered_at = $2, outcome = 'superseded' \
                         WHERE envoy = $1 AND delivered_at IS NULL",
                    )
                    .bind(envoy)
                    .bind(request.at.unix_millis())
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::query(what))?;
                    sqlx::query(
                        "INSERT INTO run_request_envoys (request_id, envoy) VALUES ($1, $2)",
                    )
                    .bind(&request.id)
                    .bind(envoy)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::query(what))?;
                }
                let names: Vec<&str> = request.envoys.iter().map(String::as_str).collect();
                <$db as crate::wake::NotifyInTx>::notify_wake(&mut tx, &names).await?;
                tx.commit().await.map_err(StoreError::query(what))
            }

            async fn pending_run(&self, envoy: &str) -> Result<Option<PendingRun>, StoreError> {
                let row: Option<(String, bool)> = sqlx::query_as(
                    "SELECT r.id, r.noop FROM run_request_envoys e \
                     JOIN run_requests r ON r.id = e.request_id \
                     WHERE e.envoy = $1 AND e.delivered_at IS NULL \
                     ORDER BY r.requested_at DESC LIMIT 1",
                )
                .bind(envoy)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::query("read an envoy's run request"))?;
                Ok(row.map(|(id, noop)| PendingRun { id, noop }))
            }

            async fn run_delivered(
                &self,
                id: &str,
                envoy: &str,
                at: Timestamp,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE run_request_envoys SET delivered_at = $3 \
                     WHERE request_id = $1 AND envoy = $2 AND delivered_at IS NULL",
                )
                .bind(id)
                .bind(envoy)
                .bind(at.unix_millis())
                .execute(&self.pool)
                .await
                .map_err(StoreError::query("mark a run request delivered"))?;
                Ok(())
            }

            async fn record_run_result(
                &self,
                id: &str,
                envoy: &str,
                at: Timestamp,
                outcome: &str,
                report: &serde_json::Value,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE run_request_envoys SET reported_at = $3, outcome = $4, report = $5, \
                     delivered_at = COALESCE(delivered_at, $3) \
                     WHERE request_id = $1 AND envoy = $2 AND reported_at IS NULL",
                )
                .bind(id)
                .bind(envoy)
                .bind(at.unix_millis())
                .bind(outcome)
                .bind(report.to_string())
                .execute(&self.pool)
                .await
                .map_err(StoreError::query("record a run result"))?;
                Ok(())
            }

            async fn run_request(&self, id: &str) -> Result<Option<RunRecord>, StoreError> {
                let what = "read a run request";
                let head: Option<(i64, String, String, bool)> = sqlx::query_as(
                    "SELECT requested_at, requested_by, target, noop FROM run_requests \
                     WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::query(what))?;
                let Some((at, requested_by, target, noop)) = head else {
                    return Ok(None);
                };
                let rows = sqlx::query(
                    "SELECT envoy, delivered_at, reported_at, outcome, report \
                     FROM run_request_envoys WHERE request_id = $1 ORDER BY envoy",
                )
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::query(what))?;
                let mut envoys = Vec::with_capacity(rows.len());
                for row in rows {
                    let report: Option<String> =
                        row.try_get("report").map_err(StoreError::query(what))?;
                    let report =
                        match report {
                            Some(text) => Some(serde_json::from_str(&text).map_err(|e| {
                                StoreError::Corrupt {
                                    what: "run report",
                                    detail: e.to_string(),
                                }
                            })?),
                            None => None,
                        };
                    let time = |t: Option<i64>| t.map(Timestamp::from_unix_millis);
                    envoys.push(RunEnvoyRecord {
                        envoy: row.try_get("envoy").map_err(StoreError::query(what))?,
                        delivered_at: time(
                            row.try_get("delivered_at")
                                .map_err(StoreError::query(what))?,
                        ),
                        reported_at: time(
                            row.try_get("reported_at")
                                .map_err(StoreError::query(what))?,
                        ),
                        outcome: row.try_get("outcome").map_err(StoreError::query(what))?,
                        report,
                    });
                }
                Ok(Some(RunRecord {
                    id: id.to_owned(),
                    at: Timestamp::from_unix_millis(at),
                    requested_by,
                    target,
                    noop,
                    envoys,
                }))
            }
        }
    };
}

impl_runs!(SqliteStore, sqlx::Sqlite);
impl_runs!(PostgresStore, sqlx::Postgres);
