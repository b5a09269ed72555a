//! The config repository as the server serves it: a [`RepoSnapshot`] of the
//! loaded repository together with the value of every secret it references,
//! resolved once per load (SPEC 4.4) so that compiling a catalog at check-in
//! never touches the secrets backend.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use vigo_compiler::{ConfigRepo, Diagnostics, NODES_FILE};
use vigo_config::{ConfigError, fetch_secret};
use vigo_secrets::{SecretPath, SecretProvider, VersionedSecret};

/// A loaded config repository and the secrets it references.
#[derive(Debug, Clone, Default)]
pub struct RepoSnapshot {
    /// The validated repository.
    pub repo: ConfigRepo,
    /// Every secret in [`ConfigRepo::referenced_secrets`], with its version.
    pub secrets: BTreeMap<SecretPath, VersionedSecret>,
}

/// Why a config repository could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepoError {
    /// The repository has errors; each names its file and line.
    #[error("{}", invalid_message(.0))]
    Invalid(Diagnostics),
    /// A referenced secret could not be fetched.
    #[error(transparent)]
    Resolve(ConfigError),
}

fn invalid_message(diagnostics: &Diagnostics) -> String {
    let count = diagnostics.len();
    let noun = if count == 1 { "error" } else { "errors" };
    format!("{count} {noun} (run `vigocli check` for details):\n{diagnostics}")
}

impl RepoSnapshot {
    /// Loads the repository in `config_dir` and resolves every secret it
    /// references through `provider`; the first secret that cannot be
    /// fetched is the error (`resolving secret '<path>': <cause>`).
    ///
    /// A missing `config_dir` or `nodes.vgo` is an empty repository (every
    /// envoy gets an empty catalog), logged as a warning.
    pub async fn load(config_dir: &Path, provider: &dyn SecretProvider) -> Result<Self, RepoError> {
        if !config_dir.join(NODES_FILE).is_file() {
            tracing::warn!(
                config_dir = %config_dir.display(),
                "no {NODES_FILE} in the config repository: every envoy gets an empty catalog"
            );
            return Ok(Self::default());
        }
        let repo = ConfigRepo::load(config_dir).map_err(RepoError::Invalid)?;
        let mut secrets = BTreeMap::new();
        for path in repo.referenced_secrets() {
            let found = fetch_secret(provider, &path)
                .await
                .map_err(RepoError::Resolve)?;
            secrets.insert(path, found);
        }
        Ok(Self { repo, secrets })
    }

    /// The version of each resolved secret (numbers only).
    pub fn versions(&self) -> BTreeMap<SecretPath, u64> {
        self.secrets
            .iter()
            .map(|(path, secret)| (path.clone(), secret.version))
            .collect()
    }
}

impl fmt::Display for RepoSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config repository with {} secrets", self.secrets.len())
    }
}

#[cfg(test)]
mod tests {
    use vigo_secrets::{MemoryProvider, SecretValue};

    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let file = dir.join(rel);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }

    #[tokio::test]
    async fn a_missing_repository_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let provider = MemoryProvider::default();
        let snapshot = RepoSnapshot::load(&dir.path().join("nope"), &provider)
            .await
            .unwrap();
        assert!(snapshot.secrets.is_empty());
        let compiled = snapshot
            .repo
            .compile("db1.example.com", &snapshot.secrets)
            .unwrap();
        assert!(compiled.catalog.resources.is_empty());
    }

    #[tokio::test]
    async fn every_referenced_secret_is_resolved_or_named() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "nodes.vgo",
            "envoys:\n  - match: \"db*\"\n    roles: [database]\n    vars:\n      pw: \"secret:vigo/db/password\"\n",
        );
        write(
            dir.path(),
            "modules/database.vgo",
            "resources:\n  - name: pw\n    type: file\n    target_path: /tmp/vigo-test-pw\n    content: \"{{ .Vars.pw }}\"\n",
        );
        let provider = MemoryProvider::default();
        let err = RepoSnapshot::load(dir.path(), &provider).await.unwrap_err();
        assert_eq!(
            crate::error_chain(&err),
            "resolving secret 'vigo/db/password': memory: not found"
        );

        let path = SecretPath::parse("vigo/db/password").unwrap();
        provider
            .set(&path, &SecretValue::from("hunter2"))
            .await
            .unwrap();
        let snapshot = RepoSnapshot::load(dir.path(), &provider).await.unwrap();
        assert_eq!(snapshot.versions(), BTreeMap::from([(path, 1)]));
    }

    #[tokio::test]
    async fn an_invalid_repository_lists_its_errors() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "nodes.vgo",
            "envoys:\n  - match: \"db*\"\n    roles: [nosuchrole]\n",
        );
        let provider = MemoryProvider::default();
        let err = RepoSnapshot::load(dir.path(), &provider).await.unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("1 error"), "{text}");
        assert!(text.contains("nodes.vgo:3"), "{text}");
    }
}
