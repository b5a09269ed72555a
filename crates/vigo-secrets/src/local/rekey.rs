//! Changing the master key (`vigocli secrets rekey`), crash-safe.
//!
//! # Files
//!
//! For a key file `master.key` and a secret file `<secrets_dir>/a/b`:
//!
//! - `master.key.new`: the new key while a rekey is being prepared;
//! - `master.key.old`: the previous key, kept after a rekey until
//!   `vigocli secrets rekey --finish`;
//! - `<secrets_dir>/a/.tmp-rekey-b`: the secret re-encrypted under the new
//!   key (same path and version, so the same associated data), waiting to
//!   replace `b`. Its name starts with `.tmp-`, so every reader, `list` and
//!   the server's folder watcher skip it, and no secret can be named so.
//!
//! # Steps
//!
//! Every step runs under the folder's write lock, so no `set` or `delete`
//! interleaves; every file is written through a flushed temporary file and a
//! rename, and every rename or link is followed by a flush of its folder.
//!
//! 1. Write `master.key.new` (0600).
//! 2. For every secret, write `.tmp-rekey-<name>` under the new key.
//! 3. Hard-link `master.key` to `master.key.old`.
//! 4. **Commit**: rename `master.key.new` over `master.key`.
//! 5. Rename every `.tmp-rekey-<name>` over `<name>`.
//!
//! # Recovery
//!
//! The key files are the journal: the state after any crash is told apart
//! by which of them exist, and [`recover_locked`] (run, under the lock, by
//! [`LocalProvider::open`](super::LocalProvider::open) — so at every start
//! of vigosrv and every vigocli command —, by `set` and by the next rekey)
//! brings it back to a consistent one:
//!
//! - `master.key.new` exists: the commit (4) has not happened, so
//!   `master.key` is still the old key and every secret file still holds the
//!   old encryption. Roll back: remove every `.tmp-rekey-*` file, then
//!   `master.key.old` if it is a link to `master.key` (made by step 3 of
//!   this run; a rekey never starts while an older `master.key.old`
//!   exists), and `master.key.new` last. A crash during the roll-back leaves
//!   `master.key.new` in place, so the roll-back simply runs again.
//! - `master.key.new` is gone but `master.key.old` exists: either the rekey
//!   is complete or the commit happened, `master.key` is the new key and
//!   every `.tmp-rekey-*` file left (all were written and flushed before
//!   the commit) holds a secret under it. Roll forward: rename each over
//!   its secret. Renames are idempotent to repeat, so a crash here is
//!   recovered the same way.
//! - Neither exists: no rekey is under way.
//!
//! So a crash at any point leaves either the old key with every old file
//! or, once recovered, the new key with every new file. Between the commit
//! and the end of the roll-forward a reader without the lock may meet a file
//! still under the old key: [`LocalProvider`](super::LocalProvider) retries
//! a failed decryption with the re-read key file and then with
//! `master.key.old`, which is also how a running server picks up the new
//! key without a restart.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::files;
use super::format;
use super::key::MasterKey;
use crate::{SecretError, SecretInfo};

/// Prefix of a secret re-encrypted under the new key, waiting for its
/// rename.
const STAGED_PREFIX: &str = ".tmp-rekey-";

/// What [`recover_locked`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// No rekey was under way.
    Nothing,
    /// A rekey interrupted before its commit was undone: the old key stays.
    RolledBack,
    /// A rekey interrupted after its commit was completed: the new key
    /// holds.
    RolledForward,
}

/// `master.key` → `master.key.<suffix>`.
pub(super) fn sibling(key_file: &Path, suffix: &str) -> PathBuf {
    let mut name = key_file.file_name().map(OsString::from).unwrap_or_default();
    name.push(".");
    name.push(suffix);
    key_file.with_file_name(name)
}

/// Whether a rekey may be half-done (cheap: two `stat`s).
pub(super) fn may_need_recovery(key_file: &Path) -> bool {
    exists(&sibling(key_file, "new")) || exists(&sibling(key_file, "old"))
}

/// Brings a half-done rekey to a consistent state (see the module
/// documentation). The caller holds the write lock.
pub(super) fn recover_locked(key_file: &Path, secrets_dir: &Path) -> Result<Recovery, SecretError> {
    let new = sibling(key_file, "new");
    let old = sibling(key_file, "old");
    if exists(&new) {
        for (staged, _) in staged_files(secrets_dir)? {
            files::remove(&staged)?;
        }
        if same_file(&old, key_file)? {
            files::remove(&old)?;
        }
        files::remove(&new)?;
        tracing::warn!(key_file = %key_file.display(), "an interrupted master key change was rolled back; the old key stays");
        return Ok(Recovery::RolledBack);
    }
    if !exists(&old) {
        return Ok(Recovery::Nothing);
    }
    let staged = staged_files(secrets_dir)?;
    if staged.is_empty() {
        return Ok(Recovery::Nothing);
    }
    for (staged, target) in staged {
        rename(&staged, &target)?;
    }
    tracing::warn!(key_file = %key_file.display(), "an interrupted master key change was completed; the new key holds");
    Ok(Recovery::RolledForward)
}

/// Re-encrypts every secret under a new master key (see the module
/// documentation). `go_on` is asked before every step and stops the rekey
/// where it stands when it answers `false` (tests use it to stop at every
/// point, as a SIGKILL would); it returns `None` then.
pub(super) fn rekey_locked(
    key_file: &Path,
    secrets_dir: &Path,
    go_on: &mut dyn FnMut() -> bool,
) -> Result<Option<Vec<SecretInfo>>, SecretError> {
    recover_locked(key_file, secrets_dir)?;
    let new_file = sibling(key_file, "new");
    let old_file = sibling(key_file, "old");
    if exists(&old_file) {
        return Err(SecretError::MasterKey {
            file: old_file.clone(),
            problem: "is still there from the previous key change".to_owned(),
            hint:
                "run `vigocli secrets rekey --finish` first (it checks every secret and removes it)"
                    .to_owned(),
        });
    }
    let old_key = MasterKey::load(key_file)?;
    let new_key = MasterKey::random()?;
    let key_owner = fs::metadata(key_file).map_err(|e| io_error("reading", key_file, e))?;

    if !go_on() {
        return Ok(None);
    }
    files::write_replace(&new_file, &new_key.file_text()?[..])?;
    keep_owner(&new_file, &key_owner)?;

    let old_cipher = format::cipher(old_key.bytes())?;
    let new_cipher = format::cipher(new_key.bytes())?;
    let mut done = Vec::new();
    let mut secrets = files::walk(secrets_dir)?;
    secrets.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, file) in secrets {
        if !go_on() {
            return Ok(None);
        }
        let staged = staged_name(&file)?;
        let sealed = files::read_whole(&file).and_then(|bytes| {
            let bytes = bytes.ok_or(SecretError::NotFound { backend: "local" })?;
            let (value, version) = format::open(&old_cipher, &path, bytes, &file)?;
            Ok((format::seal(&new_cipher, &path, version, &value)?, version))
        });
        let (sealed, version) = match sealed {
            Ok(found) => found,
            Err(e) => {
                // Nothing is committed: undo, and name the secret.
                recover_locked(key_file, secrets_dir)?;
                return Err(SecretError::Format {
                    file,
                    reason: format!(
                        "cannot be re-encrypted ({e}); nothing was changed, the old key stays"
                    ),
                });
            }
        };
        files::write_replace(&staged, &sealed)?;
        let owner = fs::metadata(&file).map_err(|e| io_error("reading", &file, e))?;
        keep_owner(&staged, &owner)?;
        done.push(SecretInfo { path, version });
    }

    if !go_on() {
        return Ok(None);
    }
    let (key_dir, _) = files::split_file_path(key_file)?;
    fs::hard_link(key_file, &old_file).map_err(|e| io_error("linking", &old_file, e))?;
    files::sync_dir(&key_dir)?;

    if !go_on() {
        return Ok(None);
    }
    // The commit.
    rename(&new_file, key_file)?;

    for (staged, target) in staged_files(secrets_dir)? {
        if !go_on() {
            return Ok(None);
        }
        rename(&staged, &target)?;
    }
    Ok(Some(done))
}

/// The `go_on` of a real rekey: always goes on. Built with the
/// `test-hooks` feature (end-to-end tests only), the process SIGKILLs
/// itself before step `VIGO_TEST_REKEY_KILL_AT` (counted from 1).
pub(super) fn kill_point() -> impl FnMut() -> bool {
    #[cfg(feature = "test-hooks")]
    {
        let kill_at: Option<usize> = std::env::var("VIGO_TEST_REKEY_KILL_AT")
            .ok()
            .and_then(|v| v.parse().ok());
        let mut step = 0usize;
        move || {
            step += 1;
            if kill_at == Some(step) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::SIGKILL);
            }
            true
        }
    }
    #[cfg(not(feature = "test-hooks"))]
    {
        || true
    }
}

/// Checks that every secret opens under the current key, then removes
/// `master.key.old`. Returns how many secrets were checked, or `None` when
/// there was no old key to remove.
pub(super) fn finish_locked(
    key_file: &Path,
    secrets_dir: &Path,
) -> Result<Option<usize>, SecretError> {
    recover_locked(key_file, secrets_dir)?;
    let old_file = sibling(key_file, "old");
    if !exists(&old_file) {
        return Ok(None);
    }
    let key = MasterKey::load(key_file)?;
    let cipher = format::cipher(key.bytes())?;
    let secrets = files::walk(secrets_dir)?;
    for (path, file) in &secrets {
        let Some(bytes) = files::read_whole(file)? else {
            continue;
        };
        format::open(&cipher, path, bytes, file).map_err(|e| SecretError::Format {
            file: file.clone(),
            reason: format!(
                "does not open under the current key ({e}); {} is kept",
                old_file.display()
            ),
        })?;
    }
    files::remove(&old_file)?;
    Ok(Some(secrets.len()))
}

/// `a/b` → `a/.tmp-rekey-b`.
fn staged_name(file: &Path) -> Result<PathBuf, SecretError> {
    let (dir, name) = files::split_file_path(file)?;
    let mut staged = OsString::from(STAGED_PREFIX);
    staged.push(name);
    Ok(dir.join(staged))
}

/// Every staged file under `secrets_dir`, with the file it replaces.
fn staged_files(secrets_dir: &Path) -> Result<Vec<(PathBuf, PathBuf)>, SecretError> {
    let mut found = Vec::new();
    collect_staged(secrets_dir, &mut found)?;
    found.sort();
    Ok(found)
}

fn collect_staged(dir: &Path, found: &mut Vec<(PathBuf, PathBuf)>) -> Result<(), SecretError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error("listing folder", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_error("listing folder", dir, e))?;
        let file_type = entry
            .file_type()
            .map_err(|e| io_error("listing folder", dir, e))?;
        let name = entry.file_name();
        if file_type.is_dir() {
            collect_staged(&entry.path(), found)?;
        } else if file_type.is_file()
            && let Some(target) = name.to_str().and_then(|n| n.strip_prefix(STAGED_PREFIX))
            && !target.is_empty()
        {
            found.push((entry.path(), dir.join(target)));
        }
    }
    Ok(())
}

fn rename(from: &Path, to: &Path) -> Result<(), SecretError> {
    fs::rename(from, to).map_err(|e| io_error("replacing", to, e))?;
    let (dir, _) = files::split_file_path(to)?;
    files::sync_dir(&dir)
}

/// Gives `file` the owner of the file it stands for, when running as root
/// (a root `vigocli` must not leave files a `vigo` server cannot read).
fn keep_owner(file: &Path, like: &fs::Metadata) -> Result<(), SecretError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    std::os::unix::fs::chown(file, Some(like.uid()), Some(like.gid()))
        .map_err(|e| io_error("changing the owner of", file, e))
}

fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Whether `a` exists and is the same file (inode) as `b`.
fn same_file(a: &Path, b: &Path) -> Result<bool, SecretError> {
    let (Ok(a), Ok(b)) = (fs::symlink_metadata(a), fs::symlink_metadata(b)) else {
        return Ok(false);
    };
    Ok(a.dev() == b.dev() && a.ino() == b.ino())
}

fn io_error(action: &'static str, file: &Path, cause: io::Error) -> SecretError {
    SecretError::Io {
        action,
        file: file.to_path_buf(),
        cause,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::{LocalProvider, SecretPath, SecretProvider, SecretValue};

    const SECRETS: [(&str, &str); 4] = [
        ("vigo/db/dsn", "canary-dsn-3b1f"),
        ("vigo/server/admin_token", "canary-token-77aa"),
        ("app/deep/er/value", "canary-deep-0c0c"),
        ("top", ""),
    ];

    struct Setup {
        _dir: tempfile::TempDir,
        key_file: PathBuf,
        secrets_dir: PathBuf,
    }

    /// A store holding `SECRETS`, `vigo/db/dsn` at version 3.
    async fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("master.key");
        let secrets_dir = dir.path().join("secrets");
        MasterKey::generate_to(&key_file).unwrap();
        let p = LocalProvider::open(&key_file, &secrets_dir).unwrap();
        for (path, value) in SECRETS {
            p.set(&SecretPath::parse(path).unwrap(), &SecretValue::from(value))
                .await
                .unwrap();
        }
        for _ in 0..2 {
            p.set(
                &SecretPath::parse("vigo/db/dsn").unwrap(),
                &SecretValue::from("canary-dsn-3b1f"),
            )
            .await
            .unwrap();
        }
        Setup {
            _dir: dir,
            key_file,
            secrets_dir,
        }
    }

    fn key_text(file: &Path) -> String {
        fs::read_to_string(file).unwrap()
    }

    /// Every secret reads back with its value and version, through a
    /// provider opened afresh (which recovers), under the one key file.
    async fn assert_consistent(s: &Setup) {
        let p = LocalProvider::open(&s.key_file, &s.secrets_dir).unwrap();
        let listed = p.list("").await.unwrap();
        assert_eq!(listed.len(), SECRETS.len());
        let key = MasterKey::load(&s.key_file).unwrap();
        let cipher = format::cipher(key.bytes()).unwrap();
        for (path, value) in SECRETS {
            let path = SecretPath::parse(path).unwrap();
            let got = p.get(&path).await.unwrap();
            assert_eq!(got.value.expose_secret(), value);
            let version = if path.as_str() == "vigo/db/dsn" { 3 } else { 1 };
            assert_eq!(got.version, version, "{path}");
            // Not through a fallback key: the file opens under master.key.
            let file = s.secrets_dir.join(path.as_str());
            let bytes = files::read_whole(&file).unwrap().unwrap();
            format::open(&cipher, &path, bytes, &file).unwrap();
        }
        assert!(staged_files(&s.secrets_dir).unwrap().is_empty());
        assert!(!exists(&sibling(&s.key_file, "new")));
    }

    #[tokio::test]
    async fn issue_17_rekey_changes_the_key_and_keeps_paths_and_versions() {
        let s = setup().await;
        let before = key_text(&s.key_file);
        let done = LocalProvider::rekey(&s.key_file, &s.secrets_dir).unwrap();
        assert_eq!(done.len(), SECRETS.len());
        assert_ne!(key_text(&s.key_file), before);
        assert_eq!(key_text(&sibling(&s.key_file, "old")), before);
        let mode = fs::metadata(&s.key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_consistent(&s).await;

        // A second rekey waits for --finish.
        let err = LocalProvider::rekey(&s.key_file, &s.secrets_dir).unwrap_err();
        assert!(err.to_string().contains("rekey --finish"), "{err}");
        assert_eq!(
            LocalProvider::finish_rekey(&s.key_file, &s.secrets_dir).unwrap(),
            Some(SECRETS.len())
        );
        assert!(!exists(&sibling(&s.key_file, "old")));
        assert_eq!(
            LocalProvider::finish_rekey(&s.key_file, &s.secrets_dir).unwrap(),
            None
        );
        LocalProvider::rekey(&s.key_file, &s.secrets_dir).unwrap();
        assert_consistent(&s).await;
    }

    #[tokio::test]
    async fn issue_17_rekey_stopped_at_every_step_recovers_to_one_key() {
        // Count the steps of a whole run first.
        let probe = setup().await;
        let mut steps = 0;
        {
            let _lock = files::lock(&probe.secrets_dir).unwrap();
            rekey_locked(&probe.key_file, &probe.secrets_dir, &mut || {
                steps += 1;
                true
            })
            .unwrap()
            .unwrap();
        }
        assert!(steps > SECRETS.len() * 2, "{steps} steps");
        let (mut rolled_back, mut rolled_forward) = (0, 0);
        for stop_at in 0..=steps {
            let s = setup().await;
            let before = key_text(&s.key_file);
            let mut asked = 0;
            let outcome = {
                let _lock = files::lock(&s.secrets_dir).unwrap();
                rekey_locked(&s.key_file, &s.secrets_dir, &mut || {
                    asked += 1;
                    asked <= stop_at
                })
                .unwrap()
            };
            assert_eq!(outcome.is_some(), stop_at == steps);
            // A reader that does not recover (no lock, like a running
            // server) reads every value meanwhile.
            let mut reader =
                LocalProvider::new(MasterKey::load(&s.key_file).unwrap(), s.secrets_dir.clone());
            std::sync::Arc::get_mut(&mut reader.inner).unwrap().key_file = Some(s.key_file.clone());
            for (path, value) in SECRETS {
                let got = reader.get(&SecretPath::parse(path).unwrap()).await;
                assert_eq!(got.unwrap().value.expose_secret(), value, "step {stop_at}");
            }
            let recovery = LocalProvider::recover(&s.key_file, &s.secrets_dir).unwrap();
            match recovery {
                Recovery::RolledBack => {
                    rolled_back += 1;
                    assert_eq!(key_text(&s.key_file), before, "step {stop_at}");
                    assert!(!exists(&sibling(&s.key_file, "old")), "step {stop_at}");
                }
                Recovery::RolledForward => {
                    rolled_forward += 1;
                    assert_ne!(key_text(&s.key_file), before, "step {stop_at}");
                    assert_eq!(key_text(&sibling(&s.key_file, "old")), before);
                }
                Recovery::Nothing => {
                    // Stopped before writing anything, or after the end.
                    assert!(stop_at == 0 || stop_at == steps, "step {stop_at}");
                }
            }
            assert_consistent(&s).await;
        }
        assert!(rolled_back > SECRETS.len(), "{rolled_back}");
        assert!(rolled_forward >= SECRETS.len() - 1, "{rolled_forward}");
    }

    #[tokio::test]
    async fn issue_17_a_running_provider_follows_the_new_key() {
        let s = setup().await;
        let running = LocalProvider::open(&s.key_file, &s.secrets_dir).unwrap();
        LocalProvider::rekey(&s.key_file, &s.secrets_dir).unwrap();
        LocalProvider::finish_rekey(&s.key_file, &s.secrets_dir).unwrap();
        let path = SecretPath::parse("vigo/db/dsn").unwrap();
        assert_eq!(
            running.get(&path).await.unwrap().value.expose_secret(),
            "canary-dsn-3b1f"
        );
        // Its writes use the new key too.
        running
            .set(&path, &SecretValue::from("canary-dsn-3b1f"))
            .await
            .unwrap();
        let fresh =
            LocalProvider::new(MasterKey::load(&s.key_file).unwrap(), s.secrets_dir.clone());
        assert_eq!(fresh.get(&path).await.unwrap().version, 4);
    }

    #[tokio::test]
    async fn issue_17_rekey_refuses_an_unreadable_secret_and_changes_nothing() {
        let s = setup().await;
        let before = key_text(&s.key_file);
        let bad = s.secrets_dir.join("top");
        let mut bytes = fs::read(&bad).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&bad, &bytes).unwrap();
        let err = LocalProvider::rekey(&s.key_file, &s.secrets_dir).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("secrets/top"), "{text}");
        assert!(text.contains("the old key stays"), "{text}");
        assert_eq!(key_text(&s.key_file), before);
        assert!(!exists(&sibling(&s.key_file, "new")));
        assert!(!exists(&sibling(&s.key_file, "old")));
        assert!(staged_files(&s.secrets_dir).unwrap().is_empty());
    }
}
