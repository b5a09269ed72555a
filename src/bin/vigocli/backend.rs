//! Reaching the secrets backend the server config names. The CLI resolves
//! only what a command needs (never the server's DSN).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use vigo_config::{RawConfig, SecretsBackend};
use vigo_secrets::SecretProvider;

use crate::hint::WithHint;

/// The parsed server config and its opened backend.
#[derive(Debug)]
pub(crate) struct Backend {
    /// `vigosrv.yaml`, validated.
    pub(crate) raw: RawConfig,
    /// The configured secrets backend.
    pub(crate) provider: Arc<dyn SecretProvider>,
}

/// Reads `config` and opens its backend. With the local backend the master
/// key must exist: the CLI never generates one (that is the server's first
/// start, or `vigocli secrets bootstrap`).
pub(crate) fn open(config: &Path) -> anyhow::Result<Backend> {
    let raw = load_config(config)?;
    if let SecretsBackend::Local { key_file, .. } = &raw.secrets
        && !key_file.exists()
    {
        return vigo_config::open_provider(&raw)
            .map(|provider| Backend { raw: raw.clone(), provider })
            .hint("start vigosrv once (its first start generates the key), or run `vigocli secrets bootstrap`");
    }
    let provider = vigo_config::open_provider(&raw)?;
    Ok(Backend { raw, provider })
}

/// Reads and validates `config` without opening anything.
pub(crate) fn load_config(config: &Path) -> anyhow::Result<RawConfig> {
    RawConfig::load(config).context("loading server config")
}

/// The local backend's master key file and secrets folder; `None` when the
/// config names isopass, which has neither.
pub(crate) fn local_store(raw: &RawConfig) -> Option<(&Path, &Path)> {
    match &raw.secrets {
        SecretsBackend::Local {
            key_file,
            secrets_dir,
        } => Some((key_file, secrets_dir)),
        SecretsBackend::Isopass { .. } => None,
    }
}
