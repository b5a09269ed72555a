//! Crash-safe file operations for the local backend.
//!
//! Every write goes to a `.tmp-<random>` file in the target's folder
//! (created with `create_new`, mode 0600), is flushed to disk, renamed (or
//! linked) into place, and then the folder itself is flushed, so a crash at
//! any point leaves the old file or the new one, never a torn one. Folders
//! Vigo creates are 0700 at every level.
//!
//! No symbolic link below the secrets folder is ever followed (one could
//! lead a read or a write out of it): every level is checked with `lstat`
//! and the file itself is opened with `O_NOFOLLOW`. It is also opened with
//! `O_NONBLOCK` and checked with `fstat`, so a FIFO or device put where a
//! secret belongs is an error instead of a read that never returns.

use std::ffi::OsStr;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::format::{HEADER_LEN, Header};
use crate::{SecretError, SecretPath};

/// Names starting with this are temporary files, never secrets.
pub(super) const TEMP_PREFIX: &str = ".tmp-";
/// The advisory lock file at the top of the secrets folder.
pub(super) const LOCK_FILE: &str = ".lock";
/// Larger files are refused rather than read into memory.
const MAX_FILE_LEN: u64 = 64 * 1024 * 1024;

/// Whether `path` would collide with a temporary file or the lock file.
pub(super) fn is_reserved(path: &SecretPath) -> bool {
    path.as_str() == LOCK_FILE || path.segments().any(|s| s.starts_with(TEMP_PREFIX))
}

/// Splits a file path into its folder (`.` when it has none) and name.
pub(super) fn split_file_path(path: &Path) -> Result<(PathBuf, &OsStr), SecretError> {
    let name = path.file_name().ok_or_else(|| SecretError::Io {
        action: "writing",
        file: path.to_path_buf(),
        cause: io::Error::new(io::ErrorKind::InvalidInput, "the path does not name a file"),
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name))
}

/// Refuses a symbolic link at any level of `file` below `root` (the file
/// itself included). Levels that do not exist yet are fine.
pub(super) fn refuse_symlinks(root: &Path, file: &Path) -> Result<(), SecretError> {
    let Ok(relative) = file.strip_prefix(root) else {
        return Ok(());
    };
    let mut current = root.to_path_buf();
    for component in relative.components() {
        current.push(component);
        match fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(SecretError::Symlink { file: current });
            }
            Ok(_) => {}
            Err(e) if is_absent(&e) => return Ok(()),
            Err(e) => return Err(io_error("reading", &current, e)),
        }
    }
    Ok(())
}

/// Makes sure `dir` exists, creating each missing level with mode 0700.
/// Existing folders are left as they are.
pub(super) fn ensure_dir(dir: &Path) -> Result<(), SecretError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => {
            return Err(io_error(
                "creating folder",
                dir,
                io::Error::new(io::ErrorKind::AlreadyExists, "a file is in the way"),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("creating folder", dir, e)),
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        ensure_dir(parent)?;
    }
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {
            // The umask may have removed bits; set the mode exactly.
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| io_error("setting the mode of folder", dir, e))?;
            sync_dir(parent.unwrap_or(Path::new(".")))
        }
        // Another writer created it meanwhile.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(io_error("creating folder", dir, e)),
    }
}

/// Replaces (or creates) `target` with `bytes`, atomically.
pub(super) fn write_replace(target: &Path, bytes: &[u8]) -> Result<(), SecretError> {
    let (dir, _) = split_file_path(target)?;
    let temp = write_temp(&dir, bytes)?;
    if let Err(e) = fs::rename(&temp, target) {
        remove_quietly(&temp);
        return Err(io_error("replacing", target, e));
    }
    sync_dir(&dir)
}

/// Why [`write_new`] did not write.
#[derive(Debug)]
pub(super) enum WriteNewError {
    /// The target already exists; it was left untouched.
    Exists,
    /// Anything else.
    Other(SecretError),
}

/// Creates `dir/name` holding `bytes`, atomically, failing if it exists.
pub(super) fn write_new(dir: &Path, name: &OsStr, bytes: &[u8]) -> Result<(), WriteNewError> {
    let target = dir.join(name);
    let temp = write_temp(dir, bytes).map_err(WriteNewError::Other)?;
    // A hard link, unlike a rename, never replaces an existing file.
    let linked = fs::hard_link(&temp, &target);
    remove_quietly(&temp);
    match linked {
        Ok(()) => sync_dir(dir).map_err(WriteNewError::Other),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(WriteNewError::Exists),
        Err(e) => Err(WriteNewError::Other(io_error("creating", &target, e))),
    }
}

/// Writes `bytes` to a new temporary file in `dir`, flushed to disk.
fn write_temp(dir: &Path, bytes: &[u8]) -> Result<PathBuf, SecretError> {
    let mut random = [0u8; 8];
    aws_lc_rs::rand::fill(&mut random).map_err(|_| SecretError::Crypto {
        action: "naming a temporary file",
    })?;
    let temp = dir.join(format!("{TEMP_PREFIX}{}", hex::encode(random)));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .map_err(|e| io_error("creating", &temp, e))?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        remove_quietly(&temp);
        return Err(io_error("writing", &temp, e));
    }
    Ok(temp)
}

/// Removes `file` and flushes its folder; `Ok(false)` if it did not exist.
pub(super) fn remove(file: &Path) -> Result<bool, SecretError> {
    match fs::symlink_metadata(file) {
        Ok(m) if m.is_dir() => return Ok(false),
        Ok(_) => {}
        Err(e) if is_absent(&e) => return Ok(false),
        Err(e) => return Err(io_error("removing", file, e)),
    }
    match fs::remove_file(file) {
        Ok(()) => {}
        Err(e) if is_absent(&e) => return Ok(false),
        Err(e) => return Err(io_error("removing", file, e)),
    }
    let (dir, _) = split_file_path(file)?;
    sync_dir(&dir)?;
    Ok(true)
}

/// Flushes a folder's entries (a rename or unlink in it) to disk.
pub(super) fn sync_dir(dir: &Path) -> Result<(), SecretError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("flushing folder", dir, e))
}

/// Holds the exclusive write lock of a secrets folder until dropped.
#[derive(Debug)]
pub(super) struct WriteLock {
    _file: File,
}

/// Takes the exclusive lock on `secrets_dir/.lock`, waiting for any other
/// writer (in this process or another) to finish. Creates the folder if
/// needed.
pub(super) fn lock(secrets_dir: &Path) -> Result<WriteLock, SecretError> {
    ensure_dir(secrets_dir)?;
    let path = secrets_dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(&path)
        .map_err(|e| io_error("opening lock file", &path, e))?;
    file.lock().map_err(|e| io_error("locking", &path, e))?;
    Ok(WriteLock { _file: file })
}

/// Reads only the header of a secret file: its version, or `None` when no
/// secret file is there.
pub(super) fn read_header(file: &Path) -> Result<Option<Header>, SecretError> {
    let Some(mut handle) = open_secret_file(file)? else {
        return Ok(None);
    };
    let len = handle
        .metadata()
        .map_err(|e| io_error("reading", file, e))?
        .len();
    let mut header = [0u8; HEADER_LEN];
    let mut filled = 0;
    while filled < HEADER_LEN {
        match handle.read(&mut header[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error("reading", file, e)),
        }
    }
    Header::parse(&header[..filled], len, file).map(Some)
}

/// Reads a whole secret file, or `None` when no secret file is there.
pub(super) fn read_whole(file: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, SecretError> {
    let Some(handle) = open_secret_file(file)? else {
        return Ok(None);
    };
    let len = handle
        .metadata()
        .map_err(|e| io_error("reading", file, e))?
        .len();
    if len > MAX_FILE_LEN {
        return Err(SecretError::Format {
            file: file.to_path_buf(),
            reason: format!(
                "the file is {len} bytes long, larger than any secret file Vigo writes"
            ),
        });
    }
    // Decryption happens in this buffer, so it is zeroized when dropped. The
    // capacity covers the whole file plus one byte for the end-of-file probe,
    // so reading never reallocates.
    let capacity = usize::try_from(len).unwrap_or(0).saturating_add(1);
    let mut bytes = Zeroizing::new(Vec::with_capacity(capacity));
    handle
        .take(MAX_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error("reading", file, e))?;
    Ok(Some(bytes))
}

/// Opens a regular file; `None` if nothing, or a folder, is at `file`. A
/// symbolic link or any other kind of file there is an error; opening never
/// blocks (a FIFO with no writer).
fn open_secret_file(file: &Path) -> Result<Option<File>, SecretError> {
    let handle = match OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(file)
    {
        Ok(h) => h,
        Err(e) if is_absent(&e) => return Ok(None),
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(SecretError::Symlink {
                file: file.to_path_buf(),
            });
        }
        Err(e) => return Err(io_error("reading", file, e)),
    };
    let file_type = handle
        .metadata()
        .map_err(|e| io_error("reading", file, e))?
        .file_type();
    if file_type.is_dir() {
        return Ok(None);
    }
    if !file_type.is_file() {
        let kind = if file_type.is_fifo() {
            "FIFO"
        } else if file_type.is_socket() {
            "socket"
        } else {
            "device"
        };
        return Err(SecretError::NotRegular {
            file: file.to_path_buf(),
            kind,
        });
    }
    Ok(Some(handle))
}

/// Every secret file under `secrets_dir`, as (path, file), in no particular
/// order. Temporary files, the lock file, symbolic links, and files whose
/// relative path is not a valid [`SecretPath`] are skipped. A missing
/// folder holds nothing.
pub(super) fn walk(secrets_dir: &Path) -> Result<Vec<(SecretPath, PathBuf)>, SecretError> {
    let mut found = Vec::new();
    walk_into(secrets_dir, "", &mut found)?;
    Ok(found)
}

fn walk_into(
    dir: &Path,
    relative: &str,
    found: &mut Vec<(SecretPath, PathBuf)>,
) -> Result<(), SecretError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if is_absent(&e) && relative.is_empty() => return Ok(()),
        Err(e) => return Err(io_error("listing folder", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_error("listing folder", dir, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.starts_with(TEMP_PREFIX) || (relative.is_empty() && name == LOCK_FILE) {
            continue;
        }
        let child = if relative.is_empty() {
            name
        } else {
            format!("{relative}/{name}")
        };
        // No valid path is longer, so nothing deeper can be a secret.
        if child.len() > crate::MAX_PATH_LEN {
            continue;
        }
        let file_type = entry
            .file_type()
            .map_err(|e| io_error("listing folder", dir, e))?;
        if file_type.is_dir() {
            walk_into(&entry.path(), &child, found)?;
        } else if file_type.is_file()
            && let Ok(path) = SecretPath::parse(&child)
        {
            found.push((path, entry.path()));
        }
    }
    Ok(())
}

fn remove_quietly(file: &Path) {
    // Best effort after a failure that is already being reported; a left
    // `.tmp-` file is skipped by every reader.
    let _ = fs::remove_file(file);
}

fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

fn io_error(action: &'static str, file: &Path, source: io::Error) -> SecretError {
    SecretError::Io {
        action,
        file: file.to_path_buf(),
        cause: source,
    }
}

#[cfg(test)]
mod tests {
    use vigo_test_support::mode;

    use super::*;

    #[test]
    fn ensure_dir_creates_every_level_0700() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("a/b/c");
        ensure_dir(&deep).unwrap();
        for d in ["a", "a/b", "a/b/c"] {
            assert_eq!(mode(&root.path().join(d)), 0o700, "{d}");
        }
        ensure_dir(&deep).unwrap();
    }

    #[test]
    fn ensure_dir_refuses_a_file_in_the_way() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("f"), b"x").unwrap();
        let err = ensure_dir(&root.path().join("f/g")).unwrap_err();
        assert!(err.to_string().starts_with("creating folder"), "{err}");
    }

    #[test]
    fn write_replace_is_0600_and_leaves_no_temp_file() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("s");
        write_replace(&target, b"one").unwrap();
        write_replace(&target, b"two").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"two");
        assert_eq!(mode(&target), 0o600);
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 1);
    }

    #[test]
    fn write_new_never_replaces() {
        let root = tempfile::tempdir().unwrap();
        write_new(root.path(), OsStr::new("k"), b"one").unwrap();
        assert!(matches!(
            write_new(root.path(), OsStr::new("k"), b"two"),
            Err(WriteNewError::Exists)
        ));
        assert_eq!(fs::read(root.path().join("k")).unwrap(), b"one");
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 1);
    }

    #[test]
    fn remove_reports_absence() {
        let root = tempfile::tempdir().unwrap();
        let f = root.path().join("x");
        assert!(!remove(&f).unwrap());
        fs::write(&f, b"x").unwrap();
        assert!(remove(&f).unwrap());
        assert!(!f.exists());
    }

    #[test]
    fn reserved_names() {
        let p = |s| SecretPath::parse(s).unwrap();
        assert!(is_reserved(&p(".lock")));
        assert!(is_reserved(&p("a/.tmp-x")));
        assert!(is_reserved(&p(".tmp-/b")));
        assert!(!is_reserved(&p("a/.lock")));
        assert!(!is_reserved(&p("a/tmp-x")));
    }

    #[test]
    fn walk_skips_what_is_not_a_secret() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir_all(r.join("vigo/db")).unwrap();
        fs::write(r.join("vigo/db/dsn"), b"x").unwrap();
        fs::write(r.join("vigo/db/.tmp-0011"), b"x").unwrap();
        fs::write(r.join(".lock"), b"").unwrap();
        fs::write(r.join("bad name"), b"x").unwrap();
        std::os::unix::fs::symlink(r.join("vigo/db/dsn"), r.join("link")).unwrap();
        let mut found: Vec<_> = walk(r)
            .unwrap()
            .into_iter()
            .map(|(p, _)| p.to_string())
            .collect();
        found.sort();
        assert_eq!(found, ["vigo/db/dsn"]);
        assert!(walk(&r.join("missing")).unwrap().is_empty());
    }
}
