//! The error type of vigo-config.
//!
//! Every message is complete on its own (it already names the cause), so no
//! variant exposes a `source()`: printing the chain of a wrapping error never
//! repeats a cause. No variant ever holds a secret value.

use std::path::PathBuf;

use vigo_pki::PkiError;
use vigo_secrets::{SecretError, SecretPath};

/// What went wrong while loading `vigosrv.yaml`, resolving its secrets or
/// generating the first-start secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("reading {}: {cause}; pass the right file with --config PATH", file.display())]
    Read {
        /// The config file.
        file: PathBuf,
        /// The OS error.
        cause: std::io::Error,
    },

    /// The file is not valid YAML or does not fit the schema (unknown key,
    /// wrong type, duplicate key).
    #[error("{}:{line}:{column}: {message}", file.display())]
    Parse {
        /// The config file.
        file: PathBuf,
        /// 1-based line (0 when unknown).
        line: u64,
        /// 1-based column (0 when unknown).
        column: u64,
        /// The parser's message.
        message: String,
    },

    /// A key holds a value Vigo cannot use.
    #[error("{}:{line}:{column}: {message}", file.display())]
    Invalid {
        /// The config file.
        file: PathBuf,
        /// 1-based line (0 when the key is absent and its default is at fault).
        line: u64,
        /// 1-based column.
        column: u64,
        /// What is wrong, starting with the key (`database.dsn must be a
        /// secret: reference`).
        message: String,
    },

    /// A secret could not be fetched from the backend.
    #[error("resolving secret '{path}': {cause}")]
    Resolve {
        /// The secret's path.
        path: SecretPath,
        /// What the backend reported.
        cause: SecretError,
    },

    /// A secret could not be stored in the backend.
    #[error("storing secret '{path}': {cause}")]
    Store {
        /// The secret's path.
        path: SecretPath,
        /// What the backend reported.
        cause: SecretError,
    },

    /// A stored secret holds something Vigo cannot use.
    #[error("secret '{path}' is unusable: {reason}")]
    Unusable {
        /// The secret's path.
        path: SecretPath,
        /// What is wrong (never the value).
        reason: String,
    },

    /// The configured secrets backend could not be opened.
    #[error("opening the {backend} secrets backend: {cause}")]
    Backend {
        /// `local` or `isopass`.
        backend: &'static str,
        /// What failed.
        cause: SecretError,
    },

    /// The master key is gone but encrypted secrets remain.
    #[error(
        "master key {} is missing but {} already holds secrets; restore the key file instead of generating a new one (a new key would orphan them)",
        key_file.display(),
        secrets_dir.display()
    )]
    MasterKeyMissing {
        /// The configured key file.
        key_file: PathBuf,
        /// The configured secrets folder.
        secrets_dir: PathBuf,
    },

    /// Generating or storing the master key failed.
    #[error("preparing the master key: {cause}")]
    MasterKey {
        /// What failed.
        cause: SecretError,
    },

    /// Making a certificate failed.
    #[error("generating the {what}")]
    Certificate {
        /// Which certificate.
        what: &'static str,
        /// What failed.
        #[source]
        cause: PkiError,
    },

    /// Only one half of a certificate/key pair is stored.
    #[error(
        "secret '{present}' exists but '{missing}' does not; restore '{missing}' from a backup, or delete '{present}' so both are generated anew"
    )]
    HalfPair {
        /// The half that exists.
        present: SecretPath,
        /// The half that is missing.
        missing: SecretPath,
    },

    /// The system random number generator failed.
    #[error("the system random number generator failed while generating '{path}'")]
    Random {
        /// The secret being generated.
        path: SecretPath,
    },

    /// A filesystem operation outside the secrets backend failed.
    #[error("{action} {}: {cause}", file.display())]
    Io {
        /// What Vigo was doing (`creating`, `writing`, ...).
        action: &'static str,
        /// The file or folder.
        file: PathBuf,
        /// The OS error.
        cause: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_13_certificate_error_says_the_pki_cause_once() {
        let err = ConfigError::Certificate {
            what: "CA certificate",
            cause: PkiError::Random,
        };
        let cause = PkiError::Random.to_string();
        assert!(
            !err.to_string().contains(&cause),
            "message repeats its source: {err}"
        );
        let source = std::error::Error::source(&err).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some(cause.as_str()));
        let line = format!("{err}: {}", source.unwrap_or_default());
        assert_eq!(line, format!("generating the CA certificate: {cause}"));
    }
}
