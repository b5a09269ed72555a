//! The backend trait every secrets store implements.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;

use crate::{SecretError, SecretPath, SecretValue};

/// A value together with the version the backend holds it at.
#[derive(Debug, Clone)]
pub struct VersionedSecret {
    /// The value (redacting type).
    pub value: SecretValue,
    /// Version number: 1 on first set, +1 on every set.
    pub version: u64,
}

/// What `list` reports about a secret: never its value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SecretInfo {
    /// The secret's path.
    pub path: SecretPath,
    /// Its current version.
    pub version: u64,
}

/// A secrets backend.
///
/// Every method takes already-validated [`SecretPath`]s, so no backend ever
/// sees a traversal attempt. Errors never contain a value; they name the
/// cause only, and callers add the path (`resolving secret '<path>': <cause>`).
#[async_trait]
pub trait SecretProvider: Send + Sync + fmt::Debug {
    /// Short backend name for logs: `local`, `isopass`, `memory`.
    fn backend(&self) -> &'static str;

    /// The value and version at `path`; [`SecretError::NotFound`] if absent.
    async fn get(&self, path: &SecretPath) -> Result<VersionedSecret, SecretError>;

    /// Stores `value` at `path` and returns the new version.
    async fn set(&self, path: &SecretPath, value: &SecretValue) -> Result<u64, SecretError>;

    /// Every stored secret under `prefix` (segment-wise; `""` for all),
    /// sorted by path.
    async fn list(&self, prefix: &str) -> Result<Vec<SecretInfo>, SecretError>;

    /// Removes the secret; [`SecretError::NotFound`] if it was absent.
    async fn delete(&self, path: &SecretPath) -> Result<(), SecretError>;

    /// Current versions of many secrets in one call; absent paths are left
    /// out of the answer.
    async fn versions(
        &self,
        paths: &[SecretPath],
    ) -> Result<BTreeMap<SecretPath, u64>, SecretError>;

    /// Whether `path` exists, without decrypting or fetching its value.
    async fn exists(&self, path: &SecretPath) -> Result<bool, SecretError> {
        let found = self.versions(std::slice::from_ref(path)).await?;
        Ok(found.contains_key(path))
    }
}
