//! Stopping on SIGTERM/SIGINT while `apply` or `run` is working.
//!
//! The handlers are registered at once (before the first check-in or
//! apply), so a signal never kills the process outright with a command
//! still running and its transient secret file on disk. The first signal
//! stops the engine ([`CancelHandle`]): it kills the running command's
//! process group, removes the secret file, reports the rest as not applied
//! and returns. The caller then has [`GRACE`] to finish (print, report to
//! the server); a second signal or the end of the grace drops the work,
//! whose guards still kill commands and remove secret files.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use vigo_engine::CancelHandle;

/// How long the work may take to wind down after the first signal.
const GRACE: Duration = Duration::from_secs(10);

/// The stop signals received so far.
#[derive(Debug, Clone, Copy, Default)]
struct Received {
    /// The first one (its number).
    first: Option<i32>,
    /// How many.
    count: u32,
}

/// Watches for SIGTERM and SIGINT; see the module documentation.
pub(crate) struct Stop {
    received: watch::Receiver<Received>,
}

impl Stop {
    /// Registers the handlers now and stops `cancel`'s engine on the first
    /// signal. Must run inside the tokio runtime.
    pub(crate) fn install(cancel: CancelHandle) -> anyhow::Result<Self> {
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let (sender, received) = watch::channel(Received::default());
        tokio::spawn(async move {
            loop {
                let number = tokio::select! {
                    _ = term.recv() => SignalKind::terminate().as_raw_value(),
                    _ = int.recv() => SignalKind::interrupt().as_raw_value(),
                };
                cancel.cancel();
                sender.send_modify(|r| {
                    r.first.get_or_insert(number);
                    r.count += 1;
                });
            }
        });
        Ok(Self { received })
    }

    /// Resolves when the first signal arrived.
    pub(crate) async fn requested(&self) {
        let mut received = self.received.clone();
        // The sender lives as long as the runtime: an error means the
        // runtime is going away, and then nothing is left to wait for.
        let _ = received.wait_for(|r| r.count > 0).await;
    }

    /// Resolves [`GRACE`] after the first signal, or at the second one:
    /// then the caller drops whatever is still running.
    pub(crate) async fn deadline(&self) {
        self.requested().await;
        let mut received = self.received.clone();
        let _ = tokio::time::timeout(GRACE, received.wait_for(|r| r.count > 1)).await;
    }

    /// Once a signal arrived: says on stderr that the work was stopped and
    /// gives the exit status for it (128 + the signal's number).
    pub(crate) fn exit(&self) -> Option<ExitCode> {
        let number = self.received.borrow().first?;
        let name = if number == SignalKind::interrupt().as_raw_value() {
            "SIGINT"
        } else {
            "SIGTERM"
        };
        eprintln!(
            "error: stopped by {name}: a running command was killed and the rest not applied; run again to converge"
        );
        Some(ExitCode::from(
            u8::try_from(128 + number).unwrap_or(u8::MAX),
        ))
    }
}
