//! `vigoenvoy run`: the check-in loop against the server (docs/ARCHITECTURE.md "A check-in").
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
use crate::stop::Stop;

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
    // A noop needs no exclusive hold on the data folder: it works while the
    // `run` loop holds it. A real `--once` beside the loop is refused.
    let mut envoy = if args.noop {
        Envoy::open_noop(config)?
    } else {
        Envoy::open(config)?
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        // SIGTERM/SIGINT stop an apply in progress (see `stop`): the running
        // command's process group is killed and its secret file removed.
        let cancel = envoy.cancel_handle();
        let stop = Stop::install(cancel.clone())?;
        if !args.once {
            tracing::info!(envoy = %envoy.name(), "envoy started");
            let forever = envoy.run_forever(
                |report| {
                    if let Err(e) = print_report(report) {
                        tracing::warn!(error = %e, "printing the report failed");
                    }
                },
                stop.requested(),
            );
            tokio::select! {
                () = forever => {}
                () = stop.deadline() => {}
            }
            tracing::info!("envoy stopped");
            // Stopped between cycles: a clean stop. Stopped during an apply:
            // not converged, say so.
            let code = cancel.cut_short().then(|| stop.exit()).flatten();
            return Ok(code.unwrap_or(ExitCode::SUCCESS));
        }
        let cycle = tokio::select! {
            cycle = envoy.run_once(args.noop) => cycle,
            () = stop.deadline() => return Ok(stop.exit().unwrap_or(ExitCode::FAILURE)),
        };
        if let Some(code) = stop.exit() {
            if let Ok(Cycle::Applied { report, .. }) = &cycle {
                print_report(report)?;
            }
            return Ok(code);
        }
        match cycle? {
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
