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

use crate::error::StoreError;
use crate::model::{
    AuditEntry, AuditEvent, Backend, CheckinRecord, Delivery, EnvoyAuth, EnvoyRecord, EnvoyStatus,
    ReportRecord, ReportSummary, Timestamp, TokenRejection, Trigger,
};
use crate::postgres::PostgresStore;
use crate::sqlite::SqliteStore;
use crate::store::Store;

/// The envoy columns, in the order `envoy_from_row` expects.
macro_rules! envoy_columns {
    () => {
        "name, status, csr_pem, cert_fingerprint, cert_pem, facts, enrolled_at, approved_at, \
         revoked_at, last_checkin_at, catalog_fingerprint, force_push, last_report_at, \
         last_rotation_lag_ms"
    };
}

macro_rules! report_columns {
    () => {
        "id, envoy, received_at, changed, failed, skipped, unchanged, noop, body"
    };
}

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

            fn report_from_row(
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
                     ON CONFLICT (name) DO UPDATE SET csr_pem = excluded.csr_pem \
                     WHERE envoys.status <> 'revoked'",
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
                     AS queued_triggers FROM envoys e WHERE e.name = $1",
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
                    ))
                };
                let (status, cert_fingerprint, force_push, queued) =
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
                    sqlx::query(
                        "UPDATE envoys SET facts = $2, catalog_fingerprint = $3, \
                         last_checkin_at = $4 WHERE name = $1 \
                         AND (last_checkin_at IS NULL OR last_checkin_at <= $4)",
                    )
                    .bind(&checkin.name)
                    .bind(to_json(&checkin.facts))
                    .bind(checkin.catalog_fingerprint.as_deref())
                    .bind(checkin.at.unix_millis())
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
                    sqlx::query(
                        "INSERT INTO triggers \
                         (envoy, resource, secret_path, queued_at, last_queued_at) \
                         VALUES ($1, $2, $3, $4, $4) \
                         ON CONFLICT (envoy, resource, secret_path) DO UPDATE SET \
                         queued_at = CASE WHEN excluded.queued_at < triggers.queued_at \
                             THEN excluded.queued_at ELSE triggers.queued_at END, \
                         last_queued_at = CASE \
                             WHEN excluded.last_queued_at > triggers.last_queued_at \
                             THEN excluded.last_queued_at ELSE triggers.last_queued_at END, \
                         delivered_at = NULL",
                    )
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
                tx.commit().await.map_err(StoreError::query("store report"))?;
                Ok(id)
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
                let row = sqlx::query(
                    "INSERT INTO secret_versions (path, version, seen_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (path) DO UPDATE SET version = excluded.version, \
                     seen_at = excluded.seen_at \
                     WHERE secret_versions.version <> excluded.version \
                     RETURNING path",
                )
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
                sqlx::query(
                    "INSERT INTO secret_audit (at, actor, path, version, event) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
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
