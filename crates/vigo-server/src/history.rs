//! Background pruning of run history (docs/operations.md "Run history"):
//! reports past `history.max_age` or beyond `history.max_runs` per envoy,
//! and deliveries, secret audit entries and run requests past the same age.
//!
//! It runs at start-up and then every [`PRUNE_EVERY`], deleting in batches
//! of [`PRUNE_BATCH`] rows per table with a [`BATCH_PAUSE`] between them: one
//! batch is one short statement, so check-ins (which write to the same
//! database, and on SQLite wait for its one writer) are never held up for
//! long, however large the backlog.

use std::time::Duration;

use vigo_store::{PrunePolicy, Pruned, Timestamp};

use crate::AppState;

/// Time between two pruning passes.
pub(crate) const PRUNE_EVERY: Duration = Duration::from_secs(10 * 60);

/// Rows per table deleted by one statement.
pub(crate) const PRUNE_BATCH: u32 = 500;

/// Pause between two batches of one pass, so other writers get their turn.
const BATCH_PAUSE: Duration = Duration::from_millis(20);

/// Prunes now and every [`PRUNE_EVERY`], for as long as the server runs. A
/// failed pass is logged and the next one tries again.
pub(crate) async fn run_pruner(state: AppState) {
    loop {
        match prune_once(&state).await {
            Ok(pruned) if pruned.total() > 0 => tracing::info!(
                reports = pruned.reports,
                deliveries = pruned.deliveries,
                audit_entries = pruned.audit,
                run_requests = pruned.run_requests,
                "run history pruned"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %crate::error_chain(&e), "pruning run history failed; retrying at the next pass");
            }
        }
        tokio::time::sleep(PRUNE_EVERY).await;
    }
}

/// One pass: batches until one deletes nothing. Returns what it deleted.
pub(crate) async fn prune_once(state: &AppState) -> Result<Pruned, vigo_store::StoreError> {
    let history = state.config().raw.history;
    let policy = PrunePolicy {
        before: Timestamp::now().saturating_sub(history.max_age),
        max_runs: history.max_runs,
        batch: PRUNE_BATCH,
    };
    let mut total = Pruned::default();
    loop {
        let pruned = state.store().prune_batch(&policy).await?;
        if pruned.total() == 0 {
            return Ok(total);
        }
        total.add(pruned);
        tokio::time::sleep(BATCH_PAUSE).await;
    }
}
