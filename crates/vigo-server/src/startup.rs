//! Starting the server (docs/secrets.md "First start", "Fail-fast"): config, secrets backend, first
//! start, resolution of every secret, the exported CA certificate, TLS and
//! the listening socket. Every step either succeeds or ends the start with
//! an error; nothing falls back.

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;
use vigo_config::bootstrap::{self, KeyStep};
use vigo_config::{RawConfig, SecretsBackend};
use vigo_secrets::SecretValue;

use crate::gate::Ticket;
use crate::rotation::{RotationWorker, reconcile_at_startup};
use crate::supervise::supervise;
use crate::{AppState, RepoSnapshot, ServerError, ServerSecrets, router, serve_tls};

/// How often (in check-in flushes, one a second) histogram samples are
/// folded into their summaries.
const METRICS_UPKEEP_TICKS: u64 = 5;

/// A started server: everything loaded and the socket bound, not yet
/// serving.
#[derive(Debug)]
pub struct Server {
    state: AppState,
    rotation: RotationWorker,
    tls: Arc<rustls::ServerConfig>,
    listener: TcpListener,
    /// Holds check-ins until the start-up comparison of secret versions
    /// has queued its changes (docs/secrets.md "Rotation").
    reconciling: Ticket,
}

impl Server {
    /// Runs every startup step for the config file at `config_file`.
    pub async fn start(config_file: &Path) -> Result<Self, ServerError> {
        // SIGHUP reloads the config repository; from here on it never
        // ends the process (its default action), even before serving.
        if let Err(e) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            tracing::warn!(error = %e, "cannot handle SIGHUP; it would stop the server");
        }
        raise_open_file_limit();
        let raw = RawConfig::load(config_file)?;
        tracing::info!(config = %raw.file.display(), backend = raw.secrets.name(), "starting");

        let key_step = match &raw.secrets {
            SecretsBackend::Local {
                key_file,
                secrets_dir,
            } => bootstrap::prepare_local_key(key_file, secrets_dir)?,
            SecretsBackend::Isopass { .. } => KeyStep::Existing,
        };
        let provider = vigo_config::open_provider(&raw)?;
        if key_step == KeyStep::Generated {
            let created = bootstrap::ensure_generated_secrets(&*provider, &raw.data_dir).await?;
            tracing::info!(
                secrets = created.len(),
                "first start: generated the server's secrets"
            );
        }

        let config = vigo_config::resolve(&raw, &*provider).await?;
        let secrets = ServerSecrets::load(&*provider).await?;

        create_data_dir(&raw.data_dir)?;
        let ca_file = raw.ca_cert_file();
        write_public_file(&ca_file, secrets.ca.cert_pem.as_bytes())?;
        let fingerprint =
            vigo_pki::cert_fingerprint_sha256(&secrets.ca.cert_pem).map_err(ServerError::Tls)?;
        tracing::info!(path = %ca_file.display(), sha256 = %fingerprint, "wrote CA certificate");

        let tls = vigo_pki::server_tls_config(&secrets.server, &secrets.ca.cert_pem)
            .map_err(ServerError::Tls)?;

        let store = vigo_store::connect(&config.database_dsn)
            .await
            .map_err(ServerError::Store)?;
        tracing::info!(backend = %store.backend(), "database ready");
        let repo = RepoSnapshot::load(&raw.config_dir, &*provider)
            .await
            .map_err(|source| ServerError::Repo {
                dir: raw.config_dir.clone(),
                source: Box::new(source),
            })?;
        tracing::info!(
            config_dir = %raw.config_dir.display(),
            secrets = repo.secrets.len(),
            revision = repo.revision.short(),
            git_commit = repo.revision.git_commit.as_deref().unwrap_or("-"),
            "config repository loaded"
        );

        let listener = TcpListener::bind(raw.listen)
            .await
            .map_err(|source| ServerError::Bind {
                addr: raw.listen,
                source,
            })?;
        let (state, rotation) = AppState::new(config, provider, secrets, store, repo);
        crate::deploy::record_startup(&state);
        let reconciling = state.rotation.hold();
        Ok(Self {
            state,
            rotation,
            tls,
            listener,
            reconciling,
        })
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        // A bound TCP socket always has a local address; fall back to the
        // configured one rather than panic.
        self.listener
            .local_addr()
            .unwrap_or_else(|_| self.state.config().raw.listen)
    }

    /// The shared state the handlers see.
    #[cfg(test)]
    pub(crate) fn state(&self) -> &AppState {
        &self.state
    }

    /// The admin API's bearer token (`vigo/server/admin_token`), as loaded.
    pub fn admin_token(&self) -> &SecretValue {
        &self.state.secrets.admin_token
    }

    /// Serves HTTPS until `shutdown` completes, then ends held waits,
    /// finishes the requests in flight and returns. Alongside: the rotation
    /// flow, the config reloader (watcher and SIGHUP) and the check-in
    /// writer — each supervised: restarted when it fails, `/healthz` 503
    /// meanwhile — the secret watchers and, once, the start-up
    /// reconciliation of secret versions (docs/secrets.md "Rotation"), which check-ins wait
    /// for.
    pub async fn serve<F>(self, shutdown: F)
    where
        F: Future<Output = ()> + Send,
    {
        tracing::info!(address = %self.local_addr(), "listening");
        let state = self.state.clone();
        let upkeep = supervise(self.state.health.clone(), "checkin-writer", {
            let state = self.state.clone();
            move || {
                let state = state.clone();
                async move {
                    let mut ticks = 0u64;
                    loop {
                        tokio::time::sleep(crate::FLUSH_INTERVAL).await;
                        state.flush_checkins().await;
                        ticks += 1;
                        if ticks.is_multiple_of(METRICS_UPKEEP_TICKS) {
                            state.metrics.run_upkeep();
                        }
                    }
                }
            }
        });
        let rotation = self.rotation.spawn(self.state.clone());
        // Wake-ups from other replicas (PostgreSQL) and the one sweep of
        // held waits.
        let fleet_wake = supervise_on(&self.state, "wake-listener", crate::fleet_wake::run);
        let pruner = supervise_on(&self.state, "history-pruner", crate::history::run_pruner);
        let mailer = supervise_on(&self.state, "mailer", crate::notify::run_mailer);
        let stale_watch = supervise_on(&self.state, "stale-watch", crate::notify::run_stale_watch);
        let reloader = supervise_on(&self.state, "config-reloader", crate::deploy::run_reloader);
        let (stop_watchers, watchers_stopped) = tokio::sync::oneshot::channel::<()>();
        let watchers = crate::spawn_watchers(
            self.state.clone(),
            self.state.rotation.clone(),
            async move {
                let _ = watchers_stopped.await;
            },
        );
        let reconcile = tokio::spawn({
            let state = self.state.clone();
            let reconciling = self.reconciling;
            async move {
                if let Err(e) = reconcile_at_startup(&state).await {
                    tracing::error!(error = %crate::error_chain(&e), "start-up reconciliation of secret versions failed");
                }
                drop(reconciling);
            }
        });
        let waiters = self.state.clone();
        let shutdown = async move {
            shutdown.await;
            // Held `/v1/wait` requests answer at once, so draining does
            // not wait for them.
            waiters.waiters.shut_down();
        };
        let max_per_address = self.state.config().raw.max_per_address;
        serve_tls(
            self.listener,
            self.tls,
            router(self.state),
            max_per_address,
            shutdown,
        )
        .await;
        upkeep.abort();
        fleet_wake.abort();
        reloader.abort();
        pruner.abort();
        mailer.abort();
        stale_watch.abort();
        reconcile.abort();
        let _ = stop_watchers.send(());
        let _ = watchers.await;
        rotation.abort();
        state.flush_checkins().await;
        state.store().close().await;
        tracing::info!("server stopped");
    }
}

/// Runs `task(state)` as the supervised background task `name`.
fn supervise_on<Fut>(
    state: &AppState,
    name: &'static str,
    task: fn(AppState) -> Fut,
) -> tokio::task::JoinHandle<()>
where
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let state = state.clone();
    supervise(state.health.clone(), name, move || task(state.clone()))
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!(signal = "SIGTERM", "stopping"),
                _ = int.recv() => tracing::info!(signal = "SIGINT", "stopping"),
            }
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM/SIGINT; stop the server with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}

/// Raises the soft open-file limit (`RLIMIT_NOFILE`) to the hard one:
/// every envoy holding a wait keeps a connection open, and the listener
/// accepts connections up to this limit (`listener.rs`).
fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::info!(from = soft, to = hard, "raised the open-file limit"),
            Err(e) => tracing::warn!(limit = soft, error = %e, "cannot raise the open-file limit"),
        },
        Ok(_) | Err(_) => {}
    }
}

/// Creates `data_dir` (mode 0700) when it does not exist yet.
fn create_data_dir(dir: &Path) -> Result<(), ServerError> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| ServerError::WriteFile {
            file: dir.to_owned(),
            source,
        })
}

/// Writes a public file atomically with mode 0644 (see `vigo_fs`).
fn write_public_file(file: &Path, contents: &[u8]) -> Result<(), ServerError> {
    vigo_fs::replace_file(file, contents, 0o644).map_err(|source| ServerError::WriteFile {
        file: file.to_owned(),
        source,
    })
}
