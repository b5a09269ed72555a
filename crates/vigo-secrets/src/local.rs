//! The local backend (docs/secrets.md "The local store (default)"): one AES-256-GCM file per secret
//! under a master key.
//!
//! `secret:vigo/db/dsn` lives in `<secrets_dir>/vigo/db/dsn`. The file
//! format is described in `local/format.rs`; crash-safe writing, the write
//! lock and the folder walk are in `local/files.rs`; the master key file in
//! `local/key.rs`.
//!
//! Writers serialise on an advisory lock (`<secrets_dir>/.lock`), so two
//! `set`s — from threads or from separate `vigocli` and `vigosrv` processes —
//! never produce the same version. Readers take no lock: a rename is atomic,
//! so they see the old file or the new one.
//!
//! The master key can be changed (`vigocli secrets rekey`); how that stays
//! crash-safe is in `local/rekey.rs`.

mod files;
mod format;
mod key;
mod rekey;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;

pub use key::MasterKey;
pub use rekey::Recovery;

use crate::{SecretError, SecretInfo, SecretPath, SecretProvider, SecretValue, VersionedSecret};

const BACKEND: &str = "local";

/// Secrets stored as encrypted files under a folder.
///
/// Cheap to clone: clones share the key.
#[derive(Clone)]
pub struct LocalProvider {
    inner: Arc<Inner>,
}

struct Inner {
    /// The key in use; replaced when the key file changes (a rekey).
    key: RwLock<Arc<MasterKey>>,
    /// Where the key came from, when it came from a file: re-read when a
    /// decryption fails and before every write.
    key_file: Option<PathBuf>,
    secrets_dir: PathBuf,
}

impl LocalProvider {
    /// A provider for the secrets under `secrets_dir`, encrypted with `key`.
    /// The folder is created (mode 0700) on the first `set`.
    pub fn new(key: MasterKey, secrets_dir: PathBuf) -> LocalProvider {
        LocalProvider {
            inner: Arc::new(Inner {
                key: RwLock::new(Arc::new(key)),
                key_file: None,
                secrets_dir,
            }),
        }
    }

    /// Loads the master key from `key_file` (see [`MasterKey::load`]) and
    /// opens the secrets under `secrets_dir`, first finishing or undoing a
    /// key change that was interrupted (see [`LocalProvider::recover`]).
    ///
    /// The provider follows later key changes: when a secret does not open
    /// under the key it holds, it re-reads `key_file` (and tries
    /// `<key_file>.old`, kept until `rekey --finish`), and every write
    /// re-reads `key_file` first.
    pub fn open(key_file: &Path, secrets_dir: &Path) -> Result<LocalProvider, SecretError> {
        LocalProvider::recover(key_file, secrets_dir)?;
        let key = MasterKey::load(key_file)?;
        Ok(LocalProvider {
            inner: Arc::new(Inner {
                key: RwLock::new(Arc::new(key)),
                key_file: Some(key_file.to_path_buf()),
                secrets_dir: secrets_dir.to_path_buf(),
            }),
        })
    }

    /// Finishes (after its commit) or undoes (before it) a key change that
    /// a crash interrupted; does nothing, without taking the lock, when no
    /// `<key_file>.new` or `<key_file>.old` exists.
    pub fn recover(key_file: &Path, secrets_dir: &Path) -> Result<Recovery, SecretError> {
        if !rekey::may_need_recovery(key_file) {
            return Ok(Recovery::Nothing);
        }
        let _lock = files::lock(secrets_dir)?;
        rekey::recover_locked(key_file, secrets_dir)
    }

    /// Changes the master key in `key_file`: every secret is re-encrypted
    /// under a new random key, with its path and version unchanged, and the
    /// previous key is kept as `<key_file>.old` until
    /// [`LocalProvider::finish_rekey`]. Crash-safe at every point (see
    /// `local/rekey.rs`). Refused while `<key_file>.old` exists. Returns the
    /// secrets re-encrypted. Blocking.
    pub fn rekey(key_file: &Path, secrets_dir: &Path) -> Result<Vec<SecretInfo>, SecretError> {
        let _lock = files::lock(secrets_dir)?;
        let done = rekey::rekey_locked(key_file, secrets_dir, &mut rekey::kill_point())?;
        // `go_on` never stops it (the test hook kills the process instead).
        Ok(done.unwrap_or_default())
    }

    /// Checks that every secret opens under the key in `key_file`, then
    /// removes `<key_file>.old`. Returns the number of secrets checked, or
    /// `None` when there was no old key. Blocking.
    pub fn finish_rekey(key_file: &Path, secrets_dir: &Path) -> Result<Option<usize>, SecretError> {
        let _lock = files::lock(secrets_dir)?;
        rekey::finish_locked(key_file, secrets_dir)
    }

    /// Whether any secret file exists under `secrets_dir` (a missing folder
    /// holds none). Used to refuse generating a new master key that would
    /// orphan existing secrets. Files are not opened, so this needs no key.
    pub fn holds_secrets(secrets_dir: &Path) -> Result<bool, SecretError> {
        Ok(!files::walk(secrets_dir)?.is_empty())
    }

    /// Whether a file named `name` (a file name, not a path) is one of the
    /// backend's own: a temporary file of a write in progress or the write
    /// lock. A watcher of `secrets_dir` ignores them.
    pub fn is_internal_file(name: &str) -> bool {
        name.starts_with(files::TEMP_PREFIX) || name == files::LOCK_FILE
    }

    /// The folder holding the secret files.
    pub fn secrets_dir(&self) -> &Path {
        &self.inner.secrets_dir
    }

    /// The file that holds (or would hold) `path`:
    /// `<secrets_dir>/vigo/db/dsn` for `vigo/db/dsn`.
    pub fn file_for(&self, path: &SecretPath) -> PathBuf {
        self.inner.file_for(path)
    }
}

impl fmt::Debug for LocalProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalProvider")
            .field("secrets_dir", &self.inner.secrets_dir)
            .field("key", &self.inner.current_key())
            .finish()
    }
}

impl Inner {
    fn file_for(&self, path: &SecretPath) -> PathBuf {
        // A `SecretPath` has no `.`, `..`, empty or absolute segment, so
        // joining it can never leave `secrets_dir`.
        self.secrets_dir.join(path.as_str())
    }

    fn current_key(&self) -> Arc<MasterKey> {
        Arc::clone(
            &self
                .key
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Re-reads the key file (when there is one); returns the key now in use.
    fn reload_key(&self) -> Result<Arc<MasterKey>, SecretError> {
        let Some(key_file) = &self.key_file else {
            return Ok(self.current_key());
        };
        let loaded = MasterKey::load(key_file)?;
        let mut slot = self
            .key
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !slot.same_as(&loaded) {
            tracing::info!(key_file = %key_file.display(), "the master key changed; using the new one");
            *slot = Arc::new(loaded);
        }
        Ok(Arc::clone(&slot))
    }

    fn get(&self, path: &SecretPath) -> Result<VersionedSecret, SecretError> {
        if files::is_reserved(path) {
            return Err(not_found());
        }
        let file = self.file_for(path);
        files::refuse_symlinks(&self.secrets_dir, &file)?;
        let bytes = files::read_whole(&file)?.ok_or_else(not_found)?;
        let key = self.current_key();
        let first = format::open(&format::cipher(key.bytes())?, path, bytes.clone(), &file);
        let Some(key_file) = &self.key_file else {
            return first.map(|(value, version)| VersionedSecret { value, version });
        };
        let (value, version) = match first {
            Err(SecretError::Integrity) => {
                // The key may have changed (a rekey): the key file now, then
                // the previous key for a file the rekey has not replaced yet.
                let reloaded = self.reload_key()?;
                let mut opened = Err(SecretError::Integrity);
                if !reloaded.same_as(&key) {
                    opened = format::open(
                        &format::cipher(reloaded.bytes())?,
                        path,
                        bytes.clone(),
                        &file,
                    );
                }
                let old_file = rekey::sibling(key_file, "old");
                if matches!(opened, Err(SecretError::Integrity))
                    && let Ok(old) = MasterKey::load(&old_file)
                {
                    opened = format::open(&format::cipher(old.bytes())?, path, bytes, &file);
                }
                opened?
            }
            other => other?,
        };
        Ok(VersionedSecret { value, version })
    }

    fn set(&self, path: &SecretPath, value: &SecretValue) -> Result<u64, SecretError> {
        if files::is_reserved(path) {
            return Err(SecretError::ReservedPath);
        }
        let file = self.file_for(path);
        let _lock = files::lock(&self.secrets_dir)?;
        // Never write under a key a rekey has replaced.
        if let Some(key_file) = &self.key_file {
            rekey::recover_locked(key_file, &self.secrets_dir)?;
        }
        let cipher = format::cipher(self.reload_key()?.bytes())?;
        files::refuse_symlinks(&self.secrets_dir, &file)?;
        let version =
            match files::read_header(&file)? {
                None => 1,
                Some(header) => header.version.checked_add(1).ok_or_else(|| {
                    SecretError::Format {
                file: file.clone(),
                reason: "the version counter is at its maximum; delete the secret and set it again"
                    .to_owned(),
            }
                })?,
            };
        let sealed = format::seal(&cipher, path, version, value)?;
        let (dir, _) = files::split_file_path(&file)?;
        files::ensure_dir(&dir)?;
        files::write_replace(&file, &sealed)?;
        Ok(version)
    }

    fn list(&self, prefix: &str) -> Result<Vec<SecretInfo>, SecretError> {
        let mut found = Vec::new();
        for (path, file) in files::walk(&self.secrets_dir)? {
            if !path.has_prefix(prefix) {
                continue;
            }
            // The file may have been deleted since the walk saw it.
            if let Some(header) = files::read_header(&file)? {
                found.push(SecretInfo {
                    path,
                    version: header.version,
                });
            }
        }
        found.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(found)
    }

    fn delete(&self, path: &SecretPath) -> Result<(), SecretError> {
        if files::is_reserved(path) {
            return Err(not_found());
        }
        let file = self.file_for(path);
        // Nothing to delete means nothing to lock: do not create the folder.
        if !self.secrets_dir.is_dir() {
            return Err(not_found());
        }
        let _lock = files::lock(&self.secrets_dir)?;
        files::refuse_symlinks(&self.secrets_dir, &file)?;
        if files::remove(&file)? {
            Ok(())
        } else {
            Err(not_found())
        }
    }

    fn versions(&self, paths: &[SecretPath]) -> Result<BTreeMap<SecretPath, u64>, SecretError> {
        let mut found = BTreeMap::new();
        for path in paths {
            if files::is_reserved(path) {
                continue;
            }
            let file = self.file_for(path);
            files::refuse_symlinks(&self.secrets_dir, &file)?;
            if let Some(header) = files::read_header(&file)? {
                found.insert(path.clone(), header.version);
            }
        }
        Ok(found)
    }
}

fn not_found() -> SecretError {
    SecretError::NotFound { backend: BACKEND }
}

impl LocalProvider {
    /// Runs blocking file work on tokio's blocking pool.
    async fn blocking<T, F>(&self, work: F) -> Result<T, SecretError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, SecretError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        match tokio::task::spawn_blocking(move || work(&inner)).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(SecretError::Io {
                action: "accessing",
                file: self.inner.secrets_dir.clone(),
                cause: io::Error::other("the runtime is shutting down"),
            }),
        }
    }
}

#[async_trait]
impl SecretProvider for LocalProvider {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn get(&self, path: &SecretPath) -> Result<VersionedSecret, SecretError> {
        let path = path.clone();
        self.blocking(move |inner| inner.get(&path)).await
    }

    async fn set(&self, path: &SecretPath, value: &SecretValue) -> Result<u64, SecretError> {
        let (path, value) = (path.clone(), value.clone());
        self.blocking(move |inner| inner.set(&path, &value)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<SecretInfo>, SecretError> {
        let prefix = prefix.to_owned();
        self.blocking(move |inner| inner.list(&prefix)).await
    }

    async fn delete(&self, path: &SecretPath) -> Result<(), SecretError> {
        let path = path.clone();
        self.blocking(move |inner| inner.delete(&path)).await
    }

    async fn versions(
        &self,
        paths: &[SecretPath],
    ) -> Result<BTreeMap<SecretPath, u64>, SecretError> {
        let paths = paths.to_vec();
        self.blocking(move |inner| inner.versions(&paths)).await
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn provider(dir: &Path) -> LocalProvider {
        LocalProvider::new(MasterKey::from_bytes([9; 32]), dir.join("secrets"))
    }

    /// Whether `result` failed as "not found".
    fn not_found<T>(result: Result<T, SecretError>) -> bool {
        result.is_err_and(|e| e.is_not_found())
    }

    fn path(p: &str) -> SecretPath {
        SecretPath::parse(p).unwrap()
    }

    #[tokio::test]
    async fn missing_secret_is_file_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let p = provider(dir.path());
        let err = p.get(&path("vigo/db/dsn")).await.unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(err.to_string(), "file not found");
        assert!(not_found(p.delete(&path("vigo/db/dsn")).await));
        assert!(
            !dir.path().join("secrets").exists(),
            "a read created the folder"
        );
    }

    #[tokio::test]
    async fn reserved_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = provider(dir.path());
        for reserved in [".lock", "vigo/.tmp-abc"] {
            let err = p
                .set(&path(reserved), &SecretValue::from("v"))
                .await
                .unwrap_err();
            assert!(
                matches!(err, SecretError::ReservedPath),
                "{reserved}: {err}"
            );
            assert!(p.get(&path(reserved)).await.unwrap_err().is_not_found());
        }
    }

    #[tokio::test]
    async fn a_folder_is_not_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        let p = provider(dir.path());
        p.set(&path("vigo/db/dsn"), &SecretValue::from("v"))
            .await
            .unwrap();
        assert!(p.get(&path("vigo/db")).await.unwrap_err().is_not_found());
        assert!(p.delete(&path("vigo/db")).await.unwrap_err().is_not_found());
        assert!(p.versions(&[path("vigo/db")]).await.unwrap().is_empty());
        // A secret below an existing secret's file cannot be read or written.
        assert!(not_found(p.get(&path("vigo/db/dsn/x")).await));
        assert!(
            p.set(&path("vigo/db/dsn/x"), &SecretValue::from("v"))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn debug_shows_neither_key_nor_values() {
        let dir = tempfile::tempdir().unwrap();
        let p = provider(dir.path());
        let debug = format!("{p:?}");
        assert!(debug.contains("MasterKey([REDACTED])"), "{debug}");
        assert!(!debug.contains("9, 9"), "{debug}");
        assert_eq!(p.backend(), "local");
    }

    #[tokio::test]
    async fn lock_file_is_0600_and_not_listed() {
        let dir = tempfile::tempdir().unwrap();
        let p = provider(dir.path());
        p.set(&path("a"), &SecretValue::from("v")).await.unwrap();
        let lock = p.secrets_dir().join(".lock");
        assert_eq!(
            fs::metadata(lock).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let listed = p.list("").await.unwrap();
        assert_eq!(listed.len(), 1);
    }
}
