//! The state every request handler shares.
//!
//! [`AppState`] is a cheap handle (`Arc`) to [`State`]. The parts that a
//! rotation replaces (the resolved config, the config repository snapshot)
//! sit behind a lock and are read as an `Arc` snapshot, so a handler never
//! holds the lock across an `await`.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, RwLock};

use vigo_compiler::Diagnostics;
use vigo_config::{ConfigError, ServerConfig, fetch_secret, well_known};
use vigo_pki::CertifiedKey;
use vigo_secrets::{SecretPath, SecretProvider, SecretValue};
use vigo_store::StoreHandle;

use crate::catalogs::{CatalogCache, CompiledCatalog};
use crate::checkins::CheckinBuffer;
use crate::deploy::DeployState;
use crate::metrics::Metrics;
use crate::repo::RepoSnapshot;
use crate::rotation::{RotationQueue, RotationWorker};
use crate::supervise::Health;
use crate::waiters::Waiters;

/// The secrets the server itself uses (docs/secrets.md "First start"), loaded at start.
#[derive(Debug, Clone)]
pub(crate) struct ServerSecrets {
    /// The CA: signs envoy certificates; its certificate is the trust root.
    pub ca: CertifiedKey,
    /// The server's TLS certificate and key.
    pub server: CertifiedKey,
    /// The admin API's bearer token.
    pub admin_token: SecretValue,
    /// The key of catalog fingerprints.
    pub hmac_key: SecretValue,
}

impl ServerSecrets {
    /// Fetches every one of them; the first missing or unreadable secret is
    /// the error (`resolving secret 'vigo/tls/server_key': ...`).
    pub(crate) async fn load(provider: &dyn SecretProvider) -> Result<Self, ConfigError> {
        let fetch = async |constant: &str| -> Result<SecretValue, ConfigError> {
            let path = well_known::path(constant);
            Ok(fetch_secret(provider, &path).await?.value)
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
        })
    }
}

/// What the handlers share.
pub(crate) struct State {
    config: RwLock<Arc<ServerConfig>>,
    /// The configured secrets backend.
    pub provider: Arc<dyn SecretProvider>,
    /// The server's own secrets.
    pub secrets: ServerSecrets,
    /// The database (envoys, tokens, triggers, reports, ...); read it with
    /// [`State::store`], swap it with [`State::replace_store`] (a rotated
    /// DSN).
    store: RwLock<StoreHandle>,
    /// The config repository and its resolved secrets; read it with
    /// [`State::repo`], replace it with [`State::replace_repo`].
    pub repo: RwLock<Arc<RepoSnapshot>>,
    /// Envoys holding `GET /v1/wait`; wake one after setting force-push or
    /// queueing triggers for it (other replicas learn it from the store's
    /// notification, see `fleet_wake.rs`).
    pub waiters: Waiters,
    /// The Prometheus metrics of this server.
    pub metrics: Metrics,
    /// The queue into the rotation flow (docs/secrets.md "Rotation").
    pub rotation: RotationQueue,
    /// Unchanged check-ins waiting to be written.
    pub checkins: CheckinBuffer,
    /// How many reports each envoy may still store (`limits.rs`).
    pub reports: crate::limits::ReportLimiter,
    /// Held while the config and repository are reloaded.
    pub(crate) reloading: tokio::sync::Mutex<()>,
    /// The supervised background tasks that are running (`/healthz`).
    pub health: Health,
    /// Events for the notification mail (`notify.rs`).
    pub(crate) notifier: crate::notify::Notifier,
    /// Deploys of the config repository: its folder, the last attempts.
    pub(crate) deploy: DeployState,
    /// Faults the unit tests inject into background tasks.
    #[cfg(test)]
    pub(crate) faults: Faults,
    catalogs: CatalogCache,
}

/// Faults the unit tests inject: each counter is how many times to fail.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Panics in the rotation worker's loop (caught by its supervisor).
    pub(crate) worker_panics: std::sync::atomic::AtomicU32,
    /// Panics in the flow of one batch (caught per batch).
    pub(crate) flow_panics: std::sync::atomic::AtomicU32,
}

#[cfg(test)]
impl Faults {
    /// Whether to fail now (decrements `counter` when it is not zero).
    pub(crate) fn take(&self, counter: &std::sync::atomic::AtomicU32) -> bool {
        use std::sync::atomic::Ordering;
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

impl State {
    /// The current resolved server config.
    pub(crate) fn config(&self) -> Arc<ServerConfig> {
        // A poisoned lock only means a writer panicked between two whole
        // assignments of an `Arc`; the value is always complete.
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the resolved server config (after a rotation).
    pub(crate) fn replace_config(&self, config: ServerConfig) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
    }

    /// The current database pool.
    pub(crate) fn store(&self) -> StoreHandle {
        // As for `config`: the lock only ever guards whole `Arc` swaps.
        self.store.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts a new database pool in service (the DSN was rotated) and returns
    /// the old one, for the caller to drain and close.
    pub(crate) fn replace_store(&self, store: StoreHandle) -> StoreHandle {
        std::mem::replace(
            &mut *self.store.write().unwrap_or_else(|e| e.into_inner()),
            store,
        )
    }

    /// Writes the buffered check-ins now; a failure is logged.
    pub(crate) async fn flush_checkins(&self) {
        if let Err(e) = self.checkins.flush(&*self.store()).await {
            tracing::error!(error = %crate::error_chain(&e), "recording check-ins failed");
        }
    }

    /// Every secret the server currently serves (server config and config
    /// repository) with the version it resolved.
    pub(crate) fn held_versions(&self) -> BTreeMap<SecretPath, u64> {
        let mut held = self.config().versions.clone();
        held.extend(self.repo().versions());
        held
    }

    /// The current config repository snapshot.
    pub(crate) fn repo(&self) -> Arc<RepoSnapshot> {
        // As for `config`: the lock only ever guards whole `Arc` swaps.
        self.repo.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the config repository snapshot (a reload or a rotation);
    /// catalogs compiled from the old one are forgotten.
    pub(crate) fn replace_repo(&self, snapshot: RepoSnapshot) {
        *self.repo.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(snapshot);
        self.catalogs.clear();
    }

    /// The catalog of `envoy` with these facts compiled from the current
    /// snapshot (cached until the snapshot is replaced or the facts change).
    pub(crate) fn catalog(
        &self,
        envoy: &str,
        facts: &serde_json::Value,
    ) -> Result<Arc<CompiledCatalog>, Diagnostics> {
        self.catalogs.get(
            &self.repo(),
            envoy,
            facts,
            &self.secrets.hmac_key,
            &self.metrics,
        )
    }
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("config", &self.config())
            .field("provider", &self.provider)
            .field("secrets", &self.secrets)
            .field("store", &self.store())
            .field("repo", &self.repo())
            .field("waiters", &self.waiters)
            .field("catalogs", &self.catalogs)
            .finish_non_exhaustive()
    }
}

/// A shared handle to [`State`].
#[derive(Debug, Clone)]
pub(crate) struct AppState(Arc<State>);

impl AppState {
    /// Bundles the resolved config, the backend, the server's secrets, the
    /// database and the config repository; the returned worker runs the
    /// rotation flow once spawned with [`RotationWorker::spawn`]. Held
    /// waits are woken, never polled (`waiters.rs`, `fleet_wake.rs`).
    pub(crate) fn new(
        config: ServerConfig,
        provider: Arc<dyn SecretProvider>,
        secrets: ServerSecrets,
        store: StoreHandle,
        repo: RepoSnapshot,
    ) -> (Self, RotationWorker) {
        let (rotation, worker) = RotationQueue::channel();
        let deploy = DeployState::new(&config.raw.config_dir);
        let state = Self(Arc::new(State {
            config: RwLock::new(Arc::new(config)),
            provider,
            secrets,
            store: RwLock::new(store),
            repo: RwLock::new(Arc::new(repo)),
            waiters: Waiters::new(),
            metrics: Metrics::new(),
            rotation,
            checkins: CheckinBuffer::default(),
            reports: crate::limits::ReportLimiter::default(),
            reloading: tokio::sync::Mutex::new(()),
            health: Health::default(),
            notifier: crate::notify::Notifier::default(),
            deploy,
            #[cfg(test)]
            faults: Faults::default(),
            catalogs: CatalogCache::default(),
        }));
        (state, worker)
    }
}

impl Deref for AppState {
    type Target = State;
    fn deref(&self) -> &State {
        &self.0
    }
}
