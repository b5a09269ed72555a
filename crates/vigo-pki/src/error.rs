//! The error type of vigo-pki. No variant ever holds private key material.

use std::time::Duration;

/// What went wrong while making, signing or loading certificates and keys.
///
/// `what` fields name the object involved ("CA certificate", "server private
/// key", ...) so the caller can tell which stored secret is at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// Generating a key pair failed (the crypto library refused).
    #[error("generating an ECDSA P-256 key pair failed")]
    KeyGeneration {
        /// The underlying error.
        #[source]
        source: rcgen::Error,
    },

    /// Building or signing a certificate or request failed.
    #[error("signing the {what} failed")]
    Signing {
        /// What was being signed.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: rcgen::Error,
    },

    /// The system random number generator failed.
    #[error("the system random number generator failed while making a certificate serial number")]
    Random,

    /// A name cannot go into a certificate.
    #[error("'{name}' cannot be used as a certificate name: {reason}")]
    InvalidName {
        /// The rejected name (host and envoy names are not secret).
        name: String,
        /// Why.
        reason: &'static str,
    },

    /// A requested validity period does not fit in a certificate.
    #[error("a certificate validity of {}s is out of range; use at most a few decades", validity.as_secs())]
    Validity {
        /// The requested validity.
        validity: Duration,
    },

    /// A certificate PEM could not be read.
    #[error(
        "the {what} is not a PEM certificate: {reason}; check that the stored value starts with '-----BEGIN CERTIFICATE-----'"
    )]
    CertificatePem {
        /// Which certificate.
        what: &'static str,
        /// What was wrong with it.
        reason: String,
    },

    /// A private key PEM could not be read. The cause is left out on purpose:
    /// parser messages can quote the input.
    #[error(
        "the {what} is not a PEM-encoded private key (PKCS#8, SEC1 or PKCS#1); check the stored secret"
    )]
    PrivateKeyPem {
        /// Which key.
        what: &'static str,
    },

    /// The private key does not belong to the certificate it is stored with.
    #[error(
        "the {what} private key does not match its certificate; restore the pair from the same backup or regenerate both"
    )]
    KeyMismatch {
        /// Which pair.
        what: &'static str,
    },

    /// A DER certificate could not be parsed.
    #[error("cannot parse the {what}: {reason}")]
    CertificateParse {
        /// Which certificate.
        what: &'static str,
        /// What the parser reported.
        reason: String,
    },

    /// An envoy's certificate signing request was refused.
    #[error("envoy certificate request rejected: {reason}")]
    CsrRejected {
        /// Why (unparsable, bad self-signature, unsupported extension, ...).
        reason: String,
    },

    /// A client certificate does not carry a usable envoy identity.
    #[error("client certificate does not name an envoy: {reason}")]
    EnvoyIdentity {
        /// What is wrong with its names.
        reason: String,
    },

    /// rustls refused to build a configuration.
    #[error("building the {what} TLS configuration failed")]
    Tls {
        /// Which configuration ("server", "client").
        what: &'static str,
        /// The underlying error.
        #[source]
        source: rustls::Error,
    },

    /// The client certificate verifier could not be built.
    #[error("building the client certificate verifier failed")]
    ClientVerifier {
        /// The underlying error.
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error and its one cause as `{:#}` (anyhow) prints them.
    fn chain(err: &PkiError) -> String {
        let cause = std::error::Error::source(err).map(ToString::to_string);
        format!("{err}: {}", cause.unwrap_or_default())
    }

    fn assert_cause_once(err: &PkiError, cause: &str) {
        let line = chain(err);
        assert_eq!(
            line.matches(cause).count(),
            1,
            "cause not said once: {line}"
        );
        assert!(
            !err.to_string().contains(cause),
            "message repeats its source: {err}"
        );
    }

    #[test]
    fn issue_13_errors_with_a_source_say_it_once() {
        let rcgen_cause = rcgen::Error::RingKeyRejected("key rejected by test".into());
        let cause = rcgen_cause.to_string();
        assert_cause_once(
            &PkiError::KeyGeneration {
                source: rcgen_cause,
            },
            &cause,
        );
        let rcgen_cause = rcgen::Error::RingKeyRejected("key rejected by test".into());
        let err = PkiError::Signing {
            what: "CA certificate",
            source: rcgen_cause,
        };
        assert_eq!(
            chain(&err),
            format!("signing the CA certificate failed: {cause}")
        );
        assert_cause_once(&err, &cause);

        let rustls_cause = rustls::Error::General("no usable certificate in test".into());
        let cause = rustls_cause.to_string();
        let err = PkiError::Tls {
            what: "server",
            source: rustls_cause,
        };
        assert_eq!(
            chain(&err),
            format!("building the server TLS configuration failed: {cause}")
        );
        assert_cause_once(&err, &cause);

        let verifier_cause = rustls::server::VerifierBuilderError::NoRootAnchors;
        let cause = verifier_cause.to_string();
        assert_cause_once(
            &PkiError::ClientVerifier {
                source: verifier_cause,
            },
            &cause,
        );
    }
}
