//! The wake-up registry behind `GET /v1/wait` (docs/secrets.md "Rotation").
//!
//! An envoy holds a wait open; it costs nothing while nothing concerns the
//! envoy: no timer, no database read. Whoever sets force-push, queues
//! triggers, or revokes or removes an envoy in this process calls
//! [`Waiters::wake`], and the wait asks the database once whether the envoy
//! should check in now. Changes made by another replica sharing PostgreSQL
//! arrive as notifications (`fleet_wake.rs`), which wake the same way; one
//! periodic sweep per process (one query for all held waits) is the safety
//! net for a notification that was lost.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// Envoys currently holding a wait, and the shutdown signal that ends every
/// wait.
#[derive(Debug)]
pub(crate) struct Waiters {
    envoys: Mutex<HashMap<String, Arc<Notify>>>,
    shutdown: watch::Sender<bool>,
}

impl Default for Waiters {
    fn default() -> Self {
        Self::new()
    }
}

impl Waiters {
    /// An empty registry.
    pub(crate) fn new() -> Self {
        Self {
            envoys: Mutex::new(HashMap::new()),
            shutdown: watch::Sender::new(false),
        }
    }

    /// Wakes every wait `envoy` holds in this process (none: nothing
    /// happens; the next wait sees the database).
    pub(crate) fn wake(&self, envoy: &str) {
        if let Some(notify) = self.lock().get(envoy) {
            notify.notify_waiters();
        }
    }

    /// Wakes the waits held here for any of `envoys`; returns how many
    /// envoys that was.
    pub(crate) fn wake_many<S: AsRef<str>>(&self, envoys: &[S]) -> usize {
        let held = self.lock();
        let mut woken = 0;
        for envoy in envoys {
            if let Some(notify) = held.get(envoy.as_ref()) {
                notify.notify_waiters();
                woken += 1;
            }
        }
        woken
    }

    /// The envoys holding a wait right now.
    #[cfg(test)]
    pub(crate) fn held(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Ends every wait now and every later one at once (server shutdown).
    pub(crate) fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }

    /// Number of envoys holding a wait right now.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no envoy holds a wait.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Holds up to `hold` until `due` says the envoy should check in.
    ///
    /// The wait is registered first; `due` is then asked at once and after
    /// every wake, never on a timer. Returns `Ok(true)` as soon as it says
    /// yes, `Ok(false)` after `hold` or on shutdown, and its first error.
    pub(crate) async fn wait<E, F, Fut>(
        &self,
        envoy: &str,
        hold: Duration,
        mut due: F,
    ) -> Result<bool, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<bool, E>>,
    {
        let registration = self.register(envoy);
        let notify = registration.notify();
        let mut shutdown = self.shutdown.subscribe();
        let deadline = Instant::now() + hold;
        loop {
            // Listen before asking, so a wake between the check and the
            // sleep is not lost.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if *shutdown.borrow_and_update() {
                return Ok(false);
            }
            if due().await? {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(deadline) => return Ok(false),
                _ = shutdown.changed() => {}
            }
        }
    }

    fn register(&self, envoy: &str) -> Registration<'_> {
        let notify = Arc::clone(self.lock().entry(envoy.to_owned()).or_default());
        Registration {
            waiters: self,
            envoy: envoy.to_owned(),
            notify: Some(notify),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Notify>>> {
        // The map stays consistent even if a holder panicked: every change
        // is a single insert or remove.
        self.envoys.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One held wait; removes the envoy's entry when the last wait for it ends,
/// including when the client goes away and the request is dropped.
struct Registration<'a> {
    waiters: &'a Waiters,
    envoy: String,
    notify: Option<Arc<Notify>>,
}

impl Registration<'_> {
    fn notify(&self) -> Arc<Notify> {
        self.notify.clone().unwrap_or_default()
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut envoys = self.waiters.lock();
        // Drop our handle under the lock, so exactly one of several ending
        // waits sees itself as the last.
        drop(self.notify.take());
        if envoys
            .get(&self.envoy)
            .is_some_and(|n| Arc::strong_count(n) == 1)
        {
            envoys.remove(&self.envoy);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    use super::*;

    const LONG: Duration = Duration::from_secs(3600);

    #[tokio::test(start_paused = true)]
    async fn a_due_envoy_returns_at_once() {
        let waiters = Waiters::new();
        let answer = waiters
            .wait("db1", LONG, || async { Ok::<_, ()>(true) })
            .await;
        assert_eq!(answer, Ok(true));
        assert!(waiters.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn issue_14_nothing_due_is_asked_once_and_ends_after_the_hold() {
        let waiters = Waiters::new();
        let asked = AtomicU32::new(0);
        let started = Instant::now();
        let answer = waiters
            .wait("db1", Duration::from_secs(55), || {
                asked.fetch_add(1, Ordering::Relaxed);
                async { Ok::<_, ()>(false) }
            })
            .await;
        assert_eq!(answer, Ok(false));
        // Once at the start and never again: no polling while held.
        assert_eq!(asked.load(Ordering::Relaxed), 1);
        assert_eq!(started.elapsed(), Duration::from_secs(55));
        assert!(waiters.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn issue_14_wake_many_wakes_only_held_names() {
        let waiters = Arc::new(Waiters::new());
        let asked = Arc::new(AtomicU32::new(0));
        let task = {
            let waiters = Arc::clone(&waiters);
            let asked = Arc::clone(&asked);
            tokio::spawn(async move {
                waiters
                    .wait("db1", LONG, || {
                        let n = asked.fetch_add(1, Ordering::SeqCst);
                        async move { Ok::<_, ()>(n >= 1) }
                    })
                    .await
            })
        };
        while waiters.is_empty() || asked.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(waiters.held(), vec!["db1".to_owned()]);
        assert_eq!(waiters.wake_many(&["web1", "web2"]), 0);
        assert_eq!(waiters.wake_many(&["web1", "db1"]), 1);
        assert_eq!(task.await.unwrap(), Ok(true));
        assert_eq!(asked.load(Ordering::SeqCst), 2);
        assert!(waiters.held().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_wake_makes_the_waiter_ask_again() {
        let waiters = Arc::new(Waiters::new());
        let flag = Arc::new(AtomicBool::new(false));
        let task = {
            let waiters = Arc::clone(&waiters);
            let flag = Arc::clone(&flag);
            tokio::spawn(async move {
                waiters
                    .wait("db1", LONG, || {
                        let due = flag.load(Ordering::SeqCst);
                        async move { Ok::<_, ()>(due) }
                    })
                    .await
            })
        };
        while waiters.is_empty() {
            tokio::task::yield_now().await;
        }
        waiters.wake("web1");
        flag.store(true, Ordering::SeqCst);
        waiters.wake("db1");
        assert_eq!(task.await.unwrap(), Ok(true));
        assert!(waiters.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_every_wait() {
        let waiters = Arc::new(Waiters::new());
        let task = {
            let waiters = Arc::clone(&waiters);
            tokio::spawn(async move {
                waiters
                    .wait("db1", LONG, || async { Ok::<_, ()>(false) })
                    .await
            })
        };
        while waiters.is_empty() {
            tokio::task::yield_now().await;
        }
        waiters.shut_down();
        assert_eq!(task.await.unwrap(), Ok(false));
        // A wait started after shutdown ends at once.
        assert_eq!(
            waiters
                .wait("db1", LONG, || async { Ok::<_, ()>(false) })
                .await,
            Ok(false)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn errors_end_the_wait() {
        let waiters = Waiters::new();
        let answer = waiters
            .wait("db1", LONG, || async { Err::<bool, _>("db down") })
            .await;
        assert_eq!(answer, Err("db down"));
    }
}
