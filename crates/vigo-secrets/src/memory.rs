//! An in-memory backend for tests and benchmarks. It persists nothing.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::{SecretError, SecretInfo, SecretPath, SecretProvider, SecretValue, VersionedSecret};

/// Holds secrets in a map in process memory; values are still
/// [`SecretValue`]s, so they are redacted and zeroized like any other.
#[derive(Debug, Default)]
pub struct MemoryProvider {
    entries: Mutex<BTreeMap<SecretPath, VersionedSecret>>,
}

impl MemoryProvider {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores a value synchronously (test set-up).
    pub fn insert(&self, path: &SecretPath, value: SecretValue) -> u64 {
        let mut entries = self.lock();
        let version = entries.get(path).map_or(1, |e| e.version + 1);
        entries.insert(path.clone(), VersionedSecret { value, version });
        version
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<SecretPath, VersionedSecret>> {
        // A poisoned lock only means another thread panicked mid-insert; the
        // map itself is always in a consistent state.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl SecretProvider for MemoryProvider {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, path: &SecretPath) -> Result<VersionedSecret, SecretError> {
        self.lock()
            .get(path)
            .cloned()
            .ok_or(SecretError::NotFound { backend: "memory" })
    }

    async fn set(&self, path: &SecretPath, value: &SecretValue) -> Result<u64, SecretError> {
        Ok(self.insert(path, value.clone()))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<SecretInfo>, SecretError> {
        Ok(self
            .lock()
            .iter()
            .filter(|(p, _)| p.has_prefix(prefix))
            .map(|(p, e)| SecretInfo {
                path: p.clone(),
                version: e.version,
            })
            .collect())
    }

    async fn delete(&self, path: &SecretPath) -> Result<(), SecretError> {
        self.lock()
            .remove(path)
            .map(|_| ())
            .ok_or(SecretError::NotFound { backend: "memory" })
    }

    async fn versions(
        &self,
        paths: &[SecretPath],
    ) -> Result<BTreeMap<SecretPath, u64>, SecretError> {
        let entries = self.lock();
        Ok(paths
            .iter()
            .filter_map(|p| entries.get(p).map(|e| (p.clone(), e.version)))
            .collect())
    }
}
