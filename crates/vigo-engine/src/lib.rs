//! The Vigo engine: converges a host to a compiled [`Catalog`](vigo_catalog::Catalog).
//!
//! [`Engine::apply`] orders the catalog's resources (`depends_on` and
//! `notify` edges, declaration order otherwise), asks each resource's
//! provider what differs and changes only that, passes refresh events along
//! `notify` edges from resources that changed, and skips whatever comes
//! after a failure while independent branches go on. The result is a
//! [`Report`] whose every message and command output has been scrubbed of
//! the catalog's secret values ([`Scrubber`]). With
//! [`ApplyOptions::noop`] nothing is touched and no command runs. A
//! [`CancelHandle`] stops an apply from a signal handler: the running
//! command's process group is killed and its secret file removed.
//!
//! Providers: `file` and `directory` (atomic writes, mode, owner, group),
//! `exec` (`/bin/sh -c` in its own process group, stdin, transient
//! `secret_file`, `creates`, timeout killing the whole group), `service`
//! (`systemctl`) and `package` (apt, dnf or apk).
//!
//! The envoy's own record ([`StateStore`], docs/operations.md "Security model") lives in the data
//! folder: keyed fingerprints of what was applied and which execs have
//! succeeded, never a secret value or a copy of the catalog.
//!
//! `apply` is async (commands run through tokio) and must be called inside
//! a tokio runtime; file work is short and done inline.

mod atomic;
mod batch;
mod command;
mod diff;
mod engine;
mod graph;
mod ownership;
mod providers;
// The report is a wire type: it lives with the protocol.
use vigo_proto::report;
mod scrub;
mod state;

pub use diff::SECRET_CONTENT;
pub use engine::{ApplyOptions, CancelHandle, Engine, EngineError, LOCK_FILE, SECRET_FILE_DIR};
pub use report::{CommandOutput, Report, ResourceResult, Status, Summary};
pub use scrub::{REDACTED, Scrubber};
pub use state::{ResourceState, STATE_FILE, STATE_KEY_FILE, StateData, StateError, StateStore};
