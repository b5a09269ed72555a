//! The HTTP routes (see `vigo_proto` for the whole table), one module per
//! area:
//!
//! - `GET /healthz` → `ok`, or 503 naming the background tasks that are not
//!   running; `GET /metrics` → Prometheus text (here)
//! - envoy routes (`/v1/enroll`, `/v1/checkin`, `/v1/report`, `/v1/wait`):
//!   `api/envoy.rs`
//! - `/v1/admin/envoys...` (bearer token): `api/admin.rs`
//! - `/v1/admin/secrets/{changed,history,who-uses}` (bearer token):
//!   `api/secrets.rs`
//! - `/v1/admin/config/{reload,status}` (bearer token): `api/config.rs`
//! - `/v1/admin/runs`, `/v1/admin/runs/{id}` (bearer token): `api/runs.rs`
//! - `/v1/admin/reports...` (bearer token): `api/reports.rs`
//! - `POST /v1/admin/notify/test` (bearer token): `api/notify.rs`
//! - `/ui/...` (the web dashboard, signed-in sessions): `ui/`
//!
//! The handlers parse and answer; the work is in the modules they call
//! (`enroll.rs`, `rotation.rs`, `deploy.rs`, the store).

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use vigo_secrets::SecretValue;
use vigo_store::Timestamp;

use crate::{AppError, AppState};

pub(crate) mod admin;
pub(crate) mod config;
pub(crate) mod envoy;
pub(crate) mod notify;
pub(crate) mod reports;
pub(crate) mod runs;
pub(crate) mod secrets;

/// The server's router with every route, bound to `state`.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/enroll", post(envoy::enroll))
        .route("/v1/checkin", post(envoy::checkin))
        .route("/v1/report", post(envoy::report))
        .route("/v1/wait", get(envoy::wait))
        .route("/v1/admin/envoys", get(admin::list))
        .route("/v1/admin/envoys/token", post(admin::token))
        .route("/v1/admin/envoys/{name}", get(admin::show))
        .route(
            "/v1/admin/envoys/{name}/approve",
            post(admin::approve_envoy),
        )
        .route("/v1/admin/envoys/{name}/revoke", post(admin::revoke_envoy))
        .route("/v1/admin/envoys/{name}/remove", post(admin::remove_envoy))
        .route("/v1/admin/runs", post(runs::start))
        .route("/v1/admin/runs/{id}", get(runs::status))
        .route("/v1/admin/reports", get(reports::list))
        .route("/v1/admin/reports/{id}", get(reports::show))
        .merge(secrets::routes())
        .merge(config::routes())
        .route("/v1/admin/notify/test", post(notify::test_mail))
        .fallback(not_found)
        .with_state(state.clone())
        .merge(crate::ui::router(state))
}

/// `ok`, or 503 when a background task the server depends on (rotation,
/// config reloads, check-in writes) is not running.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let down = state.health.problems();
    if down.is_empty() {
        (StatusCode::OK, "ok".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "unhealthy: background task not running: {}",
                down.join(", ")
            ),
        )
    }
}

/// Prometheus text exposition (no authentication: the metrics carry envoy
/// names and counts, never secrets).
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render_with_store(&*state.store()).await,
    )
}

async fn not_found() -> AppError {
    AppError::NotFound("no such route".to_owned())
}

/// Proof that a request carried the admin token (`Authorization: Bearer
/// <vigo/server/admin_token>`, compared in constant time). Taking it as a
/// handler's first argument checks the token before anything else of the
/// request is read; without it the answer is 401.
#[derive(Debug)]
pub(crate) struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(AppError::Unauthorized)?;
        let presented = SecretValue::from(presented.trim());
        if presented.ct_eq(&state.secrets.admin_token) {
            Ok(Admin)
        } else {
            Err(AppError::Unauthorized)
        }
    }
}

/// `at` as RFC 3339 UTC to the second, the form admin answers carry.
pub(crate) fn rfc3339(at: Timestamp) -> String {
    humantime::format_rfc3339_seconds(at.to_system_time()).to_string()
}

/// Parses a JSON body; a mistake is a 400 naming what was expected.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8], expected: &str) -> Result<T, AppError> {
    serde_json::from_slice(body).map_err(|e| AppError::BadRequest(format!("{expected}: {e}")))
}
