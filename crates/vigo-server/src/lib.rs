//! The Vigo server (`vigosrv`) as a library; the binary only parses flags,
//! sets up logging and calls [`Server::start`] and [`Server::serve`] with
//! [`shutdown_signal`]. Everything else is private to the crate; the module
//! layout (see docs/ARCHITECTURE.md):
//!
//! - `startup.rs`: [`Server`] — config, secrets backend, first start,
//!   resolution of every secret, `<data_dir>/ca.crt`, TLS, the bound socket
//!   — then serving until a shutdown signal; `state.rs`: what request
//!   handlers share.
//! - `api/`: the HTTP routes, one module per area (`envoy.rs`, `admin.rs`,
//!   `secrets.rs`, `config.rs`, `reports.rs`); `listener.rs`: the HTTPS accept loop that
//!   puts the client's verified certificate in each request.
//! - `enroll.rs`: enrollment rules; `rotation.rs`: the rotation flow and
//!   its queue, `gate.rs`: check-ins wait for queued rotations;
//!   `deploy.rs`: config reloads; `watcher.rs`: the secret watchers,
//!   `folder_watch.rs`: the notify plumbing both watchers share;
//!   `catalogs.rs`: compiled catalogs (and their secret index) per
//!   snapshot; `repo.rs`: the config repository snapshot.
//! - `waiters.rs`, `fleet_wake.rs`: held `/v1/wait` calls and their wake-ups
//!   across replicas; `checkins.rs`: batched check-in writes; `history.rs`:
//!   background pruning of run history; `limits.rs`,
//!   `metrics.rs`, `supervise.rs`: report caps, metrics, supervised tasks.
//! - `ui/`: the web dashboard under `/ui` (sessions, CSRF, pages).
//! - [`ServerError`] (startup), `AppError` (stable JSON error answers);
//!   `vigo_log::error_chain` prints an error and its causes on one line.

mod api;
mod catalogs;
mod checkins;
mod deploy;
mod enroll;
mod error;
mod fleet_wake;
mod folder_watch;
mod gate;
mod history;
mod limits;
mod listener;
mod metrics;
mod notify;
mod repo;
mod rotation;
mod startup;
mod state;
mod supervise;
mod ui;
mod waiters;
mod watcher;

pub use error::ServerError;
pub use limits::{REPORT_BURST, REPORT_REFILL};
pub use rotation::COALESCE_WINDOW;
pub use startup::{Server, shutdown_signal};

// Names the modules share through the crate root.
pub(crate) use api::router;
pub(crate) use checkins::FLUSH_INTERVAL;
pub(crate) use error::AppError;
pub(crate) use listener::{PeerCertificate, serve_tls};
pub(crate) use repo::RepoSnapshot;
pub(crate) use state::{AppState, ServerSecrets};
pub(crate) use vigo_log::error_chain;
pub(crate) use watcher::spawn_watchers;
