//! Records the git commit the binaries are built from, for `--version`
//! (`vigosrv 0.1.0 (commit 1a2b3c4)`).
//!
//! `VIGO_GIT_COMMIT` in the build environment wins (a packager building from
//! a tarball can name the commit); otherwise `git rev-parse --short HEAD`;
//! otherwise `unknown`. A build never fails for lack of git or a `.git`.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=VIGO_GIT_COMMIT");
    let commit = std::env::var("VIGO_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=VIGO_GIT_COMMIT={}", commit.trim());
}

/// The short hash of HEAD, and the files whose change means a new commit.
fn git_commit() -> Option<String> {
    let git_dir = run_git(&["rev-parse", "--git-dir"])?;
    let git_dir = Path::new(&git_dir);
    // Only files that exist: cargo reruns every build for a missing one.
    for file in ["HEAD", "packed-refs"] {
        rerun_if_exists(&git_dir.join(file));
    }
    if let Some(head_ref) = run_git(&["symbolic-ref", "-q", "HEAD"]) {
        rerun_if_exists(&git_dir.join(head_ref));
    }
    run_git(&["rev-parse", "--short", "HEAD"])
}

fn rerun_if_exists(path: &Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

fn run_git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}
