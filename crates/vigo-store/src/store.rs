//! The [`Store`] trait: every database operation the server performs.
//!
//! Both backends implement it with the same SQL (see `queries.rs`); the
//! server holds an `Arc<dyn Store>` ([`StoreHandle`]) and never knows which
//! backend is behind it. Nothing is cached in process: several server
//! replicas may share one PostgreSQL, so force-push flags and triggers are
//! read from the database every time.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use vigo_secrets::SecretPath;

use crate::batch::{CatalogSent, EnvoyRotation, RotationClaim, RotationOutcome};
use crate::enrollment::{EnrollmentRecorded, EnrollmentRequest, PendingLimits};
use crate::error::StoreError;
use crate::model::{
    AuditEntry, AuditEvent, Backend, CheckinRecord, Delivery, EnvoyAuth, EnvoyRecord,
    LastRunRecord, ReportRecord, ReportSummary, Timestamp, Trigger,
};
use crate::wake::WakeListener;

/// A shared store, as returned by [`connect`](crate::connect).
pub type StoreHandle = Arc<dyn Store>;

/// Vigo's persistent state (docs/secrets.md "What is stored"; docs/operations.md "Replicas behind
/// HAProxy"). Every method is safe to call concurrently, from one process or from several sharing a
/// database.
#[async_trait]
pub trait Store:
    crate::runs::RunStore + crate::history::HistoryStore + Send + Sync + fmt::Debug
{
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// Closes the connection pool; later calls fail.
    async fn close(&self);

    // --- envoys -----------------------------------------------------------

    /// Records an enrollment request. A new envoy is stored as pending; an
    /// existing one is left untouched (a pending request stays bound to the
    /// key that first asked). Returns the envoy as stored afterwards.
    async fn upsert_enrollment_request(
        &self,
        name: &str,
        csr_pem: &str,
        at: Timestamp,
    ) -> Result<EnvoyRecord, StoreError>;

    /// Records an enrollment request with its key fingerprint and source
    /// address, in one statement: a new name becomes a pending envoy unless
    /// `limits` (for requests without a token) are reached; an existing
    /// envoy is returned untouched, never rebound to another key.
    async fn record_enrollment_request(
        &self,
        request: &EnrollmentRequest<'_>,
        limits: Option<&PendingLimits>,
    ) -> Result<EnrollmentRecorded, StoreError>;

    /// Deletes the pending requests made before `before` (with any triggers
    /// queued for them); returns their names.
    async fn expire_pending(&self, before: Timestamp) -> Result<Vec<String>, StoreError>;

    /// Deletes a pending or revoked envoy (and its queued triggers; its
    /// reports and deliveries stay as history) so the name can enroll again.
    /// Stored names are lower case; a revoked look-alike that differs only
    /// in case (left by migration 0003) is deleted with it. Returns the
    /// names deleted. Fails with [`StoreError::EnvoyApproved`] for an
    /// approved envoy and [`StoreError::EnvoyNotFound`] for an unknown one.
    async fn remove_envoy(&self, name: &str) -> Result<Vec<String>, StoreError>;

    /// The envoy called `name`, if known.
    async fn envoy(&self, name: &str) -> Result<Option<EnvoyRecord>, StoreError>;

    /// The envoy called `name` as a request needs it (status, certificate
    /// fingerprint, force-push, number of resources with queued triggers),
    /// in one query.
    async fn envoy_auth(&self, name: &str) -> Result<Option<EnvoyAuth>, StoreError>;

    /// All envoys, sorted by name.
    async fn list_envoys(&self) -> Result<Vec<EnvoyRecord>, StoreError>;

    /// Marks a pending (or already approved) envoy approved with the
    /// certificate issued to it. Fails with [`StoreError::EnvoyNotFound`] or
    /// [`StoreError::EnvoyRevoked`].
    async fn approve_envoy(
        &self,
        name: &str,
        cert_pem: &str,
        cert_fingerprint: &str,
        at: Timestamp,
    ) -> Result<EnvoyRecord, StoreError>;

    /// Revokes an envoy: its certificate is refused from now on.
    async fn revoke_envoy(&self, name: &str, at: Timestamp) -> Result<(), StoreError>;

    /// Replaces the certificate of an approved envoy (renewal). Fails with
    /// [`StoreError::EnvoyRevoked`] for a revoked one and
    /// [`StoreError::EnvoyNotFound`] for an unknown or still pending one.
    async fn set_envoy_certificate(
        &self,
        name: &str,
        cert_pem: &str,
        cert_fingerprint: &str,
    ) -> Result<(), StoreError>;

    /// Records a check-in: facts, the catalog fingerprint, the time.
    async fn record_checkin(
        &self,
        name: &str,
        facts: &serde_json::Value,
        catalog_fingerprint: Option<&str>,
        at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Records many check-ins in one transaction. A record older than the
    /// check-in already stored for its envoy is skipped (batches may land
    /// after a direct [`record_checkin`](Store::record_checkin)), and so is
    /// an unknown envoy.
    async fn record_checkins(&self, checkins: &[CheckinRecord]) -> Result<(), StoreError>;

    /// Sets or clears force-push on the named envoys (unknown names are
    /// skipped); returns how many envoys were updated.
    async fn set_force_push(&self, names: &[&str], on: bool) -> Result<u64, StoreError>;

    /// Whether the envoy's next check-in must get the full catalog; `false`
    /// for an unknown envoy.
    async fn force_push(&self, name: &str) -> Result<bool, StoreError>;

    // --- enrollment tokens --------------------------------------------------

    /// Stores a new one-time token by its SHA-256 hex hash (never the token).
    async fn create_token(
        &self,
        token_hash: &str,
        created_at: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Uses a token for `envoy`, atomically: of any number of concurrent
    /// callers exactly one succeeds; a used, expired (`now >= expires_at`)
    /// or unknown token fails with [`StoreError::TokenRejected`].
    async fn consume_token(
        &self,
        token_hash: &str,
        envoy: &str,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    // --- rotation triggers --------------------------------------------------

    /// Queues `(resource, secret path)` triggers for an envoy. Re-queueing a
    /// pair keeps its first `queued_at` and makes it undelivered again, so a
    /// report about an older delivery does not clear it.
    async fn queue_triggers(
        &self,
        envoy: &str,
        triggers: &[(&str, &SecretPath)],
        at: Timestamp,
    ) -> Result<(), StoreError>;

    /// The envoy's queued triggers, one per resource, sorted by resource.
    async fn triggers_for(&self, envoy: &str) -> Result<Vec<Trigger>, StoreError>;

    /// Records that the catalog sent at `at` flagged these resources. Only
    /// paths queued at or before `at` count as delivered.
    async fn mark_triggers_delivered(
        &self,
        envoy: &str,
        resources: &[&str],
        at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Clears the triggers of the resources the envoy reported as applied
    /// successfully. Only delivered paths clear (one queued again since the
    /// delivery stays). Returns the rotation lag — from the earliest
    /// `queued_at` cleared to `at` — and stores it on the envoy; `None` when
    /// nothing cleared.
    async fn clear_triggers(
        &self,
        envoy: &str,
        resources: &[&str],
        at: Timestamp,
    ) -> Result<Option<Duration>, StoreError>;

    // --- reports ------------------------------------------------------------

    /// Stores a report (its body already scrubbed by the envoy) and updates
    /// the envoy's `last_report_at`. Returns the report's id.
    async fn insert_report(
        &self,
        envoy: &str,
        received_at: Timestamp,
        summary: ReportSummary,
        noop: bool,
        body: &serde_json::Value,
    ) -> Result<i64, StoreError>;

    /// The envoy's most recent report.
    async fn last_report(&self, envoy: &str) -> Result<Option<ReportRecord>, StoreError>;

    /// When the envoy last enforced its catalog, and the counts.
    async fn last_run(&self, envoy: &str) -> Result<Option<LastRunRecord>, StoreError>;

    // --- secret versions, audit, deliveries ---------------------------------

    /// The secret versions the server last saw (numbers only).
    async fn secret_versions(&self) -> Result<BTreeMap<SecretPath, u64>, StoreError>;

    /// Records the version of a secret the server has now seen. Returns
    /// whether the stored version changed (`false` when it already was
    /// `version`): of several replicas handling the same change, exactly
    /// one gets `true` and runs the rotation for it.
    async fn set_secret_version(
        &self,
        path: &SecretPath,
        version: u64,
        at: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Forgets a deleted secret's version.
    async fn remove_secret_version(&self, path: &SecretPath) -> Result<(), StoreError>;

    /// Appends to the secret audit log.
    async fn record_secret_change(
        &self,
        actor: &str,
        path: &SecretPath,
        version: u64,
        event: AuditEvent,
        at: Timestamp,
    ) -> Result<(), StoreError>;

    /// The audit log, oldest first, limited to the paths equal to or under
    /// `prefix` (segment-wise, as [`SecretPath::has_prefix`]).
    async fn secret_history(&self, prefix: Option<&str>) -> Result<Vec<AuditEntry>, StoreError>;

    /// Records that an envoy was sent a secret at a version.
    async fn record_delivery(
        &self,
        envoy: &str,
        path: &SecretPath,
        version: u64,
        at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Deliveries, oldest first, optionally for one envoy and/or one path.
    async fn deliveries(
        &self,
        envoy: Option<&str>,
        path: Option<&SecretPath>,
    ) -> Result<Vec<Delivery>, StoreError>;

    // --- writes that land together (see `batch.rs`) -------------------------

    /// Runs a rotation's store step in one transaction: claims each change
    /// (a version is claimed when the stored one differs, a deletion always)
    /// and appends it to the audit log; then, for the claimed paths only,
    /// queues the envoys' triggers (as [`queue_triggers`](Store::queue_triggers))
    /// and sets force-push on every envoy that references one. Of several
    /// replicas committing the same change, exactly one claims it. On any
    /// error nothing is recorded, so the change is still seen as new.
    async fn commit_rotation(
        &self,
        claims: &[RotationClaim],
        envoys: &[EnvoyRotation],
        at: Timestamp,
    ) -> Result<RotationOutcome, StoreError>;

    /// Records a full catalog answer in one transaction: marks the flagged
    /// triggers delivered (only paths queued at or before the check-in's
    /// time), drops the triggers of removed resources, clears force-push
    /// when asked, records each delivery and the check-in. Fails with
    /// [`StoreError::EnvoyNotFound`] (and records nothing) for an unknown
    /// envoy.
    async fn record_catalog_sent(&self, sent: &CatalogSent) -> Result<(), StoreError>;

    /// How many resources have queued triggers, for every envoy that is not
    /// revoked (zero included), sorted by name.
    async fn queued_trigger_counts(&self) -> Result<Vec<(String, u32)>, StoreError>;

    // --- held waits (see `wake.rs`) -----------------------------------------

    /// Whether a wait held by `name` should answer "check in now": its
    /// force-push is set, one of its triggers is undelivered, or it is no
    /// longer approved (or known), so its next request learns why. One query.
    async fn checkin_due(&self, name: &str) -> Result<bool, StoreError>;

    /// Every envoy for which [`checkin_due`](Store::checkin_due) holds
    /// (unknown ones aside), in one query: the periodic safety net over all
    /// held waits.
    async fn checkin_due_envoys(&self) -> Result<Vec<String>, StoreError>;

    /// Tells the other replicas sharing the database to re-check the waits
    /// they hold for `names` (PostgreSQL `NOTIFY`, split under the payload
    /// limit); nothing on SQLite. For changes made outside
    /// [`commit_rotation`](Store::commit_rotation) and
    /// [`set_force_push`](Store::set_force_push), which notify inside their
    /// transaction.
    async fn notify_wake(&self, names: &[&str]) -> Result<(), StoreError>;

    /// A connection of its own listening for the other replicas' wake-ups
    /// (PostgreSQL); `None` on SQLite, where only this process writes.
    async fn wake_listener(&self) -> Result<Option<WakeListener>, StoreError>;
}
