//! Integration tests of the local AES-256-GCM backend: behaviour through the
//! public API, the pinned file-format vectors, tampering and concurrency.
//! One test binary; every test works in its own temporary folder.

mod behaviour;
mod concurrency;
mod links;
mod tampering;
mod vectors;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use vigo_secrets::{LocalProvider, MasterKey, SecretPath, SecretProvider, SecretValue};
use vigo_test_support::mode;

/// A temporary folder with a fresh master key and an (absent) secrets folder.
struct Store {
    dir: tempfile::TempDir,
    provider: LocalProvider,
}

impl Store {
    fn new() -> Store {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::generate_to(&dir.path().join("master.key")).unwrap();
        let provider = LocalProvider::new(key, dir.path().join("secrets"));
        Store { dir, provider }
    }

    fn key_file(&self) -> PathBuf {
        self.dir.path().join("master.key")
    }

    fn secrets_dir(&self) -> PathBuf {
        self.dir.path().join("secrets")
    }

    /// Stores `v` at `p` and returns the bytes of its file.
    async fn store_and_read(&self, p: &SecretPath, v: &str) -> Vec<u8> {
        self.provider.set(p, &value(v)).await.unwrap();
        fs::read(self.provider.file_for(p)).unwrap()
    }

    /// Stores `v` at `p`, then changes the bytes of its file with `edit`,
    /// as anyone with write access to the folder could.
    async fn store_then_edit(&self, p: &SecretPath, v: &str, edit: impl FnOnce(&mut Vec<u8>)) {
        let mut bytes = self.store_and_read(p, v).await;
        edit(&mut bytes);
        fs::write(self.provider.file_for(p), &bytes).unwrap();
    }

    /// Another provider on the same folder, as a second process would have.
    fn reopen(&self) -> LocalProvider {
        LocalProvider::open(&self.key_file(), &self.secrets_dir()).unwrap()
    }
}

fn path(p: &str) -> SecretPath {
    SecretPath::parse(p).unwrap()
}

fn value(v: &str) -> SecretValue {
    SecretValue::from(v)
}

/// Copies a key file into `dir` with mode 0600 (git does not keep modes).
fn install_key(source: &Path, dir: &Path) -> PathBuf {
    let target = dir.join(source.file_name().unwrap());
    fs::copy(source, &target).unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
    target
}
