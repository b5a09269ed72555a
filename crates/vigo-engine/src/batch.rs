//! File writes made durable together.
//!
//! A first converge writes many files, and flushing each one before the
//! next (temporary file, folder) left the run waiting on the disk most of
//! its time. The engine instead opens a batch while it works through
//! consecutive `file` resources that do not depend on each other: each
//! changed file is only staged (new content and attributes in a temporary
//! file beside its target); [`WriteBatch::commit`] then flushes all the
//! staged files at once from a few threads, renames each over its target
//! once its own flush succeeded, and flushes every folder touched once.
//!
//! The guarantee stays the one of a single write: a target holds its old or
//! its new complete content, never a torn one, and a resource is reported
//! `changed` only once its file is durable in place. A temporary file left
//! by a killed envoy is removed by the next write of that target.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::atomic::{self, Attributes};

/// Staged writes of the resources of one batch, in the order staged.
#[derive(Debug, Default)]
pub(crate) struct WriteBatch {
    staged: Mutex<Vec<vigo_fs::Staged>>,
}

/// Why one staged write did not reach its target.
#[derive(Debug)]
pub(crate) struct CommitFailure {
    /// Position of the write in the batch (see [`WriteBatch::len`]).
    pub(crate) position: usize,
    /// What failed, naming the path.
    pub(crate) message: String,
}

impl WriteBatch {
    /// Stages `bytes` with `attributes` as the next content of `target`
    /// (removing temporary files an interrupted write of it left first).
    pub(crate) fn stage(
        &self,
        target: &Path,
        bytes: &[u8],
        attributes: Attributes,
    ) -> std::io::Result<()> {
        let staged = atomic::stage_file(target, bytes, attributes)?;
        self.lock().push(staged);
        Ok(())
    }

    /// How many writes are staged so far.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Flushes, renames and makes durable every staged write; returns the
    /// ones that failed (their targets keep the old content). The batch is
    /// empty afterwards.
    pub(crate) fn commit(&self) -> Vec<CommitFailure> {
        let staged = std::mem::take(&mut *self.lock());
        if staged.is_empty() {
            return Vec::new();
        }
        let mut failures = Vec::new();
        let mut renamed: Vec<(usize, PathBuf)> = Vec::with_capacity(staged.len());
        let synced = vigo_fs::sync_all(&staged);
        for (position, (write, flushed)) in staged.into_iter().zip(synced).enumerate() {
            let target = write.target().to_path_buf();
            // Unflushed writes are dropped, which removes their temporary
            // files: the old content stays.
            let result = flushed.and_then(|()| write.commit());
            match result {
                Ok(()) => renamed.push((position, target)),
                Err(e) => failures.push(CommitFailure {
                    position,
                    message: format!("writing {}: {e}", target.display()),
                }),
            }
        }
        let folders: BTreeSet<PathBuf> = renamed
            .iter()
            .map(|(_, target)| vigo_fs::folder(target))
            .collect();
        for (folder, result) in vigo_fs::sync_dirs(&folders) {
            if let Err(e) = result {
                for (position, target) in &renamed {
                    if vigo_fs::folder(target) == folder {
                        failures.push(CommitFailure {
                            position: *position,
                            message: format!("syncing {}: {e}", folder.display()),
                        });
                    }
                }
            }
        }
        failures.sort_by_key(|f| f.position);
        failures
    }

    fn lock(&self) -> MutexGuard<'_, Vec<vigo_fs::Staged>> {
        // A panic while pushing leaves the list whole: keep using it.
        self.staged.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn attributes() -> Attributes {
        Attributes {
            mode: 0o644,
            uid: None,
            gid: None,
        }
    }

    #[test]
    fn staged_writes_land_on_commit_and_failures_name_their_position() {
        let dir = tempfile::tempdir().unwrap();
        let batch = WriteBatch::default();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        fs::write(&a, "old").unwrap();
        batch.stage(&a, b"new a", attributes()).unwrap();
        batch.stage(&b, b"new b", attributes()).unwrap();
        assert_eq!(batch.len(), 2);
        assert_eq!(
            fs::read(&a).unwrap(),
            b"old",
            "nothing in place before commit"
        );
        // A target that became a folder meanwhile cannot be renamed over.
        fs::create_dir(&b).unwrap();
        fs::write(b.join("inside"), "x").unwrap();
        let failures = batch.commit();
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].position, 1);
        assert!(
            failures[0]
                .message
                .starts_with(&format!("writing {}: ", b.display()))
        );
        assert_eq!(fs::read(&a).unwrap(), b"new a");
        assert_eq!(batch.len(), 0);
        // No temporary file is left beside either target.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}
