//! What the three binaries' command lines share: the `--version` text and
//! the man pages the Debian packages install (`packaging/build-debs.sh`
//! writes them with each binary's hidden `manpages DIR`).
//!
//! Included by each binary with `#[path = "../shared/cli.rs"] mod cli;`
//! (a folder without `main.rs`, so Cargo does not take it for a binary).

use std::path::Path;

/// `--version`: the package version and the git commit built from
/// (`unknown` outside a git checkout; see build.rs).
pub(crate) const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("VIGO_GIT_COMMIT"),
    ")"
);

/// Writes the man page of `command` as `DIR/<name>.1`, and one page per
/// visible subcommand at any depth (`vigocli-secrets-set.1`), creating
/// `dir` when missing.
pub(crate) fn write_manpages(command: clap::Command, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(command, dir)
}
