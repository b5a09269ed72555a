//! The envoy's key and certificate, and enrollment (docs/operations.md "Enroll envoys").
//!
//! Files in the data folder (0700):
//! - `envoy.key`: the private key, 0600, made once and never sent anywhere;
//! - `envoy.csr`: the request, kept so every retry asks for the same key;
//! - `envoy.crt`: the certificate once the server signed it.
//!
//! The key's fingerprint ([`Identity::key_fingerprint`], SHA-256 of the
//! public key) is what the operator compares before approving a pending
//! request: the server binds a pending name to the first key that asked.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use vigo_pki::CertifiedKey;
use vigo_proto::{EnrollRequest, EnrollResponse};
use vigo_secrets::{EnvoyName, SecretValue};
use zeroize::Zeroizing;

use crate::{Session, SessionError};

const KEY_FILE: &str = "envoy.key";
const CSR_FILE: &str = "envoy.csr";
const CERT_FILE: &str = "envoy.crt";

/// The envoy's key pair and, once enrolled, its certificate.
#[derive(Debug)]
pub struct Identity {
    name: EnvoyName,
    dir: PathBuf,
    key_pem: SecretValue,
    csr_pem: String,
    key_fingerprint: String,
    cert_pem: Option<String>,
}

/// Where enrollment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollOutcome {
    /// The envoy holds a signed certificate.
    Enrolled,
    /// The server keeps the request until an operator approves it.
    Pending,
}

/// Why the identity could not be loaded or obtained.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// A file in the data folder could not be read or written.
    #[error("{action} {}: {cause}", file.display())]
    Io {
        /// What the envoy was doing.
        action: &'static str,
        /// The file.
        file: PathBuf,
        /// The OS error (in the message, not a separate source, so that a
        /// printed chain does not repeat it).
        cause: std::io::Error,
    },
    /// A file is there but unsafe or unusable.
    #[error("{}: {problem}", file.display())]
    Unsafe {
        /// The file.
        file: PathBuf,
        /// What is wrong and what to do.
        problem: String,
    },
    /// Key or request generation failed.
    #[error("making the envoy key")]
    Pki(#[from] vigo_pki::PkiError),
    /// The server refused or could not be reached.
    #[error("enrolling: {0}")]
    Session(SessionError),
}

impl From<SessionError> for IdentityError {
    fn from(e: SessionError) -> Self {
        Self::Session(e)
    }
}

impl Identity {
    /// Loads the identity from `data_dir`, making a key and request on first
    /// use.
    pub fn load_or_create(data_dir: &Path, name: &EnvoyName) -> Result<Self, IdentityError> {
        ensure_private_dir(data_dir)?;
        let key_file = data_dir.join(KEY_FILE);
        let csr_file = data_dir.join(CSR_FILE);
        if !key_file.exists() {
            let (key_pem, csr_pem) = vigo_pki::generate_envoy_key_and_csr(name)?;
            write_file(&key_file, key_pem.expose_secret().as_bytes(), 0o600)?;
            write_file(&csr_file, csr_pem.as_bytes(), 0o644)?;
            let _ = std::fs::remove_file(data_dir.join(CERT_FILE));
        }
        let key_pem = read_private(&key_file)?;
        let csr_pem = read_text(&csr_file)?;
        let key_fingerprint =
            vigo_pki::csr_key_fingerprint(&csr_pem).map_err(|e| IdentityError::Unsafe {
                file: csr_file.clone(),
                problem: format!(
                    "is not a usable certificate request ({e}); remove envoy.key and envoy.csr to make a new key"
                ),
            })?;
        let cert_file = data_dir.join(CERT_FILE);
        let cert_pem = if cert_file.exists() {
            Some(read_text(&cert_file)?)
        } else {
            None
        };
        Ok(Self {
            name: name.clone(),
            dir: data_dir.to_owned(),
            key_pem,
            csr_pem,
            key_fingerprint,
            cert_pem,
        })
    }

    /// The envoy's name.
    pub fn name(&self) -> &EnvoyName {
        &self.name
    }

    /// SHA-256 of the envoy's public key, 64 lower-case hex digits: what an
    /// operator checks with `vigocli envoys approve NAME --fingerprint FP`.
    pub fn key_fingerprint(&self) -> &str {
        &self.key_fingerprint
    }

    /// Key and certificate for mutual TLS, once enrolled.
    pub fn certified(&self) -> Option<CertifiedKey> {
        self.cert_pem.as_ref().map(|cert| CertifiedKey {
            cert_pem: cert.clone(),
            key_pem: self.key_pem.clone(),
        })
    }

    /// Whether a certificate is held.
    pub fn is_enrolled(&self) -> bool {
        self.cert_pem.is_some()
    }

    /// Sends (or re-sends) the enrollment request, with the token from
    /// `token_file` if there is one, and stores the certificate when the
    /// server signs it.
    pub async fn enroll(
        &mut self,
        session: &Session,
        token_file: Option<&Path>,
    ) -> Result<EnrollOutcome, IdentityError> {
        let token = match token_file {
            Some(file) if file.exists() => Some(read_token(file)?),
            _ => None,
        };
        let request = EnrollRequest {
            name: self.name.to_string(),
            csr_pem: self.csr_pem.clone(),
            token: token.as_ref().map(|t| t.as_str().to_owned()),
        };
        match session.enroll(&request).await? {
            EnrollResponse::Pending => Ok(EnrollOutcome::Pending),
            EnrollResponse::Approved { cert_pem } => {
                write_file(&self.dir.join(CERT_FILE), cert_pem.as_bytes(), 0o644)?;
                self.cert_pem = Some(cert_pem);
                Ok(EnrollOutcome::Enrolled)
            }
        }
    }

    /// Forgets the certificate (after the server refused it), so the next
    /// run enrolls again with the same key.
    pub fn drop_certificate(&mut self) -> Result<(), IdentityError> {
        let file = self.dir.join(CERT_FILE);
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(IdentityError::Io {
                    action: "removing",
                    file,
                    cause: source,
                });
            }
        }
        self.cert_pem = None;
        Ok(())
    }
}

/// Creates `dir` (and parents) 0700 if missing; refuses a folder others can
/// enter, since it holds the private key.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<(), IdentityError> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| IdentityError::Io {
                action: "creating",
                file: dir.to_owned(),
                cause: source,
            })?;
    }
    refuse_open_to_others(
        dir,
        "the envoy's data folder is open to group or others",
        "700",
    )
}

fn read_text(file: &Path) -> Result<String, IdentityError> {
    std::fs::read_to_string(file).map_err(|source| IdentityError::Io {
        action: "reading",
        file: file.to_owned(),
        cause: source,
    })
}

fn read_private(file: &Path) -> Result<SecretValue, IdentityError> {
    check_private_mode(file)?;
    let text = Zeroizing::new(read_text(file)?);
    Ok(SecretValue::new(text.as_str().to_owned()))
}

fn read_token(file: &Path) -> Result<Zeroizing<String>, IdentityError> {
    check_private_mode(file)?;
    let text = Zeroizing::new(read_text(file)?);
    Ok(Zeroizing::new(text.trim().to_owned()))
}

fn check_private_mode(file: &Path) -> Result<(), IdentityError> {
    refuse_open_to_others(file, "is readable or writable by group or others", "600")
}

/// Refuses `path` when group or others have any access to it: the error
/// says `problem`, the mode, and the `chmod MODE` that fixes it.
fn refuse_open_to_others(path: &Path, problem: &str, fix: &str) -> Result<(), IdentityError> {
    let mode = std::fs::metadata(path)
        .map_err(|source| IdentityError::Io {
            action: "reading",
            file: path.to_owned(),
            cause: source,
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(IdentityError::Unsafe {
            file: path.to_owned(),
            problem: format!(
                "{problem} (mode {:04o}); run: chmod {fix} {}",
                mode & 0o7777,
                path.display()
            ),
        });
    }
    Ok(())
}

/// Replaces `file` atomically with mode `mode` (see `vigo_fs`).
fn write_file(file: &Path, bytes: &[u8], mode: u32) -> Result<(), IdentityError> {
    vigo_fs::replace_file(file, bytes, mode).map_err(|source| IdentityError::Io {
        action: "writing",
        file: file.to_owned(),
        cause: source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db1() -> EnvoyName {
        EnvoyName::parse("db1.example.com").unwrap()
    }

    #[test]
    fn first_use_makes_a_private_key_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = Identity::load_or_create(&data, &db1()).unwrap();
        let mode = std::fs::metadata(data.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dmode = std::fs::metadata(&data).unwrap().permissions().mode();
        assert_eq!(dmode & 0o777, 0o700);
        assert!(!first.is_enrolled());
        let second = Identity::load_or_create(&data, &db1()).unwrap();
        assert_eq!(first.csr_pem, second.csr_pem);
        assert_eq!(first.key_fingerprint(), second.key_fingerprint());
        assert_eq!(
            first.key_fingerprint(),
            vigo_pki::csr_key_fingerprint(&first.csr_pem).unwrap()
        );
        assert_eq!(format!("{:?}", second.key_pem), "[REDACTED]");
    }

    #[test]
    fn an_open_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        Identity::load_or_create(&data, &db1()).unwrap();
        std::fs::set_permissions(data.join(KEY_FILE), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let err = Identity::load_or_create(&data, &db1()).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
