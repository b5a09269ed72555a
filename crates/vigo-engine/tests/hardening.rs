//! Who owns what the engine writes, where it refuses to put a secret, what
//! an interrupted write leaves behind, and stopping an apply midway.
//!
//! Every test works in a "shared" folder made sticky and world-writable
//! (mode 1777, like /tmp) inside its own temporary folder. Tests that hand a
//! file to another user (`nobody`, uid 65534) need root and say so when they
//! are skipped.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vigo_catalog::Catalog;
use vigo_engine::{ApplyOptions, Engine, Report, SECRET_FILE_DIR, Status};
use vigo_test_support::process_gone;

/// `nobody`: the "other user" of these tests.
const NOBODY: u32 = 65534;
const CANARY: &str = "canary-h4rd3n1ng-7731";

struct Host {
    dir: tempfile::TempDir,
}

impl Host {
    fn new() -> Self {
        let host = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        fs::create_dir(host.shared()).unwrap();
        fs::set_permissions(host.shared(), fs::Permissions::from_mode(0o1777)).unwrap();
        host
    }

    /// The sticky world-writable folder.
    fn shared(&self) -> PathBuf {
        self.dir.path().join("shared")
    }

    fn p(&self, name: &str) -> String {
        self.shared().join(name).to_str().unwrap().to_owned()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("envoy-data")
    }

    fn engine(&self) -> Engine {
        Engine::new(&self.data_dir()).unwrap()
    }

    async fn apply(&self, catalog: &Catalog) -> Report {
        self.engine().apply(catalog, ApplyOptions::default()).await
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Makes `path` belong to `nobody`, as if that user had created it.
fn give_to_nobody(path: &Path) {
    std::os::unix::fs::lchown(path, Some(NOBODY), Some(NOBODY)).unwrap();
}

fn own_ids() -> (u32, u32) {
    (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    )
}

fn catalog(resources: Value) -> Catalog {
    serde_json::from_value(json!({
        "envoy": "test1",
        "resources": resources,
        "secrets": {"app/pw": {"version": 1, "value": CANARY}},
    }))
    .unwrap()
}

fn plain_file(name: &str, path: &str, content: &str) -> Value {
    json!({"name": name, "type": "file", "target_path": path,
           "content": [{"text": content}], "mode": "0644"})
}

fn secret_file(name: &str, path: &str) -> Value {
    json!({"name": name, "type": "file", "target_path": path,
           "content": [{"text": "password = "}, {"secret": "app/pw"}], "mode": "0600"})
}

fn directory(name: &str, path: &str, mode: &str) -> Value {
    json!({"name": name, "type": "directory", "target_path": path, "mode": mode})
}

fn result<'a>(report: &'a Report, name: &str) -> &'a vigo_engine::ResourceResult {
    report.resources.iter().find(|r| r.name == name).unwrap()
}

fn owner(path: &str) -> (u32, u32) {
    let meta = fs::symlink_metadata(path).unwrap();
    (meta.uid(), meta.gid())
}

#[tokio::test]
async fn issue_12_item_6_a_file_someone_created_first_becomes_the_envoys() {
    if !is_root() {
        eprintln!("skipped: needs root to create files as another user");
        return;
    }
    let host = Host::new();
    let target = host.p("motd");
    // `nobody` creates the name first, with the content Vigo will want and
    // with other content: either way the result must not stay theirs.
    fs::write(&target, "hello\n").unwrap();
    give_to_nobody(Path::new(&target));
    let other = host.p("other");
    fs::write(&other, "theirs\n").unwrap();
    give_to_nobody(Path::new(&other));

    let report = host
        .apply(&catalog(json!([
            plain_file("motd", &target, "hello\n"),
            plain_file("other", &other, "ours\n"),
        ])))
        .await;
    assert_eq!(result(&report, "motd").status, Status::Changed);
    assert_eq!(owner(&target), own_ids());
    assert_eq!(owner(&other), own_ids());
    assert_eq!(fs::read_to_string(&other).unwrap(), "ours\n");
    assert!(
        result(&report, "motd").message.contains("set owner of")
            && result(&report, "motd").message.contains("(was nobody)"),
        "{}",
        result(&report, "motd").message
    );
}

#[tokio::test]
async fn an_explicit_owner_survives_a_rewrite() {
    if !is_root() {
        eprintln!("skipped: needs root to give files to another user");
        return;
    }
    let host = Host::new();
    let target = host.p("app.conf");
    let mut resource = plain_file("conf", &target, "v=1\n");
    resource["owner"] = json!(NOBODY.to_string());
    resource["group"] = json!(NOBODY.to_string());
    host.apply(&catalog(json!([resource.clone()]))).await;
    assert_eq!(owner(&target), (NOBODY, NOBODY));
    resource["content"] = json!([{"text": "v=2\n"}]);
    let report = host.apply(&catalog(json!([resource]))).await;
    assert_eq!(result(&report, "conf").status, Status::Changed);
    assert_eq!(fs::read_to_string(&target).unwrap(), "v=2\n");
    assert_eq!(owner(&target), (NOBODY, NOBODY));
}

#[tokio::test]
async fn issue_12_item_6_a_secret_file_is_refused_in_a_folder_others_can_write() {
    let host = Host::new();
    let target = host.p("app.conf");
    let report = host
        .apply(&catalog(json!([secret_file("app", &target)])))
        .await;
    let app = result(&report, "app");
    assert_eq!(app.status, Status::Failed);
    assert_eq!(
        app.message,
        format!(
            "refusing to write secret-bearing {target}: folder {} is writable by every user (mode 1777); \
             put the file in a folder that only root and its owner can write to, e.g. a folder of its own \
             managed by a directory resource (mode 0755) listed in depends_on",
            host.shared().display()
        )
    );
    assert!(!Path::new(&target).exists());

    // A group-writable folder is refused too.
    let team = host.shared().join("team");
    fs::create_dir(&team).unwrap();
    fs::set_permissions(&team, fs::Permissions::from_mode(0o770)).unwrap();
    let in_team = team.join("app.conf");
    let report = host
        .apply(&catalog(json!([secret_file(
            "app",
            in_team.to_str().unwrap()
        )])))
        .await;
    let message = &result(&report, "app").message;
    assert!(
        message.contains(&format!("folder {} is writable by group", team.display()))
            && message.contains("(mode 0770)"),
        "{message}"
    );
    assert!(!in_team.exists());
}

#[tokio::test]
async fn issue_12_item_6_a_secret_file_nobody_created_first_is_neither_read_by_nor_left_to_them() {
    if !is_root() {
        eprintln!("skipped: needs root to create files as another user");
        return;
    }
    let host = Host::new();
    let target = host.p("app.conf");
    fs::write(&target, "").unwrap();
    give_to_nobody(Path::new(&target));
    let report = host
        .apply(&catalog(json!([secret_file("app", &target)])))
        .await;
    assert_eq!(result(&report, "app").status, Status::Failed);
    // Untouched: still empty, the secret never went into it.
    assert_eq!(fs::read_to_string(&target).unwrap(), "");

    // A folder that belongs to nobody is refused: they could swap the file.
    let theirs = host.shared().join("theirs");
    fs::create_dir(&theirs).unwrap();
    give_to_nobody(&theirs);
    let in_theirs = theirs.join("app.conf");
    let report = host
        .apply(&catalog(json!([secret_file(
            "app",
            in_theirs.to_str().unwrap()
        )])))
        .await;
    let message = &result(&report, "app").message;
    assert!(
        message.contains(&format!(
            "folder {} belongs to user nobody",
            theirs.display()
        )),
        "{message}"
    );
    assert!(!in_theirs.exists());
}

#[tokio::test]
async fn issue_12_item_6_a_directory_never_keeps_a_foreign_owner_and_then_holds_the_secret() {
    if !is_root() {
        eprintln!("skipped: needs root to create folders as another user");
        return;
    }
    let host = Host::new();
    // The quickstart layout: a folder of its own under a /tmp-like folder,
    // which `nobody` created first, wide open.
    let folder = host.p("vigo-quickstart");
    fs::create_dir(&folder).unwrap();
    fs::set_permissions(&folder, fs::Permissions::from_mode(0o777)).unwrap();
    give_to_nobody(Path::new(&folder));
    let target = format!("{folder}/app.conf");
    let mut app = secret_file("app", &target);
    app["depends_on"] = json!(["dir"]);
    let report = host
        .apply(&catalog(json!([directory("dir", &folder, "0700"), app])))
        .await;
    assert_eq!(
        result(&report, "dir").status,
        Status::Changed,
        "{}",
        result(&report, "dir").message
    );
    assert_eq!(owner(&folder), own_ids());
    assert_eq!(
        fs::metadata(&folder).unwrap().mode() & 0o7777,
        0o700,
        "mode"
    );
    assert_eq!(
        result(&report, "app").status,
        Status::Changed,
        "{}",
        result(&report, "app").message
    );
    assert_eq!(owner(&target), own_ids());
    assert_eq!(fs::metadata(&target).unwrap().mode() & 0o7777, 0o600);
    assert_eq!(
        fs::read_to_string(&target).unwrap(),
        format!("password = {CANARY}")
    );

    // Asked for explicitly, another owner is kept.
    let given = host.p("given");
    let mut resource = directory("given", &given, "0755");
    resource["owner"] = json!("nobody");
    host.apply(&catalog(json!([resource]))).await;
    assert_eq!(owner(&given).0, NOBODY);
}

#[tokio::test]
async fn issue_12_item_8_a_stale_temporary_file_is_removed_before_the_next_write() {
    let host = Host::new();
    let folder = host.dir.path().join("etc");
    fs::create_dir(&folder).unwrap();
    let target = folder.join("app.conf");
    // What a SIGKILL between create and rename leaves: the secret in a 0600
    // temporary file named after the target.
    let stale = folder.join(".app.conf.vigo-4194300-0");
    fs::write(&stale, format!("password = {CANARY}")).unwrap();
    fs::set_permissions(&stale, fs::Permissions::from_mode(0o600)).unwrap();
    // The folder is swept once for every target in it; a write of a
    // process that still runs (pid 1 always does) is left alone.
    let other_target = folder.join(".other.conf.vigo-4194300-0");
    fs::write(&other_target, "x").unwrap();
    let in_progress = folder.join(".other.conf.vigo-1-0");
    fs::write(&in_progress, "x").unwrap();

    let report = host
        .apply(&catalog(json!([secret_file(
            "app",
            target.to_str().unwrap()
        )])))
        .await;
    assert_eq!(result(&report, "app").status, Status::Changed);
    assert!(!stale.exists(), "the stale temporary file is still there");
    assert!(!other_target.exists());
    let mut left: Vec<String> = fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, [".other.conf.vigo-1-0", "app.conf"]);
}

fn wait_for(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_item_7_cancel_kills_the_command_group_and_removes_the_secret_file() {
    let host = Host::new();
    let work = host.dir.path().join("work");
    fs::create_dir(&work).unwrap();
    let pid_file = work.join("sleep.pid");
    let marker = work.join("after");
    let command = format!(
        "test -s {{{{secret_file}}}} || exit 9; sleep 30 & echo $! > {}; wait",
        pid_file.display()
    );
    let resources = json!([
        {"name": "slow", "type": "exec", "command": command, "timeout_secs": 120,
         "secret_file": [{"secret": "app/pw"}]},
        {"name": "after", "type": "exec", "command": format!("touch {}", marker.display()),
         "timeout_secs": 30},
    ]);
    let catalog = catalog(resources);
    let mut engine = host.engine();
    let cancel = engine.cancel_handle();
    assert!(!cancel.is_cancelled() && !cancel.cut_short());
    let started = Instant::now();
    let applying = tokio::spawn(async move {
        let report = engine.apply(&catalog, ApplyOptions::default()).await;
        (engine, catalog, report)
    });

    let pid_path = pid_file.clone();
    tokio::task::spawn_blocking(move || {
        wait_for("the command to start", Duration::from_secs(20), || {
            fs::read_to_string(&pid_path).is_ok_and(|s| s.ends_with('\n'))
        });
    })
    .await
    .unwrap();
    let sleep_pid: i32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let secret_dir = host.data_dir().join(SECRET_FILE_DIR);
    assert_eq!(fs::read_dir(&secret_dir).unwrap().count(), 1);

    cancel.cancel();
    let (mut engine, catalog, report) = tokio::time::timeout(Duration::from_secs(20), applying)
        .await
        .expect("apply did not return after cancel")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(25));
    assert!(cancel.is_cancelled() && cancel.cut_short());
    let slow = result(&report, "slow");
    assert_eq!(slow.status, Status::Failed);
    assert_eq!(
        slow.message,
        "interrupted: the envoy was told to stop; the command's process group was killed"
    );
    let after = result(&report, "after");
    assert_eq!(after.status, Status::Failed);
    assert_eq!(after.message, "not applied: the envoy was told to stop");
    assert!(!marker.exists());
    wait_for(
        "the background sleep to die",
        Duration::from_secs(10),
        || process_gone(sleep_pid),
    );
    assert_eq!(
        fs::read_dir(&secret_dir).unwrap().count(),
        0,
        "a transient secret file was left behind"
    );

    // Stopping is for good: a later apply changes nothing.
    let again = engine.apply(&catalog, ApplyOptions::default()).await;
    assert!(again.resources.iter().all(|r| r.status == Status::Failed));
    assert!(!marker.exists());
}
