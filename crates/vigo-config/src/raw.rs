//! Reading `vigosrv.yaml` (docs/operations.md "The server") into [`RawConfig`]: parse, apply
//! defaults, validate. No secret is touched here.
//!
//! Which keys may hold `secret:` references:
//! - `database.dsn` and `smtp.password` must (a literal is an error);
//! - `smtp.host`, `smtp.username`, `smtp.from` and `smtp.to` may
//!   ([`ConfigString`]), and are resolved with the rest in
//!   [`resolve`](crate::resolve);
//! - every other key (`listen`, `data_dir`, `config_dir`, `secrets.*`,
//!   `watcher.*`, `checkin.*`, `history.*`) is read before the secrets backend is open or
//!   tells Vigo how to reach it, so a `secret:` value there is rejected with
//!   an error naming the key and its position, never taken as a literal.

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::{Location, Spanned};
use vigo_secrets::{SecretPath, SecretRef};

use crate::ConfigError;
use crate::well_known;

/// The default config file of `vigosrv` and `vigocli`.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/vigo/vigosrv.yaml";

/// The default `data_dir`.
pub const DEFAULT_DATA_DIR: &str = "/srv/vigo";

/// The default `watcher.poll_interval`.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// The default `checkin.interval`.
pub const DEFAULT_CHECKIN_INTERVAL: Duration = Duration::from_secs(60);

/// The default `history.max_age`.
pub const DEFAULT_HISTORY_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// The default `history.max_runs`.
pub const DEFAULT_HISTORY_MAX_RUNS: u32 = 100;

/// A config string that is either written out or a `secret:` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigString {
    /// Taken as written.
    Literal(String),
    /// Resolved through the secrets backend.
    Secret(SecretRef),
}

impl ConfigString {
    /// The reference, when this is one.
    pub fn secret_ref(&self) -> Option<&SecretRef> {
        match self {
            Self::Literal(_) => None,
            Self::Secret(r) => Some(r),
        }
    }
}

/// `vigosrv.yaml` after parsing and validation, before any secret is fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawConfig {
    /// The config file, absolute.
    pub file: PathBuf,
    /// `listen`: the address of the TLS API.
    pub listen: SocketAddr,
    /// `data_dir`, absolute.
    pub data_dir: PathBuf,
    /// `config_dir`, absolute (default `<data_dir>/config`).
    pub config_dir: PathBuf,
    /// `database.dsn`.
    pub database_dsn: SecretRef,
    /// `smtp`, when configured.
    pub smtp: Option<RawSmtp>,
    /// `secrets`: which backend and where it lives.
    pub secrets: SecretsBackend,
    /// `watcher`.
    pub watcher: WatcherConfig,
    /// `checkin.interval`: told to envoys in every check-in answer.
    pub checkin_interval: Duration,
    /// `history`: how long run history is kept.
    pub history: HistoryConfig,
    /// `connections.max_per_address` [64]: connections without a client
    /// certificate (yet) per source address.
    pub max_per_address: u32,
}

/// `connections.max_per_address` when not set.
pub const DEFAULT_MAX_PER_ADDRESS: u32 = 64;

/// `history`: what the background pruning keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryConfig {
    /// `history.max_age` [30d]: reports, secret deliveries, secret audit
    /// entries and run requests older than this are deleted.
    pub max_age: Duration,
    /// `history.max_runs` [100]: each envoy keeps at most this many reports.
    pub max_runs: u32,
}

/// `smtp` as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSmtp {
    /// `smtp.host`.
    pub host: ConfigString,
    /// `smtp.port` [587].
    pub port: u16,
    /// `smtp.username`.
    pub username: Option<ConfigString>,
    /// `smtp.password` (always a reference).
    pub password: Option<SecretRef>,
    /// `smtp.from`.
    pub from: ConfigString,
    /// `smtp.to`.
    pub to: Vec<ConfigString>,
    /// `smtp.tls` [starttls].
    pub tls: SmtpTls,
    /// `smtp.ca_file`, absolute: the only CA trusted for the SMTP server
    /// (unset: the system's trust store).
    pub ca_file: Option<PathBuf>,
    /// `smtp.interval` [60s]: at most one mail per interval.
    pub interval: Duration,
}

/// `smtp.tls`: how the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// `starttls` (the default, port 587): plain connect, then STARTTLS,
    /// which is required.
    Starttls,
    /// `tls` (port 465): TLS from the first byte.
    Implicit,
    /// `none`: no TLS, for a relay on the same host; refused with a password.
    None,
}

impl SmtpTls {
    /// The word written in `smtp.tls`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Starttls => "starttls",
            Self::Implicit => "tls",
            Self::None => "none",
        }
    }
}

/// `smtp.interval` when not set: one mail per minute at most.
pub const DEFAULT_SMTP_INTERVAL: Duration = Duration::from_secs(60);

/// `secrets`: the configured backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretsBackend {
    /// AES-256-GCM files under a master key (docs/secrets.md "The local store (default)").
    Local {
        /// `secrets.key_file`, absolute [`<data_dir>/master.key`].
        key_file: PathBuf,
        /// `secrets.secrets_dir`, absolute [`<data_dir>/secrets`].
        secrets_dir: PathBuf,
    },
    /// The external isopass API (docs/secrets.md "The isopass backend").
    Isopass {
        /// `secrets.url`.
        url: String,
        /// `secrets.token_file`, absolute.
        token_file: PathBuf,
        /// `secrets.ca_file`, absolute.
        ca_file: Option<PathBuf>,
    },
}

impl SecretsBackend {
    /// `local` or `isopass`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Local { .. } => "local",
            Self::Isopass { .. } => "isopass",
        }
    }
}

/// `watcher`: polling the backend for version changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatcherConfig {
    /// `watcher.enabled` [true for isopass, false for local].
    pub enabled: bool,
    /// `watcher.poll_interval` [5m].
    pub poll_interval: Duration,
}

impl RawConfig {
    /// Reads and validates `path`. Touches no secret.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = normalize(
            &std::path::absolute(path).map_err(|cause| ConfigError::Read {
                file: path.to_owned(),
                cause,
            })?,
        );
        let text = std::fs::read_to_string(&file).map_err(|cause| ConfigError::Read {
            file: file.clone(),
            cause,
        })?;
        Self::parse(&text, &file)
    }

    /// Validates `text` as the contents of `file` (an absolute path; relative
    /// paths in the text are resolved against its folder).
    pub fn parse(text: &str, file: &Path) -> Result<Self, ConfigError> {
        let parsed: FileConfig = if text.trim().is_empty() {
            FileConfig::default()
        } else {
            serde_saphyr::from_str_with_options(text, crate::yaml::options()).map_err(|err| {
                let location = err.location().unwrap_or(Location::UNKNOWN);
                ConfigError::Parse {
                    file: file.to_owned(),
                    line: location.line(),
                    column: location.column(),
                    message: crate::yaml::error_message(&err),
                }
            })?
        };
        Validator { file }.config(parsed)
    }

    /// Every secret this config references, in file order (`database.dsn`
    /// first). The server's own secrets are in
    /// [`well_known::server_secrets`].
    pub fn referenced_secrets(&self) -> Vec<SecretPath> {
        let mut paths = vec![self.database_dsn.path().clone()];
        if let Some(smtp) = &self.smtp {
            let strings = std::iter::once(&smtp.host)
                .chain(smtp.username.as_ref())
                .chain(std::iter::once(&smtp.from))
                .chain(smtp.to.iter());
            for s in strings {
                if let Some(r) = s.secret_ref() {
                    paths.push(r.path().clone());
                }
            }
            if let Some(p) = &smtp.password {
                paths.push(p.path().clone());
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        paths.retain(|p| seen.insert(p.clone()));
        paths
    }

    /// [`RawConfig::referenced_secrets`] plus the server's own secrets: every
    /// secret `vigosrv` needs to start.
    pub fn required_secrets(&self) -> Vec<SecretPath> {
        let mut paths = self.referenced_secrets();
        for p in well_known::server_secrets() {
            if !paths.contains(&p) {
                paths.push(p);
            }
        }
        paths
    }

    /// Where the server writes the exported CA certificate.
    pub fn ca_cert_file(&self) -> PathBuf {
        self.data_dir.join("ca.crt")
    }
}

/// Lexically removes `.` and `..` components from an absolute path, so that
/// `examples/quickstart/../../.vigo` becomes `<repo>/.vigo`.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

// --- the file as written -----------------------------------------------------

type Text = Option<Spanned<String>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Text,
    data_dir: Text,
    config_dir: Text,
    database: Option<FileDatabase>,
    smtp: Option<Spanned<FileSmtp>>,
    secrets: Option<FileSecrets>,
    watcher: Option<FileWatcher>,
    checkin: Option<FileCheckin>,
    history: Option<FileHistory>,
    connections: Option<FileConnections>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDatabase {
    dsn: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSmtp {
    host: Spanned<String>,
    port: Option<Spanned<u16>>,
    username: Text,
    password: Text,
    from: Spanned<String>,
    #[serde(default)]
    to: Vec<Spanned<String>>,
    tls: Text,
    ca_file: Text,
    interval: Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSecrets {
    backend: Text,
    key_file: Text,
    secrets_dir: Text,
    url: Text,
    token_file: Text,
    ca_file: Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWatcher {
    enabled: Option<bool>,
    poll_interval: Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCheckin {
    interval: Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConnections {
    max_per_address: Option<Spanned<u32>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHistory {
    max_age: Text,
    max_runs: Option<Spanned<u32>>,
}

// --- validation --------------------------------------------------------------

struct Validator<'a> {
    file: &'a Path,
}

impl Validator<'_> {
    fn config(&self, f: FileConfig) -> Result<RawConfig, ConfigError> {
        let listen = match &f.listen {
            None => SocketAddr::from(([0, 0, 0, 0], 8443)),
            Some(s) => {
                let text = self.literal("listen", s)?;
                text.parse::<SocketAddr>().map_err(|_| {
                    self.invalid(
                        s,
                        format!(
                            "listen: '{text}' is not an address like 0.0.0.0:8443 or [::]:8443"
                        ),
                    )
                })?
            }
        };
        let data_dir = match &f.data_dir {
            None => PathBuf::from(DEFAULT_DATA_DIR),
            Some(s) => self.path("data_dir", s)?,
        };
        let config_dir = match &f.config_dir {
            None => data_dir.join("config"),
            Some(s) => self.path("config_dir", s)?,
        };
        let database_dsn = self.dsn(f.database.unwrap_or_default())?;
        let smtp = f.smtp.map(|s| self.smtp(s)).transpose()?;
        let secrets = self.secrets(f.secrets.unwrap_or_default(), &data_dir)?;
        let watcher = self.watcher(f.watcher.unwrap_or_default(), &secrets)?;
        let checkin_interval = match f.checkin.unwrap_or_default().interval {
            None => DEFAULT_CHECKIN_INTERVAL,
            Some(s) => self.duration("checkin.interval", &s)?,
        };
        let history = self.history(f.history.unwrap_or_default())?;
        let max_per_address = match f.connections.unwrap_or_default().max_per_address {
            None => DEFAULT_MAX_PER_ADDRESS,
            Some(n) if n.value == 0 => {
                return Err(self.invalid_at(
                    n.referenced,
                    "connections.max_per_address must be at least 1".into(),
                ));
            }
            Some(n) => n.value,
        };
        Ok(RawConfig {
            file: self.file.to_owned(),
            listen,
            data_dir,
            config_dir,
            database_dsn,
            smtp,
            secrets,
            watcher,
            checkin_interval,
            history,
            max_per_address,
        })
    }

    fn history(&self, h: FileHistory) -> Result<HistoryConfig, ConfigError> {
        let max_runs = match h.max_runs {
            None => DEFAULT_HISTORY_MAX_RUNS,
            Some(n) if n.value == 0 => {
                return Err(
                    self.invalid_at(n.referenced, "history.max_runs must be at least 1".into())
                );
            }
            Some(n) => n.value,
        };
        Ok(HistoryConfig {
            max_age: match &h.max_age {
                None => DEFAULT_HISTORY_MAX_AGE,
                Some(s) => self.duration("history.max_age", s)?,
            },
            max_runs,
        })
    }

    fn dsn(&self, db: FileDatabase) -> Result<SecretRef, ConfigError> {
        match db.dsn {
            None => Ok(SecretRef::from(well_known::path(well_known::DB_DSN))),
            Some(s) => self.required_secret("database.dsn", &s),
        }
    }

    fn smtp(&self, smtp: Spanned<FileSmtp>) -> Result<RawSmtp, ConfigError> {
        let at = smtp.referenced;
        let s = smtp.value;
        if s.to.is_empty() {
            return Err(self.invalid_at(at, "smtp.to must list at least one address".into()));
        }
        let tls = match &s.tls {
            None => SmtpTls::Starttls,
            Some(t) => match self.literal("smtp.tls", t)?.as_str() {
                "starttls" => SmtpTls::Starttls,
                "tls" => SmtpTls::Implicit,
                "none" => SmtpTls::None,
                other => {
                    return Err(self.invalid(
                        t,
                        format!("smtp.tls: '{other}' is not one of starttls, tls, none"),
                    ));
                }
            },
        };
        if let (SmtpTls::None, Some(p)) = (tls, &s.password) {
            return Err(self.invalid(
                p,
                "smtp.password would be sent in clear text with `tls: none`; use `tls: starttls` or `tls: tls`, or remove the password for a relay on this host".into(),
            ));
        }
        if let (SmtpTls::None, Some(c)) = (tls, &s.ca_file) {
            return Err(self.invalid(
                c,
                "smtp.ca_file has no use with `tls: none`; remove it or use `tls: starttls`".into(),
            ));
        }
        Ok(RawSmtp {
            host: self.config_string("smtp.host", &s.host)?,
            port: s.port.map_or(587, |p| p.value),
            username: s
                .username
                .as_ref()
                .map(|u| self.config_string("smtp.username", u))
                .transpose()?,
            password: s
                .password
                .as_ref()
                .map(|p| self.required_secret("smtp.password", p))
                .transpose()?,
            from: self.config_string("smtp.from", &s.from)?,
            to: s
                .to
                .iter()
                .map(|t| self.config_string("smtp.to", t))
                .collect::<Result<_, _>>()?,
            tls,
            ca_file: s
                .ca_file
                .as_ref()
                .map(|c| self.path("smtp.ca_file", c))
                .transpose()?,
            interval: match &s.interval {
                None => DEFAULT_SMTP_INTERVAL,
                Some(i) => self.duration("smtp.interval", i)?,
            },
        })
    }

    fn secrets(&self, s: FileSecrets, data_dir: &Path) -> Result<SecretsBackend, ConfigError> {
        let backend = match &s.backend {
            None => "local".to_owned(),
            Some(b) => self.literal("secrets.backend", b)?,
        };
        match backend.as_str() {
            "local" => {
                for (key, value) in [
                    ("url", &s.url),
                    ("token_file", &s.token_file),
                    ("ca_file", &s.ca_file),
                ] {
                    if let Some(v) = value {
                        return Err(self.invalid(v, format!("secrets.{key} applies to the isopass backend only; remove it or set `backend: isopass`")));
                    }
                }
                let key_file = match &s.key_file {
                    None => data_dir.join("master.key"),
                    Some(k) => self.path("secrets.key_file", k)?,
                };
                let secrets_dir = match &s.secrets_dir {
                    None => data_dir.join("secrets"),
                    Some(d) => self.path("secrets.secrets_dir", d)?,
                };
                Ok(SecretsBackend::Local {
                    key_file,
                    secrets_dir,
                })
            }
            "isopass" => {
                for (key, value) in [("key_file", &s.key_file), ("secrets_dir", &s.secrets_dir)] {
                    if let Some(v) = value {
                        return Err(self.invalid(v, format!("secrets.{key} applies to the local backend only; remove it or set `backend: local`")));
                    }
                }
                let at = s
                    .backend
                    .as_ref()
                    .map_or(Location::UNKNOWN, |b| b.referenced);
                let url = s.url.as_ref().ok_or_else(|| {
                    self.invalid_at(
                        at,
                        "secrets.url is required with the isopass backend".into(),
                    )
                })?;
                let url_text = self.literal("secrets.url", url)?;
                if !(url_text.starts_with("https://") || url_text.starts_with("http://")) {
                    return Err(self.invalid(url, "secrets.url must start with https://".into()));
                }
                let token_file = s.token_file.as_ref().ok_or_else(|| {
                    self.invalid_at(
                        at,
                        "secrets.token_file is required with the isopass backend".into(),
                    )
                })?;
                Ok(SecretsBackend::Isopass {
                    url: url_text,
                    token_file: self.path("secrets.token_file", token_file)?,
                    ca_file: s
                        .ca_file
                        .as_ref()
                        .map(|c| self.path("secrets.ca_file", c))
                        .transpose()?,
                })
            }
            other => Err(self.invalid(
                s.backend.as_ref().unwrap_or(&Spanned::new(
                    String::new(),
                    Location::UNKNOWN,
                    Location::UNKNOWN,
                )),
                format!("secrets.backend: unknown backend '{other}'; use local or isopass"),
            )),
        }
    }

    fn watcher(
        &self,
        w: FileWatcher,
        secrets: &SecretsBackend,
    ) -> Result<WatcherConfig, ConfigError> {
        Ok(WatcherConfig {
            enabled: w
                .enabled
                .unwrap_or(matches!(secrets, SecretsBackend::Isopass { .. })),
            poll_interval: match &w.poll_interval {
                None => DEFAULT_POLL_INTERVAL,
                Some(s) => self.duration("watcher.poll_interval", s)?,
            },
        })
    }

    fn duration(&self, key: &str, s: &Spanned<String>) -> Result<Duration, ConfigError> {
        let text = self.literal(key, s)?;
        let d = humantime::parse_duration(&text).map_err(|e| {
            self.invalid(
                s,
                format!("{key}: '{text}' is not a duration ({e}); write e.g. 30s, 5m or 1h"),
            )
        })?;
        if d.is_zero() {
            return Err(self.invalid(s, format!("{key} must be longer than zero")));
        }
        Ok(d)
    }

    fn path(&self, key: &str, s: &Spanned<String>) -> Result<PathBuf, ConfigError> {
        let text = self.literal(key, s)?;
        if text.is_empty() {
            return Err(self.invalid(s, format!("{key} must not be empty")));
        }
        let folder = self.file.parent().unwrap_or(Path::new("/"));
        Ok(normalize(&folder.join(text)))
    }

    /// A key that cannot hold a reference.
    fn literal(&self, key: &str, s: &Spanned<String>) -> Result<String, ConfigError> {
        if s.value.starts_with(vigo_secrets::SECRET_PREFIX) {
            return Err(self.invalid(
                s,
                format!("{key} cannot be a secret: reference (it is needed before the secrets backend is open); write the value itself"),
            ));
        }
        Ok(s.value.clone())
    }

    /// A key that must hold a reference.
    fn required_secret(&self, key: &str, s: &Spanned<String>) -> Result<SecretRef, ConfigError> {
        match self.config_string(key, s)? {
            ConfigString::Secret(r) => Ok(r),
            ConfigString::Literal(_) => Err(self.invalid(
                s,
                format!("{key} must be a secret: reference (e.g. \"secret:vigo/db/dsn\"); store the value with `vigocli secrets set PATH -`"),
            )),
        }
    }

    /// A key that may hold a reference.
    fn config_string(&self, key: &str, s: &Spanned<String>) -> Result<ConfigString, ConfigError> {
        match SecretRef::recognise(&s.value) {
            Ok(Some(r)) => Ok(ConfigString::Secret(r)),
            Ok(None) => Ok(ConfigString::Literal(s.value.clone())),
            Err(e) => Err(self.invalid(s, format!("{key}: {e}"))),
        }
    }

    fn invalid(&self, s: &Spanned<String>, message: String) -> ConfigError {
        self.invalid_at(s.referenced, message)
    }

    fn invalid_at(&self, at: Location, message: String) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_owned(),
            line: at.line(),
            column: at.column(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RawConfig, ConfigError> {
        RawConfig::parse(text, Path::new("/etc/vigo/vigosrv.yaml"))
    }

    #[test]
    fn defaults_follow_the_spec() {
        let c = parse("").unwrap();
        assert_eq!(c.listen, "0.0.0.0:8443".parse().unwrap());
        assert_eq!(c.data_dir, Path::new("/srv/vigo"));
        assert_eq!(c.config_dir, Path::new("/srv/vigo/config"));
        assert_eq!(c.database_dsn.path().as_str(), "vigo/db/dsn");
        assert_eq!(
            c.secrets,
            SecretsBackend::Local {
                key_file: "/srv/vigo/master.key".into(),
                secrets_dir: "/srv/vigo/secrets".into()
            }
        );
        assert_eq!(
            c.watcher,
            WatcherConfig {
                enabled: false,
                poll_interval: Duration::from_secs(300)
            }
        );
        assert_eq!(c.checkin_interval, Duration::from_secs(60));
        assert_eq!(
            c.history,
            HistoryConfig {
                max_age: Duration::from_secs(30 * 24 * 3600),
                max_runs: 100
            }
        );
        assert!(c.smtp.is_none());
        assert_eq!(c.max_per_address, 64);
        let c = parse("connections:\n  max_per_address: 5000\n").unwrap();
        assert_eq!(c.max_per_address, 5000);
        let err = parse("connections:\n  max_per_address: 0\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/vigo/vigosrv.yaml:2:20: connections.max_per_address must be at least 1"
        );
    }

    #[test]
    fn full_example_parses() {
        let c = parse(
            r#"
listen: "127.0.0.1:9443"
data_dir: "../data"
database:
  dsn: "secret:vigo/db/dsn"
smtp:
  host: "mail.example.com"
  port: 587
  username: "secret:vigo/smtp/user"
  password: "secret:vigo/smtp/password"
  from: "vigo@example.com"
  to: ["ops@example.com"]
secrets:
  backend: isopass
  url: "https://isopass.internal:8443"
  token_file: "token"
watcher:
  poll_interval: "30s"
checkin:
  interval: "2m"
history:
  max_age: "7d"
  max_runs: 20
"#,
        )
        .unwrap();
        assert_eq!(c.data_dir, Path::new("/etc/data"));
        assert_eq!(c.config_dir, Path::new("/etc/data/config"));
        assert!(c.watcher.enabled, "isopass turns the watcher on by default");
        assert_eq!(c.watcher.poll_interval, Duration::from_secs(30));
        assert_eq!(c.checkin_interval, Duration::from_secs(120));
        assert_eq!(c.history.max_age, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(c.history.max_runs, 20);
        let SecretsBackend::Isopass { token_file, .. } = &c.secrets else {
            panic!("not isopass")
        };
        assert_eq!(token_file, Path::new("/etc/vigo/token"));
        let paths: Vec<_> = c
            .referenced_secrets()
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(
            paths,
            ["vigo/db/dsn", "vigo/smtp/user", "vigo/smtp/password"]
        );
        assert!(
            c.required_secrets()
                .iter()
                .any(|p| p.as_str() == "vigo/tls/ca_key")
        );
    }

    #[test]
    fn unknown_keys_name_key_and_position() {
        let err = parse("listen: \"127.0.0.1:1\"\nsecrets:\n  backend: local\n  keyfile: x\n")
            .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("/etc/vigo/vigosrv.yaml:4:3: "), "{text}");
        assert!(text.contains("keyfile"), "{text}");
    }

    #[test]
    fn credentials_must_be_references() {
        let err = parse("database:\n  dsn: \"sqlite:///tmp/x.db\"\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(
                "/etc/vigo/vigosrv.yaml:2:8: database.dsn must be a secret: reference"
            ),
            "{text}"
        );
        assert!(
            !text.contains("sqlite:///tmp"),
            "the literal must not be echoed: {text}"
        );
        let err =
            parse("smtp:\n  host: h\n  password: hunter2\n  from: a@b\n  to: [c@d]\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("smtp.password must be a secret: reference"),
            "{err}"
        );
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn smtp_tls_ca_file_and_interval() {
        let smtp = |extra: &str| {
            parse(&format!(
                "smtp:\n  host: h\n  password: \"secret:vigo/smtp/password\"\n  from: a@b\n  to: [c@d]\n{extra}"
            ))
        };
        let c = smtp("").unwrap().smtp.unwrap();
        assert_eq!(
            (c.tls, c.ca_file, c.interval, c.port),
            (SmtpTls::Starttls, None, DEFAULT_SMTP_INTERVAL, 587)
        );
        let c = smtp("  tls: tls\n  port: 465\n  ca_file: mail-ca.pem\n  interval: 5m\n")
            .unwrap()
            .smtp
            .unwrap();
        assert_eq!(c.tls, SmtpTls::Implicit);
        assert_eq!(
            c.ca_file.as_deref(),
            Some(Path::new("/etc/vigo/mail-ca.pem"))
        );
        assert_eq!(c.interval, Duration::from_secs(300));
        let err = smtp("  tls: ssl\n").unwrap_err().to_string();
        assert_eq!(
            err,
            "/etc/vigo/vigosrv.yaml:6:8: smtp.tls: 'ssl' is not one of starttls, tls, none"
        );
        let err = smtp("  tls: none\n").unwrap_err().to_string();
        assert!(
            err.starts_with("/etc/vigo/vigosrv.yaml:3:13: smtp.password would be sent in clear text with `tls: none`"),
            "{err}"
        );
        let relay =
            parse("smtp:\n  host: localhost\n  port: 25\n  tls: none\n  from: a@b\n  to: [c@d]\n")
                .unwrap()
                .smtp
                .unwrap();
        assert_eq!(relay.tls, SmtpTls::None);
        let err = smtp("  interval: 0s\n").unwrap_err().to_string();
        assert!(
            err.contains("smtp.interval must be longer than zero"),
            "{err}"
        );
    }

    #[test]
    fn references_are_refused_where_the_backend_is_not_open_yet() {
        let err = parse("data_dir: \"secret:vigo/dir\"\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("data_dir cannot be a secret: reference"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_are_named() {
        for (text, expected) in [
            ("listen: nowhere\n", "listen: 'nowhere' is not an address"),
            (
                "checkin:\n  interval: soon\n",
                "checkin.interval: 'soon' is not a duration",
            ),
            (
                "watcher:\n  poll_interval: 0s\n",
                "watcher.poll_interval must be longer than zero",
            ),
            ("secrets:\n  backend: vault\n", "unknown backend 'vault'"),
            (
                "history:\n  max_age: forever\n",
                "history.max_age: 'forever' is not a duration",
            ),
            (
                "history:\n  max_runs: 0\n",
                "/etc/vigo/vigosrv.yaml:2:13: history.max_runs must be at least 1",
            ),
            ("history:\n  keep: 3\n", "/etc/vigo/vigosrv.yaml:2:"),
            ("secrets:\n  backend: isopass\n", "secrets.url is required"),
            (
                "secrets:\n  url: https://x\n",
                "applies to the isopass backend only",
            ),
            (
                "database:\n  dsn: \"secret:../x\"\n",
                "database.dsn: invalid secret path '../x'",
            ),
            ("watcher:\n  enabled: yes\n", "/etc/vigo/vigosrv.yaml:2:"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?} gave {err}");
        }
    }

    #[test]
    fn paths_are_normalised() {
        assert_eq!(normalize(Path::new("/a/b/../../c/./d")), Path::new("/c/d"));
    }
}
