//! The Vigo HTTP API's wire types, shared by `vigosrv`, `vigoenvoy` and
//! `vigocli`. Everything is JSON under `/v1`.
//!
//! | route | who | body → answer |
//! | --- | --- | --- |
//! | `POST /v1/enroll` | envoy, no client certificate | [`EnrollRequest`] → [`EnrollResponse`] |
//! | `POST /v1/checkin` | envoy, client certificate | [`CheckinRequest`] → [`CheckinResponse`] |
//! | `POST /v1/report` | envoy, client certificate | [`ReportRequest`] → 204 |
//! | `GET /v1/wait` | envoy, client certificate | held open up to [`WAIT_HOLD_SECS`] → [`WaitResponse`] |
//! | `POST /v1/admin/...` | operator, bearer token | see [`admin`] |
//! | `GET /healthz`, `GET /metrics` | anyone | `ok`, Prometheus text |
//!
//! Errors from every route are [`ApiError`] with a stable `code`.

pub mod admin;
pub mod facts;
pub mod report;

use serde::{Deserialize, Serialize};
use vigo_catalog::Catalog;

pub use report::{CommandOutput, Report, ResourceResult, Status, Summary};

/// How long the server holds a `GET /v1/wait` before answering "nothing".
pub const WAIT_HOLD_SECS: u64 = 55;

/// The error body of every non-2xx answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// Stable machine code: `unauthorized`, `forbidden`, `not_found`,
    /// `bad_request`, `conflict` (e.g. a pending name requested with another
    /// key), `pending`, `too_many_requests`, `internal`.
    pub code: String,
    /// One-line human explanation (never a secret, never an internal cause).
    pub message: String,
}

/// An envoy asks for a certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The name the envoy wants (its identity if approved).
    pub name: String,
    /// PKCS#10 request in PEM; only its public key is used.
    pub csr_pem: String,
    /// A one-time token from `vigocli envoys token`, if the envoy has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// The answer to an enrollment request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum EnrollResponse {
    /// Signed: here is the certificate.
    Approved {
        /// The envoy's client certificate (PEM).
        cert_pem: String,
    },
    /// Waiting for `vigocli envoys approve NAME`; ask again later.
    Pending,
}

/// What an envoy sends at check-in.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckinRequest {
    /// Fingerprint of the catalog the envoy last applied successfully, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Facts about the host ([`facts::Facts`] as an object, custom facts
    /// under `custom`); never secrets.
    #[serde(default)]
    pub facts: serde_json::Map<String, serde_json::Value>,
    /// The envoy holds no catalog in memory (a fresh `run` loop, `run
    /// --once`): the server answers with the full catalog, never
    /// "unchanged".
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub full: bool,
    /// The last enforcement run of this envoy process, if any (a clean run
    /// sends no report: this is how the server learns of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<LastRun>,
    /// A noop run (`run --once --noop`): the answer delivers no rotation
    /// trigger, clears no force-push and serves no run request.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub noop: bool,
    /// A partial run (`run --once --tags`, `--resource`): the envoy applies
    /// only the selected resources and their dependencies. The answer
    /// delivers only the triggers of those, clears no force-push and serves
    /// no run request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<vigo_catalog::Selection>,
}

/// When the envoy last applied its catalog (not a noop run) and the counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LastRun {
    /// How long before this check-in the run finished, in milliseconds (a
    /// duration, so the envoy's and the server's clocks need not agree).
    pub age_ms: u64,
    /// The run's counts.
    pub summary: Summary,
}

/// The server's answer to a check-in.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CheckinResponse {
    /// The envoy's catalog is current and nothing is queued for it.
    Unchanged {
        /// Seconds until the next check-in (`checkin.interval`).
        interval_secs: u64,
    },
    /// Apply this catalog (with the secret values it needs and the triggered
    /// resources flagged).
    Catalog {
        /// Seconds until the next check-in.
        interval_secs: u64,
        /// The catalog's fingerprint, to send back next time.
        fingerprint: String,
        /// The catalog itself.
        catalog: Box<Catalog>,
        /// Evaluate only (a `vigocli run --noop` request): change nothing,
        /// keep the catalog held before, report the drift.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        noop: bool,
        /// The run request this answer serves (`vigocli run`): the envoy
        /// applies now and always reports, naming it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run_request: Option<String>,
    },
}

/// A report of one apply, posted after applying a catalog.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    /// The fingerprint of the catalog that was applied.
    pub fingerprint: String,
    /// What happened, already scrubbed of secret values.
    pub report: Report,
    /// The run request (`vigocli run`) this run answered, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_request: Option<String>,
}

/// One resource's outcome as the admin API shows it (`vigocli envoys show`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceReport {
    /// Resource name.
    pub name: String,
    /// Resource type (`file`, `exec`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// `unchanged`, `changed`, `failed` or `skipped`.
    pub status: String,
    /// Time spent, in milliseconds.
    pub duration_ms: u64,
    /// What happened (scrubbed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Whether the resource was flagged `_secret_triggered` in the catalog.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret_triggered: bool,
}

/// The answer to `GET /v1/wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitResponse {
    /// Whether the envoy should check in now.
    pub checkin_now: bool,
}
