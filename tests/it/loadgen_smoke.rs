//! The load generator's modes on a handful of envoys against a real
//! `vigosrv` (issue 14): `steady` and `burst` with every envoy holding a
//! wait, and `fanout`, where a rotation of a secret used by some of the
//! envoys must reach exactly those, each round. A smoke test: the figures
//! are benchmarks (docs/performance.md), only the counts are asserted.

use crate::support::{TestDir, cli_ok};

const ENVOYS: usize = 6;
const FANOUT: usize = 3;

fn rig() -> (TestDir, std::path::PathBuf) {
    let dir = TestDir::new();
    cli_ok(&dir, &["secrets", "bootstrap"]);
    cli_ok(&dir, &["secrets", "set", "load/fanout", "first"]);
    dir.write_repo(
        "envoys:\n  - match: \"fan-load-*.example.com\"\n    roles: [fan]\n    vars:\n      token: \"secret:load/fanout\"\n  - match: \"web-load-*.example.com\"\n    roles: [web]\n",
        &[
            (
                "fan",
                "resources:\n  - name: token\n    type: file\n    target_path: {out}/token\n    content: \"{{ .Vars.token }}\"\n    watch_secret: [\"load/fanout\"]\n",
            ),
            (
                "web",
                "resources:\n  - name: page\n    type: file\n    target_path: {out}/page\n    content: \"hello\"\n",
            ),
        ],
    );
    let token = cli_ok(&dir, &["secrets", "get", "vigo/server/admin_token"]);
    let token_file = dir.write("admin-token", token.trim());
    (dir, token_file)
}

fn loadgen(dir: &TestDir, token_file: &std::path::Path, extra: &[&str]) -> vigo_loadgen::Outcome {
    let mut args: Vec<String> = [
        "vigo-loadgen",
        "--server",
        &format!("https://localhost:{}", dir.port),
        "--ca",
        dir.ca_file().to_str().unwrap(),
        "--admin-token-file",
        token_file.to_str().unwrap(),
        "--cache-dir",
        dir.path().join("envoys").to_str().unwrap(),
        "--envoys",
        &ENVOYS.to_string(),
        "--fanout-envoys",
        &FANOUT.to_string(),
        "--concurrency",
        "4",
        "--hold-waits",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    vigo_loadgen::main_with_args(args).expect("the load generator runs")
}

#[test]
fn issue_14_loadgen_modes_hold_waits_and_time_a_fan_out() {
    let (dir, token_file) = rig();
    let server = dir.start_server(&[]);

    // Every envoy checks in about once a second for 3 s while holding a
    // wait; nothing changes, so every answer is "unchanged".
    let steady = loadgen(
        &dir,
        &token_file,
        &["--mode", "steady", "--interval", "1s", "--duration", "3s"],
    );
    assert!(steady.checkins >= 2 * ENVOYS, "{steady:?}");
    assert_eq!(
        (steady.not_unchanged, steady.failed, steady.wait_errors),
        (0, 0, 0),
        "{steady:?}"
    );

    // As fast as possible, the client sockets spread over two loopback
    // source addresses.
    let burst = loadgen(
        &dir,
        &token_file,
        &[
            "--mode",
            "burst",
            "--duration",
            "1s",
            "--source-addresses",
            "2",
        ],
    );
    assert!(burst.checkins > 0, "{burst:?}");
    assert_eq!((burst.not_unchanged, burst.failed), (0, 0), "{burst:?}");

    // Two rotations, each reaching the three fan-out envoys (and only
    // them) through their held waits.
    let vigocli = crate::support::bin("vigocli");
    let fanout = loadgen(
        &dir,
        &token_file,
        &[
            "--mode",
            "fanout",
            "--rounds",
            "2",
            "--server-config",
            dir.config().to_str().unwrap(),
            "--vigocli",
            vigocli.to_str().unwrap(),
        ],
    );
    assert_eq!(fanout.fanout_reached, vec![FANOUT, FANOUT], "{fanout:?}");
    assert_eq!(fanout.fanout_latencies.len(), 2 * FANOUT);
    assert_eq!((fanout.failed, fanout.wait_errors), (0, 0), "{fanout:?}");
    // Each fan-out envoy was woken once per round (nothing else was).
    assert_eq!(fanout.woken, 2 * FANOUT as u64, "{fanout:?}");
    // The triggers were reported applied: none left queued.
    let show = cli_ok(
        &dir,
        &[
            "envoys",
            "show",
            "fan-load-00000.example.com",
            "--output",
            "json",
        ],
    );
    let show: serde_json::Value = serde_json::from_str(&show).unwrap();
    assert_eq!(show["queued_triggers"], serde_json::json!([]), "{show}");
    drop(server);
}
