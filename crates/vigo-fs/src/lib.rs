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
//! A process killed between creating the temporary file and the rename
//! (SIGKILL, power loss) leaves it behind, possibly holding a secret:
//! [`remove_stale_temp_files`] removes those of one target before it is
//! written again, [`remove_stale_temp_files_in`] those of a whole folder.
//!
//! [`stage`], [`sync_all`], [`Staged::commit`] and [`sync_dirs`] split the
//! same replacement into steps, so that many files are flushed together.
//!
//! (The local secrets backend keeps its own variant: it also creates files
//! that must not exist yet, under a folder lock, with temporary names its
//! watcher knows.)

mod staged;

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub use staged::{Staged, folder, stage, sync_all, sync_dirs};

/// Replaces `target` with `contents`, mode `mode`.
pub fn replace_file(target: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    replace_file_with(target, contents, |file| {
        file.set_permissions(fs::Permissions::from_mode(mode))
    })
}

/// Replaces `target` with `contents`; `finish` gives the temporary file its
/// final attributes (mode, owner), then it is synced and renamed over the
/// target, and the folder is synced. To make many files durable together,
/// use [`stage`] and [`sync_all`] instead.
pub fn replace_file_with(
    target: &Path,
    contents: &[u8],
    finish: impl FnOnce(&File) -> io::Result<()>,
) -> io::Result<()> {
    let staged = stage(target, contents, finish)?;
    staged.sync()?;
    staged.commit()?;
    sync_dir(folder_of(target))
}

/// Removes the temporary files that an interrupted [`replace_file_with`] of
/// `target` left beside it: entries named exactly `.<name>.vigo-<pid>-<n>`
/// that are regular files (not symlinks) owned by this process's effective
/// user. Files of a process that still runs, this one included, are kept
/// (they may be writes in progress). Returns the paths removed.
pub fn remove_stale_temp_files(target: &Path) -> io::Result<Vec<PathBuf>> {
    let Some(name) = target.file_name() else {
        return Ok(Vec::new());
    };
    sweep(folder_of(target), |entry| temp_name_pid(name, entry))
}

/// Like [`remove_stale_temp_files`], for the temporary files of every
/// target in `dir` in one read of the folder: a writer of many files in one
/// folder sweeps it once instead of once per file.
pub fn remove_stale_temp_files_in(dir: &Path) -> io::Result<Vec<PathBuf>> {
    sweep(dir, any_temp_name_pid)
}

/// Removes the entries of `dir` whose name `pid_of` recognises as a
/// temporary file of a process that no longer runs, when they are regular
/// files this user owns; flushes the folder if it removed any.
fn sweep(dir: &Path, pid_of: impl Fn(&OsStr) -> Option<u32>) -> io::Result<Vec<PathBuf>> {
    let own_uid = nix::unistd::geteuid().as_raw();
    let own_pid = std::process::id();
    let mut removed = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Some(pid) = pid_of(&entry.file_name()) else {
            continue;
        };
        if pid == own_pid || running(pid) {
            continue;
        }
        let path = entry.path();
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if !meta.file_type().is_file() || meta.uid() != own_uid {
            continue;
        }
        match fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    if !removed.is_empty() {
        sync_dir(dir)?;
    }
    Ok(removed)
}

/// Whether a process `pid` runs (a write of its own may be in progress);
/// `EPERM` means it runs under another user.
fn running(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(errno) => errno == nix::errno::Errno::EPERM,
    }
}

/// The pid in `entry` if it is a temporary name of the target `name`
/// (`.<name>.vigo-<pid>-<n>`, both numbers plain decimal).
fn temp_name_pid(name: &OsStr, entry: &OsStr) -> Option<u32> {
    let rest = entry.as_bytes().strip_prefix(b".")?;
    temp_suffix_pid(rest.strip_prefix(name.as_bytes())?)
}

/// The pid in `entry` if it is a temporary name of any target.
fn any_temp_name_pid(entry: &OsStr) -> Option<u32> {
    let rest = entry.as_bytes().strip_prefix(b".")?;
    let at = rest.windows(6).rposition(|w| w == b".vigo-")?;
    if at == 0 {
        return None;
    }
    temp_suffix_pid(&rest[at..])
}

/// The pid of a temporary name's end, `.vigo-<pid>-<n>`.
fn temp_suffix_pid(suffix: &[u8]) -> Option<u32> {
    let rest = suffix.strip_prefix(b".vigo-")?;
    let dash = rest.iter().position(|&b| b == b'-')?;
    let (pid, n) = (&rest[..dash], &rest[dash + 1..]);
    let decimal = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    if !decimal(pid) || !decimal(n) {
        return None;
    }
    std::str::from_utf8(pid).ok()?.parse().ok()
}

/// The folder holding `target` (`.` for a bare name).
fn folder_of(target: &Path) -> &Path {
    match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Flushes a folder's entries (a rename or an unlink is durable only after
/// this).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// `.<name>.vigo-<pid>-<n>`: unique per process and call, so concurrent
/// writers never share a temporary file (`create_new` refuses a clash).
/// [`temp_name_pid`] recognises exactly these names.
fn temp_name(target: &Path) -> OsString {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut temp = OsString::from(".");
    temp.push(target.file_name().unwrap_or_default());
    temp.push(format!(
        ".vigo-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    temp
}

#[cfg(test)]
mod tests {
    use vigo_test_support::mode;

    use super::*;

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

    #[test]
    fn temporary_names_are_recognised_exactly() {
        let target = Path::new("/etc/app.conf");
        let temp = temp_name(target);
        let pid = temp_name_pid(OsStr::new("app.conf"), &temp);
        assert_eq!(pid, Some(std::process::id()));
        for other in [
            ".app.conf.vigo-12-",
            ".app.conf.vigo--3",
            ".app.conf.vigo-12-3x",
            ".app.conf.vigo-1 2-3",
            ".app.conf.bak.vigo-12-3",
            ".app.confx.vigo-12-3",
            "app.conf.vigo-12-3",
            ".other.vigo-12-3",
        ] {
            assert_eq!(
                temp_name_pid(OsStr::new("app.conf"), OsStr::new(other)),
                None,
                "{other}"
            );
        }
        assert_eq!(
            temp_name_pid(OsStr::new("app.conf"), OsStr::new(".app.conf.vigo-4242-7")),
            Some(4242)
        );
    }

    #[test]
    fn stale_temporary_files_of_the_target_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("app.conf");
        let stale = dir.path().join(".app.conf.vigo-999999999-0");
        let own = dir
            .path()
            .join(format!(".app.conf.vigo-{}-99", std::process::id()));
        let other_target = dir.path().join(".other.conf.vigo-999999999-0");
        let look_alike = dir.path().join(".app.conf.vigo-999999999-0.keep");
        let folder = dir.path().join(".app.conf.vigo-999999998-0");
        let link = dir.path().join(".app.conf.vigo-999999997-0");
        for file in [&stale, &own, &other_target, &look_alike] {
            fs::write(file, "secret").unwrap();
        }
        fs::create_dir(&folder).unwrap();
        std::os::unix::fs::symlink(&other_target, &link).unwrap();
        // Someone else's file with the name is not ours to remove (only
        // checkable when the test may change owners).
        let foreign = dir.path().join(".app.conf.vigo-999999996-0");
        let mut kept_files = vec![&own, &other_target, &look_alike, &folder, &link];
        if nix::unistd::geteuid().is_root() {
            fs::write(&foreign, "theirs").unwrap();
            std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
            kept_files.push(&foreign);
        }
        let removed = remove_stale_temp_files(&target).unwrap();
        assert_eq!(removed, vec![stale.clone()]);
        assert!(!stale.exists());
        for kept in kept_files {
            assert!(fs::symlink_metadata(kept).is_ok(), "{}", kept.display());
        }
        // A missing folder is nothing to clean.
        assert!(
            remove_stale_temp_files(&dir.path().join("absent/x"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_folder_sweep_removes_the_stale_temporary_files_of_every_target() {
        let dir = tempfile::tempdir().unwrap();
        let stale = [".a.conf.vigo-999999999-0", ".b.vigo-x.vigo-999999998-12"]
            .map(|name| dir.path().join(name));
        let kept = [
            format!(".a.conf.vigo-{}-3", std::process::id()),
            // pid 1 always runs: its write may be in progress.
            ".a.conf.vigo-1-0".to_owned(),
            ".a.conf.vigo-999999999-0.keep".to_owned(),
            "..vigo-999999999-0".to_owned(),
            "a.conf.vigo-999999999-0".to_owned(),
            "a.conf".to_owned(),
        ]
        .map(|name| dir.path().join(name));
        for file in stale.iter().chain(&kept) {
            fs::write(file, "secret").unwrap();
        }
        let mut removed = remove_stale_temp_files_in(dir.path()).unwrap();
        removed.sort();
        assert_eq!(removed, stale.to_vec());
        for file in &kept {
            assert!(file.exists(), "{}", file.display());
        }
        assert!(
            remove_stale_temp_files_in(&dir.path().join("absent"))
                .unwrap()
                .is_empty()
        );
    }
}
