//! Admin API types (bearer token `vigo/server/admin_token`).
//!
//! | route | body → answer |
//! | --- | --- |
//! | `POST /v1/admin/secrets/changed` | [`SecretChanged`] → [`SecretChangedAnswer`] |
//! | `GET /v1/admin/envoys` | → `Vec<`[`EnvoySummary`]`>` |
//! | `GET /v1/admin/envoys/{name}` | → [`EnvoyDetail`] |
//! | `POST /v1/admin/envoys/token` | → [`NewToken`] |
//! | `POST /v1/admin/envoys/{name}/approve` | [`ApproveEnvoy`] → [`EnvoySummary`] |
//! | `POST /v1/admin/envoys/{name}/revoke` | → [`EnvoySummary`] |
//! | `POST /v1/admin/envoys/{name}/remove` | → [`RemovedEnvoys`] |
//! | `POST /v1/admin/config/reload` | → [`ConfigReloadAnswer`] |
//! | `GET /v1/admin/config/status` | → [`ConfigStatus`] |
//! | `POST /v1/admin/runs` | [`RunTarget`] → [`RunStarted`] |
//! | `GET /v1/admin/runs/{id}` | → [`RunStatus`] |
//! | `GET /v1/admin/reports?envoy=&failed=&since=&limit=` | → `Vec<`[`ReportEntry`]`>` |
//! | `GET /v1/admin/reports/{id}` | → [`ReportDetail`] |
//! | `POST /v1/admin/notify/test` | → [`NotifyTestAnswer`] |

use serde::{Deserialize, Serialize};
use vigo_secrets::SecretPath;

/// The CLI tells the server a secret was stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretChanged {
    /// Which secret.
    pub path: SecretPath,
    /// The version the CLI wrote, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// What the rotation flow did. `POST /v1/admin/secrets/changed` answers
/// with it empty: the change is queued and the flow runs after its
/// coalescing window (see the server's log and `secrets history`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SecretChangedAnswer {
    /// Envoys that got triggers and force-push.
    #[serde(default)]
    pub envoys: Vec<String>,
    /// Number of resource triggers queued.
    #[serde(default)]
    pub triggers: u64,
}

/// One line of `vigocli envoys list`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvoySummary {
    /// Envoy name.
    pub name: String,
    /// `pending`, `approved` or `revoked`: the enrollment.
    pub status: String,
    /// What its state adds up to: `ok`, `changed`, `failed`, `pending`,
    /// `revoked` or `stale` (no check-in for 3 check-in intervals).
    #[serde(default)]
    pub state: String,
    /// Last check-in, RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checkin: Option<String>,
    /// Summary line of the last report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_report: Option<String>,
    /// While pending: SHA-256 of the requesting key (64 hex digits), which
    /// the envoy prints while it waits and `approve` must name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_fingerprint: Option<String>,
}

/// The body of `POST /v1/admin/envoys/{name}/approve`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveEnvoy {
    /// The pending key's fingerprint as the envoy printed it, or a prefix
    /// of at least 16 hex digits that no other pending key shares. Approval
    /// is refused without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// The answer to `POST /v1/admin/envoys/{name}/remove`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemovedEnvoys {
    /// The envoys deleted: the name, and any revoked look-alike that
    /// differed from it only in case.
    pub removed: Vec<String>,
}

/// `vigocli envoys show NAME`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvoyDetail {
    /// The summary fields.
    #[serde(flatten)]
    pub summary: EnvoySummary,
    /// SHA-256 fingerprint of the envoy's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_fingerprint: Option<String>,
    /// Facts from the last check-in.
    #[serde(default)]
    pub facts: serde_json::Map<String, serde_json::Value>,
    /// Whether a force-push is pending.
    pub force_push: bool,
    /// Triggers waiting for this envoy: `resource <- secret path`.
    #[serde(default)]
    pub queued_triggers: Vec<String>,
    /// Time from the server learning of the last rotation to this envoy
    /// reporting the triggered resources applied, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotation_lag_ms: Option<u64>,
    /// When the envoy last enforced its catalog and with what result:
    /// `<time> N resources: A changed, B failed, C skipped, D unchanged`
    /// (clean runs send no report; their check-ins tell of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<String>,
    /// The last report, per resource.
    #[serde(default)]
    pub last_report_resources: Vec<crate::ResourceReport>,
}

/// A new one-time enrollment token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewToken {
    /// The token (shown once; the server stores only its hash).
    pub token: String,
    /// Expiry, RFC 3339 UTC.
    pub expires_at: String,
}

/// One line of `vigocli secrets history`: a change or a delivery, never a
/// value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When, RFC 3339 UTC.
    pub at: String,
    /// `changed`, `deleted` or `delivered`.
    pub event: String,
    /// The secret's path.
    pub path: SecretPath,
    /// The version involved.
    pub version: u64,
    /// Who changed it (`cli`, `startup`, `watcher`) or which envoy received it.
    pub by: String,
}

/// `GET /v1/admin/secrets/history?prefix=...`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    /// Oldest first.
    pub entries: Vec<HistoryEntry>,
}

/// `GET /v1/admin/secrets/who-uses?path=...`: where a secret is used.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WhoUses {
    /// The secret asked about.
    pub path: SecretPath,
    /// Every envoy whose compiled catalog references it, by name.
    pub envoys: Vec<SecretUser>,
}

/// One envoy's use of a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretUser {
    /// The envoy.
    pub envoy: String,
    /// Resources whose fields carry the value.
    pub uses: Vec<String>,
    /// Resources that re-run when it rotates (`watch_secret`).
    pub watches: Vec<String>,
}

/// One problem found while loading the config repository: a position in
/// a file when there is one (`file:line:col`), the resource and envoy
/// concerned, and what is wrong. Never a secret value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigProblem {
    /// The file, relative to `config_dir` (`modules/web.vgo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// 1-based line; absent for a whole-file problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// 1-based column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u64>,
    /// The resource concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The approved envoy whose catalog showed the problem, when it is one
    /// envoy's compilation that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ConfigProblem {
    /// `file:line:col: resource 'r': message (envoy e)`, leaving out what
    /// is unknown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(file) = &self.file {
            f.write_str(file)?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
                if let Some(column) = self.column {
                    write!(f, ":{column}")?;
                }
            }
            f.write_str(": ")?;
        }
        if let Some(resource) = &self.resource {
            write!(f, "resource '{resource}': ")?;
        }
        f.write_str(&self.message)?;
        if let Some(envoy) = &self.envoy {
            write!(f, " (compiling for envoy '{envoy}')")?;
        }
        Ok(())
    }
}

/// A revision of the config repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRevision {
    /// SHA-256 (hex) over `nodes.vgo` and `modules/*.vgo`.
    pub hash: String,
    /// The commit `HEAD` named when `config_dir` is in a git checkout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_commit: Option<String>,
    /// When the server loaded it, RFC 3339 UTC.
    pub loaded_at: String,
}

/// `POST /v1/admin/config/reload`: the outcome of loading the config
/// repository now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigReloadAnswer {
    /// Whether the repository loaded, resolved and compiled for every
    /// approved envoy, and now serves.
    pub ok: bool,
    /// The revision serving after the attempt (the last good one when it
    /// failed).
    pub serving: ConfigRevision,
    /// Approved envoys whose catalog changed (their waits were woken).
    #[serde(default)]
    pub changed_envoys: Vec<String>,
    /// Every problem found; empty when `ok`.
    #[serde(default)]
    pub errors: Vec<ConfigProblem>,
}

/// One load attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigAttempt {
    /// When, RFC 3339 UTC.
    pub at: String,
    /// What asked: `startup`, `watcher`, `SIGHUP` or `cli`.
    pub by: String,
    /// Whether it succeeded.
    pub ok: bool,
}

/// The last failed load attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigFailure {
    /// When, RFC 3339 UTC.
    pub at: String,
    /// What asked: `watcher`, `SIGHUP` or `cli`.
    pub by: String,
    /// The content hash of what was on disk.
    pub hash: String,
    /// Every problem found.
    pub errors: Vec<ConfigProblem>,
}

/// `GET /v1/admin/config/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigStatus {
    /// The config repository's folder.
    pub config_dir: String,
    /// Whether the server watches it for changes (otherwise only SIGHUP
    /// and `config reload` deploy).
    pub watching: bool,
    /// The revision serving now.
    pub serving: ConfigRevision,
    /// What loaded it: `startup`, `watcher`, `SIGHUP` or `cli`.
    pub loaded_by: String,
    /// The last attempt, when there was one since the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<ConfigAttempt>,
    /// The last failed attempt since the start, with its errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<ConfigFailure>,
}

/// `vigocli run`: which envoys should apply now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunTarget {
    /// An envoy name or a glob (`web*`), matched as `nodes.vgo` matches;
    /// `None` with a role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Every approved envoy whose compiled catalog includes this role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Evaluate only: change nothing, report the drift.
    #[serde(default)]
    pub noop: bool,
    /// Who asks (recorded in the audit record).
    #[serde(default)]
    pub requested_by: String,
}

/// The run request the server recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunStarted {
    /// The request's id, for `GET /v1/admin/runs/{id}`.
    pub id: String,
    /// The approved envoys it asked to run, by name.
    pub envoys: Vec<String>,
    /// Matching envoys that are not approved (pending, revoked): not asked.
    #[serde(default)]
    pub not_approved: Vec<String>,
}

/// One envoy's part of a run request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunEnvoy {
    /// The envoy.
    pub name: String,
    /// `pending` (not checked in yet), `delivered` (applying), `ok`,
    /// `changed`, `failed`, `superseded` (a later request replaced it).
    pub status: String,
    /// The envoy's report of the run (scrubbed and diffs redacted by the
    /// envoy), once it arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<crate::Report>,
}

/// `GET /v1/admin/runs/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunStatus {
    /// The request's id.
    pub id: String,
    /// The target as given.
    pub target: String,
    /// Noop or not.
    pub noop: bool,
    /// Who asked.
    pub requested_by: String,
    /// When (RFC 3339).
    pub requested_at: String,
    /// Its envoys, by name.
    pub envoys: Vec<RunEnvoy>,
}

/// One line of `vigocli reports`: a stored report of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportEntry {
    /// The report's id, for `vigocli reports show ID`.
    pub id: i64,
    /// Which envoy ran.
    pub envoy: String,
    /// When the server received the report (the run had just finished),
    /// RFC 3339 UTC.
    pub finished: String,
    /// `ok`, `changed` or `failed`.
    pub status: String,
    /// Whether it was a noop run (nothing was touched).
    pub noop: bool,
    /// Resources changed (or that would change, in a noop run).
    pub changed: u32,
    /// Resources failed.
    pub failed: u32,
    /// Resources skipped because a dependency failed.
    pub skipped: u32,
    /// Resources already right.
    pub unchanged: u32,
    /// Wall time of the whole apply, in milliseconds, when the report says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// The resources that changed, as `type[name]`.
    #[serde(default)]
    pub changed_resources: Vec<String>,
}

/// `vigocli reports show ID`: one report with its per-resource outcomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportDetail {
    /// The listing fields.
    #[serde(flatten)]
    pub entry: ReportEntry,
    /// Per resource, in the order applied: status, duration, message (and a
    /// command's output or a noop diff), all scrubbed by the envoy.
    #[serde(default)]
    pub resources: Vec<crate::ResourceResult>,
}

/// `POST /v1/admin/notify/test`: a test mail went to the SMTP server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotifyTestAnswer {
    /// The recipients (`smtp.to`); an address that is a `secret:`
    /// reference shows as `[secret:PATH]`.
    pub to: Vec<String>,
    /// The SMTP server, `HOST:PORT` (`[secret:PATH]:PORT` likewise).
    pub server: String,
}
