//! The store's error type.
//!
//! No variant ever holds the DSN or any part of it beyond what is safe to log
//! (a file path, a host and port, a database name): the DSN carries the
//! database password or the SQLCipher key. Text taken from the database driver
//! while connecting is scrubbed of the DSN's secrets before it is kept.

use vigo_secrets::PathError;

use crate::model::{Backend, TokenRejection};

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The DSN could not be understood. `reason` never quotes the DSN.
    #[error(
        "invalid database DSN: {reason}; expected sqlite:///ABSOLUTE/PATH/vigo.db?key=<64 hex characters> or postgres://USER:PASSWORD@HOST:PORT/DATABASE"
    )]
    InvalidDsn {
        /// What is wrong with it.
        reason: String,
    },

    /// The database could not be reached or opened.
    #[error("cannot connect to the {backend} database at {target}: {reason}")]
    Connect {
        /// Which backend.
        backend: Backend,
        /// Where: a file path or `host:port/database` (never credentials).
        target: String,
        /// The driver's explanation, scrubbed of the DSN's secrets.
        reason: String,
    },

    /// The embedded database exists but the key in the DSN does not open it.
    #[error(
        "cannot open the database {path}: the key in the DSN does not match it (wrong key, or not a Vigo database); restore the DSN that created it or move the file away to start empty"
    )]
    WrongKey {
        /// The database file.
        path: String,
    },

    /// The DSN carries a key but this build's SQLite cannot encrypt.
    #[error(
        "the DSN for {path} carries an encryption key but this build of SQLite has no SQLCipher; rebuild Vigo with SQLCipher (needs OpenSSL's libcrypto)"
    )]
    CipherUnavailable {
        /// The database file.
        path: String,
    },

    /// Applying the schema migrations failed.
    #[error("migrating the {backend} database schema failed: {reason}")]
    Migrate {
        /// Which backend.
        backend: Backend,
        /// The migrator's explanation.
        reason: String,
    },

    /// A query failed.
    #[error("database {operation} failed")]
    Query {
        /// What the store was doing, e.g. `approve envoy`.
        operation: &'static str,
        /// The driver error (SQL errors carry no DSN).
        #[source]
        source: sqlx::Error,
    },

    /// No envoy by that name.
    #[error("envoy '{name}' is not known; it must request enrollment first")]
    EnvoyNotFound {
        /// The envoy name.
        name: String,
    },

    /// The envoy is revoked, so it can be neither approved nor given a certificate.
    #[error("envoy '{name}' is revoked; it cannot be approved or issued a certificate")]
    EnvoyRevoked {
        /// The envoy name.
        name: String,
    },

    /// The envoy is still pending, so it has no certificate to replace.
    #[error("envoy '{name}' is not approved yet; approve it with `vigocli envoys approve {name}`")]
    EnvoyNotApproved {
        /// The envoy name.
        name: String,
    },

    /// The envoy is approved, so it cannot be removed.
    #[error(
        "envoy '{name}' is approved; revoke it first (`vigocli envoys revoke {name}`), then remove it"
    )]
    EnvoyApproved {
        /// The envoy name.
        name: String,
    },

    /// An enrollment token was refused.
    #[error("enrollment token refused: {reason}")]
    TokenRejected {
        /// Why.
        reason: TokenRejection,
    },

    /// A token with the same hash already exists.
    #[error("an enrollment token with this hash already exists; generate a new token")]
    TokenExists,

    /// A value is too large to store.
    #[error("the {what} is too large to store")]
    OutOfRange {
        /// Which value.
        what: &'static str,
    },

    /// A stored value does not parse (the database was edited by hand or is damaged).
    #[error("the database holds an invalid {what}: {detail}")]
    Corrupt {
        /// Which column or kind of value.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
}

impl StoreError {
    pub(crate) fn query(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self::Query { operation, source }
    }

    pub(crate) fn corrupt_path(error: PathError) -> Self {
        Self::Corrupt {
            what: "secret path",
            detail: error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_13_query_error_says_its_cause_once() {
        let source = sqlx::Error::Protocol("unexpected message from test".into());
        let cause = source.to_string();
        let err = StoreError::Query {
            operation: "approve envoy",
            source,
        };
        assert!(
            !err.to_string().contains(&cause),
            "message repeats its source: {err}"
        );
        let mut line = err.to_string();
        let mut next = std::error::Error::source(&err);
        while let Some(source) = next {
            line.push_str(": ");
            line.push_str(&source.to_string());
            next = source.source();
        }
        assert_eq!(line, format!("database approve envoy failed: {cause}"));
    }
}
