//! First start (docs/secrets.md "First start"): the local master key, then the secrets the server
//! generates for itself. Nothing that exists is ever replaced.
//!
//! `vigosrv` runs [`prepare_local_key`] on every start with the local
//! backend and [`ensure_generated_secrets`] only when the key was just
//! generated; `vigocli secrets bootstrap` runs both on demand, through any
//! backend.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use vigo_pki::CertifiedKey;
use vigo_secrets::{LocalProvider, MasterKey, SecretPath, SecretProvider, SecretValue};
use zeroize::Zeroizing;

use crate::resolve::unreadable;
use crate::well_known::{
    self, ADMIN_TOKEN, CA_CERT, CA_KEY, DB_DSN, HMAC_KEY, SERVER_CERT, SERVER_KEY,
};
use crate::{ConfigError, fetch_secret};

/// The common name of the generated CA.
pub const CA_COMMON_NAME: &str = "Vigo CA";

/// What [`prepare_local_key`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStep {
    /// The key file was there; it is loaded (and checked) when the backend
    /// opens.
    Existing,
    /// There was none and no secrets either: a new key was written.
    Generated,
}

/// Makes sure the local backend has a master key: generates one when
/// `key_file` is missing and `secrets_dir` holds no secrets, and refuses
/// when it is missing but secrets exist (a new key would orphan them).
pub fn prepare_local_key(key_file: &Path, secrets_dir: &Path) -> Result<KeyStep, ConfigError> {
    if std::fs::symlink_metadata(key_file).is_ok() {
        return Ok(KeyStep::Existing);
    }
    let holds = LocalProvider::holds_secrets(secrets_dir)
        .map_err(|cause| ConfigError::MasterKey { cause })?;
    if holds {
        return Err(ConfigError::MasterKeyMissing {
            key_file: key_file.to_owned(),
            secrets_dir: secrets_dir.to_owned(),
        });
    }
    MasterKey::generate_to(key_file).map_err(|cause| ConfigError::MasterKey { cause })?;
    tracing::info!(path = %key_file.display(), "generated master key");
    Ok(KeyStep::Generated)
}

/// Creates each generated secret (docs/secrets.md "First start") that is missing, and returns
/// the paths it created. `data_dir` (absolute) is where the embedded
/// database's DSN points.
pub async fn ensure_generated_secrets(
    provider: &dyn SecretProvider,
    data_dir: &Path,
) -> Result<Vec<SecretPath>, ConfigError> {
    let mut created = Vec::new();
    let ca = ensure_ca(provider, &mut created).await?;
    ensure_server_cert(provider, ca.as_ref(), &mut created).await?;

    let dsn = well_known::path(DB_DSN);
    if !exists(provider, &dsn).await? {
        let value = sqlite_dsn(data_dir, &dsn)?;
        store(provider, &dsn, &value, &mut created).await?;
    }
    for constant in [ADMIN_TOKEN, HMAC_KEY] {
        let path = well_known::path(constant);
        if !exists(provider, &path).await? {
            let value = random_hex(&path)?;
            store(provider, &path, &value, &mut created).await?;
        }
    }
    Ok(created)
}

/// The CA, generated when both halves are missing. Returns it when it was
/// just generated, so the server certificate can be signed without reading
/// it back.
async fn ensure_ca(
    provider: &dyn SecretProvider,
    created: &mut Vec<SecretPath>,
) -> Result<Option<CertifiedKey>, ConfigError> {
    let (cert_path, key_path) = (well_known::path(CA_CERT), well_known::path(CA_KEY));
    match pair_state(provider, &cert_path, &key_path).await? {
        PairState::Both => Ok(None),
        PairState::Neither => {
            let ca = vigo_pki::generate_ca(CA_COMMON_NAME)
                .map_err(certificate_error("CA certificate"))?;
            store_pair(provider, (&cert_path, &key_path), &ca, created).await?;
            Ok(Some(ca))
        }
    }
}

async fn ensure_server_cert(
    provider: &dyn SecretProvider,
    fresh_ca: Option<&CertifiedKey>,
    created: &mut Vec<SecretPath>,
) -> Result<(), ConfigError> {
    let (cert_path, key_path) = (well_known::path(SERVER_CERT), well_known::path(SERVER_KEY));
    if pair_state(provider, &cert_path, &key_path).await? == PairState::Both {
        return Ok(());
    }
    let ca = match fresh_ca {
        Some(ca) => ca.clone(),
        None => CertifiedKey {
            cert_pem: fetch_secret(provider, &well_known::path(CA_CERT))
                .await?
                .value
                .expose_secret()
                .to_owned(),
            key_pem: fetch_secret(provider, &well_known::path(CA_KEY))
                .await?
                .value,
        },
    };
    let host = vigo_pki::host_name();
    let mut dns_names = vec!["localhost".to_owned()];
    if host != "localhost" {
        dns_names.push(host);
    }
    let ips = [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    let server = vigo_pki::issue_server_cert(&ca, &dns_names, &ips)
        .map_err(certificate_error("server certificate"))?;
    store_pair(provider, (&cert_path, &key_path), &server, created).await
}

/// A failure of vigo-pki making `what`.
fn certificate_error(what: &'static str) -> impl FnOnce(vigo_pki::PkiError) -> ConfigError {
    move |cause| ConfigError::Certificate { what, cause }
}

/// Stores a generated certificate and its key at `(cert, key)`, the key
/// first: a crash between the two writes then leaves a half pair that
/// `HalfPair` reports, never a certificate whose key is lost.
async fn store_pair(
    provider: &dyn SecretProvider,
    (cert, key): (&SecretPath, &SecretPath),
    pair: &CertifiedKey,
    created: &mut Vec<SecretPath>,
) -> Result<(), ConfigError> {
    store(provider, key, &pair.key_pem, created).await?;
    let cert_pem = SecretValue::from(pair.cert_pem.as_str());
    store(provider, cert, &cert_pem, created).await
}

#[derive(Debug, PartialEq, Eq)]
enum PairState {
    Both,
    Neither,
}

async fn pair_state(
    provider: &dyn SecretProvider,
    cert: &SecretPath,
    key: &SecretPath,
) -> Result<PairState, ConfigError> {
    match (exists(provider, cert).await?, exists(provider, key).await?) {
        (true, true) => Ok(PairState::Both),
        (false, false) => Ok(PairState::Neither),
        (true, false) => Err(ConfigError::HalfPair {
            present: cert.clone(),
            missing: key.clone(),
        }),
        (false, true) => Err(ConfigError::HalfPair {
            present: key.clone(),
            missing: cert.clone(),
        }),
    }
}

async fn exists(provider: &dyn SecretProvider, path: &SecretPath) -> Result<bool, ConfigError> {
    provider.exists(path).await.map_err(unreadable(path))
}

async fn store(
    provider: &dyn SecretProvider,
    path: &SecretPath,
    value: &SecretValue,
    created: &mut Vec<SecretPath>,
) -> Result<(), ConfigError> {
    let version = provider
        .set(path, value)
        .await
        .map_err(|cause| ConfigError::Store {
            path: path.clone(),
            cause,
        })?;
    tracing::info!(path = %path, version, "generated secret");
    created.push(path.clone());
    Ok(())
}

/// 32 random bytes as 64 lowercase hex characters.
fn random_hex(path: &SecretPath) -> Result<SecretValue, ConfigError> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(&mut bytes[..])
        .map_err(|_| ConfigError::Random { path: path.clone() })?;
    Ok(SecretValue::new(hex::encode(&bytes[..])))
}

/// `sqlite://<data_dir>/vigo.db?key=<64 hex>`, the embedded database's DSN.
fn sqlite_dsn(data_dir: &Path, path: &SecretPath) -> Result<SecretValue, ConfigError> {
    let dir = data_dir.to_str().ok_or_else(|| ConfigError::Unusable {
        path: path.clone(),
        reason: format!(
            "data_dir {} is not valid UTF-8, so it cannot go into a DSN; choose a UTF-8 data_dir",
            data_dir.display()
        ),
    })?;
    let key = random_hex(path)?;
    let dir = dir.trim_end_matches('/');
    Ok(SecretValue::new(format!(
        "sqlite://{dir}/vigo.db?key={}",
        key.expose_secret()
    )))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use vigo_secrets::MemoryProvider;

    use super::*;

    /// The version of the well-known secret `constant` in `provider`.
    async fn version(provider: &MemoryProvider, constant: &str) -> u64 {
        provider
            .get(&well_known::path(constant))
            .await
            .unwrap()
            .version
    }

    #[tokio::test]
    async fn generates_everything_once() {
        let provider = MemoryProvider::new();
        let created = ensure_generated_secrets(&provider, Path::new("/srv/vigo"))
            .await
            .unwrap();
        let names: Vec<_> = created.iter().map(|p| p.as_str()).collect();
        assert_eq!(
            names,
            [
                CA_KEY,
                CA_CERT,
                SERVER_KEY,
                SERVER_CERT,
                DB_DSN,
                ADMIN_TOKEN,
                HMAC_KEY
            ]
        );
        let dsn = provider.get(&well_known::path(DB_DSN)).await.unwrap().value;
        let key = dsn
            .expose_secret()
            .strip_prefix("sqlite:///srv/vigo/vigo.db?key=")
            .unwrap();
        assert_eq!(key.len(), 64);
        assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
        let token = provider
            .get(&well_known::path(ADMIN_TOKEN))
            .await
            .unwrap()
            .value;
        assert_eq!(token.len(), 64);

        // A second run creates nothing and changes nothing.
        let again = ensure_generated_secrets(&provider, Path::new("/srv/vigo"))
            .await
            .unwrap();
        assert!(again.is_empty());
        assert_eq!(version(&provider, DB_DSN).await, 1);
    }

    #[tokio::test]
    async fn missing_server_cert_is_signed_by_the_existing_ca() {
        let provider = MemoryProvider::new();
        ensure_generated_secrets(&provider, Path::new("/d"))
            .await
            .unwrap();
        provider
            .delete(&well_known::path(SERVER_CERT))
            .await
            .unwrap();
        provider
            .delete(&well_known::path(SERVER_KEY))
            .await
            .unwrap();
        let created = ensure_generated_secrets(&provider, Path::new("/d"))
            .await
            .unwrap();
        assert_eq!(created.len(), 2);
        assert_eq!(version(&provider, CA_CERT).await, 1);
        let ca = provider
            .get(&well_known::path(CA_CERT))
            .await
            .unwrap()
            .value;
        let server = CertifiedKey {
            cert_pem: provider
                .get(&well_known::path(SERVER_CERT))
                .await
                .unwrap()
                .value
                .expose_secret()
                .to_owned(),
            key_pem: provider
                .get(&well_known::path(SERVER_KEY))
                .await
                .unwrap()
                .value,
        };
        vigo_pki::server_tls_config(&server, ca.expose_secret()).unwrap();
    }

    #[tokio::test]
    async fn half_a_ca_is_an_error() {
        let provider = MemoryProvider::new();
        provider.insert(&well_known::path(CA_KEY), "x".into());
        let err = ensure_generated_secrets(&provider, Path::new("/d"))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "secret 'vigo/tls/ca_key' exists but 'vigo/tls/ca_cert' does not; restore 'vigo/tls/ca_cert' from a backup, or delete 'vigo/tls/ca_key' so both are generated anew"
        );
    }

    #[test]
    fn key_is_generated_only_without_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("data/master.key");
        let secrets_dir = dir.path().join("data/secrets");
        assert_eq!(
            prepare_local_key(&key_file, &secrets_dir).unwrap(),
            KeyStep::Generated
        );
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            prepare_local_key(&key_file, &secrets_dir).unwrap(),
            KeyStep::Existing
        );

        std::fs::create_dir_all(secrets_dir.join("vigo")).unwrap();
        std::fs::write(secrets_dir.join("vigo/x"), b"not empty").unwrap();
        std::fs::remove_file(&key_file).unwrap();
        let err = prepare_local_key(&key_file, &secrets_dir).unwrap_err();
        assert!(err.to_string().contains("is missing but"), "{err}");
        assert!(
            !key_file.exists(),
            "no key may be generated next to existing secrets"
        );
    }
}
