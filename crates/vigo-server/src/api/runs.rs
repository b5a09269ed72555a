//! The admin routes for one-shot runs (`vigocli run TARGET`):
//!
//! - `POST /v1/admin/runs` ([`RunTarget`]) → [`RunStarted`]
//! - `GET /v1/admin/runs/{id}` → [`RunStatus`]
//!
//! A run request names envoys, never commands: it is stored per envoy
//! (so any replica's check-in sees it), the envoys' waits are woken here
//! and on the other replicas, and each envoy checks in, receives its own
//! full catalog (marked noop when asked) and applies it. The envoy's report
//! names the request, and its outcome is recorded with the request: the
//! audit record of who asked, which envoys and what came of it.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use globset::GlobBuilder;
use vigo_proto::admin::{RunEnvoy, RunStarted, RunStatus, RunTarget};
use vigo_proto::{Report, ReportRequest};
use vigo_store::{EnvoyStatus, NewRunRequest, Timestamp};

use super::{Admin, parse_json, rfc3339};
use crate::{AppError, AppState};

/// Whether an envoy name is one the request targets.
type Matcher = Box<dyn Fn(&str, &serde_json::Value) -> bool + Send + Sync>;

/// `POST /v1/admin/runs`.
pub(crate) async fn start(
    _: Admin,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<RunStarted>, AppError> {
    let request: RunTarget = parse_json(
        &body,
        "expected {\"target\":\"web*\"} or {\"role\":\"web\"}, with \"noop\":true optional",
    )?;
    let (label, matches): (String, Matcher) =
        match (request.target.as_deref(), request.role.as_deref()) {
            (Some(target), None) => {
                let glob = GlobBuilder::new(target)
                .case_insensitive(true)
                .literal_separator(false)
                .build()
                .map_err(|e| {
                    AppError::BadRequest(format!(
                        "invalid target '{target}': {}; give an envoy name or a glob like 'web*'",
                        e.kind()
                    ))
                })?
                .compile_matcher();
                (
                    target.to_owned(),
                    Box::new(move |name, _| glob.is_match(name)),
                )
            }
            (None, Some(role)) => {
                let repo = state.repo();
                let role = role.to_owned();
                (
                    format!("role:{role}"),
                    Box::new(move |name, facts| repo.repo.roles_of(name, facts).contains(&role)),
                )
            }
            _ => {
                return Err(AppError::BadRequest(
                    "give either a target (an envoy name or a glob) or a role, not both".to_owned(),
                ));
            }
        };
    let mut envoys = Vec::new();
    let mut not_approved = Vec::new();
    for record in state.store().list_envoys().await? {
        if !matches(&record.name, &record.facts) {
            continue;
        }
        match record.status {
            EnvoyStatus::Approved => envoys.push(record.name),
            EnvoyStatus::Pending | EnvoyStatus::Revoked => not_approved.push(record.name),
        }
    }
    let id = new_id()?;
    let requested_by = if request.requested_by.trim().is_empty() {
        "admin".to_owned()
    } else {
        request.requested_by.trim().chars().take(128).collect()
    };
    if !envoys.is_empty() {
        state
            .store()
            .create_run_request(&NewRunRequest {
                id: id.clone(),
                at: Timestamp::now(),
                requested_by: requested_by.clone(),
                target: label.clone(),
                noop: request.noop,
                envoys: envoys.clone(),
            })
            .await?;
        // The store notified the other replicas at commit.
        state.waiters.wake_many(&envoys);
    }
    tracing::info!(
        run = %id,
        by = %requested_by,
        target = %label,
        noop = request.noop,
        envoys = ?envoys,
        "run requested"
    );
    Ok(Json(RunStarted {
        id,
        envoys,
        not_approved,
    }))
}

/// `GET /v1/admin/runs/{id}`.
pub(crate) async fn status(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RunStatus>, AppError> {
    let Some(record) = state.store().run_request(&id).await? else {
        return Err(AppError::NotFound(format!("no run request '{id}'")));
    };
    let envoys = record
        .envoys
        .into_iter()
        .map(|e| {
            let status = match (&e.outcome, e.delivered_at) {
                (Some(outcome), _) => outcome.clone(),
                (None, Some(_)) => "delivered".to_owned(),
                (None, None) => "pending".to_owned(),
            };
            let report = e
                .report
                .and_then(|body| serde_json::from_value::<ReportRequest>(body).ok())
                .map(|r| r.report);
            RunEnvoy {
                name: e.envoy,
                status,
                report,
            }
        })
        .collect();
    Ok(Json(RunStatus {
        id: record.id,
        target: record.target,
        noop: record.noop,
        requested_by: record.requested_by,
        requested_at: rfc3339(record.at),
        envoys,
    }))
}

/// The outcome word of a run: `failed` if anything failed, else `changed`
/// if anything changed (or, with noop, would change), else `ok`.
pub(crate) fn outcome(report: &Report) -> &'static str {
    if report.summary.failed > 0 {
        "failed"
    } else if report.summary.changed > 0 {
        "changed"
    } else {
        "ok"
    }
}

/// A random request id (16 hex digits).
fn new_id() -> Result<String, AppError> {
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| AppError::Internal("the system random source failed".to_owned()))?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigo_proto::Summary;

    fn report(changed: usize, failed: usize) -> Report {
        Report {
            envoy: "web1".into(),
            noop: false,
            resources: Vec::new(),
            summary: Summary {
                total: changed + failed + 1,
                changed,
                failed,
                skipped: 0,
                unchanged: 1,
            },
            secret_triggered_applied: Vec::new(),
            duration_ms: 3,
        }
    }

    #[test]
    fn issue_18_outcome_words() {
        assert_eq!(outcome(&report(0, 0)), "ok");
        assert_eq!(outcome(&report(2, 0)), "changed");
        assert_eq!(outcome(&report(2, 1)), "failed");
    }
}
