//! The isopass backend (docs/secrets.md "The isopass backend"): secrets kept by an external HTTPS
//! API.
//!
//! The contract Vigo speaks, with `Authorization: Bearer <token>` on every
//! request:
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /v1/secrets/{path}` | 200 `{"path":"vigo/db/dsn","version":3,"value":"..."}`; 404 when
//! absent |
//! | `PUT /v1/secrets/{path}` body `{"value":"..."}` | 200 `{"path":"...","version":4}` |
//! | `POST /v1/versions` body `{"paths":["a/b","c/d"]}` | 200 `{"versions":{"a/b":3}}` (absent
//! paths omitted) |
//! | any, bad token | 401 |
//!
//! Vigo's extension, used by `list` and `delete` only (`vigocli secrets
//! list`/`delete`); resolution, rotation and bootstrap need just the table
//! above:
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /v1/secrets?prefix=vigo/` | 200 `{"secrets":[{"path":"vigo/db/dsn","version":3}]}` |
//! | `DELETE /v1/secrets/{path}` | 204 (or 200); 404 when absent |
//!
//! An isopass without the extension answers 404, 405 or 501 to the listing
//! request and 405 or 501 to `DELETE`; Vigo then reports
//! `isopass: listing secrets is not supported by this isopass (HTTP 405)`
//! (or `deleting`). A 404 to `DELETE` always means the secret is absent.
//!
//! Transport rules: `https://` only, except plain `http://` to a loopback
//! host (`127.0.0.0/8`, `::1`, `localhost`); 5 s to connect, 10 s per
//! request; redirects are not followed (they could carry the token
//! elsewhere). Connection failures and 5xx answers are retried twice (after
//! 200 ms, then 800 ms); 4xx answers and TLS failures never are. For `PUT`
//! and `DELETE` only failures to connect are retried, as a request that was
//! sent may have been applied; reads are also retried after timeouts and
//! dropped connections.
//!
//! The token is read once, at construction, from `token_file` (see
//! `isopass/token.rs` for the ownership and mode rules) and lives in a
//! [`SecretValue`]; errors carry the HTTP status or the transport cause,
//! never a body (it could hold a value) or the token.

mod cause;
mod token;
mod wire;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Certificate, Client, Method, Response, StatusCode, Url};
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::{SecretError, SecretInfo, SecretPath, SecretProvider, SecretValue, VersionedSecret};

/// The backend's name in errors and logs.
const BACKEND: &str = "isopass";
/// Time allowed to open a connection (TCP and TLS).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for one whole request, answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause before each retry; its length is the number of retries.
const BACKOFF: [Duration; 2] = [Duration::from_millis(200), Duration::from_millis(800)];

/// Where isopass is and how to authenticate to it (the `secrets:` keys of
/// the server config, docs/operations.md "The server").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsopassConfig {
    /// Base URL, e.g. `https://isopass.internal:8443`; a path after the host
    /// is kept as a prefix of `/v1/...`.
    pub url: String,
    /// File holding the bearer token (mode 0600, owned by root or the user
    /// running Vigo).
    pub token_file: PathBuf,
    /// PEM file with the CA certificate(s) to trust for isopass's TLS
    /// certificate. When given, ONLY these are trusted; without it, the
    /// platform's trust store is used.
    pub ca_file: Option<PathBuf>,
}

/// The isopass client. Cheap to clone: clones share the connection pool.
///
/// Its `Debug` shows the URL only; the token never appears in any output.
#[derive(Clone)]
pub struct IsopassProvider {
    inner: Arc<Inner>,
}

struct Inner {
    base: Url,
    token: SecretValue,
    client: Client,
}

/// Whether a request may be repeated after a transport failure that
/// happened once it may have been sent.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// Reads nothing but state: repeating it is harmless.
    Read,
    /// Changes state: repeated only when the connection never opened.
    Write,
}

impl IsopassProvider {
    /// Checks the URL, reads the token file and the optional CA file, and
    /// sets up the HTTP client. Nothing is sent to isopass yet.
    pub fn new(config: IsopassConfig) -> Result<IsopassProvider, SecretError> {
        let base = parse_base_url(&config.url)?;
        let token = token::read_token(&config.token_file)?;
        let mut builder = Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .https_only(base.scheme() == "https")
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("vigo/", env!("CARGO_PKG_VERSION")));
        if let Some(ca_file) = &config.ca_file {
            builder = builder.tls_certs_only(read_ca_file(ca_file)?);
        }
        let client = builder.build().map_err(|e| {
            config_error(format!(
                "setting up the HTTP client failed: {}",
                cause::transport_cause(&e)
            ))
        })?;
        Ok(IsopassProvider {
            inner: Arc::new(Inner {
                base,
                token,
                client,
            }),
        })
    }

    /// The base URL requests go to.
    pub fn url(&self) -> &str {
        self.inner.base.as_str()
    }

    /// `<base>/v1/<segments...>`, each segment percent-encoded as needed
    /// (secret paths never need it: they are `[A-Za-z0-9._-]` only).
    fn endpoint<'a>(&self, segments: impl IntoIterator<Item = &'a str>) -> Url {
        let mut url = self.inner.base.clone();
        // A base URL accepted by `parse_base_url` always has a path that
        // segments can be appended to (http or https with a host).
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push("v1").extend(segments);
        }
        url
    }

    fn secret_url(&self, path: &SecretPath) -> Url {
        self.endpoint(std::iter::once("secrets").chain(path.segments()))
    }

    /// `Bearer <token>` in a buffer that is zeroized once the request is
    /// done, marked sensitive so the HTTP stack never prints it.
    fn authorization(&self) -> Result<HeaderValue, SecretError> {
        let token = self.inner.token.expose_secret();
        let mut text = Zeroizing::new(Vec::with_capacity(7 + token.len()));
        text.extend_from_slice(b"Bearer ");
        text.extend_from_slice(token.as_bytes());
        let mut value = HeaderValue::from_maybe_shared(Bytes::from_owner(text))
            .map_err(|_| config_error("the token cannot be sent in an HTTP header".to_owned()))?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// Sends a request, retrying connection failures and 5xx answers (see
    /// the module docs), and returns the last answer, whatever its status.
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<Bytes>,
        effect: Effect,
    ) -> Result<Response, SecretError> {
        let mut attempt = 0;
        loop {
            let mut request = self
                .inner
                .client
                .request(method.clone(), url.clone())
                .header(AUTHORIZATION, self.authorization()?);
            if let Some(body) = &body {
                request = request
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let outcome = request.send().await;
            let retry = match &outcome {
                Ok(answer) => answer.status().is_server_error(),
                Err(e) if cause::is_tls(e) => false,
                Err(e) => {
                    e.is_connect() || (effect == Effect::Read && (e.is_timeout() || e.is_request()))
                }
            };
            match (outcome, BACKOFF.get(attempt)) {
                (outcome, Some(pause)) if retry => {
                    let cause = match &outcome {
                        Ok(answer) => format!("HTTP {}", answer.status().as_u16()),
                        Err(e) => cause::transport_cause(e),
                    };
                    tracing::debug!(%method, attempt = attempt + 1, %cause, "isopass request failed; retrying");
                    tokio::time::sleep(*pause).await;
                    attempt += 1;
                }
                (Ok(answer), _) => return Ok(answer),
                (Err(e), _) => return Err(unreachable(cause::transport_cause(&e))),
            }
        }
    }
}

impl fmt::Debug for IsopassProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IsopassProvider")
            .field("url", &self.inner.base.as_str())
            .field("token", &"[REDACTED]")
            .finish()
    }
}

#[async_trait]
impl SecretProvider for IsopassProvider {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn get(&self, path: &SecretPath) -> Result<VersionedSecret, SecretError> {
        let answer = self
            .send(Method::GET, self.secret_url(path), None, Effect::Read)
            .await?;
        let answer: wire::ValueAnswer = read_json(success(answer)?, "GET /v1/secrets").await?;
        if answer.path != path.as_str() {
            return Err(backend_error(
                "answered GET /v1/secrets with another secret's path".to_owned(),
            ));
        }
        Ok(VersionedSecret {
            value: answer.value,
            version: answer.version,
        })
    }

    async fn set(&self, path: &SecretPath, value: &SecretValue) -> Result<u64, SecretError> {
        let body = wire::put_body(value)
            .map_err(|_| backend_error("encoding the request body failed".to_owned()))?;
        let answer = self
            .send(
                Method::PUT,
                self.secret_url(path),
                Some(body),
                Effect::Write,
            )
            .await?;
        let answer: wire::PutAnswer = read_json(success(answer)?, "PUT /v1/secrets").await?;
        Ok(answer.version)
    }

    /// Uses Vigo's listing extension (see the module docs); an isopass
    /// without it gives "listing secrets is not supported by this isopass".
    async fn list(&self, prefix: &str) -> Result<Vec<SecretInfo>, SecretError> {
        let mut url = self.endpoint(["secrets"]);
        url.query_pairs_mut().append_pair("prefix", prefix);
        let answer = self.send(Method::GET, url, None, Effect::Read).await?;
        if is_unsupported(answer.status(), true) {
            return Err(unsupported("listing", answer.status()));
        }
        let answer: wire::ListAnswer = read_json(success(answer)?, "GET /v1/secrets").await?;
        let mut found = BTreeMap::new();
        for entry in answer.secrets {
            let path = SecretPath::parse(&entry.path).map_err(|_| {
                backend_error("answered the listing with an invalid secret path".to_owned())
            })?;
            if path.has_prefix(prefix) {
                found.insert(path, entry.version);
            }
        }
        Ok(found
            .into_iter()
            .map(|(path, version)| SecretInfo { path, version })
            .collect())
    }

    /// Uses Vigo's delete extension (see the module docs); an isopass
    /// without it gives "deleting secrets is not supported by this isopass".
    async fn delete(&self, path: &SecretPath) -> Result<(), SecretError> {
        let answer = self
            .send(Method::DELETE, self.secret_url(path), None, Effect::Write)
            .await?;
        if is_unsupported(answer.status(), false) {
            return Err(unsupported("deleting", answer.status()));
        }
        success(answer).map(drop)
    }

    async fn versions(
        &self,
        paths: &[SecretPath],
    ) -> Result<BTreeMap<SecretPath, u64>, SecretError> {
        if paths.is_empty() {
            return Ok(BTreeMap::new());
        }
        let request = wire::VersionsRequest {
            paths: paths.iter().map(SecretPath::as_str).collect(),
        };
        let body = serde_json::to_vec(&request)
            .map_err(|_| backend_error("encoding the request body failed".to_owned()))?;
        let answer = self
            .send(
                Method::POST,
                self.endpoint(["versions"]),
                Some(Bytes::from(body)),
                Effect::Read,
            )
            .await?;
        let answer: wire::VersionsAnswer = read_json(success(answer)?, "POST /v1/versions").await?;
        // Only what was asked for: an answer naming other paths adds nothing.
        Ok(paths
            .iter()
            .filter_map(|p| {
                answer
                    .versions
                    .get(p.as_str())
                    .map(|version| (p.clone(), *version))
            })
            .collect())
    }
}

/// Parses and checks the configured URL: http(s) with a host, no
/// credentials, query or fragment, and plain http only to loopback.
fn parse_base_url(text: &str) -> Result<Url, SecretError> {
    // The parser's message names the problem, never the input.
    let url = Url::parse(text).map_err(|e| {
        config_error(format!(
            "url is not a valid URL ({e}); write it as https://host:port"
        ))
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(config_error(
            "url must not carry credentials; put the token in token_file".to_owned(),
        ));
    }
    let host = url.host_str().unwrap_or_default();
    if host.is_empty() {
        return Err(config_error(format!("url {url} names no host")));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(config_error(format!(
            "url {url} must not have a query or fragment; write it as https://host:port"
        )));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(host) => Ok(url),
        "http" => Err(config_error(format!(
            "url {url} uses plain http:// to a host that is not loopback; use https:// (plain http is accepted only for 127.0.0.1, ::1 and localhost)"
        ))),
        other => Err(config_error(format!(
            "url {url} has scheme '{other}'; isopass is reached over https://"
        ))),
    }
}

/// `localhost`, `127.0.0.0/8` or `::1` (written `[::1]` in a URL).
fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The CA certificates in `file`, PEM; at least one.
fn read_ca_file(file: &Path) -> Result<Vec<Certificate>, SecretError> {
    let shown = file.display();
    let pem = std::fs::read(file).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            config_error(format!(
                "ca_file {shown} does not exist; check ca_file in the server config"
            ))
        } else {
            SecretError::Io {
                action: "reading isopass ca_file",
                file: file.to_path_buf(),
                cause: source,
            }
        }
    })?;
    let certs = Certificate::from_pem_bundle(&pem).map_err(|_| {
        config_error(format!(
            "ca_file {shown} is not a PEM certificate bundle; point it at the CA certificate (-----BEGIN CERTIFICATE-----)"
        ))
    })?;
    if certs.is_empty() {
        return Err(config_error(format!(
            "ca_file {shown} holds no certificate; point it at the CA certificate (-----BEGIN CERTIFICATE-----)"
        )));
    }
    Ok(certs)
}

/// The answer itself when its status is 2xx; otherwise the matching error.
fn success(answer: Response) -> Result<Response, SecretError> {
    let status = answer.status();
    if status.is_success() {
        return Ok(answer);
    }
    Err(match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            SecretError::Unauthorized { backend: BACKEND }
        }
        StatusCode::NOT_FOUND => SecretError::NotFound { backend: BACKEND },
        other => backend_error(format!("HTTP {}", other.as_u16())),
    })
}

/// Whether `status` says the isopass lacks an extension endpoint. A 404 on
/// the listing URL means that; on a secret's URL it means "absent".
fn is_unsupported(status: StatusCode, not_found_too: bool) -> bool {
    status == StatusCode::METHOD_NOT_ALLOWED
        || status == StatusCode::NOT_IMPLEMENTED
        || (not_found_too && status == StatusCode::NOT_FOUND)
}

fn unsupported(action: &str, status: StatusCode) -> SecretError {
    backend_error(format!(
        "{action} secrets is not supported by this isopass (HTTP {})",
        status.as_u16()
    ))
}

/// Reads the whole answer into a zeroizing buffer and parses it. A parse
/// failure is reported without the parser's message, which can quote the
/// body.
async fn read_json<T: DeserializeOwned>(
    mut answer: Response,
    what: &'static str,
) -> Result<T, SecretError> {
    let expected = answer
        .content_length()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(1024)
        .min(wire::MAX_ANSWER);
    let mut buf = Zeroizing::new(Vec::with_capacity(expected));
    while let Some(chunk) = answer
        .chunk()
        .await
        .map_err(|e| unreachable(cause::transport_cause(&e)))?
    {
        if buf.len() + chunk.len() > wire::MAX_ANSWER {
            return Err(backend_error(format!(
                "answer to {what} is larger than {} MiB",
                wire::MAX_ANSWER >> 20
            )));
        }
        wire::append(&mut buf, &chunk);
    }
    serde_json::from_slice(&buf).map_err(|_| {
        backend_error(format!(
            "unexpected answer to {what} (not the JSON of the isopass API)"
        ))
    })
}

/// A configuration problem (URL, token file, CA file), worded as
/// `isopass: <what is wrong>; <what to do>`. [`SecretError`] has no variant
/// for remote-backend configuration, so it travels as `Backend`.
fn config_error(cause: String) -> SecretError {
    backend_error(cause)
}

/// An unexpected answer: its status or shape, never its body.
fn backend_error(cause: String) -> SecretError {
    SecretError::Backend {
        backend: BACKEND,
        cause,
    }
}

fn unreachable(cause: String) -> SecretError {
    SecretError::Unreachable {
        backend: BACKEND,
        cause,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised() {
        for host in ["localhost", "LOCALHOST", "127.0.0.1", "127.8.9.10", "[::1]"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "example.com",
            "10.0.0.1",
            "[::2]",
            "localhost.example.com",
            "0.0.0.0",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn base_urls_are_checked() {
        assert!(parse_base_url("https://isopass.internal:8443").is_ok());
        assert!(parse_base_url("http://127.0.0.1:9000").is_ok());
        assert!(parse_base_url("http://[::1]:9000/").is_ok());
        let plain = parse_base_url("http://isopass.internal:8443").unwrap_err();
        assert!(plain.to_string().contains("not loopback"), "{plain}");
        let creds = parse_base_url("https://user:canary-pw@isopass.internal").unwrap_err();
        assert!(!creds.to_string().contains("canary-pw"), "{creds}");
        assert!(parse_base_url("ftp://isopass.internal").is_err());
        assert!(parse_base_url("isopass.internal:8443").is_err());
        assert!(parse_base_url("https://isopass.internal/?x=1").is_err());
    }

    #[test]
    fn endpoints_keep_a_base_path() {
        let provider = |url: &str| IsopassProvider {
            inner: Arc::new(Inner {
                base: parse_base_url(url).unwrap(),
                token: SecretValue::from("t"),
                client: Client::new(),
            }),
        };
        let path = SecretPath::parse("vigo/db/dsn").unwrap();
        assert_eq!(
            provider("https://h:1").secret_url(&path).as_str(),
            "https://h:1/v1/secrets/vigo/db/dsn"
        );
        assert_eq!(
            provider("https://h:1/isopass/")
                .endpoint(["versions"])
                .as_str(),
            "https://h:1/isopass/v1/versions"
        );
    }
}
