//! The envoy's own record of what it applied (docs/operations.md "Security model").
//!
//! `<data_dir>/state.json` (0600) holds, per resource, a keyed fingerprint
//! of what was last applied and, for execs, whether the command has ever
//! succeeded; the check-in loop also keeps the last catalog fingerprint here.
//! Fingerprints are HMAC-SHA256 under a random 32-byte key in
//! `<data_dir>/state.key` (0600), so the file reveals nothing about the
//! secret values that went into them. Neither file ever holds a value or a
//! copy of the catalog.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aws_lc_rs::hmac;
use serde::{Deserialize, Serialize};
use vigo_catalog::{Catalog, Resource};
use zeroize::Zeroizing;

use crate::atomic::{self, Attributes};

/// File name of the state inside the data folder.
pub const STATE_FILE: &str = "state.json";
/// File name of the state key inside the data folder.
pub const STATE_KEY_FILE: &str = "state.key";
/// Format version written into `state.json`.
const STATE_VERSION: u32 = 1;

/// Why the envoy state could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// A file or folder could not be read, created or written.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done (`reading`, `writing`, `creating`).
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `state.key` is readable or writable by group or others.
    #[error(
        "{} is accessible by group or others (mode {mode:04o}); run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    KeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// `state.key` does not hold 64 hex characters.
    #[error(
        "{} does not hold a 32-byte hex key; delete it to make a new one (execs with `when: changed` will run once more)",
        path.display()
    )]
    KeyFormat {
        /// The key file.
        path: PathBuf,
    },
    /// `state.json` is not valid.
    #[error(
        "{}: {message}; delete it to start from an empty state (execs with `when: changed` will run once more)",
        path.display()
    )]
    Corrupt {
        /// The state file.
        path: PathBuf,
        /// The parser's message (the file holds no secrets).
        message: String,
    },
}

/// What the envoy remembers about one resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceState {
    /// Keyed fingerprint (hex) of the resource as last applied successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Execs: whether the command has ever exited 0 on this envoy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ran_successfully: bool,
}

/// The contents of `state.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateData {
    /// Format version.
    pub version: u32,
    /// The fingerprint of the last catalog received from the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_fingerprint: Option<String>,
    /// Per resource name.
    #[serde(default)]
    pub resources: BTreeMap<String, ResourceState>,
}

/// The state file and its key.
pub struct StateStore {
    path: PathBuf,
    key: hmac::Key,
    data: StateData,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("path", &self.path)
            .field("resources", &self.data.resources.len())
            .finish_non_exhaustive()
    }
}

impl StateStore {
    /// Opens the state in `data_dir` (created 0700 if missing), making a new
    /// key on first use.
    pub fn open(data_dir: &Path) -> Result<Self, StateError> {
        atomic::private_dir(data_dir).map_err(|source| StateError::Io {
            action: "creating",
            path: data_dir.to_path_buf(),
            source,
        })?;
        let key = load_or_create_key(&data_dir.join(STATE_KEY_FILE))?;
        let path = data_dir.join(STATE_FILE);
        let data = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
                path: path.clone(),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => StateData {
                version: STATE_VERSION,
                ..StateData::default()
            },
            Err(source) => {
                return Err(StateError::Io {
                    action: "reading",
                    path,
                    source,
                });
            }
        };
        Ok(Self { path, key, data })
    }

    /// The loaded data.
    pub fn data(&self) -> &StateData {
        &self.data
    }

    /// The record for `name`, if any.
    pub fn resource(&self, name: &str) -> Option<&ResourceState> {
        self.data.resources.get(name)
    }

    /// The record for `name`, created empty if missing.
    pub fn resource_mut(&mut self, name: &str) -> &mut ResourceState {
        self.data.resources.entry(name.to_owned()).or_default()
    }

    /// The last catalog fingerprint stored by the check-in loop.
    pub fn catalog_fingerprint(&self) -> Option<&str> {
        self.data.catalog_fingerprint.as_deref()
    }

    /// Stores the catalog fingerprint (written on the next [`save`](Self::save)).
    pub fn set_catalog_fingerprint(&mut self, fingerprint: Option<String>) {
        self.data.catalog_fingerprint = fingerprint;
    }

    /// Forgets resources no longer in the catalog.
    pub fn retain_resources(&mut self, catalog: &Catalog) {
        let names: std::collections::HashSet<&str> =
            catalog.resources.iter().map(|r| r.name.as_str()).collect();
        self.data
            .resources
            .retain(|name, _| names.contains(name.as_str()));
    }

    /// Keyed fingerprint of a resource as it would be applied: its canonical
    /// JSON plus the values of the secrets it uses, so a rotated value
    /// changes it. The trigger flag is left out.
    pub fn resource_fingerprint(&self, resource: &Resource, catalog: &Catalog) -> String {
        let mut plain = resource.clone();
        plain.secret_triggered = false;
        let json = Zeroizing::new(serde_json::to_vec(&plain).unwrap_or_default());
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(b"vigo-envoy-resource-v1\0");
        ctx.update(&json);
        for path in resource.secret_paths() {
            ctx.update(b"\0");
            ctx.update(path.as_str().as_bytes());
            ctx.update(b"\0");
            if let Some(value) = catalog.secrets.get(path).and_then(|s| s.value.as_ref()) {
                ctx.update(value.expose_secret().as_bytes());
            }
        }
        hex::encode(ctx.sign().as_ref())
    }

    /// Writes `state.json` atomically, mode 0600.
    pub fn save(&self) -> Result<(), StateError> {
        let json = serde_json::to_vec_pretty(&self.data).unwrap_or_default();
        let attributes = Attributes {
            mode: 0o600,
            uid: None,
            gid: None,
        };
        atomic::write_file(&self.path, &json, attributes).map_err(|source| StateError::Io {
            action: "writing",
            path: self.path.clone(),
            source,
        })
    }
}

fn load_or_create_key(path: &Path) -> Result<hmac::Key, StateError> {
    let io_err = |action, source| StateError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    match fs::metadata(path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(StateError::KeyPermissions {
                    path: path.to_path_buf(),
                    mode,
                });
            }
            let text = Zeroizing::new(fs::read_to_string(path).map_err(|e| io_err("reading", e))?);
            let bytes = Zeroizing::new(hex::decode(text.trim_end_matches('\n')).map_err(|_| {
                StateError::KeyFormat {
                    path: path.to_path_buf(),
                }
            })?);
            if bytes.len() != 32 {
                return Err(StateError::KeyFormat {
                    path: path.to_path_buf(),
                });
            }
            Ok(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut bytes = Zeroizing::new([0u8; 32]);
            aws_lc_rs::rand::fill(bytes.as_mut_slice()).map_err(|_| {
                io_err(
                    "creating",
                    io::Error::other("the system random generator failed"),
                )
            })?;
            let mut text = Zeroizing::new(hex::encode(bytes.as_slice()));
            text.push('\n');
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| io_err("creating", e))?;
            file.write_all(text.as_bytes())
                .map_err(|e| io_err("writing", e))?;
            file.sync_all().map_err(|e| io_err("writing", e))?;
            Ok(hmac::Key::new(hmac::HMAC_SHA256, bytes.as_slice()))
        }
        Err(e) => Err(io_err("reading", e)),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn issue_13_a_state_error_says_its_os_cause_once() {
        let e = StateError::Io {
            action: "writing",
            path: PathBuf::from("/nonexistent/state.json"),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        let chain = vigo_log::error_chain(&e);
        assert_eq!(chain.matches("entity not found").count(), 1, "{chain}");
        assert!(
            chain.starts_with("writing /nonexistent/state.json"),
            "{chain}"
        );
    }

    #[test]
    fn state_round_trips_with_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("envoy");
        let mut store = StateStore::open(&data_dir).unwrap();
        store.resource_mut("migrate").ran_successfully = true;
        store.set_catalog_fingerprint(Some("ab".repeat(32)));
        store.save().unwrap();
        for (file, mode) in [(STATE_FILE, 0o600), (STATE_KEY_FILE, 0o600)] {
            assert_eq!(
                fs::metadata(data_dir.join(file)).unwrap().mode() & 0o7777,
                mode
            );
        }
        assert_eq!(fs::metadata(&data_dir).unwrap().mode() & 0o7777, 0o700);
        let again = StateStore::open(&data_dir).unwrap();
        assert!(again.resource("migrate").unwrap().ran_successfully);
        assert_eq!(again.catalog_fingerprint(), Some("ab".repeat(32).as_str()));
    }

    #[test]
    fn a_loose_key_file_is_refused_with_a_fix() {
        let dir = tempfile::tempdir().unwrap();
        StateStore::open(dir.path()).unwrap();
        let key = dir.path().join(STATE_KEY_FILE);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let err = StateStore::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn a_corrupt_state_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(STATE_FILE), "{not json").unwrap();
        let err = StateStore::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("state.json"), "{err}");
    }
}
