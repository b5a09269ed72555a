//! The Vigo CA and the server certificate it signs.

use std::net::IpAddr;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use time::OffsetDateTime;
use vigo_secrets::SecretValue;

use crate::{CA_VALIDITY, PkiError, SERVER_CERT_VALIDITY};

/// How far `not_before` is set into the past, so that a host whose clock is
/// slightly behind the server's still accepts a certificate issued just now.
const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(60 * 60);

/// A certificate with its private key.
///
/// The key is PKCS#8 PEM inside a [`SecretValue`], so `Debug` prints
/// `[REDACTED]` for it and it is zeroized on drop.
#[derive(Clone, Debug)]
pub struct CertifiedKey {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: SecretValue,
}

/// Generates a self-signed CA: ECDSA P-256, path length 0 (it signs only
/// end-entity certificates), key usages keyCertSign and cRLSign, valid for
/// ten years.
pub fn generate_ca(common_name: &str) -> Result<CertifiedKey, PkiError> {
    let key = generate_key()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name_dn(common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.serial_number = Some(random_serial()?);
    set_validity(&mut params, CA_VALIDITY)?;
    let cert = params
        .self_signed(&key)
        .map_err(|source| PkiError::Signing {
            what: "CA certificate",
            source,
        })?;
    Ok(CertifiedKey {
        cert_pem: cert.pem(),
        key_pem: SecretValue::new(key.serialize_pem()),
    })
}

/// Issues the server's TLS certificate, signed by `ca`: serverAuth only, not a
/// CA, valid for two years, with exactly the given DNS names and IP addresses
/// as subject alternative names. The common name is the first DNS name.
pub fn issue_server_cert(
    ca: &CertifiedKey,
    dns_names: &[String],
    ips: &[IpAddr],
) -> Result<CertifiedKey, PkiError> {
    let issuer = load_issuer(ca)?;
    let key = generate_key()?;
    let mut params = CertificateParams::default();
    params.distinguished_name =
        common_name_dn(dns_names.first().map(String::as_str).unwrap_or("vigosrv"));
    for name in dns_names {
        params
            .subject_alt_names
            .push(SanType::DnsName(ia5_name(name)?));
    }
    params
        .subject_alt_names
        .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    let cert = sign_leaf(
        params,
        ExtendedKeyUsagePurpose::ServerAuth,
        SERVER_CERT_VALIDITY,
        &key,
        &issuer,
        "server certificate",
    )?;
    Ok(CertifiedKey {
        cert_pem: cert.pem(),
        key_pem: SecretValue::new(key.serialize_pem()),
    })
}

/// The machine's host name, for the server certificate's names.
///
/// Reads `/proc/sys/kernel/hostname`, then `/etc/hostname`; falls back to
/// `localhost` when neither holds a name.
pub fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|file| std::fs::read_to_string(file).ok())
        .map(|text| text.trim().to_owned())
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// A fresh ECDSA P-256 key pair.
pub(crate) fn generate_key() -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|source| PkiError::KeyGeneration { source })
}

/// A distinguished name holding only a common name.
pub(crate) fn common_name_dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// `name` as the IA5 string a DNS subject alternative name holds.
pub(crate) fn ia5_name(name: &str) -> Result<rcgen::string::Ia5String, PkiError> {
    rcgen::string::Ia5String::try_from(name).map_err(|_| PkiError::InvalidName {
        name: name.to_owned(),
        reason: "a DNS name must be ASCII",
    })
}

/// A random, positive 128-bit serial number (RFC 5280 asks for at most 20
/// bytes and unpredictability helps against chosen-prefix attacks).
pub(crate) fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| PkiError::Random)?;
    // Clear the sign bit and set the next one, so the DER integer is positive
    // and always 16 bytes long.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

/// Signs a leaf certificate for `public_key` with `issuer`: not a CA,
/// digitalSignature and `usage` only, a fresh random serial, valid for
/// `validity`. `what` names the certificate in the error.
pub(crate) fn sign_leaf(
    mut params: CertificateParams,
    usage: ExtendedKeyUsagePurpose,
    validity: Duration,
    public_key: &impl PublicKeyData,
    issuer: &Issuer<'_, KeyPair>,
    what: &'static str,
) -> Result<rcgen::Certificate, PkiError> {
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial()?);
    set_validity(&mut params, validity)?;
    params
        .signed_by(public_key, issuer)
        .map_err(|source| PkiError::Signing { what, source })
}

/// Sets `not_before` slightly in the past and `not_after` to now + `validity`.
pub(crate) fn set_validity(
    params: &mut CertificateParams,
    validity: Duration,
) -> Result<(), PkiError> {
    let now = OffsetDateTime::now_utc();
    let out_of_range = || PkiError::Validity { validity };
    let span = time::Duration::try_from(validity).map_err(|_| out_of_range())?;
    let skew = time::Duration::try_from(CLOCK_SKEW_ALLOWANCE).map_err(|_| out_of_range())?;
    let not_after = now.checked_add(span).ok_or_else(out_of_range)?;
    // Certificates are encoded with four-digit years.
    if not_after.year() > 9999 {
        return Err(out_of_range());
    }
    params.not_before = now.checked_sub(skew).ok_or_else(out_of_range)?;
    params.not_after = not_after;
    Ok(())
}

/// The CA as an rcgen issuer, after checking that its key and certificate
/// belong together.
pub(crate) fn load_issuer(ca: &CertifiedKey) -> Result<Issuer<'static, KeyPair>, PkiError> {
    let key =
        KeyPair::from_pem(ca.key_pem.expose_secret()).map_err(|_| PkiError::PrivateKeyPem {
            what: "CA private key",
        })?;
    let der = CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).map_err(|err| {
        PkiError::CertificatePem {
            what: "CA certificate",
            reason: err.to_string(),
        }
    })?;
    let (_, parsed) =
        x509_parser::parse_x509_certificate(&der).map_err(|err| PkiError::CertificateParse {
            what: "CA certificate",
            reason: err.to_string(),
        })?;
    if parsed.public_key().raw != key.subject_public_key_info().as_slice() {
        return Err(PkiError::KeyMismatch { what: "CA" });
    }
    Issuer::from_ca_cert_der(&der, key).map_err(|err| PkiError::CertificateParse {
        what: "CA certificate",
        reason: err.to_string(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::X509Certificate;

    use super::*;

    /// The subject alternative names of `cert`.
    pub(crate) fn sans<'a>(cert: &'a X509Certificate<'a>) -> &'a Vec<GeneralName<'a>> {
        &cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
    }

    pub(crate) fn parse(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    fn with_cert<T>(pem: &str, f: impl FnOnce(&X509Certificate<'_>) -> T) -> T {
        let der = parse(pem);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        f(&cert)
    }

    #[test]
    fn ca_is_a_constrained_p256_ca() {
        let ca = generate_ca("Vigo CA").unwrap();
        assert!(
            ca.key_pem
                .expose_secret()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        with_cert(&ca.cert_pem, |cert| {
            assert_eq!(cert.subject().to_string(), "CN=Vigo CA");
            assert_eq!(cert.issuer().to_string(), "CN=Vigo CA");
            let bc = cert.basic_constraints().unwrap().unwrap().value;
            assert!(bc.ca);
            assert_eq!(bc.path_len_constraint, Some(0));
            let ku = cert.key_usage().unwrap().unwrap().value;
            assert!(ku.key_cert_sign() && ku.crl_sign());
            assert!(!ku.digital_signature());
            let years = (cert.validity().not_after.timestamp()
                - cert.validity().not_before.timestamp())
                / (365 * 24 * 3600);
            assert_eq!(years, 10);
            assert_eq!(
                cert.public_key()
                    .algorithm
                    .parameters
                    .as_ref()
                    .unwrap()
                    .as_oid()
                    .unwrap(),
                x509_parser::oid_registry::OID_EC_P256
            );
        });
    }

    #[test]
    fn server_cert_has_exactly_the_given_names() {
        let ca = generate_ca("Vigo CA").unwrap();
        let names = vec!["localhost".to_owned(), "vigo1.example.com".to_owned()];
        let ips = [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ];
        let server = issue_server_cert(&ca, &names, &ips).unwrap();
        with_cert(&server.cert_pem, |cert| {
            assert_eq!(cert.subject().to_string(), "CN=localhost");
            assert_eq!(cert.issuer().to_string(), "CN=Vigo CA");
            let sans = sans(cert);
            assert_eq!(
                sans,
                &vec![
                    GeneralName::DNSName("localhost"),
                    GeneralName::DNSName("vigo1.example.com"),
                    GeneralName::IPAddress(&[127, 0, 0, 1]),
                    GeneralName::IPAddress(&Ipv6Addr::LOCALHOST.octets()),
                ]
            );
            assert!(!cert.basic_constraints().unwrap().unwrap().value.ca);
            let eku = cert.extended_key_usage().unwrap().unwrap().value;
            assert!(eku.server_auth && !eku.client_auth);
            let years = (cert.validity().not_after.timestamp()
                - cert.validity().not_before.timestamp())
                / (365 * 24 * 3600);
            assert_eq!(years, 2);
        });
    }

    #[test]
    fn serials_are_random() {
        let ca = generate_ca("Vigo CA").unwrap();
        let names = vec!["localhost".to_owned()];
        let a = issue_server_cert(&ca, &names, &[]).unwrap();
        let b = issue_server_cert(&ca, &names, &[]).unwrap();
        let serial = |pem: &str| with_cert(pem, |c| c.raw_serial().to_vec());
        assert_ne!(serial(&a.cert_pem), serial(&b.cert_pem));
        assert_eq!(serial(&a.cert_pem).len(), 16);
    }

    #[test]
    fn mismatched_ca_key_is_refused() {
        let ca = generate_ca("Vigo CA").unwrap();
        let other = generate_ca("Other CA").unwrap();
        let mixed = CertifiedKey {
            cert_pem: ca.cert_pem,
            key_pem: other.key_pem,
        };
        let err = issue_server_cert(&mixed, &["localhost".to_owned()], &[]).unwrap_err();
        assert!(matches!(err, PkiError::KeyMismatch { .. }), "{err}");
    }

    #[test]
    fn broken_key_error_does_not_quote_the_key() {
        let ca = generate_ca("Vigo CA").unwrap();
        let broken = CertifiedKey {
            cert_pem: ca.cert_pem,
            key_pem: SecretValue::from("-----BEGIN PRIVATE KEY-----\ncanary-91b2\n"),
        };
        let err = issue_server_cert(&broken, &["localhost".to_owned()], &[]).unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains("canary-91b2"), "{text}");
        assert!(text.contains("CA private key"), "{text}");
    }

    #[test]
    fn host_name_is_not_empty() {
        let name = host_name();
        assert!(!name.is_empty());
        assert_eq!(name, name.trim());
    }

    #[test]
    fn absurd_validity_is_an_error() {
        let mut params = CertificateParams::default();
        let err = set_validity(&mut params, Duration::from_secs(u64::MAX)).unwrap_err();
        assert!(matches!(err, PkiError::Validity { .. }));
    }
}
