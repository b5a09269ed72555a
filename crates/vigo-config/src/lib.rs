//! Vigo's server configuration, `vigosrv.yaml` (docs/operations.md "The server"), read in two
//! stages:
//!
//! 1. [`RawConfig::load`] parses and validates the file (unknown keys, types,
//!    durations, paths; `database.dsn` and `smtp.password` must be `secret:`
//!    references) and touches no secret. `vigocli` stops here and opens only
//!    what it needs.
//! 2. [`resolve`] fetches every reference through a
//!    [`SecretProvider`](vigo_secrets::SecretProvider) into a
//!    [`ServerConfig`], whose resolved values live only in
//!    [`SecretValue`](vigo_secrets::SecretValue)s. The first failure is the
//!    error, as `resolving secret '<path>': <cause>`; nothing falls back.
//!
//! Also here: [`open_provider`] (the configured backend), [`well_known`]
//! (the secrets the server owns) and [`bootstrap`] (first start: master key
//! and generated secrets, docs/secrets.md "First start").
//!
//! String keys come in three kinds (see [`ConfigString`] and the module docs
//! of `raw.rs`): references required, references allowed, and keys read
//! before the backend is open, where a `secret:` value is an error.

mod backend;
pub mod bootstrap;
mod error;
mod raw;
mod resolve;
pub mod well_known;
pub mod yaml;

pub use backend::open_provider;
pub use error::ConfigError;
pub use raw::{
    ConfigString, DEFAULT_CHECKIN_INTERVAL, DEFAULT_CONFIG_FILE, DEFAULT_DATA_DIR,
    DEFAULT_HISTORY_MAX_AGE, DEFAULT_HISTORY_MAX_RUNS, DEFAULT_MAX_PER_ADDRESS,
    DEFAULT_POLL_INTERVAL, DEFAULT_SMTP_INTERVAL, HistoryConfig, RawConfig, RawSmtp,
    SecretsBackend, SmtpTls, WatcherConfig,
};
pub use resolve::{ResolvedString, ServerConfig, SmtpConfig, fetch_secret, resolve};
