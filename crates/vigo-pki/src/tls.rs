//! rustls configurations for Vigo's server and its clients.
//!
//! Both are built on an explicit aws-lc-rs provider rather than a
//! process-wide default, so they work the same whatever else the program
//! installs, and both trust only the Vigo CA: no system roots.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::PkiError;
use crate::authority::CertifiedKey;

/// The server's TLS configuration: presents `server`'s certificate, verifies
/// client certificates against `client_ca_pem` when one is offered, and also
/// accepts clients without one (enrollment and the admin API have none).
/// Handlers decide per route whether a verified envoy certificate is
/// required. ALPN offers `h2` and `http/1.1`.
pub fn server_tls_config(
    server: &CertifiedKey,
    client_ca_pem: &str,
) -> Result<Arc<ServerConfig>, PkiError> {
    let provider = provider();
    let roots = root_store(client_ca_pem, "client CA certificate")?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|source| PkiError::ClientVerifier { source })?;
    let tls_error = |source| PkiError::Tls {
        what: "server",
        source,
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            cert_chain(&server.cert_pem, "server certificate")?,
            private_key(server, "server private key")?,
        )
        .map_err(tls_error)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client TLS configuration that trusts only `ca_pem` and, when `identity`
/// is given, presents it as the client certificate.
///
/// No ALPN protocol is offered; an HTTP client that speaks HTTP/2 sets
/// `alpn_protocols` on a clone of the configuration.
pub fn client_tls_config(
    ca_pem: &str,
    identity: Option<&CertifiedKey>,
) -> Result<Arc<ClientConfig>, PkiError> {
    let tls_error = |source| PkiError::Tls {
        what: "client",
        source,
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_root_certificates(root_store(ca_pem, "CA certificate")?);
    let config = match identity {
        Some(identity) => builder
            .with_client_auth_cert(
                cert_chain(&identity.cert_pem, "client certificate")?,
                private_key(identity, "client private key")?,
            )
            .map_err(tls_error)?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Every certificate in a PEM text, in order; at least one.
fn cert_chain(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| PkiError::CertificatePem {
            what,
            reason: err.to_string(),
        })?;
    if certs.is_empty() {
        return Err(PkiError::CertificatePem {
            what,
            reason: "no certificate found".to_owned(),
        });
    }
    Ok(certs)
}

fn root_store(pem: &str, what: &'static str) -> Result<RootCertStore, PkiError> {
    let mut roots = RootCertStore::empty();
    for cert in cert_chain(pem, what)? {
        roots.add(cert).map_err(|err| PkiError::CertificateParse {
            what,
            reason: err.to_string(),
        })?;
    }
    Ok(roots)
}

fn private_key(key: &CertifiedKey, what: &'static str) -> Result<PrivateKeyDer<'static>, PkiError> {
    // The PEM error is dropped on purpose: it can quote the input.
    PrivateKeyDer::from_pem_slice(key.key_pem.expose_secret().as_bytes())
        .map_err(|_| PkiError::PrivateKeyPem { what })
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    use rustls_pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::{TlsAcceptor, TlsConnector};
    use vigo_secrets::SecretValue;

    use super::*;
    use crate::{
        envoy_name_from_cert, generate_ca, generate_envoy_key_and_csr, issue_server_cert,
        sign_envoy_csr,
    };

    struct Pki {
        ca: CertifiedKey,
        server: Arc<ServerConfig>,
    }

    fn pki() -> Pki {
        let ca = generate_ca("Vigo CA").unwrap();
        let server_key = issue_server_cert(
            &ca,
            &["localhost".to_owned()],
            &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
        )
        .unwrap();
        let server = server_tls_config(&server_key, &ca.cert_pem).unwrap();
        Pki { ca, server }
    }

    fn envoy(ca: &CertifiedKey, name: &str) -> CertifiedKey {
        let name = vigo_secrets::EnvoyName::parse(name).unwrap();
        let (key_pem, csr) = generate_envoy_key_and_csr(&name).unwrap();
        let cert_pem = sign_envoy_csr(ca, &csr, &name, Duration::from_secs(3600)).unwrap();
        CertifiedKey { cert_pem, key_pem }
    }

    /// Runs a handshake over an in-memory pipe and exchanges one byte.
    /// Returns the server's view: the envoy name of the client certificate,
    /// if any, or the server-side error.
    async fn handshake(
        server: Arc<ServerConfig>,
        client: Arc<ClientConfig>,
        server_name: &'static str,
    ) -> (Result<Option<String>, String>, Result<(), String>) {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let server_side = async move {
            let mut tls = TlsAcceptor::from(server)
                .accept(server_io)
                .await
                .map_err(|e| e.to_string())?;
            let name = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .map(|cert| envoy_name_from_cert(cert).unwrap().into_string());
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
            tls.write_all(&byte).await.map_err(|e| e.to_string())?;
            tls.flush().await.map_err(|e| e.to_string())?;
            Ok(name)
        };
        let client_side = async move {
            let name = ServerName::try_from(server_name).unwrap();
            let mut tls = TlsConnector::from(client)
                .connect(name, client_io)
                .await
                .map_err(|e| e.to_string())?;
            tls.write_all(b"v").await.map_err(|e| e.to_string())?;
            tls.flush().await.map_err(|e| e.to_string())?;
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
            assert_eq!(&byte, b"v");
            Ok(())
        };
        tokio::join!(server_side, client_side)
    }

    #[tokio::test]
    async fn handshakes_succeed_and_name_the_client_envoy() {
        // (server name the envoy dials, envoy certificate it presents)
        let cases = [
            ("localhost", Some("db1.example.com")),
            ("localhost", None),
            // The server certificate also holds the loopback address.
            ("127.0.0.1", None),
        ];
        for (server_name, envoy_name) in cases {
            let pki = pki();
            let identity = envoy_name.map(|name| envoy(&pki.ca, name));
            let client = client_tls_config(&pki.ca.cert_pem, identity.as_ref()).unwrap();
            let (server, client) = handshake(pki.server, client, server_name).await;
            assert_eq!(server.unwrap().as_deref(), envoy_name, "{server_name}");
            client.unwrap();
        }
    }

    /// `checking` refused its peer's certificate as untrusted, and the
    /// handshake failed on the `other` side too.
    fn assert_untrusted<T: std::fmt::Debug>(
        checking: Result<T, String>,
        other: Result<impl Sized, String>,
    ) {
        let err = checking.unwrap_err();
        assert!(err.contains("invalid peer certificate"), "{err}");
        assert!(other.is_err());
    }

    #[tokio::test]
    async fn a_certificate_from_another_ca_is_rejected_by_its_peer() {
        // Same name and key type as the real CA, another key.
        let rogue_ca = generate_ca("Vigo CA").unwrap();

        // The envoy's certificate: the server refuses it.
        let real = pki();
        let rogue = envoy(&rogue_ca, "db1.example.com");
        let client = client_tls_config(&real.ca.cert_pem, Some(&rogue)).unwrap();
        let (server, client) = handshake(real.server, client, "localhost").await;
        assert_untrusted(server, client);

        // The server's certificate: an envoy trusting another CA refuses it.
        let real = pki();
        let client = client_tls_config(&rogue_ca.cert_pem, None).unwrap();
        let (server, client) = handshake(real.server, client, "localhost").await;
        assert_untrusted(client, server);
    }

    #[tokio::test]
    async fn server_name_outside_the_certificate_is_rejected() {
        let pki = pki();
        let client = client_tls_config(&pki.ca.cert_pem, None).unwrap();
        let (_, client) = handshake(pki.server, client, "elsewhere.example.com").await;
        let err = client.unwrap_err();
        assert!(err.contains("not valid for name"), "{err}");
    }

    #[test]
    fn server_config_offers_h2_and_http1() {
        let pki = pki();
        assert_eq!(
            pki.server.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn bad_inputs_name_what_failed() {
        let pki = pki();
        let err = client_tls_config("", None).unwrap_err();
        assert!(err.to_string().contains("CA certificate"), "{err}");
        let identity = CertifiedKey {
            cert_pem: pki.ca.cert_pem.clone(),
            key_pem: SecretValue::from("canary-5d1e"),
        };
        let err = client_tls_config(&pki.ca.cert_pem, Some(&identity)).unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(
            text.contains("client private key") && !text.contains("canary-5d1e"),
            "{text}"
        );
        let err = server_tls_config(&identity, &pki.ca.cert_pem).unwrap_err();
        assert!(err.to_string().contains("server private key"), "{err}");
    }
}
