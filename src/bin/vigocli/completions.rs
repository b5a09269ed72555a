//! `vigocli completions SHELL` (shell completion scripts on stdout) and the
//! hidden `vigocli manpages DIR` the packages are built with.

use std::io::Write as _;
use std::path::PathBuf;

use clap::CommandFactory as _;

use crate::Cli;

/// Arguments of `vigocli completions`.
#[derive(Debug, clap::Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to complete for (bash, zsh, fish; also elvish, powershell).
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

/// Arguments of the hidden `vigocli manpages`.
#[derive(Debug, clap::Args)]
pub(crate) struct ManpagesArgs {
    /// The folder to write `vigocli.1` and one page per subcommand into.
    pub(crate) dir: PathBuf,
}

/// Prints the completion script for `args.shell` on stdout.
pub(crate) fn completions(args: &CompletionsArgs) -> anyhow::Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "vigocli", &mut script);
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&script)?;
    stdout.flush()?;
    Ok(())
}

/// Writes the man pages into `args.dir`.
pub(crate) fn manpages(args: &ManpagesArgs) -> anyhow::Result<()> {
    crate::cli::write_manpages(Cli::command(), &args.dir)
        .map_err(|e| anyhow::anyhow!("writing man pages into {}: {e}", args.dir.display()))?;
    Ok(())
}
