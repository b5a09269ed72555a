//! Opening the configured secrets backend.

use std::sync::Arc;

use vigo_secrets::{LocalProvider, SecretProvider};

use crate::{ConfigError, RawConfig, SecretsBackend};

/// Opens the backend `raw` configures. With the local backend this loads and
/// checks the master key (mode 0600, 64 hex characters); it does not create
/// one (see [`prepare_local_key`](crate::bootstrap::prepare_local_key)).
pub fn open_provider(raw: &RawConfig) -> Result<Arc<dyn SecretProvider>, ConfigError> {
    match &raw.secrets {
        SecretsBackend::Local {
            key_file,
            secrets_dir,
        } => {
            let provider = LocalProvider::open(key_file, secrets_dir).map_err(|cause| {
                ConfigError::Backend {
                    backend: "local",
                    cause,
                }
            })?;
            Ok(Arc::new(provider))
        }
        SecretsBackend::Isopass { .. } => Err(ConfigError::BackendUnavailable {
            backend: "isopass",
            file: raw.file.clone(),
        }),
    }
}
