//! Tests of config reloads, the rotation on the serving snapshot, the
//! rotation gate and the supervision of the rotation task, on a real
//! [`Server`] (first start in a temporary folder, embedded database).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, ModifyKind};
use notify::{Event, EventKind};
use tower::ServiceExt;
use vigo_secrets::{SecretPath, SecretValue};

use super::*;
use crate::folder_watch::may_change_files;
use crate::{Server, router};

const WEB1: &str = "web1.example.com";
const PASSWORD: &str = "vigo/web/password";

struct Rig {
    dir: tempfile::TempDir,
    server: Option<Server>,
    state: AppState,
}

impl Rig {
    /// A started (not serving) server whose repository gives `web*` a page
    /// and a file holding a secret, with `web1.example.com` approved.
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("vigosrv.yaml");
        std::fs::write(
            &config,
            "listen: \"127.0.0.1:0\"\ndata_dir: data\nconfig_dir: config\n",
        )
        .unwrap();
        let rig_dir = dir.path().to_owned();
        write(&rig_dir, "config/nodes.vgo", NODES);
        write(
            &rig_dir,
            "config/modules/web.vgo",
            &web_module(&rig_dir, ""),
        );
        // The first start generates the backend; the password must exist
        // before the repository resolves, so start once without it.
        std::fs::rename(rig_dir.join("config"), rig_dir.join("config.later")).unwrap();
        let first = Server::start(&config).await.unwrap();
        let path = SecretPath::parse(PASSWORD).unwrap();
        first
            .state()
            .provider
            .set(&path, &SecretValue::from("first"))
            .await
            .unwrap();
        drop(first);
        std::fs::rename(rig_dir.join("config.later"), rig_dir.join("config")).unwrap();

        let server = Server::start(&config).await.unwrap();
        let state = server.state().clone();
        let store = state.store();
        let at = vigo_store::Timestamp::now();
        store
            .upsert_enrollment_request(WEB1, "csr", at)
            .await
            .unwrap();
        store
            .approve_envoy(WEB1, "cert", "AA:BB", at)
            .await
            .unwrap();
        Self {
            dir,
            server: Some(server),
            state,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, rel: &str, text: &str) {
        write(self.path(), rel, text);
    }

    fn resources(&self) -> Vec<String> {
        let compiled = self.state.catalog(WEB1, &serde_json::json!({})).unwrap();
        compiled
            .catalog
            .resources
            .iter()
            .map(|r| r.name.clone())
            .collect()
    }

    /// Serves (HTTPS on a free port, every background task) until the
    /// returned sender is used or dropped.
    fn serve(&mut self) -> tokio::sync::oneshot::Sender<()> {
        let server = self.server.take().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.serve(async move {
            let _ = stopped.await;
        }));
        stop
    }
}

const NODES: &str = "envoys:\n  - match: \"web*.example.com\"\n    roles: [web]\n    vars:\n      pw: \"secret:vigo/web/password\"\n";

fn web_module(root: &Path, extra: &str) -> String {
    let out = root.join("out");
    format!(
        "resources:\n  - name: index\n    type: file\n    target_path: {out}/index.html\n    content: \"hello\"\n  - name: pw\n    type: file\n    target_path: {out}/pw\n    content: \"{{{{ .Vars.pw }}}}\"\n    watch_secret: [\"vigo/web/password\"]\n{extra}",
        out = out.display()
    )
}

fn write(root: &Path, rel: &str, text: &str) {
    let file: PathBuf = root.join(rel);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, text).unwrap();
}

fn extra_file(root: &Path) -> String {
    format!(
        "  - name: motd\n    type: file\n    target_path: {}/motd\n    content: \"deployed\"\n",
        root.join("out").display()
    )
}

async fn healthz(state: &AppState) -> (u16, String) {
    let response = router(state.clone())
        .oneshot(
            axum::http::Request::get("/healthz")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn until<F: Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn issue_11_a_failed_reload_keeps_the_last_good_repository_serving() {
    let rig = Rig::new().await;
    let state = &rig.state;
    let serving = state.repo().revision.clone();
    assert_eq!(rig.resources(), ["index", "pw"]);
    assert!(
        state
            .metrics
            .render()
            .contains("vigo_config_reload_success 1")
    );

    // An unknown resource type.
    rig.write(
        "config/modules/web.vgo",
        &web_module(rig.path(), "  - name: motd\n    type: fiel\n"),
    );
    let outcome = reload(state, ReloadSource::Cli).await;
    let ReloadOutcome::Failed(problems) = outcome else {
        panic!("{outcome:?}")
    };
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(
        text.iter().any(|t| t.starts_with("modules/web.vgo:12:")),
        "{text:?}"
    );
    assert_eq!(state.repo().revision, serving, "nothing replaced");
    assert_eq!(rig.resources(), ["index", "pw"]);
    assert!(
        state
            .metrics
            .render()
            .contains("vigo_config_reload_success 0")
    );
    assert_eq!(
        state.deploy.failed_hash(),
        Some(Revision::read(&rig.path().join("config")).hash)
    );
    // The watcher does not retry (or log again) the same content.
    assert_eq!(
        reload(state, ReloadSource::Watcher).await,
        ReloadOutcome::Skipped
    );

    // A missing secret is an error too, and still nothing is replaced.
    rig.write(
        "config/nodes.vgo",
        &NODES.replace("vigo/web/password", "vigo/web/nope"),
    );
    rig.write("config/modules/web.vgo", &web_module(rig.path(), ""));
    let ReloadOutcome::Failed(problems) = reload(state, ReloadSource::Signal).await else {
        panic!()
    };
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0]
            .to_string()
            .starts_with("resolving secret 'vigo/web/nope': "),
        "{problems:?}"
    );
    assert_eq!(state.repo().revision, serving);

    // Fixed, with a new resource: it serves, web1's catalog changed and
    // web1 is told (force-push).
    rig.write("config/nodes.vgo", NODES);
    rig.write(
        "config/modules/web.vgo",
        &web_module(rig.path(), &extra_file(rig.path())),
    );
    let outcome = reload(state, ReloadSource::Watcher).await;
    assert_eq!(
        outcome,
        ReloadOutcome::Reloaded {
            changed: vec![WEB1.to_owned()]
        }
    );
    assert_eq!(rig.resources(), ["index", "pw", "motd"]);
    assert_ne!(state.repo().revision.hash, serving.hash);
    assert!(state.store().force_push(WEB1).await.unwrap());
    assert!(
        state
            .metrics
            .render()
            .contains("vigo_config_reload_success 1")
    );
    assert!(
        state
            .metrics
            .render()
            .contains("vigo_config_last_reload_timestamp_seconds")
    );
    // Again, unchanged: skipped for the watcher, a no-op for SIGHUP.
    assert_eq!(
        reload(state, ReloadSource::Watcher).await,
        ReloadOutcome::Skipped
    );
    assert_eq!(
        reload(state, ReloadSource::Signal).await,
        ReloadOutcome::Reloaded { changed: vec![] }
    );
    let record = state.deploy.lock().clone();
    assert_eq!(record.loaded_by, ReloadSource::Signal);
    assert_eq!(record.last_failure.unwrap().by, ReloadSource::Signal);
}

#[tokio::test]
async fn issue_11_a_rotation_resolves_the_serving_repository_not_the_files() {
    let mut rig = Rig::new().await;
    let _stop = rig.serve();
    let state = rig.state.clone();
    let serving = state.repo().revision.clone();
    // A half-finished edit on disk.
    rig.write("config/modules/web.vgo", "resources:\n  - name: [\n");
    let path = SecretPath::parse(PASSWORD).unwrap();
    let version = state
        .provider
        .set(&path, &SecretValue::from("second"))
        .await
        .unwrap();
    let answer = state
        .rotation
        .submit(BTreeSet::from([path.clone()]), Actor::Cli)
        .await
        .expect("the rotation does not read config_dir");
    assert_eq!(answer.envoys, [WEB1]);
    assert_eq!(state.repo().secrets[&path].version, version);
    assert_eq!(state.repo().revision, serving);
    assert_eq!(rig.resources(), ["index", "pw"]);
    assert_eq!(state.store().triggers_for(WEB1).await.unwrap().len(), 1);
}

#[tokio::test]
async fn issue_11_a_check_in_waits_for_a_queued_rotation() {
    let mut rig = Rig::new().await;
    let _stop = rig.serve();
    let state = rig.state.clone();
    let path = SecretPath::parse(PASSWORD).unwrap();
    state
        .provider
        .set(&path, &SecretValue::from("third"))
        .await
        .unwrap();
    // The admin notification: queued, answered at once.
    state
        .rotation
        .enqueue(BTreeSet::from([path]), Actor::Cli)
        .unwrap();
    // A check-in arriving now passes the gate only after the flow queued
    // its trigger (it waits out the coalescing window).
    let started = Instant::now();
    assert!(state.rotation.settled(crate::gate::ROTATION_WAIT).await);
    assert!(started.elapsed() >= crate::COALESCE_WINDOW);
    assert_eq!(state.store().triggers_for(WEB1).await.unwrap().len(), 1);
    assert!(state.store().force_push(WEB1).await.unwrap());
}

#[tokio::test]
async fn issue_12_a_failing_rotation_task_is_restarted_and_healthz_says_so() {
    let mut rig = Rig::new().await;
    let _stop = rig.serve();
    let state = rig.state.clone();
    assert_eq!(healthz(&state).await, (200, "ok".to_owned()));
    let path = SecretPath::parse(PASSWORD).unwrap();
    let submit = || {
        state
            .rotation
            .submit(BTreeSet::from([path.clone()]), Actor::Cli)
    };

    // A panic in one batch's flow fails that batch only.
    state.faults.flow_panics.store(1, Ordering::SeqCst);
    let err = submit().await.unwrap_err();
    assert!(err.to_string().contains("panicked"), "{err}");
    assert_eq!(healthz(&state).await.0, 200);
    submit().await.expect("the worker still runs");

    // A panic of the worker itself: the batch is answered with an error,
    // /healthz is 503 until the supervisor has restarted it, then the
    // same queue is served again.
    state.faults.worker_panics.store(1, Ordering::SeqCst);
    let err = submit().await.unwrap_err();
    assert!(
        err.to_string().contains("stopped before it finished"),
        "{err}"
    );
    until("unhealthy while restarting", || async {
        healthz(&state).await
            == (
                503,
                "unhealthy: background task not running: rotation".to_owned(),
            )
    })
    .await;
    until("healthy again", || async { healthz(&state).await.0 == 200 }).await;
    state
        .provider
        .set(&path, &SecretValue::from("after-restart"))
        .await
        .unwrap();
    let answer = submit().await.expect("the restarted worker serves");
    assert_eq!(answer.envoys, [WEB1]);
    assert!(state.rotation.settled(Duration::ZERO).await);
}

#[tokio::test]
async fn issue_11_the_watcher_reloads_a_changed_repository_once() {
    let mut rig = Rig::new().await;
    let _stop = rig.serve();
    let state = rig.state.clone();
    let root = rig.path().to_owned();
    until("watching", || async { state.deploy.watching() }).await;
    // Several writes in a row (an editor, a checkout).
    for extra in ["", "  - name: a\n    type: fiel\n", &extra_file(&root)] {
        rig.write("config/modules/web.vgo", &web_module(&root, extra));
    }
    until("the watcher reloaded", || async {
        state.deploy.lock().last_attempt.is_some()
    })
    .await;
    assert_eq!(rig.resources(), ["index", "pw", "motd"]);
    let record = state.deploy.lock().clone();
    assert_eq!(record.loaded_by, ReloadSource::Watcher);
    assert!(
        record.last_failure.is_none(),
        "the burst was loaded once, complete"
    );
}

#[test]
fn reads_and_git_internals_are_not_changes() {
    let is_content_change = |event: &Event| may_change_files(event, in_git);
    let event = |kind: EventKind, path: &str| Event {
        kind,
        paths: vec![PathBuf::from(path)],
        attrs: Default::default(),
    };
    let write = EventKind::Modify(ModifyKind::Data(DataChange::Content));
    assert!(is_content_change(&event(write, "/c/modules/web.vgo")));
    assert!(is_content_change(&event(
        EventKind::Create(CreateKind::File),
        "/c/nodes.vgo"
    )));
    assert!(is_content_change(&event(
        EventKind::Access(AccessKind::Close(AccessMode::Write)),
        "/c/nodes.vgo"
    )));
    assert!(!is_content_change(&event(
        EventKind::Access(AccessKind::Close(AccessMode::Read)),
        "/c/nodes.vgo"
    )));
    assert!(!is_content_change(&event(write, "/c/.git/index.lock")));
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_events_is_one_reload() {
    let (tx, mut rx) = mpsc::channel(1);
    let producer = tokio::spawn(async move {
        // A burst of 10 events 100 ms apart, a pause, another burst.
        for burst in 0..2 {
            for _ in 0..10 {
                let _ = tx.try_send(());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if burst == 0 {
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
        }
        // Closed well after the second burst went quiet.
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(tx);
    });
    let mut bursts = Vec::new();
    let start = Instant::now();
    while settle(&mut rx, RELOAD_QUIET, RELOAD_QUIET_LIMIT)
        .await
        .is_some()
    {
        bursts.push(start.elapsed().as_millis());
    }
    producer.await.unwrap();
    // Each burst ends RELOAD_QUIET after its last event (900 ms in).
    assert_eq!(bursts, [1300, 5300]);

    // A folder that never goes quiet is still looked at, at the limit.
    let (tx, mut rx) = mpsc::channel(1);
    let noisy = tokio::spawn(async move {
        loop {
            if tx.send(()).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let start = Instant::now();
    settle(&mut rx, RELOAD_QUIET, RELOAD_QUIET_LIMIT)
        .await
        .unwrap();
    assert_eq!(start.elapsed(), RELOAD_QUIET_LIMIT);
    drop(rx);
    noisy.await.unwrap();
}

#[tokio::test]
async fn issue_13_who_uses_answers_from_the_cached_catalogs_secret_index() {
    let rig = Rig::new().await;
    let state = &rig.state;
    let path = SecretPath::parse(PASSWORD).unwrap();
    let cached = state.catalog(WEB1, &serde_json::json!({})).unwrap();
    assert!(cached.references(&path));
    assert_eq!(
        cached.index.watches.get(&path).map(|r| r.len()),
        Some(1),
        "{:?}",
        cached.index
    );

    let token = state.secrets.admin_token.expose_secret().to_owned();
    let response = router(state.clone())
        .oneshot(
            axum::http::Request::get(format!("/v1/admin/secrets/who-uses?path={PASSWORD}"))
                .header("authorization", format!("Bearer {token}"))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    let answer: vigo_proto::admin::WhoUses = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer.envoys.len(), 1, "{answer:?}");
    assert_eq!(answer.envoys[0].envoy, WEB1);
    assert_eq!(answer.envoys[0].uses, ["pw"]);
    assert_eq!(answer.envoys[0].watches, ["pw"]);
    // Answered from the entry already cached: nothing compiled again.
    assert!(Arc::ptr_eq(
        &cached,
        &state.catalog(WEB1, &serde_json::json!({})).unwrap()
    ));
}
