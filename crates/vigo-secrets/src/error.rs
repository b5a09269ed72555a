//! Errors from secrets backends. None of them ever carries a secret value.

use std::path::PathBuf;

/// What went wrong in a secrets backend.
///
/// Messages describe the cause only; the caller adds which secret it was
/// working on, giving lines such as
/// `resolving secret 'vigo/db/dsn': file not found`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The secret does not exist in the backend.
    #[error("{}", not_found_text(backend))]
    NotFound {
        /// Which backend answered.
        backend: &'static str,
    },

    /// The stored ciphertext failed authentication: wrong master key, a
    /// tampered or truncated file, or a file copied over another secret's.
    #[error("integrity check failed (wrong key or tampered file)")]
    Integrity,

    /// A stored secret file is not in Vigo's format at all.
    #[error("unreadable secret file {}: {reason}", file.display())]
    Format {
        /// The file.
        file: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The path names one of the files Vigo keeps for itself in the secrets
    /// folder (temporary files and the write lock), so it cannot hold a
    /// secret.
    #[error(
        "the name is reserved for Vigo's own files (a segment starting with '.tmp-', or a top-level '.lock'); choose another path"
    )]
    ReservedPath,

    /// The crypto library refused to set up a key or to encrypt. This is not
    /// an authentication failure (that is [`SecretError::Integrity`]).
    #[error("the crypto library failed while {action}")]
    Crypto {
        /// What Vigo was doing (`encrypting`, `setting up the master key`).
        action: &'static str,
    },

    /// The master key file is missing, unsafe or malformed.
    #[error("master key {}: {problem}; {hint}", file.display())]
    MasterKey {
        /// The key file.
        file: PathBuf,
        /// What is wrong.
        problem: String,
        /// What to do about it.
        hint: String,
    },

    /// A symbolic link was found on the way to a secret file, below the
    /// secrets folder. It is never followed: it could lead out of the folder.
    #[error(
        "{} is a symbolic link; the secrets folder must hold only real folders and files: replace it",
        file.display()
    )]
    Symlink {
        /// The link.
        file: PathBuf,
    },

    /// Something other than a regular file (a FIFO, a socket, a device) is
    /// where a secret file belongs.
    #[error("{} is a {kind}, not a secret file; remove it", file.display())]
    NotRegular {
        /// The path.
        file: PathBuf,
        /// What is there (`FIFO`, `socket`, `device`).
        kind: &'static str,
    },

    /// A filesystem operation failed. The OS error is part of the message
    /// and not a separate source, so a chain never prints it twice.
    #[error("{action} {}: {cause}", file.display())]
    Io {
        /// What Vigo was doing (`reading`, `writing`, ...).
        action: &'static str,
        /// The file or folder involved.
        file: PathBuf,
        /// The OS error.
        cause: std::io::Error,
    },

    /// The remote backend could not be reached.
    #[error("{backend} unreachable: {cause}")]
    Unreachable {
        /// Which backend.
        backend: &'static str,
        /// Connection-level cause, e.g. `connection refused`.
        cause: String,
    },

    /// The remote backend refused our credentials.
    #[error("{backend}: unauthorized (check the token in token_file)")]
    Unauthorized {
        /// Which backend.
        backend: &'static str,
    },

    /// The remote backend answered something unexpected.
    #[error("{backend}: {cause}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// What it answered (status, never a body that may hold a value).
        cause: String,
    },
}

fn not_found_text(backend: &str) -> String {
    match backend {
        "local" => "file not found".to_owned(),
        other => format!("{other}: not found"),
    }
}

impl SecretError {
    /// Whether this is a missing secret (as opposed to a failure to look).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}
