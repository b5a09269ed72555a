//! Engine tests against the real filesystem and real processes, each in its
//! own temporary folder.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use vigo_catalog::{Catalog, Selection, Tag};
use vigo_engine::{ApplyOptions, Engine, Report, Status};
use vigo_test_support::{files_under, process_gone};

vigo_test_support::scratch_fixture!(
    /// A temporary folder with a data folder for the envoy and room for targets.
    Host
);

impl Host {
    fn data_dir(&self) -> PathBuf {
        self.path("envoy-data")
    }

    fn engine(&self) -> Engine {
        Engine::new(&self.data_dir()).unwrap()
    }

    async fn apply(&self, catalog: &Catalog) -> Report {
        self.engine().apply(catalog, ApplyOptions::default()).await
    }

    async fn noop(&self, catalog: &Catalog) -> Report {
        self.engine().apply(catalog, noop()).await
    }

    /// An engine that finds the stand-in tools of [`fake_tools`] first.
    fn engine_with_stand_ins(&self) -> Engine {
        self.engine().with_search_path(fake_tools(self))
    }
}

/// Options of a `--noop` run.
fn noop() -> ApplyOptions<'static> {
    ApplyOptions {
        noop: true,
        ..ApplyOptions::default()
    }
}

fn catalog(resources: Value) -> Catalog {
    catalog_with_secrets(resources, json!({}))
}

fn catalog_with_secrets(resources: Value, secrets: Value) -> Catalog {
    serde_json::from_value(json!({"envoy": "test1", "resources": resources, "secrets": secrets}))
        .unwrap()
}

fn exec(name: &str, command: &str) -> Value {
    json!({"name": name, "type": "exec", "command": command, "timeout_secs": 30})
}

fn file(name: &str, path: &str, content: &str, mode: &str) -> Value {
    json!({"name": name, "type": "file", "target_path": path, "content": [{"text": content}], "mode": mode})
}

fn status_of(report: &Report, name: &str) -> Status {
    report
        .resources
        .iter()
        .find(|r| r.name == name)
        .unwrap()
        .status
}

fn message_of<'a>(report: &'a Report, name: &str) -> &'a str {
    &report
        .resources
        .iter()
        .find(|r| r.name == name)
        .unwrap()
        .message
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().mode() & 0o7777
}

#[tokio::test]
async fn files_are_written_removed_and_a_second_run_changes_nothing() {
    let host = Host::new();
    fs::write(host.path("stale"), "old").unwrap();
    let c = catalog(json!([
        file("conf", &host.p("app.conf"), "key = value\n", "0640"),
        {"name": "gone", "type": "file", "target_path": host.p("stale"), "mode": "0644", "state": "absent"},
        {"name": "dir", "type": "directory", "target_path": host.p("a/b"), "mode": "0700"},
    ]));
    let first = host.apply(&c).await;
    assert_eq!(
        first.summary.to_string(),
        "3 resources: 3 changed, 0 failed, 0 skipped, 0 unchanged"
    );
    assert_eq!(
        fs::read_to_string(host.path("app.conf")).unwrap(),
        "key = value\n"
    );
    assert_eq!(mode(&host.path("app.conf")), 0o640);
    assert_eq!(mode(&host.path("a/b")), 0o700);
    assert!(!host.path("stale").exists());
    assert_eq!(
        message_of(&first, "conf"),
        format!("wrote {} (mode 0640)", host.p("app.conf"))
    );

    let second = host.apply(&c).await;
    assert_eq!(
        second.summary.to_string(),
        "3 resources: 0 changed, 0 failed, 0 skipped, 3 unchanged"
    );

    fs::write(host.path("app.conf"), "edited by hand\n").unwrap();
    let third = host.apply(&c).await;
    assert_eq!(status_of(&third, "conf"), Status::Changed);
    assert!(message_of(&third, "conf").contains("content changed"));
    assert_eq!(
        fs::read_to_string(host.path("app.conf")).unwrap(),
        "key = value\n"
    );
}

#[tokio::test]
async fn noop_reports_what_would_change_and_touches_nothing() {
    let host = Host::new();
    fs::write(host.path("existing"), "same").unwrap();
    fs::set_permissions(host.path("existing"), fs::Permissions::from_mode(0o644)).unwrap();
    let marker = host.p("ran");
    let c = catalog(json!([
        file("new", &host.p("new.conf"), "x", "0600"),
        file("existing", &host.p("existing"), "same", "0600"),
        exec("cmd", &format!("touch {marker}")),
    ]));
    let report = host.noop(&c).await;
    assert!(report.noop);
    assert_eq!(
        message_of(&report, "new"),
        format!("would create missing {} (mode 0600)", host.p("new.conf"))
    );
    assert_eq!(
        message_of(&report, "existing"),
        format!("would set mode 0600 on {} (was 0644)", host.p("existing"))
    );
    assert_eq!(
        message_of(&report, "cmd"),
        format!("would run `touch {marker}`")
    );
    assert_eq!(report.summary.changed, 3);
    assert!(!host.path("new.conf").exists());
    assert!(!host.path("ran").exists());
    assert_eq!(mode(&host.path("existing")), 0o644);
}

#[tokio::test]
async fn issue_16_a_large_deploy_reports_diffs_up_to_a_budget() {
    let host = Host::new();
    let old: String = (0..400).map(|i| format!("setting_{i} = old\n")).collect();
    let new: String = (0..400).map(|i| format!("setting_{i} = new\n")).collect();
    let files: Vec<Value> = (0..80)
        .map(|i| {
            let path = host.p(&format!("f{i}.conf"));
            fs::write(&path, &old).unwrap();
            file(&format!("f{i}"), &path, &new, "0644")
        })
        .collect();
    let report = host.apply(&catalog(Value::Array(files))).await;
    assert_eq!(report.summary.changed, 80);
    let diffs: Vec<&str> = report
        .resources
        .iter()
        .map(|r| r.diff.as_deref().expect("every rewrite has a diff line"))
        .collect();
    let left_out = "(diff not shown: this run's diffs passed 256 KiB)\n";
    assert!(diffs[0].contains("\n-setting_0 = old\n"), "{}", diffs[0]);
    let shown = diffs.iter().take_while(|d| **d != left_out).count();
    assert!(shown > 10 && shown < 80, "{shown} diffs shown");
    assert!(diffs[shown..].iter().all(|d| *d == left_out));
    let bytes: usize = diffs.iter().map(|d| d.len()).sum();
    assert!(bytes <= 256 * 1024, "{bytes} bytes of diffs");
    assert!(serde_json::to_vec(&report).unwrap().len() < 1024 * 1024);
}

#[tokio::test]
async fn stdin_text_reaches_the_command() {
    let host = Host::new();
    let out = host.p("stdin-copy");
    let mut r = exec("feed", &format!("cat > {out}"));
    r["stdin"] = json!([{"text": "user="}, {"secret": "app/pw"}, {"text": "\n"}]);
    let c = catalog_with_secrets(
        json!([r]),
        json!({"app/pw": {"version": 1, "value": "p4ss"}}),
    );
    let report = host.apply(&c).await;
    assert_eq!(
        status_of(&report, "feed"),
        Status::Changed,
        "{}",
        message_of(&report, "feed")
    );
    assert_eq!(fs::read_to_string(&out).unwrap(), "user=p4ss\n");
}

/// The command records the secret file's mode and path while it runs.
fn secret_file_exec(host: &Host, name: &str, tail: &str) -> Value {
    let record = host.p(&format!("{name}.seen"));
    let mut r = exec(
        name,
        &format!(
            "stat -c %a {{{{secret_file}}}} > {record}; echo {{{{secret_file}}}} >> {record}; cat {{{{secret_file}}}} >> {record}; {tail}"
        ),
    );
    r["secret_file"] = json!([{"secret": "app/token"}]);
    r["timeout_secs"] = json!(1);
    r
}

#[tokio::test]
async fn the_secret_file_is_private_while_running_and_gone_after_any_ending() {
    let host = Host::new();
    let c = catalog_with_secrets(
        json!([
            secret_file_exec(&host, "ok", "true"),
            secret_file_exec(&host, "fails", "exit 3"),
            secret_file_exec(&host, "hangs", "sleep 30"),
        ]),
        json!({"app/token": {"version": 1, "value": "tok-123"}}),
    );
    let report = host.apply(&c).await;
    assert_eq!(status_of(&report, "ok"), Status::Changed);
    assert_eq!(status_of(&report, "fails"), Status::Failed);
    assert_eq!(status_of(&report, "hangs"), Status::Failed);
    assert!(message_of(&report, "hangs").starts_with("timed out after 1s"));
    for name in ["ok", "fails", "hangs"] {
        let seen = fs::read_to_string(host.path(&format!("{name}.seen"))).unwrap();
        let lines: Vec<&str> = seen.lines().collect();
        assert_eq!(lines[0], "600", "{name}");
        let secret_path = Path::new(lines[1]);
        assert!(secret_path.starts_with(host.data_dir().join(vigo_engine::SECRET_FILE_DIR)));
        assert_eq!(lines[2], "tok-123");
        assert!(
            !secret_path.exists(),
            "{name}: {} still exists",
            secret_path.display()
        );
    }
    assert_eq!(
        mode(&host.data_dir().join(vigo_engine::SECRET_FILE_DIR)),
        0o700
    );
    assert_eq!(mode(&host.data_dir()), 0o700);
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group() {
    let host = Host::new();
    let pid_file = host.p("child.pid");
    let mut r = exec("hang", &format!("sleep 300 & echo $! > {pid_file}; wait"));
    r["timeout_secs"] = json!(1);
    let report = host.apply(&catalog(json!([r]))).await;
    assert_eq!(status_of(&report, "hang"), Status::Failed);
    let pid: i32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SIGKILL is delivered before killpg returns; give the kernel a moment
    // to tear the process down.
    let mut gone = false;
    for _ in 0..50 {
        if process_gone(pid) {
            gone = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(gone, "background child {pid} survived the timeout");
}

#[tokio::test]
async fn when_changed_runs_on_first_apply_refresh_and_trigger_only() {
    let host = Host::new();
    let log = host.p("runs.log");
    let conf = host.p("app.conf");
    let build = |content: &str, triggered: bool| {
        let mut f = file("conf", &conf, content, "0644");
        f["notify"] = json!(["reload"]);
        let mut e = exec("reload", &format!("echo run >> {log}"));
        e["when"] = json!("changed");
        if triggered {
            e["_secret_triggered"] = json!(true);
        }
        catalog(json!([f, e]))
    };
    let runs = || {
        fs::read_to_string(&log)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };

    let first = host.apply(&build("v1", false)).await;
    assert_eq!(status_of(&first, "reload"), Status::Changed);
    assert_eq!(runs(), 1);

    let second = host.apply(&build("v1", false)).await;
    assert_eq!(status_of(&second, "reload"), Status::Unchanged);
    assert_eq!(runs(), 1);

    let third = host.apply(&build("v2", false)).await;
    assert_eq!(status_of(&third, "reload"), Status::Changed);
    assert!(message_of(&third, "reload").contains("refresh from 'conf'"));
    assert_eq!(runs(), 2);

    let fourth = host.apply(&build("v2", true)).await;
    assert_eq!(status_of(&fourth, "reload"), Status::Changed);
    assert_eq!(fourth.secret_triggered_applied, vec!["reload".to_owned()]);
    assert_eq!(runs(), 3);

    // Noop after a change: says it would run, runs nothing.
    let noop = host.noop(&build("v3", false)).await;
    assert_eq!(
        message_of(&noop, "reload"),
        format!("would run `echo run >> {log}` (refresh from 'conf')")
    );
    assert!(noop.secret_triggered_applied.is_empty());
    assert_eq!(runs(), 3);
}

#[tokio::test]
async fn a_failure_skips_its_dependents_and_independent_branches_run() {
    let host = Host::new();
    let mut dependent = file("after", &host.p("after"), "x", "0644");
    dependent["depends_on"] = json!(["broken"]);
    let mut transitive = exec("later", &format!("touch {}", host.p("later")));
    transitive["depends_on"] = json!(["after"]);
    let mut notified = exec("notified", "true");
    notified["when"] = json!("changed");
    let mut broken = exec("broken", "echo nope >&2; exit 1");
    broken["notify"] = json!(["notified"]);
    let c = catalog(json!([
        broken,
        dependent,
        transitive,
        notified,
        file("independent", &host.p("independent"), "y", "0644"),
    ]));
    let report = host.apply(&c).await;
    assert_eq!(message_of(&report, "broken"), "exit status 1: nope");
    for name in ["after", "later", "notified"] {
        assert_eq!(status_of(&report, name), Status::Skipped, "{name}");
        assert_eq!(message_of(&report, name), "dependency 'broken' failed");
    }
    assert_eq!(status_of(&report, "independent"), Status::Changed);
    assert!(host.path("independent").exists());
    assert!(!host.path("after").exists() && !host.path("later").exists());
    assert_eq!(
        report.summary.to_string(),
        "5 resources: 1 changed, 1 failed, 3 skipped, 0 unchanged"
    );
}

/// Runs `catalog` with only what `selection` picks.
async fn apply_selected(host: &Host, catalog: &Catalog, selection: &Selection) -> Report {
    let only = selection.resolve(catalog).unwrap();
    host.engine()
        .apply(
            catalog,
            ApplyOptions {
                only: Some(&only),
                ..ApplyOptions::default()
            },
        )
        .await
}

#[tokio::test]
async fn issue_15_a_partial_run_applies_the_selection_and_its_dependencies_in_order() {
    let host = Host::new();
    let order = host.p("order.log");
    let step = |name: &str| exec(name, &format!("echo {name} >> {order}"));
    let mut top = step("top");
    top["tags"] = json!(["web"]);
    top["depends_on"] = json!(["mid"]);
    top["notify"] = json!(["restart"]);
    let mut mid = step("mid");
    mid["depends_on"] = json!(["base"]);
    let mut restart = step("restart");
    restart["when"] = json!("changed");
    let mut unrelated = file("unrelated", &host.p("unrelated"), "x", "0644");
    unrelated["tags"] = json!(["db"]);
    let mut once = step("once");
    once["when"] = json!("changed");
    // Declared top first: the order comes from the edges.
    let c = catalog(json!([top, unrelated, mid, step("base"), restart, once]));
    let lines = || fs::read_to_string(&order).unwrap_or_default();

    // `once` runs on its first apply only; the envoy state records that.
    let first = apply_selected(
        &host,
        &c,
        &Selection {
            resources: vec!["once".into()],
            ..Selection::default()
        },
    )
    .await;
    assert_eq!(
        first.summary.to_string(),
        "1 resources: 1 changed, 0 failed, 0 skipped, 0 unchanged"
    );
    assert_eq!(lines(), "once\n");

    let web = Selection {
        tags: vec![Tag::parse("web").unwrap()],
        ..Selection::default()
    };
    let report = apply_selected(&host, &c, &web).await;
    let applied: Vec<&str> = report.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(applied, ["base", "mid", "top"]);
    assert_eq!(
        report.summary.to_string(),
        "3 resources: 3 changed, 0 failed, 0 skipped, 0 unchanged"
    );
    // Not selected: not checked, not changed. `restart` is notified by
    // `top`, which changed, but is outside the selection.
    assert_eq!(lines(), "once\nbase\nmid\ntop\n");
    assert!(!host.path("unrelated").exists());

    // The partial run kept the record of `once`: a whole run does not run
    // it again.
    let whole = host.apply(&c).await;
    assert_eq!(status_of(&whole, "once"), Status::Unchanged);
    assert_eq!(status_of(&whole, "unrelated"), Status::Changed);
    assert_eq!(whole.summary.total, 6);
}

#[tokio::test]
async fn issue_15_a_failed_dependency_skips_the_selected_resource() {
    let host = Host::new();
    let mut tagged = file("conf", &host.p("conf"), "x", "0644");
    tagged["tags"] = json!(["app"]);
    tagged["depends_on"] = json!(["broken"]);
    let c = catalog(json!([
        exec("broken", "exit 3"),
        tagged,
        file("other", &host.p("other"), "y", "0644"),
    ]));
    let app = Selection {
        tags: vec![Tag::parse("app").unwrap()],
        ..Selection::default()
    };
    let report = apply_selected(&host, &c, &app).await;
    assert_eq!(status_of(&report, "broken"), Status::Failed);
    assert_eq!(status_of(&report, "conf"), Status::Skipped);
    assert_eq!(
        report.summary.to_string(),
        "2 resources: 0 changed, 1 failed, 1 skipped, 0 unchanged"
    );
    assert!(!host.path("other").exists() && !host.path("conf").exists());
}

#[tokio::test]
async fn a_cycle_fails_its_members_without_panicking() {
    let host = Host::new();
    let mut a = exec("a", "true");
    a["depends_on"] = json!(["b"]);
    let mut b = exec("b", "true");
    b["depends_on"] = json!(["a"]);
    let report = host.apply(&catalog(json!([a, b, exec("c", "true")]))).await;
    assert_eq!(status_of(&report, "a"), Status::Failed);
    assert!(message_of(&report, "b").contains("dependency cycle"));
    assert_eq!(status_of(&report, "c"), Status::Changed);
}

#[tokio::test]
async fn secret_values_appear_nowhere_in_reports_or_state() {
    const CANARY: &str = "canary-9c41e7d2-vigo";
    let host = Host::new();
    let mut leak = exec(
        "leak",
        "read v; echo \"out $v\"; echo \"err $v\" >&2; exit 1",
    );
    leak["stdin"] = json!([{"secret": "app/canary"}, {"text": "\n"}]);
    let mut conf = file("conf", &host.p("secret.conf"), "", "0600");
    conf["content"] = json!([{"text": "pw="}, {"secret": "app/canary"}]);
    conf["_secret_triggered"] = json!(true);
    let c = catalog_with_secrets(
        json!([conf, leak]),
        json!({"app/canary": {"version": 1, "value": CANARY}}),
    );
    let report = host.apply(&c).await;
    assert_eq!(status_of(&report, "leak"), Status::Failed);
    assert_eq!(report.secret_triggered_applied, vec!["conf".to_owned()]);
    let output = report.resources[1].output.as_ref().unwrap();
    assert_eq!(output.stdout, "out [REDACTED]\n");
    assert_eq!(output.stderr, "err [REDACTED]\n");
    assert_eq!(message_of(&report, "leak"), "exit status 1: err [REDACTED]");
    let json = serde_json::to_string(&report).unwrap();
    assert!(!json.contains(CANARY));
    assert!(!format!("{report:?}").contains(CANARY));
    // The target file holds it on purpose; the data folder must not.
    assert!(
        fs::read_to_string(host.path("secret.conf"))
            .unwrap()
            .contains(CANARY)
    );
    let mut checked = 0;
    for entry in files_under(&host.data_dir()) {
        let bytes = fs::read(&entry).unwrap();
        assert!(
            !bytes.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()),
            "{}",
            entry.display()
        );
        checked += 1;
    }
    assert!(checked >= 2, "state.json and state.key expected");
}

#[tokio::test]
async fn state_records_fingerprints_and_exec_success_without_plaintext() {
    let host = Host::new();
    let c = catalog(json!([
        file("conf", &host.p("f"), "plain-marker-text", "0644"),
        exec("once", "true")
    ]));
    host.apply(&c).await;
    let state: Value =
        serde_json::from_slice(&fs::read(host.data_dir().join("state.json")).unwrap()).unwrap();
    assert_eq!(state["resources"]["once"]["ran_successfully"], json!(true));
    assert_eq!(
        state["resources"]["conf"]["fingerprint"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    let raw = fs::read_to_string(host.data_dir().join("state.json")).unwrap();
    assert!(!raw.contains("plain-marker-text"));
    assert_eq!(mode(&host.data_dir().join("state.json")), 0o600);
    assert_eq!(mode(&host.data_dir().join("state.key")), 0o600);
}

// ---------------------------------------------------------------------------
// service and package: systemd and the package tools do not run in this test
// environment, so these tests put stand-in `systemctl`, `dpkg-query` and
// `apt-get` scripts on the engine's search path. They exercise the real
// provider logic (query first, act on differences, restart on refresh)
// against tools that keep their state in a file and log every call.
// ---------------------------------------------------------------------------

const FAKE_SYSTEMCTL: &str = r#"#!/bin/sh
state="$FAKE_DIR/units"; echo "systemctl $*" >> "$FAKE_DIR/calls"
verb=$1; unit=$2; touch "$state"
case $verb in
  is-active) grep -qx "active $unit" "$state" ;;
  is-enabled) grep -qx "enabled $unit" "$state" ;;
  start) echo "active $unit" >> "$state" ;;
  stop) grep -vx "active $unit" "$state" > "$state.new"; mv "$state.new" "$state" ;;
  enable) echo "enabled $unit" >> "$state" ;;
  disable) grep -vx "enabled $unit" "$state" > "$state.new"; mv "$state.new" "$state" ;;
  restart) grep -qx "active $unit" "$state" || echo "active $unit" >> "$state" ;;
  *) echo "unknown verb $verb" >&2; exit 2 ;;
esac
"#;

const FAKE_DPKG_QUERY: &str = r#"#!/bin/sh
echo "dpkg-query $*" >> "$FAKE_DIR/calls"
for last; do :; done
line=$(grep -E "^$last(=|\$)" "$FAKE_DIR/packages" 2>/dev/null | tail -n 1)
if [ -n "$line" ]; then v=${line#*=}; [ "$v" = "$line" ] && v=1.0-1; printf '%s install ok installed' "$v"; exit 0; fi
echo "dpkg-query: no packages found matching $last" >&2; exit 1
"#;

const FAKE_APT_GET: &str = r#"#!/bin/sh
echo "apt-get $* DEBIAN_FRONTEND=$DEBIAN_FRONTEND" >> "$FAKE_DIR/calls"
for last; do :; done
case $1 in
  install) echo "$last" >> "$FAKE_DIR/packages" ;;
  remove) grep -vx "$3" "$FAKE_DIR/packages" > "$FAKE_DIR/p.new"; mv "$FAKE_DIR/p.new" "$FAKE_DIR/packages" ;;
esac
"#;

/// A folder of stand-in tools; returns the search path to give the engine.
/// The scripts find their state folder through a path baked into a
/// wrapper, because the engine gives tools a minimal environment.
fn fake_tools(host: &Host) -> String {
    let bin = host.path("fake-bin");
    let state = host.path("fake-state");
    fs::create_dir_all(&bin).unwrap();
    fs::create_dir_all(&state).unwrap();
    for (name, script) in [
        ("systemctl", FAKE_SYSTEMCTL),
        ("dpkg-query", FAKE_DPKG_QUERY),
        ("apt-get", FAKE_APT_GET),
    ] {
        let with_dir = script.replacen("\n", &format!("\nFAKE_DIR={}\n", state.display()), 1);
        let path = bin.join(name);
        fs::write(&path, with_dir).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    format!("{}:/usr/bin:/bin", bin.display())
}

fn calls(host: &Host) -> Vec<String> {
    fs::read_to_string(host.path("fake-state/calls"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The stand-in `apt-get` calls made so far.
fn apt_calls(host: &Host) -> Vec<String> {
    calls(host)
        .into_iter()
        .filter(|c| c.starts_with("apt-get"))
        .collect()
}

#[tokio::test]
async fn service_provider_with_stand_in_systemctl_starts_enables_and_restarts_on_refresh() {
    let host = Host::new();
    let search_path = fake_tools(&host);
    let build = |content: &str| {
        let mut f = file("conf", &host.p("nginx.conf"), content, "0644");
        f["notify"] = json!(["nginx"]);
        catalog(
            json!([f, {"name": "nginx", "type": "service", "service": "nginx", "state": "running", "enabled": true}]),
        )
    };
    let apply = |c: Catalog, noop: bool| {
        let engine = Engine::new(&host.data_dir())
            .unwrap()
            .with_search_path(search_path.clone());
        async move {
            let mut engine = engine;
            engine
                .apply(
                    &c,
                    ApplyOptions {
                        noop,
                        ..ApplyOptions::default()
                    },
                )
                .await
        }
    };

    let noop = apply(build("v1"), true).await;
    assert_eq!(
        message_of(&noop, "nginx"),
        "would enable nginx; start nginx"
    );
    assert!(
        !calls(&host)
            .iter()
            .any(|c| c.contains("start") || c.contains("enable nginx"))
    );

    let first = apply(build("v1"), false).await;
    // Started in this run: the refresh from the new file needs no restart.
    assert_eq!(message_of(&first, "nginx"), "enabled nginx; started nginx");
    let second = apply(build("v1"), false).await;
    assert_eq!(status_of(&second, "nginx"), Status::Unchanged);
    let third = apply(build("v2"), false).await;
    assert_eq!(
        message_of(&third, "nginx"),
        "restarted nginx (refresh from 'conf')"
    );
    let acting: Vec<String> = calls(&host)
        .into_iter()
        .filter(|c| !c.contains(" is-"))
        .collect();
    assert_eq!(
        acting,
        [
            "systemctl enable nginx",
            "systemctl start nginx",
            "systemctl restart nginx"
        ]
    );
}

#[tokio::test]
async fn package_provider_with_stand_in_apt_installs_only_when_missing() {
    let host = Host::new();
    let build = |state: &str| {
        catalog(json!([{"name": "pg", "type": "package", "package": "postgresql", "state": state}]))
    };
    let mut engine = host.engine_with_stand_ins();

    let first = engine
        .apply(&build("present"), ApplyOptions::default())
        .await;
    assert_eq!(message_of(&first, "pg"), "installed postgresql (apt)");
    let second = engine
        .apply(&build("present"), ApplyOptions::default())
        .await;
    assert_eq!(status_of(&second, "pg"), Status::Unchanged);
    let noop = engine.apply(&build("absent"), noop()).await;
    assert_eq!(message_of(&noop, "pg"), "would remove postgresql (apt)");
    let removed = engine
        .apply(&build("absent"), ApplyOptions::default())
        .await;
    assert_eq!(message_of(&removed, "pg"), "removed postgresql (apt)");
    assert_eq!(
        apt_calls(&host),
        [
            "apt-get install -y postgresql DEBIAN_FRONTEND=noninteractive",
            "apt-get remove -y postgresql DEBIAN_FRONTEND=noninteractive"
        ]
    );
}

#[tokio::test]
async fn issue_15_package_version_is_installed_and_then_kept() {
    let host = Host::new();
    let build = |version: &str| {
        catalog(
            json!([{"name": "pg", "type": "package", "package": "postgresql", "version": version}]),
        )
    };
    let mut engine = host.engine_with_stand_ins();
    let first = engine
        .apply(&build("15.4-1"), ApplyOptions::default())
        .await;
    assert_eq!(
        message_of(&first, "pg"),
        "installed postgresql=15.4-1 (apt)"
    );
    let second = engine
        .apply(&build("15.4-1"), ApplyOptions::default())
        .await;
    assert_eq!(message_of(&second, "pg"), "postgresql 15.4-1 is installed");
    let noop = engine.apply(&build("15.2-1"), noop()).await;
    assert_eq!(
        message_of(&noop, "pg"),
        "would change postgresql from 15.4-1 to 15.2-1 (apt)"
    );
    assert_eq!(
        apt_calls(&host),
        ["apt-get install -y --allow-downgrades postgresql=15.4-1 DEBIAN_FRONTEND=noninteractive"]
    );
}

#[tokio::test]
async fn service_without_systemctl_on_the_path_fails_clearly() {
    let host = Host::new();
    let empty = host.path("empty-bin");
    fs::create_dir_all(&empty).unwrap();
    let mut engine = Engine::new(&host.data_dir())
        .unwrap()
        .with_search_path(empty.into_os_string());
    let c = catalog(
        json!([{"name": "svc", "type": "service", "service": "nginx", "state": "running"}]),
    );
    let report = engine.apply(&c, ApplyOptions::default()).await;
    assert_eq!(status_of(&report, "svc"), Status::Failed);
    assert!(message_of(&report, "svc").contains("systemctl was not found"));
}

#[test]
fn a_second_engine_on_the_same_data_folder_is_refused() {
    let host = Host::new();
    let first = host.engine();
    let err = Engine::new(&host.data_dir()).unwrap_err().to_string();
    assert!(err.contains("another vigoenvoy process is using"), "{err}");
    drop(first);
    assert!(Engine::new(&host.data_dir()).is_ok());
}
