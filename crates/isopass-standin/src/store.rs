//! The stand-in's versioned secret map and its JSON data file.
//!
//! Every change is written through to the data file before it is answered:
//! a temporary file in the same folder (mode 0600), fsync, rename over the
//! data file, fsync of the folder. A crash leaves the old or the new file.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::StandinError;

/// Written into the data file so a later format can be told apart.
const FORMAT: &str = "isopass-standin/1";

/// One stored secret.
struct Entry {
    version: u64,
    value: Zeroizing<String>,
}

/// The secrets the stand-in holds, optionally backed by a data file.
pub(crate) struct Store {
    file: Option<PathBuf>,
    entries: BTreeMap<String, Entry>,
}

#[derive(Serialize)]
struct FileOut<'a> {
    format: &'static str,
    secrets: BTreeMap<&'a str, EntryOut<'a>>,
}

#[derive(Serialize)]
struct EntryOut<'a> {
    version: u64,
    value: &'a str,
}

#[derive(Deserialize)]
struct FileIn {
    format: String,
    secrets: BTreeMap<String, EntryIn>,
}

#[derive(Deserialize)]
struct EntryIn {
    version: u64,
    value: String,
}

impl Store {
    /// Loads `file` when it exists; starts empty otherwise (or without a
    /// file, in memory only).
    pub(crate) fn open(file: Option<PathBuf>) -> Result<Store, StandinError> {
        let mut store = Store {
            file,
            entries: BTreeMap::new(),
        };
        let Some(file) = &store.file else {
            return Ok(store);
        };
        let text = match fs::read(file) {
            Ok(text) => Zeroizing::new(text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(store),
            Err(source) => {
                return Err(StandinError::Io {
                    action: "reading the data file",
                    file: file.clone(),
                    source,
                });
            }
        };
        // The parser's own message may quote stored values: report the
        // position only.
        let parsed: FileIn = serde_json::from_slice(&text).map_err(|e| StandinError::Data {
            file: file.clone(),
            reason: format!(
                "not valid stand-in JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        })?;
        if parsed.format != FORMAT {
            return Err(StandinError::Data {
                file: file.clone(),
                reason: format!("format {:?}, expected {FORMAT:?}", parsed.format),
            });
        }
        for (path, entry) in parsed.secrets {
            if !crate::valid_path(&path) {
                return Err(StandinError::Data {
                    file: file.clone(),
                    reason: format!("holds an invalid secret path {path:?}"),
                });
            }
            store.entries.insert(
                path,
                Entry {
                    version: entry.version,
                    value: Zeroizing::new(entry.value),
                },
            );
        }
        Ok(store)
    }

    /// The value and version at `path`.
    pub(crate) fn get(&self, path: &str) -> Option<(u64, &str)> {
        self.entries
            .get(path)
            .map(|e| (e.version, e.value.as_str()))
    }

    /// Stores `value` and returns its new version (1 when new, +1 when it
    /// replaces a value). Nothing changes when the data file cannot be
    /// written.
    pub(crate) fn put(&mut self, path: &str, value: Zeroizing<String>) -> io::Result<u64> {
        let version = self.entries.get(path).map_or(1, |e| e.version + 1);
        let previous = self
            .entries
            .insert(path.to_owned(), Entry { version, value });
        if let Err(e) = self.persist() {
            match previous {
                Some(old) => self.entries.insert(path.to_owned(), old),
                None => self.entries.remove(path),
            };
            return Err(e);
        }
        Ok(version)
    }

    /// Removes the secret; `false` when it was absent.
    pub(crate) fn delete(&mut self, path: &str) -> io::Result<bool> {
        let Some(old) = self.entries.remove(path) else {
            return Ok(false);
        };
        if let Err(e) = self.persist() {
            self.entries.insert(path.to_owned(), old);
            return Err(e);
        }
        Ok(true)
    }

    /// Paths and versions under `prefix` (whole segments), sorted by path.
    pub(crate) fn list(&self, prefix: &str) -> Vec<(&str, u64)> {
        self.entries
            .iter()
            .filter(|(path, _)| crate::has_prefix(path, prefix))
            .map(|(path, e)| (path.as_str(), e.version))
            .collect()
    }

    /// The version of every path in `paths` that exists.
    pub(crate) fn versions<'a>(&self, paths: &'a [String]) -> BTreeMap<&'a str, u64> {
        paths
            .iter()
            .filter_map(|p| self.entries.get(p).map(|e| (p.as_str(), e.version)))
            .collect()
    }

    fn persist(&self) -> io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let out = FileOut {
            format: FORMAT,
            secrets: self
                .entries
                .iter()
                .map(|(path, e)| {
                    (
                        path.as_str(),
                        EntryOut {
                            version: e.version,
                            value: e.value.as_str(),
                        },
                    )
                })
                .collect(),
        };
        let mut text = Zeroizing::new(Vec::new());
        serde_json::to_writer_pretty(&mut *text, &out).map_err(io::Error::other)?;
        text.push(b'\n');
        write_atomically(file, &text)
    }
}

/// Replaces `file` with `bytes`, mode 0600 (see `vigo_fs`).
fn write_atomically(file: &Path, bytes: &[u8]) -> io::Result<()> {
    vigo_fs::replace_file(file, bytes, 0o600)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn value(v: &str) -> Zeroizing<String> {
        Zeroizing::new(v.to_owned())
    }

    #[test]
    fn versions_count_up_and_restart_after_delete() {
        let mut store = Store::open(None).unwrap();
        assert_eq!(store.put("a/b", value("1")).unwrap(), 1);
        assert_eq!(store.put("a/b", value("2")).unwrap(), 2);
        assert_eq!(store.get("a/b"), Some((2, "2")));
        assert!(store.delete("a/b").unwrap());
        assert!(!store.delete("a/b").unwrap());
        assert_eq!(store.put("a/b", value("3")).unwrap(), 1);
    }

    #[test]
    fn list_matches_whole_segments() {
        let mut store = Store::open(None).unwrap();
        for p in ["vigo/db/dsn", "vigo/dbx", "other/x"] {
            store.put(p, value("v")).unwrap();
        }
        let listed: Vec<_> = store.list("vigo/db").into_iter().map(|(p, _)| p).collect();
        assert_eq!(listed, ["vigo/db/dsn"]);
        assert_eq!(store.list("").len(), 3);
    }

    #[test]
    fn data_file_survives_reopen_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data.json");
        let mut store = Store::open(Some(file.clone())).unwrap();
        store.put("a/b", value("line1\nünï")).unwrap();
        store.put("a/b", value("line2\nünï")).unwrap();
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let reopened = Store::open(Some(file)).unwrap();
        assert_eq!(reopened.get("a/b"), Some((2, "line2\nünï")));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn corrupt_data_file_is_refused_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data.json");
        fs::write(
            &file,
            br#"{"format":"isopass-standin/1","secrets":{"a":{"version":"canary-9"}}}"#,
        )
        .unwrap();
        let err = Store::open(Some(file)).err().unwrap().to_string();
        assert!(err.contains("line 1"), "{err}");
        assert!(!err.contains("canary-9"), "{err}");
    }
}
