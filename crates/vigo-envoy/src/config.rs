//! `envoy.yaml` (docs/operations.md "An envoy").

use std::path::{Path, PathBuf};

use serde::Deserialize;
use vigo_secrets::EnvoyName;

/// Default data folder.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/vigoenvoy";

/// The custom facts folder inside the data folder, unless `facts_dir` says
/// otherwise.
pub const FACTS_DIR: &str = "facts.d";

/// The envoy's configuration, with paths made absolute.
#[derive(Debug, Clone)]
pub struct EnvoyConfig {
    /// Base URL of the server, `https://vigo.example.com:8443`.
    pub server: String,
    /// This envoy's name (its identity once enrolled), lower case.
    pub name: EnvoyName,
    /// The Vigo CA certificate to trust.
    pub ca_cert: PathBuf,
    /// Key, certificate and state.
    pub data_dir: PathBuf,
    /// A one-time enrollment token, mode 0600.
    pub enroll_token_file: Option<PathBuf>,
    /// The folder of custom facts (`facts_dir`, default
    /// `<data_dir>/facts.d`).
    pub facts_dir: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: String,
    #[serde(default)]
    name: Option<String>,
    ca_cert: PathBuf,
    #[serde(default)]
    data_dir: Option<PathBuf>,
    #[serde(default)]
    enroll_token_file: Option<PathBuf>,
    #[serde(default)]
    facts_dir: Option<PathBuf>,
}

/// Why `envoy.yaml` could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {}: {cause}", file.display())]
    Read {
        /// The config file.
        file: PathBuf,
        /// The OS error (in the message, not a separate source, so that a
        /// printed chain does not repeat it).
        cause: std::io::Error,
    },
    /// The YAML is malformed or has unknown keys (the message has the
    /// position).
    #[error("{}: {message}", file.display())]
    Parse {
        /// The config file.
        file: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is not acceptable.
    #[error("{}: {message}", file.display())]
    Invalid {
        /// The config file.
        file: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
}

impl EnvoyConfig {
    /// Reads and validates the file; relative paths are taken from the
    /// file's folder.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: file.to_owned(),
            cause: source,
        })?;
        let options = serde_saphyr::options! {
            strict_booleans: true,
            leading_zero_numbers_as_strings: true,
        };
        let raw: RawConfig = serde_saphyr::from_str_with_options(&text, options).map_err(|e| {
            ConfigError::Parse {
                file: file.to_owned(),
                message: e.to_string(),
            }
        })?;
        let base = file.parent().unwrap_or(Path::new("."));
        let absolute = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let invalid = |message: String| ConfigError::Invalid {
            file: file.to_owned(),
            message,
        };
        let server = raw.server.trim_end_matches('/').to_owned();
        if !server.starts_with("https://") {
            return Err(invalid(format!(
                "server '{server}' must be an https:// URL (envoys only talk to the server over TLS)"
            )));
        }
        let name = match raw.name {
            Some(n) => n,
            None => vigo_pki::host_name(),
        };
        let name = EnvoyName::parse(&name).map_err(|e| invalid(format!("name: {e}")))?;
        let data_dir = absolute(
            raw.data_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
        );
        let facts_dir = raw
            .facts_dir
            .map_or_else(|| data_dir.join(FACTS_DIR), absolute);
        Ok(Self {
            server,
            name,
            ca_cert: absolute(raw.ca_cert),
            data_dir,
            enroll_token_file: raw.enroll_token_file.map(absolute),
            facts_dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let file = dir.join("envoy.yaml");
        std::fs::write(&file, text).unwrap();
        file
    }

    #[test]
    fn relative_paths_follow_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "server: https://127.0.0.1:8443/\nname: db1.example.com\nca_cert: ca.crt\ndata_dir: state\n",
        );
        let config = EnvoyConfig::load(&file).unwrap();
        assert_eq!(config.server, "https://127.0.0.1:8443");
        assert_eq!(config.ca_cert, dir.path().join("ca.crt"));
        assert_eq!(config.data_dir, dir.path().join("state"));
        assert_eq!(config.enroll_token_file, None);
        assert_eq!(config.facts_dir, dir.path().join("state/facts.d"));
        let file = write(
            dir.path(),
            "server: https://x\nname: a.b\nca_cert: /c\nfacts_dir: facts\n",
        );
        assert_eq!(
            EnvoyConfig::load(&file).unwrap().facts_dir,
            dir.path().join("facts")
        );
    }

    #[test]
    fn unknown_keys_and_plain_http_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "server: https://x\nca_cert: /c\nbogus: 1\n");
        let err = EnvoyConfig::load(&file).unwrap_err().to_string();
        assert!(err.contains("bogus"), "{err}");
        let file = write(dir.path(), "server: http://x\nca_cert: /c\nname: a.b\n");
        let err = EnvoyConfig::load(&file).unwrap_err().to_string();
        assert!(err.contains("https://"), "{err}");
    }

    #[test]
    fn issue_12_envoy_names_are_lower_cased_and_use_the_one_rule() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "server: https://x\nca_cert: /c\nname: DB1.Example.COM\n",
        );
        assert_eq!(EnvoyConfig::load(&file).unwrap().name, "db1.example.com");
        for bad in ["x_y.example.com", "a..b", "10.0.0.1"] {
            let file = write(
                dir.path(),
                &format!("server: https://x\nca_cert: /c\nname: \"{bad}\"\n"),
            );
            let err = EnvoyConfig::load(&file).unwrap_err().to_string();
            assert!(err.contains("invalid envoy name"), "{bad}: {err}");
        }
    }
}
