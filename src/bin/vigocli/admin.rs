//! The client of the server's admin API: HTTPS trusting only the Vigo CA
//! (`vigo/tls/ca_cert`), authenticated by the bearer token
//! `vigo/server/admin_token`.
//!
//! The server is reached at its `listen` port, on 127.0.0.1 when it listens
//! on every address. The certificate is checked for the name `localhost`,
//! which every server certificate Vigo issues carries, so a server listening
//! on a specific address verifies as well.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use vigo_config::{RawConfig, fetch_secret, well_known};
use vigo_proto::ApiError;
use vigo_secrets::{SecretProvider, SecretValue};

/// How long to wait for the TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a whole request may take (`secrets/changed` answers once the
/// rotation flow has compiled every envoy's catalog).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The name the server certificate is verified for.
const SERVER_NAME: &str = "localhost";

/// Why an admin request did not succeed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AdminError {
    /// No answer: nothing listens, a timeout, or the TLS handshake failed.
    #[error("the server at {addr} is not reachable: {cause}")]
    Unreachable {
        /// Where the CLI tried.
        addr: SocketAddr,
        /// What failed.
        cause: String,
    },
    /// The server answered with an error status.
    #[error("the server refused the request: {status} {}", body.as_ref().map_or(String::new(), |b| format!("({}: {})", b.code, b.message)))]
    Refused {
        /// The HTTP status.
        status: reqwest::StatusCode,
        /// The error body, when it was one.
        body: Option<ApiError>,
    },
    /// The answer was not what the API promises.
    #[error("the server's answer could not be read: {cause}")]
    BadAnswer {
        /// What was wrong.
        cause: String,
    },
}

/// An authenticated admin API client.
#[derive(Debug)]
pub(crate) struct AdminClient {
    http: reqwest::Client,
    addr: SocketAddr,
    token: SecretValue,
}

impl AdminClient {
    /// Reads the CA certificate and the admin token from the backend and
    /// builds the client.
    pub(crate) async fn new(
        raw: &RawConfig,
        provider: &dyn SecretProvider,
    ) -> anyhow::Result<Self> {
        let ca = fetch_secret(provider, &well_known::path(well_known::CA_CERT)).await?;
        let token = fetch_secret(provider, &well_known::path(well_known::ADMIN_TOKEN))
            .await?
            .value;
        let tls = vigo_pki::client_tls_config(ca.value.expose_secret(), None)?;
        let addr = server_addr(raw.listen);
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(Arc::unwrap_or_clone(tls))
            .resolve(SERVER_NAME, addr)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .no_proxy()
            .build()?;
        Ok(Self { http, addr, token })
    }

    /// Opens the secrets backend of the server config `config` and builds
    /// the client from it.
    pub(crate) async fn open(config: &std::path::Path) -> anyhow::Result<Self> {
        let opened = crate::backend::open(config)?;
        Self::new(&opened.raw, &*opened.provider).await
    }

    /// `GET <route>`, expecting a JSON answer.
    pub(crate) async fn get<R: DeserializeOwned>(&self, route: &str) -> Result<R, AdminError> {
        let url = format!("https://{SERVER_NAME}:{}{route}", self.addr.port());
        self.send(self.http.get(url)).await
    }

    /// `POST <route>` with a JSON body, expecting a JSON answer.
    pub(crate) async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        route: &str,
        body: &B,
    ) -> Result<R, AdminError> {
        let url = format!("https://{SERVER_NAME}:{}{route}", self.addr.port());
        self.send(self.http.post(url).json(body)).await
    }

    async fn send<R: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<R, AdminError> {
        let response = request
            .bearer_auth(self.token.expose_secret())
            .send()
            .await
            .map_err(|e| AdminError::Unreachable {
                addr: self.addr,
                cause: vigo_log::error_chain(&e),
            })?;
        let status = response.status();
        if !status.is_success() {
            let body = response.json::<ApiError>().await.ok();
            return Err(AdminError::Refused { status, body });
        }
        response
            .json::<R>()
            .await
            .map_err(|e| AdminError::BadAnswer {
                cause: vigo_log::error_chain(&e),
            })
    }
}

/// Where to reach a server listening on `listen`.
fn server_addr(listen: SocketAddr) -> SocketAddr {
    if listen.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port())
    } else {
        listen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listen_addresses_are_reached_on_loopback() {
        let at = |s: &str| server_addr(s.parse().unwrap()).to_string();
        assert_eq!(at("0.0.0.0:8443"), "127.0.0.1:8443");
        assert_eq!(at("[::]:9000"), "127.0.0.1:9000");
        assert_eq!(at("10.1.2.3:8443"), "10.1.2.3:8443");
    }
}
