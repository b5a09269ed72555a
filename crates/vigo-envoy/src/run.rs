//! The check-in loop: enroll, check in, enforce, report, wait.
//!
//! Every cycle enforces: the catalog this process last received is kept in
//! memory only (its secret values are `SecretValue`s, zeroized on drop; it
//! is never written to the data folder) and applied on every cycle, also
//! when the server answers "unchanged", so drift on the host is repaired.
//! A process that holds no catalog yet (a fresh loop, `run --once`) asks the
//! server for the full one.
//!
//! While the server cannot be reached the loop keeps enforcing the catalog
//! it last received, retrying the connection with exponential backoff and
//! jitter (at least once per check-in interval); an envoy that has never
//! reached the server in this process changes nothing.
//!
//! Reports: a cycle that received a catalog, or that changed or failed
//! something, posts one; a clean enforcement cycle posts none, and the next
//! check-in carries the time and counts of the last run instead.

use std::fmt;
use std::time::{Duration, Instant};

use vigo_catalog::{Catalog, Selected, Selection, SelectionError};
use vigo_engine::{ApplyOptions, Engine, Report, Summary};
use vigo_proto::{CheckinRequest, CheckinResponse, LastRun, ReportRequest};

use crate::{EnrollOutcome, EnvoyConfig, Identity, IdentityError, Session, SessionError};

/// First retry delay after a failed cycle.
const BACKOFF_START: Duration = Duration::from_secs(1);
/// Longest retry delay.
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// How often a pending envoy asks again whether it was approved.
const PENDING_POLL: Duration = Duration::from_secs(5);
/// Interval used until the server has told us its own.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// An envoy: its config, identity and engine, and the catalog it enforces.
#[derive(Debug)]
pub struct Envoy {
    config: EnvoyConfig,
    ca_pem: String,
    identity: Identity,
    engine: Engine,
    /// The catalog last received in this process (memory only).
    held: Option<Held>,
    /// When the last (non-noop) enforcement finished, and its counts.
    last_run: Option<(Instant, Summary)>,
    /// Whether the current cycle has applied the held catalog yet.
    enforced_this_cycle: bool,
    /// The report of a run the server could not be told about (it was
    /// unreachable); posted at the next successful check-in.
    unsent: Option<ReportRequest>,
}

/// The catalog an envoy process enforces: kept in memory only. Its secret
/// values are `SecretValue`s, wiped when it is dropped or replaced.
struct Held {
    fingerprint: String,
    catalog: Catalog,
}

impl fmt::Debug for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Held")
            .field("fingerprint", &self.fingerprint)
            .field("resources", &self.catalog.resources.len())
            .finish_non_exhaustive()
    }
}

impl Held {
    /// After an apply: the `_secret_triggered` flags of the resources that
    /// were applied are spent (the next cycle must not re-run a `when:
    /// changed` exec); a resource that failed keeps its flag and is retried.
    fn spend_triggers(&mut self, report: &Report) {
        for name in &report.secret_triggered_applied {
            if let Some(resource) = self.catalog.resources.iter_mut().find(|r| &r.name == name) {
                resource.secret_triggered = false;
            }
        }
    }
}

/// What one cycle did.
#[derive(Debug)]
pub enum Cycle {
    /// The server had nothing to send and this process holds no catalog:
    /// nothing was applied (an older server that ignores the request for a
    /// full catalog).
    Unchanged {
        /// Until the next check-in.
        interval: Duration,
    },
    /// The catalog was enforced (or, with noop, evaluated): the one just
    /// received, or the one held in memory when the server had nothing new.
    Applied {
        /// Until the next check-in.
        interval: Duration,
        /// What happened.
        report: Box<Report>,
        /// Whether the server sent the catalog in this cycle.
        received: bool,
    },
}

/// Why a cycle failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The envoy waits for `vigocli envoys approve NAME --fingerprint FP`.
    #[error(
        "envoy '{name}' is waiting for approval; its key fingerprint is {fingerprint}: on the server, check that `vigocli envoys show {name}` shows the same and run `vigocli envoys approve {name} --fingerprint {fingerprint}`, or enroll with a token"
    )]
    Pending {
        /// The envoy's name.
        name: String,
        /// SHA-256 of the envoy's public key (hex), for the operator to compare.
        fingerprint: String,
    },
    /// The CA certificate could not be read.
    #[error("reading the server CA {}", file.display())]
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
    #[error("saving envoy state")]
    State(#[source] vigo_engine::StateError),
    /// `--tags` or `--resource` named something the catalog does not have.
    #[error(transparent)]
    Selection(#[from] SelectionError),
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
        Self::open_with(config, Engine::new)
    }

    /// Like [`open`](Envoy::open), for `run --once --noop`: the engine only
    /// evaluates and takes no lock, so it works while the `run` loop holds
    /// the data folder (see [`Engine::for_noop`]).
    pub fn open_noop(config: EnvoyConfig) -> Result<Self, RunError> {
        Self::open_with(config, Engine::for_noop)
    }

    fn open_with(
        config: EnvoyConfig,
        engine: fn(&std::path::Path) -> Result<Engine, vigo_engine::EngineError>,
    ) -> Result<Self, RunError> {
        let ca_pem =
            std::fs::read_to_string(&config.ca_cert).map_err(|source| RunError::CaCert {
                file: config.ca_cert.clone(),
                source,
            })?;
        let identity = Identity::load_or_create(&config.data_dir, &config.name)?;
        let engine = engine(&config.data_dir)?;
        Ok(Self {
            config,
            ca_pem,
            identity,
            engine,
            held: None,
            last_run: None,
            enforced_this_cycle: false,
            unsent: None,
        })
    }

    /// The envoy's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Stops this envoy's applies from a signal handler (see
    /// [`vigo_engine::CancelHandle`]).
    pub fn cancel_handle(&self) -> vigo_engine::CancelHandle {
        self.engine.cancel_handle()
    }

    /// One cycle: enroll if needed, check in (asking for the full catalog
    /// when none is held), enforce the catalog, report when something
    /// changed or failed or a catalog arrived.
    pub async fn run_once(&mut self, noop: bool) -> Result<Cycle, RunError> {
        self.run_selected(noop, &Selection::default()).await
    }

    /// [`run_once`](Envoy::run_once) applying only what `selection` picks
    /// (`run --once --tags`, `--resource`; empty: everything). A partial
    /// run tells the server so, which then delivers only the triggers of
    /// the selected resources and clears no force-push; its catalog does
    /// not count as applied (the next check-in brings the whole catalog).
    /// A tag or name the catalog lacks is [`RunError::Selection`], and
    /// nothing is applied.
    pub async fn run_selected(
        &mut self,
        noop: bool,
        selection: &Selection,
    ) -> Result<Cycle, RunError> {
        self.enforced_this_cycle = false;
        let partial = !selection.is_empty();
        let session = self.ensure_enrolled().await?;
        let (facts, warnings) = crate::facts::collect(&self.config.facts_dir).await;
        for warning in &warnings {
            // Names the file and the cause only, never a fact value.
            tracing::warn!(envoy = %self.config.name, "{warning}");
        }
        let request = CheckinRequest {
            fingerprint: self.engine.state().catalog_fingerprint().map(str::to_owned),
            facts: facts.to_json(),
            full: self.held.is_none(),
            last_run: self.last_run.map(|(finished, summary)| LastRun {
                age_ms: u64::try_from(finished.elapsed().as_millis()).unwrap_or(u64::MAX),
                summary,
            }),
            noop,
            selection: partial.then(|| selection.clone()),
        };
        // A run request (`vigocli run`): always report, naming it. A noop
        // one is evaluated against the catalog it brings, which is not
        // kept: the held catalog stays the last real one.
        let mut run_request = None;
        let mut noop_run = None;
        let (interval_secs, received) = match session.checkin(&request).await? {
            CheckinResponse::Unchanged { interval_secs } => {
                tracing::debug!(envoy = %self.config.name, "catalog unchanged");
                (interval_secs, false)
            }
            CheckinResponse::Catalog {
                interval_secs,
                fingerprint,
                catalog,
                noop: true,
                run_request: asked,
            } => {
                tracing::info!(
                    envoy = %self.config.name,
                    run = asked.as_deref().unwrap_or("-"),
                    "noop run requested"
                );
                run_request = asked;
                noop_run = Some(Held {
                    fingerprint,
                    catalog: *catalog,
                });
                (interval_secs, false)
            }
            CheckinResponse::Catalog {
                interval_secs,
                fingerprint,
                catalog,
                noop: false,
                run_request: asked,
            } => {
                if let Some(run) = &asked {
                    tracing::info!(envoy = %self.config.name, run = %run, "run requested");
                }
                run_request = asked;
                tracing::info!(
                    envoy = %self.config.name,
                    resources = catalog.resources.len(),
                    "catalog received"
                );
                // The previous catalog (and its secret values) is dropped
                // and wiped here.
                self.held = Some(Held {
                    fingerprint,
                    catalog: *catalog,
                });
                (interval_secs, true)
            }
        };
        let interval = Duration::from_secs(interval_secs);
        if let Some(unsent) = self.unsent.take()
            && let Err(e) = session.report(&unsent).await
        {
            tracing::warn!(error = %vigo_log::error_chain(&e), "posting the report of an earlier run failed");
        }
        let (report, received, send) = if let Some(asked) = noop_run {
            let only = select(selection, &asked.catalog)?;
            let report = self
                .engine
                .apply(
                    &asked.catalog,
                    ApplyOptions {
                        noop: true,
                        only: only.as_ref(),
                    },
                )
                .await;
            drop(asked);
            (report, true, true)
        } else {
            let only = match &self.held {
                Some(held) => select(selection, &held.catalog)?,
                None => None,
            };
            let Some(report) = self.enforce(noop, only.as_ref()).await else {
                return Ok(Cycle::Unchanged { interval });
            };
            if received && !noop && !partial && !report.has_failures() {
                // Only a fully applied catalog counts as current: after a
                // failure or a partial run the next check-in brings the whole
                // catalog again.
                let fingerprint = self.held_fingerprint();
                self.engine
                    .state_mut()
                    .set_catalog_fingerprint(Some(fingerprint));
                self.engine.state().save().map_err(RunError::State)?;
            }
            let send =
                received || noop || partial || run_request.is_some() || needs_report(&report);
            (report, received, send)
        };
        if send {
            session
                .report(&ReportRequest {
                    fingerprint: self.held_fingerprint(),
                    report: report.clone(),
                    run_request,
                })
                .await?;
        }
        Ok(Cycle::Applied {
            interval,
            report: Box::new(report),
            received,
        })
    }

    /// Applies the held catalog, or `only` those of its resources (or,
    /// with noop, evaluates it); `None` when this process holds none. A
    /// real run spends the secret triggers it applied; a real run of the
    /// whole catalog becomes the "last run" of the next check-in.
    /// The fingerprint of the catalog held, empty before the first one.
    fn held_fingerprint(&self) -> String {
        self.held
            .as_ref()
            .map(|h| h.fingerprint.clone())
            .unwrap_or_default()
    }

    async fn enforce(&mut self, noop: bool, only: Option<&Selected>) -> Option<Report> {
        let held = self.held.as_mut()?;
        let report = self
            .engine
            .apply(&held.catalog, ApplyOptions { noop, only })
            .await;
        if !noop {
            held.spend_triggers(&report);
            if only.is_none() {
                self.last_run = Some((Instant::now(), report.summary));
            }
            self.enforced_this_cycle = true;
        }
        Some(report)
    }

    /// The server could not be reached: enforce the held catalog anyway
    /// (unless this cycle already did). A report worth sending is kept for
    /// the next successful check-in. `None` when nothing is held.
    async fn enforce_offline(&mut self) -> Option<Report> {
        if self.enforced_this_cycle {
            return None;
        }
        let report = self.enforce(false, None).await?;
        if needs_report(&report) {
            let fingerprint = self
                .held
                .as_ref()
                .map(|h| h.fingerprint.clone())
                .unwrap_or_default();
            self.unsent = Some(ReportRequest {
                fingerprint,
                report: report.clone(),
                run_request: None,
            });
        }
        Some(report)
    }

    /// Runs cycles until `shutdown` resolves. `on_report` sees the report of
    /// every cycle that received a catalog or changed or failed something
    /// (the binary prints it); clean enforcement cycles are only logged.
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
                            received,
                        } => {
                            interval = i;
                            if received || needs_report(&report) {
                                on_report(&report);
                            } else {
                                tracing::debug!(summary = %report.summary, "enforced; in sync");
                            }
                        }
                    }
                    None
                }
                Err(RunError::Pending { name, fingerprint }) => {
                    tracing::info!(
                        envoy = %name,
                        fingerprint = %fingerprint,
                        "waiting for approval: `vigocli envoys approve NAME --fingerprint FINGERPRINT`"
                    );
                    Some(PENDING_POLL)
                }
                Err(e) => {
                    let offline = e.is_transient();
                    if offline {
                        tracing::warn!(error = %vigo_log::error_chain(&e), retry_in = ?backoff, "check-in failed");
                    } else {
                        tracing::error!(error = %vigo_log::error_chain(&e), retry_in = ?backoff, "check-in failed");
                    }
                    let mut pause = backoff;
                    if offline && let Some(report) = self.enforce_offline().await {
                        tracing::info!(summary = %report.summary, "server unreachable: enforced the last catalog received");
                        if needs_report(&report) {
                            on_report(&report);
                        }
                    }
                    if self.held.is_some() {
                        // Enforcement goes on at least once per interval.
                        pause = pause.min(interval);
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    Some(jitter(pause))
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
                        name: self.config.name.to_string(),
                        fingerprint: self.identity.key_fingerprint().to_owned(),
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

/// What a run applies of `catalog`: `None` for everything.
fn select(selection: &Selection, catalog: &Catalog) -> Result<Option<Selected>, SelectionError> {
    if selection.is_empty() {
        return Ok(None);
    }
    selection.resolve(catalog).map(Some)
}

/// Whether a run must be reported even when no catalog arrived: it changed
/// (repaired) or failed something.
fn needs_report(report: &Report) -> bool {
    let s = &report.summary;
    s.changed > 0 || s.failed > 0 || s.skipped > 0
}

/// `base` ± 10%, so a fleet started together does not check in together.
fn jitter(base: Duration) -> Duration {
    let mut byte = [0u8; 1];
    // A failing system RNG only costs the jitter, never the check-in.
    let _ = aws_lc_rs::rand::fill(&mut byte);
    let factor = 0.9 + 0.2 * (f64::from(byte[0]) / 255.0);
    base.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::Path;

    use serde_json::json;

    /// An envoy whose server never answers (nothing listens on the port).
    fn offline_envoy(dir: &Path) -> Envoy {
        let ca = vigo_pki::generate_ca("Test CA").unwrap();
        std::fs::write(dir.join("ca.crt"), &ca.cert_pem).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let file = dir.join("envoy.yaml");
        std::fs::write(
            &file,
            format!(
                "server: https://127.0.0.1:{port}\nname: db1.example.com\nca_cert: ca.crt\ndata_dir: data\n"
            ),
        )
        .unwrap();
        Envoy::open(EnvoyConfig::load(&file).unwrap()).unwrap()
    }

    fn catalog(resources: serde_json::Value) -> Catalog {
        serde_json::from_value(json!({"envoy": "db1.example.com", "resources": resources})).unwrap()
    }

    fn hold(envoy: &mut Envoy, catalog: Catalog) {
        envoy.held = Some(Held {
            fingerprint: "f".repeat(64),
            catalog,
        });
    }

    #[tokio::test]
    async fn issue_11_a_fresh_envoy_that_never_reached_the_server_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut envoy = offline_envoy(dir.path());
        let err = envoy.run_once(false).await.unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert!(envoy.enforce_offline().await.is_none());
        assert!(envoy.last_run.is_none());
    }

    #[tokio::test]
    async fn issue_11_the_loop_keeps_enforcing_the_held_catalog_while_offline() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("app.conf");
        let mut envoy = offline_envoy(dir.path());
        hold(
            &mut envoy,
            catalog(json!([{
                "name": "app", "type": "file", "target_path": target,
                "content": [{"text": "port = 80\n"}], "mode": "0640",
            }])),
        );
        let mut reports = Vec::new();
        let restored = async {
            while !target.exists() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(
            Duration::from_secs(20),
            envoy.run_forever(|r| reports.push(r.summary), restored),
        )
        .await
        .expect("the held catalog was enforced while the server was down");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "port = 80\n");
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].changed, 1);
        // The repair is kept for the server, and counted as the last run.
        assert!(envoy.unsent.is_some());
        assert_eq!(envoy.last_run.map(|(_, s)| s.changed), Some(1));
        // Data folder: never the catalog.
        for entry in std::fs::read_dir(dir.path().join("data")).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                let bytes = std::fs::read(&path).unwrap();
                assert!(
                    !String::from_utf8_lossy(&bytes).contains("port = 80"),
                    "{}",
                    path.display()
                );
            }
        }
    }

    #[tokio::test]
    async fn issue_11_enforcement_repairs_drift_and_spends_secret_triggers_once() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("app.conf");
        let log = dir.path().join("ran.log");
        let mut envoy = offline_envoy(dir.path());
        let mut held = catalog(json!([
            {
                "name": "app", "type": "file", "target_path": target,
                "content": [{"text": "x\n"}], "mode": "0600",
            },
            {
                "name": "reload", "type": "exec", "when": "changed",
                "command": format!("echo ran >> {}", log.display()), "timeout_secs": 10,
            },
            {
                "name": "broken", "type": "exec", "when": "changed",
                "command": format!("echo broken >> {}; exit 1", log.display()),
                "timeout_secs": 10,
            },
        ]));
        held.resources[1].secret_triggered = true;
        held.resources[2].secret_triggered = true;
        hold(&mut envoy, held);

        let first = envoy.enforce(false, None).await.unwrap();
        assert_eq!(first.secret_triggered_applied, ["reload"]);
        let flags: Vec<bool> = envoy
            .held
            .as_ref()
            .unwrap()
            .catalog
            .resources
            .iter()
            .map(|r| r.secret_triggered)
            .collect();
        assert_eq!(
            flags,
            [false, false, true],
            "only the applied trigger is spent"
        );

        std::fs::remove_file(&target).unwrap();
        let second = envoy.enforce(false, None).await.unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "x\n");
        let status =
            |r: &Report, name: &str| r.resources.iter().find(|x| x.name == name).unwrap().status;
        assert_eq!(status(&second, "app"), vigo_engine::Status::Changed);
        assert_eq!(status(&second, "reload"), vigo_engine::Status::Unchanged);
        // The trigger of the failed exec is retried; the other exec ran once.
        let lines = std::fs::read_to_string(&log).unwrap();
        assert_eq!(lines, "ran\nbroken\nbroken\n");
    }

    #[test]
    fn issue_11_only_changes_and_failures_need_a_report() {
        let mut report = Report {
            envoy: "e".into(),
            noop: false,
            resources: Vec::new(),
            summary: Summary {
                total: 3,
                unchanged: 3,
                ..Summary::default()
            },
            secret_triggered_applied: Vec::new(),
            duration_ms: 1,
        };
        assert!(!needs_report(&report));
        report.summary.changed = 1;
        assert!(needs_report(&report));
        report.summary.changed = 0;
        report.summary.failed = 1;
        assert!(needs_report(&report));
    }

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
}
