//! The routes envoys call (docs/operations.md "Enroll envoys"; docs/ARCHITECTURE.md "A check-in"):
//!
//! - `POST /v1/enroll` (no client certificate) → [`EnrollResponse`]; the
//!   enrollment rules are in `enroll.rs`
//! - `POST /v1/checkin` → [`CheckinResponse`]
//! - `POST /v1/report` → 204
//! - `GET /v1/wait` → [`WaitResponse`]
//!
//! Security: on every route but enrollment the envoy's identity comes from
//! its verified client certificate only — never from the request body — and
//! that exact certificate must be the one the store holds for an approved
//! envoy. An envoy therefore only ever receives its own catalog, and a
//! revoked or replaced certificate is refused.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use vigo_catalog::Fingerprint;
use vigo_proto::{
    CheckinRequest, CheckinResponse, EnrollRequest, EnrollResponse, ReportRequest, WAIT_HOLD_SECS,
    WaitResponse,
};
use vigo_secrets::SecretPath;
use vigo_store::{
    CatalogSent, CheckinRecord, EnvoyAuth, EnvoyStatus, LastRunRecord, ReportSummary, Timestamp,
};
use zeroize::Zeroizing;

use crate::api::parse_json;
use crate::catalogs::CompiledCatalog;
use crate::limits::MAX_REPORT_BYTES;
use crate::metrics::{CheckinResult, EnrollmentResult};
use crate::{AppError, AppState, PeerCertificate, error_chain};

// --- enrollment ----------------------------------------------------------------

/// `POST /v1/enroll`.
pub(crate) async fn enroll(
    State(state): State<AppState>,
    remote: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: Bytes,
) -> Result<Json<EnrollResponse>, AppError> {
    let source = remote.map_or_else(|| "unknown".to_owned(), |r| r.0.0.ip().to_string());
    let result = match parse_json::<EnrollRequest>(
        &body,
        "expected {\"name\":\"host.example.com\",\"csr_pem\":\"...\",\"token\":\"...\"}",
    ) {
        Ok(request) => crate::enroll::enroll(&state, request, &source).await,
        Err(e) => Err(e),
    };
    if result.is_err() {
        state.metrics.enrollment(EnrollmentResult::Refused);
    }
    result.map(Json)
}

// --- the envoy's identity ------------------------------------------------------------

/// The approved envoy the request's client certificate belongs to.
pub(crate) async fn authenticate(
    state: &AppState,
    peer: Option<&PeerCertificate>,
) -> Result<EnvoyAuth, AppError> {
    let peer = peer.ok_or(AppError::CertificateRequired)?;
    let der = peer.end_entity();
    let name = vigo_pki::envoy_name_from_cert(der).map_err(|e| {
        AppError::Forbidden(format!(
            "the client certificate does not name an envoy: {}",
            error_chain(&e)
        ))
    })?;
    let refuse = |why: &str| Err(AppError::Forbidden(format!("envoy '{name}' {why}")));
    // `name` is lower case (see `EnvoyName`): the only form the store holds.
    let Some(record) = state.store().envoy_auth(&name).await? else {
        return refuse("is not enrolled");
    };
    match record.status {
        EnvoyStatus::Approved => {}
        EnvoyStatus::Revoked => return refuse("is revoked"),
        EnvoyStatus::Pending => return refuse("is not approved"),
    }
    let presented = vigo_pki::der_fingerprint_sha256(der);
    if record.cert_fingerprint.as_deref() != Some(presented.as_str()) {
        return refuse("presented a certificate that is no longer valid for it; enroll again");
    }
    Ok(record)
}

// --- check-in ------------------------------------------------------------------------

/// `POST /v1/checkin`.
pub(crate) async fn checkin(
    State(state): State<AppState>,
    peer: Option<Extension<PeerCertificate>>,
    body: Bytes,
) -> Result<Response, AppError> {
    // docs/secrets.md "Rotation": a check-in that starts after a change was queued (a
    // `secrets set` that printed "Server notified", the start-up comparison
    // of versions) is answered from the state its rotation leaves: wait for
    // it, bounded; then answer with the last good state (triggers stay
    // queued). Before `authenticate`, which reads force-push and triggers.
    if !state.rotation.settled(crate::gate::ROTATION_WAIT).await {
        tracing::warn!(
            waited_secs = crate::gate::ROTATION_WAIT.as_secs(),
            "a queued rotation is still running; answering a check-in with the last good state"
        );
    }
    let envoy = authenticate(&state, peer.as_deref()).await?;
    let request: CheckinRequest =
        parse_json(&body, "expected {\"fingerprint\":\"...\",\"facts\":{...}}")?;
    // Taken before anything is read: triggers queued after this instant are
    // not counted as delivered by this answer.
    let at = Timestamp::now();
    let name = envoy.name.as_str();
    // The catalog is compiled with the facts this check-in brings: changed
    // facts give a new catalog now, with no query (see `catalogs.rs`).
    let facts = serde_json::Value::Object(request.facts);
    let compiled = catalog_of(&state, name, &facts)?;
    state
        .metrics
        .queued_triggers(name, envoy.queued_triggers as usize);
    let interval_secs = state.config().raw.checkin_interval.as_secs();
    // A clean enforcement run sends no report: its time (server clock, from
    // the age the envoy measured) and counts come with the next check-in.
    let last_run = request.last_run.map(|run| last_run_record(at, &run));
    if last_run.is_some_and(|run| run.summary.failed == 0) {
        state.notifier.run_clean(name);
    }

    let current = request
        .fingerprint
        .as_deref()
        .and_then(Fingerprint::from_hex)
        .is_some_and(|f| f.matches(&compiled.fingerprint));
    // A one-shot run request (`vigocli run`) always gets the full catalog;
    // a noop one neither delivers triggers nor clears force-push. A noop or
    // partial check-in (`run --once --noop`, `--tags`) is served none.
    let partial = request.selection.is_some();
    let run = if envoy.run_pending && !request.noop && !partial {
        state.store().pending_run(name).await?
    } else {
        None
    };
    let noop = request.noop || run.as_ref().is_some_and(|r| r.noop);
    // Any queued trigger resends the catalog: one delivered but not yet
    // reported applied (a failed or interrupted run) is retried.
    // An envoy that holds no catalog in memory (`full`) always gets it.
    if current && !request.full && !envoy.force_push && envoy.queued_triggers == 0 && run.is_none()
    {
        // The short answer's only write is the check-in time and facts,
        // which the server records in batches (see `CheckinBuffer`).
        state.checkins.push(CheckinRecord {
            name: envoy.name.clone(),
            facts,
            catalog_fingerprint: Some(compiled.fingerprint.as_str().to_owned()),
            at,
            last_run,
        });
        state.metrics.checkin(CheckinResult::Unchanged);
        return Ok(Json(CheckinResponse::Unchanged { interval_secs }).into_response());
    }

    let store = state.store();
    let triggers = if noop {
        Vec::new()
    } else {
        store.triggers_for(name).await?
    };
    let mut compiled = compiled;
    if !triggers.is_empty() {
        let paths: Vec<&SecretPath> = triggers.iter().flat_map(|t| &t.secret_paths).collect();
        match crate::rotation::catch_up(&state, &paths).await {
            // Compiled again either way: a reload by this call, or one that
            // finished while it waited for the lock, replaced the snapshot.
            Ok(_) => compiled = catalog_of(&state, name, &facts)?,
            Err(e) => {
                // Sending the old values would let the envoy clear its
                // triggers without the new ones; it retries instead.
                let cause = crate::error_chain(&e);
                tracing::error!(envoy = %name, error = %cause, "cannot load the rotated secrets; the envoy retries later");
                return Err(AppError::Internal(format!(
                    "loading rotated secrets: {cause}"
                )));
            }
        }
    }
    let mut catalog = compiled.catalog.clone();
    // A partial run applies only the selected resources and their
    // dependencies: the triggers of the others stay undelivered (and keep
    // the envoy due), as after a noop run. A selection the catalog does not
    // fit applies nothing (the envoy says why).
    let selected = request
        .selection
        .as_ref()
        .map(|selection| selection.resolve(&catalog).ok());
    let applies = |resource: &str| match &selected {
        None => true,
        Some(only) => only.as_ref().is_some_and(|s| s.contains(resource)),
    };
    let mut flagged = Vec::new();
    let mut stale = Vec::new();
    for trigger in &triggers {
        match catalog
            .resources
            .iter_mut()
            .find(|r| r.name == trigger.resource)
        {
            Some(resource) => {
                resource.secret_triggered = true;
                flagged.push(trigger.resource.as_str());
            }
            None => stale.push(trigger.resource.as_str()),
        }
    }
    let deliveries: Vec<_> = catalog
        .secrets
        .iter()
        .map(|(path, secret)| (path.clone(), secret.version))
        .collect();
    let answer = CheckinResponse::Catalog {
        interval_secs,
        fingerprint: compiled.fingerprint.as_str().to_owned(),
        catalog: Box::new(catalog),
        noop,
        run_request: run.as_ref().map(|r| r.id.clone()),
    };
    // The answer carries secret values: serialise into a buffer that is
    // wiped when the response body is dropped.
    let bytes =
        Zeroizing::new(serde_json::to_vec(&answer).map_err(|e| {
            AppError::Internal(format!("serialising the catalog of '{name}': {e}"))
        })?);
    drop(answer);

    if !stale.is_empty() {
        // Triggers for resources the catalog no longer has can never be
        // applied; drop them rather than resend the catalog forever.
        tracing::info!(envoy = %name, resources = ?stale, "dropping triggers of removed resources");
    }
    // One transaction: a crash or a database error leaves either all of
    // this recorded or none (the triggers then stay undelivered and the
    // next check-in gets the catalog again).
    state
        .store()
        .record_catalog_sent(&CatalogSent {
            checkin: CheckinRecord {
                name: envoy.name.clone(),
                facts,
                catalog_fingerprint: Some(compiled.fingerprint.as_str().to_owned()),
                at,
                last_run,
            },
            delivered: flagged
                .iter()
                .filter(|r| applies(r))
                .map(|r| (*r).to_owned())
                .collect(),
            dropped: stale.iter().map(|r| (*r).to_owned()).collect(),
            clear_force_push: envoy.force_push && !noop && !partial,
            deliveries,
        })
        .await?;
    if let Some(run) = &run {
        store.run_delivered(&run.id, name, at).await?;
        tracing::info!(envoy = %name, run = %run.id, noop, "run request delivered");
    }
    state.metrics.checkin(CheckinResult::Catalog);
    state.metrics.catalog_bytes(bytes.len());
    tracing::debug!(
        envoy = %name,
        triggered = flagged.len(),
        force_push = envoy.force_push,
        "sending catalog"
    );
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(Bytes::from_owner(ZeroizingBody(bytes))),
    )
        .into_response())
}

/// The last run an envoy told of, dated on the server's clock: `age_ms`
/// before the check-in arrived (the two clocks need not agree).
fn last_run_record(at: Timestamp, run: &vigo_proto::LastRun) -> LastRunRecord {
    let age = i64::try_from(run.age_ms).unwrap_or(i64::MAX);
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    LastRunRecord {
        at: Timestamp::from_unix_millis(at.unix_millis().saturating_sub(age)),
        summary: ReportSummary {
            changed: count(run.summary.changed),
            failed: count(run.summary.failed),
            skipped: count(run.summary.skipped),
            unchanged: count(run.summary.unchanged),
        },
    }
}

/// A response body wiped on drop.
/// The envoy's catalog from the current snapshot; a compile error is a 500
/// that tells the operator how to see it.
fn catalog_of(
    state: &AppState,
    name: &str,
    facts: &serde_json::Value,
) -> Result<Arc<CompiledCatalog>, AppError> {
    state.catalog(name, facts).map_err(|diagnostics| {
        AppError::Internal(format!(
            "the catalog of envoy '{name}' does not compile (run `vigocli catalog {name}`):\n{diagnostics}"
        ))
    })
}

struct ZeroizingBody(Zeroizing<Vec<u8>>);

impl AsRef<[u8]> for ZeroizingBody {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

// --- report --------------------------------------------------------------------------

/// `POST /v1/report`. The body is read only after the certificate is
/// checked, and only up to [`MAX_REPORT_BYTES`] (413 beyond). Each envoy
/// may store [`REPORT_BURST`](crate::REPORT_BURST) reports at once and one
/// per [`REPORT_REFILL`](crate::REPORT_REFILL) after: beyond that the
/// report is not stored (429), though the triggers it reports applied are
/// still cleared, so a limited envoy never runs a rotation twice.
pub(crate) async fn report(
    State(state): State<AppState>,
    peer: Option<Extension<PeerCertificate>>,
    body: Body,
) -> Result<StatusCode, AppError> {
    let envoy = authenticate(&state, peer.as_deref()).await?;
    let name = envoy.name.as_str();
    let body = read_limited(body, MAX_REPORT_BYTES).await.inspect_err(|e| {
        if matches!(e, AppError::PayloadTooLarge(_)) {
            tracing::warn!(envoy = %name, limit = MAX_REPORT_BYTES, "report refused: too large");
        }
    })?;
    let request: ReportRequest =
        parse_json(&body, "expected {\"fingerprint\":\"...\",\"report\":{...}}")?;
    let report = &request.report;
    let at = Timestamp::now();
    let admitted = state.reports.admit(name, std::time::Instant::now());
    if admitted.is_ok() {
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let summary = ReportSummary {
            changed: count(report.summary.changed),
            failed: count(report.summary.failed),
            skipped: count(report.summary.skipped),
            unchanged: count(report.summary.unchanged),
        };
        let stored = serde_json::to_value(&request)
            .map_err(|e| AppError::Internal(format!("re-encoding a report of '{name}': {e}")))?;
        state
            .store()
            .insert_report(name, at, summary, report.noop, &stored)
            .await?;
    }
    if !report.noop && report.has_failures() {
        state.notifier.run_failed(
            name,
            report
                .resources
                .iter()
                .filter(|r| r.status == vigo_proto::report::Status::Failed)
                .map(vigo_proto::report::ResourceResult::label)
                .collect(),
        );
    } else if !report.noop {
        state.notifier.run_clean(name);
    }
    if let Some(run) = &request.run_request {
        // Recorded even when the report itself is not stored (rate limit):
        // the operator waiting on `vigocli run` sees the outcome.
        let stored = serde_json::to_value(&request)
            .map_err(|e| AppError::Internal(format!("re-encoding a report of '{name}': {e}")))?;
        state
            .store()
            .record_run_result(run, name, at, super::runs::outcome(report), &stored)
            .await?;
    }
    if !report.noop && !report.secret_triggered_applied.is_empty() {
        let applied: Vec<&str> = report
            .secret_triggered_applied
            .iter()
            .map(String::as_str)
            .collect();
        if let Some(lag) = state.store().clear_triggers(name, &applied, at).await? {
            state.metrics.rotation_lag(name, lag);
            tracing::info!(envoy = %name, lag_ms = lag.as_millis(), "rotation applied");
        }
        let left = state.store().triggers_for(name).await?;
        state.metrics.queued_triggers(name, left.len());
    }
    if let Err(wait) = admitted {
        tracing::warn!(envoy = %name, "report not stored: the envoy sends reports faster than allowed");
        return Err(AppError::TooManyRequests {
            message: format!(
                "envoy '{name}' sent more than {} reports in a short time; this report was not stored (its applied triggers were cleared)",
                crate::REPORT_BURST
            ),
            retry_after_secs: wait.as_secs().max(1),
        });
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Reads a request body of at most `limit` bytes: a larger one (by its
/// `Content-Length`, or as it arrives) is a 413, and is not read further.
async fn read_limited(mut body: Body, limit: usize) -> Result<Vec<u8>, AppError> {
    use axum::body::HttpBody;
    let too_large = || {
        AppError::PayloadTooLarge(format!(
            "a report may be at most {limit} bytes; this one was not stored"
        ))
    };
    if usize::try_from(body.size_hint().lower()).map_or(true, |n| n > limit) {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        let frame = frame.map_err(|e| AppError::BadRequest(format!("reading the report: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}

// --- wait ----------------------------------------------------------------------------

/// `GET /v1/wait`. The wait is registered under the certificate's name
/// before the first look at the database, so a wake in between is not
/// lost; that first look is the authentication itself (force-push and the
/// count of queued triggers come with it), so an idle wait costs one query,
/// or two when triggers are queued. After that the database is read only
/// when something wakes the wait (`waiters.rs`, `fleet_wake.rs`).
pub(crate) async fn wait(
    State(state): State<AppState>,
    peer: Option<Extension<PeerCertificate>>,
) -> Result<Json<WaitResponse>, AppError> {
    let peer = peer.as_deref();
    let claimed = peer.and_then(|p| vigo_pki::envoy_name_from_cert(p.end_entity()).ok());
    let Some(claimed) = claimed else {
        // No certificate, or not an envoy's: the error authentication gives.
        authenticate(&state, peer).await?;
        return Err(AppError::Forbidden(
            "the client certificate does not name an envoy".to_owned(),
        ));
    };
    let name = claimed.as_str();
    let mut authenticated = false;
    let checkin_now = state
        .waiters
        .wait(name, Duration::from_secs(WAIT_HOLD_SECS), || {
            let first = !std::mem::replace(&mut authenticated, true);
            let state = &state;
            async move {
                let due = if first {
                    let envoy = authenticate(state, peer).await?;
                    envoy.force_push
                        || envoy.run_pending
                        || (envoy.queued_triggers > 0 && state.store().checkin_due(name).await?)
                } else {
                    state.store().checkin_due(name).await?
                };
                if first && !due {
                    tracing::debug!(envoy = %name, "holding a wait");
                }
                Ok::<_, AppError>(due)
            }
        })
        .await?;
    Ok(Json(WaitResponse { checkin_now }))
}
