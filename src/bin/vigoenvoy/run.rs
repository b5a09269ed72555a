//! `vigoenvoy run`: the check-in loop against the server (SPEC 6.1-6.3).
//!
//! `run` loops until SIGTERM/SIGINT, enforcing the catalog it holds in
//! memory on every cycle; `run --once` asks for the full catalog, enforces
//! it, then exits non-zero if a resource failed, if the envoy still waits
//! for approval, or if the server could not be reached. `run --once --noop`
//! prints every drifted resource and what differs, changing nothing.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use vigo_envoy::{Cycle, Envoy, EnvoyConfig};

use crate::apply::print_report;

/// Exit status when a resource failed.
const EXIT_FAILED: u8 = 2;

/// Arguments of `vigoenvoy run`.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// One check-in and apply, then exit.
    #[arg(long)]
    once: bool,
    /// With --once: report what would change and change nothing.
    #[arg(long, requires = "once")]
    noop: bool,
}

/// Runs the command.
pub(crate) fn run(args: &RunArgs, config: &Path) -> anyhow::Result<ExitCode> {
    let config = EnvoyConfig::load(config)?;
    let mut envoy = Envoy::open(config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        if !args.once {
            tracing::info!(envoy = %envoy.name(), "envoy started");
            envoy
                .run_forever(
                    |report| {
                        if let Err(e) = print_report(report) {
                            tracing::warn!(error = %e, "printing the report failed");
                        }
                    },
                    shutdown_signal(),
                )
                .await;
            tracing::info!("envoy stopped");
            return Ok(ExitCode::SUCCESS);
        }
        match envoy.run_once(args.noop).await? {
            Cycle::Unchanged { .. } => {
                println!("catalog unchanged: nothing to apply");
                Ok(ExitCode::SUCCESS)
            }
            Cycle::Applied { report, .. } => {
                print_report(&report)?;
                Ok(if report.has_failures() {
                    ExitCode::from(EXIT_FAILED)
                } else {
                    ExitCode::SUCCESS
                })
            }
        }
    })
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        // Without signal handlers the envoy runs until killed.
        _ => std::future::pending().await,
    }
}
