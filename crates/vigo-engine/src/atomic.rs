//! Crash-safe file replacement with owner and mode (on top of `vigo_fs`),
//! random names for transient files, and private folders.
//!
//! A file is never written in place: the new bytes go to a temporary file in
//! the same folder (created 0600, so a secret is never readable by others
//! even for an instant), which is synced, given its final mode and owner,
//! renamed over the target, and the folder is synced. A crash leaves the old
//! or the new file, never a torn one.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use nix::unistd::{Gid, Uid, fchown};

/// Final attributes of a written file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attributes {
    /// Permission bits.
    pub(crate) mode: u32,
    /// Owner to set, if any.
    pub(crate) uid: Option<Uid>,
    /// Group to set, if any.
    pub(crate) gid: Option<Gid>,
}

/// A random suffix for temporary names (not a secret; only uniqueness).
pub(crate) fn random_suffix() -> String {
    let mut bytes = [0u8; 8];
    // The system RNG failing leaves zeros; `create_new` still refuses to
    // reuse an existing name, so uniqueness is never silently lost.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    hex::encode(bytes)
}

/// Atomically replaces `target` with `contents` and the given attributes
/// (see `vigo_fs`), first removing the temporary files of `target` that a
/// killed envoy left behind (they may hold a secret).
pub(crate) fn write_file(target: &Path, contents: &[u8], attributes: Attributes) -> io::Result<()> {
    remove_stale_temp_files(target);
    vigo_fs::replace_file_with(target, contents, |file| set_attributes(file, attributes))
}

/// Like [`write_file`], but only staged: the flush and the rename are left
/// to the caller (a [`WriteBatch`](crate::batch::WriteBatch)).
pub(crate) fn stage_file(
    target: &Path,
    contents: &[u8],
    attributes: Attributes,
) -> io::Result<vigo_fs::Staged> {
    remove_stale_temp_files(target);
    vigo_fs::stage(target, contents, |file| set_attributes(file, attributes))
}

fn set_attributes(file: &fs::File, attributes: Attributes) -> io::Result<()> {
    if attributes.uid.is_some() || attributes.gid.is_some() {
        fchown(file, attributes.uid, attributes.gid).map_err(io::Error::from)?;
    }
    // After chown: chown clears set-id bits, so the mode goes last.
    file.set_permissions(fs::Permissions::from_mode(attributes.mode))
}

pub(crate) use vigo_fs::sync_dir;

/// Removes what interrupted writes left in the folder of `target`, once per
/// folder and process: a first converge of many files in one folder would
/// otherwise read the whole folder again for every file. Once swept, a
/// folder gets no stale files of an earlier process, and this process's
/// own temporary files are never stale while it runs. A failure is logged,
/// not fatal: the write itself says whether the folder works.
pub(crate) fn remove_stale_temp_files(target: &Path) {
    static SWEPT: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let first = SWEPT
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(dir.to_path_buf());
    if !first {
        return;
    }
    match vigo_fs::remove_stale_temp_files_in(dir) {
        Ok(removed) => {
            for path in removed {
                tracing::warn!(path = %path.display(), "removed a temporary file left by an interrupted write");
            }
        }
        Err(e) => {
            // Not swept after all: the next write tries again.
            SWEPT
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(dir);
            tracing::warn!(target = %target.display(), error = %e, "could not look for temporary files left by an interrupted write");
        }
    }
}

/// Creates `dir` (and parents) if missing and makes it mode 0700.
pub(crate) fn private_dir(dir: &Path) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let meta = fs::metadata(dir)?;
    if meta.permissions().mode() & 0o7777 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn replaces_a_file_with_mode_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("x.conf");
        fs::write(&target, "old").unwrap();
        let attributes = Attributes {
            mode: 0o640,
            uid: None,
            gid: None,
        };
        write_file(&target, b"new", attributes).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new");
        assert_eq!(fs::metadata(&target).unwrap().mode() & 0o7777, 0o640);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_missing_folder_is_an_error_without_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("missing/x.conf");
        let attributes = Attributes {
            mode: 0o644,
            uid: None,
            gid: None,
        };
        assert!(write_file(&target, b"x", attributes).is_err());
    }

    #[test]
    fn private_dir_tightens_mode() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs::create_dir(&data).unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&data).unwrap();
        assert_eq!(fs::metadata(&data).unwrap().mode() & 0o7777, 0o700);
    }
}
