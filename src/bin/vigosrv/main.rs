//! `vigosrv`: the Vigo server. Parses flags, sets up logging, and runs the
//! server from `vigo-server` until SIGTERM or SIGINT (a graceful drain).
//! SIGHUP loads the config repository again and never stops the server.
//!
//! Exit status: 0 after a clean shutdown, 1 when startup fails (the cause is
//! logged as `ERROR server failed error="..."`), 2 for bad flags.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use vigo_log::error_chain;
use vigo_server::{Server, shutdown_signal};

#[path = "../shared/cli.rs"]
mod cli;

/// vigosrv: the Vigo server - compiles the config repository and serves
/// each envoy its catalog over mutual TLS.
#[derive(Debug, Parser)]
#[command(name = "vigosrv", version = cli::VERSION)]
struct Args {
    /// The server config file.
    #[arg(long, value_name = "PATH", env = "VIGO_CONFIG",
          default_value = vigo_config::DEFAULT_CONFIG_FILE)]
    config: PathBuf,

    /// Write the man page into this folder and exit (used to build the
    /// packages).
    #[arg(long, value_name = "DIR", hide = true)]
    manpages: Option<PathBuf>,

    #[command(flatten)]
    log: vigo_log::LogArgs,
}

fn main() -> ExitCode {
    // Before anything else: no core dump may hold a secret (see the
    // security model in docs/operations.md).
    if let Err(e) = vigo_process::harden() {
        eprintln!("error: {:#}", anyhow::Error::new(e));
        return ExitCode::FAILURE;
    }
    let args = Args::parse();
    if let Some(dir) = &args.manpages {
        return match cli::write_manpages(<Args as clap::CommandFactory>::command(), dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: writing man pages into {}: {e}", dir.display());
                ExitCode::FAILURE
            }
        };
    }
    if let Err(e) = args.log.init() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %format!("starting the async runtime: {e}"), "server failed");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match Server::start(&args.config).await {
            Ok(server) => {
                server.serve(shutdown_signal()).await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!(error = %error_chain(&e), "server failed");
                ExitCode::FAILURE
            }
        }
    })
}
