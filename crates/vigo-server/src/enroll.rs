//! Enrollment (`POST /v1/enroll`, the admin approval and tokens): an envoy
//! asks for a certificate with a request (CSR) for its name.
//!
//! - Without a token the request waits, bound to the first key that asked
//!   for the name, until an operator approves it by that key's fingerprint
//!   (`vigocli envoys approve NAME --fingerprint FP`). Requests without a
//!   token are capped ([`PENDING_LIMITS`]) and expire after
//!   [`PENDING_EXPIRY`].
//! - With a valid enrollment token it is signed at once; the token is spent.
//! - An approved name asking again with the same request gets its
//!   certificate back; any other key is refused, so no one can take over an
//!   enrolled name. A revoked name must be removed before it enrolls again.
//!
//! Tokens are stored as their SHA-256 only ([`token_hash`]).

use std::time::Duration;

use vigo_proto::{EnrollRequest, EnrollResponse};
use vigo_secrets::EnvoyName;
use vigo_store::{
    EnrollmentRecorded, EnrollmentRequest, EnvoyRecord, EnvoyStatus, PendingLimits, StoreError,
    Timestamp,
};
use zeroize::Zeroizing;

use crate::metrics::EnrollmentResult;
use crate::{AppError, AppState, error_chain};

/// Validity of an envoy certificate.
pub(crate) const ENVOY_CERT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Largest certificate request accepted.
const MAX_CSR_BYTES: usize = 16 * 1024;

/// Caps on pending requests made without a token: in all, and new ones per
/// source address per minute.
const PENDING_LIMITS: PendingLimits = PendingLimits {
    total: 1_000,
    per_source: 20,
    window: Duration::from_secs(60),
};

/// How long a pending request waits for approval before it is deleted.
pub(crate) const PENDING_EXPIRY: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// An enrollment request from `source` (an address, for the caps and the
/// log): see the module documentation.
pub(crate) async fn enroll(
    state: &AppState,
    request: EnrollRequest,
    source: &str,
) -> Result<EnrollResponse, AppError> {
    // The token is a credential: keep it in a zeroizing buffer.
    let token = request.token.map(Zeroizing::new);
    // The one normalised form: `DB1.EXAMPLE.COM` is `db1.example.com`.
    let name = EnvoyName::parse(&request.name).map_err(|e| AppError::BadRequest(e.to_string()))?;
    let csr = request.csr_pem;
    if csr.len() > MAX_CSR_BYTES {
        return Err(AppError::BadRequest(format!(
            "the certificate request is larger than {MAX_CSR_BYTES} bytes"
        )));
    }
    // Checks the request's self-signature before anything is looked up,
    // spent or stored.
    let key_fingerprint = vigo_pki::csr_key_fingerprint(&csr).map_err(|e| {
        AppError::BadRequest(format!(
            "the certificate request was refused: {}",
            error_chain(&e)
        ))
    })?;
    let now = Timestamp::now();
    state
        .store()
        .expire_pending(now.saturating_sub(PENDING_EXPIRY))
        .await?;
    let token = token.as_deref().map(|t| t.trim()).filter(|t| !t.is_empty());
    let recorded = state
        .store()
        .record_enrollment_request(
            &EnrollmentRequest {
                name: &name,
                csr_pem: &csr,
                key_fingerprint: &key_fingerprint,
                source,
                at: now,
            },
            // A token authenticates the request: it is not capped.
            if token.is_some() {
                None
            } else {
                Some(&PENDING_LIMITS)
            },
        )
        .await?;
    let record = match recorded {
        EnrollmentRecorded::Created(record) => {
            if token.is_none() {
                tracing::info!(
                    envoy = %name,
                    fingerprint = %key_fingerprint,
                    remote = %source,
                    "enrollment request waiting for `vigocli envoys approve NAME --fingerprint FINGERPRINT`"
                );
                state
                    .notifier
                    .notify(crate::notify::Event::EnrollmentPending {
                        envoy: name.to_string(),
                        fingerprint: key_fingerprint.to_string(),
                        remote: source.to_string(),
                    });
            }
            record
        }
        EnrollmentRecorded::Existing(record) => {
            match record.status {
                EnvoyStatus::Revoked => {
                    return Err(AppError::Forbidden(format!(
                        "envoy '{name}' is revoked; an operator must remove it (`vigocli envoys remove {name}`) before the name can enroll again"
                    )));
                }
                EnvoyStatus::Approved => return reissue(state, &record, &csr),
                EnvoyStatus::Pending => {}
            }
            if bound_fingerprint(&record).as_deref() != Some(key_fingerprint.as_str()) {
                tracing::warn!(
                    envoy = %name,
                    remote = %source,
                    fingerprint = %key_fingerprint,
                    "refused an enrollment request for a pending name from another key"
                );
                return Err(AppError::Conflict(format!(
                    "envoy '{name}' already has a pending enrollment request from another key; if that request is not this host's, an operator must remove it (`vigocli envoys remove {name}`)"
                )));
            }
            record
        }
        limit @ (EnrollmentRecorded::TotalLimit | EnrollmentRecorded::SourceLimit) => {
            let (why, message) = if matches!(limit, EnrollmentRecorded::TotalLimit) {
                (
                    "too many pending requests",
                    format!(
                        "too many enrollment requests are pending ({}); enroll with a token (`vigocli envoys token`) or ask an operator to approve or remove pending ones",
                        PENDING_LIMITS.total
                    ),
                )
            } else {
                (
                    "too many new requests from one address",
                    format!(
                        "more than {} new enrollment requests from {source} within a minute; try again later or enroll with a token",
                        PENDING_LIMITS.per_source
                    ),
                )
            };
            tracing::warn!(envoy = %name, remote = %source, "enrollment refused: {why}");
            return Err(AppError::TooManyRequests {
                message,
                retry_after_secs: PENDING_LIMITS.window.as_secs(),
            });
        }
    };

    let Some(token) = token else {
        state.metrics.enrollment(EnrollmentResult::Pending);
        return Ok(EnrollResponse::Pending);
    };
    // The request is the one bound to the name (just made, or the same
    // key asking again): the token approves it at once.
    let cert_pem = sign(state, &csr, &name)?;
    state
        .store()
        .consume_token(&token_hash(token), &name, now)
        .await
        .map_err(|e| match e {
            StoreError::TokenRejected { reason } => {
                tracing::info!(envoy = %name, reason = ?reason, "enrollment token refused");
                AppError::Forbidden(format!("enrollment token refused: {reason}"))
            }
            other => other.into(),
        })?;
    approve(state, &record.name, &cert_pem, now).await?;
    state.metrics.enrollment(EnrollmentResult::Token);
    tracing::info!(envoy = %name, fingerprint = %key_fingerprint, "envoy enrolled with a token");
    Ok(EnrollResponse::Approved { cert_pem })
}

/// The key fingerprint a stored request is bound to; computed from its CSR
/// for requests stored before fingerprints were.
pub(crate) fn bound_fingerprint(record: &EnvoyRecord) -> Option<String> {
    record.key_fingerprint.clone().or_else(|| {
        record
            .csr_pem
            .as_deref()
            .and_then(|csr| vigo_pki::csr_key_fingerprint(csr).ok())
    })
}

/// An approved envoy asking again: the same request gets its certificate
/// back (a pending envoy polling after `approve`); any other key is refused,
/// so no one can take over an enrolled name.
fn reissue(state: &AppState, record: &EnvoyRecord, csr: &str) -> Result<EnrollResponse, AppError> {
    let same = record
        .csr_pem
        .as_deref()
        .is_some_and(|stored| stored.trim() == csr.trim());
    if !same {
        return Err(AppError::Conflict(format!(
            "envoy '{}' is already enrolled with another key; revoke and remove it first",
            record.name
        )));
    }
    let cert_pem = record.cert_pem.clone().ok_or_else(|| {
        AppError::Internal(format!(
            "approved envoy '{}' has no certificate stored",
            record.name
        ))
    })?;
    state.metrics.enrollment(EnrollmentResult::Reissued);
    Ok(EnrollResponse::Approved { cert_pem })
}

/// Signs `csr` for `name` with the CA; a bad request is the client's error.
pub(crate) fn sign(state: &AppState, csr: &str, name: &EnvoyName) -> Result<String, AppError> {
    vigo_pki::sign_envoy_csr(&state.secrets.ca, csr, name, ENVOY_CERT_VALIDITY).map_err(|e| match e
    {
        vigo_pki::PkiError::CsrRejected { .. } | vigo_pki::PkiError::InvalidName { .. } => {
            AppError::BadRequest(format!(
                "the certificate request was refused: {}",
                error_chain(&e)
            ))
        }
        other => AppError::Internal(format!(
            "signing an envoy certificate: {}",
            error_chain(&other)
        )),
    })
}

/// Marks `name` approved with `cert_pem`.
pub(crate) async fn approve(
    state: &AppState,
    name: &str,
    cert_pem: &str,
    at: Timestamp,
) -> Result<EnvoyRecord, AppError> {
    let fingerprint = vigo_pki::cert_fingerprint_sha256(cert_pem)
        .map_err(|e| AppError::Internal(format!("fingerprinting a new certificate: {e}")))?;
    state
        .store()
        .approve_envoy(name, cert_pem, &fingerprint, at)
        .await
        .map_err(|e| match e {
            StoreError::EnvoyRevoked { .. } => AppError::Conflict(e.to_string()),
            StoreError::EnvoyNotFound { .. } => AppError::NotFound(e.to_string()),
            other => other.into(),
        })
}

/// SHA-256 of an enrollment token, lowercase hex: the only form stored.
pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        token.as_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_limits_are_the_documented_ones() {
        assert_eq!(PENDING_LIMITS.total, 1_000);
        assert_eq!(PENDING_LIMITS.per_source, 20);
        assert_eq!(PENDING_LIMITS.window, Duration::from_secs(60));
        assert_eq!(PENDING_EXPIRY, Duration::from_secs(7 * 24 * 3600));
    }

    #[test]
    fn token_hash_is_sha256_hex() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
