//! The Vigo server (`vigosrv`) as a library; the binary only parses flags,
//! sets up logging and calls [`Server::start`] and [`Server::serve`].
//!
//! Main items:
//! - [`Server`]: startup (SPEC 4.2, 4.4) — config, secrets backend, first
//!   start, resolution of every secret, `<data_dir>/ca.crt`, TLS, the bound
//!   socket — then serving until a shutdown signal.
//! - [`AppState`] / [`State`]: what request handlers share (resolved config,
//!   secrets backend, the server's own [`ServerSecrets`]).
//! - [`router`]: the HTTP routes; [`serve_tls`]: the HTTPS accept loop that
//!   puts the client's verified certificate in each request as a
//!   [`PeerCertificate`] extension.
//! - [`ServerError`] (startup), [`AppError`] (stable JSON error answers) and
//!   [`error_chain`] (the one-line form of an error and its causes).

mod error;
mod listener;
mod routes;
mod startup;
mod state;

pub use error::{AppError, ServerError, error_chain};
pub use listener::{PeerCertificate, serve_tls};
pub use routes::{require_admin, router};
pub use startup::{Server, shutdown_signal};
pub use state::{AppState, ServerSecrets, State};
