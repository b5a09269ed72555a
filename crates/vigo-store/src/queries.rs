//! The [`Store`] implementation, written once and expanded for both backends.
//!
//! The SQL is the same on SQLite and PostgreSQL: `$N` placeholders (SQLite
//! accepts them too), `ON CONFLICT` upserts, `RETURNING`, integers for times
//! and booleans bound as `bool`. A macro expands the bodies for each concrete
//! pool type, so each backend gets plain, statically typed sqlx code without
//! the `Any` driver.
//!
//! Concurrency: every check-then-act is one statement (`UPDATE ... WHERE`
//! or `INSERT ... ON CONFLICT`), or a transaction whose first statement
//! writes, so SQLite takes its write lock at once instead of failing to
//! upgrade a read lock.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use vigo_secrets::SecretPath;

use crate::batch::{CatalogSent, EnvoyRotation, RotationClaim, RotationOutcome};
use crate::enrollment::{EnrollmentRecorded, EnrollmentRequest, PendingLimits};
use crate::error::StoreError;
use crate::model::{
    AuditEntry, AuditEvent, Backend, CheckinRecord, Delivery, EnvoyAuth, EnvoyRecord, EnvoyStatus,
    LastRunRecord, ReportRecord, ReportSummary, Timestamp, TokenRejection, Trigger,
};
use crate::postgres::PostgresStore;
use crate::sqlite::SqliteStore;
use crate::store::Store;

/// The envoy columns, in the order `envoy_from_row` expects.
macro_rules! envoy_columns {
    () => {
        "name, status, csr_pem, key_fingerprint, cert_fingerprint, cert_pem, facts, enrolled_at, approved_at, \
         revoked_at, last_checkin_at, catalog_fingerprint, force_push, last_report_at, \
         last_rotation_lag_ms"
    };
}

/// `SET` clauses storing an envoy's last run from the parameters named
/// (when it finished, unix ms; changed, failed, skipped, unchanged): only
/// when it is later than the stored run; a NULL time keeps what is stored.
/// Every expression reads the row as it was before the update.
macro_rules! last_run_set {
    ($at:literal, $changed:literal, $failed:literal, $skipped:literal, $unchanged:literal) => {
        concat!(
            "last_run_changed = CASE WHEN ",
            $at,
            " > COALESCE(last_run_at, -1) THEN ",
            $changed,
            " ELSE last_run_changed END, last_run_failed = CASE WHEN ",
            $at,
            " > COALESCE(last_run_at, -1) THEN ",
            $failed,
            " ELSE last_run_failed END, last_run_skipped = CASE WHEN ",
            $at,
            " > COALESCE(last_run_at, -1) THEN ",
            $skipped,
            " ELSE last_run_skipped END, last_run_unchanged = CASE WHEN ",
            $at,
            " > COALESCE(last_run_at, -1) THEN ",
            $unchanged,
            " ELSE last_run_unchanged END, last_run_at = CASE WHEN ",
            $at,
            " > COALESCE(last_run_at, -1) THEN ",
            $at,
            " ELSE last_run_at END"
        )
    };
}

macro_rules! report_columns {
    () => {
        "id, envoy, received_at, changed, failed, skipped, unchanged, noop, body"
    };
}

/// The run history, newest first (`history.rs`): `$1` envoy or NULL, `$2`
/// failed only, `$3` since (unix ms) or NULL, `$4` limit.
pub(crate) const LIST_REPORTS_SQL: &str = concat!(
    "SELECT ",
    report_columns!(),
    " FROM reports WHERE ($1 IS NULL OR envoy = $1) AND ($2 = FALSE OR failed > 0) \
     AND ($3 IS NULL OR received_at >= $3) ORDER BY id DESC LIMIT $4"
);

/// One report by id (`history.rs`).
pub(crate) const REPORT_BY_ID_SQL: &str =
    concat!("SELECT ", report_columns!(), " FROM reports WHERE id = $1");

/// Claims a secret version: stores it unless it is already stored, and
/// returns a row only when it changed (`$1` path, `$2` version, `$3` time).
const CLAIM_VERSION_SQL: &str = "INSERT INTO secret_versions (path, version, seen_at) VALUES ($1, $2, $3) \
     ON CONFLICT (path) DO UPDATE SET version = excluded.version, \
     seen_at = excluded.seen_at \
     WHERE secret_versions.version <> excluded.version \
     RETURNING path";

/// Appends to the audit log (`$1` time, `$2` actor, `$3` path, `$4`
/// version, `$5` event).
const AUDIT_SQL: &str = "INSERT INTO secret_audit (at, actor, path, version, event) \
     VALUES ($1, $2, $3, $4, $5)";

/// Queues one trigger (`$1` envoy, `$2` resource, `$3` path, `$4` time):
/// a pair queued again keeps its first `queued_at` and is undelivered again.
const QUEUE_TRIGGER_SQL: &str = "INSERT INTO triggers \
     (envoy, resource, secret_path, queued_at, last_queued_at) \
     VALUES ($1, $2, $3, $4, $4) \
     ON CONFLICT (envoy, resource, secret_path) DO UPDATE SET \
     queued_at = CASE WHEN excluded.queued_at < triggers.queued_at \
         THEN excluded.queued_at ELSE triggers.queued_at END, \
     last_queued_at = CASE \
         WHEN excluded.last_queued_at > triggers.last_queued_at \
         THEN excluded.last_queued_at ELSE triggers.last_queued_at END, \
     delivered_at = NULL";

fn to_db_version(version: u64) -> Result<i64, StoreError> {
    i64::try_from(version).map_err(|_| StoreError::OutOfRange {
        what: "secret version",
    })
}

fn from_db_version(version: i64) -> Result<u64, StoreError> {
    u64::try_from(version).map_err(|_| StoreError::Corrupt {
        what: "secret version",
        detail: format!("{version} is negative"),
    })
}

fn from_db_count(count: i64) -> Result<u32, StoreError> {
    u32::try_from(count).map_err(|_| StoreError::Corrupt {
        what: "report count",
        detail: format!("{count} is out of range"),
    })
}

fn parse_path(path: &str) -> Result<SecretPath, StoreError> {
    SecretPath::parse(path).map_err(StoreError::corrupt_path)
}

fn parse_json(text: &str, what: &'static str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|error| StoreError::Corrupt {
        what,
        detail: error.to_string(),
    })
}

fn to_json(value: &serde_json::Value) -> String {
    // Serialising a `Value` cannot fail: its map keys are always strings.
    value.to_string()
}

fn lag_from_millis(millis: Option<i64>) -> Option<Duration> {
    millis.map(|millis| Duration::from_millis(u64::try_from(millis).unwrap_or(0)))
}

fn duration_millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// `(equal, under)`: the audit-log filter for a prefix, `None` for all.
fn prefix_filter(prefix: Option<&str>) -> Option<(String, String)> {
    let prefix = prefix?.trim_end_matches('/');
    (!prefix.is_empty()).then(|| (prefix.to_owned(), format!("{prefix}/")))
}

/// Folds `(resource, path, queued, last_queued, delivered)` rows sorted by
/// resource into one [`Trigger`] per resource.
fn coalesce_triggers(
    rows: Vec<(String, SecretPath, Timestamp, Timestamp, Option<Timestamp>)>,
) -> Vec<Trigger> {
    let mut triggers: Vec<Trigger> = Vec::new();
    for (resource, path, queued_at, last_queued_at, delivered_at) in rows {
        match triggers.last_mut() {
            Some(trigger) if trigger.resource == resource => {
                trigger.secret_paths.push(path);
                trigger.queued_at = trigger.queued_at.min(queued_at);
                trigger.last_queued_at = trigger.last_queued_at.max(last_queued_at);
                trigger.delivered_at = match (trigger.delivered_at, delivered_at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    _ => None,
                };
            }
            _ => triggers.push(Trigger {
                resource,
                secret_paths: vec![path],
                queued_at,
                last_queued_at,
                delivered_at,
            }),
        }
    }
    triggers
}

macro_rules! impl_store {
    ($store:ty, $db:ty, $backend:expr) => {
        impl $store {
            fn envoy_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<EnvoyRecord, StoreError> {
                let decode = StoreError::query("read envoy");
                let get = |row: &<$db as sqlx::Database>::Row| -> Result<_, sqlx::Error> {
                    Ok((
                        row.try_get::<String, _>("name")?,
                        row.try_get::<String, _>("status")?,
                        row.try_get::<Option<String>, _>("csr_pem")?,
                        row.try_get::<Option<String>, _>("key_fingerprint")?,
                        row.try_get::<Option<String>, _>("cert_fingerprint")?,
                        row.try_get::<Option<String>, _>("cert_pem")?,
                        row.try_get::<String, _>("facts")?,
                        row.try_get::<i64, _>("enrolled_at")?,
                        row.try_get::<Option<i64>, _>("approved_at")?,
                        row.try_get::<Option<i64>, _>("revoked_at")?,
                        row.try_get::<Option<i64>, _>("last_checkin_at")?,
                        row.try_get::<Option<String>, _>("catalog_fingerprint")?,
                        row.try_get::<bool, _>("force_push")?,
                        row.try_get::<Option<i64>, _>("last_report_at")?,
                        row.try_get::<Option<i64>, _>("last_rotation_lag_ms")?,
                    ))
                };
                let (
                    name,
                    status,
                    csr_pem,
                    key_fingerprint,
                    cert_fingerprint,
                    cert_pem,
                    facts,
                    enrolled_at,
                    approved_at,
                    revoked_at,
                    last_checkin_at,
                    catalog_fingerprint,
                    force_push,
                    last_report_at,
                    last_rotation_lag_ms,
                ) = get(row).map_err(decode)?;
                let status = status.parse::<EnvoyStatus>().map_err(|detail| {
                    StoreError::Corrupt {
                        what: "envoy status",
                        detail,
                    }
                })?;
                Ok(EnvoyRecord {
                    name,
                    status,
                    csr_pem,
                    key_fingerprint,
                    cert_fingerprint,
                    cert_pem,
                    facts: parse_json(&facts, "envoy facts")?,
                    enrolled_at: Timestamp::from_unix_millis(enrolled_at),
                    approved_at: approved_at.map(Timestamp::from_unix_millis),
                    revoked_at: revoked_at.map(Timestamp::from_unix_millis),
                    last_checkin_at: last_checkin_at.map(Timestamp::from_unix_millis),
                    catalog_fingerprint,
                    force_push,
                    last_report_at: last_report_at.map(Timestamp::from_unix_millis),
                    last_rotation_lag: lag_from_millis(last_rotation_lag_ms),
                })
            }

            pub(crate) fn report_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<ReportRecord, StoreError> {
                let get = |row: &<$db as sqlx::Database>::Row| -> Result<_, sqlx::Error> {
                    Ok((
                        row.try_get::<i64, _>("id")?,
                        row.try_get::<String, _>("envoy")?,
                        row.try_get::<i64, _>("received_at")?,
                        row.try_get::<i64, _>("changed")?,
                        row.try_get::<i64, _>("failed")?,
                        row.try_get::<i64, _>("skipped")?,
                        row.try_get::<i64, _>("unchanged")?,
                        row.try_get::<bool, _>("noop")?,
                        row.try_get::<String, _>("body")?,
                    ))
                };
                let (id, envoy, received_at, changed, failed, skipped, unchanged, noop, body) =
                    get(row).map_err(StoreError::query("read report"))?;
                Ok(ReportRecord {
                    id,
                    envoy,
                    received_at: Timestamp::from_unix_millis(received_at),
                    summary: ReportSummary {
                        changed: from_db_count(changed)?,
                        failed: from_db_count(failed)?,
                        skipped: from_db_count(skipped)?,
                        unchanged: from_db_count(unchanged)?,
                    },
                    noop,
                    body: parse_json(&body, "report body")?,
                })
            }

            /// Why an envoy update matched no row: unknown, or in which state.
            async fn envoy_status(&self, name: &str) -> Result<Option<EnvoyStatus>, StoreError> {
                Ok(self.envoy(name).await?.map(|envoy| envoy.status))
            }
        }

        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> Backend {
                $backend
            }

            async fn close(&self) {
                self.pool.close().await;
            }

            async fn upsert_enrollment_request(
                &self,
                name: &str,
                csr_pem: &str,
                at: Timestamp,
            ) -> Result<EnvoyRecord, StoreError> {
                sqlx::query(
                    "INSERT INTO envoys (name, status, csr_pem, facts, enrolled_at, force_push) \
                     VALUES ($1, 'pending', $2, '{}', $3, FALSE) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .bind(csr_pem)
                .bind(at.unix_millis())
                .execute(&self.pool)
                .await
                .map_err(StoreError::query("record enrollment request"))?;
                self.envoy(name)
                    .await?
                    .ok_or_else(|| StoreError::EnvoyNotFound {
                        name: name.to_owned(),
                    })
            }

            async fn record_enrollment_request(
                &self,
                request: &EnrollmentRequest<'_>,
                limits: Option<&PendingLimits>,
            ) -> Result<EnrollmentRecorded, StoreError> {
                let failed = StoreError::query("record enrollment request");
                let unlimited = limits.is_none();
                let total = limits.map_or(0, |l| i64::from(l.total));
                let per_source = limits.map_or(0, |l| i64::from(l.per_source));
                let window_start = request
                    .at
                    .unix_millis()
                    .saturating_sub(limits.map_or(0, |l| duration_millis(l.window)));
                // One statement: two requests racing for a new name cannot
                // both win, and the caps are checked where the row is made.
                let row = sqlx::query(concat!(
                    "INSERT INTO envoys (name, status, csr_pem, key_fingerprint, request_source, \
                     facts, enrolled_at, force_push) \
                     SELECT $1, 'pending', $2, $3, $4, '{}', $5, FALSE \
                     WHERE $6 OR ( \
                       (SELECT COUNT(*) FROM envoys WHERE status = 'pending') < $7 \
                       AND (SELECT COUNT(*) FROM envoys WHERE status = 'pending' \
                            AND request_source = $4 AND enrolled_at > $8) < $9) \
                     ON CONFLICT (name) DO NOTHING RETURNING ",
                    envoy_columns!()
                ))
                .bind(request.name)
                .bind(request.csr_pem)
                .bind(request.key_fingerprint)
                .bind(request.source)
                .bind(request.at.unix_millis())
                .bind(unlimited)
                .bind(total)
                .bind(window_start)
                .bind(per_source)
                .fetch_optional(&self.pool)
                .await
                .map_err(failed)?;
                if let Some(row) = row {
                    return Ok(EnrollmentRecorded::Created(Self::envoy_from_row(&row)?));
                }
                if let Some(existing) = self.envoy(request.name).await? {
                    return Ok(EnrollmentRecorded::Existing(existing));
                }
                let pending: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM envoys WHERE status = 'pending'")
                        .fetch_one(&self.pool)
                        .await
                        .map_err(StoreError::query("count pending envoys"))?;
                Ok(if pending >= total {
                    EnrollmentRecorded::TotalLimit
                } else {
                    EnrollmentRecorded::SourceLimit
                })
            }

            async fn expire_pending(&self, before: Timestamp) -> Result<Vec<String>, StoreError> {
                let failed = StoreError::query("expire pending envoys");
                let mut tx = self.pool.begin().await.map_err(failed)?;
                let names: Vec<String> = sqlx::query_scalar(
                    "DELETE FROM envoys WHERE status = 'pending' AND enrolled_at < $1 \
                     RETURNING name",
                )
                .bind(before.unix_millis())
                .fetch_all(&mut *tx)
                .await
                .map_err(StoreError::query("expire pending envoys"))?;
                for name in &names {
                    sqlx::query("DELETE FROM triggers WHERE envoy = $1")
                        .bind(name)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::query("expire pending envoys"))?;
                }
                tx.commit()
                    .await
                    .map_err(StoreError::query("expire pending envoys"))?;
                Ok(names)
            }

            async fn remove_envoy(&self, name: &str) -> Result<Vec<String>, StoreError> {
                let failed = StoreError::query("remove envoy");
                let mut tx = self.pool.begin().await.map_err(failed)?;
                // Deleting first takes SQLite's write lock at once.
                let mut names: Vec<String> = sqlx::query_scalar(
                    "DELETE FROM envoys WHERE lower(name) = $1 AND status <> 'approved' \
                     RETURNING name",
                )
                .bind(name)
                .fetch_all(&mut *tx)
                .await
                .map_err(StoreError::query("remove envoy"))?;
                for removed in &names {
                    sqlx::query("DELETE FROM triggers WHERE envoy = $1")
                        .bind(removed)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::query("remove envoy"))?;
                }
                tx.commit().await.map_err(StoreError::query("remove envoy"))?;
                if names.is_empty() {
                    return Err(match self.envoy_status(name).await? {
                        Some(_) => StoreError::EnvoyApproved {
                            name: name.to_owned(),
                        },
                        None => StoreError::EnvoyNotFound {
                            name: name.to_owned(),
                        },
                    });
                }
                names.sort();
                Ok(names)
            }

            async fn envoy(&self, name: &str) -> Result<Option<EnvoyRecord>, StoreError> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    envoy_columns!(),
                    " FROM envoys WHERE name = $1"
                ))
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::query("read envoy"))?;
                row.as_ref().map(Self::envoy_from_row).transpose()
            }

            async fn envoy_auth(&self, name: &str) -> Result<Option<EnvoyAuth>, StoreError> {
                let row = sqlx::query(
                    "SELECT status, cert_fingerprint, force_push, \
                     (SELECT COUNT(DISTINCT resource) FROM triggers t WHERE t.envoy = e.name) \
                     AS queued_triggers, EXISTS (SELECT 1 FROM run_request_envoys r \
                     WHERE r.envoy = e.name AND r.delivered_at IS NULL) AS run_pending \
                     FROM envoys e WHERE e.name = $1",
                )
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::query("read envoy"))?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let get = || -> Result<_, sqlx::Error> {
                    Ok((
                        row.try_get::<String, _>("status")?,
                        row.try_get::<Option<String>, _>("cert_fingerprint")?,
                        row.try_get::<bool, _>("force_push")?,
                        row.try_get::<i64, _>("queued_triggers")?,
                        row.try_get::<bool, _>("run_pending")?,
                    ))
                };
                let (status, cert_fingerprint, force_push, queued, run_pending) =
                    get().map_err(StoreError::query("read envoy"))?;
                let status = status.parse::<EnvoyStatus>().map_err(|detail| {
                    StoreError::Corrupt {
                        what: "envoy status",
                        detail,
                    }
                })?;
                Ok(Some(EnvoyAuth {
                    name: name.to_owned(),
                    status,
                    cert_fingerprint,
                    force_push,
                    queued_triggers: from_db_count(queued)?,
                    run_pending,
                }))
            }

            async fn list_envoys(&self) -> Result<Vec<EnvoyRecord>, StoreError> {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    envoy_columns!(),
                    " FROM envoys ORDER BY name"
                ))
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::query("list envoys"))?;
                rows.iter().map(Self::envoy_from_row).collect()
            }

            async fn approve_envoy(
                &self,
                name: &str,
                cert_pem: &str,
                cert_fingerprint: &str,
                at: Timestamp,
            ) -> Result<EnvoyRecord, StoreError> {
                let row = sqlx::query(concat!(
                    "UPDATE envoys SET status = 'approved', cert_pem = $2, \
                     cert_fingerprint = $3, approved_at = $4 \
                     WHERE name = $1 AND status <> 'revoked' RETURNING ",
                    envoy_columns!()
                ))
                .bind(name)
                .bind(cert_pem)
                .bind(cert_fingerprint)
                .bind(at.unix_millis())
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::query("approve envoy"))?;
                match row {
                    Some(row) => Self::envoy_from_row(&row),
                    None => Err(match self.envoy_status(name).await? {
                        Some(_) => StoreError::EnvoyRevoked {
                            name: name.to_owned(),
                        },
                        None => StoreError::EnvoyNotFound {
                            name: name.to_owned(),
                        },
                    }),
                }
            }

            async fn revoke_envoy(&self, name: &str, at: Timestamp) -> Result<(), StoreError> {
                let done = sqlx::query(
                    "UPDATE envoys SET status = 'revoked', force_push = FALSE, \
                     revoked_at = COALESCE(revoked_at, $2) WHERE name = $1",
                )
                .bind(name)
                .bind(at.unix_millis())
                .execute(&self.pool)
                .await
                .map_err(StoreError::query("revoke envoy"))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::EnvoyNotFound {
                        name: name.to_owned(),
                    });
                }
                Ok(())
            }

            async fn set_envoy_certificate(
                &self,
                name: &str,
                cert_pem: &str,
                cert_fingerprint: &str,
            ) -> Result<(), StoreError> {
                let done = sqlx::query(
                    "UPDATE envoys SET cert_pem = $2, cert_fingerprint = $3 \
                     WHERE name = $1 AND status = 'approved'",
                )
                .bind(name)
                .bind(cert_pem)
                .bind(cert_fingerprint)
                .execute(&self.pool)
                .await
                .map_err(StoreError::query("store envoy certificate"))?;
                if done.rows_affected() > 0 {
                    return Ok(());
                }
                let name = name.to_owned();
                Err(match self.envoy_status(&name).await? {
                    None => StoreError::EnvoyNotFound { name },
                    Some(EnvoyStatus::Revoked) => StoreError::EnvoyRevoked { name },
                    Some(_) => StoreError::EnvoyNotApproved { name },
                })
            }

            async fn record_checkin(
                &self,
                name: &str,
                facts: &serde_json::Value,
                catalog_fingerprint: Option<&str>,
                at: Timestamp,
            ) -> Result<(), StoreError> {
                let done = sqlx::query(
                    "UPDATE envoys SET facts = $2, catalog_fingerprint = $3, \
                     last_checkin_at = $4 WHERE name = $1",
                )
                .bind(name)
                .bind(to_json(facts))
                .bind(catalog_fingerprint)
                .bind(at.unix_millis())
                .execute(&self.pool)
                .await
                .map_err(StoreError::query("record check-in"))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::EnvoyNotFound {
                        name: name.to_owned(),
                    });
                }
                Ok(())
            }

            async fn record_checkins(&self, checkins: &[CheckinRecord]) -> Result<(), StoreError> {
                if checkins.is_empty() {
                    return Ok(());
                }
                let failed = StoreError::query("record check-ins");
                let mut tx = self.pool.begin().await.map_err(failed)?;
                for checkin in checkins {
                    // The last run rides along in the same statement: kept
                    // only when later than the one stored.
                    let run = checkin.last_run.as_ref();
                    let count = |f: fn(&ReportSummary) -> u32| run.map(|r| i64::from(f(&r.summary)));
                    sqlx::query(concat!(
                        "UPDATE envoys SET facts = $2, catalog_fingerprint = $3, \
                         last_checkin_at = $4, ",
                        last_run_set!("$5", "$6", "$7", "$8", "$9"),
                        " WHERE name = $1 \
                         AND (last_checkin_at IS NULL OR last_checkin_at <= $4)"
                    ))
                    .bind(&checkin.name)
                    .bind(to_json(&checkin.facts))
                    .bind(checkin.catalog_fingerprint.as_deref())
                    .bind(checkin.at.unix_millis())
                    .bind(run.map(|r| r.at.unix_millis()))
                    .bind(count(|s| s.changed))
                    .bind(count(|s| s.failed))
                    .bind(count(|s| s.skipped))
                    .bind(count(|s| s.unchanged))
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::query("record check-ins"))?;
                }
                tx.commit().await.map_err(StoreError::query("record check-ins"))
            }

            async fn set_force_push(&self, names: &[&str], on: bool) -> Result<u64, StoreError> {
                if names.is_empty() {
                    return Ok(0);
                }
                let mut tx = self.pool.begin().await.map_err(StoreError::query("set force-push"))?;
                let mut updated = 0;
                for name in names {
                    let done = sqlx::query("UPDATE envoys SET force_push = $2 WHERE name = $1")
                        .bind(*name)
                        .bind(on)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::query("set force-push"))?;
                    updated += done.rows_affected();
                }
                if on {
                    // Delivered at commit: other replicas wake these waits.
                    <$db as crate::wake::NotifyInTx>::notify_wake(&mut tx, names).await?;
                }
                tx.commit().await.map_err(StoreError::query("set force-push"))?;
                Ok(updated)
            }

            async fn force_push(&self, name: &str) -> Result<bool, StoreError> {
                let on: Option<bool> =
                    sqlx::query_scalar("SELECT force_push FROM envoys WHERE name = $1")
                        .bind(name)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(StoreError::query("read force-push"))?;
                Ok(on.unwrap_or(false))
            }

            async fn create_token(
                &self,
                token_hash: &str,
                created_at: Timestamp,
                expires_at: Timestamp,
            ) -> Result<(), StoreError> {
                let done = sqlx::query(
                    "INSERT INTO enrollment_tokens (token_hash, created_at, expires_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (token_hash) DO NOTHING",
                )
                .bind(token_hash)
                .bind(created_at.unix_millis())
                .bind(expires_at.unix_millis())
                .execute(&self.pool)
                .await
                .map_err(StoreError::query("create enrollment token"))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::TokenExists);
                }
                Ok(())
            }

            async fn consume_token(
                &self,
                token_hash: &str,
                envoy: &str,
                now: Timestamp,
            ) -> Result<(), StoreError> {
                let done = sqlx::query(
                    "UPDATE enrollment_tokens SET used_at = $3, used_by = $2 \
                     WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $3",
                )
                .bind(token_hash)
                .bind(envoy)
                .bind(now.unix_millis())
                .execute(&self.pool)
                .await
                .map_err(StoreError::query("use enrollment token"))?;
                if done.rows_affected() == 1 {
                    return Ok(());
                }
                let row = sqlx::query(
                    "SELECT used_at, expires_at FROM enrollment_tokens WHERE token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::query("read enrollment token"))?;
                let reason = match row {
                    None => TokenRejection::Unknown,
                    Some(row) => {
                        let used_at: Option<i64> = row
                            .try_get("used_at")
                            .map_err(StoreError::query("read enrollment token"))?;
                        if used_at.is_some() {
                            TokenRejection::AlreadyUsed
                        } else {
                            TokenRejection::Expired
                        }
                    }
                };
                Err(StoreError::TokenRejected { reason })
            }

            async fn queue_triggers(
                &self,
                envoy: &str,
                triggers: &[(&str, &SecretPath)],
                at: Timestamp,
            ) -> Result<(), StoreError> {
                if triggers.is_empty() {
                    return Ok(());
                }
                let mut tx = self.pool.begin().await.map_err(StoreError::query("queue triggers"))?;
                for (resource, path) in triggers {
                    sqlx::query(QUEUE_TRIGGER_SQL)
                    .bind(envoy)
                    .bind(*resource)
                    .bind(path.as_str())
                    .bind(at.unix_millis())
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::query("queue triggers"))?;
                }
                tx.commit().await.map_err(StoreError::query("queue triggers"))
            }

            async fn triggers_for(&self, envoy: &str) -> Result<Vec<Trigger>, StoreError> {
                let rows = sqlx::query(
                    "SELECT resource, secret_path, queued_at, last_queued_at, delivered_at \
                     FROM triggers WHERE envoy = $1 ORDER BY resource, secret_path",
                )
                .bind(envoy)
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::query("read triggers"))?;
                let mut decoded = Vec::with_capacity(rows.len());
                for row in &rows {
                    let get = || -> Result<_, sqlx::Error> {
                        Ok((
                            row.try_get::<String, _>("resource")?,
                            row.try_get::<String, _>("secret_path")?,
                            row.try_get::<i64, _>("queued_at")?,
                            row.try_get::<i64, _>("last_queued_at")?,
                            row.try_get::<Option<i64>, _>("delivered_at")?,
                        ))
                    };
                    let (resource, path, queued, last_queued, delivered) =
                        get().map_err(StoreError::query("read triggers"))?;
                    decoded.push((
                        resource,
                        parse_path(&path)?,
                        Timestamp::from_unix_millis(queued),
                        Timestamp::from_unix_millis(last_queued),
                        delivered.map(Timestamp::from_unix_millis),
                    ));
                }
                Ok(coalesce_triggers(decoded))
            }

            async fn mark_triggers_delivered(
                &self,
                envoy: &str,
                resources: &[&str],
                at: Timestamp,
            ) -> Result<(), StoreError> {
                if resources.is_empty() {
                    return Ok(());
                }
                let mut tx = self
                    .pool
                    .begin()
                    .await
                    .map_err(StoreError::query("mark triggers delivered"))?;
                for resource in resources {
                    sqlx::query(
                        "UPDATE triggers SET delivered_at = $3 \
                         WHERE envoy = $1 AND resource = $2 AND last_queued_at <= $3",
                    )
                    .bind(envoy)
                    .bind(*resource)
                    .bind(at.unix_millis())
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::query("mark triggers delivered"))?;
                }
                tx.commit().await.map_err(StoreError::query("mark triggers delivered"))
            }

            async fn clear_triggers(
                &self,
                envoy: &str,
                resources: &[&str],
                at: Timestamp,
            ) -> Result<Option<Duration>, StoreError> {
                if resources.is_empty() {
                    return Ok(None);
                }
                let mut tx = self.pool.begin().await.map_err(StoreError::query("clear triggers"))?;
                let mut earliest: Option<i64> = None;
                for resource in resources {
                    let queued: Vec<i64> = sqlx::query_scalar(
                        "DELETE FROM triggers WHERE envoy = $1 AND resource = $2 \
                         AND delivered_at IS NOT NULL RETURNING queued_at",
                    )
                    .bind(envoy)
                    .bind(*resource)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(StoreError::query("clear triggers"))?;
                    earliest = queued.into_iter().chain(earliest).min();
                }
                let lag = earliest.map(|queued| {
                    at.saturating_duration_since(Timestamp::from_unix_millis(queued))
                });
                if let Some(lag) = lag {
                    sqlx::query("UPDATE envoys SET last_rotation_lag_ms = $2 WHERE name = $1")
                        .bind(envoy)
                        .bind(duration_millis(lag))
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::query("clear triggers"))?;
                }
                tx.commit().await.map_err(StoreError::query("clear triggers"))?;
                Ok(lag)
            }

            async fn insert_report(
                &self,
                envoy: &str,
                received_at: Timestamp,
                summary: ReportSummary,
                noop: bool,
                body: &serde_json::Value,
            ) -> Result<i64, StoreError> {
                let mut tx = self.pool.begin().await.map_err(StoreError::query("store report"))?;
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO reports \
                     (envoy, received_at, changed, failed, skipped, unchanged, noop, body) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                )
                .bind(envoy)
                .bind(received_at.unix_millis())
                .bind(i64::from(summary.changed))
                .bind(i64::from(summary.failed))
                .bind(i64::from(summary.skipped))
                .bind(i64::from(summary.unchanged))
                .bind(noop)
                .bind(to_json(body))
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::query("store report"))?;
                sqlx::query("UPDATE envoys SET last_report_at = $2 WHERE name = $1")
                    .bind(envoy)
                    .bind(received_at.unix_millis())
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::query("store report"))?;
                if !noop {
                    // A real run's report is also the envoy's last run.
                    sqlx::query(concat!(
                        "UPDATE envoys SET ",
                        last_run_set!("$2", "$3", "$4", "$5", "$6"),
                        " WHERE name = $1"
                    ))
                        .bind(envoy)
                        .bind(received_at.unix_millis())
                        .bind(i64::from(summary.changed))
                        .bind(i64::from(summary.failed))
                        .bind(i64::from(summary.skipped))
                        .bind(i64::from(summary.unchanged))
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::query("store report"))?;
                }
                tx.commit().await.map_err(StoreError::query("store report"))?;
                Ok(id)
            }

            async fn last_run(&self, envoy: &str) -> Result<Option<LastRunRecord>, StoreError> {
                let row: Option<(Option<i64>, Option<i64>, Option<i64>, Option<i64>, Option<i64>)> =
                    sqlx::query_as(
                        "SELECT last_run_at, last_run_changed, last_run_failed, \
                         last_run_skipped, last_run_unchanged FROM envoys WHERE name = $1",
                    )
                    .bind(envoy)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::query("read last run"))?;
                let Some((Some(at), changed, failed, skipped, unchanged)) = row else {
                    return Ok(None);
                };
                let count = |n: Option<i64>| from_db_count(n.unwrap_or(0));
                Ok(Some(LastRunRecord {
                    at: Timestamp::from_unix_millis(at),
                    summary: ReportSummary {
                        changed: count(changed)?,
                        failed: count(failed)?,
                        skipped: count(skipped)?,
                        unchanged: count(unchanged)?,
                    },
                }))
            }

            async fn last_report(&self, envoy: &str) -> Result<Option<ReportRecord>, StoreError> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    report_columns!(),
                    " FROM reports WHERE envoy = $1 ORDER BY id DESC LIMIT 1"
                ))
                .bind(envoy)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::query("read last report"))?;
                row.as_ref().map(Self::report_from_row).transpose()
            }

            async fn secret_versions(&self) -> Result<BTreeMap<SecretPath, u64>, StoreError> {
                let rows: Vec<(String, i64)> =
                    sqlx::query_as("SELECT path, version FROM secret_versions")
                        .fetch_all(&self.pool)
                        .await
                        .map_err(StoreError::query("read secret versions"))?;
                rows.into_iter()
                    .map(|(path, version)| Ok((parse_path(&path)?, from_db_version(version)?)))
                    .collect()
            }

            async fn set_secret_version(
                &self,
                path: &SecretPath,
                version: u64,
                at: Timestamp,
            ) -> Result<bool, StoreError> {
                let row = sqlx::query(CLAIM_VERSION_SQL)
                .bind(path.as_str())
                .bind(to_db_version(version)?)
                .bind(at.unix_millis())
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::query("store secret version"))?;
                Ok(row.is_some())
            }

            async fn remove_secret_version(&self, path: &SecretPath) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM secret_versions WHERE path = $1")
                    .bind(path.as_str())
                    .execute(&self.pool)
                    .await
                    .map_err(StoreError::query("remove secret version"))?;
                Ok(())
            }

            async fn record_secret_change(
                &self,
                actor: &str,
                path: &SecretPath,
                version: u64,
                event: AuditEvent,
                at: Timestamp,
            ) -> Result<(), StoreError> {
                sqlx::query(AUDIT_SQL)
                .bind(at.unix_millis())
                .bind(actor)
                .bind(path.as_str())
                .bind(to_db_version(version)?)
                .bind(event.as_str())
                .execute(&self.pool)
                .await
                .map_err(StoreError::query("append to secret audit log"))?;
                Ok(())
            }

            async fn secret_history(
                &self,
                prefix: Option<&str>,
            ) -> Result<Vec<AuditEntry>, StoreError> {
                let (equal, under) = prefix_filter(prefix).unzip();
                let rows: Vec<(i64, i64, String, String, i64, String)> = sqlx::query_as(
                    "SELECT id, at, actor, path, version, event FROM secret_audit \
                     WHERE $1 IS NULL OR path = $1 OR substr(path, 1, length($2)) = $2 \
                     ORDER BY id",
                )
                .bind(equal)
                .bind(under)
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::query("read secret audit log"))?;
                rows.into_iter()
                    .map(|(id, at, actor, path, version, event)| {
                        Ok(AuditEntry {
                            id,
                            at: Timestamp::from_unix_millis(at),
                            actor,
                            path: parse_path(&path)?,
                            version: from_db_version(version)?,
                            event: event.parse().map_err(|detail| StoreError::Corrupt {
                                what: "audit event",
                                detail,
                            })?,
                        })
                    })
                    .collect()
            }

            async fn record_delivery(
                &self,
                envoy: &str,
                path: &SecretPath,
                version: u64,
                at: Timestamp,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO deliveries (at, envoy, path, version) VALUES ($1, $2, $3, $4)",
                )
                .bind(at.unix_millis())
                .bind(envoy)
                .bind(path.as_str())
                .bind(to_db_version(version)?)
                .execute(&self.pool)
                .await
                .map_err(StoreError::query("record secret delivery"))?;
                Ok(())
            }

            async fn deliveries(
                &self,
                envoy: Option<&str>,
                path: Option<&SecretPath>,
            ) -> Result<Vec<Delivery>, StoreError> {
                let rows: Vec<(i64, i64, String, String, i64)> = sqlx::query_as(
                    "SELECT id, at, envoy, path, version FROM deliveries \
                     WHERE ($1 IS NULL OR envoy = $1) AND ($2 IS NULL OR path = $2) \
                     ORDER BY id",
                )
                .bind(envoy)
                .bind(path.map(SecretPath::as_str))
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::query("read secret deliveries"))?;
                rows.into_iter()
                    .map(|(id, at, envoy, path, version)| {
                        Ok(Delivery {
                            id,
                            at: Timestamp::from_unix_millis(at),
                            envoy,
                            path: parse_path(&path)?,
                            version: from_db_version(version)?,
                        })
                    })
                    .collect()
            }

            async fn commit_rotation(
                &self,
                claims: &[RotationClaim],
                envoys: &[EnvoyRotation],
                at: Timestamp,
            ) -> Result<RotationOutcome, StoreError> {
                let failed = StoreError::query("commit rotation");
                let mut outcome = RotationOutcome::default();
                if claims.is_empty() {
                    return Ok(outcome);
                }
                // Claims in path order, envoys in name order: two replicas
                // committing at once take their row locks in the same order.
                let mut claims: Vec<&RotationClaim> = claims.iter().collect();
                claims.sort_by(|a, b| a.path.cmp(&b.path));
                let mut envoys: Vec<&EnvoyRotation> = envoys.iter().collect();
                envoys.sort_by(|a, b| a.envoy.cmp(&b.envoy));

                let mut tx = self.pool.begin().await.map_err(failed)?;
                for claim in claims {
                    let (claimed, version, event) = match claim.version {
                        Some(version) => {
                            let row = sqlx::query(CLAIM_VERSION_SQL)
                                .bind(claim.path.as_str())
                                .bind(to_db_version(version)?)
                                .bind(at.unix_millis())
                                .fetch_optional(&mut *tx)
                                .await
                                .map_err(StoreError::query("commit rotation"))?;
                            (row.is_some(), version, AuditEvent::Changed)
                        }
                        None => {
                            sqlx::query("DELETE FROM secret_versions WHERE path = $1")
                                .bind(claim.path.as_str())
                                .execute(&mut *tx)
                                .await
                                .map_err(StoreError::query("commit rotation"))?;
                            (true, 0, AuditEvent::Deleted)
                        }
                    };
                    if !claimed {
                        continue;
                    }
                    sqlx::query(AUDIT_SQL)
                        .bind(at.unix_millis())
                        .bind(claim.actor.as_str())
                        .bind(claim.path.as_str())
                        .bind(to_db_version(version)?)
                        .bind(event.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::query("commit rotation"))?;
                    outcome.claimed.insert(claim.path.clone());
                }
                crate::fault::point("store.rotation.after_claim").await?;
                if outcome.claimed.is_empty() {
                    tx.commit().await.map_err(StoreError::query("commit rotation"))?;
                    return Ok(outcome);
                }
                for envoy in envoys {
                    if !envoy.references.iter().any(|p| outcome.claimed.contains(p)) {
                        continue;
                    }
                    for (resource, path) in &envoy.triggers {
                        if !outcome.claimed.contains(path) {
                            continue;
                        }
                        sqlx::query(QUEUE_TRIGGER_SQL)
                            .bind(envoy.envoy.as_str())
                            .bind(resource.as_str())
                            .bind(path.as_str())
                            .bind(at.unix_millis())
                            .execute(&mut *tx)
                            .await
                            .map_err(StoreError::query("commit rotation"))?;
                        outcome.triggers += 1;
                    }
                    outcome.envoys.push(envoy.envoy.clone());
                }
                crate::fault::point("store.rotation.after_triggers").await?;
                for name in &outcome.envoys {
                    sqlx::query("UPDATE envoys SET force_push = TRUE WHERE name = $1")
                        .bind(name.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::query("commit rotation"))?;
                }
                crate::fault::point("store.rotation.after_force_push").await?;
                let woken: Vec<&str> = outcome.envoys.iter().map(String::as_str).collect();
                // Delivered at commit: other replicas wake these waits.
                <$db as crate::wake::NotifyInTx>::notify_wake(&mut tx, &woken).await?;
                tx.commit().await.map_err(StoreError::query("commit rotation"))?;
                Ok(outcome)
            }

            async fn record_catalog_sent(&self, sent: &CatalogSent) -> Result<(), StoreError> {
                let checkin = &sent.checkin;
                let name = checkin.name.as_str();
                let at = checkin.at.unix_millis();
                let mut tx = self
                    .pool
                    .begin()
                    .await
                    .map_err(StoreError::query("record catalog sent"))?;
                // The check-in first: a write, so SQLite takes its write lock
                // at once, and it tells whether the envoy exists.
                let run = checkin.last_run.as_ref();
                let count = |f: fn(&ReportSummary) -> u32| run.map(|r| i64::from(f(&r.summary)));
                let done = sqlx::query(concat!(
                    "UPDATE envoys SET facts = $2, catalog_fingerprint = $3, \
                     last_checkin_at = $4, ",
                    last_run_set!("$5", "$6", "$7", "$8", "$9"),
                    " WHERE name = $1"
                ))
                .bind(name)
                .bind(to_json(&checkin.facts))
                .bind(checkin.catalog_fingerprint.as_deref())
                .bind(at)
                .bind(run.map(|r| r.at.unix_millis()))
                .bind(count(|s| s.changed))
                .bind(count(|s| s.failed))
                .bind(count(|s| s.skipped))
                .bind(count(|s| s.unchanged))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query("record catalog sent"))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::EnvoyNotFound {
                        name: name.to_owned(),
                    });
                }
                for resource in &sent.delivered {
                    sqlx::query(
                        "UPDATE triggers SET delivered_at = $3 \
                         WHERE envoy = $1 AND resource = $2 AND last_queued_at <= $3",
                    )
                    .bind(name)
                    .bind(resource.as_str())
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::query("record catalog sent"))?;
                }
                crate::fault::point("store.checkin.after_delivered").await?;
                for resource in &sent.dropped {
                    sqlx::query(
                        "DELETE FROM triggers \
                         WHERE envoy = $1 AND resource = $2 AND last_queued_at <= $3",
                    )
                    .bind(name)
                    .bind(resource.as_str())
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::query("record catalog sent"))?;
                }
                if sent.clear_force_push {
                    sqlx::query("UPDATE envoys SET force_push = FALSE WHERE name = $1")
                        .bind(name)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::query("record catalog sent"))?;
                }
                crate::fault::point("store.checkin.after_force_push").await?;
                for (path, version) in &sent.deliveries {
                    sqlx::query(
                        "INSERT INTO deliveries (at, envoy, path, version) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(at)
                    .bind(name)
                    .bind(path.as_str())
                    .bind(to_db_version(*version)?)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::query("record catalog sent"))?;
                }
                crate::fault::point("store.checkin.after_deliveries").await?;
                tx.commit()
                    .await
                    .map_err(StoreError::query("record catalog sent"))
            }

            async fn checkin_due(&self, name: &str) -> Result<bool, StoreError> {
                let due: Option<bool> = sqlx::query_scalar(
                    "SELECT (e.status <> 'approved' OR e.force_push = TRUE OR EXISTS \
                     (SELECT 1 FROM triggers t WHERE t.envoy = e.name AND t.delivered_at IS NULL) \
                     OR EXISTS (SELECT 1 FROM run_request_envoys r \
                     WHERE r.envoy = e.name AND r.delivered_at IS NULL)) \
                     AS due FROM envoys e WHERE e.name = $1",
                )
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::query("read whether an envoy is due"))?;
                // Removed meanwhile: its next request learns it.
                Ok(due.unwrap_or(true))
            }

            async fn checkin_due_envoys(&self) -> Result<Vec<String>, StoreError> {
                sqlx::query_scalar(
                    "SELECT name FROM envoys WHERE force_push = TRUE OR status <> 'approved' \
                     UNION SELECT envoy FROM triggers WHERE delivered_at IS NULL \
                     UNION SELECT envoy FROM run_request_envoys WHERE delivered_at IS NULL",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::query("list the envoys due to check in"))
            }

            async fn notify_wake(&self, names: &[&str]) -> Result<(), StoreError> {
                self.send_wake(names).await
            }

            async fn wake_listener(
                &self,
            ) -> Result<Option<crate::wake::WakeListener>, StoreError> {
                self.listen_wake().await
            }

            async fn queued_trigger_counts(&self) -> Result<Vec<(String, u32)>, StoreError> {
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT e.name, \
                     (SELECT COUNT(DISTINCT resource) FROM triggers t WHERE t.envoy = e.name) \
                     FROM envoys e WHERE e.status <> 'revoked' ORDER BY e.name",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::query("count queued triggers"))?;
                rows.into_iter()
                    .map(|(name, count)| Ok((name, from_db_count(count)?)))
                    .collect()
            }
        }
    };
}

impl_store!(SqliteStore, sqlx::Sqlite, Backend::Sqlite);
impl_store!(PostgresStore, sqlx::Postgres, Backend::Postgres);

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> SecretPath {
        SecretPath::parse(text).expect("valid path")
    }

    #[test]
    fn triggers_coalesce_per_resource() {
        let t = Timestamp::from_unix_millis;
        let rows = vec![
            ("a".to_owned(), path("x/one"), t(30), t(30), Some(t(40))),
            ("a".to_owned(), path("x/two"), t(10), t(50), None),
            ("b".to_owned(), path("x/one"), t(20), t(20), Some(t(25))),
            ("b".to_owned(), path("x/two"), t(22), t(22), Some(t(24))),
        ];
        let triggers = coalesce_triggers(rows);
        assert_eq!(triggers.len(), 2);
        assert_eq!(triggers[0].secret_paths, vec![path("x/one"), path("x/two")]);
        assert_eq!(
            (triggers[0].queued_at, triggers[0].last_queued_at),
            (t(10), t(50))
        );
        assert_eq!(triggers[0].delivered_at, None);
        assert_eq!(triggers[1].delivered_at, Some(t(24)));
    }

    #[test]
    fn prefix_filter_is_segment_wise() {
        assert_eq!(prefix_filter(None), None);
        assert_eq!(prefix_filter(Some("/")), None);
        assert_eq!(
            prefix_filter(Some("vigo/db/")),
            Some(("vigo/db".to_owned(), "vigo/db/".to_owned()))
        );
    }
}
