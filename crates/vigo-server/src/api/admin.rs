//! The admin routes for envoys (bearer token, `vigocli envoys`):
//!
//! - `GET /v1/admin/envoys` → `Vec<`[`EnvoySummary`]`>`
//! - `GET /v1/admin/envoys/{name}` → [`EnvoyDetail`]
//! - `POST /v1/admin/envoys/token` (`{"ttl_secs": N}` optional) → [`NewToken`]
//! - `POST /v1/admin/envoys/{name}/approve` (`{"fingerprint": FP}`) → [`EnvoySummary`]
//! - `POST /v1/admin/envoys/{name}/revoke` → [`EnvoySummary`]
//! - `POST /v1/admin/envoys/{name}/remove` → [`RemovedEnvoys`]
//!
//! Names in the path are parsed as [`EnvoyName`]s (lower-cased), the only
//! form the store holds. Approval names the pending key's fingerprint: a
//! pending request is bound to the first key that asked, and the operator
//! checks that it is the key the host printed.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde::Deserialize;
use vigo_proto::ResourceReport;
use vigo_proto::admin::{ApproveEnvoy, EnvoyDetail, EnvoySummary, NewToken, RemovedEnvoys};
use vigo_secrets::EnvoyName;
use vigo_store::{EnvoyRecord, EnvoyState, EnvoyStatus, ReportRecord, StoreError, Timestamp};
use zeroize::Zeroizing;

use super::{Admin, parse_json, rfc3339};
use crate::enroll::{PENDING_EXPIRY, approve, bound_fingerprint, sign, token_hash};
use crate::metrics::EnrollmentResult;
use crate::{AppError, AppState};

/// Lifetime of an enrollment token unless the request says otherwise.
pub(crate) const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(60 * 60);

/// Longest lifetime a token may be given.
pub(crate) const MAX_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Shortest lifetime a token may be given: long enough to copy it to a host.
pub(crate) const MIN_TOKEN_TTL: Duration = Duration::from_secs(60);

/// `GET /v1/admin/envoys`.
pub(crate) async fn list(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<Vec<EnvoySummary>>, AppError> {
    let fleet = fleet(&state).await?;
    Ok(Json(
        fleet
            .iter()
            .map(|(record, last, envoy_state)| summary(record, last.as_ref(), *envoy_state))
            .collect(),
    ))
}

/// Every envoy with its last report and derived state, after writing
/// buffered check-ins and expiring old pending requests: what
/// `GET /v1/admin/envoys` and the dashboard's overview show.
pub(crate) async fn fleet(
    state: &AppState,
) -> Result<Vec<(EnvoyRecord, Option<ReportRecord>, EnvoyState)>, AppError> {
    state.flush_checkins().await;
    expire_pending(state).await?;
    let mut out = Vec::new();
    let now = Timestamp::now();
    for record in state.store().list_envoys().await? {
        let last = match record.last_report_at {
            Some(_) => state.store().last_report(&record.name).await?,
            None => None,
        };
        let envoy_state = envoy_state(state, &record, now).await?;
        out.push((record, last, envoy_state));
    }
    Ok(out)
}

/// `GET /v1/admin/envoys/{name}`.
pub(crate) async fn show(
    _: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<EnvoyDetail>, AppError> {
    let name = envoy_name(&name)?;
    let (_, _, detail) = envoy_detail(&state, &name).await?;
    Ok(Json(detail))
}

/// One envoy's record, its last report and everything `vigocli envoys
/// show` and the dashboard's envoy page show of it; 404 for an unknown
/// name.
pub(crate) async fn envoy_detail(
    state: &AppState,
    name: &EnvoyName,
) -> Result<(EnvoyRecord, Option<ReportRecord>, EnvoyDetail), AppError> {
    state.flush_checkins().await;
    expire_pending(state).await?;
    let record = known(state, name).await?;
    // A name removed and enrolled again starts without the old reports.
    let last = match record.last_report_at {
        Some(_) => state.store().last_report(name).await?,
        None => None,
    };
    let triggers = state.store().triggers_for(name).await?;
    let queued_triggers = triggers
        .iter()
        .map(|t| {
            let paths: Vec<&str> = t.secret_paths.iter().map(|p| p.as_str()).collect();
            format!("{} <- {}", t.resource, paths.join(", "))
        })
        .collect();
    let facts = match &record.facts {
        serde_json::Value::Object(map) => map.clone(),
        _ => serde_json::Map::new(),
    };
    let last_run = state.store().last_run(name).await?;
    let envoy_state = derived_state(state, &record, last_run.as_ref(), Timestamp::now());
    let detail = EnvoyDetail {
        summary: summary(&record, last.as_ref(), envoy_state),
        cert_fingerprint: record.cert_fingerprint.clone(),
        facts,
        force_push: record.force_push,
        queued_triggers,
        last_rotation_lag_ms: record
            .last_rotation_lag
            .map(|lag| u64::try_from(lag.as_millis()).unwrap_or(u64::MAX)),
        last_run: last_run.map(last_run_line),
        last_report_resources: last.as_ref().map(resource_reports).unwrap_or_default(),
    };
    Ok((record, last, detail))
}

/// The body of `POST /v1/admin/envoys/token`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    #[serde(default)]
    ttl_secs: Option<u64>,
}

/// `POST /v1/admin/envoys/token`.
pub(crate) async fn token(
    _: Admin,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<NewToken>, AppError> {
    let request: TokenRequest = if body.iter().all(u8::is_ascii_whitespace) {
        TokenRequest::default()
    } else {
        parse_json(&body, "expected {} or {\"ttl_secs\": N}")?
    };
    let ttl = request
        .ttl_secs
        .map_or(DEFAULT_TOKEN_TTL, Duration::from_secs);
    if ttl < MIN_TOKEN_TTL || ttl > MAX_TOKEN_TTL {
        return Err(AppError::BadRequest(format!(
            "ttl_secs must be between {} (1m) and {} (30d)",
            MIN_TOKEN_TTL.as_secs(),
            MAX_TOKEN_TTL.as_secs()
        )));
    }
    let mut bytes = Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(bytes.as_mut())
        .map_err(|_| AppError::Internal("the system random generator failed".to_owned()))?;
    let token = hex::encode(bytes.as_ref());
    let now = Timestamp::now();
    let expires_at = now.saturating_add(ttl);
    state
        .store()
        .create_token(&token_hash(&token), now, expires_at)
        .await?;
    tracing::info!(expires_at = %rfc3339(expires_at), "enrollment token created");
    Ok(Json(NewToken {
        token,
        expires_at: rfc3339(expires_at),
    }))
}

/// `POST /v1/admin/envoys/{name}/approve`: signs the stored request once
/// the operator named its key's fingerprint.
pub(crate) async fn approve_envoy(
    _: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<EnvoySummary>, AppError> {
    let name = envoy_name(&name)?;
    let request: ApproveEnvoy = if body.iter().all(u8::is_ascii_whitespace) {
        ApproveEnvoy::default()
    } else {
        parse_json(&body, "expected {\"fingerprint\": \"<hex>\"}")?
    };
    let record = approve_pending(&state, &name, request.fingerprint.as_deref()).await?;
    let envoy_state = envoy_state(&state, &record, Timestamp::now()).await?;
    Ok(Json(summary(&record, None, envoy_state)))
}

/// Approves the pending request of `name` when `fingerprint` names its key
/// (the admin API and the dashboard's Approve button); an envoy already
/// approved is left as it is.
pub(crate) async fn approve_pending(
    state: &AppState,
    name: &EnvoyName,
    fingerprint: Option<&str>,
) -> Result<EnvoyRecord, AppError> {
    expire_pending(state).await?;
    let record = known(state, name).await?;
    match record.status {
        EnvoyStatus::Approved => Ok(record),
        EnvoyStatus::Revoked => Err(AppError::Conflict(format!(
            "envoy '{name}' is revoked; it cannot be approved (remove it with `vigocli envoys remove {name}` so it can enroll again)"
        ))),
        EnvoyStatus::Pending => {
            let (Some(csr), Some(bound)) = (record.csr_pem.as_deref(), bound_fingerprint(&record))
            else {
                return Err(AppError::Conflict(format!(
                    "envoy '{name}' has no usable certificate request; remove it with `vigocli envoys remove {name}` and let the host ask again"
                )));
            };
            check_fingerprint(state, name, &bound, fingerprint).await?;
            let cert = sign(state, csr, name)?;
            let approved = approve(state, name, &cert, Timestamp::now()).await?;
            state.metrics.enrollment(EnrollmentResult::Approved);
            tracing::info!(envoy = %name, fingerprint = %bound, "envoy approved");
            Ok(approved)
        }
    }
}

/// Approval goes ahead only when the operator's fingerprint is the pending
/// key's (in full, or a prefix of at least 16 hex digits that no other
/// pending key shares).
async fn check_fingerprint(
    state: &AppState,
    name: &EnvoyName,
    bound: &str,
    given: Option<&str>,
) -> Result<(), AppError> {
    let Some(given) = given else {
        return Err(AppError::BadRequest(format!(
            "approving '{name}' needs the fingerprint of its key: the pending request's key is {bound}; check that the host printed the same (vigoenvoy prints it while it waits), then run `vigocli envoys approve {name} --fingerprint {bound}`"
        )));
    };
    let Some(prefix) = vigo_pki::parse_fingerprint_prefix(given) else {
        return Err(AppError::BadRequest(format!(
            "the fingerprint must be {} to {} hex digits (the SHA-256 key fingerprint vigoenvoy prints, or its start)",
            vigo_pki::MIN_FINGERPRINT_PREFIX,
            vigo_pki::KEY_FINGERPRINT_LEN
        )));
    };
    if !bound.starts_with(&prefix) {
        tracing::warn!(envoy = %name, pending = %bound, given = %prefix, "approval refused: the fingerprint does not match the pending key");
        return Err(AppError::Conflict(format!(
            "the pending request of '{name}' comes from key {bound}, not {prefix}: if the host printed {prefix}, this request is not from it; remove it with `vigocli envoys remove {name}` and let the host ask again"
        )));
    }
    if prefix.len() < vigo_pki::KEY_FINGERPRINT_LEN {
        let others: Vec<String> = state
            .store()
            .list_envoys()
            .await?
            .iter()
            .filter(|e| e.status == EnvoyStatus::Pending && e.name != name.as_str())
            .filter(|e| bound_fingerprint(e).is_some_and(|fp| fp.starts_with(&prefix)))
            .map(|e| e.name.clone())
            .collect();
        if !others.is_empty() {
            return Err(AppError::Conflict(format!(
                "the fingerprint {prefix} is ambiguous: the pending key of {} starts with it too; give the full fingerprint {bound} after checking it on the host",
                others.join(", ")
            )));
        }
    }
    Ok(())
}

/// `POST /v1/admin/envoys/{name}/remove`: deletes a pending or revoked
/// envoy so the name can enroll again.
pub(crate) async fn remove_envoy(
    _: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<RemovedEnvoys>, AppError> {
    let name = envoy_name(&name)?;
    let removed = state
        .store()
        .remove_envoy(&name)
        .await
        .map_err(|e| match e {
            StoreError::EnvoyNotFound { .. } => not_found(&name),
            StoreError::EnvoyApproved { .. } => AppError::Conflict(e.to_string()),
            other => other.into(),
        })?;
    tracing::info!(envoy = %name, removed = ?removed, "envoy removed");
    crate::fleet_wake::wake_everywhere(&state, &[name.as_str()]).await;
    Ok(Json(RemovedEnvoys { removed }))
}

/// Deletes pending requests older than [`PENDING_EXPIRY`].
async fn expire_pending(state: &AppState) -> Result<(), AppError> {
    let expired = state
        .store()
        .expire_pending(Timestamp::now().saturating_sub(PENDING_EXPIRY))
        .await?;
    if !expired.is_empty() {
        tracing::info!(envoys = ?expired, "pending enrollment requests expired after 7 days");
    }
    Ok(())
}

/// The envoy name in a route, in its one normalised form.
pub(crate) fn envoy_name(raw: &str) -> Result<EnvoyName, AppError> {
    EnvoyName::parse(raw).map_err(|e| AppError::BadRequest(e.to_string()))
}

/// `POST /v1/admin/envoys/{name}/revoke`.
pub(crate) async fn revoke_envoy(
    _: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<EnvoySummary>, AppError> {
    let name = envoy_name(&name)?;
    let record = revoke(&state, &name).await?;
    Ok(Json(summary(&record, None, EnvoyState::Revoked)))
}

/// Revokes `name` (the admin API and the dashboard's Revoke button) and
/// ends a wait it may hold.
pub(crate) async fn revoke(state: &AppState, name: &EnvoyName) -> Result<EnvoyRecord, AppError> {
    state
        .store()
        .revoke_envoy(name, Timestamp::now())
        .await
        .map_err(|e| match e {
            StoreError::EnvoyNotFound { .. } => not_found(name),
            other => other.into(),
        })?;
    tracing::info!(envoy = %name, "envoy revoked");
    // Ends a wait it may hold, here or on another replica: the wait answers
    // "check in now" and that request is refused.
    crate::fleet_wake::wake_everywhere(state, &[name.as_str()]).await;
    known(state, name).await
}

async fn known(state: &AppState, name: &str) -> Result<EnvoyRecord, AppError> {
    state
        .store()
        .envoy(name)
        .await?
        .ok_or_else(|| not_found(name))
}

fn not_found(name: &str) -> AppError {
    AppError::NotFound(format!(
        "no envoy named '{name}'; `vigocli envoys list` shows the known ones"
    ))
}

/// The envoy's derived state now (docs/operations.md "Envoy status").
pub(crate) async fn envoy_state(
    state: &AppState,
    record: &EnvoyRecord,
    now: Timestamp,
) -> Result<EnvoyState, AppError> {
    let last_run = match record.status {
        EnvoyStatus::Approved => state.store().last_run(&record.name).await?,
        EnvoyStatus::Pending | EnvoyStatus::Revoked => None,
    };
    Ok(derived_state(state, record, last_run.as_ref(), now))
}

/// [`EnvoyState::derive`] with the check-in interval the server tells envoys.
fn derived_state(
    state: &AppState,
    record: &EnvoyRecord,
    last_run: Option<&vigo_store::LastRunRecord>,
    now: Timestamp,
) -> EnvoyState {
    EnvoyState::derive(record, last_run, now, state.config().raw.checkin_interval)
}

pub(crate) fn summary(
    record: &EnvoyRecord,
    last: Option<&ReportRecord>,
    state: EnvoyState,
) -> EnvoySummary {
    EnvoySummary {
        name: record.name.clone(),
        status: record.status.as_str().to_owned(),
        state: state.as_str().to_owned(),
        last_checkin: record.last_checkin_at.map(rfc3339),
        last_report: last.map(report_line),
        pending_fingerprint: match record.status {
            EnvoyStatus::Pending => bound_fingerprint(record),
            _ => None,
        },
    }
}

/// `<time> N resources: A changed, B failed, C skipped, D unchanged`: the
/// envoy's last enforcement run.
fn last_run_line(run: vigo_store::LastRunRecord) -> String {
    let s = run.summary;
    let total = s.changed + s.failed + s.skipped + s.unchanged;
    format!(
        "{} {total} resources: {} changed, {} failed, {} skipped, {} unchanged",
        rfc3339(run.at),
        s.changed,
        s.failed,
        s.skipped,
        s.unchanged,
    )
}

/// `<time> N resources: A changed, B failed, C skipped, D unchanged`, with
/// ` (noop)` for a noop run.
fn report_line(report: &ReportRecord) -> String {
    let s = report.summary;
    let total = s.changed + s.failed + s.skipped + s.unchanged;
    format!(
        "{} {total} resources: {} changed, {} failed, {} skipped, {} unchanged{}",
        rfc3339(report.received_at),
        s.changed,
        s.failed,
        s.skipped,
        s.unchanged,
        if report.noop { " (noop)" } else { "" }
    )
}

/// The per-resource lines of a stored report body.
fn resource_reports(report: &ReportRecord) -> Vec<ResourceReport> {
    let Some(resources) = report.body["report"]["resources"].as_array() else {
        return Vec::new();
    };
    let applied: Vec<&str> = report.body["report"]["secret_triggered_applied"]
        .as_array()
        .map(|names| names.iter().filter_map(|n| n.as_str()).collect())
        .unwrap_or_default();
    let text = |r: &serde_json::Value, key: &str| r[key].as_str().unwrap_or_default().to_owned();
    resources
        .iter()
        .map(|r| ResourceReport {
            name: text(r, "name"),
            kind: text(r, "type"),
            status: text(r, "status"),
            duration_ms: r["duration_ms"].as_u64().unwrap_or(0),
            message: text(r, "message"),
            secret_triggered: r["name"].as_str().is_some_and(|n| applied.contains(&n)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use vigo_store::ReportSummary;

    use super::*;

    #[test]
    fn report_lines_read_like_the_envoy_summary() {
        let report = ReportRecord {
            id: 1,
            envoy: "db1".to_owned(),
            received_at: Timestamp::from_unix_millis(1_700_000_000_000),
            summary: ReportSummary {
                changed: 1,
                failed: 0,
                skipped: 0,
                unchanged: 2,
            },
            noop: false,
            body: serde_json::json!({"report": {"resources": [
                {"name": "motd", "type": "file", "status": "changed", "duration_ms": 3, "message": "created"}
            ]}}),
        };
        assert_eq!(
            report_line(&report),
            "2023-11-14T22:13:20Z 3 resources: 1 changed, 0 failed, 0 skipped, 2 unchanged"
        );
        let lines = resource_reports(&report);
        assert_eq!(lines.len(), 1);
        assert_eq!(
            (lines[0].kind.as_str(), lines[0].status.as_str()),
            ("file", "changed")
        );
    }
}
