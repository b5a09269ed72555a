//! The rotation gate: what makes "Server notified — affected envoys will
//! apply on next check-in" literally true (docs/secrets.md "Rotation").
//!
//! Every change queued into the rotation flow holds a [`Ticket`] until the
//! flow has acted on it (triggers and force-push recorded); the start-up
//! comparison of versions holds one until it has queued its changes. A
//! check-in first waits, up to a bound, until every ticket issued before it
//! arrived is done ([`RotationGate::settled`]), so it is answered from the
//! state the rotation left. A ticket is done when it is dropped, so a flow
//! that failed, panicked or was cancelled never holds check-ins beyond the
//! bound either.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// How long a check-in waits for queued rotations before it is answered
/// with the last good state (the rotation's triggers stay queued and reach
/// the envoy at its next check-in).
pub(crate) const ROTATION_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct Tickets {
    /// The number the next ticket gets.
    next: u64,
    /// Tickets not done yet.
    open: BTreeSet<u64>,
}

/// Issues tickets and lets check-ins wait for them; cheap to clone.
#[derive(Clone)]
pub(crate) struct RotationGate {
    tickets: Arc<watch::Sender<Tickets>>,
}

impl Default for RotationGate {
    fn default() -> Self {
        Self {
            tickets: Arc::new(watch::Sender::new(Tickets::default())),
        }
    }
}

impl RotationGate {
    /// A new ticket, open until dropped.
    pub(crate) fn ticket(&self) -> Ticket {
        let mut id = 0;
        self.tickets.send_modify(|t| {
            id = t.next;
            t.next += 1;
            t.open.insert(id);
        });
        Ticket {
            tickets: Arc::clone(&self.tickets),
            id,
        }
    }

    /// Waits until every ticket issued before this call is done, at most
    /// `limit`. Returns whether they all were done in time.
    pub(crate) async fn settled(&self, limit: Duration) -> bool {
        if self.open() == 0 {
            return true;
        }
        let mut seen = self.tickets.subscribe();
        let before = seen.borrow_and_update().next;
        let done = |t: &Tickets| t.open.first().is_none_or(|&first| first >= before);
        matches!(
            tokio::time::timeout(limit, seen.wait_for(done)).await,
            Ok(Ok(_))
        )
    }

    /// Tickets not done yet.
    pub(crate) fn open(&self) -> usize {
        self.tickets.borrow().open.len()
    }
}

impl fmt::Debug for RotationGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RotationGate")
            .field("open", &self.open())
            .finish()
    }
}

/// One queued piece of rotation work; done when dropped.
pub(crate) struct Ticket {
    tickets: Arc<watch::Sender<Tickets>>,
    id: u64,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let id = self.id;
        self.tickets.send_modify(|t| {
            t.open.remove(&id);
        });
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Ticket").field(&self.id).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(3600);

    #[tokio::test(start_paused = true)]
    async fn nothing_queued_passes_at_once() {
        let gate = RotationGate::default();
        assert!(gate.settled(Duration::ZERO).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_in_waits_for_tickets_issued_before_it_only() {
        let gate = RotationGate::default();
        let first = gate.ticket();
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.settled(LONG).await }
        });
        tokio::task::yield_now().await;
        // Issued after the check-in arrived: not waited for.
        let later = gate.ticket();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiter.is_finished());
        drop(first);
        assert!(waiter.await.unwrap());
        assert_eq!(gate.open(), 1);
        drop(later);
        assert_eq!(gate.open(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_is_bounded() {
        let gate = RotationGate::default();
        let _stuck = gate.ticket();
        let started = tokio::time::Instant::now();
        assert!(!gate.settled(ROTATION_WAIT).await);
        assert_eq!(started.elapsed(), ROTATION_WAIT);
    }
}
