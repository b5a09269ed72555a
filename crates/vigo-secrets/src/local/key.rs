//! The master key file: 32 random bytes as 64 hex characters, mode 0600.

use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use zeroize::Zeroizing;

use super::files;
use crate::SecretError;

/// Key length in bytes.
const KEY_LEN: usize = 32;
/// Key length as hex text.
const HEX_LEN: usize = 2 * KEY_LEN;
/// More than any valid key file holds; stops a huge file being read whole.
const READ_LIMIT: u64 = 4096;

/// The master key that encrypts every local secret.
///
/// Its `Debug` prints `MasterKey([REDACTED])`, and the bytes are zeroized
/// when it is dropped.
pub struct MasterKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl MasterKey {
    /// Reads the key at `path`, refusing a file that group or others may
    /// read or write, or that does not hold exactly 64 hex characters (one
    /// trailing newline is allowed).
    pub fn load(path: &Path) -> Result<MasterKey, SecretError> {
        let metadata = match fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(key_error(
                    path,
                    "does not exist".to_owned(),
                    "check key_file in the server config, or restore the key file from its backup"
                        .to_owned(),
                ));
            }
            Err(source) => return Err(io_error("reading master key", path, source)),
        };
        if !metadata.is_file() {
            return Err(key_error(
                path,
                "is not a regular file".to_owned(),
                "point key_file at the key file itself".to_owned(),
            ));
        }
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(key_error(
                path,
                format!("is readable or writable by group or others (mode {mode:04o})"),
                format!("run: chmod 600 {}", path.display()),
            ));
        }

        if metadata.len() > READ_LIMIT {
            return Err(key_error(
                path,
                format!(
                    "holds {} bytes, expected 64 hex characters (32 bytes)",
                    metadata.len()
                ),
                "point key_file at the master key file".to_owned(),
            ));
        }
        let mut text = Zeroizing::new(Vec::with_capacity(HEX_LEN + 1));
        fs::File::open(path)
            .and_then(|f| f.take(READ_LIMIT).read_to_end(&mut text))
            .map_err(|source| io_error("reading master key", path, source))?;
        let hex_text = text.strip_suffix(b"\n").unwrap_or(&text);
        let bytes = decode(hex_text).map_err(|problem| {
            key_error(
                path,
                problem,
                "restore the key file from its backup (a new key cannot decrypt secrets stored under the old one)"
                    .to_owned(),
            )
        })?;
        Ok(MasterKey { bytes })
    }

    /// Creates a new random key at `path` (64 lowercase hex characters and a
    /// newline, mode 0600) and returns it. Never overwrites: an existing
    /// file is an error. A missing parent folder is created with mode 0700.
    pub fn generate_to(path: &Path) -> Result<MasterKey, SecretError> {
        let exists_error = || {
            key_error(
                path,
                "already exists".to_owned(),
                "refusing to overwrite it; load it instead, or move it away only if no secret is encrypted under it"
                    .to_owned(),
            )
        };
        if fs::symlink_metadata(path).is_ok() {
            return Err(exists_error());
        }
        let (dir, name) = files::split_file_path(path)?;
        files::ensure_dir(&dir)?;

        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        aws_lc_rs::rand::fill(&mut bytes[..]).map_err(|_| SecretError::Crypto {
            action: "generating the master key",
        })?;
        let mut text = Zeroizing::new([b'\n'; HEX_LEN + 1]);
        // Cannot fail: the output slice is exactly twice the input's length.
        hex::encode_to_slice(&bytes[..], &mut text[..HEX_LEN]).map_err(|_| {
            SecretError::Crypto {
                action: "encoding the master key",
            }
        })?;

        match files::write_new(&dir, name, &text[..]) {
            Ok(()) => Ok(MasterKey { bytes }),
            Err(files::WriteNewError::Exists) => Err(exists_error()),
            Err(files::WriteNewError::Other(e)) => Err(e),
        }
    }

    /// A new random key, held in memory only.
    pub(super) fn random() -> Result<MasterKey, SecretError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        aws_lc_rs::rand::fill(&mut bytes[..]).map_err(|_| SecretError::Crypto {
            action: "generating the master key",
        })?;
        Ok(MasterKey { bytes })
    }

    /// The key file's content: 64 lowercase hex characters and a newline.
    pub(super) fn file_text(&self) -> Result<Zeroizing<[u8; HEX_LEN + 1]>, SecretError> {
        let mut text = Zeroizing::new([b'\n'; HEX_LEN + 1]);
        hex::encode_to_slice(&self.bytes[..], &mut text[..HEX_LEN]).map_err(|_| {
            SecretError::Crypto {
                action: "encoding the master key",
            }
        })?;
        Ok(text)
    }

    /// Whether two keys are the same key.
    pub(super) fn same_as(&self, other: &MasterKey) -> bool {
        self.bytes[..] == other.bytes[..]
    }

    /// The raw key bytes, for setting up the cipher.
    pub(super) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    #[cfg(test)]
    pub(super) fn from_bytes(bytes: [u8; KEY_LEN]) -> MasterKey {
        MasterKey {
            bytes: Zeroizing::new(bytes),
        }
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([REDACTED])")
    }
}

/// Decodes 64 hex characters, describing what was found otherwise (its
/// length or the position of a bad character, never the content).
fn decode(text: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>, String> {
    const EXPECTED: &str = "expected 64 hex characters (32 bytes)";
    if text.len() != HEX_LEN {
        let chars = std::str::from_utf8(text).map_or(text.len(), |s| s.chars().count());
        let extra = if text.ends_with(b"\n") {
            " (only one trailing newline is allowed)"
        } else {
            ""
        };
        return Err(format!("holds {chars} characters{extra}, {EXPECTED}"));
    }
    if let Some(at) = text.iter().position(|b| !b.is_ascii_hexdigit()) {
        return Err(format!(
            "holds a character that is not hexadecimal at position {}, {EXPECTED}",
            at + 1
        ));
    }
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    // Cannot fail after the checks above; hex's own error would quote the
    // offending character, so it is not passed on.
    hex::decode_to_slice(text, &mut bytes[..])
        .map_err(|_| format!("is not valid hex, {EXPECTED}"))?;
    Ok(bytes)
}

fn key_error(path: &Path, problem: String, hint: String) -> SecretError {
    SecretError::MasterKey {
        file: path.to_path_buf(),
        problem,
        hint,
    }
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> SecretError {
    SecretError::Io {
        action,
        file: path.to_path_buf(),
        cause: source,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::DirBuilderExt;

    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn write_key(dir: &Path, text: &[u8], mode: u32) -> std::path::PathBuf {
        let path = dir.join("master.key");
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn load_err(text: &[u8], mode: u32) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = write_key(dir.path(), text, mode);
        MasterKey::load(&path)
            .unwrap_err()
            .to_string()
            .replace(&dir.path().display().to_string(), "DIR")
    }

    #[test]
    fn loads_hex_with_or_without_one_newline() {
        let dir = tempfile::tempdir().unwrap();
        for text in [HEX.to_owned(), format!("{HEX}\n"), HEX.to_uppercase()] {
            let path = write_key(dir.path(), text.as_bytes(), 0o600);
            let key = MasterKey::load(&path).unwrap();
            assert_eq!(key.bytes()[..4], [0, 1, 2, 3]);
            assert_eq!(key.bytes()[31], 0x1f);
        }
        let path = write_key(dir.path(), HEX.as_bytes(), 0o400);
        assert!(MasterKey::load(&path).is_ok());
    }

    #[test]
    fn refuses_group_or_other_access_with_a_chmod_hint() {
        assert_eq!(
            load_err(HEX.as_bytes(), 0o644),
            "master key DIR/master.key: is readable or writable by group or others (mode 0644); run: chmod 600 DIR/master.key"
        );
        assert!(load_err(HEX.as_bytes(), 0o640).contains("(mode 0640); run: chmod 600"));
        assert!(load_err(HEX.as_bytes(), 0o602).contains("(mode 0602)"));
    }

    #[test]
    fn refuses_wrong_length_and_names_what_was_found() {
        let err = load_err(&HEX.as_bytes()[..40], 0o600);
        assert_eq!(
            err,
            "master key DIR/master.key: holds 40 characters, expected 64 hex characters (32 bytes); \
             restore the key file from its backup (a new key cannot decrypt secrets stored under the old one)"
        );
        assert!(
            load_err(format!("{HEX}\n\n").as_bytes(), 0o600)
                .contains("holds 65 characters (only one trailing newline is allowed)")
        );
        assert!(load_err(format!("{HEX}00").as_bytes(), 0o600).contains("holds 66 characters"));
        assert!(load_err(b"", 0o600).contains("holds 0 characters"));
        assert!(load_err(&[b'a'; 5000], 0o600).contains("holds 5000 bytes, expected 64 hex"));
    }

    #[test]
    fn refuses_non_hex_without_quoting_the_key() {
        let mut text = HEX.as_bytes().to_vec();
        text[10] = b'z';
        let err = load_err(&text, 0o600);
        assert!(
            err.contains("holds a character that is not hexadecimal at position 11"),
            "{err}"
        );
        assert!(!err.contains('z'), "{err}");
        assert!(!err.contains(&HEX[..10]), "{err}");
    }

    #[test]
    fn missing_file_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let err = MasterKey::load(&dir.path().join("nope")).unwrap_err();
        assert!(
            matches!(&err, SecretError::MasterKey { problem, .. } if problem == "does not exist")
        );
    }

    #[test]
    fn generate_writes_0600_hex_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new").join("deeper").join("master.key");
        let key = MasterKey::generate_to(&path).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        for d in [dir.path().join("new"), dir.path().join("new/deeper")] {
            assert_eq!(fs::metadata(d).unwrap().permissions().mode() & 0o777, 0o700);
        }
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 65);
        assert!(text.ends_with('\n'));
        assert!(
            text[..64]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_eq!(MasterKey::load(&path).unwrap().bytes(), key.bytes());

        let err = MasterKey::generate_to(&path).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), text);
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn generated_keys_differ() {
        let dir = tempfile::tempdir().unwrap();
        let a = MasterKey::generate_to(&dir.path().join("a")).unwrap();
        let b = MasterKey::generate_to(&dir.path().join("b")).unwrap();
        assert_ne!(a.bytes(), b.bytes());
    }

    #[test]
    fn generate_keeps_an_existing_folder_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let existing = dir.path().join("shared");
        fs::DirBuilder::new().mode(0o755).create(&existing).unwrap();
        fs::set_permissions(&existing, fs::Permissions::from_mode(0o755)).unwrap();
        MasterKey::generate_to(&existing.join("k")).unwrap();
        assert_eq!(
            fs::metadata(&existing).unwrap().permissions().mode() & 0o777,
            0o755
        );
    }

    #[test]
    fn debug_redacts() {
        let key = MasterKey::from_bytes([0xab; 32]);
        assert_eq!(format!("{key:?}"), "MasterKey([REDACTED])");
    }
}
