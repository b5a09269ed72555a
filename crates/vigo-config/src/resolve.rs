//! The second stage of loading: fetching every `secret:` reference of a
//! [`RawConfig`] through the provider (docs/secrets.md "Fail-fast"). Nothing falls back: the
//! first reference that cannot be fetched is the error.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use vigo_secrets::{
    SecretError, SecretPath, SecretProvider, SecretRef, SecretValue, VersionedSecret,
};

use crate::{ConfigError, ConfigString, RawConfig, RawSmtp, SmtpTls};

/// A config string after resolution. A value that came from a secret stays
/// in a [`SecretValue`], so it is redacted wherever it is printed.
#[derive(Clone)]
pub enum ResolvedString {
    /// Written in the file.
    Literal(String),
    /// Fetched from the backend.
    Secret {
        /// Where it came from.
        path: SecretPath,
        /// The value.
        value: SecretValue,
    },
}

impl ResolvedString {
    /// The text itself. For a secret this exposes the value: hand it only to
    /// the consumer that needs it (an SMTP client), never to a log.
    pub fn expose(&self) -> &str {
        match self {
            Self::Literal(s) => s,
            Self::Secret { value, .. } => value.expose_secret(),
        }
    }

    /// What may be shown of it in a log, an answer or a mail: the text of a
    /// literal, `[secret:PATH]` for a secret.
    pub fn shown(&self) -> String {
        match self {
            Self::Literal(s) => s.clone(),
            Self::Secret { path, .. } => format!("[secret:{path}]"),
        }
    }
}

impl fmt::Debug for ResolvedString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Literal(s) => fmt::Debug::fmt(s, f),
            Self::Secret { path, .. } => write!(f, "[secret:{path}]"),
        }
    }
}

/// `smtp` with its references resolved.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// `smtp.host`.
    pub host: ResolvedString,
    /// `smtp.port`.
    pub port: u16,
    /// `smtp.username`.
    pub username: Option<ResolvedString>,
    /// `smtp.password`.
    pub password: Option<SecretValue>,
    /// `smtp.from`.
    pub from: ResolvedString,
    /// `smtp.to`.
    pub to: Vec<ResolvedString>,
    /// `smtp.tls`.
    pub tls: SmtpTls,
    /// `smtp.ca_file`, absolute.
    pub ca_file: Option<PathBuf>,
    /// `smtp.interval`: at most one mail per interval.
    pub interval: Duration,
}

/// The server config with every reference resolved.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The validated file (paths, listen address, backend, intervals).
    pub raw: RawConfig,
    /// `database.dsn`, resolved.
    pub database_dsn: SecretValue,
    /// `smtp`, resolved.
    pub smtp: Option<SmtpConfig>,
    /// The version of each secret that was resolved, to notice rotations.
    pub versions: BTreeMap<SecretPath, u64>,
}

/// Resolves every reference of `raw`, in file order.
///
/// A failure names the secret and the backend's cause:
/// `resolving secret 'vigo/db/dsn': file not found`.
pub async fn resolve(
    raw: &RawConfig,
    provider: &dyn SecretProvider,
) -> Result<ServerConfig, ConfigError> {
    let mut resolver = Resolver {
        provider,
        versions: BTreeMap::new(),
    };
    let database_dsn = resolver.secret(&raw.database_dsn).await?;
    let smtp = match &raw.smtp {
        None => None,
        Some(s) => Some(resolver.smtp(s).await?),
    };
    Ok(ServerConfig {
        raw: raw.clone(),
        database_dsn,
        smtp,
        versions: resolver.versions,
    })
}

/// Fetches one secret, turning a backend failure into
/// [`ConfigError::Resolve`].
pub async fn fetch_secret(
    provider: &dyn SecretProvider,
    path: &SecretPath,
) -> Result<VersionedSecret, ConfigError> {
    provider.get(path).await.map_err(unreadable(path))
}

/// A backend failure reading `path`, as [`ConfigError::Resolve`].
pub(crate) fn unreadable(path: &SecretPath) -> impl FnOnce(SecretError) -> ConfigError + use<> {
    let path = path.clone();
    move |cause| ConfigError::Resolve { path, cause }
}

/// Fetches references through one provider, noting the version of each
/// secret it fetched.
struct Resolver<'a> {
    provider: &'a dyn SecretProvider,
    versions: BTreeMap<SecretPath, u64>,
}

impl Resolver<'_> {
    async fn smtp(&mut self, s: &RawSmtp) -> Result<SmtpConfig, ConfigError> {
        let host = self.string(&s.host).await?;
        let username = match &s.username {
            None => None,
            Some(u) => Some(self.string(u).await?),
        };
        let password = match &s.password {
            None => None,
            Some(p) => Some(self.secret(p).await?),
        };
        let from = self.string(&s.from).await?;
        let mut to = Vec::with_capacity(s.to.len());
        for t in &s.to {
            to.push(self.string(t).await?);
        }
        Ok(SmtpConfig {
            host,
            port: s.port,
            username,
            password,
            from,
            to,
            tls: s.tls,
            ca_file: s.ca_file.clone(),
            interval: s.interval,
        })
    }

    async fn string(&mut self, s: &ConfigString) -> Result<ResolvedString, ConfigError> {
        Ok(match s {
            ConfigString::Literal(text) => ResolvedString::Literal(text.clone()),
            ConfigString::Secret(r) => ResolvedString::Secret {
                path: r.path().clone(),
                value: self.secret(r).await?,
            },
        })
    }

    async fn secret(&mut self, r: &SecretRef) -> Result<SecretValue, ConfigError> {
        let found = fetch_secret(self.provider, r.path()).await?;
        self.versions.insert(r.path().clone(), found.version);
        Ok(found.value)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use vigo_secrets::MemoryProvider;

    use super::*;

    fn p(s: &str) -> SecretPath {
        SecretPath::parse(s).unwrap()
    }

    #[tokio::test]
    async fn missing_dsn_names_the_path_and_cause() {
        let raw = RawConfig::parse("", Path::new("/etc/vigo/vigosrv.yaml")).unwrap();
        let provider = MemoryProvider::new();
        let err = resolve(&raw, &provider).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "resolving secret 'vigo/db/dsn': memory: not found"
        );
    }

    #[tokio::test]
    async fn references_resolve_into_redacted_values() {
        let raw = RawConfig::parse(
            "smtp:\n  host: \"secret:vigo/smtp/host\"\n  password: \"secret:vigo/smtp/password\"\n  from: a@b\n  to: [c@d]\n",
            Path::new("/etc/vigo/vigosrv.yaml"),
        )
        .unwrap();
        let provider = MemoryProvider::new();
        provider.insert(&p("vigo/db/dsn"), "sqlite:///x?key=canary-dsn".into());
        provider.insert(&p("vigo/smtp/host"), "mail.internal".into());
        provider.insert(&p("vigo/smtp/host"), "mail2.internal".into());
        provider.insert(&p("vigo/smtp/password"), "canary-pw".into());
        let c = resolve(&raw, &provider).await.unwrap();
        assert_eq!(c.database_dsn.expose_secret(), "sqlite:///x?key=canary-dsn");
        let smtp = c.smtp.as_ref().unwrap();
        assert_eq!(smtp.host.expose(), "mail2.internal");
        assert_eq!(smtp.from.expose(), "a@b");
        assert_eq!(c.versions[&p("vigo/smtp/host")], 2);
        let debug = format!("{c:?}");
        for canary in ["canary-dsn", "canary-pw", "mail2.internal"] {
            assert!(
                !debug.contains(canary),
                "{canary} leaked through Debug: {debug}"
            );
        }
        assert!(debug.contains("[secret:vigo/smtp/host]"));
    }
}
