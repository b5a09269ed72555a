//! The writes that must land together, each in one transaction:
//!
//! - a rotation's claim of new secret versions together with the triggers
//!   and force-push it queues ([`Store::commit_rotation`]): a crash or a
//!   database error leaves either all of them or none, so the start-up
//!   comparison of versions finds every rotation that did not commit;
//! - the bookkeeping of a full catalog answer ([`Store::record_catalog_sent`]):
//!   triggers marked delivered, stale ones dropped, force-push cleared, the
//!   deliveries and the check-in.
//!
//! [`Store::commit_rotation`]: crate::Store::commit_rotation
//! [`Store::record_catalog_sent`]: crate::Store::record_catalog_sent

use std::collections::BTreeSet;

use vigo_secrets::SecretPath;

use crate::model::CheckinRecord;

/// A change a rotation claims: the version of a path now served, or its
/// deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationClaim {
    /// The secret.
    pub path: SecretPath,
    /// The version now served; `None` when the secret was deleted.
    pub version: Option<u64>,
    /// Who reported the change, for the audit log (`cli`, `watcher`, ...).
    pub actor: String,
}

/// What a rotation queues for one envoy if a path it references is claimed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvoyRotation {
    /// The envoy.
    pub envoy: String,
    /// Every changed path the envoy's catalog uses or watches.
    pub references: Vec<SecretPath>,
    /// `(resource, path)`: the resources whose `watch_secret` lists a
    /// changed path.
    pub triggers: Vec<(String, SecretPath)>,
}

/// What [`commit_rotation`](crate::Store::commit_rotation) recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationOutcome {
    /// The paths this call claimed (another replica may have claimed the
    /// rest first).
    pub claimed: BTreeSet<SecretPath>,
    /// The envoys that reference a claimed path: force-push is set on each.
    pub envoys: Vec<String>,
    /// How many `(resource, path)` triggers were queued.
    pub triggers: u64,
}

/// The bookkeeping of one full catalog answer.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogSent {
    /// The check-in itself (envoy, facts, catalog fingerprint, time). Its
    /// `at` is also the delivery time of the flagged triggers.
    pub checkin: CheckinRecord,
    /// Resources flagged `_secret_triggered` in the answer: their triggers
    /// queued at or before `checkin.at` are marked delivered.
    pub delivered: Vec<String>,
    /// Resources with triggers that the catalog no longer has: their
    /// triggers queued at or before `checkin.at` are dropped.
    pub dropped: Vec<String>,
    /// Whether force-push was on and is now cleared.
    pub clear_force_push: bool,
    /// Each secret path and version the answer carries.
    pub deliveries: Vec<(SecretPath, u64)>,
}
