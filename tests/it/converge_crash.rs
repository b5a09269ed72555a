//! A first converge of 1,000 files killed with SIGKILL at many moments —
//! after 1, 10, 100, 500 and all 1,000 files were staged (the last while
//! they are flushed), and after 1 and 500 were renamed into place: every target holds its old or its new complete content, and
//! the next run finishes the converge and leaves no temporary file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;
use vigo_test_support::Scratch;

use crate::support::{all_output, envoy_apply_command};

const FILES: usize = 1_000;

fn old_content(i: usize) -> String {
    format!("old-{i}\n")
}

fn new_content(i: usize) -> String {
    format!("setting_{i:04} = {:0200}\n", 0)
}

fn target(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("f{i}.conf"))
}

/// A folder of 1,000 files with their old content, and a catalog that
/// gives each its new content.
fn scenario(folder: &Scratch) -> (PathBuf, serde_json::Value) {
    let targets = folder.path("targets");
    std::fs::create_dir(&targets).unwrap();
    let resources: Vec<_> = (0..FILES)
        .map(|i| {
            std::fs::write(target(&targets, i), old_content(i)).unwrap();
            json!({
                "name": format!("file-{i}"),
                "type": "file",
                "target_path": target(&targets, i),
                "content": [{"text": new_content(i)}],
                "mode": "0644",
            })
        })
        .collect();
    (targets, json!({"envoy": "crash", "resources": resources}))
}

/// The length of every new content (old ones are shorter).
const NEW_LEN: u64 = 216;

/// What the folder holds: temporary files, and targets with new content
/// (told apart from old content by their length).
fn census(targets: &Path) -> (usize, usize) {
    let mut temporary = 0;
    let mut new = 0;
    for entry in std::fs::read_dir(targets).unwrap().flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            temporary += 1;
        } else if entry.metadata().is_ok_and(|m| m.len() == NEW_LEN) {
            new += 1;
        }
    }
    (temporary, new)
}

/// When to kill the converge.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// Once this many temporary files exist (staging, flushing).
    Staged(usize),
    /// Once this many targets hold their new content (renaming).
    Renamed(usize),
}

#[test]
fn issue_19_a_killed_converge_leaves_old_or_new_files_and_the_next_run_finishes() {
    let plans = [
        KillAt::Staged(1),
        KillAt::Staged(10),
        KillAt::Staged(100),
        KillAt::Staged(500),
        KillAt::Staged(FILES),
        KillAt::Renamed(1),
        KillAt::Renamed(500),
    ];
    let mut cut_mid_way = 0;
    let mut seen: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for plan in plans {
        let folder = Scratch::new();
        let (targets, catalog) = scenario(&folder);
        let mut child = envoy_apply_command(&folder, &catalog)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let deadline = started + Duration::from_secs(60);
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            let due = match plan {
                KillAt::Staged(n) => census(&targets).0 >= n,
                KillAt::Renamed(n) => census(&targets).1 >= n,
            };
            if due {
                kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{plan:?}: the converge never got there"
            );
        }
        child.wait().unwrap();

        // Every target: old or new complete content, never anything else.
        let at_kill = census(&targets);
        for i in 0..FILES {
            let got = std::fs::read_to_string(target(&targets, i)).unwrap();
            assert!(
                got == old_content(i) || got == new_content(i),
                "{plan:?}: f{i}.conf is torn: {got:?}"
            );
        }
        if at_kill.0 > 0 || (at_kill.1 > 0 && at_kill.1 < FILES) {
            cut_mid_way += 1;
        }
        seen.insert(format!("{plan:?}"), at_kill);

        // The next run finishes and cleans up.
        let out = envoy_apply_command(&folder, &catalog).output().unwrap();
        assert!(out.status.success(), "{plan:?}: {}", all_output(&out));
        assert_eq!(census(&targets), (0, FILES), "{plan:?}");
        for i in 0..FILES {
            assert_eq!(
                std::fs::read_to_string(target(&targets, i)).unwrap(),
                new_content(i)
            );
        }
    }
    eprintln!("temporary files and new targets at each kill: {seen:?}");
    // The kills landed inside converges, not only before or after them.
    assert!(
        cut_mid_way >= 3,
        "only {cut_mid_way} kills cut a converge short (temporary files, targets new): {seen:?}"
    );
}
