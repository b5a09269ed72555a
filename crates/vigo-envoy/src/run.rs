//! The check-in loop: enroll, check in, apply, report, wait.
//!
//! Nothing on the host changes unless the server answered with a catalog:
//! while the server cannot be reached the envoy only retries, with
//! exponential backoff and jitter.

use std::time::Duration;

use vigo_engine::{ApplyOptions, Engine, Report};
use vigo_proto::{CheckinRequest, CheckinResponse, ReportRequest};

use crate::{EnrollOutcome, EnvoyConfig, Identity, IdentityError, Session, SessionError};

/// First retry delay after a failed cycle.
const BACKOFF_START: Duration = Duration::from_secs(1);
/// Longest retry delay.
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// How often a pending envoy asks again whether it was approved.
const PENDING_POLL: Duration = Duration::from_secs(5);
/// Interval used until the server has told us its own.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// An envoy: its config, identity and engine.
#[derive(Debug)]
pub struct Envoy {
    config: EnvoyConfig,
    ca_pem: String,
    identity: Identity,
    engine: Engine,
}

/// What one cycle did.
#[derive(Debug)]
pub enum Cycle {
    /// The server said the catalog is current; nothing was applied.
    Unchanged {
        /// Until the next check-in.
        interval: Duration,
    },
    /// A catalog was applied (or, with noop, evaluated).
    Applied {
        /// Until the next check-in.
        interval: Duration,
        /// What happened.
        report: Box<Report>,
    },
}

/// Why a cycle failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The envoy waits for `vigocli envoys approve NAME`.
    #[error(
        "envoy '{name}' is waiting for approval: run `vigocli envoys approve {name}` on the server, or enroll with a token"
    )]
    Pending {
        /// The envoy's name.
        name: String,
    },
    /// The CA certificate could not be read.
    #[error("reading the server CA {}: {source}", file.display())]
    CaCert {
        /// The file.
        file: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Key, certificate or enrollment failed.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// A call to the server failed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The engine could not open its state.
    #[error(transparent)]
    Engine(#[from] vigo_engine::EngineError),
    /// The applied catalog's fingerprint could not be stored.
    #[error("saving envoy state: {0}")]
    State(String),
}

impl RunError {
    /// Whether the loop should retry with backoff (the server may come back).
    fn is_transient(&self) -> bool {
        match self {
            Self::Session(e) => e.is_transient(),
            Self::Identity(IdentityError::Session(e)) => e.is_transient(),
            _ => false,
        }
    }
}

impl Envoy {
    /// Prepares the envoy: reads the CA, loads or makes the key, opens the
    /// engine's state.
    pub fn open(config: EnvoyConfig) -> Result<Self, RunError> {
        let ca_pem =
            std::fs::read_to_string(&config.ca_cert).map_err(|source| RunError::CaCert {
                file: config.ca_cert.clone(),
                source,
            })?;
        let identity = Identity::load_or_create(&config.data_dir, &config.name)?;
        let engine = Engine::new(&config.data_dir)?;
        Ok(Self {
            config,
            ca_pem,
            identity,
            engine,
        })
    }

    /// The envoy's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// One cycle: enroll if needed, check in, apply what came back, report.
    pub async fn run_once(&mut self, noop: bool) -> Result<Cycle, RunError> {
        let session = self.ensure_enrolled().await?;
        let request = CheckinRequest {
            fingerprint: self.engine.state().catalog_fingerprint().map(str::to_owned),
            facts: facts(),
        };
        match session.checkin(&request).await? {
            CheckinResponse::Unchanged { interval_secs } => {
                tracing::info!(envoy = %self.config.name, "catalog unchanged");
                Ok(Cycle::Unchanged {
                    interval: Duration::from_secs(interval_secs),
                })
            }
            CheckinResponse::Catalog {
                interval_secs,
                fingerprint,
                catalog,
            } => {
                tracing::info!(
                    envoy = %self.config.name,
                    resources = catalog.resources.len(),
                    "applying catalog"
                );
                let report = self.engine.apply(&catalog, ApplyOptions { noop }).await;
                if !noop && !report.has_failures() {
                    // Only a fully applied catalog counts as current: after a
                    // failure the next check-in brings the whole catalog again.
                    self.engine
                        .state_mut()
                        .set_catalog_fingerprint(Some(fingerprint.clone()));
                    self.engine
                        .state()
                        .save()
                        .map_err(|e| RunError::State(e.to_string()))?;
                }
                session
                    .report(&ReportRequest {
                        fingerprint,
                        report: report.clone(),
                    })
                    .await?;
                Ok(Cycle::Applied {
                    interval: Duration::from_secs(interval_secs),
                    report: Box::new(report),
                })
            }
        }
    }

    /// Runs cycles until `shutdown` resolves. `on_report` sees every applied
    /// report (the binary prints it).
    pub async fn run_forever(
        &mut self,
        mut on_report: impl FnMut(&Report),
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut backoff = BACKOFF_START;
        let mut interval = DEFAULT_INTERVAL;
        loop {
            let pause = match self.run_once(false).await {
                Ok(cycle) => {
                    backoff = BACKOFF_START;
                    match cycle {
                        Cycle::Unchanged { interval: i } => interval = i,
                        Cycle::Applied {
                            interval: i,
                            report,
                        } => {
                            interval = i;
                            on_report(&report);
                        }
                    }
                    None
                }
                Err(RunError::Pending { name }) => {
                    tracing::info!(envoy = %name, "waiting for approval");
                    Some(PENDING_POLL)
                }
                Err(e) => {
                    if e.is_transient() {
                        tracing::warn!(error = %e, retry_in = ?backoff, "check-in failed");
                    } else {
                        tracing::error!(error = %e, retry_in = ?backoff, "check-in failed");
                    }
                    let pause = jitter(backoff);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    Some(pause)
                }
            };
            let wait = async {
                match pause {
                    Some(p) => tokio::time::sleep(p).await,
                    None => self.wait_for_next_checkin(interval).await,
                }
            };
            tokio::select! {
                () = wait => {}
                () = &mut shutdown => return,
            }
        }
    }

    /// Sleeps for `interval` (with jitter), returning early when the server
    /// answers the wait channel with "check in now".
    async fn wait_for_next_checkin(&self, interval: Duration) {
        let Some(identity) = self.identity.certified() else {
            return tokio::time::sleep(jitter(interval)).await;
        };
        let session = match Session::new(&self.config.server, &self.ca_pem, Some(&identity)) {
            Ok(s) => s,
            Err(_) => return tokio::time::sleep(jitter(interval)).await,
        };
        let called = async {
            loop {
                match session.wait().await {
                    Ok(answer) if answer.checkin_now => return,
                    Ok(_) => continue,
                    // The wait channel is an optimisation: when it fails,
                    // fall back to the interval alone, checking again later.
                    Err(_) => tokio::time::sleep(interval).await,
                }
            }
        };
        tokio::select! {
            () = tokio::time::sleep(jitter(interval)) => {}
            () = called => tracing::debug!("server asked for a check-in"),
        }
    }

    async fn ensure_enrolled(&mut self) -> Result<Session, RunError> {
        if !self.identity.is_enrolled() {
            let anonymous = Session::new(&self.config.server, &self.ca_pem, None)?;
            let token_file = self.config.enroll_token_file.clone();
            match self
                .identity
                .enroll(&anonymous, token_file.as_deref())
                .await?
            {
                EnrollOutcome::Enrolled => {
                    tracing::info!(envoy = %self.config.name, "enrolled");
                }
                EnrollOutcome::Pending => {
                    return Err(RunError::Pending {
                        name: self.config.name.clone(),
                    });
                }
            }
        }
        let identity = self.identity.certified();
        Ok(Session::new(
            &self.config.server,
            &self.ca_pem,
            identity.as_ref(),
        )?)
    }
}

/// `base` ± 10%, so a fleet started together does not check in together.
fn jitter(base: Duration) -> Duration {
    let mut byte = [0u8; 1];
    // A failing system RNG only costs the jitter, never the check-in.
    let _ = aws_lc_rs::rand::fill(&mut byte);
    let factor = 0.9 + 0.2 * (f64::from(byte[0]) / 255.0);
    base.mul_f64(factor)
}

/// Facts sent at check-in: never anything secret.
fn facts() -> serde_json::Map<String, serde_json::Value> {
    let mut facts = serde_json::Map::new();
    facts.insert("os".into(), std::env::consts::OS.into());
    facts.insert("arch".into(), std::env::consts::ARCH.into());
    facts.insert("hostname".into(), vigo_pki::host_name().into());
    if let Ok(kernel) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        facts.insert("kernel".into(), kernel.trim().into());
    }
    facts.insert("vigo_version".into(), env!("CARGO_PKG_VERSION").into());
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..100 {
            let d = jitter(Duration::from_secs(100));
            assert!(
                d >= Duration::from_secs(90) && d <= Duration::from_secs(110),
                "{d:?}"
            );
        }
    }

    #[test]
    fn facts_hold_no_environment() {
        let facts = facts();
        assert_eq!(facts["os"], "linux");
        assert!(facts.keys().all(|k| !k.to_lowercase().contains("env")));
    }
}
