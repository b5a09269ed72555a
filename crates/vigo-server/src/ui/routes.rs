//! The dashboard's handlers. Reads call the same functions as the admin
//! API; the two POST actions (approve, revoke) need an admin session and
//! the session's CSRF token.
//!
//! A request without a live session is sent to the sign-in page (GET) or
//! refused with 403 (POST); a POST without the right CSRF token is 403.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use vigo_secrets::{SecretPath, SecretValue};
use vigo_store::Timestamp;

use super::Ui;
use super::csrf::{self, SIGNIN_COOKIE};
use super::pages::{self, EnvoyRow, SecretRow};
use super::sessions::{MAX_AGE, Role, SESSION_COOKIE, Session, cookie, random_hex, set_cookie};
use crate::AppError;
use crate::api::{admin, config as config_api, reports as reports_api, secrets as secrets_api};

/// The secret whose value signs in read-only viewers; sign-in as viewer is
/// off while it does not exist.
pub(crate) const VIEWER_TOKEN: &str = "vigo/server/ui_viewer_token";

/// How many of an envoy's reports its page lists.
const RECENT_RUNS: u32 = 10;

/// How long the sign-in form's double-submit cookie lives.
const SIGNIN_FORM_AGE: Duration = Duration::from_secs(60 * 60);

/// A signed-in GET request; without a live session the answer is a
/// redirect to the sign-in page.
pub(crate) struct SignedIn(Session);

impl FromRequestParts<Ui> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ui: &Ui) -> Result<Self, Response> {
        cookie(&parts.headers, SESSION_COOKIE)
            .and_then(|id| ui.sessions.get(id))
            .map(SignedIn)
            .ok_or_else(|| Redirect::to("/ui/signin").into_response())
    }
}

/// The session of a POST, checked: a live session and its CSRF token, and
/// for `needs_admin` an admin session. Anything else is 403 with the
/// returned reason ([`forbidden`]).
fn post_session(
    ui: &Ui,
    headers: &HeaderMap,
    csrf_field: Option<&str>,
    needs_admin: bool,
) -> Result<Session, &'static str> {
    let Some(session) = cookie(headers, SESSION_COOKIE).and_then(|id| ui.sessions.get(id)) else {
        return Err("not signed in (or the session expired): sign in again");
    };
    if !csrf::matches(&session.csrf, csrf_field) {
        tracing::warn!("dashboard form refused: missing or wrong CSRF token");
        return Err("the form's CSRF token is missing or wrong: reload the page and submit again");
    }
    if needs_admin && session.role != Role::Admin {
        return Err(
            "a viewer session is read-only: sign in with the admin token to approve or revoke",
        );
    }
    Ok(session)
}

/// The fields of an action form; a body that is no form (wrong content
/// type, bad encoding) has none, so the CSRF check refuses it with 403.
fn fields(form: Result<Form<ActionForm>, FormRejection>) -> ActionForm {
    form.map_or_else(|_| ActionForm::default(), |Form(f)| f)
}

fn forbidden(message: &str) -> Response {
    page(
        StatusCode::FORBIDDEN,
        pages::message_page(None, "Refused", message),
    )
}

/// An admin API error as a page with its status; internal causes are
/// logged, never shown.
fn error_page(session: &Session, error: AppError) -> Response {
    if let AppError::Internal(cause) = &error {
        tracing::error!(error = %cause, "dashboard request failed");
    }
    let (status, _, message) = error.parts();
    page(
        status,
        pages::message_page(Some(session), "Could not do that", &message),
    )
}

/// The page, or the error's page.
fn respond(session: &Session, page: Result<maud::Markup, AppError>) -> Response {
    match page {
        Ok(markup) => html(markup),
        Err(e) => error_page(session, e),
    }
}

fn html(markup: maud::Markup) -> Response {
    page(StatusCode::OK, markup)
}

fn page(status: StatusCode, markup: maud::Markup) -> Response {
    (status, axum::response::Html(markup.into_string())).into_response()
}

// --- sign-in ----------------------------------------------------------------------------

/// `GET /ui/signin`: the form, with a fresh double-submit value.
pub(crate) async fn signin_form(State(ui): State<Ui>, headers: HeaderMap) -> Response {
    if cookie(&headers, SESSION_COOKIE).is_some_and(|id| ui.sessions.get(id).is_some()) {
        return Redirect::to("/ui/").into_response();
    }
    signin_page(StatusCode::OK, None)
}

fn signin_page(status: StatusCode, problem: Option<&str>) -> Response {
    let Ok(nonce) = random_hex::<32>() else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the system random generator failed",
        )
            .into_response();
    };
    let mut response = page(status, pages::signin(&nonce, problem));
    if let Ok(value) = HeaderValue::from_str(&set_cookie(SIGNIN_COOKIE, &nonce, SIGNIN_FORM_AGE)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The sign-in form. The token is never logged or echoed back.
#[derive(Default, Deserialize)]
pub(crate) struct SignInForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    signin: Option<String>,
}

/// `POST /ui/signin`: admin token → admin session, viewer token → viewer
/// session, anything else → 401 and the form again.
pub(crate) async fn signin(
    State(ui): State<Ui>,
    remote: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Response {
    // A body that is no form has no sign-in value either: refused below.
    let form = form.map_or_else(|_| SignInForm::default(), |Form(f)| f);
    let expected = cookie(&headers, SIGNIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !csrf::matches(expected, form.signin.as_deref()) {
        return forbidden("the sign-in form expired or came from elsewhere: reload it and sign in");
    }
    let presented = SecretValue::from(form.token.trim());
    drop(zeroize::Zeroizing::new(form.token));
    let Some(role) = role_of(&ui, &presented).await else {
        let from = remote.map(|Extension(ConnectInfo(addr))| addr.ip().to_string());
        tracing::warn!(
            from = from.as_deref().unwrap_or("unknown"),
            "dashboard sign-in refused: wrong token"
        );
        return signin_page(
            StatusCode::UNAUTHORIZED,
            Some("That token is neither the admin token nor the viewer token."),
        );
    };
    let Ok((id, _)) = ui.sessions.create(role) else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the system random generator failed",
        )
            .into_response();
    };
    tracing::info!(role = role.as_str(), "dashboard sign-in");
    let mut response = Redirect::to("/ui/").into_response();
    for value in [
        set_cookie(SESSION_COOKIE, &id, MAX_AGE),
        set_cookie(SIGNIN_COOKIE, "", Duration::ZERO),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// The role `token` signs in as: the admin token, or the viewer token
/// when that secret exists (read at each sign-in, so a rotated or newly
/// set viewer token counts at once).
async fn role_of(ui: &Ui, token: &SecretValue) -> Option<Role> {
    if token.ct_eq(&ui.app.secrets.admin_token) {
        return Some(Role::Admin);
    }
    let path = SecretPath::parse(VIEWER_TOKEN).ok()?;
    match ui.app.provider.get(&path).await {
        Ok(viewer) if !viewer.value.expose_secret().is_empty() => {
            token.ct_eq(&viewer.value).then_some(Role::Viewer)
        }
        Ok(_) => None,
        Err(e) if e.is_not_found() => None,
        Err(e) => {
            tracing::error!(error = %crate::error_chain(&e), "reading the dashboard viewer token failed");
            None
        }
    }
}

/// The dashboard's action forms: the CSRF token, and for Approve the
/// fingerprint the operator read on the host.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ActionForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    fingerprint: Option<String>,
}

/// `POST /ui/signout`.
pub(crate) async fn signout(
    State(ui): State<Ui>,
    headers: HeaderMap,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    let form = fields(form);
    if let Err(reason) = post_session(&ui, &headers, form.csrf.as_deref(), false) {
        return forbidden(reason);
    }
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        ui.sessions.remove(id);
    }
    let mut response = Redirect::to("/ui/signin").into_response();
    if let Ok(value) = HeaderValue::from_str(&set_cookie(SESSION_COOKIE, "", Duration::ZERO)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

// --- pages ------------------------------------------------------------------------------

/// Where a status sorts on the overview: trouble first.
fn status_rank(status: &str) -> u8 {
    match status {
        "stale" => 0,
        "failed" => 1,
        "pending" => 2,
        "changed" => 3,
        "ok" => 4,
        _ => 5,
    }
}

async fn envoy_rows(ui: &Ui) -> Result<Vec<EnvoyRow>, AppError> {
    let now = Timestamp::now();
    let mut rows: Vec<EnvoyRow> = admin::fleet(&ui.app)
        .await?
        .iter()
        .map(|(record, last, state)| EnvoyRow {
            status: state.as_str(),
            checkin_age: record
                .last_checkin_at
                .map(|at| now.saturating_duration_since(at)),
            summary: admin::summary(record, last.as_ref(), *state),
        })
        .collect();
    rows.sort_by(|a, b| {
        (status_rank(a.status), &a.summary.name).cmp(&(status_rank(b.status), &b.summary.name))
    });
    Ok(rows)
}

/// `GET /ui/`: counts by status and every envoy, trouble first.
pub(crate) async fn overview(State(ui): State<Ui>, SignedIn(session): SignedIn) -> Response {
    let page = envoy_rows(&ui).await;
    respond(&session, page.map(|rows| pages::overview(&session, &rows)))
}

/// `GET /ui/envoys/{name}`.
pub(crate) async fn envoy(
    State(ui): State<Ui>,
    SignedIn(session): SignedIn,
    Path(name): Path<String>,
) -> Response {
    let result = async {
        let name = admin::envoy_name(&name)?;
        let (record, _, detail) = admin::envoy_detail(&ui.app, &name).await?;
        let status = admin::envoy_state(&ui.app, &record, Timestamp::now())
            .await?
            .as_str();
        let roles = ui.app.repo().repo.roles_of(&name, &record.facts);
        let runs = reports_api::of_envoy(&ui.app, &name, RECENT_RUNS).await?;
        Ok::<_, AppError>(pages::envoy(&session, &detail, status, &roles, &runs))
    }
    .await;
    respond(&session, result)
}

/// `GET /ui/reports/{id}`: one stored report, resource by resource.
pub(crate) async fn report(
    State(ui): State<Ui>,
    SignedIn(session): SignedIn,
    Path(id): Path<String>,
) -> Response {
    let detail = reports_api::detail(&ui.app, &id).await;
    respond(&session, detail.map(|d| pages::report(&session, &d)))
}

/// `GET /ui/enrollments`: the pending requests with their key fingerprints.
pub(crate) async fn enrollments(State(ui): State<Ui>, SignedIn(session): SignedIn) -> Response {
    let page = envoy_rows(&ui).await.map(|rows| {
        let pending: Vec<EnvoyRow> = rows.into_iter().filter(|r| r.status == "pending").collect();
        pages::enrollments(&session, &pending)
    });
    respond(&session, page)
}

/// `POST /ui/envoys/{name}/approve` (as `vigocli envoys approve NAME
/// --fingerprint FP`) and `POST /ui/envoys/{name}/revoke`: the action, for
/// a checked admin POST, then the envoy's page (or the action's error).
pub(crate) async fn envoy_action(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Path((raw_name, action)): Path<(String, String)>,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    let form = fields(form);
    let session = match post_session(&ui, &headers, form.csrf.as_deref(), true) {
        Ok(session) => session,
        Err(reason) => return forbidden(reason),
    };
    let result = async {
        let name = admin::envoy_name(&raw_name)?;
        match action.as_str() {
            "approve" => {
                let fingerprint = form
                    .fingerprint
                    .as_deref()
                    .map(str::trim)
                    .filter(|f| !f.is_empty());
                admin::approve_pending(&ui.app, &name, fingerprint).await?;
            }
            "revoke" => {
                admin::revoke(&ui.app, &name).await?;
            }
            other => {
                return Err(AppError::NotFound(format!(
                    "no action '{other}' on an envoy; the envoy page offers approve and revoke"
                )));
            }
        }
        Ok::<_, AppError>(name)
    }
    .await;
    match result {
        Ok(name) => Redirect::to(&format!("/ui/envoys/{name}")).into_response(),
        Err(e) => error_page(&session, e),
    }
}

/// History entries the secrets page shows, newest first.
const HISTORY_SHOWN: usize = 100;

/// `GET /ui/secrets`: every secret the server serves, its version, who
/// uses and watches it, and the latest history. Never a value.
pub(crate) async fn secrets(State(ui): State<Ui>, SignedIn(session): SignedIn) -> Response {
    let result = async {
        let mut rows = Vec::new();
        for (path, version) in ui.app.held_versions() {
            let users = secrets_api::secret_users(&ui.app, path.clone()).await?;
            rows.push(SecretRow {
                path,
                version,
                users: users.envoys,
            });
        }
        let mut history = secrets_api::secret_history(&ui.app, None).await?.entries;
        history.reverse();
        history.truncate(HISTORY_SHOWN);
        Ok::<_, AppError>(pages::secrets(&session, &rows, &history))
    }
    .await;
    respond(&session, result)
}

/// `GET /ui/config`: the serving revision and the last reload error.
pub(crate) async fn config(State(ui): State<Ui>, SignedIn(session): SignedIn) -> Response {
    html(pages::config(&session, &config_api::config_status(&ui.app)))
}

/// `GET /ui/static/vigo.css`.
pub(crate) async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("vigo.css"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trouble_sorts_first() {
        let order = ["stale", "failed", "pending", "changed", "ok", "revoked"];
        for pair in order.windows(2) {
            assert!(status_rank(pair[0]) < status_rank(pair[1]), "{pair:?}");
        }
    }
}
