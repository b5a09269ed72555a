//! Vigo's certificate authority, certificates and TLS configurations.
//!
//! The server runs its own CA (docs/secrets.md "First start"): on first start it generates a
//! self-signed CA and a server certificate signed by it, and stores both private keys as secrets.
//! Envoys enroll by sending a certificate signing request (docs/operations.md "Enroll envoys"); the
//! server signs it with the CA, and from then on every request is mutually authenticated and the
//! certificate's name is the envoy's identity.
//!
//! Main items:
//! - [`CertifiedKey`]: a certificate in PEM with its private key, the key held
//!   only in a redacting [`SecretValue`](vigo_secrets::SecretValue).
//! - [`generate_ca`], [`issue_server_cert`]: the CA and the server certificate.
//! - [`generate_envoy_key_and_csr`], [`sign_envoy_csr`]: enrollment. Signing
//!   keeps only the request's public key; every name, usage and constraint in
//!   the issued certificate comes from the enrollment record.
//!   [`csr_key_fingerprint`] names a request's key (SHA-256 of its public
//!   key, hex) for the operator who approves it. Envoy names are
//!   [`EnvoyName`](vigo_secrets::EnvoyName)s, lower case.
//! - [`envoy_name_from_cert`], [`cert_names`], [`cert_fingerprint_sha256`]:
//!   reading certificates.
//! - [`server_tls_config`], [`client_tls_config`]: rustls configurations
//!   built on the aws-lc-rs provider that trust only the Vigo CA.
//! - [`PkiError`]: what failed; never carries private key material.
//!
//! All keys are ECDSA P-256.

mod authority;
mod enrollment;
mod error;
mod inspect;
mod tls;

pub use authority::{CertifiedKey, generate_ca, host_name, issue_server_cert};
pub use enrollment::{
    KEY_FINGERPRINT_LEN, MIN_FINGERPRINT_PREFIX, csr_key_fingerprint, generate_envoy_key_and_csr,
    parse_fingerprint_prefix, sign_envoy_csr,
};
pub use error::PkiError;
pub use inspect::{
    CertNames, cert_fingerprint_sha256, cert_names, der_fingerprint_sha256, envoy_name_from_cert,
};
pub use tls::{client_tls_config, server_tls_config};

/// Validity of the CA certificate: ten years.
pub const CA_VALIDITY: std::time::Duration = std::time::Duration::from_secs(3652 * 24 * 60 * 60);

/// Validity of the server certificate: two years.
pub const SERVER_CERT_VALIDITY: std::time::Duration =
    std::time::Duration::from_secs(731 * 24 * 60 * 60);
