//! The config repository as the server serves it: a [`RepoSnapshot`] of the
//! loaded repository together with the value of every secret it references,
//! resolved once per load (docs/secrets.md "Fail-fast") so that compiling a catalog at check-in
//! never touches the secrets backend, and the [`Revision`] it was loaded
//! from (a content hash, and the git commit of a checkout).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vigo_compiler::{ConfigRepo, Diagnostics, MODULES_DIR, NODES_FILE};
use vigo_config::{ConfigError, fetch_secret};
use vigo_secrets::{SecretPath, SecretProvider, VersionedSecret};
use vigo_store::Timestamp;

/// A loaded config repository and the secrets it references.
#[derive(Debug, Clone, Default)]
pub(crate) struct RepoSnapshot {
    /// The validated repository (shared by the snapshots a rotation makes
    /// from it: a rotation re-resolves secrets, never re-reads files).
    pub repo: Arc<ConfigRepo>,
    /// Every secret in [`ConfigRepo::referenced_secrets`], with its version.
    pub secrets: BTreeMap<SecretPath, VersionedSecret>,
    /// Which content of `config_dir` this is, and when it was loaded.
    pub revision: Revision,
}

/// The identity of a loaded repository: a SHA-256 over the files the
/// compiler reads (`nodes.vgo` and `modules/*.vgo`, names and contents),
/// the git commit when `config_dir` is inside a git checkout, and when it
/// was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Revision {
    /// Lower-case hex SHA-256 of the repository's files.
    pub hash: String,
    /// The commit `HEAD` names, when `config_dir` is in a git checkout.
    pub git_commit: Option<String>,
    /// When this revision was loaded.
    pub loaded_at: Timestamp,
}

impl Default for Revision {
    fn default() -> Self {
        Self {
            hash: content_hash(&[]),
            git_commit: None,
            loaded_at: Timestamp::now(),
        }
    }
}

impl Revision {
    /// The revision of `config_dir` as it is on disk now.
    pub(crate) fn read(config_dir: &Path) -> Self {
        Self {
            hash: content_hash(&repo_files(config_dir)),
            git_commit: git_commit(config_dir),
            loaded_at: Timestamp::now(),
        }
    }

    /// The first 12 hex digits of the hash, for log lines and tables.
    pub(crate) fn short(&self) -> &str {
        self.hash.get(..12).unwrap_or(&self.hash)
    }
}

/// The files of the repository with their contents, sorted by relative
/// path; unreadable files count with an empty content (the load that
/// follows reports them).
fn repo_files(config_dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut add = |rel: String| {
        let bytes = std::fs::read(config_dir.join(&rel)).unwrap_or_default();
        files.push((rel, bytes));
    };
    if config_dir.join(NODES_FILE).is_file() {
        add(NODES_FILE.to_owned());
    }
    if let Ok(listing) = std::fs::read_dir(config_dir.join(MODULES_DIR)) {
        let mut names: Vec<String> = listing
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| name.ends_with(".vgo"))
            .collect();
        names.sort();
        for name in names {
            add(format!("{MODULES_DIR}/{name}"));
        }
    }
    files
}

/// SHA-256 over each file's relative path, length and bytes, in order.
fn content_hash(files: &[(String, Vec<u8>)]) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for (rel, bytes) in files {
        ctx.update(rel.as_bytes());
        ctx.update(&[0]);
        ctx.update(&(bytes.len() as u64).to_le_bytes());
        ctx.update(bytes);
    }
    hex::encode(ctx.finish().as_ref())
}

/// The commit `HEAD` names in the git checkout holding `dir` (this folder
/// or a parent), read from the files under `.git` (no git needed): a
/// detached `HEAD`, a loose ref or `packed-refs`; worktrees and submodules
/// (`.git` as a file) are followed. `None` outside a checkout or when
/// anything is unreadable.
pub(crate) fn git_commit(dir: &Path) -> Option<String> {
    let dir = std::path::absolute(dir).ok()?;
    let git_dir = dir.ancestors().find_map(git_dir_of)?;
    let head = std::fs::read_to_string(git_dir.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(reference) = head.strip_prefix("ref:") else {
        return is_object_id(head).then(|| head.to_owned());
    };
    let reference = reference.trim();
    if reference
        .split('/')
        .any(|part| part.is_empty() || part == "..")
    {
        return None;
    }
    // A linked worktree keeps its own HEAD; refs live in the common dir.
    let common = std::fs::read_to_string(git_dir.join("commondir"))
        .ok()
        .map(|c| git_dir.join(c.trim()))
        .unwrap_or_else(|| git_dir.clone());
    for base in [&git_dir, &common] {
        if let Ok(id) = std::fs::read_to_string(base.join(reference)) {
            let id = id.trim();
            if is_object_id(id) {
                return Some(id.to_owned());
            }
        }
    }
    let packed = std::fs::read_to_string(common.join("packed-refs")).ok()?;
    packed.lines().find_map(|line| {
        let (id, name) = line.split_once(' ')?;
        (name.trim() == reference && is_object_id(id)).then(|| id.to_owned())
    })
}

/// `<dir>/.git` as a folder, or the folder a `.git` file points to.
fn git_dir_of(dir: &Path) -> Option<PathBuf> {
    let dot_git = dir.join(".git");
    if dot_git.is_dir() {
        return Some(dot_git);
    }
    let text = std::fs::read_to_string(&dot_git).ok()?;
    let target = text.trim().strip_prefix("gitdir:")?.trim();
    Some(dir.join(target))
}

/// 40 (SHA-1) or 64 (SHA-256) hex digits.
fn is_object_id(text: &str) -> bool {
    matches!(text.len(), 40 | 64) && text.bytes().all(|b| b.is_ascii_hexdigit())
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
    pub(crate) async fn load(
        config_dir: &Path,
        provider: &dyn SecretProvider,
    ) -> Result<Self, RepoError> {
        Self::load_revision(config_dir, provider, Revision::read(config_dir)).await
    }

    /// [`RepoSnapshot::load`] for a `revision` the caller read just before.
    pub(crate) async fn load_revision(
        config_dir: &Path,
        provider: &dyn SecretProvider,
        revision: Revision,
    ) -> Result<Self, RepoError> {
        if !config_dir.join(NODES_FILE).is_file() {
            tracing::warn!(
                config_dir = %config_dir.display(),
                "no {NODES_FILE} in the config repository: every envoy gets an empty catalog"
            );
            return Ok(Self {
                revision,
                ..Self::default()
            });
        }
        let repo = ConfigRepo::load(config_dir).map_err(RepoError::Invalid)?;
        let secrets = resolve(&repo, provider).await?;
        Ok(Self {
            repo: Arc::new(repo),
            secrets,
            revision,
        })
    }

    /// The same repository and revision with every secret it references
    /// resolved again (a rotation): `config_dir` is not read, so an edit in
    /// progress there never blocks a rotation.
    pub(crate) async fn refresh_secrets(
        &self,
        provider: &dyn SecretProvider,
    ) -> Result<Self, RepoError> {
        let secrets = resolve(&self.repo, provider).await?;
        Ok(Self {
            repo: Arc::clone(&self.repo),
            secrets,
            revision: self.revision.clone(),
        })
    }

    /// The version of each resolved secret (numbers only).
    pub(crate) fn versions(&self) -> BTreeMap<SecretPath, u64> {
        self.secrets
            .iter()
            .map(|(path, secret)| (path.clone(), secret.version))
            .collect()
    }
}

/// Fetches every secret `repo` references; the first failure is the error.
async fn resolve(
    repo: &ConfigRepo,
    provider: &dyn SecretProvider,
) -> Result<BTreeMap<SecretPath, VersionedSecret>, RepoError> {
    let mut secrets = BTreeMap::new();
    for path in repo.referenced_secrets() {
        let found = fetch_secret(provider, &path)
            .await
            .map_err(RepoError::Resolve)?;
        secrets.insert(path, found);
    }
    Ok(secrets)
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
            .compile(
                "db1.example.com",
                &serde_json::Value::Null,
                &snapshot.secrets,
            )
            .unwrap();
        assert!(compiled.catalog.resources.is_empty());
    }

    /// A repository whose `db*` envoys get a file holding
    /// `secret:vigo/db/password`.
    fn write_db_repo(root: &Path) {
        write(
            root,
            "nodes.vgo",
            "envoys:\n  - match: \"db*\"\n    roles: [database]\n    vars:\n      pw: \"secret:vigo/db/password\"\n",
        );
        write(
            root,
            "modules/database.vgo",
            "resources:\n  - name: pw\n    type: file\n    target_path: /tmp/vigo-test-pw\n    content: \"{{ .Vars.pw }}\"\n",
        );
    }

    #[tokio::test]
    async fn every_referenced_secret_is_resolved_or_named() {
        let dir = tempfile::tempdir().unwrap();
        write_db_repo(dir.path());
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

    #[test]
    fn the_revision_hashes_what_the_compiler_reads() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let empty = Revision::read(root);
        write(root, "nodes.vgo", "envoys: []\n");
        write(root, "modules/web.vgo", "resources: []\n");
        let one = Revision::read(root);
        assert_ne!(one.hash, empty.hash);
        assert_eq!(one.hash.len(), 64);
        assert_eq!(one.short().len(), 12);
        // Files the compiler does not read do not count.
        write(root, "modules/.web.vgo.swp", "x");
        write(root, "README.md", "x");
        assert_eq!(Revision::read(root).hash, one.hash);
        // Content and names do.
        write(root, "modules/web.vgo", "resources: [] \n");
        let two = Revision::read(root);
        assert_ne!(two.hash, one.hash);
        std::fs::rename(root.join("modules/web.vgo"), root.join("modules/www.vgo")).unwrap();
        assert_ne!(Revision::read(root).hash, two.hash);
        assert_eq!(two.git_commit, None);
    }

    #[test]
    fn the_git_commit_is_read_from_the_checkout() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let config = root.join("config");
        std::fs::create_dir_all(&config).unwrap();
        let a = "1".repeat(40);
        let b = "2".repeat(40);
        // A branch as a loose ref, found from a subfolder of the checkout.
        write(root, ".git/HEAD", "ref: refs/heads/main\n");
        write(root, ".git/refs/heads/main", &format!("{a}\n"));
        assert_eq!(git_commit(&config), Some(a.clone()));
        // The same branch packed.
        std::fs::remove_file(root.join(".git/refs/heads/main")).unwrap();
        write(
            root,
            ".git/packed-refs",
            &format!("# pack-refs with: peeled fully-peeled sorted\n{b} refs/heads/main\n"),
        );
        assert_eq!(git_commit(&config), Some(b.clone()));
        // Detached.
        write(root, ".git/HEAD", &format!("{a}\n"));
        assert_eq!(git_commit(&config), Some(a.clone()));
        // A linked worktree: `.git` is a file; refs are in the common dir.
        write(&config, ".git", "gitdir: ../.git/worktrees/config\n");
        write(root, ".git/worktrees/config/HEAD", "ref: refs/heads/main\n");
        write(root, ".git/worktrees/config/commondir", "../..\n");
        assert_eq!(git_commit(&config), Some(b));
        // A ref that tries to leave the folder is refused.
        write(
            root,
            ".git/worktrees/config/HEAD",
            "ref: ../../../etc/passwd\n",
        );
        assert_eq!(git_commit(&config), None);
    }

    #[tokio::test]
    async fn refreshing_secrets_does_not_read_the_files() {
        let dir = tempfile::tempdir().unwrap();
        write_db_repo(dir.path());
        let provider = MemoryProvider::default();
        let path = SecretPath::parse("vigo/db/password").unwrap();
        provider
            .set(&path, &SecretValue::from("one"))
            .await
            .unwrap();
        let snapshot = RepoSnapshot::load(dir.path(), &provider).await.unwrap();
        std::fs::write(dir.path().join("modules/database.vgo"), "resources: [\n").unwrap();
        provider
            .set(&path, &SecretValue::from("two"))
            .await
            .unwrap();
        let refreshed = snapshot.refresh_secrets(&provider).await.unwrap();
        assert_eq!(refreshed.versions(), BTreeMap::from([(path, 2)]));
        assert_eq!(refreshed.revision, snapshot.revision);
        assert!(Arc::ptr_eq(&refreshed.repo, &snapshot.repo));
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
