//! Who owns what Vigo writes: owner and group names to numeric ids (and
//! back for messages), the owner a file or directory gets when the resource
//! names none (the envoy's own effective user and group, never whoever
//! owned what was at the path before), setting owner and mode without
//! following a symlink swapped in, and the check that keeps secret-bearing
//! files out of folders other users can write to.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::unistd::{Gid, Group, Uid, User, fchown};

use crate::providers::ProviderError;

/// The uid of `name` (a user name, or a number).
pub(crate) fn user_id(name: &str) -> Result<Uid, ProviderError> {
    account_id("user", name, Uid::from_raw, |n| {
        Ok(User::from_name(n)?.map(|user| user.uid))
    })
}

/// The gid of `name` (a group name, or a number).
pub(crate) fn group_id(name: &str) -> Result<Gid, ProviderError> {
    account_id("group", name, Gid::from_raw, |n| {
        Ok(Group::from_name(n)?.map(|group| group.gid))
    })
}

/// The id of the `kind` ("user", "group") account `name`: a number is taken
/// as it is, a name is looked up with `lookup`.
fn account_id<T>(
    kind: &'static str,
    name: &str,
    from_raw: fn(u32) -> T,
    lookup: impl FnOnce(&str) -> nix::Result<Option<T>>,
) -> Result<T, ProviderError> {
    if let Ok(id) = name.parse::<u32>() {
        return Ok(from_raw(id));
    }
    match lookup(name) {
        Ok(Some(id)) => Ok(id),
        Ok(None) => Err(ProviderError::NoSuchAccount {
            kind,
            name: name.to_owned(),
        }),
        Err(source) => Err(ProviderError::lookup(kind, name)(source)),
    }
}

/// The owner a resource asks for (`owner`), else the envoy's effective user.
pub(crate) fn owner_or_self(owner: Option<&str>) -> Result<Uid, ProviderError> {
    owner.map_or_else(|| Ok(nix::unistd::geteuid()), user_id)
}

/// The group a resource asks for (`group`), else the envoy's effective
/// group.
pub(crate) fn group_or_self(group: Option<&str>) -> Result<Gid, ProviderError> {
    group.map_or_else(|| Ok(nix::unistd::getegid()), group_id)
}

/// Changes owner and group (where `Some`) and then the mode of the entry at
/// `path`, which `meta` described. The entry is opened without following a
/// symlink and checked to be the same inode, so a symlink or another file
/// put there in the meantime (in a folder others can write to) is never
/// changed instead.
pub(crate) fn set_attributes(
    path: &Path,
    meta: &Metadata,
    uid: Option<Uid>,
    gid: Option<Gid>,
    mode: u32,
) -> Result<(), ProviderError> {
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits())
        .open(path);
    let file: File = match opened {
        Ok(file) => file,
        // An envoy that is not root may own a file it cannot read: then
        // only its own files are at stake, and the path calls do.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return set_attributes_by_path(path, uid, gid, mode);
        }
        Err(e) => return Err(ProviderError::io("opening", path)(e)),
    };
    let now = file
        .metadata()
        .map_err(ProviderError::io("reading", path))?;
    if now.dev() != meta.dev() || now.ino() != meta.ino() {
        return Err(ProviderError::refused(format!(
            "{} was replaced while Vigo was changing it; check who else writes there, then apply again",
            path.display()
        )));
    }
    if uid.is_some() || gid.is_some() {
        fchown(&file, uid, gid).map_err(ProviderError::sys("changing owner of", path))?;
    }
    // After chown: chown clears set-id bits, so the mode goes last.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(ProviderError::io("changing mode of", path))
}

fn set_attributes_by_path(
    path: &Path,
    uid: Option<Uid>,
    gid: Option<Gid>,
    mode: u32,
) -> Result<(), ProviderError> {
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::lchown(path, uid.map(Uid::as_raw), gid.map(Gid::as_raw))
            .map_err(ProviderError::io("changing owner of", path))?;
    }
    let meta = fs::symlink_metadata(path).map_err(ProviderError::io("reading", path))?;
    if meta.file_type().is_symlink() {
        return Err(ProviderError::refused(format!(
            "{} was replaced by a symlink while Vigo was changing it; check who else writes there, then apply again",
            path.display()
        )));
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(ProviderError::io("changing mode of", path))
}

/// Refuses to put a secret-bearing `target`, owned by `owner`, in a folder
/// that users other than `owner` and root can write to, or that such a user
/// could replace: its folder must belong to root or `owner` and be writable
/// by neither group nor others (a sticky world-writable folder such as
/// `/tmp` still lets anyone create the name first); every folder above must
/// belong to root or `owner` and, where others can write to it, be sticky
/// (so they cannot rename what is below).
pub(crate) fn check_secret_folder(target: &Path, owner: Uid) -> Result<(), ProviderError> {
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("/"),
    };
    let real = fs::canonicalize(parent).map_err(ProviderError::io("resolving folder", parent))?;
    let refuse = |folder: &Path, why: String| {
        Err(ProviderError::refused(format!(
            "refusing to write secret-bearing {}: folder {} {why}; put the file in a folder that only root and its owner can write to, e.g. a folder of its own managed by a directory resource (mode 0755) listed in depends_on",
            target.display(),
            folder.display()
        )))
    };
    for folder in real.ancestors() {
        let meta =
            fs::symlink_metadata(folder).map_err(ProviderError::io("reading folder", folder))?;
        if meta.uid() != 0 && meta.uid() != owner.as_raw() {
            return refuse(folder, format!("belongs to user {}", user_name(meta.uid())));
        }
        let others_write = meta.mode() & 0o022 != 0;
        let sticky = meta.mode() & 0o1000 != 0;
        if others_write && (folder == real || !sticky) {
            return refuse(folder, writable_by(&meta));
        }
    }
    Ok(())
}

/// Who besides the owner can write to a folder, for a message.
fn writable_by(meta: &Metadata) -> String {
    let mode = meta.mode() & 0o7777;
    if mode & 0o002 != 0 {
        format!("is writable by every user (mode {mode:04o})")
    } else {
        format!(
            "is writable by group {} (mode {mode:04o})",
            group_name(meta.gid())
        )
    }
}

/// A user's name for messages, or its number.
pub(crate) fn user_name(uid: u32) -> String {
    match User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(user)) => user.name,
        _ => uid.to_string(),
    }
}

/// A group's name for messages, or its number.
pub(crate) fn group_name(gid: u32) -> String {
    match Group::from_gid(Gid::from_raw(gid)) {
        Ok(Some(group)) => group.name,
        _ => gid.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_resolve() {
        assert_eq!(user_id("0").unwrap(), Uid::from_raw(0));
        assert_eq!(user_id("root").unwrap(), Uid::from_raw(0));
        assert_eq!(group_id("0").unwrap(), Gid::from_raw(0));
        assert_eq!(user_name(0), "root");
        let err = user_id("no-such-user-vigo").unwrap_err().to_string();
        assert!(err.contains("'no-such-user-vigo' does not exist"), "{err}");
    }
}
