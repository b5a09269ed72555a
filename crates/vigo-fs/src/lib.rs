//! Crash-safe file replacement, shared by every Vigo crate that writes a
//! file that matters (the envoy's files and state, its key and certificate,
//! the server's exported CA certificate, the isopass stand-in's data).
//!
//! A file is never written in place: the bytes go to a new temporary file
//! in the same folder, created 0600 so a secret is never readable by others
//! even for an instant; it is synced, given its final attributes, renamed
//! over the target, and the folder is synced. A crash leaves the old or the
//! new file, never a torn one, and a failed write removes its temporary
//! file.
//!
//! (The local secrets backend keeps its own variant: it also creates files
//! that must not exist yet, under a folder lock, with temporary names its
//! watcher knows.)

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Replaces `target` with `contents`, mode `mode`.
pub fn replace_file(target: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    replace_file_with(target, contents, |file| {
        file.set_permissions(fs::Permissions::from_mode(mode))
    })
}

/// Replaces `target` with `contents`; `finish` gives the synced temporary
/// file its final attributes (mode, owner) before the rename.
pub fn replace_file_with(
    target: &Path,
    contents: &[u8],
    finish: impl FnOnce(&File) -> io::Result<()>,
) -> io::Result<()> {
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let temp = dir.join(temp_name(target));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        finish(&file)?;
        drop(file);
        fs::rename(&temp, target)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written?;
    sync_dir(dir)
}

/// Flushes a folder's entries (a rename or an unlink is durable only after
/// this).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// `.<name>.vigo-<pid>-<n>`: unique per process and call, so concurrent
/// writers never share a temporary file (`create_new` refuses a clash).
fn temp_name(target: &Path) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(
        ".{name}.vigo-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(file: &Path) -> u32 {
        fs::metadata(file).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn replaces_the_file_with_its_mode_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.crt");
        replace_file(&file, b"one", 0o644).unwrap();
        replace_file(&file, b"two", 0o640).unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"two");
        assert_eq!(mode(&file), 0o640);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_finish_keeps_the_old_file_and_removes_the_temporary_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state");
        replace_file(&file, b"old", 0o600).unwrap();
        let err =
            replace_file_with(&file, b"new", |_| Err(io::Error::other("refused"))).unwrap_err();
        assert_eq!(err.to_string(), "refused");
        assert_eq!(fs::read(&file).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_missing_folder_is_an_error_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("absent").join("file");
        assert!(replace_file(&file, b"x", 0o600).is_err());
        assert!(!dir.path().join("absent").exists());
    }
}
