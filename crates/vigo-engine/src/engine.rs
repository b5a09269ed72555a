//! The apply loop: order the catalog, run each resource's provider, pass
//! refresh events along `notify` edges, skip what comes after a failure,
//! and record the outcome in the envoy state.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::ops::Range;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use nix::fcntl::{Flock, FlockArg};
use tokio::sync::watch;
use vigo_catalog::{Catalog, ResourceKind, Selected};

use crate::atomic;
use crate::batch::WriteBatch;
use crate::command;
use crate::graph::Plan;
use crate::providers::{self, Context, Outcome};
use crate::report::{Report, ResourceResult, Status, Summary};
use crate::scrub::Scrubber;
use crate::state::{StateError, StateStore};

/// Folder under the data folder for transient secret files.
pub const SECRET_FILE_DIR: &str = "secret-files";
/// Lock file under the data folder: one engine per data folder at a time.
pub const LOCK_FILE: &str = "lock";

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The envoy state could not be opened.
    #[error(transparent)]
    State(#[from] StateError),
    /// Another process (a running `vigoenvoy run`, or a second `apply`)
    /// holds the data folder.
    #[error(
        "another vigoenvoy process is using {}; wait for it to finish (or stop the running envoy) and try again",
        path.display()
    )]
    Busy {
        /// The data folder.
        path: PathBuf,
    },
    /// The lock file could not be opened.
    #[error("opening {}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The folder for transient secret files could not be prepared.
    #[error("preparing {} (check that the envoy can write its data folder)", path.display())]
    SecretFileDir {
        /// The folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// How to apply.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions<'a> {
    /// Report what would change and change nothing (no command runs).
    pub noop: bool,
    /// A partial run (`--tags`, `--resource`): apply only these resources,
    /// in the catalog's order. The others are not checked, not changed and
    /// not in the report; their records in the envoy state are kept.
    /// `None`: the whole catalog.
    pub only: Option<&'a Selected>,
}

/// Message of a resource whose provider was stopped midway.
const INTERRUPTED: &str =
    "interrupted: the envoy was told to stop; the command's process group was killed";
/// Message of a resource not started because the engine was stopped.
const NOT_APPLIED: &str = "not applied: the envoy was told to stop";

/// The diffs of one run, together, at most: beyond, a resource's diff is
/// replaced by [`DIFFS_LEFT_OUT`], so a large deploy's report stays well
/// under the server's report size limit (1 MiB).
pub(crate) const MAX_RUN_DIFF_BYTES: usize = 256 * 1024;

/// The diff shown once a run's diffs passed [`MAX_RUN_DIFF_BYTES`].
pub(crate) const DIFFS_LEFT_OUT: &str = "(diff not shown: this run's diffs passed 256 KiB)\n";

/// Stops an engine's applies from another task, typically a SIGTERM/SIGINT
/// handler; get one with [`Engine::cancel_handle`] before applying.
///
/// On [`cancel`](Self::cancel), a running apply kills the process group of
/// the command it is running (an exec's transient `secret_file` is removed
/// with it), reports that resource and every one not yet applied as
/// `failed`, saves the state and returns. File and directory changes are
/// never cut in half: they finish first. Stopping is for good: every later
/// apply of this engine returns at once with nothing applied (the process is
/// on its way out).
#[derive(Debug, Clone)]
pub struct CancelHandle(Arc<CancelState>);

#[derive(Debug)]
struct CancelState {
    stop: watch::Sender<bool>,
    /// An apply left resources unapplied because of the stop.
    cut_short: AtomicBool,
}

impl CancelHandle {
    fn new() -> Self {
        Self(Arc::new(CancelState {
            stop: watch::Sender::new(false),
            cut_short: AtomicBool::new(false),
        }))
    }

    /// Stops the engine (see the type's documentation).
    pub fn cancel(&self) {
        self.0.stop.send_replace(true);
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        *self.0.stop.borrow()
    }

    /// Whether the stop cut an apply short: a command was killed or a
    /// resource left unapplied (the binary then exits non-zero).
    pub fn cut_short(&self) -> bool {
        self.0.cut_short.load(Ordering::Relaxed)
    }
}

/// Applies catalogs to this host.
#[derive(Debug)]
pub struct Engine {
    /// Held for the engine's lifetime: another engine on the same data
    /// folder would delete this one's transient secret files. `None` for an
    /// engine opened with [`Engine::for_noop`], which only evaluates.
    lock: Option<Flock<File>>,
    state: StateStore,
    secret_file_dir: PathBuf,
    search_path: OsString,
    cancel: CancelHandle,
}

impl Engine {
    /// Opens the envoy state in `data_dir` (created 0700 if missing) and
    /// prepares the folder for transient secret files, removing any left
    /// behind by a crash.
    ///
    /// Only one engine may use a data folder at a time; a second one gets
    /// [`EngineError::Busy`].
    pub fn new(data_dir: &Path) -> Result<Self, EngineError> {
        let state = StateStore::open(data_dir)?;
        let lock_path = data_dir.join(LOCK_FILE);
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|source| EngineError::Lock {
                path: lock_path.clone(),
                source,
            })?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock).map_err(|_| {
            EngineError::Busy {
                path: data_dir.to_path_buf(),
            }
        })?;
        let secret_file_dir = data_dir.join(SECRET_FILE_DIR);
        let dir_error = |source| EngineError::SecretFileDir {
            path: secret_file_dir.clone(),
            source,
        };
        atomic::private_dir(&secret_file_dir).map_err(dir_error)?;
        for entry in fs::read_dir(&secret_file_dir).map_err(dir_error)? {
            let entry = entry.map_err(dir_error)?;
            fs::remove_file(entry.path()).map_err(dir_error)?;
        }
        Ok(Self {
            lock: Some(lock),
            state,
            secret_file_dir,
            search_path: command::process_search_path(),
            cancel: CancelHandle::new(),
        })
    }

    /// Opens the envoy state in `data_dir` to evaluate catalogs only
    /// (`vigoenvoy run --once --noop`), beside a running envoy: no lock is
    /// taken, the transient secret files of the running envoy are left
    /// alone, and every [`apply`](Engine::apply) of this engine is a noop
    /// that neither changes the host nor saves the state.
    pub fn for_noop(data_dir: &Path) -> Result<Self, EngineError> {
        Ok(Self {
            lock: None,
            state: StateStore::open(data_dir)?,
            secret_file_dir: data_dir.join(SECRET_FILE_DIR),
            search_path: command::process_search_path(),
            cancel: CancelHandle::new(),
        })
    }

    /// Uses `search_path` (a `PATH`-style list) instead of the process's
    /// `PATH` to find `systemctl` and the package tools, and as the `PATH`
    /// of exec commands.
    pub fn with_search_path(mut self, search_path: impl Into<OsString>) -> Self {
        self.search_path = search_path.into();
        self
    }

    /// A handle that stops this engine's applies from another task (see
    /// [`CancelHandle`]).
    pub fn cancel_handle(&self) -> CancelHandle {
        self.cancel.clone()
    }

    /// The envoy state (for the check-in loop's catalog fingerprint).
    pub fn state(&self) -> &StateStore {
        &self.state
    }

    /// The envoy state, to change; persist with [`StateStore::save`].
    pub fn state_mut(&mut self) -> &mut StateStore {
        &mut self.state
    }

    /// Converges the host to `catalog` (or, with `noop`, reports what that
    /// would change). Every message in the report is scrubbed of the
    /// catalog's secret values. Failures of single resources are in the
    /// report; the state is saved at the end (a save failure is logged).
    pub async fn apply(&mut self, catalog: &Catalog, options: ApplyOptions<'_>) -> Report {
        // An engine without the lock only evaluates.
        let options = ApplyOptions {
            noop: options.noop || self.lock.is_none(),
            ..options
        };
        let selected = |i: usize| {
            options
                .only
                .is_none_or(|only| only.contains(&catalog.resources[i].name))
        };
        let started = Instant::now();
        let scrubber = Scrubber::for_catalog(catalog);
        let plan = Plan::of(catalog);
        let n = catalog.resources.len();
        let mut run = Run {
            catalog,
            plan: &plan,
            scrubber: &scrubber,
            noop: options.noop,
            only: options.only,
            status: vec![None; n],
            refreshed_by: vec![None; n],
            results: Vec::with_capacity(n),
            triggered_applied: Vec::new(),
            diff_bytes: 0,
        };
        // Per resource: the failed resource that made it skip.
        let mut root_failure: Vec<Option<usize>> = vec![None; n];
        // Consecutive independent files whose writes are made durable
        // together (`batch.rs`); they are reported when the batch commits.
        let batch = WriteBatch::default();
        let mut held: Vec<Held> = Vec::new();
        let mut in_batch = vec![false; n];
        // A converged run changes no record: then the file is not rewritten.
        let state_before = self.state.data().clone();
        let mut stop = self.cancel.0.stop.subscribe();

        for &i in plan.order.iter().filter(|&&i| selected(i)) {
            let resource = &catalog.resources[i];
            let batched = !options.noop && matches!(resource.kind, ResourceKind::File(_));
            // What comes after the batch sees its files durable in place.
            if !held.is_empty() && (!batched || plan.before[i].iter().any(|&p| in_batch[p])) {
                self.commit_held(&mut run, &batch, &mut held, &mut in_batch);
            }
            let resource_started = Instant::now();
            let blocker = plan.before[i]
                .iter()
                .find(|&&p| matches!(run.status[p], Some(Status::Failed | Status::Skipped)));
            let staged_before = batch.len();
            let outcome = if *stop.borrow() {
                self.cancel.0.cut_short.store(true, Ordering::Relaxed);
                Outcome::failed(NOT_APPLIED)
            } else if let Some(reason) = &plan.invalid[i] {
                Outcome::failed(reason.clone())
            } else if let Some(&p) = blocker {
                let root = root_failure[p].unwrap_or(p);
                root_failure[i] = Some(root);
                Outcome {
                    status: Status::Skipped,
                    message: format!("dependency '{}' failed", catalog.resources[root].name),
                    output: None,
                    diff: None,
                }
            } else {
                let ran_before = self
                    .state
                    .resource(&resource.name)
                    .is_some_and(|s| s.ran_successfully);
                let ctx = Context {
                    catalog,
                    scrubber: &scrubber,
                    noop: options.noop,
                    search_path: &self.search_path,
                    secret_file_dir: &self.secret_file_dir,
                    refreshed_by: run.refreshed_by[i].map(|r| catalog.resources[r].name.as_str()),
                    secret_triggered: resource.secret_triggered,
                    ran_before,
                    writes: batched.then_some(&batch),
                };
                // Dropping the provider's future kills the process group of
                // a command it runs and removes its transient secret file.
                tokio::select! {
                    biased;
                    outcome = apply_one(&resource.kind, resource.when, &ctx) => outcome,
                    _ = stop.wait_for(|stopped| *stopped) => {
                        self.cancel.0.cut_short.store(true, Ordering::Relaxed);
                        Outcome::failed(INTERRUPTED)
                    }
                }
            };
            let duration_ms = millis(resource_started);
            if batched {
                in_batch[i] = true;
                held.push(Held {
                    index: i,
                    outcome,
                    duration_ms,
                    writes: staged_before..batch.len(),
                });
            } else {
                self.finish(&mut run, i, outcome, duration_ms);
            }
        }
        self.commit_held(&mut run, &batch, &mut held, &mut in_batch);
        let Run {
            results,
            triggered_applied,
            ..
        } = run;

        if !options.noop {
            self.state.retain_resources(catalog);
            if *self.state.data() != state_before
                && let Err(e) = self.state.save()
            {
                tracing::error!(error = %vigo_log::error_chain(&e), "could not save the envoy state; execs with `when: changed` may run again");
            }
        }
        Report {
            envoy: catalog.envoy.clone(),
            noop: options.noop,
            summary: Summary::of(&results),
            resources: results,
            secret_triggered_applied: triggered_applied,
            duration_ms: millis(started),
        }
    }

    /// Commits the open batch and records its resources, in the order they
    /// were applied.
    fn commit_held(
        &mut self,
        run: &mut Run<'_>,
        batch: &WriteBatch,
        held: &mut Vec<Held>,
        in_batch: &mut [bool],
    ) {
        for (i, outcome, duration_ms) in commit_batch(batch, held, in_batch) {
            self.finish(run, i, outcome, duration_ms);
        }
    }

    /// Records resource `i`'s outcome: its status, the refresh events it
    /// sends, its state record and its line of the report.
    fn finish(&mut self, run: &mut Run<'_>, i: usize, outcome: Outcome, duration_ms: u64) {
        let (catalog, plan, scrubber) = (run.catalog, run.plan, run.scrubber);
        let resource = &catalog.resources[i];
        run.status[i] = Some(outcome.status);
        if outcome.status == Status::Changed {
            for &t in &plan.notifies[i] {
                let target = &catalog.resources[t].name;
                if !run.noop && run.only.is_some_and(|only| !only.contains(target)) {
                    tracing::warn!(
                        resource = %resource.name,
                        notify = %target,
                        "the notified resource is not selected for this run: it gets no refresh event"
                    );
                }
                run.refreshed_by[t].get_or_insert(i);
            }
        }
        if !run.noop && matches!(outcome.status, Status::Changed | Status::Unchanged) {
            self.record_success(catalog, i, outcome.status);
            if resource.secret_triggered {
                run.triggered_applied.push(resource.name.clone());
            }
        }
        let result = ResourceResult {
            name: resource.name.clone(),
            resource_type: resource.kind.type_name().to_owned(),
            status: outcome.status,
            duration_ms,
            message: scrubber.scrub(&outcome.message),
            output: outcome.output.map(|mut o| {
                o.stdout = scrubber.scrub(&o.stdout);
                o.stderr = scrubber.scrub(&o.stderr);
                o
            }),
            diff: outcome.diff.map(|d| {
                run.diff_bytes += d.len();
                if run.diff_bytes > MAX_RUN_DIFF_BYTES {
                    DIFFS_LEFT_OUT.to_owned()
                } else {
                    scrubber.scrub(&d)
                }
            }),
        };
        log_result(&result);
        run.results.push(result);
    }

    /// Stores the fingerprint of what was applied and, for an exec that
    /// ran, that it succeeded. Saved right away after an exec ran, so a
    /// crash later in the run does not make it run again.
    fn record_success(&mut self, catalog: &Catalog, i: usize, status: Status) {
        let resource = &catalog.resources[i];
        let fingerprint = self.state.resource_fingerprint(resource, catalog);
        let record = self.state.resource_mut(&resource.name);
        record.fingerprint = Some(fingerprint);
        let exec_ran = matches!(resource.kind, ResourceKind::Exec(_)) && status == Status::Changed;
        if exec_ran {
            record.ran_successfully = true;
            if let Err(e) = self.state.save() {
                tracing::error!(error = %vigo_log::error_chain(&e), "could not save the envoy state");
            }
        }
    }
}

async fn apply_one(kind: &ResourceKind, when: vigo_catalog::When, ctx: &Context<'_>) -> Outcome {
    match kind {
        ResourceKind::File(spec) => providers::file::apply(spec, ctx),
        ResourceKind::Directory(spec) => providers::directory::apply(spec, ctx),
        ResourceKind::Exec(spec) => providers::exec::apply(spec, when, ctx).await,
        ResourceKind::Service(spec) => providers::service::apply(spec, ctx).await,
        ResourceKind::Package(spec) => providers::package::apply(spec, ctx).await,
        ResourceKind::Symlink(spec) => providers::symlink::apply(spec, ctx.noop),
        ResourceKind::User(spec) => providers::account::apply_user(spec, ctx).await,
        ResourceKind::Group(spec) => providers::account::apply_group(spec, ctx).await,
        ResourceKind::Line(spec) => providers::line::apply(spec, ctx.noop),
    }
}

/// One apply: what it works on, and what it has decided so far.
struct Run<'a> {
    catalog: &'a Catalog,
    plan: &'a Plan,
    scrubber: &'a Scrubber,
    noop: bool,
    /// A partial run's selection (see [`ApplyOptions::only`]).
    only: Option<&'a Selected>,
    status: Vec<Option<Status>>,
    /// Per resource: the changed resource whose `notify` reached it.
    refreshed_by: Vec<Option<usize>>,
    results: Vec<ResourceResult>,
    triggered_applied: Vec<String>,
    /// Bytes of the diffs reported so far ([`MAX_RUN_DIFF_BYTES`]).
    diff_bytes: usize,
}

/// A file resource applied inside the open batch, reported at its commit.
struct Held {
    index: usize,
    outcome: Outcome,
    duration_ms: u64,
    /// Its writes in the batch (none when it was in sync or failed).
    writes: Range<usize>,
}

/// Commits the batch and hands back the held resources in the order they
/// were applied, each failed whose write did not become durable.
fn commit_batch(
    batch: &WriteBatch,
    held: &mut Vec<Held>,
    in_batch: &mut [bool],
) -> Vec<(usize, Outcome, u64)> {
    let failures = batch.commit();
    held.drain(..)
        .map(|h| {
            in_batch[h.index] = false;
            let failed = failures.iter().find(|f| h.writes.contains(&f.position));
            let outcome = match failed {
                Some(failure) => Outcome::failed(failure.message.clone()),
                None => h.outcome,
            };
            (h.index, outcome, h.duration_ms)
        })
        .collect()
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn log_result(result: &ResourceResult) {
    let resource = result.label();
    match result.status {
        Status::Failed => {
            tracing::warn!(resource = %resource, status = "failed", message = %result.message, "resource failed");
        }
        Status::Changed | Status::Skipped => {
            tracing::info!(resource = %resource, status = %result.status, message = %result.message, "resource applied");
        }
        Status::Unchanged => {
            tracing::debug!(resource = %resource, status = "unchanged", "resource in sync");
        }
    }
}
