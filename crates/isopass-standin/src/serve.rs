//! The accept loop: plain TCP or TLS, one task per connection, stopped by a
//! shutdown signal that also closes every open connection.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::StandinError;

/// How long a client gets to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the TLS acceptor from PEM files: the certificate chain and its key.
pub(crate) fn tls_acceptor(cert_file: &Path, key_file: &Path) -> Result<TlsAcceptor, StandinError> {
    let tls_error = |file: &Path, reason: String| StandinError::Tls {
        file: file.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| tls_error(cert_file, format!("cannot read the certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(tls_error(cert_file, "holds no PEM certificate".to_owned()));
    }
    // The key's own parse errors name no key material, only the PEM problem.
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| tls_error(key_file, format!("cannot read the private key PEM: {e}")))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(cert_file, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| tls_error(key_file, format!("does not match the certificate: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `router` on `listener` until `shutdown` turns true; then stops
/// accepting, ends every open connection and returns (closing the port).
pub(crate) async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => {
                // An accept error (e.g. too many open files) concerns one
                // connection; keep serving the others.
                if let Ok((stream, _peer)) = accepted {
                    connections.spawn(serve_connection(stream, tls.clone(), router.clone()));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

async fn serve_connection(stream: TcpStream, tls: Option<TlsAcceptor>, router: Router) {
    let service = TowerToHyperService::new(router);
    let builder = auto::Builder::new(TokioExecutor::new());
    // Connection errors (a client hanging up, a failed handshake) end only
    // that connection; the stand-in never logs, so they are dropped here.
    match tls {
        Some(acceptor) => {
            let Ok(Ok(stream)) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
            else {
                return;
            };
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
        None => {
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    }
}
