//! The state every request handler shares.
//!
//! [`AppState`] is a cheap handle (`Arc`) to [`State`]. The parts that a
//! rotation replaces (the resolved config) sit behind a lock and are read as
//! an `Arc` snapshot, so a handler never holds the lock across an `await`.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, RwLock};

use vigo_config::{ConfigError, ServerConfig, fetch_secret, well_known};
use vigo_pki::CertifiedKey;
use vigo_secrets::{SecretPath, SecretProvider, SecretValue};

/// The secrets the server itself uses (SPEC 4.2), loaded at start.
#[derive(Debug, Clone)]
pub struct ServerSecrets {
    /// The CA: signs envoy certificates; its certificate is the trust root.
    pub ca: CertifiedKey,
    /// The server's TLS certificate and key.
    pub server: CertifiedKey,
    /// The admin API's bearer token.
    pub admin_token: SecretValue,
    /// The key of catalog fingerprints.
    pub hmac_key: SecretValue,
    /// The version of each of these secrets that was loaded.
    pub versions: BTreeMap<SecretPath, u64>,
}

impl ServerSecrets {
    /// Fetches every one of them; the first missing or unreadable secret is
    /// the error (`resolving secret 'vigo/tls/server_key': ...`).
    pub async fn load(provider: &dyn SecretProvider) -> Result<Self, ConfigError> {
        let mut versions = BTreeMap::new();
        let mut fetch = async |constant: &str| -> Result<SecretValue, ConfigError> {
            let path = well_known::path(constant);
            let found = fetch_secret(provider, &path).await?;
            versions.insert(path, found.version);
            Ok(found.value)
        };
        let ca_cert = fetch(well_known::CA_CERT).await?;
        let ca_key = fetch(well_known::CA_KEY).await?;
        let server_cert = fetch(well_known::SERVER_CERT).await?;
        let server_key = fetch(well_known::SERVER_KEY).await?;
        let admin_token = fetch(well_known::ADMIN_TOKEN).await?;
        let hmac_key = fetch(well_known::HMAC_KEY).await?;
        Ok(Self {
            ca: CertifiedKey {
                cert_pem: ca_cert.expose_secret().to_owned(),
                key_pem: ca_key,
            },
            server: CertifiedKey {
                cert_pem: server_cert.expose_secret().to_owned(),
                key_pem: server_key,
            },
            admin_token,
            hmac_key,
            versions,
        })
    }
}

/// What the handlers share. Later parts of the server (store, compiled
/// catalogs, rotation) add their fields here.
pub struct State {
    config: RwLock<Arc<ServerConfig>>,
    /// The configured secrets backend.
    pub provider: Arc<dyn SecretProvider>,
    /// The server's own secrets.
    pub secrets: ServerSecrets,
}

impl State {
    /// The current resolved server config.
    pub fn config(&self) -> Arc<ServerConfig> {
        // A poisoned lock only means a writer panicked between two whole
        // assignments of an `Arc`; the value is always complete.
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the resolved server config (after a rotation).
    pub fn replace_config(&self, config: ServerConfig) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
    }
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("config", &self.config())
            .field("provider", &self.provider)
            .field("secrets", &self.secrets)
            .finish()
    }
}

/// A shared handle to [`State`].
#[derive(Debug, Clone)]
pub struct AppState(Arc<State>);

impl AppState {
    /// Bundles the resolved config, the backend and the server's secrets.
    pub fn new(
        config: ServerConfig,
        provider: Arc<dyn SecretProvider>,
        secrets: ServerSecrets,
    ) -> Self {
        Self(Arc::new(State {
            config: RwLock::new(Arc::new(config)),
            provider,
            secrets,
        }))
    }
}

impl Deref for AppState {
    type Target = State;
    fn deref(&self) -> &State {
        &self.0
    }
}
