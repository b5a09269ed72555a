//! Secrets for Vigo: references, the redacting value type, and the backends.
//!
//! Config files only ever hold `secret:<path>` references ([`SecretRef`]);
//! the value behind one is fetched at runtime through a [`SecretProvider`]
//! and travels through the program as a [`SecretValue`], whose `Debug` and
//! `Display` print `[REDACTED]` and whose memory is zeroized on drop.
//!
//! Main types:
//! - [`SecretPath`]: a validated path (`vigo/db/dsn`); it cannot hold `..`,
//!   an absolute path or any byte outside `[A-Za-z0-9._-/]`.
//! - [`SecretProvider`]: the backend trait (get with version, set, list,
//!   delete, batch versions), implemented by [`LocalProvider`] (AES-256-GCM
//!   files under a master key), [`IsopassProvider`] (the isopass HTTPS API,
//!   configured by [`IsopassConfig`]) and [`MemoryProvider`] (tests,
//!   benchmarks).
//! - [`SecretError`]: what went wrong, never containing a secret value.
//! - [`EnvoyName`]: a validated, lower-case envoy name, the one rule every
//!   crate that handles envoy identities shares.

mod checked_text;
mod envoy_name;
mod error;
mod isopass;
mod local;
mod memory;
mod path;
mod provider;
mod value;

pub use envoy_name::{EnvoyName, EnvoyNameError, MAX_ENVOY_NAME_LEN};
pub use error::SecretError;
pub use isopass::{IsopassConfig, IsopassProvider};
pub use local::{LocalProvider, MasterKey, Recovery};
pub use memory::MemoryProvider;
pub use path::{MAX_PATH_LEN, PathError, SECRET_PREFIX, SecretPath, SecretRef};
pub use provider::{SecretInfo, SecretProvider, VersionedSecret};
pub use value::SecretValue;
