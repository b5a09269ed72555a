//! The web dashboard under `/ui`, on the same HTTPS listener as the API.
//! Browsers connect without a client certificate (the listener accepts
//! that; the envoy routes still refuse such requests), and sign in with
//! the admin token or, read-only, with `vigo/server/ui_viewer_token`.
//!
//! - `routes.rs`: the handlers, which call the same functions as the admin
//!   API (`api/admin.rs`, `api/secrets.rs`, `api/config.rs`);
//! - `sessions.rs`: server-side sessions; `csrf.rs`: form tokens;
//! - `pages.rs`: the HTML (maud, escaped by default), `vigo.css`.
//!
//! Every answer carries a strict Content-Security-Policy (no script at
//! all, styles only from `/ui/static/`), `nosniff`, no referrer and, for
//! pages, `Cache-Control: no-store`.

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::middleware::map_response;
use axum::response::Response;
use axum::routing::{get, post};

use crate::AppState;

mod csrf;
mod pages;
mod routes;
mod sessions;

/// The Content-Security-Policy of every dashboard answer.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What the dashboard's handlers share: the server's state and this
/// process's sessions.
#[derive(Debug, Clone)]
pub(crate) struct Ui {
    app: AppState,
    sessions: Arc<sessions::Sessions>,
}

/// The `/ui` routes, bound to `state`.
pub(crate) fn router(state: AppState) -> Router {
    let ui = Ui {
        app: state,
        sessions: Arc::default(),
    };
    Router::new()
        .route("/ui", get(routes::overview))
        .route("/ui/", get(routes::overview))
        .route("/ui/signin", get(routes::signin_form).post(routes::signin))
        .route("/ui/signout", post(routes::signout))
        .route("/ui/envoys/{name}", get(routes::envoy))
        .route("/ui/envoys/{name}/{action}", post(routes::envoy_action))
        .route("/ui/reports/{id}", get(routes::report))
        .route("/ui/enrollments", get(routes::enrollments))
        .route("/ui/secrets", get(routes::secrets))
        .route("/ui/config", get(routes::config))
        .route("/ui/static/vigo.css", get(routes::stylesheet))
        .layer(map_response(security_headers))
        .with_state(ui)
}

/// Adds the security headers; pages are never cached (the stylesheet
/// sets its own `Cache-Control`).
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
