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
    /// and not a separate source, so a chain never prints it twice. A
    /// permission error ends with the `chown` that gives the file to the
    /// user this process runs as (see `chown_fix`).
    #[error("{action} {}: {cause}{}", file.display(), chown_fix(file, cause))]
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

/// For a permission error on `file`: `; fix: chown USER:GROUP FILE`, naming
/// the user and group this process runs as (the server's, when the server
/// reports it), so a file written by another user (root running `vigocli`)
/// can be handed over exactly. Empty for any other error.
fn chown_fix(file: &std::path::Path, cause: &std::io::Error) -> String {
    if cause.kind() != std::io::ErrorKind::PermissionDenied {
        return String::new();
    }
    let uid = nix::unistd::geteuid();
    let gid = nix::unistd::getegid();
    let user = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name);
    let group = nix::unistd::Group::from_gid(gid)
        .ok()
        .flatten()
        .map_or_else(|| gid.to_string(), |g| g.name);
    format!("; fix: chown {user}:{group} {}", file.display())
}

impl SecretError {
    /// Whether this is a missing secret (as opposed to a failure to look).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_17_a_permission_error_names_the_chown_to_run() {
        let file = PathBuf::from("/srv/vigo/secrets/vigo/db/dsn.enc");
        let err = SecretError::Io {
            action: "reading",
            file: file.clone(),
            cause: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        let text = err.to_string();
        let user = nix::unistd::User::from_uid(nix::unistd::geteuid())
            .unwrap()
            .map_or_else(|| nix::unistd::geteuid().to_string(), |u| u.name);
        assert!(
            text.starts_with("reading /srv/vigo/secrets/vigo/db/dsn.enc: "),
            "{text}"
        );
        assert!(text.contains(&format!("; fix: chown {user}:")), "{text}");
        assert!(
            text.ends_with(" /srv/vigo/secrets/vigo/db/dsn.enc"),
            "{text}"
        );

        let other = SecretError::Io {
            action: "reading",
            file,
            cause: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(!other.to_string().contains("chown"), "{other}");
    }
}
