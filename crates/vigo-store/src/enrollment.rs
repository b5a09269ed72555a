//! Enrollment requests (docs/operations.md "Enroll envoys"): a pending request is bound to the key
//! that first asked for its name, and unauthenticated requests are capped.
//!
//! See [`Store::record_enrollment_request`](crate::Store::record_enrollment_request),
//! [`Store::expire_pending`](crate::Store::expire_pending) and
//! [`Store::remove_envoy`](crate::Store::remove_envoy).

use std::time::Duration;

use crate::model::{EnvoyRecord, Timestamp};

/// An enrollment request to record. The name is already in its one
/// normalised (lower-case) form.
#[derive(Debug, Clone, Copy)]
pub struct EnrollmentRequest<'a> {
    /// The envoy name asked for.
    pub name: &'a str,
    /// The certificate request (PEM).
    pub csr_pem: &'a str,
    /// SHA-256 of the request's public key, hex: what binds a pending name
    /// to the first key that asked.
    pub key_fingerprint: &'a str,
    /// The address the request came from (no port).
    pub source: &'a str,
    /// When it arrived.
    pub at: Timestamp,
}

/// Caps on pending requests made without a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingLimits {
    /// Pending envoys in all.
    pub total: u32,
    /// New pending requests from one source address per `window`.
    pub per_source: u32,
    /// The window of `per_source`.
    pub window: Duration,
}

/// What [`record_enrollment_request`](crate::Store::record_enrollment_request)
/// did.
#[derive(Debug, Clone, PartialEq)]
pub enum EnrollmentRecorded {
    /// A new pending envoy was stored.
    Created(EnvoyRecord),
    /// The name is taken: the envoy as stored, untouched (the caller decides
    /// whether the request's key is the one bound to it).
    Existing(EnvoyRecord),
    /// Refused: as many envoys are pending as [`PendingLimits::total`].
    TotalLimit,
    /// Refused: the source made [`PendingLimits::per_source`] new requests
    /// within the window.
    SourceLimit,
}
