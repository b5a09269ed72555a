//! The wake-up registry behind `GET /v1/wait` (SPEC 4.5).
//!
//! An envoy holds a wait open; whoever sets force-push or queues triggers
//! for it in this process calls [`Waiters::wake`] so the envoy checks in at
//! once. The database stays the source of truth: a waiter re-checks it every
//! [`Waiters::recheck`] as well, so a change made by another server replica
//! sharing PostgreSQL is noticed too, and a wake that raced with the first
//! check is never lost.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// Envoys currently holding a wait, and the shutdown signal that ends every
/// wait.
#[derive(Debug)]
pub struct Waiters {
    envoys: Mutex<HashMap<String, Arc<Notify>>>,
    shutdown: watch::Sender<bool>,
    recheck: Duration,
}

impl Waiters {
    /// A registry whose waits re-check the database every `recheck`.
    pub fn new(recheck: Duration) -> Self {
        Self {
            envoys: Mutex::new(HashMap::new()),
            shutdown: watch::Sender::new(false),
            recheck,
        }
    }

    /// How often a held wait re-checks the database.
    pub fn recheck(&self) -> Duration {
        self.recheck
    }

    /// Wakes every wait `envoy` holds in this process (none: nothing
    /// happens; the next wait sees the database).
    pub fn wake(&self, envoy: &str) {
        if let Some(notify) = self.lock().get(envoy) {
            notify.notify_waiters();
        }
    }

    /// Ends every wait now and every later one at once (server shutdown).
    pub fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }

    /// Number of envoys holding a wait right now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no envoy holds a wait.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Holds up to `hold` until `due` says the envoy should check in.
    ///
    /// `due` is asked at once, after every wake and every
    /// [`Waiters::recheck`]. Returns `Ok(true)` as soon as it says yes,
    /// `Ok(false)` after `hold` or on shutdown, and its first error.
    pub async fn wait<E, F, Fut>(&self, envoy: &str, hold: Duration, mut due: F) -> Result<bool, E>
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
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            let pause = self.recheck.min(deadline - now);
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep(pause) => {}
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
        let waiters = Waiters::new(LONG);
        let answer = waiters
            .wait("db1", LONG, || async { Ok::<_, ()>(true) })
            .await;
        assert_eq!(answer, Ok(true));
        assert!(waiters.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_due_ends_after_the_hold() {
        let waiters = Waiters::new(Duration::from_secs(2));
        let asked = AtomicU32::new(0);
        let answer = waiters
            .wait("db1", Duration::from_secs(55), || {
                asked.fetch_add(1, Ordering::Relaxed);
                async { Ok::<_, ()>(false) }
            })
            .await;
        assert_eq!(answer, Ok(false));
        // Once at the start, then every 2 s up to and at the deadline.
        assert_eq!(asked.load(Ordering::Relaxed), 29);
        assert!(waiters.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_wake_makes_the_waiter_ask_again() {
        let waiters = Arc::new(Waiters::new(LONG));
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
        let waiters = Arc::new(Waiters::new(LONG));
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
        let waiters = Waiters::new(LONG);
        let answer = waiters
            .wait("db1", LONG, || async { Err::<bool, _>("db down") })
            .await;
        assert_eq!(answer, Err("db down"));
    }
}
