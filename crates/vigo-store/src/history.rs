//! Run history (`vigocli reports`): listing stored reports with a filter,
//! reading one, and pruning history by age and by a count per envoy —
//! deliveries, the secret audit log and run requests by the same age.
//! Written once for both backends, as in `queries.rs`.
//!
//! Pruning deletes at most a batch of rows per table and call, each batch
//! its own statement, so a large backlog never holds the database's write
//! lock for long: the server calls [`HistoryStore::prune_batch`] until it
//! reports nothing left, pausing between calls so check-ins get their turn.

use async_trait::async_trait;

use crate::error::StoreError;
use crate::model::{ReportRecord, Timestamp};
use crate::postgres::PostgresStore;
use crate::queries::{LIST_REPORTS_SQL, REPORT_BY_ID_SQL};
use crate::sqlite::SqliteStore;

/// Which reports to list, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFilter {
    /// Only this envoy's reports.
    pub envoy: Option<String>,
    /// Only reports with at least one failed resource.
    pub failed_only: bool,
    /// Only reports received at or after this time.
    pub since: Option<Timestamp>,
    /// At most this many.
    pub limit: u32,
}

/// What one pruning batch may delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrunePolicy {
    /// Reports, deliveries, audit entries and run requests older than this go.
    pub before: Timestamp,
    /// Each envoy keeps at most this many reports (its newest).
    pub max_runs: u32,
    /// At most this many rows per table in one call.
    pub batch: u32,
}

/// What one pruning batch deleted, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Reports past the age or beyond the per-envoy count.
    pub reports: u64,
    /// Secret deliveries past the age.
    pub deliveries: u64,
    /// Secret audit entries past the age.
    pub audit: u64,
    /// Run requests (with their per-envoy rows) past the age.
    pub run_requests: u64,
}

impl Pruned {
    /// Rows deleted in all.
    pub fn total(&self) -> u64 {
        self.reports + self.deliveries + self.audit + self.run_requests
    }

    /// Adds another batch's counts.
    pub fn add(&mut self, other: Pruned) {
        self.reports += other.reports;
        self.deliveries += other.deliveries;
        self.audit += other.audit;
        self.run_requests += other.run_requests;
    }
}

/// Run-history operations; every [`Store`](crate::Store) has them.
#[async_trait]
pub trait HistoryStore: Send + Sync {
    /// The reports that pass `filter`, newest first.
    async fn list_reports(&self, filter: &ReportFilter) -> Result<Vec<ReportRecord>, StoreError>;

    /// The report with this id; `None` when there is none (never stored, or
    /// pruned).
    async fn report(&self, id: i64) -> Result<Option<ReportRecord>, StoreError>;

    /// Deletes up to `policy.batch` rows per table that the policy lets go
    /// (see the module docs); call again until a batch deletes nothing.
    async fn prune_batch(&self, policy: &PrunePolicy) -> Result<Pruned, StoreError>;
}

/// Reports past the age, oldest first (`$1` before, `$2` batch).
const PRUNE_REPORTS_BY_AGE: &str = "DELETE FROM reports WHERE id IN \
     (SELECT id FROM reports WHERE received_at < $1 ORDER BY received_at, id LIMIT $2)";

/// Reports beyond each envoy's newest `$1` (`$2` batch).
const PRUNE_REPORTS_BY_COUNT: &str = "DELETE FROM reports WHERE id IN \
     (SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY envoy ORDER BY id DESC) \
     AS position FROM reports) ranked WHERE position > $1 LIMIT $2)";

const PRUNE_DELIVERIES: &str = "DELETE FROM deliveries WHERE id IN \
     (SELECT id FROM deliveries WHERE at < $1 ORDER BY at, id LIMIT $2)";

const PRUNE_AUDIT: &str = "DELETE FROM secret_audit WHERE id IN \
     (SELECT id FROM secret_audit WHERE at < $1 ORDER BY at, id LIMIT $2)";

/// Their per-envoy rows go with them (`ON DELETE CASCADE`).
const PRUNE_RUN_REQUESTS: &str = "DELETE FROM run_requests WHERE id IN \
     (SELECT id FROM run_requests WHERE requested_at < $1 ORDER BY requested_at LIMIT $2)";

macro_rules! impl_history {
    ($store:ty) => {
        #[async_trait]
        impl HistoryStore for $store {
            async fn list_reports(
                &self,
                filter: &ReportFilter,
            ) -> Result<Vec<ReportRecord>, StoreError> {
                let rows = sqlx::query(LIST_REPORTS_SQL)
                    .bind(filter.envoy.as_deref())
                    .bind(filter.failed_only)
                    .bind(filter.since.map(Timestamp::unix_millis))
                    .bind(i64::from(filter.limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(StoreError::query("list reports"))?;
                rows.iter().map(Self::report_from_row).collect()
            }

            async fn report(&self, id: i64) -> Result<Option<ReportRecord>, StoreError> {
                let row = sqlx::query(REPORT_BY_ID_SQL)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::query("read a report"))?;
                row.as_ref().map(Self::report_from_row).transpose()
            }

            async fn prune_batch(&self, policy: &PrunePolicy) -> Result<Pruned, StoreError> {
                let what = "prune history";
                let before = policy.before.unix_millis();
                let batch = i64::from(policy.batch);
                // One batch of one statement; the rows it deleted.
                let by_age = async |sql: &'static str| {
                    sqlx::query(sql)
                        .bind(before)
                        .bind(batch)
                        .execute(&self.pool)
                        .await
                        .map(|done| done.rows_affected())
                        .map_err(StoreError::query(what))
                };
                let aged = by_age(PRUNE_REPORTS_BY_AGE).await?;
                let counted = sqlx::query(PRUNE_REPORTS_BY_COUNT)
                    .bind(i64::from(policy.max_runs))
                    .bind(batch)
                    .execute(&self.pool)
                    .await
                    .map_err(StoreError::query(what))?
                    .rows_affected();
                let deliveries = by_age(PRUNE_DELIVERIES).await?;
                let audit = by_age(PRUNE_AUDIT).await?;
                let run_requests = by_age(PRUNE_RUN_REQUESTS).await?;
                Ok(Pruned {
                    reports: aged + counted,
                    deliveries,
                    audit,
                    run_requests,
                })
            }
        }
    };
}

impl_history!(SqliteStore);
impl_history!(PostgresStore);
