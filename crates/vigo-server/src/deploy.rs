//! Deploying config changes: loading the config repository again while
//! the server runs (docs/secrets.md "Fail-fast", `config reload` / `config status`).
//!
//! Three things ask for a reload: a change under `config_dir` (a notify
//! watcher, debounced: an editor's or `git checkout`'s burst of writes gives
//! one reload after [`RELOAD_QUIET`] without events), `SIGHUP`, and
//! `POST /v1/admin/config/reload` (`vigocli config reload`). One reload at a
//! time (rotations take the same lock):
//! 1. read the revision (a content hash of `nodes.vgo` and `modules/*.vgo`,
//!    and the git commit); for the watcher, a content the server already
//!    serves, or one whose errors were already reported, ends here;
//! 2. load and validate the repository and resolve every secret it
//!    references; if the files changed meanwhile, again (a few times);
//! 3. compile the catalog of every approved envoy;
//! 4. on any error: nothing is replaced, the last good repository keeps
//!    serving, each error is logged once at ERROR with its position, and
//!    `vigo_config_reload_success` is 0;
//! 5. on success: the new snapshot replaces the old one at once; the
//!    envoys whose catalog fingerprint changed get force-push and their
//!    held waits are woken, so a running envoy applies the change within
//!    about a second; a secret whose version moved since the last load is
//!    handed to the rotation flow (its watchers run as for any rotation).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio::time::Instant;
use vigo_compiler::Diagnostic;
use vigo_proto::admin::ConfigProblem;
use vigo_secrets::SecretPath;
use vigo_store::{EnvoyStatus, Timestamp};

use crate::folder_watch::{FolderWatch, watch_folder};
use crate::repo::{RepoError, Revision};
use crate::rotation::Actor;
use crate::{AppState, RepoSnapshot, error_chain};

/// Quiet time after the last change under `config_dir` before the watcher
/// reloads.
pub(crate) const RELOAD_QUIET: Duration = Duration::from_millis(400);

/// The longest the watcher waits for quiet before reloading anyway.
const RELOAD_QUIET_LIMIT: Duration = Duration::from_secs(5);

/// How many times a load is repeated when the files changed while it ran.
const LOAD_ATTEMPTS: usize = 3;

/// At most this many problems are kept and answered (the count says how
/// many more there were).
const MAX_PROBLEMS: usize = 200;

/// What asked for a load of the config repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReloadSource {
    /// The server's start.
    Startup,
    /// A change under `config_dir`.
    Watcher,
    /// `SIGHUP`.
    Signal,
    /// `vigocli config reload` (the admin API).
    Cli,
}

impl ReloadSource {
    /// The name used in logs and `config status`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Startup => "startup",
            Self::Watcher => "watcher",
            Self::Signal => "SIGHUP",
            Self::Cli => "cli",
        }
    }
}

/// The outcome of one reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReloadOutcome {
    /// The new revision serves; these approved envoys' catalogs changed.
    Reloaded {
        /// Envoys whose catalog fingerprint changed.
        changed: Vec<String>,
    },
    /// Nothing was loaded: the watcher saw a content already serving or
    /// already reported as failing.
    Skipped,
    /// Nothing was replaced; every problem found.
    Failed(Vec<ConfigProblem>),
}

/// What the server remembers about loads of the config repository.
#[derive(Debug)]
pub(crate) struct DeployState {
    config_dir: PathBuf,
    record: Mutex<DeployRecord>,
    /// Whether the watcher of `config_dir` is running.
    watching: AtomicBool,
}

/// The loads `vigocli config status` reports.
#[derive(Debug, Clone)]
pub(crate) struct DeployRecord {
    /// What loaded the serving snapshot.
    pub(crate) loaded_by: ReloadSource,
    /// The last reload tried: when, by what, whether it succeeded.
    pub(crate) last_attempt: Option<(Timestamp, ReloadSource, bool)>,
    /// The last reload that failed.
    pub(crate) last_failure: Option<Failure>,
}

/// A reload that failed.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) at: Timestamp,
    pub(crate) by: ReloadSource,
    /// The content hash of the revision that failed.
    pub(crate) hash: String,
    pub(crate) problems: Vec<ConfigProblem>,
}

impl DeployState {
    /// For a server that loaded `config_dir` at its start.
    pub(crate) fn new(config_dir: &Path) -> Self {
        Self {
            config_dir: config_dir.to_owned(),
            record: Mutex::new(DeployRecord {
                loaded_by: ReloadSource::Startup,
                last_attempt: None,
                last_failure: None,
            }),
            watching: AtomicBool::new(false),
        }
    }

    /// Whether changes under `config_dir` are being watched.
    pub(crate) fn watching(&self) -> bool {
        self.watching.load(Ordering::SeqCst)
    }

    /// The folder reloads read (the one loaded at start: `config_dir` is
    /// not changed by a reload of `vigosrv.yaml`).
    pub(crate) fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    /// A copy of what is remembered about the loads.
    pub(crate) fn record(&self) -> DeployRecord {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DeployRecord> {
        // Every change is a whole assignment.
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn failed_hash(&self) -> Option<String> {
        let record = self.lock();
        match (&record.last_attempt, &record.last_failure) {
            (Some((_, _, false)), Some(failure)) => Some(failure.hash.clone()),
            _ => None,
        }
    }
}

/// Records the start's load in the metrics (`vigo_config_reload_success` 1).
pub(crate) fn record_startup(state: &AppState) {
    state
        .metrics
        .config_reload(true, unix_secs(Timestamp::now()));
}

/// Loads `config_dir` again (see the module docs) and logs the outcome.
pub(crate) async fn reload(state: &AppState, source: ReloadSource) -> ReloadOutcome {
    let _one_at_a_time = state.reloading.lock().await;
    let dir = state.deploy.config_dir().to_owned();
    let serving = state.repo();
    let mut revision = Revision::read(&dir);
    if source == ReloadSource::Watcher {
        if revision.hash == serving.revision.hash {
            tracing::debug!(revision = revision.short(), "config repository unchanged");
            return ReloadOutcome::Skipped;
        }
        if state.deploy.failed_hash().as_deref() == Some(revision.hash.as_str()) {
            tracing::debug!(
                revision = revision.short(),
                "config repository unchanged since the failed reload"
            );
            return ReloadOutcome::Skipped;
        }
    }
    let loaded = load_and_compile(state, &dir, &mut revision).await;
    let at = Timestamp::now();
    state.metrics.config_reload(loaded.is_ok(), unix_secs(at));
    match loaded {
        Err(problems) => {
            for problem in &problems {
                tracing::error!(
                    error = %problem,
                    by = source.as_str(),
                    serving = serving.revision.short(),
                    "config reload failed; the last good config repository keeps serving"
                );
            }
            state
                .notifier
                .notify(crate::notify::Event::ConfigReloadFailed {
                    by: source.as_str().to_owned(),
                    problems: problems.iter().map(ToString::to_string).collect(),
                });
            let mut record = state.deploy.lock();
            record.last_attempt = Some((at, source, false));
            record.last_failure = Some(Failure {
                at,
                by: source,
                hash: revision.hash.clone(),
                problems: problems.clone(),
            });
            ReloadOutcome::Failed(problems)
        }
        Ok((snapshot, changed)) => {
            let moved = moved_secrets(&serving.versions(), &snapshot.versions());
            let short = snapshot.revision.short().to_owned();
            let git = snapshot.revision.git_commit.clone();
            state.replace_repo(snapshot);
            {
                let mut record = state.deploy.lock();
                record.loaded_by = source;
                record.last_attempt = Some((at, source, true));
            }
            tracing::info!(
                revision = %short,
                git_commit = git.as_deref().unwrap_or("-"),
                envoys_changed = changed.len(),
                by = source.as_str(),
                "config repository reloaded"
            );
            if !changed.is_empty() {
                let names: Vec<&str> = changed.iter().map(String::as_str).collect();
                // Force-push makes the held waits (here and on other
                // replicas) answer "check in now"; the catalog is new.
                if let Err(e) = state.store().set_force_push(&names, true).await {
                    tracing::error!(error = %error_chain(&e), "recording force-push for the changed catalogs failed; the envoys get them at their next check-in");
                }
                for name in &names {
                    state.waiters.wake(name);
                }
            }
            if !moved.is_empty()
                && let Err(e) = state.rotation.enqueue(moved, Actor::Watcher)
            {
                tracing::warn!(error = %error_chain(&e), "secrets that changed since the last load were not queued for rotation");
            }
            ReloadOutcome::Reloaded { changed }
        }
    }
}

/// Steps 2 and 3: the new snapshot and the approved envoys whose catalog
/// fingerprint differs from the serving one, or every problem found.
async fn load_and_compile(
    state: &AppState,
    dir: &Path,
    revision: &mut Revision,
) -> Result<(RepoSnapshot, Vec<String>), Vec<ConfigProblem>> {
    let mut attempts = 0;
    let snapshot = loop {
        attempts += 1;
        let loaded = RepoSnapshot::load_revision(dir, &*state.provider, revision.clone()).await;
        let after = Revision::read(dir);
        if after.hash == revision.hash {
            break loaded.map_err(|e| repo_problems(&e))?;
        }
        *revision = after;
        if attempts == LOAD_ATTEMPTS {
            return Err(vec![plain_problem(format!(
                "{} kept changing while it was loaded; reload again once the change is complete",
                dir.display()
            ))]);
        }
    };

    let envoys = state.store().list_envoys().await.map_err(|e| {
        vec![plain_problem(format!(
            "reading the approved envoys from the database: {}",
            error_chain(&e)
        ))]
    })?;
    let hmac_key = state.secrets.hmac_key.expose_secret().as_bytes();
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    let mut changed = Vec::new();
    for envoy in envoys {
        if envoy.status != EnvoyStatus::Approved {
            continue;
        }
        let name = envoy.name.as_str();
        // An envoy that has not reported facts yet is validated against the
        // stand-in facts of `vigocli check`; its real catalog is compiled
        // at its first check-in.
        let reported = envoy.facts.as_object().is_some_and(|f| !f.is_empty());
        let compiled = if reported {
            snapshot.repo.compile(name, &envoy.facts, &snapshot.secrets)
        } else {
            snapshot.repo.compile_stand_in(name, &snapshot.secrets)
        };
        match compiled {
            Ok(compiled) => {
                let fingerprint = compiled.catalog.fingerprint(hmac_key);
                let same = state
                    .catalog(name, &envoy.facts)
                    .is_ok_and(|serving| serving.fingerprint.matches(&fingerprint));
                if !same {
                    changed.push(name.to_owned());
                }
            }
            Err(diagnostics) => {
                for d in diagnostics.iter() {
                    // The same module error shows for every envoy using
                    // it: report it once, naming the first envoy.
                    if seen.insert(d.clone()) {
                        let mut problem = diagnostic_problem(d);
                        problem.envoy = Some(name.to_owned());
                        problems.push(problem);
                    }
                }
            }
        }
        // Compiling many catalogs: let other requests run in between.
        tokio::task::yield_now().await;
    }
    if problems.is_empty() {
        Ok((snapshot, changed))
    } else {
        Err(capped(problems))
    }
}

fn repo_problems(error: &RepoError) -> Vec<ConfigProblem> {
    match error {
        RepoError::Invalid(diagnostics) => {
            capped(diagnostics.iter().map(diagnostic_problem).collect())
        }
        other => vec![plain_problem(error_chain(other))],
    }
}

fn diagnostic_problem(d: &Diagnostic) -> ConfigProblem {
    let position = |n: usize| (d.line > 0).then_some(n as u64);
    ConfigProblem {
        file: Some(d.file.clone()),
        line: position(d.line),
        column: position(d.column).filter(|&c| c > 0),
        resource: d.resource.clone(),
        envoy: None,
        message: d.message.clone(),
    }
}

fn plain_problem(message: String) -> ConfigProblem {
    ConfigProblem {
        file: None,
        line: None,
        column: None,
        resource: None,
        envoy: None,
        message,
    }
}

/// At most [`MAX_PROBLEMS`], the last one saying how many were left out.
fn capped(mut problems: Vec<ConfigProblem>) -> Vec<ConfigProblem> {
    if problems.len() > MAX_PROBLEMS {
        let more = problems.len() - (MAX_PROBLEMS - 1);
        problems.truncate(MAX_PROBLEMS - 1);
        problems.push(plain_problem(format!(
            "and {more} more problems (run `vigocli check` for all)"
        )));
    }
    problems
}

/// Paths whose resolved version differs between two loads (present in
/// both): changed in the backend without a rotation reaching this server.
fn moved_secrets(
    before: &BTreeMap<SecretPath, u64>,
    after: &BTreeMap<SecretPath, u64>,
) -> BTreeSet<SecretPath> {
    after
        .iter()
        .filter(|(path, version)| before.get(*path).is_some_and(|old| old != *version))
        .map(|(path, _)| path.clone())
        .collect()
}

fn unix_secs(at: Timestamp) -> f64 {
    at.to_system_time()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

// --- the reloader task: watcher and SIGHUP -------------------------------------------

/// Reloads on `SIGHUP` and on changes under `config_dir` until aborted
/// (run supervised as task `config`).
pub(crate) async fn run_reloader(state: AppState) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(stream) => Some(stream),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGHUP; use `vigocli config reload`");
            None
        }
    };
    let dir = state.deploy.config_dir().to_owned();
    let mut files = match watch_folder(&dir, in_git) {
        Ok(watch) => {
            tracing::info!(path = %dir.display(), "watching the config repository");
            Some(watch)
        }
        Err(e) => {
            tracing::warn!(path = %dir.display(), error = %e, "cannot watch the config repository; deploy changes with SIGHUP or `vigocli config reload`");
            None
        }
    };
    let _watching = Watching::new(&state, files.is_some());
    loop {
        tokio::select! {
            Some(()) = next_signal(&mut hangup) => {
                tracing::info!(signal = "SIGHUP", "reloading the config repository");
                reload(&state, ReloadSource::Signal).await;
            }
            burst = next_burst(&mut files, RELOAD_QUIET, RELOAD_QUIET_LIMIT) => {
                if burst.is_none() {
                    tracing::warn!("the config repository watcher stopped; deploy changes with SIGHUP or `vigocli config reload`");
                    files = None;
                    state.deploy.watching.store(false, Ordering::SeqCst);
                    continue;
                }
                reload(&state, ReloadSource::Watcher).await;
            }
        }
    }
}

/// Marks `config_dir` watched while alive.
struct Watching(AppState);

impl Watching {
    fn new(state: &AppState, on: bool) -> Self {
        state.deploy.watching.store(on, Ordering::SeqCst);
        Self(state.clone())
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.deploy.watching.store(false, Ordering::SeqCst);
    }
}

async fn next_signal(hangup: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match hangup {
        Some(stream) => stream.recv().await,
        None => std::future::pending().await,
    }
}

/// Whether `path` is inside a `.git` folder: the config watcher ignores
/// changes there.
fn in_git(path: &Path) -> bool {
    path.components()
        .any(|c| matches!(c, Component::Normal(n) if n == OsStr::new(".git")))
}

/// Waits for an event, then until none came for `quiet` (at most `limit`
/// after the first). `None` when the watcher is gone; never completes
/// without a watcher.
async fn next_burst(
    files: &mut Option<FolderWatch>,
    quiet: Duration,
    limit: Duration,
) -> Option<()> {
    match files {
        Some(watch) => settle(&mut watch.events, quiet, limit).await,
        None => std::future::pending().await,
    }
}

/// [`next_burst`] on the event channel itself.
async fn settle(events: &mut mpsc::Receiver<()>, quiet: Duration, limit: Duration) -> Option<()> {
    events.recv().await?;
    let limit = Instant::now() + limit;
    loop {
        let quiet_until = (Instant::now() + quiet).min(limit);
        match tokio::time::timeout_at(quiet_until, events.recv()).await {
            Ok(Some(())) if Instant::now() < limit => continue,
            // Quiet, at the limit, or the watcher went away after the
            // burst began: the burst is over.
            _ => return Some(()),
        }
    }
}

#[cfg(test)]
#[path = "deploy_tests.rs"]
mod tests;
