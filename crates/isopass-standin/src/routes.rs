//! The HTTP routes: the isopass contract and Vigo's list/delete extension
//! (both in docs/secrets.md, "The API Vigo speaks").
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /v1/secrets/{path}` | 200 `{"path","version","value"}`; 404 |
//! | `PUT /v1/secrets/{path}` body `{"value"}` | 200 `{"path","version"}` |
//! | `POST /v1/versions` body `{"paths":[..]}` | 200 `{"versions":{path: version}}` |
//! | `GET /v1/secrets?prefix=p` (extension) | 200 `{"secrets":[{"path","version"}]}` |
//! | `DELETE /v1/secrets/{path}` (extension) | 204; 404 |
//! | anything without the right bearer token | 401 |
//!
//! Error answers carry no body beyond a short fixed reason: never a value.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::Shared;
use crate::store::Store;

/// What the handlers share.
pub(crate) struct AppState {
    pub(crate) shared: Arc<Shared>,
    pub(crate) token: Zeroizing<String>,
    pub(crate) store: Mutex<Store>,
}

impl AppState {
    fn store(&self) -> MutexGuard<'_, Store> {
        // A poisoned lock only means a handler panicked; the map is updated
        // in single inserts and removes, so it is consistent.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The router with the request counter, fault injection and token check in
/// front of every route.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/secrets", get(list))
        .route("/v1/secrets/{*path}", get(read).put(write).delete(remove))
        .route("/v1/versions", post(versions))
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .with_state(state)
}

/// Counts the request, answers 503 while failures are scheduled, then checks
/// the bearer token.
async fn gate(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    state.shared.requests.fetch_add(1, Ordering::SeqCst);
    let scheduled_failure = state
        .shared
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if scheduled_failure {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "scheduled failure");
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    match presented {
        Some(token) if equal_in_constant_time(token, state.token.as_bytes()) => {
            next.run(request).await
        }
        _ => plain(StatusCode::UNAUTHORIZED, "unauthorized"),
    }
}

fn equal_in_constant_time(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn plain(status: StatusCode, reason: &'static str) -> Response {
    (status, reason).into_response()
}

fn json<T: Serialize>(body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            bytes,
        )
            .into_response(),
        Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed"),
    }
}

#[derive(Serialize)]
struct ValueAnswer<'a> {
    path: &'a str,
    version: u64,
    value: &'a str,
}

async fn read(State(state): State<Arc<AppState>>, Path(path): Path<String>) -> Response {
    if !crate::valid_path(&path) {
        return plain(StatusCode::BAD_REQUEST, "invalid secret path");
    }
    let store = state.store();
    match store.get(&path) {
        Some((version, value)) => json(&ValueAnswer {
            path: &path,
            version,
            value,
        }),
        None => plain(StatusCode::NOT_FOUND, "not found"),
    }
}

#[derive(Deserialize)]
struct PutBody {
    value: String,
}

#[derive(Serialize)]
struct VersionAnswer<'a> {
    path: &'a str,
    version: u64,
}

async fn write(
    State(state): State<Arc<AppState>>,
    Path(path): Path<String>,
    body: Bytes,
) -> Response {
    if !crate::valid_path(&path) {
        return plain(StatusCode::BAD_REQUEST, "invalid secret path");
    }
    let Ok(parsed) = serde_json::from_slice::<PutBody>(&body) else {
        return plain(StatusCode::BAD_REQUEST, "expected {\"value\": string}");
    };
    let value = Zeroizing::new(parsed.value);
    let result = state.store().put(&path, value);
    match result {
        Ok(version) => json(&VersionAnswer {
            path: &path,
            version,
        }),
        Err(_) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "writing the data file failed",
        ),
    }
}

async fn remove(State(state): State<Arc<AppState>>, Path(path): Path<String>) -> Response {
    if !crate::valid_path(&path) {
        return plain(StatusCode::BAD_REQUEST, "invalid secret path");
    }
    let result = state.store().delete(&path);
    match result {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => plain(StatusCode::NOT_FOUND, "not found"),
        Err(_) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "writing the data file failed",
        ),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    prefix: String,
}

#[derive(Serialize)]
struct ListAnswer<'a> {
    secrets: Vec<VersionAnswer<'a>>,
}

async fn list(State(state): State<Arc<AppState>>, Query(query): Query<ListQuery>) -> Response {
    let store = state.store();
    let secrets = store
        .list(&query.prefix)
        .into_iter()
        .map(|(path, version)| VersionAnswer { path, version })
        .collect();
    json(&ListAnswer { secrets })
}

#[derive(Deserialize)]
struct VersionsBody {
    paths: Vec<String>,
}

#[derive(Serialize)]
struct VersionsAnswer<'a> {
    versions: BTreeMap<&'a str, u64>,
}

async fn versions(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let Ok(parsed) = serde_json::from_slice::<VersionsBody>(&body) else {
        return plain(StatusCode::BAD_REQUEST, "expected {\"paths\": [string]}");
    };
    if !parsed.paths.iter().all(|p| crate::valid_path(p)) {
        return plain(StatusCode::BAD_REQUEST, "invalid secret path");
    }
    let store = state.store();
    json(&VersionsAnswer {
        versions: store.versions(&parsed.paths),
    })
}
