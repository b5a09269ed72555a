//! `vigoenvoy`: the Vigo agent on a managed host.
//!
//! Subcommands live in their own modules; this file parses the global
//! options, sets up logging and dispatches. `apply` converges the host to a
//! catalog file without any server (SPEC 6.1).

mod apply;
mod run;
mod stop;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit status for bad input or a setup failure.
const EXIT_ERROR: u8 = 1;

/// The Vigo envoy: converges this host to its catalog.
#[derive(Debug, Parser)]
#[command(name = "vigoenvoy", version, about)]
struct Cli {
    /// The envoy configuration file.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
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
}

fn main() -> ExitCode {
    // Before anything else: no core dump may hold a secret (see the
    // security model in docs/operations.md).
    if let Err(e) = vigo_process::harden() {
        eprintln!("error: {:#}", anyhow::Error::new(e));
        return ExitCode::from(EXIT_ERROR);
    }
    let cli = Cli::parse();
    if let Err(e) = cli.log.init() {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_ERROR);
    }
    let result = match cli.command {
        Command::Apply(args) => apply::run(&args, &cli.config),
        Command::Run(args) => run::run(&args, &cli.config),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
