//! Plain domain types the store reads and writes.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vigo_secrets::SecretPath;

/// A UTC instant with millisecond precision, stored as unix milliseconds
/// (an integer behaves identically on SQLite and PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    /// From milliseconds since 1970-01-01T00:00:00Z.
    pub const fn from_unix_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// Milliseconds since 1970-01-01T00:00:00Z.
    pub const fn unix_millis(self) -> i64 {
        self.0
    }

    /// From a [`SystemTime`], saturating far outside the representable range.
    pub fn from_system_time(time: SystemTime) -> Self {
        match time.duration_since(UNIX_EPOCH) {
            Ok(after) => Self(i64::try_from(after.as_millis()).unwrap_or(i64::MAX)),
            Err(before) => Self(
                i64::try_from(before.duration().as_millis())
                    .map(|millis| -millis)
                    .unwrap_or(i64::MIN),
            ),
        }
    }

    /// As a [`SystemTime`] (for formatting with `humantime`).
    pub fn to_system_time(self) -> SystemTime {
        let magnitude = Duration::from_millis(self.0.unsigned_abs());
        if self.0 >= 0 {
            UNIX_EPOCH + magnitude
        } else {
            UNIX_EPOCH - magnitude
        }
    }

    /// The time from `earlier` to `self`, zero when `earlier` is later
    /// (clocks of several replicas may disagree slightly).
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        let millis = self.0.saturating_sub(earlier.0);
        Duration::from_millis(u64::try_from(millis).unwrap_or(0))
    }

    /// This instant moved `by` earlier, saturating.
    pub fn saturating_sub(self, by: Duration) -> Self {
        let millis = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_sub(millis))
    }

    /// This instant moved `by` later, saturating.
    pub fn saturating_add(self, by: Duration) -> Self {
        let millis = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(millis))
    }
}

/// Which database backend a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// The embedded SQLite (SQLCipher) database.
    Sqlite,
    /// A shared PostgreSQL database.
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        })
    }
}

/// The one word a unit enum is stored (and displayed) as: `as_str`,
/// `Display` with that word, and `FromStr` back from exactly that word,
/// written once so the two directions cannot disagree.
macro_rules! stored_word {
    ($enum:ident, $what:literal, { $($variant:ident => $word:literal),+ $(,)? }) => {
        impl $enum {
            #[doc = concat!("The stored (and displayed) form: ", $(" `", $word, "`",)+ ".")]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $word,)+
                }
            }
        }

        impl fmt::Display for $enum {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $enum {
            type Err = String;

            fn from_str(input: &str) -> Result<Self, Self::Err> {
                match input {
                    $($word => Ok(Self::$variant),)+
                    other => Err(format!(concat!("unknown ", $what, " '{}'"), other)),
                }
            }
        }
    };
}

/// Where an envoy stands in enrollment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EnvoyStatus {
    /// Sent a CSR; waiting for `vigocli envoys approve` (or a token).
    Pending,
    /// Holds a certificate the server accepts.
    Approved,
    /// Its certificate is refused from now on.
    Revoked,
}

stored_word!(EnvoyStatus, "envoy status", {
    Pending => "pending",
    Approved => "approved",
    Revoked => "revoked",
});

/// One envoy as the server knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvoyRecord {
    /// The envoy's name (its certificate's identity).
    pub name: String,
    /// Enrollment state.
    pub status: EnvoyStatus,
    /// The certificate signing request it is bound to (PEM): the first one
    /// it sent.
    pub csr_pem: Option<String>,
    /// SHA-256 (hex) of that request's public key: what the operator
    /// compares before approving. `None` for requests stored before
    /// migration 0003.
    pub key_fingerprint: Option<String>,
    /// SHA-256 (hex) of the certificate issued to it.
    pub cert_fingerprint: Option<String>,
    /// The certificate issued to it (PEM).
    pub cert_pem: Option<String>,
    /// The facts it sent at its last check-in (`{}` before the first).
    pub facts: serde_json::Value,
    /// When it first asked to enroll.
    pub enrolled_at: Timestamp,
    /// When it was last approved.
    pub approved_at: Option<Timestamp>,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
    /// When it last checked in.
    pub last_checkin_at: Option<Timestamp>,
    /// The catalog fingerprint recorded at its last check-in.
    pub catalog_fingerprint: Option<String>,
    /// Whether its next check-in gets the full catalog even if unchanged.
    pub force_push: bool,
    /// When its last report arrived.
    pub last_report_at: Option<Timestamp>,
    /// Queue-to-applied time of the last triggers it cleared.
    pub last_rotation_lag: Option<Duration>,
}

/// An envoy goes stale after this many check-in intervals without a check-in.
pub const STALE_AFTER_INTERVALS: u32 = 3;

/// What an envoy's state adds up to (docs/operations.md "Envoy status"): its
/// enrollment, whether it still checks in, and how its last enforcement run
/// went. Derived when asked, never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EnvoyState {
    /// Approved; its last run changed nothing and failed nothing (or it has
    /// not run yet).
    Ok,
    /// Approved; its last run changed something and failed nothing.
    Changed,
    /// Approved; a resource failed in its last run.
    Failed,
    /// Waiting for approval.
    Pending,
    /// Its certificate is refused.
    Revoked,
    /// Approved, but no check-in for [`STALE_AFTER_INTERVALS`] check-in
    /// intervals (counted from its approval when it never checked in).
    Stale,
}

impl EnvoyState {
    /// Derives the state of `envoy` at `now`, given its last enforcement run
    /// and the check-in interval the server tells envoys.
    pub fn derive(
        envoy: &EnvoyRecord,
        last_run: Option<&LastRunRecord>,
        now: Timestamp,
        checkin_interval: Duration,
    ) -> Self {
        match envoy.status {
            EnvoyStatus::Pending => return Self::Pending,
            EnvoyStatus::Revoked => return Self::Revoked,
            EnvoyStatus::Approved => {}
        }
        let seen = envoy
            .last_checkin_at
            .into_iter()
            .chain(envoy.approved_at)
            .max()
            .unwrap_or(envoy.enrolled_at);
        if now.saturating_duration_since(seen) > checkin_interval * STALE_AFTER_INTERVALS {
            return Self::Stale;
        }
        match last_run.map(|run| run.summary) {
            Some(summary) if summary.failed > 0 => Self::Failed,
            Some(summary) if summary.changed > 0 => Self::Changed,
            _ => Self::Ok,
        }
    }

    /// The word `vigocli envoys list` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Changed => "changed",
            Self::Failed => "failed",
            Self::Pending => "pending",
            Self::Revoked => "revoked",
            Self::Stale => "stale",
        }
    }
}

impl fmt::Display for EnvoyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a request from an envoy needs to know about it, read in one query:
/// enough to authenticate it and to answer an unchanged check-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvoyAuth {
    /// The envoy's name.
    pub name: String,
    /// Enrollment state.
    pub status: EnvoyStatus,
    /// SHA-256 of the certificate issued to it (colon-separated hex).
    pub cert_fingerprint: Option<String>,
    /// Whether its next check-in gets the full catalog even if unchanged.
    pub force_push: bool,
    /// How many of its resources have a rotation trigger queued.
    pub queued_triggers: u32,
    /// Whether a run request (`vigocli run`) waits for its next check-in.
    pub run_pending: bool,
}

/// One check-in to record (see [`Store::record_checkins`](crate::Store::record_checkins)).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckinRecord {
    /// The envoy's name.
    pub name: String,
    /// The facts it sent.
    pub facts: serde_json::Value,
    /// The catalog fingerprint it holds now.
    pub catalog_fingerprint: Option<String>,
    /// When it checked in.
    pub at: Timestamp,
    /// The last enforcement run the check-in told of, if any.
    pub last_run: Option<LastRunRecord>,
}

/// When an envoy last enforced its catalog (not a noop run), and with what
/// result. A clean run sends no report: the next check-in tells of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastRunRecord {
    /// When the run finished (server clock).
    pub at: Timestamp,
    /// Its counts.
    pub summary: ReportSummary,
}

/// A queued rotation trigger for one resource of one envoy: all the secret
/// paths whose rotation touched that resource, coalesced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// The resource to re-execute (its catalog id).
    pub resource: String,
    /// The rotated secrets behind it, sorted.
    pub secret_paths: Vec<SecretPath>,
    /// When it was first queued (rotation lag counts from here).
    pub queued_at: Timestamp,
    /// When it was last queued again.
    pub last_queued_at: Timestamp,
    /// When it was last sent to the envoy; `None` while any of its paths has
    /// been queued since.
    pub delivered_at: Option<Timestamp>,
}

/// Per-status resource counts of one envoy run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportSummary {
    /// Resources changed.
    pub changed: u32,
    /// Resources failed.
    pub failed: u32,
    /// Resources skipped.
    pub skipped: u32,
    /// Resources already right.
    pub unchanged: u32,
}

/// A stored envoy report.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRecord {
    /// Row id, increasing.
    pub id: i64,
    /// Which envoy sent it.
    pub envoy: String,
    /// When the server received it.
    pub received_at: Timestamp,
    /// Counts per status.
    pub summary: ReportSummary,
    /// Whether it was a `--noop` run.
    pub noop: bool,
    /// The full report as the envoy sent it (already scrubbed of secret values).
    pub body: serde_json::Value,
}

/// What happened to a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditEvent {
    /// Stored with a new version.
    Changed,
    /// Deleted.
    Deleted,
}

stored_word!(AuditEvent, "audit event", {
    Changed => "changed",
    Deleted => "deleted",
});

/// One line of the secret audit log: who changed which secret to which
/// version, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Row id, increasing.
    pub id: i64,
    /// When.
    pub at: Timestamp,
    /// Who noticed or made the change: `cli`, `watcher`, `startup`, ...
    pub actor: String,
    /// Which secret.
    pub path: SecretPath,
    /// The version after the change (the last version for a deletion).
    pub version: u64,
    /// What happened.
    pub event: AuditEvent,
}

/// A record that an envoy received a secret at a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Row id, increasing.
    pub id: i64,
    /// When the catalog carrying it was sent.
    pub at: Timestamp,
    /// Which envoy.
    pub envoy: String,
    /// Which secret.
    pub path: SecretPath,
    /// Which version.
    pub version: u64,
}

/// Why an enrollment token was refused. Deliberately coarse when shown to
/// envoys; the server may log the detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenRejection {
    /// No token with that hash.
    Unknown,
    /// Past its expiry.
    Expired,
    /// Already used by an envoy.
    AlreadyUsed,
}

impl fmt::Display for TokenRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unknown => "unknown token; print a new one with `vigocli envoys token`",
            Self::Expired => "the token has expired; print a new one with `vigocli envoys token`",
            Self::AlreadyUsed => {
                "the token was already used; print a new one with `vigocli envoys token`"
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_round_trips_through_system_time() {
        for millis in [0, 1, 1_700_000_000_123, -5_000] {
            let at = Timestamp::from_unix_millis(millis);
            assert_eq!(Timestamp::from_system_time(at.to_system_time()), at);
        }
    }

    #[test]
    fn durations_saturate_at_zero() {
        let early = Timestamp::from_unix_millis(1_000);
        let late = Timestamp::from_unix_millis(3_500);
        assert_eq!(
            late.saturating_duration_since(early),
            Duration::from_millis(2_500)
        );
        assert_eq!(early.saturating_duration_since(late), Duration::ZERO);
        assert_eq!(
            early.saturating_add(Duration::from_secs(2)),
            Timestamp::from_unix_millis(3_000)
        );
    }

    fn approved_envoy(last_checkin_at: Option<i64>) -> EnvoyRecord {
        EnvoyRecord {
            name: "db1".to_owned(),
            status: EnvoyStatus::Approved,
            csr_pem: None,
            key_fingerprint: None,
            cert_fingerprint: None,
            cert_pem: None,
            facts: serde_json::json!({}),
            enrolled_at: Timestamp::from_unix_millis(0),
            approved_at: Some(Timestamp::from_unix_millis(1_000)),
            revoked_at: None,
            last_checkin_at: last_checkin_at.map(Timestamp::from_unix_millis),
            catalog_fingerprint: None,
            force_push: false,
            last_report_at: None,
            last_rotation_lag: None,
        }
    }

    fn run(changed: u32, failed: u32) -> LastRunRecord {
        LastRunRecord {
            at: Timestamp::from_unix_millis(50_000),
            summary: ReportSummary {
                changed,
                failed,
                ..ReportSummary::default()
            },
        }
    }

    #[test]
    fn envoy_state_follows_enrollment_check_ins_and_the_last_run() {
        let minute = Duration::from_secs(60);
        let at = |secs: i64| Timestamp::from_unix_millis(secs * 1_000);
        let envoy = approved_envoy(Some(60_000));
        let state =
            |run: Option<LastRunRecord>, now| EnvoyState::derive(&envoy, run.as_ref(), now, minute);
        assert_eq!(state(None, at(90)), EnvoyState::Ok);
        assert_eq!(state(Some(run(0, 0)), at(90)), EnvoyState::Ok);
        assert_eq!(state(Some(run(2, 0)), at(90)), EnvoyState::Changed);
        assert_eq!(state(Some(run(2, 1)), at(90)), EnvoyState::Failed);
        // Three intervals after the last check-in it is still fresh; later
        // it is stale, whatever its last run said.
        assert_eq!(state(Some(run(0, 1)), at(240)), EnvoyState::Failed);
        assert_eq!(state(Some(run(0, 1)), at(241)), EnvoyState::Stale);
        // Never checked in: counted from the approval.
        let silent = approved_envoy(None);
        assert_eq!(
            EnvoyState::derive(&silent, None, at(100), minute),
            EnvoyState::Ok
        );
        assert_eq!(
            EnvoyState::derive(&silent, None, at(182), minute),
            EnvoyState::Stale
        );
        for (status, expected) in [
            (EnvoyStatus::Pending, EnvoyState::Pending),
            (EnvoyStatus::Revoked, EnvoyState::Revoked),
        ] {
            let mut other = approved_envoy(None);
            other.status = status;
            assert_eq!(
                EnvoyState::derive(&other, None, at(10_000), minute),
                expected
            );
        }
    }

    #[test]
    fn status_and_event_parse_their_own_text() {
        for status in [
            EnvoyStatus::Pending,
            EnvoyStatus::Approved,
            EnvoyStatus::Revoked,
        ] {
            assert_eq!(status.as_str().parse::<EnvoyStatus>(), Ok(status));
        }
        for event in [AuditEvent::Changed, AuditEvent::Deleted] {
            assert_eq!(event.as_str().parse::<AuditEvent>(), Ok(event));
        }
        assert!("PENDING".parse::<EnvoyStatus>().is_err());
    }
}
