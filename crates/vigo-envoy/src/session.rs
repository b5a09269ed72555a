//! HTTPS calls from an envoy to the server.
//!
//! The client trusts only the Vigo CA (`ca_cert`), never the system roots,
//! and presents the envoy's certificate once it has one.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use vigo_pki::CertifiedKey;
use vigo_proto::{
    ApiError, CheckinRequest, CheckinResponse, EnrollRequest, EnrollResponse, ReportRequest,
    WAIT_HOLD_SECS, WaitResponse,
};

/// Time allowed for an ordinary call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to the server for one identity.
#[derive(Debug, Clone)]
pub struct Session {
    base: String,
    client: reqwest::Client,
}

/// Why a call to the server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The server could not be reached (connection refused, timeout, TLS).
    #[error("server {server} not reachable: {cause}")]
    Unreachable {
        /// The server URL.
        server: String,
        /// What happened.
        cause: String,
    },
    /// The server refused this envoy (unknown, revoked or wrong certificate).
    #[error("the server refused this envoy: {message}")]
    Refused {
        /// The server's explanation.
        message: String,
    },
    /// The server answered with an error.
    #[error("the server answered {status}: {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// The server's explanation.
        message: String,
    },
    /// The TLS set-up failed (bad CA file, bad key).
    #[error("setting up TLS: {0}")]
    Tls(String),
}

impl SessionError {
    /// Whether retrying later may help (as opposed to a refusal).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
            || matches!(self, Self::Server { status, .. } if *status >= 500)
    }
}

impl Session {
    /// A session to `server` trusting `ca_pem`, presenting `identity` if any.
    pub fn new(
        server: &str,
        ca_pem: &str,
        identity: Option<&CertifiedKey>,
    ) -> Result<Self, SessionError> {
        let tls = vigo_pki::client_tls_config(ca_pem, identity)
            .map_err(|e| SessionError::Tls(vigo_log::error_chain(&e)))?;
        let mut tls = (*tls).clone();
        // reqwest is built without HTTP/2; offer only what it speaks.
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .https_only(true)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| SessionError::Tls(vigo_log::error_chain(&e)))?;
        Ok(Self {
            base: server.trim_end_matches('/').to_owned(),
            client,
        })
    }

    /// `POST /v1/enroll`.
    pub async fn enroll(&self, request: &EnrollRequest) -> Result<EnrollResponse, SessionError> {
        self.post("/v1/enroll", request, CALL_TIMEOUT).await
    }

    /// `POST /v1/checkin`.
    pub async fn checkin(&self, request: &CheckinRequest) -> Result<CheckinResponse, SessionError> {
        self.post("/v1/checkin", request, CALL_TIMEOUT).await
    }

    /// `POST /v1/report`.
    pub async fn report(&self, request: &ReportRequest) -> Result<(), SessionError> {
        let _: serde_json::Value = self.post("/v1/report", request, CALL_TIMEOUT).await?;
        Ok(())
    }

    /// `GET /v1/wait`: returns when the server wants a check-in now, or after
    /// its hold time with `checkin_now: false`.
    pub async fn wait(&self) -> Result<WaitResponse, SessionError> {
        let url = format!("{}/v1/wait", self.base);
        let response = self
            .client
            .get(&url)
            .timeout(Duration::from_secs(WAIT_HOLD_SECS + 15))
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        self.decode(response).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        route: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<T, SessionError> {
        let url = format!("{}{route}", self.base);
        let response = self
            .client
            .post(&url)
            .timeout(timeout)
            .json(body)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        self.decode(response).await
    }

    async fn decode<T: DeserializeOwned>(
        &self,
        response: reqwest::Response,
    ) -> Result<T, SessionError> {
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        if status.is_success() {
            let body: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
            let decoded = serde_json::from_slice(body).map_err(|e| SessionError::Server {
                status: status.as_u16(),
                message: format!("unreadable answer: {e}"),
            });
            wipe(bytes);
            return decoded;
        }
        let message = serde_json::from_slice::<ApiError>(&bytes)
            .map(|e| e.message)
            .unwrap_or_else(|_| status.canonical_reason().unwrap_or("error").to_owned());
        if status == reqwest::StatusCode::FORBIDDEN || status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(SessionError::Refused { message });
        }
        Err(SessionError::Server {
            status: status.as_u16(),
            message,
        })
    }

    fn unreachable(&self, error: &reqwest::Error) -> SessionError {
        // Walk to the innermost cause: "connection refused" says more than
        // "error sending request".
        let mut cause: &dyn std::error::Error = error;
        while let Some(inner) = cause.source() {
            cause = inner;
        }
        SessionError::Unreachable {
            server: self.base.clone(),
            cause: cause.to_string(),
        }
    }
}

/// Overwrites an answer's body once it is decoded: a catalog answer holds
/// secret values in plain JSON. Only a body this process owns alone can be
/// wiped; hyper's and rustls's own buffers are outside Vigo's reach
/// (docs/operations.md, "Security model").
fn wipe(body: bytes::Bytes) {
    if let Ok(mut owned) = body.try_into_mut() {
        zeroize::Zeroize::zeroize(&mut owned[..]);
    }
}
