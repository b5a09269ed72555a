//! The on-disk format of one local secret file.
//!
//! ```text
//! offset  size  field
//! 0       7     magic "VIGOSEC"
//! 7       1     format version (1)
//! 8       8     secret version, u64 big-endian (1 on first set, +1 per set)
//! 16      12    AES-256-GCM nonce, fresh and random for every write
//! 28      n+16  ciphertext of the n-byte value, then the 16-byte tag
//! ```
//!
//! The associated data binds a domain tag, the format version, the secret's
//! path and its version. The nonce is authenticated by GCM itself. So a file
//! copied over another secret's file, an edited version field, a flipped
//! byte anywhere after the magic and format bytes, or a wrong key all fail
//! authentication; the magic and format bytes are checked before decryption
//! and give a format error instead. No path through this module yields a
//! wrong value.

use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use zeroize::Zeroizing;

use crate::{SecretError, SecretPath, SecretValue};

/// Marks a file as a Vigo secret file.
pub(super) const MAGIC: &[u8; 7] = b"VIGOSEC";
/// The only format version this code writes and reads.
pub(super) const FORMAT_VERSION: u8 = 1;
/// Bytes before the ciphertext.
pub(super) const HEADER_LEN: usize = MAGIC.len() + 1 + 8 + NONCE_LEN;
/// Bytes of the GCM tag after the ciphertext.
pub(super) const TAG_LEN: usize = 16;
/// The shortest valid file: a header and the tag of an empty value.
pub(super) const MIN_FILE_LEN: usize = HEADER_LEN + TAG_LEN;

/// Separates Vigo's secret-file associated data from any other use of the
/// same key.
const AAD_DOMAIN: &[u8] = b"vigo local secret file\0";

const VERSION_AT: usize = MAGIC.len() + 1;
const NONCE_AT: usize = VERSION_AT + 8;

/// What the header of a file says, before anything is decrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    /// The secret's version number, as stored (authenticated only once the
    /// file is decrypted).
    pub(super) version: u64,
    nonce: [u8; NONCE_LEN],
}

impl Header {
    /// Parses the header at the start of `bytes`, which were read from
    /// `file` (named in errors). `total_len` is the whole file's length, so
    /// a header-only read can still tell a truncated file.
    pub(super) fn parse(bytes: &[u8], total_len: u64, file: &Path) -> Result<Self, SecretError> {
        let format_error = |reason: String| SecretError::Format {
            file: file.to_path_buf(),
            reason,
        };
        if total_len < MIN_FILE_LEN as u64 || bytes.len() < HEADER_LEN {
            return Err(format_error(format!(
                "the file is {total_len} bytes long, shorter than the smallest secret file ({MIN_FILE_LEN} bytes); it was truncated or is not a secret file"
            )));
        }
        if &bytes[..MAGIC.len()] != MAGIC {
            return Err(format_error(
                "it does not start with Vigo's secret file marker; it is not a secret file, or it was damaged".to_owned(),
            ));
        }
        let format = bytes[MAGIC.len()];
        if format != FORMAT_VERSION {
            return Err(format_error(format!(
                "format version {format} is not supported (this Vigo reads version {FORMAT_VERSION}); it was written by another Vigo release or damaged"
            )));
        }
        let mut version = [0u8; 8];
        version.copy_from_slice(&bytes[VERSION_AT..NONCE_AT]);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&bytes[NONCE_AT..HEADER_LEN]);
        Ok(Self {
            version: u64::from_be_bytes(version),
            nonce,
        })
    }
}

/// Encrypts `value` as version `version` of `path`, giving the whole file.
pub(super) fn seal(
    key: &RandomizedNonceKey,
    path: &SecretPath,
    version: u64,
    value: &SecretValue,
) -> Result<Vec<u8>, SecretError> {
    let plaintext = value.expose_secret().as_bytes();
    // Reserved up front so that appending the tag never reallocates and
    // leaves a stray copy of the plaintext in freed memory.
    let mut file = Zeroizing::new(Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN));
    file.extend_from_slice(MAGIC);
    file.push(FORMAT_VERSION);
    file.extend_from_slice(&version.to_be_bytes());
    file.extend_from_slice(&[0u8; NONCE_LEN]);
    file.extend_from_slice(plaintext);

    let (nonce, tag) = key
        .seal_in_place_separate_tag(
            Aad::from(associated_data(path, version)),
            &mut file[HEADER_LEN..],
        )
        .map_err(|_| SecretError::Crypto {
            action: "encrypting",
        })?;
    file[NONCE_AT..HEADER_LEN].copy_from_slice(nonce.as_ref());
    file.extend_from_slice(tag.as_ref());
    // The buffer now holds only ciphertext; hand it out without a copy.
    Ok(std::mem::take(&mut *file))
}

/// Decrypts a whole file read from `file`, which must hold `path`.
pub(super) fn open(
    key: &RandomizedNonceKey,
    path: &SecretPath,
    mut bytes: Zeroizing<Vec<u8>>,
    file: &Path,
) -> Result<(SecretValue, u64), SecretError> {
    let header = Header::parse(&bytes, bytes.len() as u64, file)?;
    let plaintext = key
        .open_in_place(
            Nonce::assume_unique_for_key(header.nonce),
            Aad::from(associated_data(path, header.version)),
            &mut bytes[HEADER_LEN..],
        )
        .map_err(|_| SecretError::Integrity)?;
    // Authenticated, so only a writer holding the key can have produced
    // non-UTF-8 text; still an error, never a panic or a lossy copy.
    let text = std::str::from_utf8(plaintext).map_err(|_| SecretError::Format {
        file: file.to_path_buf(),
        reason: "the decrypted value is not UTF-8 text".to_owned(),
    })?;
    // `to_owned` allocates exactly `len` bytes, so the move into the
    // secret's box does not reallocate; `bytes` is zeroized on drop.
    Ok((SecretValue::new(text.to_owned()), header.version))
}

/// Sets up the cipher for a 32-byte master key.
pub(super) fn cipher(key: &[u8; 32]) -> Result<RandomizedNonceKey, SecretError> {
    RandomizedNonceKey::new(&AES_256_GCM, key).map_err(|_| SecretError::Crypto {
        action: "setting up the master key",
    })
}

fn associated_data(path: &SecretPath, version: u64) -> Vec<u8> {
    let path = path.as_str().as_bytes();
    let mut aad = Vec::with_capacity(AAD_DOMAIN.len() + 1 + 4 + path.len() + 8);
    aad.extend_from_slice(AAD_DOMAIN);
    aad.push(FORMAT_VERSION);
    // A path is at most 256 bytes (`MAX_PATH_LEN`), so this never saturates;
    // the length prefix keeps path and version from running into each other.
    aad.extend_from_slice(&u32::try_from(path.len()).unwrap_or(u32::MAX).to_be_bytes());
    aad.extend_from_slice(path);
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> RandomizedNonceKey {
        cipher(&[byte; 32]).unwrap()
    }

    fn path(p: &str) -> SecretPath {
        SecretPath::parse(p).unwrap()
    }

    fn open_bytes(
        k: &RandomizedNonceKey,
        p: &SecretPath,
        bytes: &[u8],
    ) -> Result<(SecretValue, u64), SecretError> {
        open(k, p, Zeroizing::new(bytes.to_vec()), Path::new("/s/f"))
    }

    #[test]
    fn round_trip_keeps_value_and_version() {
        let k = key(7);
        let p = path("vigo/db/dsn");
        let sealed = seal(&k, &p, 42, &SecretValue::from("hunter2-canary")).unwrap();
        assert_eq!(sealed.len(), HEADER_LEN + "hunter2-canary".len() + TAG_LEN);
        assert_eq!(&sealed[..7], MAGIC);
        let (value, version) = open_bytes(&k, &p, &sealed).unwrap();
        assert_eq!(value.expose_secret(), "hunter2-canary");
        assert_eq!(version, 42);
    }

    #[test]
    fn empty_value_round_trips() {
        let k = key(1);
        let p = path("a");
        let sealed = seal(&k, &p, 1, &SecretValue::from("")).unwrap();
        assert_eq!(sealed.len(), MIN_FILE_LEN);
        assert_eq!(open_bytes(&k, &p, &sealed).unwrap().0.expose_secret(), "");
    }

    #[test]
    fn fresh_nonce_on_every_seal() {
        let k = key(2);
        let p = path("a/b");
        let v = SecretValue::from("same");
        let one = seal(&k, &p, 1, &v).unwrap();
        let two = seal(&k, &p, 1, &v).unwrap();
        assert_ne!(one[NONCE_AT..HEADER_LEN], two[NONCE_AT..HEADER_LEN]);
        assert_ne!(one, two);
    }

    #[test]
    fn path_version_and_key_are_bound() {
        let k = key(3);
        let p = path("vigo/a");
        let sealed = seal(&k, &p, 5, &SecretValue::from("v")).unwrap();
        assert!(matches!(
            open_bytes(&k, &path("vigo/b"), &sealed),
            Err(SecretError::Integrity)
        ));
        assert!(matches!(
            open_bytes(&key(4), &p, &sealed),
            Err(SecretError::Integrity)
        ));
        let mut edited = sealed.clone();
        edited[VERSION_AT..NONCE_AT].copy_from_slice(&6u64.to_be_bytes());
        assert!(matches!(
            open_bytes(&k, &p, &edited),
            Err(SecretError::Integrity)
        ));
    }

    #[test]
    fn non_utf8_plaintext_is_a_format_error() {
        let k = key(5);
        let p = path("bin");
        // Build a file whose authenticated plaintext is not UTF-8, as only a
        // key holder could.
        let mut body = vec![0xff, 0xfe];
        let (nonce, tag) = k
            .seal_in_place_separate_tag(Aad::from(associated_data(&p, 1)), &mut body)
            .unwrap();
        let mut file = MAGIC.to_vec();
        file.push(FORMAT_VERSION);
        file.extend_from_slice(&1u64.to_be_bytes());
        file.extend_from_slice(nonce.as_ref());
        file.extend_from_slice(&body);
        file.extend_from_slice(tag.as_ref());
        let err = open_bytes(&k, &p, &file).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unreadable secret file /s/f: the decrypted value is not UTF-8 text"
        );
    }

    #[test]
    fn header_errors_name_the_file_and_cause() {
        let k = key(6);
        let p = path("x");
        let err = open_bytes(&k, &p, b"VIGOSEC").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("unreadable secret file /s/f: the file is 7 bytes long, shorter than"),
            "{err}"
        );
        let mut sealed = seal(&k, &p, 1, &SecretValue::from("v")).unwrap();
        sealed[7] = 2;
        let err = open_bytes(&k, &p, &sealed).unwrap_err();
        assert!(
            err.to_string()
                .contains("format version 2 is not supported"),
            "{err}"
        );
        sealed[0] = b'X';
        let err = open_bytes(&k, &p, &sealed).unwrap_err();
        assert!(err.to_string().contains("secret file marker"), "{err}");
    }

    #[test]
    fn header_parse_reads_version_without_the_key() {
        let k = key(8);
        let sealed = seal(&k, &path("x"), 77, &SecretValue::from("v")).unwrap();
        let header =
            Header::parse(&sealed[..HEADER_LEN], sealed.len() as u64, Path::new("f")).unwrap();
        assert_eq!(header.version, 77);
        assert!(
            Header::parse(
                &sealed[..HEADER_LEN],
                (MIN_FILE_LEN - 1) as u64,
                Path::new("f")
            )
            .is_err()
        );
    }
}
