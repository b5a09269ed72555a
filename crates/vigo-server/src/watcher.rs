//! The secret watchers (docs/secrets.md "Rotation"): noticing that a secret the server uses
//! changed in the backend without anyone telling the server, and running the
//! rotation flow for it.
//!
//! - The poller (`watcher.enabled`, on by default with isopass): every
//!   `watcher.poll_interval`, one batch `versions` call for every secret the
//!   server config and the config repository reference. A failed poll logs
//!   `ERROR secret poll failed error="..."`, keeps the last values and
//!   triggers nothing; the next polls back off (the interval doubles, up to
//!   ten times the configured one or [`MAX_POLL_BACKOFF`], whichever is
//!   smaller, never below the configured one) until isopass answers again
//!   (`INFO secret poll recovered`).
//! - The file watcher (local backend): inotify on `secrets_dir`, recursive.
//!   Any secret file created, replaced or removed by anything (another tool,
//!   a restored backup, a `vigocli secrets set` whose notification did not
//!   reach the server) leads, after [`FILE_DEBOUNCE`] of quiet, to the same
//!   batch comparison. The backend's own temporary files (`.tmp-*`) and its
//!   lock file (`.lock`) are ignored, and so are reads: resolving secrets
//!   never wakes the watcher.
//!
//! Both feed one task and one [`Tracker`], so a change seen by both is
//! submitted once. A path counts as changed when the backend's version
//! differs both from the version the previous look saw and from the version
//! the server currently serves: a rotation someone else already ran (the
//! CLI's notification) is not run again, and after a submission the new
//! version is remembered whatever the flow answered, so a change whose
//! rotation failed is not retried on every poll (the flow logs its own
//! error; the next change, notification or restart runs it again).
//!
//! Logs name paths and version numbers only, never values.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use vigo_config::{RawConfig, SecretsBackend};
use vigo_secrets::{LocalProvider, SecretError, SecretPath, SecretProvider};

use crate::AppState;
use crate::folder_watch::{FolderWatch, watch_folder};

/// Quiet time after the last file event before the file watcher compares
/// versions: a `set` writes a temporary file and renames it, a restore may
/// touch many files.
pub(crate) const FILE_DEBOUNCE: Duration = Duration::from_millis(300);

/// The longest the file watcher keeps waiting for quiet before it compares
/// anyway (a folder that never stops changing still gets looked at).
const FILE_DEBOUNCE_LIMIT: Duration = Duration::from_secs(3);

/// Upper bound of the poll interval while polls fail (unless the
/// configured interval is longer: it is never shortened).
pub(crate) const MAX_POLL_BACKOFF: Duration = Duration::from_secs(5 * 60);

/// How far the poll interval grows while polls fail, relative to the
/// configured one.
const BACKOFF_FACTOR: u32 = 10;

/// Where the watchers hand a change: the rotation flow's queue
/// (`RotationQueue::submit(paths, Actor::Watcher)`).
pub(crate) trait SubmitChanges: Send + Sync + 'static {
    /// Runs the rotation flow for `paths` as the watcher and waits for it;
    /// the error text names what failed (never a value).
    fn submit_changes(
        &self,
        paths: BTreeSet<SecretPath>,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// What the watchers look at and where they report a change. The server
/// implements it over its [`AppState`] and its rotation queue; tests use
/// stand-ins.
pub(crate) trait WatchTarget: Send + Sync + 'static {
    /// The secrets backend to ask for versions.
    fn provider(&self) -> Arc<dyn SecretProvider>;

    /// Every secret the server currently uses (server config and config
    /// repository) with the version it resolved.
    fn held_versions(&self) -> BTreeMap<SecretPath, u64>;

    /// Runs the rotation flow for `paths` and waits for it; the error text
    /// names what failed (never a value).
    fn changed(
        &self,
        paths: BTreeSet<SecretPath>,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// Which watchers run, derived from the server config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WatchPlan {
    /// The poll interval when polling is on (`watcher.enabled`).
    pub poll: Option<Duration>,
    /// The folder to watch for file changes (local backend: `secrets_dir`).
    pub files: Option<PathBuf>,
}

impl WatchPlan {
    /// Polling when `watcher.enabled`; file watching whenever the backend is
    /// local.
    pub(crate) fn from_config(raw: &RawConfig) -> Self {
        let poll = raw.watcher.enabled.then_some(raw.watcher.poll_interval);
        let files = match &raw.secrets {
            SecretsBackend::Local { secrets_dir, .. } => Some(secrets_dir.clone()),
            SecretsBackend::Isopass { .. } => None,
        };
        Self { poll, files }
    }

    fn is_empty(&self) -> bool {
        self.poll.is_none() && self.files.is_none()
    }
}

/// Starts the watchers the server config asks for (see the module docs) on
/// the current tokio runtime; they stop when `shutdown` completes. The
/// returned task ends at once when nothing is to be watched.
pub(crate) fn spawn_watchers<Q, F>(state: AppState, queue: Q, shutdown: F) -> JoinHandle<()>
where
    Q: SubmitChanges,
    F: Future<Output = ()> + Send + 'static,
{
    let plan = WatchPlan::from_config(&state.config().raw);
    spawn_watching(ServerTarget { state, queue }, plan, shutdown)
}

/// [`spawn_watchers`] for any [`WatchTarget`] and an explicit plan.
pub(crate) fn spawn_watching<T, F>(target: T, plan: WatchPlan, shutdown: F) -> JoinHandle<()>
where
    T: WatchTarget,
    F: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(run(target, plan, shutdown))
}

/// The server as a [`WatchTarget`].
struct ServerTarget<Q> {
    state: AppState,
    queue: Q,
}

impl<Q: SubmitChanges> WatchTarget for ServerTarget<Q> {
    fn provider(&self) -> Arc<dyn SecretProvider> {
        Arc::clone(&self.state.provider)
    }

    fn held_versions(&self) -> BTreeMap<SecretPath, u64> {
        self.state.held_versions()
    }

    async fn changed(&self, paths: BTreeSet<SecretPath>) -> Result<(), String> {
        self.queue.submit_changes(paths).await
    }
}

async fn run<T: WatchTarget, F: Future<Output = ()> + Send>(
    target: T,
    plan: WatchPlan,
    shutdown: F,
) {
    if plan.is_empty() {
        tracing::debug!("no secret watcher configured");
        return;
    }
    let mut files = plan.files.as_deref().and_then(|dir| match watch_folder(dir, is_backend_file) {
        Ok(watching) => {
            tracing::info!(path = %dir.display(), "watching secret files");
            Some(watching)
        }
        Err(e) => {
            tracing::warn!(path = %dir.display(), error = %e, "cannot watch the secret files; changes made without `vigocli secrets set` are noticed at the next start");
            None
        }
    });
    let mut schedule = plan.poll.map(PollSchedule::new);
    if let Some(interval) = plan.poll {
        tracing::info!(
            backend = target.provider().backend(),
            interval = %humantime::format_duration(interval),
            "polling secret versions"
        );
    }
    let mut next_poll = schedule.as_ref().map(|s| Instant::now() + s.current());
    let mut tracker = Tracker::new(&target.held_versions());

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = sleep_until(next_poll) => {
                let outcome = tokio::select! {
                    () = &mut shutdown => break,
                    outcome = check(&target, &mut tracker) => outcome,
                };
                if let Some(schedule) = schedule.as_mut() {
                    schedule.record(outcome);
                    next_poll = Some(Instant::now() + schedule.current());
                }
            }
            event = next_file_event(&mut files) => {
                if event.is_none() {
                    tracing::warn!("the secret file watcher stopped; changes made without `vigocli secrets set` are noticed at the next start");
                    files = None;
                    continue;
                }
                tokio::select! {
                    () = &mut shutdown => break,
                    outcome = async {
                        settle(&mut files).await;
                        check(&target, &mut tracker).await
                    } => {
                        if let Err(e) = outcome {
                            tracing::error!(error = %e, "secret check after a file change failed");
                        }
                    }
                }
            }
        }
    }
    tracing::debug!("secret watchers stopped");
}

/// Compares the backend's versions with the last look and submits the
/// changed paths. An error means the backend could not be asked; nothing
/// was submitted and nothing remembered.
async fn check<T: WatchTarget>(target: &T, tracker: &mut Tracker) -> Result<(), SecretError> {
    let held = target.held_versions();
    if held.is_empty() {
        return Ok(());
    }
    let paths: Vec<SecretPath> = held.keys().cloned().collect();
    let current = target.provider().versions(&paths).await?;
    let changes = tracker.observe(&held, &current);
    if changes.is_empty() {
        return Ok(());
    }
    for (path, change) in &changes {
        tracing::info!(
            path = %path,
            version = %shown(change.now),
            serving = %shown(change.serving),
            "secret changed in the backend"
        );
    }
    if let Err(e) = target.changed(changes.into_keys().collect()).await {
        // The flow has logged the cause with the paths; this says who asked.
        tracing::warn!(error = %e, "the rotation after a watched secret change did not complete");
    }
    Ok(())
}

fn shown(version: Option<u64>) -> String {
    version.map_or_else(|| "absent".to_owned(), |v| v.to_string())
}

/// One path's change as [`Tracker::observe`] saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Change {
    /// The version the backend holds now (`None`: the secret is gone).
    pub(crate) now: Option<u64>,
    /// The version the server serves.
    pub(crate) serving: Option<u64>,
}

/// The versions the watchers saw last, per watched path (`None`: absent).
#[derive(Debug, Clone, Default)]
pub(crate) struct Tracker {
    last: BTreeMap<SecretPath, Option<u64>>,
}

impl Tracker {
    /// Starts from what the server loaded.
    pub(crate) fn new(held: &BTreeMap<SecretPath, u64>) -> Self {
        Self {
            last: held.iter().map(|(p, v)| (p.clone(), Some(*v))).collect(),
        }
    }

    /// Compares one answer of the backend (`current`, absent paths left out)
    /// for the watched paths (the keys of `held`, with the versions the
    /// server serves), remembers it, and returns the paths to rotate.
    ///
    /// A path is changed when its version differs from the last look (for a
    /// path watched for the first time: from what the server serves) and
    /// from what the server serves. Paths no longer watched are forgotten.
    pub(crate) fn observe(
        &mut self,
        held: &BTreeMap<SecretPath, u64>,
        current: &BTreeMap<SecretPath, u64>,
    ) -> BTreeMap<SecretPath, Change> {
        let mut changes = BTreeMap::new();
        let mut next = BTreeMap::new();
        for (path, &serving) in held {
            let before = self.last.get(path).copied().unwrap_or(Some(serving));
            let now = current.get(path).copied();
            if now != before && now != Some(serving) {
                changes.insert(
                    path.clone(),
                    Change {
                        now,
                        serving: Some(serving),
                    },
                );
            }
            next.insert(path.clone(), now);
        }
        self.last = next;
        changes
    }
}

/// The poll interval, stretched while polls fail.
#[derive(Debug, Clone)]
struct PollSchedule {
    base: Duration,
    current: Duration,
    failures: u32,
}

impl PollSchedule {
    fn new(base: Duration) -> Self {
        Self {
            base,
            current: base,
            failures: 0,
        }
    }

    fn current(&self) -> Duration {
        self.current
    }

    /// The longest interval while failing: ten times the configured one,
    /// at most [`MAX_POLL_BACKOFF`], at least the configured one.
    fn ceiling(&self) -> Duration {
        self.base
            .saturating_mul(BACKOFF_FACTOR)
            .min(MAX_POLL_BACKOFF)
            .max(self.base)
    }

    /// Logs the outcome of a poll and sets the next interval.
    fn record(&mut self, outcome: Result<(), SecretError>) {
        match outcome {
            Ok(()) => {
                if self.failures > 0 {
                    tracing::info!(failed_polls = self.failures, "secret poll recovered");
                }
                self.failures = 0;
                self.current = self.base;
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                // The first failure keeps the interval: one lost answer is
                // common; a second one starts the backoff.
                if self.failures > 1 {
                    self.current = self.current.saturating_mul(2).min(self.ceiling());
                }
                tracing::error!(
                    error = %e,
                    next_poll = %humantime::format_duration(self.current),
                    "secret poll failed"
                );
            }
        }
    }
}

/// The backend's temporary files and its lock file: never secrets.
fn is_backend_file(path: &Path) -> bool {
    let name = path.file_name().and_then(OsStr::to_str).unwrap_or("");
    LocalProvider::is_internal_file(name)
}

/// The next wake-up of the file watcher; never completes without one.
/// `None` when the watcher's channel closed.
async fn next_file_event(files: &mut Option<FolderWatch>) -> Option<()> {
    match files {
        Some(watch) => watch.events.recv().await,
        None => std::future::pending().await,
    }
}

/// Waits until no file event came for [`FILE_DEBOUNCE`] (at most
/// [`FILE_DEBOUNCE_LIMIT`] in all).
async fn settle(files: &mut Option<FolderWatch>) {
    let Some(watch) = files else { return };
    let limit = Instant::now() + FILE_DEBOUNCE_LIMIT;
    loop {
        let quiet_until = (Instant::now() + FILE_DEBOUNCE).min(limit);
        match tokio::time::timeout_at(quiet_until, watch.events.recv()).await {
            Ok(Some(())) if Instant::now() < limit => continue,
            _ => return,
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::sync::mpsc;
    use vigo_secrets::{LocalProvider, MasterKey, MemoryProvider, SecretValue};

    use super::*;
    use crate::folder_watch::may_change_files;

    fn p(s: &str) -> SecretPath {
        SecretPath::parse(s).unwrap()
    }

    fn versions(pairs: &[(&str, u64)]) -> BTreeMap<SecretPath, u64> {
        pairs.iter().map(|(k, v)| (p(k), *v)).collect()
    }

    #[test]
    fn a_new_version_is_a_change_once() {
        let held = versions(&[("a/x", 1), ("a/y", 4)]);
        let mut tracker = Tracker::new(&held);
        assert!(tracker.observe(&held, &held).is_empty());
        let changes = tracker.observe(&held, &versions(&[("a/x", 2), ("a/y", 4)]));
        assert_eq!(
            changes,
            BTreeMap::from([(
                p("a/x"),
                Change {
                    now: Some(2),
                    serving: Some(1)
                }
            )])
        );
        // The rotation failed: the server still serves 1. The same answer
        // is not submitted again.
        assert!(
            tracker
                .observe(&held, &versions(&[("a/x", 2), ("a/y", 4)]))
                .is_empty()
        );
        // A further change is.
        assert_eq!(
            tracker
                .observe(&held, &versions(&[("a/x", 3), ("a/y", 4)]))
                .len(),
            1
        );
    }

    #[test]
    fn a_version_the_server_already_serves_is_no_change() {
        let held = versions(&[("a/x", 1)]);
        let mut tracker = Tracker::new(&held);
        // Someone else's rotation reloaded the server before the watcher
        // looked.
        let now_held = versions(&[("a/x", 2)]);
        assert!(tracker.observe(&now_held, &now_held).is_empty());
    }

    #[test]
    fn vanished_and_restored_secrets() {
        let held = versions(&[("a/x", 5)]);
        let mut tracker = Tracker::new(&held);
        let changes = tracker.observe(&held, &BTreeMap::new());
        assert_eq!(
            changes[&p("a/x")],
            Change {
                now: None,
                serving: Some(5)
            }
        );
        assert!(tracker.observe(&held, &BTreeMap::new()).is_empty());
        // Restored from a backup holding an older version.
        let changes = tracker.observe(&held, &versions(&[("a/x", 3)]));
        assert_eq!(changes[&p("a/x")].now, Some(3));
        // Restored as exactly what the server serves: nothing to do.
        let mut tracker = Tracker::new(&held);
        tracker.observe(&held, &BTreeMap::new());
        assert!(tracker.observe(&held, &held).is_empty());
    }

    #[test]
    fn newly_watched_paths_start_from_what_the_server_serves() {
        let mut tracker = Tracker::new(&versions(&[("a/x", 1)]));
        let held = versions(&[("a/x", 1), ("b/y", 7)]);
        assert!(tracker.observe(&held, &held).is_empty());
        let changes = tracker.observe(&held, &versions(&[("a/x", 1), ("b/y", 8)]));
        assert_eq!(changes.keys().collect::<Vec<_>>(), [&p("b/y")]);
    }

    #[test]
    fn failing_polls_back_off_within_bounds_and_recover() {
        let failure = || {
            Err(SecretError::Unreachable {
                backend: "isopass",
                cause: "connection refused".to_owned(),
            })
        };
        let mut s = PollSchedule::new(Duration::from_secs(1));
        s.record(failure());
        assert_eq!(s.current(), Duration::from_secs(1));
        for expected in [2, 4, 8, 10, 10] {
            s.record(failure());
            assert_eq!(s.current(), Duration::from_secs(expected));
        }
        s.record(Ok(()));
        assert_eq!(s.current(), Duration::from_secs(1));

        let mut s = PollSchedule::new(Duration::from_secs(120));
        for _ in 0..5 {
            s.record(failure());
        }
        assert_eq!(s.current(), MAX_POLL_BACKOFF);
        let mut s = PollSchedule::new(Duration::from_secs(3600));
        for _ in 0..5 {
            s.record(failure());
        }
        assert_eq!(s.current(), Duration::from_secs(3600));
    }

    #[test]
    fn reads_metadata_and_backend_files_are_ignored() {
        use notify::event::{
            AccessKind, AccessMode, CreateKind, DataChange, MetadataKind, ModifyKind, RenameMode,
        };
        use notify::{Event, EventKind};
        let is_secret_change = |event: &Event| may_change_files(event, is_backend_file);
        let event = |kind, paths: &[&str]| Event {
            kind,
            paths: paths.iter().map(PathBuf::from).collect(),
            attrs: Default::default(),
        };
        let secret = "/s/vigo/db/dsn";
        let temp = "/s/vigo/db/.tmp-81ac";
        assert!(is_secret_change(&event(
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
            &[temp, secret]
        )));
        assert!(is_secret_change(&event(
            EventKind::Remove(notify::event::RemoveKind::File),
            &[secret]
        )));
        assert!(is_secret_change(&event(
            EventKind::Create(CreateKind::File),
            &[secret]
        )));
        assert!(!is_secret_change(&event(
            EventKind::Create(CreateKind::File),
            &[temp]
        )));
        assert!(!is_secret_change(&event(
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            &["/s/.lock"]
        )));
        assert!(!is_secret_change(&event(
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            &[secret]
        )));
        assert!(!is_secret_change(&event(
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            &[secret]
        )));
        assert!(!is_secret_change(&event(
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Permissions)),
            &[secret]
        )));
    }

    #[test]
    fn the_plan_follows_the_config() {
        let parse =
            |text: &str| RawConfig::parse(text, Path::new("/etc/vigo/vigosrv.yaml")).unwrap();
        let local = WatchPlan::from_config(&parse(""));
        assert_eq!(
            local,
            WatchPlan {
                poll: None,
                files: Some(PathBuf::from("/srv/vigo/secrets"))
            }
        );
        let isopass = WatchPlan::from_config(&parse(
            "secrets:\n  backend: isopass\n  url: https://isopass.internal\n  token_file: /t\nwatcher:\n  poll_interval: 1s\n",
        ));
        assert_eq!(
            isopass,
            WatchPlan {
                poll: Some(Duration::from_secs(1)),
                files: None
            }
        );
        let off = WatchPlan::from_config(&parse(
            "secrets:\n  backend: isopass\n  url: https://isopass.internal\n  token_file: /t\nwatcher:\n  enabled: false\n",
        ));
        assert!(off.is_empty());
    }

    /// A target over any provider that records what it is told and, like
    /// the rotation flow, then serves the backend's versions (unless told
    /// the flow fails).
    struct Recorder {
        provider: Arc<dyn SecretProvider>,
        held: Mutex<BTreeMap<SecretPath, u64>>,
        told: mpsc::UnboundedSender<BTreeSet<SecretPath>>,
    }

    impl WatchTarget for Arc<Recorder> {
        fn provider(&self) -> Arc<dyn SecretProvider> {
            Arc::clone(&self.provider)
        }

        fn held_versions(&self) -> BTreeMap<SecretPath, u64> {
            self.held.lock().unwrap().clone()
        }

        async fn changed(&self, paths: BTreeSet<SecretPath>) -> Result<(), String> {
            let list: Vec<_> = paths.iter().cloned().collect();
            let now = self
                .provider
                .versions(&list)
                .await
                .map_err(|e| e.to_string())?;
            self.held.lock().unwrap().extend(now);
            let _ = self.told.send(paths);
            Ok(())
        }
    }

    fn recorder(
        provider: Arc<dyn SecretProvider>,
        held: BTreeMap<SecretPath, u64>,
    ) -> (Arc<Recorder>, mpsc::UnboundedReceiver<BTreeSet<SecretPath>>) {
        let (told, rx) = mpsc::unbounded_channel();
        (
            Arc::new(Recorder {
                provider,
                held: Mutex::new(held),
                told,
            }),
            rx,
        )
    }

    /// Waits for the next submission; a generous bound only turns a hang
    /// into a failure.
    async fn next(rx: &mut mpsc::UnboundedReceiver<BTreeSet<SecretPath>>) -> BTreeSet<SecretPath> {
        tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("no submission arrived")
            .expect("the watcher task ended")
    }

    /// Runs the watchers of `plan` for `target` until the returned sender
    /// is used.
    fn watch<T: WatchTarget>(
        target: T,
        plan: WatchPlan,
    ) -> (tokio::sync::oneshot::Sender<()>, JoinHandle<()>) {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = spawn_watching(target, plan, async move {
            let _ = stopped.await;
        });
        (stop, task)
    }

    /// The poller alone over `paths` (their versions now held), every
    /// `every`: what it submits, its stop switch and its task.
    async fn poll_only(
        provider: Arc<dyn SecretProvider>,
        paths: &[SecretPath],
        every: Duration,
    ) -> (
        mpsc::UnboundedReceiver<BTreeSet<SecretPath>>,
        tokio::sync::oneshot::Sender<()>,
        JoinHandle<()>,
    ) {
        let held = provider.versions(paths).await.unwrap();
        let (target, rx) = recorder(provider, held);
        let plan = WatchPlan {
            poll: Some(every),
            files: None,
        };
        let (stop, task) = watch(target, plan);
        (rx, stop, task)
    }

    #[tokio::test]
    async fn the_poller_submits_a_changed_version() {
        let provider = Arc::new(MemoryProvider::new());
        provider.insert(&p("app/pw"), "one".into());
        provider.insert(&p("app/other"), "x".into());
        let (mut rx, stop, task) = poll_only(
            provider.clone(),
            &[p("app/pw"), p("app/other")],
            Duration::from_millis(50),
        )
        .await;
        provider
            .set(&p("app/pw"), &SecretValue::from("two"))
            .await
            .unwrap();
        assert_eq!(next(&mut rx).await, BTreeSet::from([p("app/pw")]));
        provider.delete(&p("app/other")).await.unwrap();
        assert_eq!(next(&mut rx).await, BTreeSet::from([p("app/other")]));
        stop.send(()).unwrap();
        task.await.unwrap();
        assert!(rx.try_recv().is_err(), "one submission per change");
    }

    #[tokio::test]
    async fn a_file_replaced_by_another_process_is_submitted() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("master.key");
        let secrets_dir = dir.path().join("secrets");
        MasterKey::generate_to(&key_file).unwrap();
        let ours = LocalProvider::open(&key_file, &secrets_dir).unwrap();
        ours.set(&p("app/pw"), &SecretValue::from("one"))
            .await
            .unwrap();
        ours.set(&p("app/unwatched"), &SecretValue::from("u"))
            .await
            .unwrap();
        let held = ours.versions(&[p("app/pw")]).await.unwrap();
        let (target, mut rx) = recorder(Arc::new(ours), held);
        let (stop, task) = watch(
            target,
            WatchPlan {
                poll: None,
                files: Some(secrets_dir.clone()),
            },
        );
        // Another writer: a second provider over the same folder, as
        // `vigocli` is. Writing an unwatched secret first submits nothing;
        // the watched one then arrives alone.
        let other = LocalProvider::open(&key_file, &secrets_dir).unwrap();
        other
            .set(&p("app/unwatched"), &SecretValue::from("v"))
            .await
            .unwrap();
        other
            .set(&p("app/pw"), &SecretValue::from("two"))
            .await
            .unwrap();
        assert_eq!(next(&mut rx).await, BTreeSet::from([p("app/pw")]));

        // A restored backup: the file of version 1 copied back over version 2.
        let file = secrets_dir.join("app/pw");
        let v2 = std::fs::read(&file).unwrap();
        other
            .set(&p("app/pw"), &SecretValue::from("three"))
            .await
            .unwrap();
        assert_eq!(next(&mut rx).await, BTreeSet::from([p("app/pw")]));
        std::fs::write(&file, &v2).unwrap();
        assert_eq!(next(&mut rx).await, BTreeSet::from([p("app/pw")]));
        stop.send(()).unwrap();
        task.await.unwrap();
    }

    /// Everything logged while it is the thread's default subscriber.
    #[derive(Clone, Default)]
    struct LogBuffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for LogBuffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl LogBuffer {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }

        async fn wait_for(&self, needle: &str) {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !self.text().contains(needle) {
                assert!(
                    Instant::now() < deadline,
                    "never logged {needle:?}:\n{}",
                    self.text()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// The poller against the isopass stand-in over TLS: a PUT straight
    /// into isopass is submitted; a stopped isopass logs failed polls and
    /// submits nothing; back on the same port and data file it recovers and
    /// the next change is submitted. (Current-thread runtime: the watcher
    /// task logs into this thread's subscriber.)
    #[tokio::test(flavor = "current_thread")]
    async fn the_poller_survives_an_isopass_outage() {
        use std::os::unix::fs::PermissionsExt;

        use isopass_standin::{StandinOptions, Transport};
        use vigo_secrets::{IsopassConfig, IsopassProvider};
        use zeroize::Zeroizing;

        let logs = LogBuffer::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .finish();
        // tracing-core decides a callsite's interest with the registering
        // thread's own default while only one dispatcher exists: a watcher
        // test on another thread, without a subscriber, would then turn the
        // watcher's events off for this one too. A second, silent
        // dispatcher makes it ask every dispatcher instead.
        let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
        let _guard = tracing::subscriber::set_default(subscriber);

        let dir = tempfile::tempdir().unwrap();
        vigo_test_support::write_loopback_tls(dir.path(), "watcher test CA");
        let file = |name: &str| dir.path().join(name);
        let token = "tok-watcher-canary-5d1e";
        std::fs::write(file("token"), token).unwrap();
        std::fs::set_permissions(file("token"), std::fs::Permissions::from_mode(0o600)).unwrap();
        let standin = isopass_standin::spawn(StandinOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            token: Zeroizing::new(token.to_owned()),
            transport: Transport::Tls {
                cert_file: file("server.pem"),
                key_file: file("server.key"),
            },
            data_file: Some(file("standin.json")),
        })
        .await
        .unwrap();
        let provider = Arc::new(
            IsopassProvider::new(IsopassConfig {
                url: format!("https://127.0.0.1:{}", standin.addr.port()),
                token_file: file("token"),
                ca_file: Some(file("ca.pem")),
            })
            .unwrap(),
        );
        let path = p("app/grafana/admin-password");
        provider
            .set(&path, &SecretValue::from("value-one-canary"))
            .await
            .unwrap();
        let (mut rx, stop, task) = poll_only(
            provider.clone(),
            std::slice::from_ref(&path),
            Duration::from_millis(100),
        )
        .await;

        provider
            .set(&path, &SecretValue::from("value-two-canary"))
            .await
            .unwrap();
        assert_eq!(next(&mut rx).await, BTreeSet::from([path.clone()]));
        logs.wait_for("secret changed in the backend").await;

        let restart = standin.restart_options();
        standin.shutdown().await;
        logs.wait_for("secret poll failed").await;
        assert!(
            logs.text()
                .contains("isopass unreachable: connection refused"),
            "{}",
            logs.text()
        );
        assert!(rx.try_recv().is_err(), "a failed poll submits nothing");

        let standin = isopass_standin::spawn(restart).await.unwrap();
        logs.wait_for("secret poll recovered").await;
        assert!(
            rx.try_recv().is_err(),
            "recovering submits nothing by itself"
        );
        provider
            .set(&path, &SecretValue::from("value-three-canary"))
            .await
            .unwrap();
        assert_eq!(next(&mut rx).await, BTreeSet::from([path.clone()]));

        stop.send(()).unwrap();
        task.await.unwrap();
        standin.shutdown().await;
        let text = logs.text();
        for secret in ["canary", token] {
            assert!(
                !text.contains(secret),
                "{secret} leaked into the log:\n{text}"
            );
        }
        assert!(text.contains("path=app/grafana/admin-password"), "{text}");
    }
}
