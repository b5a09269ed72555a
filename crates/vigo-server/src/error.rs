//! Errors: [`ServerError`] for startup and serving, [`AppError`] for HTTP
//! answers; `vigo_log::error_chain` prints either on one line.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use vigo_config::ConfigError;
use vigo_pki::PkiError;
use vigo_proto::ApiError;

use crate::error_chain;

/// Why the server could not start or stopped with a failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Reading `vigosrv.yaml`, opening the secrets backend, first start, or
    /// resolving a secret the server needs.
    #[error("loading server config")]
    Config(#[source] ConfigError),

    /// The TLS certificates in the secrets backend are unusable.
    #[error("setting up TLS")]
    Tls(#[source] PkiError),

    /// Writing `<data_dir>/ca.crt` (or creating `data_dir`) failed.
    #[error("writing {}", file.display())]
    WriteFile {
        /// The file or folder.
        file: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// The database named by `database.dsn` could not be opened.
    #[error("opening the database")]
    Store(#[source] vigo_store::StoreError),

    /// The config repository has errors or references a secret that cannot
    /// be resolved.
    #[error("loading config repository {}", dir.display())]
    Repo {
        /// `config_dir`.
        dir: PathBuf,
        /// What is wrong.
        #[source]
        source: Box<crate::repo::RepoError>,
    },

    /// The listen address could not be bound.
    #[error(
        "listening on {addr} (check `listen` in the server config and that no other process uses the port)"
    )]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl From<ConfigError> for ServerError {
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}

/// An HTTP error answer with a stable JSON body ([`ApiError`]).
///
/// Internal causes are logged here and never sent to the client; client
/// mistakes are not logged as errors.
#[derive(Debug)]
#[non_exhaustive]
pub(crate) enum AppError {
    /// Missing or wrong bearer token (401).
    Unauthorized,
    /// An envoy route was called without a client certificate (401).
    CertificateRequired,
    /// A valid client certificate is required or the caller may not do this
    /// (403).
    Forbidden(String),
    /// The request is malformed (400); the message says what to fix.
    BadRequest(String),
    /// No such route or object (404).
    NotFound(String),
    /// The request conflicts with what the server holds (409), e.g. a name
    /// already enrolled with another key.
    Conflict(String),
    /// The request body is larger than the route accepts (413).
    PayloadTooLarge(String),
    /// The caller sent more requests than allowed (429); retry after the
    /// given number of seconds.
    TooManyRequests {
        /// What was limited and what happened to the request.
        message: String,
        /// The `Retry-After` header, in seconds.
        retry_after_secs: u64,
    },
    /// A server Vigo talks to failed (502), e.g. the SMTP server; the
    /// message names it and says why.
    BadGateway(String),
    /// Something failed on the server (500); the cause is logged only.
    Internal(String),
}

impl AppError {
    pub(crate) fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or invalid bearer token".to_owned(),
            ),
            Self::CertificateRequired => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this route needs the envoy's client certificate; enroll first".to_owned(),
            ),
            Self::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m.clone()),
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m.clone()),
            Self::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m.clone()),
            Self::Conflict(m) => (StatusCode::CONFLICT, "conflict", m.clone()),
            Self::PayloadTooLarge(m) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                m.clone(),
            ),
            Self::TooManyRequests { message, .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                message.clone(),
            ),
            Self::BadGateway(m) => (StatusCode::BAD_GATEWAY, "bad_gateway", m.clone()),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal server error; see the server log".to_owned(),
            ),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let Self::Internal(cause) = &self {
            tracing::error!(error = %cause, "request failed");
        }
        let (status, code, message) = self.parts();
        let mut response = (
            status,
            Json(ApiError {
                code: code.to_owned(),
                message,
            }),
        )
            .into_response();
        if let Self::TooManyRequests {
            retry_after_secs, ..
        } = &self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        if matches!(self, Self::Unauthorized) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<vigo_store::StoreError> for AppError {
    /// A database failure is the server's problem: logged, never sent.
    fn from(e: vigo_store::StoreError) -> Self {
        Self::Internal(format!("database: {}", error_chain(&e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_secret_reads_as_specified() {
        let err = ServerError::Config(ConfigError::Resolve {
            path: vigo_secrets::SecretPath::parse("vigo/db/dsn").unwrap(),
            cause: vigo_secrets::SecretError::NotFound { backend: "local" },
        });
        assert_eq!(
            error_chain(&err),
            "loading server config: resolving secret 'vigo/db/dsn': file not found"
        );
    }
}
