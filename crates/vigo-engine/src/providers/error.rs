//! [`ProviderError`]: why a provider could not bring a resource to its
//! desired state.
//!
//! Each message names the path, account, unit or tool concerned; an OS or
//! library cause is kept as the source, never printed in the message, and
//! the report's one-line message is the whole chain
//! ([`vigo_log::error_chain`]), so every cause appears exactly once.

use std::io;
use std::path::{Path, PathBuf};

use vigo_catalog::MissingSecret;

/// Why a provider failed; the resource's report message is its chain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// A filesystem call on `path` failed (`action`: "reading", "writing",
    /// "removing", "changing mode of", ...).
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done, as a verb phrase before the path.
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A file a `line` resource edits could not be read as text.
    #[error("reading {} as text", path.display())]
    NotText {
        /// The file.
        path: PathBuf,
        /// The OS error (invalid UTF-8 shows as `InvalidData`).
        #[source]
        source: io::Error,
    },
    /// A system call on `path` made through nix failed.
    #[error("{action} {}", path.display())]
    Sys {
        /// What was being done, as a verb phrase before the path.
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: nix::Error,
    },
    /// Reading the host's account database failed (`what`: "user 'app'",
    /// "the groups of user 'app'").
    #[error("looking up {what}")]
    Lookup {
        /// The account asked for.
        what: String,
        /// The OS error.
        #[source]
        source: nix::Error,
    },
    /// An owner, group or exec identity names an account the host lacks.
    #[error(
        "{kind} '{name}' does not exist on this host; create it first (a package or an exec resource) and list that in depends_on"
    )]
    NoSuchAccount {
        /// `user` or `group`.
        kind: &'static str,
        /// The name given.
        name: String,
    },
    /// A program (a host tool, the shell of an exec) could not be started
    /// or waited for.
    #[error("{verb} {}", program.display())]
    Run {
        /// "running" or "starting".
        verb: &'static str,
        /// The program.
        program: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The folder `path` goes in does not exist.
    #[error(
        "cannot {verb} {}: folder {} does not exist; add a directory resource for it and list it in depends_on",
        path.display(),
        parent.display()
    )]
    NoFolder {
        /// What was to be done: "write", "create", ...
        verb: &'static str,
        /// The path.
        path: PathBuf,
        /// Its missing folder.
        parent: PathBuf,
    },
    /// A name to be handed to a host tool could be taken for an option or
    /// holds whitespace (shown escaped).
    #[error(
        "{kind} name '{name}' is not valid: it must be non-empty, must not start with '-' and must not contain spaces"
    )]
    InvalidName {
        /// What the name is of: "package", "unit", ...
        kind: &'static str,
        /// The name, escaped.
        name: String,
    },
    /// A `line` resource's `match` does not compile (a catalog from a file;
    /// the compiler checks its own).
    #[error("'match' is not a valid regular expression")]
    Pattern(#[source] regex::Error),
    /// The catalog carries no value for a secret a field uses.
    #[error(transparent)]
    MissingSecret(#[from] MissingSecret),
    /// The host is in a state the provider will not change by itself (a
    /// directory where a file belongs, a folder others may write, a tool
    /// that answered with a failure, ...); the message says what was found
    /// and what to do. Its text holds no OS error.
    #[error("{0}")]
    Refused(String),
}

impl ProviderError {
    /// For `map_err`: looking up the `kind` ("user", "group") account `name`
    /// failed.
    pub(crate) fn lookup(kind: &'static str, name: &str) -> impl FnOnce(nix::Error) -> Self {
        let what = format!("{kind} '{name}'");
        move |source| Self::Lookup { what, source }
    }

    /// An [`Io`](Self::Io) error on `path`.
    pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }

    /// A [`Sys`](Self::Sys) error on `path`.
    pub(crate) fn sys(action: &'static str, path: &Path) -> impl FnOnce(nix::Error) -> Self {
        let path = path.to_path_buf();
        move |source| Self::Sys {
            action,
            path,
            source,
        }
    }

    /// A [`Refused`](Self::Refused) error.
    pub(crate) fn refused(message: impl Into<String>) -> Self {
        Self::Refused(message.into())
    }

    /// The one-line message for a report: the error and its causes, each
    /// once.
    pub(crate) fn message(&self) -> String {
        vigo_log::error_chain(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_13_a_provider_error_prints_its_os_cause_once() {
        let err = ProviderError::io("reading", Path::new("/etc/x"))(io::Error::from(
            io::ErrorKind::NotFound,
        ));
        assert_eq!(err.to_string(), "reading /etc/x");
        assert_eq!(err.message(), "reading /etc/x: entity not found");
        let err = ProviderError::Lookup {
            what: "user 'app'".into(),
            source: nix::Error::EACCES,
        };
        assert_eq!(
            err.message(),
            "looking up user 'app': EACCES: Permission denied"
        );
    }
}
