//! `vigocli`: the Vigo operator CLI.
//!
//! Flags common to every command are parsed here; each command group lives
//! in its own module (`secrets.rs`, ...). Data goes to stdout, diagnostics
//! to stderr. A failure prints `error: <cause chain>` (and sometimes a
//! `hint: ...` line) and exits 1; bad flags exit 2.

mod admin;
mod backend;
mod backup;
#[path = "../shared/cli.rs"]
mod cli;
mod completions;
mod config;
mod envoys;
mod hint;
mod migrate;
mod notify;
mod output;
mod rekey;
mod repo;
mod reports;
mod run;
mod secrets;
mod store_owner;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::hint::Hinted;

/// vigocli: the Vigo operator CLI - secrets, envoys, config checks and
/// deploys, on the host of the server.
#[derive(Debug, Parser)]
#[command(name = "vigocli", version = cli::VERSION)]
struct Cli {
    /// The server config file (the CLI reads it to reach the secrets
    /// backend and the server).
    #[arg(long, global = true, value_name = "PATH", env = "VIGO_CONFIG",
          default_value = vigo_config::DEFAULT_CONFIG_FILE)]
    config: PathBuf,

    #[command(flatten)]
    log: vigo_log::LogArgs,

    /// Shape of the data printed on stdout.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,

    #[command(subcommand)]
    command: Command,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// Lines for people.
    Text,
    /// JSON for scripts.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Store, read, list and remove secrets.
    Secrets {
        #[command(subcommand)]
        command: secrets::SecretsCommand,
    },
    /// Enrollment and state of envoys.
    Envoys {
        #[command(subcommand)]
        command: envoys::EnvoysCommand,
    },
    /// Validate the config repository and resolve every secret reference;
    /// prints every error with file:line.
    Check,
    /// Print the compiled catalog of an envoy (secrets as `[secret:path]`).
    Catalog(repo::CatalogArgs),
    /// Deploy the config repository to the running server and show what it
    /// serves.
    Config {
        #[command(subcommand)]
        command: config::ConfigCommand,
    },
    /// Make envoys (a name, a glob like 'web*', or --role ROLE) check in and
    /// apply their own catalog now, and print each one's result.
    Run(run::RunArgs),
    /// Run history: `reports [ENVOY] [--failed] [--since 1h]` lists runs,
    /// newest first; `reports show ID` shows one resource by resource.
    Reports(reports::ReportsArgs),
    /// Notification mail: `notify test` sends a test mail through the
    /// server's smtp settings.
    Notify {
        #[command(subcommand)]
        command: notify::NotifyCommand,
    },
    /// Write an encrypted archive of the secret files, the embedded
    /// database (snapshot taken online) and the CA certificate; never the
    /// master key.
    Backup(backup::BackupArgs),
    /// Restore an archive written by `backup` into an empty data folder
    /// (the master key must be in place first).
    Restore(backup::RestoreArgs),
    /// Print a shell completion script, e.g.
    /// `vigocli completions bash > /etc/bash_completion.d/vigocli`.
    Completions(completions::CompletionsArgs),
    /// Write the man pages into a folder (used to build the packages).
    #[command(hide = true)]
    Manpages(completions::ManpagesArgs),
}

/// What every command gets besides its own arguments.
#[derive(Debug)]
pub(crate) struct Globals {
    /// `--config`.
    pub(crate) config: PathBuf,
    /// `--output`.
    pub(crate) output: Output,
}

fn main() -> ExitCode {
    // Before anything else: no core dump may hold a secret (see the
    // security model in docs/operations.md).
    if let Err(e) = vigo_process::harden() {
        eprintln!("error: {:#}", anyhow::Error::new(e));
        return ExitCode::FAILURE;
    }
    output::exit_quietly_on_broken_pipe();
    let cli = Cli::parse();
    // Neither needs logging, a config or a runtime.
    let local = match &cli.command {
        Command::Completions(args) => Some(completions::completions(args)),
        Command::Manpages(args) => Some(completions::manpages(args)),
        _ => None,
    };
    if let Some(result) = local {
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {}", vigo_log::error_chain(e.as_ref()));
                ExitCode::FAILURE
            }
        };
    }
    if let Err(e) = cli.log.init() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let globals = Globals {
        config: cli.config,
        output: cli.output,
    };
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| {
            rt.block_on(async {
                match cli.command {
                    Command::Secrets { command } => secrets::run(command, &globals).await,
                    Command::Envoys { command } => envoys::run(command, &globals).await,
                    Command::Check => repo::check(&globals).await,
                    Command::Catalog(args) => repo::catalog(&args, &globals).await,
                    Command::Config { command } => config::run(command, &globals).await,
                    Command::Run(args) => run::run(&args, &globals).await,
                    Command::Reports(args) => reports::run(args, &globals).await,
                    Command::Notify { command } => notify::run(command, &globals).await,
                    Command::Backup(args) => backup::backup(&args, &globals).await,
                    Command::Restore(args) => backup::restore(&args, &globals).await,
                    Command::Completions(_) | Command::Manpages(_) => Ok(()),
                }
            })
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of stdout went away (`vigocli envoys list | head -1`).
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", vigo_log::error_chain(e.as_ref()));
            if let Some(hint) = e.chain().find_map(|c| c.downcast_ref::<Hinted>()) {
                eprintln!("hint: {}", hint.hint());
            }
            ExitCode::FAILURE
        }
    }
}
