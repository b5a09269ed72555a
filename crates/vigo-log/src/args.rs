//! [`LogArgs`]: the `--log-level` and `--log-format` flags every binary
//! takes, declared once.

use crate::{LEVELS, LogError, LogFormat};

/// The log flags; `#[command(flatten)]` them into a binary's arguments.
/// They are global: a subcommand accepts them too.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Lowest level of log lines written to stderr.
    #[arg(long, global = true, value_name = "LEVEL", default_value = "info",
          value_parser = clap::builder::PossibleValuesParser::new(LEVELS))]
    pub log_level: String,

    /// Shape of log lines on stderr.
    #[arg(long, global = true, value_name = "FORMAT", default_value = "text",
          value_parser = clap::builder::PossibleValuesParser::new(["text", "json"]))]
    pub log_format: String,
}

impl LogArgs {
    /// The chosen format.
    pub fn format(&self) -> Result<LogFormat, LogError> {
        self.log_format.parse()
    }

    /// Installs the process-wide subscriber these flags ask for (see
    /// [`init`](crate::init)).
    pub fn init(&self) -> Result<(), LogError> {
        crate::init(&self.log_level, self.format()?)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        log: LogArgs,
        #[command(subcommand)]
        command: Option<Command>,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Command {
        Run,
    }

    #[test]
    fn defaults_and_global_flags() {
        let cli = Cli::try_parse_from(["bin"]).unwrap();
        assert_eq!(cli.log.log_level, "info");
        assert_eq!(cli.log.format().unwrap(), LogFormat::Text);

        let cli =
            Cli::try_parse_from(["bin", "run", "--log-level", "debug", "--log-format", "json"])
                .unwrap();
        assert_eq!(cli.log.log_level, "debug");
        assert_eq!(cli.log.format().unwrap(), LogFormat::Json);
        assert!(matches!(cli.command, Some(Command::Run)));
    }

    #[test]
    fn unknown_values_are_refused() {
        assert!(Cli::try_parse_from(["bin", "--log-level", "loud"]).is_err());
        assert!(Cli::try_parse_from(["bin", "--log-format", "yaml"]).is_err());
    }
}
