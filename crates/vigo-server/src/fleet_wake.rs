//! Waking held waits across replicas, and the one periodic sweep.
//!
//! Replicas sharing PostgreSQL tell each other which envoys a change
//! concerns with `NOTIFY` (see `vigo_store`'s `wake.rs`: the rotation's and
//! force-push's transactions send it at commit, other changes through
//! [`wake_everywhere`]). The supervised `wake-listener` task of each
//! replica:
//!
//! - holds one connection listening on the wake channel and wakes the
//!   waits it holds for the names it receives;
//! - when that connection is lost (database restart, terminated backend,
//!   network), logs it, connects again (backing off from
//!   [`FIRST_RETRY`] to [`LONGEST_RETRY`] while the database is down) and,
//!   once listening again, re-checks every held wait with one query, since
//!   notifications sent meanwhile are lost;
//! - every [`SWEEP_INTERVAL`], asks the database once which envoys are due
//!   to check in and wakes those it holds: the safety net for anything
//!   missed, one query per process however many waits it holds.
//!
//! On SQLite only this process writes the database, so there is no
//! listener: in-process wakes and the sweep.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};
use vigo_store::{StoreError, StoreHandle, Wake, WakeListener};

use crate::{AppState, error_chain};

/// How often the held waits are re-checked with one query.
pub(crate) const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// Pause before connecting the listener again after a failed attempt.
pub(crate) const FIRST_RETRY: Duration = Duration::from_millis(250);

/// Longest pause between attempts while the database stays down.
pub(crate) const LONGEST_RETRY: Duration = Duration::from_secs(5);

/// Wakes the waits held here for `names` and tells the other replicas, for
/// a change whose store call does not notify by itself (revoke, remove).
/// A failed notification is logged: the other replicas' sweep catches up.
pub(crate) async fn wake_everywhere(state: &AppState, names: &[&str]) {
    state.waiters.wake_many(names);
    if let Err(e) = state.store().notify_wake(names).await {
        tracing::warn!(
            envoys = names.len(),
            error = %error_chain(&e),
            "could not notify the other replicas; their waits for these envoys re-check within {}s",
            SWEEP_INTERVAL.as_secs()
        );
    }
}

/// Wakes the waits held here for envoys the database says are due to check
/// in, with one query; returns how many envoys were woken.
pub(crate) async fn sweep(state: &AppState) -> Result<usize, StoreError> {
    if state.waiters.is_empty() {
        return Ok(0);
    }
    let due = state.store().checkin_due_envoys().await?;
    Ok(state.waiters.wake_many(&due))
}

/// What ended one turn of the loop.
enum Event {
    Received(Result<Wake, StoreError>),
    Sweep,
    Retry,
}

/// The `wake-listener` task (see the module docs); runs until aborted.
pub(crate) async fn run(state: AppState) {
    let mut sweep_timer = tokio::time::interval_at(Instant::now() + SWEEP_INTERVAL, SWEEP_INTERVAL);
    sweep_timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut listening: Option<(WakeListener, StoreHandle)> = None;
    // `false` once the store says it has no listener (SQLite).
    let mut shared = true;
    let mut retry = FIRST_RETRY;
    let mut next_attempt = Instant::now();
    // Whether the listener was lost (or never came up) and a re-check of
    // every held wait is owed once it listens again.
    let mut lost = false;
    loop {
        if shared && listening.is_none() && Instant::now() >= next_attempt {
            let store = state.store();
            match store.wake_listener().await {
                Ok(Some(listener)) => {
                    if lost {
                        tracing::info!(
                            channel = listener.channel(),
                            "listening for other replicas' wake-ups again; re-checking held waits"
                        );
                    } else {
                        tracing::debug!(
                            channel = listener.channel(),
                            "listening for other replicas' wake-ups"
                        );
                    }
                    listening = Some((listener, store));
                    retry = FIRST_RETRY;
                    if lost {
                        lost = false;
                        run_sweep(&state, "after reconnecting").await;
                    }
                }
                Ok(None) => shared = false,
                Err(e) => {
                    if !lost || retry == FIRST_RETRY {
                        tracing::warn!(
                            error = %error_chain(&e),
                            "cannot listen for other replicas' wake-ups; retrying (held waits are re-checked once it listens again)"
                        );
                    }
                    lost = true;
                    next_attempt = Instant::now() + retry;
                    retry = (retry * 2).min(LONGEST_RETRY);
                }
            }
        }
        let event = {
            let waiting_to_retry = shared && listening.is_none();
            let receive = async {
                match listening.as_mut() {
                    Some((listener, _)) => listener.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                received = receive => Event::Received(received),
                _ = sweep_timer.tick() => Event::Sweep,
                () = tokio::time::sleep_until(next_attempt), if waiting_to_retry => Event::Retry,
            }
        };
        match event {
            Event::Received(Ok(Wake::Envoys(names))) => {
                let woken = state.waiters.wake_many(&names);
                tracing::debug!(
                    envoys = names.len(),
                    held_here = woken,
                    "wake-up from another replica"
                );
            }
            Event::Received(Ok(Wake::All)) => {
                run_sweep(&state, "on another replica's request").await
            }
            Event::Received(Err(e)) => {
                tracing::warn!(
                    error = %error_chain(&e),
                    "lost the connection listening for other replicas' wake-ups; reconnecting"
                );
                if let Some((listener, _)) = listening.take() {
                    listener.close().await;
                }
                lost = true;
                next_attempt = Instant::now();
            }
            Event::Sweep => {
                // A rotated DSN put a new pool in service: listen there.
                if let Some((_, store)) = &listening
                    && !Arc::ptr_eq(store, &state.store())
                    && let Some((listener, _)) = listening.take()
                {
                    listener.close().await;
                    lost = true;
                    next_attempt = Instant::now();
                }
                run_sweep(&state, "periodic").await;
            }
            Event::Retry => {}
        }
    }
}

async fn run_sweep(state: &AppState, why: &'static str) {
    match sweep(state).await {
        Ok(woken) => {
            if woken > 0 {
                tracing::debug!(woken, why, "held waits re-checked");
            }
        }
        Err(e) => tracing::warn!(
            error = %error_chain(&e),
            why,
            "re-checking held waits failed; retrying at the next sweep"
        ),
    }
}
