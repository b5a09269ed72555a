//! `POST /v1/admin/notify/test` (bearer token, `vigocli notify test`): one
//! test mail through the configured SMTP server, sent now (not gathered
//! with the notifications), answered when the SMTP server has taken it.

use axum::Json;
use axum::extract::State;
use vigo_proto::admin::NotifyTestAnswer;

use super::Admin;
use crate::notify::{MailError, recipients_shown, send_mail, server_shown};
use crate::{AppError, AppState, error_chain};

/// Sends the test mail; 409 without an `smtp` section, 502 naming the SMTP
/// server and the cause when it fails.
pub(crate) async fn test_mail(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<NotifyTestAnswer>, AppError> {
    let config = state.config();
    let Some(smtp) = config.smtp.as_ref() else {
        return Err(AppError::Conflict(MailError::NotConfigured.to_string()));
    };
    let body = format!(
        "This is a test mail from vigosrv, sent by `vigocli notify test`.\n\nNotifications go to {} through {}, at most one mail every {}.\n",
        recipients_shown(smtp).join(", "),
        server_shown(smtp),
        humantime::format_duration(smtp.interval)
    );
    if let Err(e) = send_mail(smtp, "test mail", body).await {
        let message = error_chain(&e);
        tracing::warn!(error = %message, "test mail not sent");
        return Err(AppError::BadGateway(message));
    }
    tracing::info!(to = %recipients_shown(smtp).join(","), "test mail sent");
    Ok(Json(NotifyTestAnswer {
        to: recipients_shown(smtp),
        server: server_shown(smtp),
    }))
}
