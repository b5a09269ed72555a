//! The isopass token file: read once, checked for ownership and mode.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use zeroize::Zeroizing;

use super::config_error;
use crate::{SecretError, SecretValue};

/// More than any token needs; stops a wrong file being read whole.
const READ_LIMIT: u64 = 64 * 1024;

/// Reads the bearer token from `file`.
///
/// The file must be a regular file owned by root or by the user running
/// Vigo, with no permission bits for group or others (0600 or 0400).
/// Surrounding whitespace (a trailing newline) is dropped; an empty file or
/// one with characters that cannot go into an HTTP header is refused. No
/// error ever contains the file's content.
pub(super) fn read_token(file: &Path) -> Result<SecretValue, SecretError> {
    let shown = file.display();
    let opened = match File::open(file) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(config_error(format!(
                "token file {shown} does not exist; check token_file in the server config"
            )));
        }
        Err(source) => {
            return Err(SecretError::Io {
                action: "reading isopass token file",
                file: file.to_path_buf(),
                cause: source,
            });
        }
    };
    // Checked on the open file, so a swap between check and read is no gap.
    let metadata = opened.metadata().map_err(|source| SecretError::Io {
        action: "reading isopass token file",
        file: file.to_path_buf(),
        cause: source,
    })?;
    check_metadata(file, &metadata, nix::unistd::getuid().as_raw())?;

    let mut raw = Zeroizing::new(Vec::with_capacity(256));
    opened
        .take(READ_LIMIT)
        .read_to_end(&mut raw)
        .map_err(|source| SecretError::Io {
            action: "reading isopass token file",
            file: file.to_path_buf(),
            cause: source,
        })?;
    let token = raw.trim_ascii();
    if token.is_empty() {
        return Err(config_error(format!(
            "token file {shown} is empty; write the isopass token into it"
        )));
    }
    if !token.iter().all(u8::is_ascii_graphic) {
        return Err(config_error(format!(
            "token file {shown} holds characters that cannot go into an HTTP header; write the token alone on one line"
        )));
    }
    let mut text = String::with_capacity(token.len());
    // Every byte is visible ASCII (checked above), so each is one char and
    // the capacity is never exceeded: no reallocation leaves a copy behind.
    text.extend(token.iter().map(|&b| char::from(b)));
    Ok(SecretValue::new(text))
}

/// Refuses anything but a regular file owned by root or `running_uid` with
/// no group or other permission bits.
fn check_metadata(
    file: &Path,
    metadata: &std::fs::Metadata,
    running_uid: u32,
) -> Result<(), SecretError> {
    let shown = file.display();
    if !metadata.is_file() {
        return Err(config_error(format!(
            "token file {shown} is not a regular file; point token_file at the token file itself"
        )));
    }
    let owner = metadata.uid();
    if owner != 0 && owner != running_uid {
        return Err(config_error(format!(
            "token file {shown} is owned by uid {owner}, not by root or the user running Vigo (uid {running_uid}); run: chown {running_uid} {shown}"
        )));
    }
    let mode = metadata.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(config_error(format!(
            "token file {shown} is readable or writable by group or others (mode {mode:04o}); run: chmod 600 {shown}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn token_file(dir: &Path, content: &str, mode: u32) -> std::path::PathBuf {
        let file = dir.join("token");
        fs::write(&file, content).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(mode)).unwrap();
        file
    }

    #[test]
    fn trailing_newline_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let file = token_file(dir.path(), "tok-abc\n", 0o600);
        assert_eq!(read_token(&file).unwrap().expose_secret(), "tok-abc");
        let file = token_file(dir.path(), "tok-abc", 0o400);
        assert_eq!(read_token(&file).unwrap().expose_secret(), "tok-abc");
    }

    #[test]
    fn group_readable_file_is_refused_with_chmod_hint() {
        let dir = tempfile::tempdir().unwrap();
        let file = token_file(dir.path(), "canary-tok-1", 0o640);
        let text = read_token(&file).unwrap_err().to_string();
        assert_eq!(
            text,
            format!(
                "isopass: token file {0} is readable or writable by group or others (mode 0640); run: chmod 600 {0}",
                file.display()
            )
        );
    }

    #[test]
    fn foreign_owner_is_refused_with_chown_hint() {
        let dir = tempfile::tempdir().unwrap();
        let file = token_file(dir.path(), "canary-tok-2", 0o600);
        let running = nix::unistd::getuid().as_raw();
        let text = if running == 0 {
            // As root: give the file to another user and read it for real.
            nix::unistd::chown(&file, Some(nix::unistd::Uid::from_raw(4242)), None).unwrap();
            read_token(&file).unwrap_err().to_string()
        } else {
            // Otherwise the file is ours: pretend Vigo runs as someone else.
            let metadata = fs::metadata(&file).unwrap();
            check_metadata(&file, &metadata, running + 1)
                .unwrap_err()
                .to_string()
        };
        assert!(
            text.contains("not by root or the user running Vigo"),
            "{text}"
        );
        assert!(text.contains("run: chown "), "{text}");
        assert!(!text.contains("canary"), "{text}");
    }

    #[test]
    fn missing_empty_and_odd_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = read_token(&dir.path().join("absent")).unwrap_err();
        assert!(missing.to_string().contains("does not exist"), "{missing}");
        let empty = read_token(&token_file(dir.path(), "\n", 0o600)).unwrap_err();
        assert!(empty.to_string().contains("is empty"), "{empty}");
        let spaced = read_token(&token_file(dir.path(), "canary one", 0o600)).unwrap_err();
        assert!(!spaced.to_string().contains("canary"), "{spaced}");
        let folder = read_token(dir.path()).unwrap_err();
        assert!(
            folder.to_string().contains("not a regular file"),
            "{folder}"
        );
    }
}
