//! Replacements in two steps, so that many files can be made durable
//! together: [`stage`] writes the new bytes and attributes to a temporary
//! file beside the target; [`sync_all`] flushes a whole set of staged files
//! from a few threads at once (the file system commits their journal
//! entries together instead of one flush after another); [`Staged::commit`]
//! renames each over its target; [`sync_dirs`] then flushes every folder
//! touched, once each.
//!
//! The guarantee is the one of [`replace_file_with`](crate::replace_file_with):
//! a target holds its old or its new complete content, never a torn one,
//! because a file is renamed only after its own flush succeeded. A staged
//! file that is dropped without being committed is removed; one left by a
//! killed process is found by [`remove_stale_temp_files`](crate::remove_stale_temp_files).

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::{folder_of, sync_dir, temp_name};

/// The most threads [`sync_all`] and [`sync_dirs`] flush from.
const MAX_SYNC_THREADS: usize = 16;

/// New content for `target`, written to a temporary file beside it but
/// neither flushed nor in place yet.
#[derive(Debug)]
pub struct Staged {
    target: PathBuf,
    temp: PathBuf,
    file: Option<File>,
}

/// Writes `contents` to a new temporary file (created 0600) beside
/// `target`, then `finish` gives it its final attributes (mode, owner).
/// Nothing is flushed and the target is untouched; on an error the
/// temporary file is removed.
pub fn stage(
    target: &Path,
    contents: &[u8],
    finish: impl FnOnce(&File) -> io::Result<()>,
) -> io::Result<Staged> {
    let temp = folder_of(target).join(temp_name(target));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)?;
    // From here on, dropping `staged` removes the temporary file.
    let mut staged = Staged {
        target: target.to_path_buf(),
        temp,
        file: None,
    };
    file.write_all(contents)?;
    finish(&file)?;
    staged.file = Some(file);
    Ok(staged)
}

impl Staged {
    /// The file this replaces.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Flushes the temporary file's content and attributes to the disk.
    pub fn sync(&self) -> io::Result<()> {
        match &self.file {
            Some(file) => file.sync_all(),
            None => Ok(()),
        }
    }

    /// Renames the temporary file over the target. Call it only after
    /// [`sync`](Self::sync) (or [`sync_all`]) succeeded for this file; the
    /// rename is durable once the folder is flushed ([`sync_dirs`]).
    pub fn commit(mut self) -> io::Result<()> {
        drop(self.file.take());
        fs::rename(&self.temp, &self.target)?;
        // Renamed: nothing is left to remove on drop.
        self.temp = PathBuf::new();
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// Flushes every staged file, from up to 16 threads; the result of each, in
/// the order given.
pub fn sync_all(staged: &[Staged]) -> Vec<io::Result<()>> {
    in_parallel(staged, Staged::sync)
}

/// Flushes each folder once (folders of committed renames, typically);
/// the result of each, in order.
pub fn sync_dirs(dirs: &BTreeSet<PathBuf>) -> Vec<(PathBuf, io::Result<()>)> {
    let dirs: Vec<PathBuf> = dirs.iter().cloned().collect();
    let results = in_parallel(&dirs, |dir| sync_dir(dir));
    dirs.into_iter().zip(results).collect()
}

/// The folder a staged target lives in (what [`sync_dirs`] takes).
pub fn folder(target: &Path) -> PathBuf {
    folder_of(target).to_path_buf()
}

/// Runs `work` on every item from a few scoped threads (none for a single
/// item), keeping the order of the results.
fn in_parallel<T: Sync>(
    items: &[T],
    work: impl Fn(&T) -> io::Result<()> + Sync,
) -> Vec<io::Result<()>> {
    let threads = items.len().min(MAX_SYNC_THREADS);
    if threads <= 1 {
        return items.iter().map(&work).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(work).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| vec![Err(io::Error::other("a flush thread panicked"))])
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn staged_files_reach_their_targets_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let targets: Vec<PathBuf> = (0..40).map(|i| dir.path().join(format!("f{i}"))).collect();
        fs::write(&targets[0], "old").unwrap();
        let staged: Vec<Staged> = targets
            .iter()
            .map(|t| {
                stage(t, b"new", |f| {
                    f.set_permissions(fs::Permissions::from_mode(0o640))
                })
                .unwrap()
            })
            .collect();
        // Staged, flushed, not renamed: the old content stands.
        assert!(sync_all(&staged).iter().all(Result::is_ok));
        assert_eq!(fs::read(&targets[0]).unwrap(), b"old");
        assert!(!targets[1].exists());
        for s in staged {
            s.commit().unwrap();
        }
        let folders = BTreeSet::from([folder(&targets[0])]);
        assert!(sync_dirs(&folders).iter().all(|(_, r)| r.is_ok()));
        for t in &targets {
            assert_eq!(fs::read(t).unwrap(), b"new");
            assert_eq!(fs::metadata(t).unwrap().permissions().mode() & 0o777, 0o640);
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), targets.len());
    }

    #[test]
    fn a_dropped_or_failed_stage_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("app.conf");
        fs::write(&target, "old").unwrap();
        drop(stage(&target, b"new", |_| Ok(())).unwrap());
        let err = stage(&target, b"new", |_| Err(io::Error::other("refused"))).unwrap_err();
        assert_eq!(err.to_string(), "refused");
        assert_eq!(fs::read(&target).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn results_keep_the_order_of_the_items() {
        let items: Vec<usize> = (0..100).collect();
        let results = in_parallel(&items, |&i| {
            if i % 7 == 0 {
                Err(io::Error::other(i.to_string()))
            } else {
                Ok(())
            }
        });
        for (i, result) in results.iter().enumerate() {
            match result {
                Err(e) => assert_eq!(e.to_string(), i.to_string()),
                Ok(()) => assert_ne!(i % 7, 0),
            }
        }
    }
}
