//! The admin routes of secrets (bearer token, `vigocli secrets`):
//!
//! - `POST /v1/admin/secrets/changed` (`{"path": P, "version": N}`) →
//!   [`SecretChangedAnswer`]: queues the change for the rotation flow
//!   (`rotation.rs`) and answers at once
//! - `GET /v1/admin/secrets/history?prefix=P` → [`History`]
//! - `GET /v1/admin/secrets/who-uses?path=P` → [`WhoUses`], from the secret
//!   index of each approved envoy's cached catalog

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use vigo_proto::admin::{
    History, HistoryEntry, SecretChanged, SecretChangedAnswer, SecretUser, WhoUses,
};
use vigo_secrets::SecretPath;
use vigo_store::{EnvoyStatus, Timestamp};

use super::{Admin, rfc3339};
use crate::rotation::Actor;
use crate::{AppError, AppState};

/// The admin routes of secrets: changed, history, who-uses.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/secrets/changed", post(secret_changed))
        .route("/v1/admin/secrets/history", get(history))
        .route("/v1/admin/secrets/who-uses", get(who_uses))
}

/// The CLI stored a secret: queue it for the flow and answer at once (the
/// flow waits [`COALESCE_WINDOW`](crate::rotation::COALESCE_WINDOW) for more changes, so a script's `set`s one
/// after another coalesce; its outcome is logged and recorded in the audit
/// log).
async fn secret_changed(
    _: Admin,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<SecretChangedAnswer>, AppError> {
    let change: SecretChanged = serde_json::from_slice(&body).map_err(|e| {
        AppError::BadRequest(format!(
            "expected a JSON body {{\"path\":\"a/b\",\"version\":N}}: {e}"
        ))
    })?;
    match change.version {
        Some(version) => tracing::info!(path = %change.path, version, "secret changed"),
        None => tracing::info!(path = %change.path, "secret changed"),
    }
    state
        .rotation
        .enqueue(BTreeSet::from([change.path]), Actor::Cli)
        .map_err(|e| {
            AppError::Internal(format!("rotation not queued: {}", crate::error_chain(&e)))
        })?;
    Ok(Json(SecretChangedAnswer::default()))
}

#[derive(Debug, serde::Deserialize)]
struct PrefixQuery {
    #[serde(default)]
    prefix: Option<String>,
}

async fn history(
    _: Admin,
    State(state): State<AppState>,
    Query(query): Query<PrefixQuery>,
) -> Result<Json<History>, AppError> {
    let prefix = query.prefix.as_deref().filter(|p| !p.is_empty());
    Ok(Json(secret_history(&state, prefix).await?))
}

/// Every change and delivery of the secrets under `prefix` (all without
/// one), oldest first: `vigocli secrets history` and the dashboard.
pub(crate) async fn secret_history(
    state: &AppState,
    prefix: Option<&str>,
) -> Result<History, AppError> {
    let store = state.store();
    let mut entries: Vec<(Timestamp, HistoryEntry)> = Vec::new();
    for change in store.secret_history(prefix).await? {
        entries.push((
            change.at,
            HistoryEntry {
                at: rfc3339(change.at),
                event: change.event.as_str().to_owned(),
                path: change.path,
                version: change.version,
                by: change.actor,
            },
        ));
    }
    for delivery in store.deliveries(None, None).await? {
        if prefix.is_some_and(|p| !delivery.path.has_prefix(p)) {
            continue;
        }
        entries.push((
            delivery.at,
            HistoryEntry {
                at: rfc3339(delivery.at),
                event: "delivered".to_owned(),
                path: delivery.path,
                version: delivery.version,
                by: delivery.envoy,
            },
        ));
    }
    entries.sort_by_key(|(at, _)| *at);
    Ok(History {
        entries: entries.into_iter().map(|(_, e)| e).collect(),
    })
}

#[derive(Debug, serde::Deserialize)]
struct PathQuery {
    path: String,
}

async fn who_uses(
    _: Admin,
    State(state): State<AppState>,
    Query(query): Query<PathQuery>,
) -> Result<Json<WhoUses>, AppError> {
    let path = SecretPath::parse(&query.path).map_err(|e| AppError::BadRequest(e.to_string()))?;
    Ok(Json(secret_users(&state, path).await?))
}

/// The approved envoys whose catalogs use or watch `path`, with the
/// resources that do: `vigocli secrets who-uses` and the dashboard.
pub(crate) async fn secret_users(state: &AppState, path: SecretPath) -> Result<WhoUses, AppError> {
    let envoys = state.store().list_envoys().await?;
    let mut users = Vec::new();
    for envoy in envoys {
        if envoy.status != EnvoyStatus::Approved {
            continue;
        }
        let Ok(compiled) = state.catalog(&envoy.name, &envoy.facts) else {
            continue;
        };
        let uses: Vec<String> = compiled
            .index
            .uses
            .get(&path)
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let watches: Vec<String> = compiled
            .index
            .watches
            .get(&path)
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        if !uses.is_empty() || !watches.is_empty() {
            users.push(SecretUser {
                envoy: envoy.name,
                uses,
                watches,
            });
        }
    }
    Ok(WhoUses {
        path,
        envoys: users,
    })
}
