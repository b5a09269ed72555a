//! `isopass-standin`: a development stand-in for the isopass secrets API.
//!
//! **This is not a product and not a secrets store to run in production.**
//! It exists so that Vigo's isopass client (`vigo_secrets::IsopassProvider`)
//! can be developed and tested without a real isopass: it speaks the HTTP
//! contract of docs/secrets.md, "The API Vigo speaks" (bearer token, `GET`/`PUT /v1/secrets/{path}`,
//! `POST /v1/versions`) plus Vigo's extension for listing
//! (`GET /v1/secrets?prefix=`) and deleting (`DELETE /v1/secrets/{path}`).
//! Values are kept in memory and, with a data file, in plain JSON (mode
//! 0600): it offers none of the protection a real secrets service gives.
//!
//! Main items:
//! - [`spawn`] starts a stand-in inside the current tokio runtime and gives a
//!   [`Handle`] (its address, fault injection, request count, shutdown).
//! - [`StandinOptions`] and [`Transport`]: where to listen, TLS or plain HTTP
//!   on loopback, the token, the data file.
//! - [`StandinError`]: what stopped it from starting.
//!
//! The stand-in never logs: no request, path or value reaches any output.

mod routes;
mod serve;
mod store;

use std::fmt;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use crate::routes::AppState;
use crate::store::Store;

/// How the stand-in talks to its clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// HTTPS with the certificate chain and private key in these PEM files.
    Tls {
        /// Certificate chain, PEM (server certificate first).
        cert_file: PathBuf,
        /// Private key, PEM (PKCS#8, PKCS#1 or SEC1).
        key_file: PathBuf,
    },
    /// Plain HTTP; only allowed on a loopback address.
    InsecureLoopback,
}

/// Everything [`spawn`] needs. Its `Debug` does not show the token.
#[derive(Clone)]
pub struct StandinOptions {
    /// Where to listen; port 0 picks a free port (see [`Handle::addr`]).
    pub listen: SocketAddr,
    /// The bearer token every request must present.
    pub token: Zeroizing<String>,
    /// TLS or plain loopback HTTP.
    pub transport: Transport,
    /// JSON file that keeps the secrets across restarts; `None` keeps them
    /// in memory only.
    pub data_file: Option<PathBuf>,
}

impl fmt::Debug for StandinOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandinOptions")
            .field("listen", &self.listen)
            .field("token", &"[REDACTED]")
            .field("transport", &self.transport)
            .field("data_file", &self.data_file)
            .finish()
    }
}

/// Why the stand-in could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StandinError {
    /// The token file is unusable.
    #[error("token file {}: {problem}", file.display())]
    Token {
        /// The token file.
        file: PathBuf,
        /// What is wrong and what to do.
        problem: String,
    },
    /// The token given in the options is unusable.
    #[error("the token is empty or holds characters not allowed in an HTTP header")]
    BadToken,
    /// Plain HTTP was asked for on a non-loopback address.
    #[error(
        "refusing plain HTTP on {addr}: --insecure-loopback needs a loopback address (127.0.0.1, ::1); use --tls-cert and --tls-key otherwise"
    )]
    NotLoopback {
        /// The requested address.
        addr: SocketAddr,
    },
    /// A TLS file is unusable.
    #[error("TLS file {}: {reason}", file.display())]
    Tls {
        /// The certificate or key file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The data file exists but cannot be used.
    #[error("data file {}: {reason}", file.display())]
    Data {
        /// The data file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The listening socket could not be opened.
    #[error("listening on {addr}")]
    Bind {
        /// The requested address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A file operation failed. Like `Bind`, the message leaves the OS
    /// error to the source (`vigo_log::error_chain` prints both).
    #[error("{action} {}", file.display())]
    Io {
        /// What the stand-in was doing.
        action: &'static str,
        /// The file.
        file: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Counters and switches shared between a running stand-in and its handle.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) requests: AtomicU64,
    pub(crate) fail_next: AtomicU32,
}

/// A running stand-in.
#[derive(Debug)]
pub struct Handle {
    /// The address it listens on (with the real port when port 0 was asked).
    pub addr: SocketAddr,
    options: StandinOptions,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Handle {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers the next `count` requests with `503 Service Unavailable`
    /// (before the token check), to exercise a client's retries.
    pub fn fail_next(&self, count: u32) {
        self.shared.fail_next.store(count, Ordering::SeqCst);
    }

    /// How many requests have arrived so far, failed and refused ones
    /// included.
    pub fn requests_seen(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// The options this stand-in runs with, its actual address in `listen`:
    /// pass them to [`spawn`] after [`Handle::shutdown`] to restart it on the
    /// same port and data file.
    pub fn restart_options(&self) -> StandinOptions {
        StandinOptions {
            listen: self.addr,
            ..self.options.clone()
        }
    }

    /// Stops accepting, closes every open connection and waits until the
    /// port is closed.
    pub async fn shutdown(self) {
        // The receiver lives in the task; if it already ended, there is
        // nothing left to stop.
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts a stand-in on the current tokio runtime and returns once it
/// listens.
pub async fn spawn(options: StandinOptions) -> Result<Handle, StandinError> {
    if options.token.is_empty() || !options.token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(StandinError::BadToken);
    }
    let tls = match &options.transport {
        Transport::Tls {
            cert_file,
            key_file,
        } => Some(serve::tls_acceptor(cert_file, key_file)?),
        Transport::InsecureLoopback if !options.listen.ip().is_loopback() => {
            return Err(StandinError::NotLoopback {
                addr: options.listen,
            });
        }
        Transport::InsecureLoopback => None,
    };
    let store = Store::open(options.data_file.clone())?;
    let listener =
        TcpListener::bind(options.listen)
            .await
            .map_err(|source| StandinError::Bind {
                addr: options.listen,
                source,
            })?;
    let addr = listener.local_addr().map_err(|source| StandinError::Bind {
        addr: options.listen,
        source,
    })?;
    let shared = Arc::new(Shared::default());
    let state = Arc::new(AppState {
        shared: shared.clone(),
        token: options.token.clone(),
        store: Mutex::new(store),
    });
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(serve::accept_loop(
        listener,
        tls,
        routes::router(state),
        stopped,
    ));
    Ok(Handle {
        addr,
        options,
        shared,
        stop,
        task,
    })
}

/// Reads a bearer token from `file`: surrounding whitespace is dropped; an
/// empty file, or one with characters not allowed in an HTTP header, is
/// refused.
pub fn read_token_file(file: &Path) -> Result<Zeroizing<String>, StandinError> {
    let token_error = |problem: &str| StandinError::Token {
        file: file.to_path_buf(),
        problem: problem.to_owned(),
    };
    let mut raw = Zeroizing::new(Vec::new());
    std::fs::File::open(file)
        .and_then(|f| f.take(64 * 1024).read_to_end(&mut raw))
        .map_err(|source| StandinError::Io {
            action: "reading the token file",
            file: file.to_path_buf(),
            source,
        })?;
    let token = raw.trim_ascii();
    if token.is_empty() {
        return Err(token_error("is empty; write the token into it"));
    }
    if !token.iter().all(u8::is_ascii_graphic) {
        return Err(token_error(
            "holds characters not allowed in an HTTP header; write the token alone on one line",
        ));
    }
    let mut text = Zeroizing::new(String::with_capacity(token.len()));
    // Every byte is visible ASCII (checked above), so each is one char.
    text.extend(token.iter().map(|&b| char::from(b)));
    Ok(text)
}

/// Whether `path` is a valid secret path (docs/secrets.md, "References"):
/// `/`-separated segments of `[A-Za-z0-9._-]`, none empty, `.` or `..`, at
/// most 256 bytes.
pub(crate) fn valid_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 256
        && path.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

/// Whether `path` lies under `prefix`, comparing whole segments; an empty
/// prefix matches everything.
pub(crate) fn has_prefix(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty()
        || path == prefix
        || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn paths_follow_the_secret_path_rules() {
        for ok in ["a", "vigo/db/dsn", "x.y_z-1/B2"] {
            assert!(valid_path(ok), "{ok}");
        }
        for bad in ["", "/a", "a/", "a//b", "a/../b", ".", "a b", "dé"] {
            assert!(!valid_path(bad), "{bad:?}");
        }
        assert!(!valid_path(&"a".repeat(257)));
    }

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(has_prefix("vigo/db/dsn", ""));
        assert!(has_prefix("vigo/db/dsn", "vigo/"));
        assert!(has_prefix("vigo/db/dsn", "vigo/db/dsn"));
        assert!(!has_prefix("vigo/dbx", "vigo/db"));
    }

    #[test]
    fn token_file_is_trimmed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "tok-123\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_token_file(&file).unwrap().as_str(), "tok-123");
        std::fs::write(&file, " \n").unwrap();
        assert!(
            read_token_file(&file)
                .unwrap_err()
                .to_string()
                .contains("is empty")
        );
        std::fs::write(&file, "a b").unwrap();
        assert!(matches!(
            read_token_file(&file),
            Err(StandinError::Token { .. })
        ));
    }

    #[test]
    fn issue_13_io_error_says_the_os_error_once() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-token");
        let err = read_token_file(&missing).unwrap_err();
        let os_error = io::Error::from(io::ErrorKind::NotFound).to_string();
        assert!(!err.to_string().contains(&os_error), "{err}");
        let line = vigo_log::error_chain(&err);
        assert_eq!(
            line,
            format!(
                "reading the token file {}: No such file or directory (os error 2)",
                missing.display()
            )
        );
    }

    #[tokio::test]
    async fn issue_13_bind_error_says_the_os_error_once() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let options = StandinOptions {
            listen: taken.local_addr().unwrap(),
            token: Zeroizing::new("tok".to_owned()),
            transport: Transport::InsecureLoopback,
            data_file: None,
        };
        let err = spawn(options).await.unwrap_err();
        assert!(matches!(err, StandinError::Bind { .. }), "{err}");
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert!(!err.to_string().contains(&cause), "{err}");
        assert_eq!(vigo_log::error_chain(&err), format!("{err}: {cause}"));
    }

    #[test]
    fn debug_hides_the_token() {
        let options = StandinOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            token: Zeroizing::new("canary-token-1".to_owned()),
            transport: Transport::InsecureLoopback,
            data_file: None,
        };
        let shown = format!("{options:?}");
        assert!(!shown.contains("canary-token-1"), "{shown}");
        assert!(shown.contains("[REDACTED]"));
    }
}
