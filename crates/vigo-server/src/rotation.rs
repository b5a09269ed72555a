//! The rotation flow (docs/secrets.md "Rotation"): what happens when a secret changes.
//!
//! A change reaches the server from `vigocli secrets set` (the admin call,
//! `api/secrets.rs`), from the start-up comparison of versions, from a
//! config reload, or from a watcher (`watcher.rs`). Changes are
//! queued to one task that waits [`COALESCE_WINDOW`] for more before acting,
//! so two `set`s a moment apart, or a script rotating several secrets, give
//! one trigger per resource and one restart, not one per change. The task
//! then:
//! 1. reloads the server config and resolves every reference of the server
//!    config and of the config repository that is serving (the last good
//!    snapshot, never re-read from `config_dir`: an edit in progress there
//!    cannot block a rotation) — on failure the last good state keeps
//!    serving and the error (naming the path) is logged and returned;
//! 2. swaps the database pool when the DSN changed (new pool first, then the
//!    old one is drained and closed);
//! 3. takes each approved envoy's catalog of the new snapshot from the cache
//!    (`catalogs.rs`: compiled once per snapshot, then ready for the
//!    check-in that follows) and finds, from its secret index, those that
//!    reference a changed secret;
//! 4. in one store transaction, claims the new versions (with the audit
//!    trail, numbers only), queues `_secret_triggered` for each resource whose
//!    `watch_secret` lists a claimed path, and sets force-push — all or
//!    nothing, so a crash or a database error at any point either leaves the
//!    old version recorded (the start-up comparison runs the flow again) or
//!    every trigger queued, and every replica sees them;
//! 5. wakes those envoys' wait channels.
//!
//! Test builds (`test-hooks`) have fault points between these steps (see
//! `vigo_store::fault`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, mpsc, oneshot};
use vigo_config::RawConfig;
use vigo_proto::admin::SecretChangedAnswer;
use vigo_secrets::SecretPath;
use vigo_store::{EnvoyRotation, EnvoyStatus, RotationClaim, Timestamp};

use crate::AppState;
use crate::gate::{RotationGate, Ticket};
use crate::watcher::SubmitChanges;

/// How long the flow waits for further changes before acting on the first.
pub const COALESCE_WINDOW: Duration = Duration::from_millis(700);

/// Who reported a change, for the audit log; ordered from the most direct
/// source to the least.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Actor {
    /// `vigocli secrets set` (the admin API).
    Cli,
    /// The start-up comparison of versions.
    Startup,
    /// The isopass poller or the local file watcher.
    Watcher,
}

impl Actor {
    fn as_str(self) -> &'static str {
        match self {
            Self::Cli => "cli",
            Self::Startup => "startup",
            Self::Watcher => "watcher",
        }
    }
}

/// Why the flow could not run; the last good state keeps serving.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum RotationError {
    /// A step of the flow failed: reloading the server config, resolving
    /// the repository's secrets, connecting with a rotated database DSN,
    /// reading versions, the store. The cause names the path or step
    /// (never a value); shared, since one outcome answers a whole batch.
    #[error("{step}")]
    Failed {
        /// The step, e.g. "reloading server config".
        step: &'static str,
        /// Why it failed.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// The flow of a batch panicked or was cancelled.
    #[error(
        "the rotation flow {how} unexpectedly; nothing more was done for this change (run `vigocli secrets set` again or restart vigosrv to retry)"
    )]
    Aborted {
        /// "panicked" or "was cancelled".
        how: &'static str,
    },
    /// The rotation task ended (and is restarted) while holding this change.
    #[error("the rotation task stopped before it finished this change (see the server log)")]
    Dropped,
    /// The flow task is gone (the server is shutting down).
    #[error("the server is shutting down")]
    Stopped,
}

impl RotationError {
    /// A [`Failed`](Self::Failed) step.
    fn failed(step: &'static str, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Failed {
            step,
            source: Arc::new(source),
        }
    }
}

impl From<vigo_store::StoreError> for RotationError {
    fn from(e: vigo_store::StoreError) -> Self {
        Self::failed("store", e)
    }
}

struct Request {
    paths: BTreeSet<SecretPath>,
    actor: Actor,
    /// Where to send the outcome; `None` for a notification nobody waits on.
    done: Option<oneshot::Sender<Result<SecretChangedAnswer, RotationError>>>,
    /// Holds check-ins at the gate until the flow has acted on this change.
    _ticket: Ticket,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("paths", &self.paths)
            .field("actor", &self.actor)
            .finish_non_exhaustive()
    }
}

/// The queue into the rotation task; every part of the server that learns
/// of a change submits it here.
#[derive(Debug, Clone)]
pub(crate) struct RotationQueue {
    tx: mpsc::UnboundedSender<Request>,
    gate: RotationGate,
}

/// The receiving end of a [`RotationQueue`], run by
/// [`RotationWorker::spawn`]. The receiver outlives a failed task, so the
/// restarted one serves the same queue.
#[derive(Debug)]
pub(crate) struct RotationWorker {
    rx: Arc<Mutex<mpsc::UnboundedReceiver<Request>>>,
}

impl RotationQueue {
    /// A queue and the worker that will serve it.
    pub(crate) fn channel() -> (Self, RotationWorker) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Self {
                tx,
                gate: RotationGate::default(),
            },
            RotationWorker {
                rx: Arc::new(Mutex::new(rx)),
            },
        )
    }

    /// A ticket that holds check-ins (up to [`crate::gate::ROTATION_WAIT`])
    /// until dropped: the start-up comparison of versions holds one until
    /// it has queued its changes.
    pub(crate) fn hold(&self) -> Ticket {
        self.gate.ticket()
    }

    /// Waits until every change queued before this call has been acted on,
    /// at most `limit`; returns whether they all were.
    pub(crate) async fn settled(&self, limit: Duration) -> bool {
        self.gate.settled(limit).await
    }

    /// Queues a change and waits until the batch holding it has been acted on.
    pub(crate) async fn submit(
        &self,
        paths: BTreeSet<SecretPath>,
        actor: Actor,
    ) -> Result<SecretChangedAnswer, RotationError> {
        let (done, answer) = oneshot::channel();
        self.tx
            .send(Request {
                paths,
                actor,
                done: Some(done),
                _ticket: self.gate.ticket(),
            })
            .map_err(|_| RotationError::Stopped)?;
        // No answer: the task failed while holding this change (it is
        // restarted by its supervisor) or the server is stopping.
        answer.await.unwrap_or(Err(RotationError::Dropped))
    }

    /// Queues a change without waiting for it: the flow runs after the
    /// coalescing window, so a script rotating several secrets one `set`
    /// after another still gives one batch. Its outcome is logged.
    pub(crate) fn enqueue(
        &self,
        paths: BTreeSet<SecretPath>,
        actor: Actor,
    ) -> Result<(), RotationError> {
        self.tx
            .send(Request {
                paths,
                actor,
                done: None,
                _ticket: self.gate.ticket(),
            })
            .map_err(|_| RotationError::Stopped)
    }
}

impl SubmitChanges for RotationQueue {
    async fn submit_changes(&self, paths: BTreeSet<SecretPath>) -> Result<(), String> {
        self.submit(paths, Actor::Watcher)
            .await
            .map(|_| ())
            .map_err(|e| crate::error_chain(&e))
    }
}

impl RotationWorker {
    /// Runs the rotation flow for `state` on the current runtime, supervised
    /// as task `rotation` (restarted if it fails; `/healthz` says so
    /// meanwhile), until the returned handle is aborted.
    pub(crate) fn spawn(self, state: AppState) -> tokio::task::JoinHandle<()> {
        let health = state.health.clone();
        crate::supervise::supervise(health, "rotation", move || {
            run_task(state.clone(), Arc::clone(&self.rx))
        })
    }
}

async fn run_task(state: AppState, rx: Arc<Mutex<mpsc::UnboundedReceiver<Request>>>) {
    let mut rx = rx.lock().await;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + COALESCE_WINDOW;
        while let Ok(Some(next)) = tokio::time::timeout_at(deadline, rx.recv()).await {
            batch.push(next);
        }
        #[cfg(test)]
        if state.faults.take(&state.faults.worker_panics) {
            panic!("injected fault: rotation worker");
        }
        let by_actor = attribute(&batch);
        let paths: BTreeSet<SecretPath> = by_actor.values().flatten().cloned().collect();
        let result = run_isolated(&state, paths.clone(), by_actor).await;
        if let Err(e) = &result {
            tracing::error!(error = %crate::error_chain(e), paths = %join_paths(&paths), "rotation failed; the last good state keeps serving");
            state.notifier.notify(crate::notify::Event::RotationFailed {
                paths: join_paths(&paths),
                error: crate::error_chain(e),
            });
        }
        for done in batch.into_iter().filter_map(|request| request.done) {
            let _ = done.send(result.clone());
        }
    }
}

/// Runs the flow for one batch in a task of its own, so that a bug that
/// panics in it fails this batch (answered with an error, logged) and not
/// the worker.
async fn run_isolated(
    state: &AppState,
    paths: BTreeSet<SecretPath>,
    by_actor: BTreeMap<&'static str, BTreeSet<SecretPath>>,
) -> Result<SecretChangedAnswer, RotationError> {
    let state = state.clone();
    let mut flow = crate::supervise::AbortOnDrop(tokio::spawn(async move {
        #[cfg(test)]
        if state.faults.take(&state.faults.flow_panics) {
            panic!("injected fault: rotation flow");
        }
        run_flow(&state, &paths, &by_actor).await
    }));
    match (&mut flow.0).await {
        Ok(result) => result,
        Err(e) => {
            let how = if e.is_panic() {
                "panicked"
            } else {
                "was cancelled"
            };
            Err(RotationError::Aborted { how })
        }
    }
}

/// Who the audit log names for each path of a batch: one actor per path,
/// the most direct one (a `set` also wakes the file watcher; the change is
/// recorded once, as the CLI's).
fn attribute(batch: &[Request]) -> BTreeMap<&'static str, BTreeSet<SecretPath>> {
    let mut actor_of: BTreeMap<&SecretPath, Actor> = BTreeMap::new();
    for request in batch {
        for path in &request.paths {
            let actor = actor_of.entry(path).or_insert(request.actor);
            *actor = (*actor).min(request.actor);
        }
    }
    let mut by_actor: BTreeMap<&'static str, BTreeSet<SecretPath>> = BTreeMap::new();
    for (path, actor) in actor_of {
        by_actor
            .entry(actor.as_str())
            .or_default()
            .insert(path.clone());
    }
    by_actor
}

/// Steps 1-5 of the module doc for one coalesced batch.
async fn run_flow(
    state: &AppState,
    paths: &BTreeSet<SecretPath>,
    actors: &BTreeMap<&'static str, BTreeSet<SecretPath>>,
) -> Result<SecretChangedAnswer, RotationError> {
    reload(state).await?;
    let store = state.store();
    let now = Timestamp::now();

    vigo_store::fault::point("rotation.after_reload").await?;
    let path_list: Vec<SecretPath> = paths.iter().cloned().collect();
    let versions = state
        .provider
        .versions(&path_list)
        .await
        .map_err(|e| RotationError::failed("reading secret versions", e))?;
    let claims: Vec<RotationClaim> = actors
        .iter()
        .flat_map(|(actor, actor_paths)| {
            actor_paths.iter().map(|path| RotationClaim {
                path: path.clone(),
                version: versions.get(path).copied(),
                actor: (*actor).to_owned(),
            })
        })
        .collect();
    vigo_store::fault::point("rotation.after_versions").await?;

    // What each approved envoy that references a changed path would get,
    // worked out before anything is recorded.
    let mut envoys: Vec<EnvoyRotation> = Vec::new();
    for envoy in store.list_envoys().await? {
        if envoy.status != EnvoyStatus::Approved {
            continue;
        }
        // The cached catalog of the reloaded snapshot: its secret index says
        // who uses what, and the check-in that follows finds it compiled.
        let compiled = match state.catalog(&envoy.name, &envoy.facts) {
            Ok(compiled) => compiled,
            Err(diagnostics) => {
                tracing::warn!(envoy = %envoy.name, error = %diagnostics, "catalog does not compile; no triggers queued for it");
                continue;
            }
        };
        let mut rotation = EnvoyRotation {
            envoy: envoy.name.clone(),
            ..EnvoyRotation::default()
        };
        for path in paths {
            if compiled.references(path) {
                rotation.references.push(path.clone());
            }
            for resource in compiled.index.watches.get(path).into_iter().flatten() {
                rotation.triggers.push((resource.clone(), path.clone()));
            }
        }
        if !rotation.references.is_empty() {
            envoys.push(rotation);
        }
    }
    vigo_store::fault::point("rotation.before_commit").await?;

    // Claim each change together with its triggers and force-push, in one
    // transaction: when several replicas learn of the same version (each
    // one's watcher), only the first queues triggers and the others have
    // reloaded and stop here; a crash or a database error before the commit
    // leaves the old version recorded, so the start-up comparison of
    // versions runs the flow again.
    let outcome = store.commit_rotation(&claims, &envoys, now).await?;
    let mut answer = SecretChangedAnswer::default();
    if outcome.claimed.is_empty() {
        tracing::info!(paths = %join_paths(&path_list), "rotation already handled for these versions; reloaded only");
        return Ok(answer);
    }
    vigo_store::fault::point("rotation.after_commit").await?;
    for name in &outcome.envoys {
        state.waiters.wake(name);
    }
    vigo_store::fault::point("rotation.after_wake").await?;
    answer.triggers = outcome.triggers;
    answer.envoys = outcome.envoys;
    let claimed = outcome.claimed;
    tracing::info!(
        paths = %join_paths(&claimed),
        envoys = answer.envoys.len(),
        triggers = answer.triggers,
        "rotation queued"
    );
    Ok(answer)
}

/// Before a replica sends an envoy the catalog for its queued triggers: if
/// the shared store records a newer version of a triggered secret than
/// this replica serves (another replica ran the rotation), reload first,
/// so the envoy gets the new value rather than clearing its trigger with
/// the old one. Returns whether it reloaded.
pub(crate) async fn catch_up(
    state: &AppState,
    paths: &[&SecretPath],
) -> Result<bool, RotationError> {
    let seen = state.store().secret_versions().await?;
    let is_behind = |held: &BTreeMap<SecretPath, u64>| {
        paths
            .iter()
            .any(|path| matches!((held.get(*path), seen.get(*path)), (Some(h), Some(s)) if h != s))
    };
    if !is_behind(&state.held_versions()) {
        return Ok(false);
    }
    let _one_at_a_time = state.reloading.lock().await;
    if !is_behind(&state.held_versions()) {
        return Ok(false);
    }
    tracing::info!(paths = %join_paths(paths.iter().copied()), "another server rotated these secrets; reloading");
    reload_locked(state).await?;
    Ok(true)
}

/// Step 1 and 2: reload the server config and resolve the secrets of the
/// serving repository again, swapping in the new state only when everything
/// resolved. One reload at a time (config reloads take the same lock).
async fn reload(state: &AppState) -> Result<(), RotationError> {
    let _one_at_a_time = state.reloading.lock().await;
    reload_locked(state).await
}

/// [`reload`] for a caller that holds `state.reloading`.
async fn reload_locked(state: &AppState) -> Result<(), RotationError> {
    let current = state.config();
    let raw = RawConfig::load(&current.raw.file)
        .map_err(|e| RotationError::failed("reloading server config", e))?;
    let resolved = vigo_config::resolve(&raw, &*state.provider)
        .await
        .map_err(|e| RotationError::failed("reloading server config", e))?;
    // The serving repository, not `config_dir`: a half-finished edit on
    // disk must not block a rotation (config reloads deploy edits).
    let snapshot = state
        .repo()
        .refresh_secrets(&*state.provider)
        .await
        .map_err(|e| RotationError::failed("resolving the config repository's secrets", e))?;

    if !resolved.database_dsn.ct_eq(&current.database_dsn) {
        let store = vigo_store::connect(&resolved.database_dsn)
            .await
            .map_err(|e| RotationError::failed("connecting with the rotated database DSN", e))?;
        let old = state.replace_store(store);
        tracing::info!("database credentials rotated; new pool in use, draining the old one");
        tokio::spawn(async move { old.close().await });
    }
    state.replace_config(resolved);
    state.replace_repo(snapshot);
    Ok(())
}

/// Start-up reconciliation: every referenced secret whose version moved
/// while the server was down runs the flow; secrets seen for the first time
/// are only recorded.
pub(crate) async fn reconcile_at_startup(state: &AppState) -> Result<(), RotationError> {
    let store = state.store();
    let seen = store.secret_versions().await?;
    let current = state.held_versions();
    let now = Timestamp::now();
    let mut moved = BTreeSet::new();
    for (path, version) in &current {
        match seen.get(path) {
            Some(old) if old != version => {
                moved.insert(path.clone());
            }
            Some(_) => {}
            None => {
                store.set_secret_version(path, *version, now).await?;
            }
        }
    }
    if moved.is_empty() {
        return Ok(());
    }
    tracing::info!(
        paths = %join_paths(&moved),
        "secrets changed while the server was down"
    );
    state
        .rotation
        .submit(moved, Actor::Startup)
        .await
        .map(|_| ())
}

fn join_paths<'a>(paths: impl IntoIterator<Item = &'a SecretPath>) -> String {
    let names: Vec<&str> = paths.into_iter().map(SecretPath::as_str).collect();
    names.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(actor: Actor, paths: &[&str]) -> Request {
        Request {
            paths: paths
                .iter()
                .map(|p| SecretPath::parse(p).unwrap())
                .collect(),
            actor,
            done: None,
            _ticket: RotationGate::default().ticket(),
        }
    }

    #[test]
    fn each_path_is_attributed_once_to_the_most_direct_actor() {
        let batch = [
            request(Actor::Watcher, &["a/x", "a/y"]),
            request(Actor::Cli, &["a/x"]),
            request(Actor::Startup, &["a/z"]),
        ];
        let by_actor = attribute(&batch);
        let names =
            |actor: &str| -> Vec<&str> { by_actor[actor].iter().map(SecretPath::as_str).collect() };
        assert_eq!(by_actor.len(), 3);
        assert_eq!(names("cli"), ["a/x"]);
        assert_eq!(names("watcher"), ["a/y"]);
        assert_eq!(names("startup"), ["a/z"]);
    }

    #[test]
    fn issue_13_a_failed_step_keeps_its_cause_typed_and_prints_it_once() {
        let cause = vigo_store::StoreError::EnvoyNotFound {
            name: "web1".into(),
        };
        let cause_text = cause.to_string();
        let err = RotationError::from(cause);
        assert_eq!(err.to_string(), "store");
        let source = std::error::Error::source(&err).expect("the cause is the source");
        assert_eq!(source.to_string(), cause_text);
        assert_eq!(crate::error_chain(&err), format!("store: {cause_text}"));
        // A batch's outcome goes to every waiter: the clone shares the cause.
        assert_eq!(
            crate::error_chain(&err.clone()),
            format!("store: {cause_text}")
        );
    }
}
