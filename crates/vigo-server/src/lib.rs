//! The Vigo server (`vigosrv`) as a library; the binary only parses flags,
//! sets up logging and calls [`Server::start`] and [`Server::serve`].
//!
//! Main items:
//! - [`Server`]: startup (SPEC 4.2, 4.4) — config, secrets backend, first
//!   start, resolution of every secret, `<data_dir>/ca.crt`, TLS, the bound
//!   socket — then serving until a shutdown signal.
//! - [`AppState`] / [`State`]: what request handlers share (resolved config,
//!   secrets backend, the server's own [`ServerSecrets`], the store, the
//!   config repository [`RepoSnapshot`], the [`Waiters`] of `/v1/wait` and
//!   the [`Metrics`]).
//! - [`reload`]: deploying a changed config repository (watcher, `SIGHUP`,
//!   `vigocli config reload`) without a restart; [`supervise`] and
//!   [`Health`]: the background tasks restarted when they fail, and
//!   `/healthz`; [`RotationGate`]: check-ins wait for queued rotations.
//! - [`router`]: the HTTP routes (enrollment, check-in, reports, the wait
//!   channel, the admin API, `/metrics`); [`serve_tls`]: the HTTPS accept loop that
//!   puts the client's verified certificate in each request as a
//!   [`PeerCertificate`] extension.
//! - [`ServerError`] (startup), [`AppError`] (stable JSON error answers) and
//!   [`error_chain`] (the one-line form of an error and its causes).

mod api;
mod catalogs;
mod checkins;
mod deploy;
mod envoy_api;
mod error;
mod fleet_wake;
mod gate;
mod limits;
mod listener;
pub mod metrics;
mod repo;
mod rotation;
mod startup;
mod state;
mod supervise;
mod waiters;
mod watcher;

pub use api::admin::{DEFAULT_TOKEN_TTL, MAX_TOKEN_TTL};
pub use api::{require_admin, router};
pub use catalogs::CompiledCatalog;
pub use checkins::{CheckinBuffer, FLUSH_INTERVAL};
pub use deploy::{RELOAD_QUIET, ReloadOutcome, ReloadSource, reload};
pub use envoy_api::ENVOY_CERT_VALIDITY;
pub use error::{AppError, ServerError};
pub use fleet_wake::{FIRST_RETRY, LONGEST_RETRY, SWEEP_INTERVAL};
pub use gate::{ROTATION_WAIT, RotationGate, Ticket};
pub use limits::{MAX_REPORT_BYTES, REPORT_BURST, REPORT_REFILL, ReportLimiter};
pub use listener::{ListenerLimits, PeerCertificate, serve_tls, serve_tls_with_limits};
pub use metrics::Metrics;
pub use repo::{RepoError, RepoSnapshot, Revision};
pub use rotation::{Actor, COALESCE_WINDOW, RotationError, RotationQueue, RotationWorker};
pub use startup::{Server, shutdown_signal};
pub use state::{AppState, ServerSecrets, State};
pub use supervise::{FIRST_RESTART_PAUSE, Health, LONGEST_RESTART_PAUSE, supervise};
pub(crate) use vigo_log::error_chain;
pub use waiters::Waiters;
pub use watcher::{FILE_DEBOUNCE, MAX_POLL_BACKOFF, SubmitChanges, WatchPlan, spawn_watchers};
