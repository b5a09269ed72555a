//! Reading certificates: fingerprints, names and the envoy identity.

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use vigo_secrets::EnvoyName;
use x509_parser::extensions::GeneralName;

use crate::PkiError;

/// The names a certificate carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertNames {
    /// The subject's common name, if it has exactly one.
    pub common_name: Option<String>,
    /// The DNS names among the subject alternative names, in order.
    pub dns_names: Vec<String>,
}

/// SHA-256 of the certificate's DER encoding as upper-case hex pairs joined by
/// `:`, the form `openssl x509 -fingerprint -sha256` prints.
pub fn cert_fingerprint_sha256(cert_pem: &str) -> Result<String, PkiError> {
    let der = pem_to_der(cert_pem, "certificate")?;
    Ok(der_fingerprint_sha256(&der))
}

/// [`cert_fingerprint_sha256`] of a certificate already in DER form (as TLS
/// presents a client's).
pub fn der_fingerprint_sha256(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    let pairs: Vec<String> = digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect();
    pairs.join(":")
}

/// The subject common name and DNS names of a certificate given as PEM or
/// DER (PEM is recognised by its `-----BEGIN` line).
pub fn cert_names(cert: &[u8]) -> Result<CertNames, PkiError> {
    let der = if cert.trim_ascii_start().starts_with(b"-----BEGIN") {
        CertificateDer::from_pem_slice(cert).map_err(|err| PkiError::CertificatePem {
            what: "certificate",
            reason: err.to_string(),
        })?
    } else {
        CertificateDer::from(cert.to_vec())
    };
    names_of_der(&der, "certificate")
}

/// The envoy name a client certificate proves: its common name, which must
/// also be its one and only DNS name (as [`sign_envoy_csr`](crate::sign_envoy_csr)
/// issues them). `der` is the certificate as TLS presents it. The name comes
/// back in its one normalised form (lower case), so a certificate issued
/// before names were normalised still names the same envoy.
pub fn envoy_name_from_cert(der: &[u8]) -> Result<EnvoyName, PkiError> {
    let names = names_of_der(der, "client certificate")?;
    let refuse = |reason: String| Err(PkiError::EnvoyIdentity { reason });
    let Some(common_name) = names.common_name else {
        return refuse("it has no single subject common name".to_owned());
    };
    match names.dns_names.as_slice() {
        [only] if *only == common_name => EnvoyName::parse(&common_name)
            .or_else(|e| refuse(format!("its name is not a valid envoy name ({})", e.reason))),
        [only] => refuse(format!(
            "common name '{common_name}' differs from DNS name '{only}'"
        )),
        [] => refuse(format!(
            "common name '{common_name}' has no matching DNS name"
        )),
        more => refuse(format!(
            "it carries {} DNS names, expected exactly one",
            more.len()
        )),
    }
}

/// Decodes the first certificate of a PEM text.
pub(crate) fn pem_to_der(
    cert_pem: &str,
    what: &'static str,
) -> Result<CertificateDer<'static>, PkiError> {
    CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|err| PkiError::CertificatePem {
        what,
        reason: err.to_string(),
    })
}

fn names_of_der(der: &[u8], what: &'static str) -> Result<CertNames, PkiError> {
    let parse_error = |reason: String| PkiError::CertificateParse { what, reason };
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|err| parse_error(err.to_string()))?;
    let mut common_names = cert.subject().iter_common_name();
    let common_name = match (common_names.next(), common_names.next()) {
        (Some(cn), None) => Some(
            cn.as_str()
                .map_err(|err| parse_error(format!("subject common name: {err}")))?
                .to_owned(),
        ),
        _ => None,
    };
    let sans = cert
        .subject_alternative_name()
        .map_err(|err| parse_error(format!("subject alternative names: {err}")))?;
    let dns_names = sans
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(CertNames {
        common_name,
        dns_names,
    })
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    use rcgen::{CertificateParams, KeyPair};

    use super::*;
    use crate::{generate_ca, generate_envoy_key_and_csr, issue_server_cert, sign_envoy_csr};

    #[test]
    fn fingerprint_format() {
        let ca = generate_ca("Vigo CA").unwrap();
        let fp = cert_fingerprint_sha256(&ca.cert_pem).unwrap();
        assert_eq!(fp.len(), 32 * 3 - 1);
        for (i, pair) in fp.split(':').enumerate() {
            assert_eq!(pair.len(), 2, "pair {i} of {fp}");
            assert!(
                pair.chars()
                    .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)),
                "{fp}"
            );
        }
        let der = pem_to_der(&ca.cert_pem, "CA certificate").unwrap();
        let expected: String = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        assert_eq!(fp.replace(':', ""), expected);
        assert_eq!(der_fingerprint_sha256(&der), fp, "DER and PEM agree");
        assert_eq!(cert_fingerprint_sha256(&ca.cert_pem).unwrap(), fp);
        assert_ne!(
            cert_fingerprint_sha256(&generate_ca("Vigo CA").unwrap().cert_pem).unwrap(),
            fp
        );
    }

    #[test]
    fn fingerprint_of_garbage_is_an_error() {
        let err = cert_fingerprint_sha256("hello").unwrap_err();
        assert!(err.to_string().contains("not a PEM certificate"), "{err}");
    }

    #[test]
    fn names_from_pem_and_der() {
        let ca = generate_ca("Vigo CA").unwrap();
        let server = issue_server_cert(
            &ca,
            &["localhost".to_owned(), "vigo1".to_owned()],
            &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
        )
        .unwrap();
        let expected = CertNames {
            common_name: Some("localhost".to_owned()),
            dns_names: vec!["localhost".to_owned(), "vigo1".to_owned()],
        };
        assert_eq!(cert_names(server.cert_pem.as_bytes()).unwrap(), expected);
        let der = pem_to_der(&server.cert_pem, "server certificate").unwrap();
        assert_eq!(cert_names(&der).unwrap(), expected);
        assert_eq!(
            cert_names(ca.cert_pem.as_bytes()).unwrap(),
            CertNames {
                common_name: Some("Vigo CA".to_owned()),
                dns_names: vec![]
            }
        );
    }

    #[test]
    fn envoy_identity_from_issued_cert() {
        let ca = generate_ca("Vigo CA").unwrap();
        let name = EnvoyName::parse("web-3.example.com").unwrap();
        let (_, csr) = generate_envoy_key_and_csr(&name).unwrap();
        let pem = sign_envoy_csr(&ca, &csr, &name, Duration::from_secs(3600)).unwrap();
        let der = pem_to_der(&pem, "envoy certificate").unwrap();
        assert_eq!(envoy_name_from_cert(&der).unwrap(), "web-3.example.com");
    }

    #[test]
    fn envoy_identity_requires_matching_single_name() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let identity_of = |sans: Vec<String>, cn: &str| {
            let mut params = CertificateParams::new(sans).unwrap();
            params.distinguished_name = crate::authority::common_name_dn(cn);
            let cert = params.self_signed(&key).unwrap();
            envoy_name_from_cert(cert.der())
        };
        assert_eq!(
            identity_of(vec!["a.example".into()], "a.example").unwrap(),
            "a.example"
        );
        // A certificate from before names were normalised names the
        // lower-case envoy.
        assert_eq!(
            identity_of(vec!["Web1.Example".into()], "Web1.Example").unwrap(),
            "web1.example"
        );
        for (sans, cn) in [
            (vec!["b.example".to_owned()], "a.example"),
            (vec![], "a.example"),
            (vec!["a_b.example".to_owned()], "a_b.example"),
            (
                vec!["a.example".to_owned(), "b.example".to_owned()],
                "a.example",
            ),
        ] {
            let err = identity_of(sans, cn).unwrap_err();
            assert!(matches!(err, PkiError::EnvoyIdentity { .. }), "{err}");
        }
        let err = envoy_name_from_cert(b"\x30\x03garbage").unwrap_err();
        assert!(matches!(err, PkiError::CertificateParse { .. }), "{err}");
    }
}
