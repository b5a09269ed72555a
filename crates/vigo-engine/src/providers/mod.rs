//! Resource providers: each answers "what is the current state, what must
//! change" and then changes only that (or, in a noop run, says what it
//! would do).

pub(crate) mod account;
pub(crate) mod directory;
mod error;
pub(crate) mod exec;
pub(crate) mod file;
pub(crate) mod line;
pub(crate) mod package;
pub(crate) mod service;
pub(crate) mod symlink;

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::time::Duration;

use vigo_catalog::Catalog;
use zeroize::Zeroizing;

use crate::batch::WriteBatch;
use crate::command::{self, Finished, Invocation};

use crate::report::{CommandOutput, Status};
use crate::scrub::Scrubber;
pub use error::ProviderError;

/// What a provider needs besides the resource's own fields.
pub(crate) struct Context<'a> {
    /// The catalog (for secret values).
    pub(crate) catalog: &'a Catalog,
    /// For messages and command output.
    pub(crate) scrubber: &'a Scrubber,
    /// Only report what would change.
    pub(crate) noop: bool,
    /// `PATH`-style list searched for host tools and given to commands.
    pub(crate) search_path: &'a OsStr,
    /// The envoy's private folder for transient secret files (0700).
    pub(crate) secret_file_dir: &'a Path,
    /// The changed resource whose `notify` reached this one, if any.
    pub(crate) refreshed_by: Option<&'a str>,
    /// The server flagged this resource `_secret_triggered`.
    pub(crate) secret_triggered: bool,
    /// Execs: the command has exited 0 on this envoy before.
    pub(crate) ran_before: bool,
    /// Files: where a changed file's content is staged, to be made durable
    /// with the rest of its batch; `None` writes it durably at once.
    pub(crate) writes: Option<&'a WriteBatch>,
}

#[cfg(test)]
impl<'a> Context<'a> {
    /// A context for a provider's unit tests: the default search path, no
    /// secret folder, no refresh, not run before, written at once.
    pub(crate) fn for_test(catalog: &'a Catalog, scrubber: &'a Scrubber, noop: bool) -> Self {
        Context {
            catalog,
            scrubber,
            noop,
            search_path: OsStr::new(command::DEFAULT_PATH),
            secret_file_dir: Path::new("/nonexistent"),
            refreshed_by: None,
            secret_triggered: false,
            ran_before: false,
            writes: None,
        }
    }
}

/// What a provider did.
pub(crate) struct Outcome {
    pub(crate) status: Status,
    pub(crate) message: String,
    pub(crate) output: Option<CommandOutput>,
    /// Noop runs: a multi-line description of what differs (a file's
    /// content diff), scrubbed by the engine like the message.
    pub(crate) diff: Option<Zeroizing<String>>,
}

impl Outcome {
    pub(crate) fn unchanged(message: impl Into<String>) -> Self {
        Self {
            status: Status::Unchanged,
            message: message.into(),
            output: None,
            diff: None,
        }
    }

    pub(crate) fn changed(message: impl Into<String>) -> Self {
        Self {
            status: Status::Changed,
            message: message.into(),
            output: None,
            diff: None,
        }
    }

    pub(crate) fn failed(message: impl Into<String>) -> Self {
        Self {
            status: Status::Failed,
            message: message.into(),
            output: None,
            diff: None,
        }
    }

    /// A list of changes as one outcome: unchanged when empty, `would ...`
    /// in noop runs.
    pub(crate) fn from_changes(changes: Vec<String>, noop: bool, in_sync: String) -> Self {
        if changes.is_empty() {
            return Self::unchanged(in_sync);
        }
        let joined = changes.join("; ");
        Self::changed(if noop {
            format!("would {joined}")
        } else {
            joined
        })
    }
}

impl Outcome {
    /// The same outcome, carrying `diff`.
    pub(crate) fn with_diff(self, diff: Option<Zeroizing<String>>) -> Self {
        Self { diff, ..self }
    }
}

impl From<Result<Outcome, ProviderError>> for Outcome {
    fn from(result: Result<Outcome, ProviderError>) -> Self {
        result.unwrap_or_else(|e| Outcome::failed(e.message()))
    }
}

/// Runs a host tool (`systemctl`, `apt-get`, ...) with the minimal
/// environment plus `extra_env`.
pub(crate) async fn run_tool(
    program: &Path,
    args: &[&str],
    extra_env: &[(&str, &str)],
    search_path: &OsStr,
    timeout: Duration,
) -> Result<Finished, ProviderError> {
    let mut env = command::tool_env(search_path);
    env.extend(
        extra_env
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v))),
    );
    let invocation = Invocation {
        program: program.to_path_buf(),
        args: args.iter().map(OsString::from).collect(),
        cwd: None,
        stdin: None,
        env,
        timeout,
        identity: None,
    };
    command::run(invocation)
        .await
        .map_err(|source| ProviderError::Run {
            verb: "running",
            program: program.to_path_buf(),
            source,
        })
}

/// The folder `path` goes in, or an error saying it does not exist and how
/// to fix that (`verb`: what was to be done, e.g. "write", "create").
pub(crate) fn existing_parent<'a>(
    path: &'a Path,
    verb: &'static str,
) -> Result<&'a Path, ProviderError> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    if parent.is_dir() {
        return Ok(parent);
    }
    Err(ProviderError::NoFolder {
        verb,
        path: path.to_path_buf(),
        parent: parent.to_path_buf(),
    })
}

/// Refuses names that a tool could take for an option or that hold
/// whitespace or control characters.
pub(crate) fn check_name(kind: &'static str, name: &str) -> Result<(), ProviderError> {
    if name.is_empty()
        || name.starts_with('-')
        || name.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ProviderError::InvalidName {
            kind,
            name: name.escape_debug().to_string(),
        });
    }
    Ok(())
}

/// A one-line excerpt of command output for a message: the last few
/// non-empty lines of `text`, joined, at most `limit` characters.
pub(crate) fn output_excerpt(text: &str, limit: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" / ");
    shorten(&tail, limit)
}

/// `text` cut to at most `limit` characters, marking the cut with `...`.
/// The cut keeps the end, where errors usually are.
pub(crate) fn shorten(text: &str, limit: usize) -> String {
    let count = text.chars().count();
    if count <= limit {
        return text.to_owned();
    }
    let skip = count - limit.saturating_sub(3);
    format!("...{}", text.chars().skip(skip).collect::<String>())
}

/// A command shown in messages: first line only, at most 120 characters.
pub(crate) fn show_command(command: &str) -> String {
    let first = command.lines().next().unwrap_or_default();
    let mut shown: String = first.chars().take(120).collect();
    if shown.len() < command.len() {
        shown.push_str("...");
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_keep_the_last_lines() {
        assert_eq!(output_excerpt("a\n\nb\nc\nd\n", 100), "b / c / d");
        assert_eq!(output_excerpt("abcdefghij", 6), "...hij");
    }

    #[test]
    fn commands_are_shown_on_one_line() {
        assert_eq!(show_command("echo hi"), "echo hi");
        assert_eq!(show_command("echo hi\necho there"), "echo hi...");
    }
}
