//! The envoy's side of the Vigo protocol.
//!
//! [`EnvoyConfig`] reads `envoy.yaml` (docs/operations.md "An envoy"); [`Identity`] holds the
//! envoy's private key and certificate in its data folder and runs
//! enrollment (docs/operations.md "Enroll envoys"); [`Session`] talks to the server over mutual TLS
//! (check-in, report, the wait channel); [`run_loop`] ties them to the
//! engine: check in, apply, report, then wait for the next interval or for
//! the server to call. [`facts`] collects what the check-in reports.

mod config;
pub mod facts;
mod identity;
mod run;
mod session;

pub use config::{ConfigError, DEFAULT_DATA_DIR, EnvoyConfig, FACTS_DIR};
pub use identity::{EnrollOutcome, Identity, IdentityError};
pub use run::{Cycle, Envoy, RunError};
pub use session::{Session, SessionError};
