//! The admin routes of config deploys (bearer token, `vigocli config`):
//!
//! - `POST /v1/admin/config/reload` → [`ConfigReloadAnswer`]: one reload
//!   (`deploy.rs`), answered when it is done
//! - `GET /v1/admin/config/status` → [`ConfigStatus`]: the serving revision,
//!   whether `config_dir` is watched, the last attempt and failure

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use vigo_proto::admin::{
    ConfigAttempt, ConfigFailure, ConfigReloadAnswer, ConfigRevision, ConfigStatus,
};

use super::{Admin, rfc3339};
use crate::deploy::{ReloadOutcome, ReloadSource, reload};
use crate::repo::Revision;
use crate::{AppError, AppState};

/// `POST /v1/admin/config/reload` and `GET /v1/admin/config/status`.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/config/reload", post(reload_route))
        .route("/v1/admin/config/status", get(status_route))
}

async fn reload_route(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<ConfigReloadAnswer>, AppError> {
    let outcome = reload(&state, ReloadSource::Cli).await;
    let serving = revision_of(&state.repo().revision);
    Ok(Json(match outcome {
        ReloadOutcome::Reloaded { changed } => ConfigReloadAnswer {
            ok: true,
            serving,
            changed_envoys: changed,
            errors: Vec::new(),
        },
        ReloadOutcome::Skipped => ConfigReloadAnswer {
            ok: true,
            serving,
            changed_envoys: Vec::new(),
            errors: Vec::new(),
        },
        ReloadOutcome::Failed(errors) => ConfigReloadAnswer {
            ok: false,
            serving,
            changed_envoys: Vec::new(),
            errors,
        },
    }))
}

async fn status_route(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<ConfigStatus>, AppError> {
    Ok(Json(config_status(&state)))
}

/// The serving revision and the last reload attempt and failure:
/// `vigocli config status` and the dashboard.
pub(crate) fn config_status(state: &AppState) -> ConfigStatus {
    let serving = revision_of(&state.repo().revision);
    let record = state.deploy.record();
    ConfigStatus {
        config_dir: state.deploy.config_dir().display().to_string(),
        watching: state.deploy.watching(),
        serving,
        loaded_by: record.loaded_by.as_str().to_owned(),
        last_attempt: record.last_attempt.map(|(at, by, ok)| ConfigAttempt {
            at: rfc3339(at),
            by: by.as_str().to_owned(),
            ok,
        }),
        last_failure: record.last_failure.map(|f| ConfigFailure {
            at: rfc3339(f.at),
            by: f.by.as_str().to_owned(),
            hash: f.hash,
            errors: f.problems,
        }),
    }
}

fn revision_of(revision: &Revision) -> ConfigRevision {
    ConfigRevision {
        hash: revision.hash.clone(),
        git_commit: revision.git_commit.clone(),
        loaded_at: rfc3339(revision.loaded_at),
    }
}
