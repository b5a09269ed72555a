//! Secret files belong to the owner of `secrets_dir`.
//!
//! The server reads its secret files as the user it runs as (`vigo` from the
//! package), and they are 0600. A file written by `vigocli secrets set` run
//! as root would be root's, and the server could not read it: so before
//! `set` or `bootstrap` writes, a CLI running as root takes the identity of
//! the owner of `secrets_dir` (of its nearest existing folder when it does
//! not exist yet), and every file and folder it creates is that user's. A
//! CLI running as a third user refuses, naming the command to run instead.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use nix::unistd::{Gid, Uid, User};
use vigo_config::{RawConfig, SecretsBackend};

/// With the local backend, makes this process act as the owner of the
/// store: a no-op when it runs as that user already; switches user and group
/// when it runs as root; refuses otherwise.
pub(crate) fn act_as_store_owner(raw: &RawConfig) -> anyhow::Result<()> {
    let SecretsBackend::Local { secrets_dir, .. } = &raw.secrets else {
        return Ok(());
    };
    let Some((folder, uid, gid)) = nearest_owner(secrets_dir) else {
        return Ok(());
    };
    let me = Uid::effective();
    if me == uid {
        return Ok(());
    }
    let owner = user_name(uid);
    if !me.is_root() {
        bail!(
            "{} belongs to {owner} and the server could not read a secret file written by {}: run this command as {owner} (sudo -u {owner} vigocli ...) or as root",
            folder.display(),
            user_name(me)
        );
    }
    become_user(uid, gid).with_context(|| {
        format!(
            "taking the identity of {owner}, the owner of {} (run this command as {owner}: sudo -u {owner} vigocli ...)",
            folder.display()
        )
    })?;
    tracing::debug!(user = %owner, folder = %folder.display(), "acting as the owner of the secrets folder");
    Ok(())
}

/// `secrets_dir` or its nearest existing ancestor, with its owner.
fn nearest_owner(secrets_dir: &Path) -> Option<(&Path, Uid, Gid)> {
    secrets_dir.ancestors().find_map(|folder| {
        let meta = std::fs::metadata(folder).ok()?;
        Some((folder, Uid::from_raw(meta.uid()), Gid::from_raw(meta.gid())))
    })
}

/// Drops root for `uid`/`gid` for the rest of the process: supplementary
/// groups first, then the group, then the user (after which the first two
/// could no longer change).
fn become_user(uid: Uid, gid: Gid) -> nix::Result<()> {
    nix::unistd::setgroups(&[gid])?;
    nix::unistd::setgid(gid)?;
    nix::unistd::setuid(uid)
}

fn user_name(uid: Uid) -> String {
    User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| format!("uid {uid}"), |u| u.name)
}
