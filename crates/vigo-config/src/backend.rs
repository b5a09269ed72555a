//! Opening the configured secrets backend.

use std::sync::Arc;

use vigo_secrets::{IsopassConfig, IsopassProvider, LocalProvider, SecretProvider};

use crate::{ConfigError, RawConfig, SecretsBackend};

/// Opens the backend `raw` configures.
///
/// - local: loads and checks the master key (mode 0600, 64 hex characters);
///   it does not create one (see
///   [`prepare_local_key`](crate::bootstrap::prepare_local_key)).
/// - isopass: checks the URL (HTTPS, or plain HTTP to loopback only), reads
///   and checks the token file once (regular file, owned by root or the
///   running user, mode 0600) and the optional CA file. Nothing is sent to
///   isopass yet: an unreachable isopass is noticed by the first fetch,
///   which names the secret (`resolving secret 'vigo/db/dsn': isopass
///   unreachable: connection refused`).
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
        SecretsBackend::Isopass {
            url,
            token_file,
            ca_file,
        } => {
            let provider = IsopassProvider::new(IsopassConfig {
                url: url.clone(),
                token_file: token_file.clone(),
                ca_file: ca_file.clone(),
            })
            .map_err(|cause| ConfigError::Backend {
                backend: "isopass",
                cause,
            })?;
            Ok(Arc::new(provider))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    use super::*;

    fn isopass_config(dir: &Path, url: &str) -> RawConfig {
        RawConfig::parse(
            &format!("secrets:\n  backend: isopass\n  url: \"{url}\"\n  token_file: token\n"),
            &dir.join("vigosrv.yaml"),
        )
        .unwrap()
    }

    /// A folder holding the file `token` with `contents` and `mode`.
    fn token_dir(contents: &str, mode: u32) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, contents).unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, token)
    }

    #[test]
    fn isopass_is_opened_without_contacting_it() {
        let (dir, _) = token_dir("tok-backend-canary\n", 0o600);
        // Nothing listens on port 9: opening still succeeds, as nothing is
        // sent until a secret is fetched.
        let provider = open_provider(&isopass_config(dir.path(), "http://127.0.0.1:9")).unwrap();
        assert_eq!(provider.backend(), "isopass");
        assert!(!format!("{provider:?}").contains("tok-backend-canary"));
    }

    #[test]
    fn an_unsafe_token_file_is_refused_with_a_chmod_hint() {
        let (dir, token) = token_dir("tok-backend-canary\n", 0o644);
        let err = open_provider(&isopass_config(dir.path(), "https://isopass.internal"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("opening the isopass secrets backend: isopass: token file"),
            "{err}"
        );
        assert!(
            err.contains(&format!("chmod 600 {}", token.display())),
            "{err}"
        );
        assert!(!err.contains("tok-backend-canary"));
    }

    #[test]
    fn plain_http_is_refused_off_loopback() {
        let (dir, _) = token_dir("tok\n", 0o600);
        assert!(open_provider(&isopass_config(dir.path(), "http://isopass.example.com")).is_err());
    }
}
