//! `vigoenvoy`: the Vigo agent on a managed host.
//!
//! Subcommands live in their own modules; this file parses the global
//! options, sets up logging and dispatches. `apply` converges the host to a
//! catalog file without any server (docs/operations.md "An envoy").

mod apply;
#[path = "../shared/cli.rs"]
mod cli;
mod run;
mod stop;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit status for bad input or a setup failure.
const EXIT_ERROR: u8 = 1;

/// vigoenvoy: the Vigo agent - converges this host to the catalog the
/// server compiles for it.
#[derive(Debug, Parser)]
#[command(name = "vigoenvoy", version = cli::VERSION)]
struct Cli {
    /// The envoy configuration file.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        env = "VIGOENVOY_CONFIG",
        default_value = "/etc/vigo/envoy.yaml"
    )]
    config: PathBuf,
    #[command(flatten)]
    log: vigo_log::LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply a catalog file (the JSON of `vigocli catalog NAME --output json --reveal`)
    /// without a server.
    Apply(apply::ApplyArgs),
    /// Check in with the server and apply the catalog: in a loop, or once
    /// with --once.
    Run(run::RunArgs),
    /// Write the man pages into a folder (used to build the packages).
    #[command(hide = true)]
    Manpages {
        /// The folder to write them into.
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    // Before anything else: no core dump may hold a secret (see the
    // security model in docs/operations.md).
    if let Err(e) = vigo_process::harden() {
        eprintln!("error: {:#}", anyhow::Error::new(e));
        return ExitCode::from(EXIT_ERROR);
    }
    let cli = Cli::parse();
    if let Command::Manpages { dir } = &cli.command {
        return match cli::write_manpages(<Cli as clap::CommandFactory>::command(), dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: writing man pages into {}: {e}", dir.display());
                ExitCode::from(EXIT_ERROR)
            }
        };
    }
    if let Err(e) = cli.log.init() {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_ERROR);
    }
    let result = match cli.command {
        Command::Apply(args) => apply::run(&args, &cli.config),
        Command::Run(args) => run::run(&args, &cli.config),
        Command::Manpages { .. } => Ok(ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
