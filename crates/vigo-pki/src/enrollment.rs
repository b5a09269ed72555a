//! Envoy enrollment: the envoy's key and request, and the server's signature.
//!
//! Security: a certificate signing request is written by the envoy and can
//! ask for anything (a CA certificate, server authentication, another envoy's
//! name). [`sign_envoy_csr`] therefore checks the request's self-signature
//! (proof that the requester holds the private key) and then uses nothing
//! from it but the public key. Names, usages and constraints all come from
//! the server's enrollment record.
//!
//! A pending request is identified to the operator by its key fingerprint
//! ([`csr_key_fingerprint`]): SHA-256 of the request's public key
//! (SubjectPublicKeyInfo DER) in lower-case hex, which the envoy prints while
//! it waits and `vigocli envoys approve NAME --fingerprint FP` must name.

use std::time::Duration;

use rcgen::{
    CertificateParams, CertificateSigningRequestParams, ExtendedKeyUsagePurpose, PublicKeyData,
    SanType,
};
use vigo_secrets::{EnvoyName, SecretValue};

use crate::PkiError;
use crate::authority::{
    CertifiedKey, common_name_dn, generate_key, ia5_name, load_issuer, sign_leaf,
};

/// Hex digits of a full key fingerprint (SHA-256).
pub const KEY_FINGERPRINT_LEN: usize = 64;

/// The fewest hex digits `--fingerprint` accepts as a prefix.
pub const MIN_FINGERPRINT_PREFIX: usize = 16;

/// Makes an envoy's private key (ECDSA P-256, PKCS#8 PEM) and a certificate
/// signing request (PEM) for `envoy_name`.
pub fn generate_envoy_key_and_csr(
    envoy_name: &EnvoyName,
) -> Result<(SecretValue, String), PkiError> {
    let key = generate_key()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name_dn(envoy_name);
    params.subject_alt_names = vec![SanType::DnsName(ia5_name(envoy_name)?)];
    let csr = params
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .map_err(|source| PkiError::Signing {
            what: "envoy certificate request",
            source,
        })?;
    Ok((SecretValue::new(key.serialize_pem()), csr))
}

/// The key fingerprint of a certificate request: SHA-256 of its public key
/// (SubjectPublicKeyInfo DER), 64 lower-case hex digits. The request's
/// self-signature is verified first, so the fingerprint names a key the
/// requester holds.
pub fn csr_key_fingerprint(csr_pem: &str) -> Result<String, PkiError> {
    let request = parse_csr(csr_pem)?;
    let spki = request.public_key.subject_public_key_info();
    Ok(hex_sha256(&spki))
}

/// Normalises what an operator typed as a key fingerprint: `:` and white
/// space are dropped and letters lower-cased. `None` unless the rest is 16
/// to 64 hex digits.
pub fn parse_fingerprint_prefix(input: &str) -> Option<String> {
    let digits: String = input
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let ok = (MIN_FINGERPRINT_PREFIX..=KEY_FINGERPRINT_LEN).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then_some(digits)
}

/// Signs an envoy's certificate request with the CA.
///
/// Only the request's public key is used, after its self-signature has been
/// verified. The certificate names `envoy_name` (from the enrollment record)
/// as common name and as its only DNS name, is not a CA, allows
/// digitalSignature and clientAuth only, has a fresh random serial and is
/// valid for `validity`. Returns the certificate PEM.
pub fn sign_envoy_csr(
    ca: &CertifiedKey,
    csr_pem: &str,
    envoy_name: &EnvoyName,
    validity: Duration,
) -> Result<String, PkiError> {
    let issuer = load_issuer(ca)?;
    let request = parse_csr(csr_pem)?;

    let mut params = CertificateParams::default();
    params.distinguished_name = common_name_dn(envoy_name);
    params.subject_alt_names = vec![SanType::DnsName(ia5_name(envoy_name)?)];
    let cert = sign_leaf(
        params,
        ExtendedKeyUsagePurpose::ClientAuth,
        validity,
        &request.public_key,
        &issuer,
        "envoy certificate",
    )?;
    Ok(cert.pem())
}

/// Reads a request; `from_pem` verifies its self-signature.
fn parse_csr(csr_pem: &str) -> Result<CertificateSigningRequestParams, PkiError> {
    CertificateSigningRequestParams::from_pem(csr_pem).map_err(|err| PkiError::CsrRejected {
        reason: err.to_string(),
    })
}

fn hex_sha256(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use rcgen::{BasicConstraints, IsCa, KeyPair, KeyUsagePurpose, PublicKeyData};
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    use x509_parser::extensions::GeneralName;

    use super::*;
    use crate::{envoy_name_from_cert, generate_ca};

    const DAY: Duration = Duration::from_secs(24 * 60 * 60);

    fn name(text: &str) -> EnvoyName {
        EnvoyName::parse(text).unwrap()
    }

    #[test]
    fn envoy_csr_round_trip() {
        let ca = generate_ca("Vigo CA").unwrap();
        let (key, csr) = generate_envoy_key_and_csr(&name("db1.example.com")).unwrap();
        assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        assert_eq!(format!("{key:?}"), "[REDACTED]");
        let cert = sign_envoy_csr(&ca, &csr, &name("db1.example.com"), 365 * DAY).unwrap();
        let der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        assert_eq!(envoy_name_from_cert(&der).unwrap(), "db1.example.com");

        // The certificate carries the envoy's own public key.
        let key_pair = KeyPair::from_pem(key.expose_secret()).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(
            parsed.public_key().raw,
            key_pair.subject_public_key_info().as_slice()
        );
        let days = (parsed.validity().not_after.timestamp()
            - parsed.validity().not_before.timestamp())
            / (24 * 3600);
        // 365 days plus the one-hour clock-skew allowance.
        assert_eq!(days, 365);
    }

    #[test]
    fn signing_ignores_everything_the_request_asks_for() {
        let ca = generate_ca("Vigo CA").unwrap();
        let attacker_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut wish = CertificateParams::new(vec![
            "db1.example.com".to_owned(),
            "web7.example.com".to_owned(),
            "*.example.com".to_owned(),
        ])
        .unwrap();
        wish.distinguished_name = common_name_dn("web7.example.com");
        wish.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        wish.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        wish.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let csr = wish
            .serialize_request(&attacker_key)
            .unwrap()
            .pem()
            .unwrap();

        let pem = sign_envoy_csr(&ca, &csr, &name("db1.example.com"), 30 * DAY).unwrap();
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();

        assert_eq!(cert.subject().to_string(), "CN=db1.example.com");
        let sans = crate::authority::tests::sans(&cert);
        assert_eq!(sans, &vec![GeneralName::DNSName("db1.example.com")]);
        let bc = cert.basic_constraints().unwrap().unwrap().value;
        assert!(!bc.ca);
        assert_eq!(bc.path_len_constraint, None);
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature());
        assert!(!ku.key_cert_sign() && !ku.crl_sign() && !ku.key_encipherment());
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth);
        assert!(!eku.server_auth && !eku.any && !eku.code_signing && eku.other.is_empty());
        assert_eq!(cert.issuer().to_string(), "CN=Vigo CA");
        assert_eq!(envoy_name_from_cert(&der).unwrap(), "db1.example.com");
    }

    #[test]
    fn tampered_request_is_rejected() {
        let ca = generate_ca("Vigo CA").unwrap();
        let (_, csr) = generate_envoy_key_and_csr(&name("db1.example.com")).unwrap();
        let der =
            rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(csr.as_bytes()).unwrap();
        let mut bytes = der.as_ref().to_vec();
        // Flip a bit inside the subject's common name: the signature no longer matches.
        let at = bytes.windows(3).position(|w| w == b"db1").unwrap();
        bytes[at] ^= 0x01;
        let tampered = csr_pem(&bytes);
        let err = sign_envoy_csr(&ca, &tampered, &name("db1.example.com"), DAY).unwrap_err();
        assert!(matches!(err, PkiError::CsrRejected { .. }), "{err}");
        assert!(err.to_string().contains("Invalid CSR signature"), "{err}");
        // The same bytes untouched are accepted, so the encoder below is sound.
        sign_envoy_csr(&ca, &csr_pem(der.as_ref()), &name("db1.example.com"), DAY).unwrap();

        let err = sign_envoy_csr(&ca, "not a request", &name("db1.example.com"), DAY).unwrap_err();
        assert!(matches!(err, PkiError::CsrRejected { .. }), "{err}");
    }

    #[test]
    fn issue_12_key_fingerprint_is_sha256_of_the_public_key() {
        let (key, csr) = generate_envoy_key_and_csr(&name("db1.example.com")).unwrap();
        let fingerprint = csr_key_fingerprint(&csr).unwrap();
        let key_pair = KeyPair::from_pem(key.expose_secret()).unwrap();
        assert_eq!(
            fingerprint,
            hex_sha256(&key_pair.subject_public_key_info()),
            "SHA-256 of the SubjectPublicKeyInfo DER"
        );
        assert_eq!(fingerprint.len(), KEY_FINGERPRINT_LEN);
        assert!(
            fingerprint
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        );

        // The certificate issued for the request carries the same key.
        let ca = generate_ca("Vigo CA").unwrap();
        let cert = sign_envoy_csr(&ca, &csr, &name("db1.example.com"), DAY).unwrap();
        let der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(hex_sha256(parsed.public_key().raw), fingerprint);

        // Another key, another fingerprint; a broken request has none.
        let (_, other) = generate_envoy_key_and_csr(&name("db1.example.com")).unwrap();
        assert_ne!(csr_key_fingerprint(&other).unwrap(), fingerprint);
        assert!(matches!(
            csr_key_fingerprint("not a request"),
            Err(PkiError::CsrRejected { .. })
        ));
    }

    #[test]
    fn issue_12_fingerprint_prefixes_need_16_hex_digits() {
        let full = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert_eq!(parse_fingerprint_prefix(full).as_deref(), Some(full));
        assert_eq!(
            parse_fingerprint_prefix("9F:86:D0:81:88:4C:7D:65").as_deref(),
            Some("9f86d081884c7d65")
        );
        assert_eq!(
            parse_fingerprint_prefix(" 9f86d081884c7d65 ").as_deref(),
            Some("9f86d081884c7d65")
        );
        for bad in [
            "",
            "9f86d081884c7d6",
            "9f86d081884c7d6z",
            &format!("{full}0"),
            "sha256",
        ] {
            assert_eq!(parse_fingerprint_prefix(bad), None, "{bad}");
        }
    }

    #[test]
    fn issue_12_certificates_carry_the_lower_case_name() {
        let ca = generate_ca("Vigo CA").unwrap();
        let upper = name("DB1.EXAMPLE.COM");
        let (_, csr) = generate_envoy_key_and_csr(&upper).unwrap();
        let cert = sign_envoy_csr(&ca, &csr, &upper, DAY).unwrap();
        let der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        assert_eq!(envoy_name_from_cert(&der).unwrap(), "db1.example.com");
    }

    /// Wraps DER in a PEM block (standard base64, 64-column lines).
    fn csr_pem(der: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut body = String::new();
        for chunk in der.chunks(3) {
            let bits = chunk.iter().enumerate().fold(0u32, |acc, (i, byte)| {
                acc | (u32::from(*byte) << (16 - 8 * i))
            });
            for i in 0..4 {
                let sextet = (bits >> (18 - 6 * i)) & 63;
                body.push(if i <= chunk.len() {
                    char::from(ALPHABET[sextet as usize])
                } else {
                    '='
                });
            }
        }
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|l| std::str::from_utf8(l).unwrap())
            .collect();
        format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
            lines.join("\n")
        )
    }
}
