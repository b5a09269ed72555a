//! Run history over the real binaries (docs/operations.md "Run history"):
//! `vigocli reports` lists an envoy's runs newest first, `--failed` keeps
//! the failed ones, `reports show ID` prints every resource's outcome with
//! the command's scrubbed output, `envoys list` shows the derived status
//! (`failed`, then `stale` once the envoy stops checking in), and a restart
//! prunes the history to `history.max_runs` per envoy. Each scenario runs on
//! the embedded database and, when `VIGO_TEST_POSTGRES` names a server, on
//! a fresh schema of it.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{
    BackendEnv as Env, Database, EnvoyHost, PATIENCE, TestDir, all_output, assert_contains, cli_ok,
};

const DB1: &str = "db1.example.com";
const CANARY: &str = "canary-issue16-7f3a9c";

#[test]
fn issue_16_reports_list_show_status_and_pruning_sqlite() {
    Env::prepare(Database::Sqlite, CANARY, write_repo, history_scenario);
}

#[test]
fn issue_16_reports_list_show_status_and_pruning_postgres() {
    Env::prepare(Database::Postgres, CANARY, write_repo, history_scenario);
}

/// db1 writes a file holding the secret and runs a command that fails,
/// printing to stderr (and trying to print the secret, which the envoy
/// scrubs).
fn write_repo(dir: &TestDir) {
    dir.write_repo(
        "envoys:\n  - match: \"db*.example.com\"\n    roles: [database]\n    vars:\n      db_password: \"secret:vigo/db/password\"\n",
        &[(
            "database",
            "resources:\n  - name: pg-config\n    type: file\n    target_path: {out}/db.conf\n    content: |\n      password = {{ .Vars.db_password }}\n  - name: migrate\n    type: exec\n    command: \"cat {out}/db.conf; echo migration failed >&2; exit 3\"\n    depends_on: [pg-config]\n",
        )],
    );
    // Short check-ins so staleness shows within the test; two runs kept.
    let config = std::fs::read_to_string(dir.config()).unwrap();
    std::fs::write(
        dir.config(),
        format!(
            "{config}checkin:\n  interval: \"1s\"\nhistory:\n  max_age: \"30d\"\n  max_runs: 2\n"
        ),
    )
    .unwrap();
}

fn json(dir: &TestDir, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    serde_json::from_str(&cli_ok(dir, &all)).unwrap()
}

/// The `envoys list --output json` state of db1.
fn db1_state(dir: &TestDir) -> String {
    json(dir, &["envoys", "list"])[0]["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn history_scenario(env: &Env) {
    let dir = &env.dir;
    let mut server = env.start();
    let token = cli_ok(dir, &["envoys", "token"]);
    let host = EnvoyHost::new(dir, DB1, Some(token.trim()));
    for _ in 0..3 {
        let run = host.run_once();
        assert!(
            !run.status.success(),
            "the exec must fail: {}",
            all_output(&run)
        );
    }

    // Three failed runs, newest first, in text and JSON.
    let listed = json(dir, &["reports", DB1]);
    let reports = listed.as_array().unwrap();
    assert_eq!(reports.len(), 3, "{listed}");
    let ids: Vec<i64> = reports.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "not newest first: {ids:?}"
    );
    let first = &reports[2];
    assert_eq!(first["envoy"], DB1);
    assert_eq!(first["status"], "failed");
    assert_eq!(
        (first["changed"].as_u64(), first["failed"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(first["duration_ms"].is_u64(), "{first}");
    assert_eq!(
        first["changed_resources"],
        serde_json::json!(["file[pg-config]"])
    );
    let text = cli_ok(dir, &["reports"]);
    let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "ID", "ENVOY", "FINISHED", "STATUS", "CHANGED", "FAILED", "DURATION"
        ]
    );
    let row = text
        .lines()
        .find(|l| l.starts_with(&format!("{} ", ids[0])))
        .unwrap_or_else(|| panic!("{text}"));
    assert_contains(row, DB1);
    assert_contains(row, "failed");
    assert_eq!(
        json(dir, &["reports", "--failed", "--since", "1h"])
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert!(
        json(dir, &["reports", "web9.example.com"])
            .as_array()
            .unwrap()
            .is_empty()
    );

    // One run in full: the exec's failure and its scrubbed stderr.
    let shown = cli_ok(dir, &["reports", "show", &ids[0].to_string()]);
    assert_contains(&shown, &format!("envoy:     {DB1}\n"));
    assert_contains(&shown, "status:    failed\n");
    assert_contains(&shown, "exec[migrate] failed (");
    assert_contains(&shown, "migration failed");
    let detail = json(dir, &["reports", "show", &ids[0].to_string()]);
    assert_eq!(detail["resources"].as_array().unwrap().len(), 2, "{detail}");
    let missing = dir.cli(&["reports", "show", "999999"]);
    assert!(!missing.status.success());
    assert_contains(&all_output(&missing), "no report 999999");

    // Derived status: failed while it checks in, stale once it stops.
    assert_eq!(db1_state(dir), "failed");
    let listed = cli_ok(dir, &["envoys", "list"]);
    let row = listed.lines().find(|l| l.starts_with(DB1)).unwrap();
    assert_eq!(row.split_whitespace().nth(1), Some("failed"), "{listed}");
    let deadline = Instant::now() + PATIENCE;
    while db1_state(dir) != "stale" {
        assert!(Instant::now() < deadline, "db1 never went stale");
        std::thread::sleep(Duration::from_millis(200));
    }

    // A restart prunes to the newest two runs.
    server.terminate();
    let mut server = env.start();
    assert!(
        server.wait_for_log("run history pruned"),
        "{}",
        server.log()
    );
    let left: Vec<i64> = json(dir, &["reports"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(left, ids[..2], "pruning kept the wrong runs");

    // The secret is in no answer and no log line.
    for text in [
        cli_ok(dir, &["reports"]),
        shown,
        detail.to_string(),
        cli_ok(dir, &["envoys", "list", "--output", "json"]),
    ] {
        assert!(!text.contains(CANARY), "the secret leaked:\n{text}");
    }
    server.terminate();
    assert!(!server.log().contains(CANARY));
}
