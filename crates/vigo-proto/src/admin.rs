//! Admin API types (bearer token `vigo/server/admin_token`).
//!
//! | route | body → answer |
//! | --- | --- |
//! | `POST /v1/admin/secrets/changed` | [`SecretChanged`] → [`SecretChangedAnswer`] |
//! | `GET /v1/admin/envoys` | → `Vec<`[`EnvoySummary`]`>` |
//! | `GET /v1/admin/envoys/{name}` | → [`EnvoyDetail`] |
//! | `POST /v1/admin/envoys/token` | → [`NewToken`] |
//! | `POST /v1/admin/envoys/{name}/approve` | → [`EnvoySummary`] |
//! | `POST /v1/admin/envoys/{name}/revoke` | → [`EnvoySummary`] |

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
    /// `pending`, `approved` or `revoked`.
    pub status: String,
    /// Last check-in, RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checkin: Option<String>,
    /// Summary line of the last report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_report: Option<String>,
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
