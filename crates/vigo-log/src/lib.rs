//! Vigo's log output: one line per event on stderr.
//!
//! Two formats, chosen with `--log-format`:
//! - [`LogFormat::Text`]: `LEVEL message key=value key2="a value"`, with the
//!   logfmt quoting rules of [`format`]: a value is written bare when it is
//!   non-empty and holds no space, quote, `=` or control character, and in
//!   double quotes otherwise.
//! - [`LogFormat::Json`]: one JSON object per line,
//!   `{"level":"ERROR","message":"server failed","error":"..."}`.
//!
//! Fields of the spans an event happens in follow the event's own fields,
//! innermost span first; when a name repeats, the first value wins.
//!
//! Every line carries an RFC 3339 UTC time: first on a text line
//! (`2026-12-01T21:40:39.123456Z INFO ...`), in a `timestamp` key on a JSON
//! line. [`init`] leaves it out when stderr goes to the systemd journal
//! (`JOURNAL_STREAM` is set), which stamps every line itself; see
//! [`LogOptions::from_env`].
//!
//! [`init`] installs the global subscriber; [`subscriber`] builds one that
//! writes anywhere, for tests and for [`tracing::subscriber::with_default`].
//! [`LogArgs`] declares the `--log-level`/`--log-format` flags of every
//! binary; [`error_chain`] prints an error and its causes on one line.

mod args;
mod chain;
mod format;

use std::str::FromStr;

use tracing::Subscriber;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

pub use args::LogArgs;
pub use chain::error_chain;
pub use format::{EventFormat, SpanFields, quote_value};

/// The accepted `--log-level` values, most severe first.
pub const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// The shape of log lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `LEVEL message key=value ...`
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = LogError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(LogError::UnknownFormat {
                given: s.to_owned(),
            }),
        }
    }
}

/// Settings shared by both formats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Start each line with an RFC 3339 UTC timestamp (text) or add a
    /// `timestamp` key (JSON). Off in `Default` (tests of the line shape);
    /// [`LogOptions::from_env`] is what the binaries use.
    pub timestamps: bool,
}

/// The variable systemd sets when a service's stderr is the journal.
pub const JOURNAL_STREAM: &str = "JOURNAL_STREAM";

impl LogOptions {
    /// The options for this process: timestamps unless stderr goes to the
    /// journal (`JOURNAL_STREAM` is set), whose records have their own time.
    pub fn from_env() -> Self {
        Self::for_journal_stream(std::env::var_os(JOURNAL_STREAM).as_deref())
    }

    /// The options given the value of `JOURNAL_STREAM` (`None`: unset).
    pub fn for_journal_stream(journal_stream: Option<&std::ffi::OsStr>) -> Self {
        Self {
            timestamps: journal_stream.is_none(),
        }
    }
}

/// What went wrong setting up logging.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The level is not one of [`LEVELS`].
    #[error("unknown log level '{given}': use one of error, warn, info, debug, trace")]
    UnknownLevel {
        /// What was given.
        given: String,
    },

    /// The format is neither `text` nor `json`.
    #[error("unknown log format '{given}': use text or json")]
    UnknownFormat {
        /// What was given.
        given: String,
    },

    /// A global subscriber was installed before.
    #[error("logging is already set up in this process: {reason}")]
    AlreadyInstalled {
        /// What tracing reported.
        reason: String,
    },
}

/// Parses a `--log-level` value (case does not matter).
pub fn parse_level(level: &str) -> Result<LevelFilter, LogError> {
    match level.to_ascii_lowercase().as_str() {
        "error" => Ok(LevelFilter::ERROR),
        "warn" => Ok(LevelFilter::WARN),
        "info" => Ok(LevelFilter::INFO),
        "debug" => Ok(LevelFilter::DEBUG),
        "trace" => Ok(LevelFilter::TRACE),
        _ => Err(LogError::UnknownLevel {
            given: level.to_owned(),
        }),
    }
}

/// Installs the process-wide subscriber writing `format` lines at `level`
/// and above to stderr, with timestamps unless stderr is the journal
/// ([`LogOptions::from_env`]). Records of the `log` crate are forwarded
/// into it.
pub fn init(level: &str, format: LogFormat) -> Result<(), LogError> {
    init_with_writer(level, format, LogOptions::from_env(), std::io::stderr)
}

/// Like [`init`], with options and a writer of the caller's choice.
pub fn init_with_writer<W>(
    level: &str,
    format: LogFormat,
    options: LogOptions,
    writer: W,
) -> Result<(), LogError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    subscriber(level, format, options, writer)?
        .try_init()
        .map_err(|err| LogError::AlreadyInstalled {
            reason: err.to_string(),
        })
}

/// A subscriber writing `format` lines at `level` and above to `writer`,
/// not installed anywhere.
pub fn subscriber<W>(
    level: &str,
    format: LogFormat,
    options: LogOptions,
    writer: W,
) -> Result<impl Subscriber + Send + Sync + 'static, LogError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let level = parse_level(level)?;
    Ok(tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(writer)
        .fmt_fields(SpanFields)
        .event_format(EventFormat::new(format, options))
        .finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse() {
        assert_eq!("text".parse::<LogFormat>().unwrap(), LogFormat::Text);
        assert_eq!("json".parse::<LogFormat>().unwrap(), LogFormat::Json);
        let err = "yaml".parse::<LogFormat>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown log format 'yaml': use text or json"
        );
    }

    #[test]
    fn issue_17_timestamps_unless_the_journal_takes_stderr() {
        assert!(LogOptions::for_journal_stream(None).timestamps);
        let journal = std::ffi::OsStr::new("8:123456");
        assert!(!LogOptions::for_journal_stream(Some(journal)).timestamps);
    }

    #[test]
    fn levels_parse() {
        for (name, filter) in LEVELS.iter().zip([
            LevelFilter::ERROR,
            LevelFilter::WARN,
            LevelFilter::INFO,
            LevelFilter::DEBUG,
            LevelFilter::TRACE,
        ]) {
            assert_eq!(parse_level(name).unwrap(), filter);
        }
        assert_eq!(parse_level("INFO").unwrap(), LevelFilter::INFO);
        let err = parse_level("verbose").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown log level 'verbose': use one of error, warn, info, debug, trace"
        );
        assert!(
            subscriber(
                "loud",
                LogFormat::Text,
                LogOptions::default(),
                std::io::sink
            )
            .is_err()
        );
    }
}
