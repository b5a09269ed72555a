//! The admin routes for run history (bearer token, `vigocli reports`):
//!
//! - `GET /v1/admin/reports?envoy=&failed=&since=&limit=` → `Vec<`[`ReportEntry`]`>`,
//!   newest first; `since` is a duration back from now (`1h`, `2d`) or an
//!   RFC 3339 time, `failed=true` keeps runs with a failed resource,
//!   `limit` defaults to [`DEFAULT_LIMIT`] (at most [`MAX_LIMIT`]).
//! - `GET /v1/admin/reports/{id}` → [`ReportDetail`]
//!
//! Reports are stored as the envoy sent them, already scrubbed of every
//! secret value its catalog carried; nothing here adds any.

use std::time::SystemTime;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use vigo_proto::Report;
use vigo_proto::admin::{ReportDetail, ReportEntry};
use vigo_secrets::EnvoyName;
use vigo_store::{ReportFilter, ReportRecord, Timestamp};

use super::{Admin, rfc3339};
use crate::{AppError, AppState};

/// Reports listed when the request names no limit.
pub(crate) const DEFAULT_LIMIT: u32 = 100;

/// The most reports one request lists.
pub(crate) const MAX_LIMIT: u32 = 1_000;

/// The query of `GET /v1/admin/reports`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportQuery {
    envoy: Option<String>,
    failed: Option<bool>,
    since: Option<String>,
    limit: Option<u32>,
}

/// `GET /v1/admin/reports`.
pub(crate) async fn list(
    _: Admin,
    State(state): State<AppState>,
    Query(query): Query<ReportQuery>,
) -> Result<Json<Vec<ReportEntry>>, AppError> {
    let filter = filter(&query, SystemTime::now())?;
    let reports = state.store().list_reports(&filter).await?;
    Ok(Json(
        reports
            .iter()
            .map(|r| entry(r, stored_report(r).as_ref()))
            .collect(),
    ))
}

/// `GET /v1/admin/reports/{id}`.
pub(crate) async fn show(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ReportDetail>, AppError> {
    detail(&state, &id).await.map(Json)
}

/// The newest `limit` reports of `envoy`, as `vigocli reports ENVOY` lists
/// them (the dashboard's envoy page).
pub(crate) async fn of_envoy(
    state: &AppState,
    envoy: &str,
    limit: u32,
) -> Result<Vec<ReportEntry>, AppError> {
    let filter = ReportFilter {
        envoy: Some(envoy.to_owned()),
        failed_only: false,
        since: None,
        limit,
    };
    let reports = state.store().list_reports(&filter).await?;
    Ok(reports
        .iter()
        .map(|r| entry(r, stored_report(r).as_ref()))
        .collect())
}

/// Report `id` (as written in a URL) with every resource's outcome; 400
/// for an id that is not a number, 404 for an unknown or pruned one.
pub(crate) async fn detail(state: &AppState, id: &str) -> Result<ReportDetail, AppError> {
    let id: i64 = id.parse().map_err(|_| {
        AppError::BadRequest(format!(
            "report id '{id}' is not a number; `vigocli reports` lists the ids"
        ))
    })?;
    let record = state.store().report(id).await?.ok_or_else(|| {
        AppError::NotFound(format!(
            "no report {id} (never stored, or pruned); `vigocli reports` lists the stored ones"
        ))
    })?;
    let report = stored_report(&record);
    Ok(ReportDetail {
        entry: entry(&record, report.as_ref()),
        resources: report.map(|r| r.resources).unwrap_or_default(),
    })
}

/// The store filter a query asks for, `since` counted back from `now`.
fn filter(query: &ReportQuery, now: SystemTime) -> Result<ReportFilter, AppError> {
    let envoy = query
        .envoy
        .as_deref()
        .map(|name| {
            EnvoyName::parse(name)
                .map(|n| n.as_str().to_owned())
                .map_err(|e| AppError::BadRequest(e.to_string()))
        })
        .transpose()?;
    let since = query
        .since
        .as_deref()
        .map(|text| since(text, now))
        .transpose()?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(AppError::BadRequest(format!(
            "limit must be between 1 and {MAX_LIMIT} (got {limit})"
        )));
    }
    Ok(ReportFilter {
        envoy,
        failed_only: query.failed.unwrap_or(false),
        since,
        limit,
    })
}

/// `1h` (back from `now`) or an RFC 3339 time.
fn since(text: &str, now: SystemTime) -> Result<Timestamp, AppError> {
    if let Ok(back) = humantime::parse_duration(text) {
        return Ok(Timestamp::from_system_time(now).saturating_sub(back));
    }
    humantime::parse_rfc3339_weak(text)
        .map(Timestamp::from_system_time)
        .map_err(|_| {
            AppError::BadRequest(format!(
                "since '{text}' is neither a duration (30m, 1h, 2d) nor an RFC 3339 time (2026-01-31T12:00:00Z)"
            ))
        })
}

/// The envoy's report inside a stored body (`{"report": {...}, ...}`);
/// `None` when the body does not hold one.
fn stored_report(record: &ReportRecord) -> Option<Report> {
    serde_json::from_value(record.body.get("report")?.clone()).ok()
}

/// The listing fields of a stored report.
fn entry(record: &ReportRecord, report: Option<&Report>) -> ReportEntry {
    let s = record.summary;
    let status = if s.failed > 0 {
        "failed"
    } else if s.changed > 0 {
        "changed"
    } else {
        "ok"
    };
    ReportEntry {
        id: record.id,
        envoy: record.envoy.clone(),
        finished: rfc3339(record.received_at),
        status: status.to_owned(),
        noop: record.noop,
        changed: s.changed,
        failed: s.failed,
        skipped: s.skipped,
        unchanged: s.unchanged,
        duration_ms: report.map(|r| r.duration_ms),
        changed_resources: report
            .map(|r| {
                r.resources
                    .iter()
                    .filter(|r| r.status == vigo_proto::Status::Changed)
                    .map(|r| r.label())
                    .collect()
            })
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn query(since: Option<&str>, limit: Option<u32>) -> ReportQuery {
        ReportQuery {
            envoy: Some("DB1.example.com".to_owned()),
            failed: Some(true),
            since: since.map(str::to_owned),
            limit,
        }
    }

    #[test]
    fn since_is_a_duration_back_or_a_time() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
        let f = filter(&query(Some("1h"), None), now).unwrap();
        assert_eq!(f.since, Some(Timestamp::from_unix_millis(6_400_000)));
        assert_eq!(f.envoy.as_deref(), Some("db1.example.com"));
        assert!(f.failed_only);
        assert_eq!(f.limit, DEFAULT_LIMIT);
        let f = filter(&query(Some("1970-01-01T00:00:05Z"), Some(3)), now).unwrap();
        assert_eq!(f.since, Some(Timestamp::from_unix_millis(5_000)));
        assert_eq!(f.limit, 3);
    }

    #[test]
    fn bad_queries_say_what_is_accepted() {
        let now = SystemTime::now();
        for (q, expected) in [
            (query(Some("yesterday"), None), "neither a duration"),
            (query(None, Some(0)), "limit must be between 1 and 1000"),
            (query(None, Some(5_000)), "limit must be between 1 and 1000"),
        ] {
            let Err(AppError::BadRequest(message)) = filter(&q, now) else {
                panic!("accepted {q:?}");
            };
            assert!(message.contains(expected), "{message}");
        }
    }
}
