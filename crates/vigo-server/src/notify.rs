//! Notification mail (docs/operations.md "Notification mail"): a run
//! failed, an envoy went stale, an enrollment waits for approval, a
//! rotation or a config reload failed.
//!
//! The paths that see an event call [`Notifier::notify`], which never
//! waits: the event goes into a bounded queue (beyond [`QUEUE_CAPACITY`],
//! events are counted, not kept). One background task, the mailer, sends
//! what has gathered as one mail, at most one mail per `smtp.interval`
//! [60s]; while the SMTP server cannot be reached or refuses, the events
//! stay gathered and the mailer retries with a pause that doubles from the
//! interval (at most [`FIRST_RETRY_CAP`]) up to [`LONGEST_RETRY`]. Nothing
//! else waits on it.
//!
//! Each mail is built from the `smtp` section of the config that serves at
//! that moment, so a rotated `smtp.password` is used by the next mail (the
//! rotation flow resolves the server config again). A mail holds names,
//! counts, times and the same messages the log holds, which never carry a
//! secret value; never a diff or a resource's content.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tokio::sync::{Mutex, mpsc};
use tokio::time::Instant;
use vigo_config::{SmtpConfig, SmtpTls};
use vigo_store::{EnvoyState, EnvoyStatus, Timestamp};

use crate::AppState;

/// Events kept waiting for the next mail; more are counted and the mail
/// says how many were left out.
pub(crate) const QUEUE_CAPACITY: usize = 1000;

/// How long the mailer gathers after the first event of a quiet period, so
/// a burst (one bad deploy failing many envoys) makes one mail.
const GATHER: Duration = Duration::from_secs(2);

/// The first pause after a failed send is the interval, at most this.
const FIRST_RETRY_CAP: Duration = Duration::from_secs(30);

/// The longest pause between two attempts while the SMTP server is down.
const LONGEST_RETRY: Duration = Duration::from_secs(15 * 60);

/// How long one SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest time between two looks for envoys that went stale.
const STALE_SCAN_MAX: Duration = Duration::from_secs(60);

/// Something an operator is told about by mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// An enforcement run reported failed resources.
    RunFailed {
        /// The envoy.
        envoy: String,
        /// The resources that failed (`type[name]`), in report order.
        failed: Vec<String>,
    },
    /// An approved envoy has not checked in for three intervals.
    EnvoyStale {
        /// The envoy.
        envoy: String,
        /// Its last check-in, if it ever checked in.
        last_checkin: Option<Timestamp>,
    },
    /// A new enrollment request waits for `vigocli envoys approve`.
    EnrollmentPending {
        /// The name it asks for.
        envoy: String,
        /// The fingerprint of its key, to approve it by.
        fingerprint: String,
        /// The address it came from.
        remote: String,
    },
    /// The rotation flow failed; the last good state keeps serving.
    RotationFailed {
        /// The secret paths of the batch.
        paths: String,
        /// The error and its causes, as logged.
        error: String,
    },
    /// A config reload failed; the last good revision keeps serving.
    ConfigReloadFailed {
        /// What asked for the reload.
        by: String,
        /// Each problem, as logged (file:line:col and message).
        problems: Vec<String>,
    },
}

impl Event {
    /// One line for the subject of a mail that holds only this event.
    fn subject(&self) -> String {
        match self {
            Self::RunFailed { envoy, .. } => format!("run failed on {envoy}"),
            Self::EnvoyStale { envoy, .. } => format!("envoy {envoy} stopped checking in"),
            Self::EnrollmentPending { envoy, .. } => {
                format!("enrollment of {envoy} waits for approval")
            }
            Self::RotationFailed { .. } => "rotation failed".to_owned(),
            Self::ConfigReloadFailed { .. } => "config reload failed".to_owned(),
        }
    }

    /// The lines of the body that describe this event.
    fn describe(&self, out: &mut String) {
        match self {
            Self::RunFailed { envoy, failed } => {
                out.push_str(&format!(
                    "Run failed on envoy {envoy}: {} failed: {}.\n  See: vigocli reports {envoy} --failed\n",
                    plural(failed.len(), "resource", "resources"),
                    failed.join(", ")
                ));
            }
            Self::EnvoyStale {
                envoy,
                last_checkin,
            } => {
                let last = last_checkin.map_or_else(|| "never".to_owned(), rfc3339);
                out.push_str(&format!(
                    "Envoy {envoy} stopped checking in (last check-in: {last}).\n  See: vigocli envoys show {envoy}\n"
                ));
            }
            Self::EnrollmentPending {
                envoy,
                fingerprint,
                remote,
            } => {
                out.push_str(&format!(
                    "Enrollment request from {remote} for envoy {envoy}, key fingerprint {fingerprint}.\n  Approve it if the fingerprint is the one the host prints:\n  vigocli envoys approve {envoy} --fingerprint {fingerprint}\n"
                ));
            }
            Self::RotationFailed { paths, error } => {
                out.push_str(&format!(
                    "Rotation of {paths} failed; the last good state keeps serving: {error}\n"
                ));
            }
            Self::ConfigReloadFailed { by, problems } => {
                out.push_str(&format!(
                    "Config reload ({by}) failed; the last good revision keeps serving:\n"
                ));
                for problem in problems {
                    out.push_str(&format!("  {problem}\n"));
                }
                out.push_str("  See: vigocli config status\n");
            }
        }
    }
}

/// An event with the time it happened.
#[derive(Debug, Clone)]
struct Stamped {
    at: Timestamp,
    event: Event,
}

/// The producers' side: a bounded queue into the mailer.
#[derive(Debug, Clone)]
pub(crate) struct Notifier {
    tx: mpsc::Sender<Stamped>,
    rx: Arc<Mutex<mpsc::Receiver<Stamped>>>,
    /// Events not queued because the queue was full.
    dropped: Arc<AtomicU64>,
    /// Envoys whose last run failed, with the failed resources mailed: the
    /// same failure again is not mailed again.
    failing: Arc<std::sync::Mutex<HashMap<String, Vec<String>>>>,
}

impl Default for Notifier {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        Self {
            tx,
            rx: Arc::new(Mutex::new(rx)),
            dropped: Arc::new(AtomicU64::new(0)),
            failing: Arc::default(),
        }
    }
}

impl Notifier {
    /// Queues `event` for the next mail; never waits. Without an `smtp`
    /// section the event is dropped by the mailer.
    pub(crate) fn notify(&self, event: Event) {
        let stamped = Stamped {
            at: Timestamp::now(),
            event,
        };
        if self.tx.try_send(stamped).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A run of `envoy` failed these resources (`type[name]`): an
    /// [`Event::RunFailed`], unless its previous run failed exactly these.
    pub(crate) fn run_failed(&self, envoy: &str, failed: Vec<String>) {
        {
            let mut failing = self.failing();
            if failing.get(envoy) == Some(&failed) {
                tracing::debug!(envoy, "run failed as the previous one; not mailed again");
                return;
            }
            failing.insert(envoy.to_owned(), failed.clone());
        }
        self.notify(Event::RunFailed {
            envoy: envoy.to_owned(),
            failed,
        });
    }

    /// A run of `envoy` failed nothing: its next failure is mailed.
    pub(crate) fn run_clean(&self, envoy: &str) {
        let mut failing = self.failing();
        if !failing.is_empty() {
            failing.remove(envoy);
        }
    }

    fn failing(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<String>>> {
        // Every change is one insert or remove.
        self.failing.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why a mail was not sent. Its text never holds a secret: addresses and
/// the host are shown as written in the config, `[secret:PATH]` for a
/// reference.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MailError {
    /// The server config has no `smtp` section.
    #[error(
        "no mail is sent: vigosrv.yaml has no smtp section (docs/operations.md, \"Notification mail\")"
    )]
    NotConfigured,
    /// An address in `smtp.from` or `smtp.to` does not parse.
    #[error("{key} '{shown}' is not a mail address")]
    Address {
        /// `smtp.from` or `smtp.to`.
        key: &'static str,
        /// The address as written.
        shown: String,
        /// The parser's complaint.
        #[source]
        source: lettre::address::AddressError,
    },
    /// `smtp.ca_file` cannot be read or holds no certificate.
    #[error("smtp.ca_file {}: cannot use it as the SMTP server's CA", file.display())]
    CaFile {
        /// The file.
        file: std::path::PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The message could not be built.
    #[error("building the mail")]
    Build(#[source] lettre::error::Error),
    /// The SMTP conversation failed (connect, TLS, authentication, refusal).
    #[error("sending through the SMTP server {server}")]
    Send {
        /// `HOST:PORT` as shown.
        server: String,
        /// lettre's error.
        #[source]
        source: lettre::transport::smtp::Error,
    },
}

/// The SMTP server of `smtp` as it may be shown: `HOST:PORT`.
pub(crate) fn server_shown(smtp: &SmtpConfig) -> String {
    format!("{}:{}", smtp.host.shown(), smtp.port)
}

/// The recipients of `smtp` as they may be shown.
pub(crate) fn recipients_shown(smtp: &SmtpConfig) -> Vec<String> {
    smtp.to.iter().map(|to| to.shown()).collect()
}

/// Sends one mail with `subject` and the plain-text `body` to every
/// `smtp.to`, through the SMTP server of `smtp`.
pub(crate) async fn send_mail(
    smtp: &SmtpConfig,
    subject: &str,
    body: String,
) -> Result<(), MailError> {
    let mailbox = |key: &'static str, address: &vigo_config::ResolvedString| {
        address
            .expose()
            .parse::<Mailbox>()
            .map_err(|source| MailError::Address {
                key,
                shown: address.shown(),
                source,
            })
    };
    let mut message = Message::builder()
        .from(mailbox("smtp.from", &smtp.from)?)
        .subject(format!("[vigo] {subject}"))
        .header(ContentType::TEXT_PLAIN);
    for to in &smtp.to {
        message = message.to(mailbox("smtp.to", to)?);
    }
    let message = message.body(body).map_err(MailError::Build)?;
    let transport = transport(smtp)?;
    transport
        .send(message)
        .await
        .map(drop)
        .map_err(|source| MailError::Send {
            server: server_shown(smtp),
            source,
        })
}

/// A transport for one conversation with the SMTP server of `smtp`.
fn transport(smtp: &SmtpConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
    let host = smtp.host.expose();
    let tls = match smtp.tls {
        SmtpTls::None => Tls::None,
        SmtpTls::Starttls => Tls::Required(tls_parameters(smtp, host)?),
        SmtpTls::Implicit => Tls::Wrapper(tls_parameters(smtp, host)?),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(smtp.port)
        .tls(tls)
        .timeout(Some(SMTP_TIMEOUT));
    if let Some(username) = &smtp.username {
        // lettre keeps its own copy of the password for the conversation;
        // `Credentials` has no Debug, and the transport is dropped after it.
        let password = smtp
            .password
            .as_ref()
            .map(|p| p.expose_secret().to_owned())
            .unwrap_or_default();
        builder = builder.credentials(Credentials::new(username.expose().to_owned(), password));
    }
    Ok(builder.build())
}

/// TLS for `host`: the system's trust store, or only `smtp.ca_file`.
fn tls_parameters(smtp: &SmtpConfig, host: &str) -> Result<TlsParameters, MailError> {
    let mut builder = TlsParameters::builder(host.to_owned());
    if let Some(file) = &smtp.ca_file {
        let ca_error = |source: Box<dyn std::error::Error + Send + Sync>| MailError::CaFile {
            file: file.clone(),
            source,
        };
        let pem = std::fs::read(file).map_err(|e| ca_error(Box::new(e)))?;
        let certificate = Certificate::from_pem(&pem).map_err(|e| ca_error(Box::new(e)))?;
        builder = builder
            .certificate_store(CertificateStore::None)
            .add_root_certificate(certificate);
    }
    builder.build_rustls().map_err(|source| MailError::Send {
        server: server_shown(smtp),
        source,
    })
}

/// The mail for `events` (in the order they happened) and `left_out` more.
fn compose(events: &[Stamped], left_out: u64) -> (String, String) {
    let subject = match events {
        [one] if left_out == 0 => one.event.subject(),
        _ => plural(
            events.len() + usize::try_from(left_out).unwrap_or(usize::MAX),
            "event",
            "events",
        ),
    };
    let mut body = String::new();
    for stamped in events {
        body.push_str(&format!("{}  ", rfc3339(stamped.at)));
        stamped.event.describe(&mut body);
        body.push('\n');
    }
    if left_out > 0 {
        body.push_str(&format!(
            "{} more not listed (too many at once); see the server log.\n\n",
            plural(
                usize::try_from(left_out).unwrap_or(usize::MAX),
                "event",
                "events"
            )
        ));
    }
    body.push_str(
        "Sent by vigosrv (smtp in vigosrv.yaml). No secret value is ever in this mail.\n",
    );
    (subject, body)
}

/// The mailer task: gathers events and sends them (see the module docs).
/// Supervised: a restart finds the events still queued.
pub(crate) async fn run_mailer(state: AppState) {
    let notifier = state.notifier.clone();
    let mut rx = notifier.rx.lock().await;
    let mut gathered: Vec<Stamped> = Vec::new();
    let mut last_sent: Option<Instant> = None;
    let mut retry: Option<(Instant, Duration)> = None;
    loop {
        if gathered.is_empty() {
            match rx.recv().await {
                Some(first) => gathered.push(first),
                None => return,
            }
        }
        let interval = state
            .config()
            .smtp
            .as_ref()
            .map_or(vigo_config::DEFAULT_SMTP_INTERVAL, |s| s.interval);
        let mut due = Instant::now() + GATHER.min(interval);
        if let Some(sent) = last_sent {
            due = due.max(sent + interval);
        }
        if let Some((at, _)) = retry {
            due = due.max(at);
        }
        loop {
            tokio::select! {
                next = rx.recv() => match next {
                    Some(event) if gathered.len() < QUEUE_CAPACITY => gathered.push(event),
                    Some(_) => { notifier.dropped.fetch_add(1, Ordering::Relaxed); }
                    None => return,
                },
                () = tokio::time::sleep_until(due) => break,
            }
        }
        let Some(smtp) = state.config().smtp.clone() else {
            tracing::debug!(
                events = gathered.len(),
                "no smtp section: notifications not mailed"
            );
            gathered.clear();
            notifier.dropped.store(0, Ordering::Relaxed);
            continue;
        };
        let left_out = notifier.dropped.load(Ordering::Relaxed);
        let (subject, body) = compose(&gathered, left_out);
        match send_mail(&smtp, &subject, body).await {
            Ok(()) => {
                tracing::info!(
                    events = gathered.len() + usize::try_from(left_out).unwrap_or(usize::MAX),
                    to = %recipients_shown(&smtp).join(","),
                    "notification mail sent"
                );
                notifier.dropped.fetch_sub(left_out, Ordering::Relaxed);
                gathered.clear();
                last_sent = Some(Instant::now());
                retry = None;
            }
            Err(e) => {
                let pause = match retry {
                    None => interval.min(FIRST_RETRY_CAP),
                    Some((_, pause)) => (pause * 2).min(LONGEST_RETRY),
                };
                tracing::warn!(
                    error = %crate::error_chain(&e),
                    events = gathered.len(),
                    retry_in = %humantime::format_duration(pause),
                    "notification mail not sent; keeping the events and retrying"
                );
                retry = Some((Instant::now() + pause, pause));
            }
        }
    }
}

/// The stale watch: every check-in interval (at most every
/// [`STALE_SCAN_MAX`]), one query for the envoys; each approved envoy that
/// is stale now and was not at the last look is one [`Event::EnvoyStale`].
/// The first look after start only notes which envoys are stale.
pub(crate) async fn run_stale_watch(state: AppState) {
    let mut stale: Option<std::collections::BTreeSet<String>> = None;
    loop {
        let interval = state.config().raw.checkin_interval;
        tokio::time::sleep(interval.min(STALE_SCAN_MAX)).await;
        state.flush_checkins().await;
        let envoys = match state.store().list_envoys().await {
            Ok(envoys) => envoys,
            Err(e) => {
                tracing::warn!(error = %crate::error_chain(&e), "looking for stale envoys failed; trying again");
                continue;
            }
        };
        let now = Timestamp::now();
        let stale_now: std::collections::BTreeSet<String> = envoys
            .iter()
            .filter(|e| {
                e.status == EnvoyStatus::Approved
                    && EnvoyState::derive(e, None, now, interval) == EnvoyState::Stale
            })
            .map(|e| e.name.clone())
            .collect();
        if let Some(before) = &stale {
            for record in envoys
                .iter()
                .filter(|e| stale_now.contains(&e.name) && !before.contains(&e.name))
            {
                tracing::warn!(envoy = %record.name, "envoy stopped checking in");
                state.notifier.notify(Event::EnvoyStale {
                    envoy: record.name.clone(),
                    last_checkin: record.last_checkin_at,
                });
            }
        }
        stale = Some(stale_now);
    }
}

/// `at` as RFC 3339 UTC, to the second.
fn rfc3339(at: Timestamp) -> String {
    humantime::format_rfc3339_seconds(at.to_system_time()).to_string()
}

/// `1 event`, `3 events`.
fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_system_time(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[tokio::test]
    async fn a_failure_is_mailed_once_until_a_clean_run_or_other_resources_fail() {
        let notifier = Notifier::default();
        let mut rx = notifier.rx.lock().await;
        let conf = || vec!["file[app-conf]".to_owned()];
        notifier.run_failed("web1", conf());
        notifier.run_failed("web1", conf());
        notifier.run_failed("web2", conf());
        notifier.run_failed("web1", vec!["exec[migrate]".to_owned()]);
        notifier.run_clean("web1");
        notifier.run_failed("web1", vec!["exec[migrate]".to_owned()]);
        let mut mailed = Vec::new();
        while let Ok(stamped) = rx.try_recv() {
            let Event::RunFailed { envoy, failed } = stamped.event else {
                panic!("{:?}", stamped.event)
            };
            mailed.push(format!("{envoy} {}", failed.join(",")));
        }
        assert_eq!(
            mailed,
            [
                "web1 file[app-conf]",
                "web2 file[app-conf]",
                "web1 exec[migrate]",
                "web1 exec[migrate]"
            ]
        );
    }

    #[test]
    fn one_event_is_its_own_subject_and_many_are_counted() {
        let failed = Stamped {
            at: at(1_796_000_000),
            event: Event::RunFailed {
                envoy: "web1".into(),
                failed: vec!["file[nginx-conf]".into(), "service[nginx]".into()],
            },
        };
        let (subject, body) = compose(std::slice::from_ref(&failed), 0);
        assert_eq!(subject, "run failed on web1");
        assert!(
            body.starts_with("2026-11-30T"),
            "the body starts with the event's time: {body}"
        );
        assert!(body.contains(
            "Run failed on envoy web1: 2 resources failed: file[nginx-conf], service[nginx].\n  See: vigocli reports web1 --failed\n"
        ));
        let pending = Stamped {
            at: at(1_796_000_001),
            event: Event::EnrollmentPending {
                envoy: "db1".into(),
                fingerprint: "SHA256:ab:cd".into(),
                remote: "10.0.0.7".into(),
            },
        };
        let (subject, body) = compose(&[failed, pending], 3);
        assert_eq!(subject, "5 events");
        assert!(body.contains("vigocli envoys approve db1 --fingerprint SHA256:ab:cd"));
        assert!(body.contains("3 events more not listed"));
    }
}
