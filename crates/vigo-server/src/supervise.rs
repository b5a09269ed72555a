//! Supervision of the server's background tasks (the rotation flow, the
//! config reloader, the check-in writer) and the health they add up to.
//!
//! A supervised task is expected to run as long as the server does. When
//! it panics or ends, the supervisor logs it at ERROR (without the panic's
//! message: it could quote data) and starts it again after a pause that
//! doubles from [`FIRST_RESTART_PAUSE`] up to [`LONGEST_RESTART_PAUSE`]
//! (back to the first after a task has run for [`STABLE_AFTER`]). While a
//! task is not running, [`Health`] names it and `/healthz` answers 503.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Pause before the first restart of a failed task.
pub(crate) const FIRST_RESTART_PAUSE: Duration = Duration::from_secs(1);
/// Longest pause between restarts of a task that keeps failing.
pub(crate) const LONGEST_RESTART_PAUSE: Duration = Duration::from_secs(60);
/// A task that ran this long before failing restarts after the first pause.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// Whether each supervised task is running; shared by the supervisors and
/// `/healthz`.
#[derive(Debug, Default, Clone)]
pub(crate) struct Health {
    tasks: Arc<Mutex<BTreeMap<&'static str, bool>>>,
}

impl Health {
    /// The tasks that are not running, by name (empty: healthy).
    pub(crate) fn problems(&self) -> Vec<&'static str> {
        self.lock()
            .iter()
            .filter(|(_, running)| !**running)
            .map(|(name, _)| *name)
            .collect()
    }

    fn set(&self, task: &'static str, running: bool) {
        self.lock().insert(task, running);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, bool>> {
        // Every change is one insert.
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs `make()` as task `name` under supervision (see the module docs).
/// The task is marked running before this returns. Aborting the returned
/// handle stops the supervisor and the task it runs.
pub(crate) fn supervise<F, Fut>(health: Health, name: &'static str, mut make: F) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    health.set(name, true);
    tokio::spawn(async move {
        let mut pause = FIRST_RESTART_PAUSE;
        loop {
            health.set(name, true);
            let started = Instant::now();
            let mut task = AbortOnDrop(tokio::spawn(make()));
            let how = match (&mut task.0).await {
                Ok(()) => "ended",
                Err(e) if e.is_panic() => "panicked",
                Err(_) => "was cancelled",
            };
            health.set(name, false);
            if started.elapsed() >= STABLE_AFTER {
                pause = FIRST_RESTART_PAUSE;
            }
            tracing::error!(
                task = name,
                restart_in = %humantime::format_duration(pause),
                "background task {how} unexpectedly; restarting it (/healthz answers 503 until it runs again)"
            );
            tokio::time::sleep(pause).await;
            pause = pause.saturating_mul(2).min(LONGEST_RESTART_PAUSE);
            tracing::info!(task = name, "background task restarted");
        }
    })
}

/// A task handle that aborts the task when dropped.
#[derive(Debug)]
pub(crate) struct AbortOnDrop<T>(pub(crate) JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    async fn until(mut done: impl FnMut() -> bool) {
        for _ in 0..10_000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("condition never met");
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_task_is_restarted_and_unhealthy_meanwhile() {
        let health = Health::default();
        let runs = Arc::new(AtomicU32::new(0));
        let supervisor = supervise(health.clone(), "worker", {
            let runs = Arc::clone(&runs);
            move || {
                let run = runs.fetch_add(1, Ordering::SeqCst);
                async move {
                    if run == 0 {
                        panic!("injected fault");
                    }
                    std::future::pending::<()>().await;
                }
            }
        });
        until(|| !health.problems().is_empty()).await;
        assert_eq!(health.problems(), ["worker"]);
        until(|| runs.load(Ordering::SeqCst) == 2).await;
        until(|| health.problems().is_empty()).await;
        supervisor.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn restarts_back_off() {
        let health = Health::default();
        let starts = Arc::new(Mutex::new(Vec::new()));
        let supervisor = supervise(health.clone(), "flaky", {
            let starts = Arc::clone(&starts);
            move || {
                starts.lock().unwrap().push(Instant::now());
                async {}
            }
        });
        until(|| starts.lock().unwrap().len() == 5).await;
        let starts = starts.lock().unwrap().clone();
        let gaps: Vec<u64> = starts.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
        assert_eq!(gaps, [1, 2, 4, 8]);
        supervisor.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn aborting_the_supervisor_stops_the_task() {
        let health = Health::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut tx = Some(tx);
        let supervisor = supervise(health, "holder", move || {
            let tx = tx.take();
            async move {
                let _held = tx;
                std::future::pending::<()>().await;
            }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        supervisor.abort();
        // The task's sender is dropped with it.
        assert!(rx.await.is_err());
    }
}
