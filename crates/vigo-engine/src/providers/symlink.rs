//! The `symlink` provider: a link at `target_path` pointing to `points_to`.
//!
//! A link pointing elsewhere is replaced; a regular file is replaced only
//! with `force: true`; a directory never. The new link is made under a
//! temporary name beside the target and renamed over it, so the path is
//! never missing in between.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use vigo_catalog::{Presence, SymlinkSpec};

use super::file::current;
use super::{Outcome, ProviderError};
use crate::atomic;

/// Converges one `symlink` resource.
pub(crate) fn apply(spec: &SymlinkSpec, noop: bool) -> Outcome {
    match spec.state {
        Presence::Present => ensure(spec, noop),
        Presence::Absent => remove(spec.target_path.as_path(), noop),
    }
    .into()
}

fn ensure(spec: &SymlinkSpec, noop: bool) -> Result<Outcome, ProviderError> {
    let path = spec.target_path.as_path();
    let wanted = Path::new(&spec.points_to);
    let what = match current(path)? {
        None => format!("create {} -> {}", path.display(), spec.points_to),
        Some(meta) if meta.file_type().is_symlink() => {
            let now = fs::read_link(path).map_err(ProviderError::io("reading link", path))?;
            if now == wanted {
                return Ok(Outcome::unchanged(format!(
                    "{} -> {} is in place",
                    path.display(),
                    spec.points_to
                )));
            }
            format!(
                "point {} to {} (was {})",
                path.display(),
                spec.points_to,
                now.display()
            )
        }
        Some(meta) if meta.is_file() && spec.force => format!(
            "replace the file {} with a link to {}",
            path.display(),
            spec.points_to
        ),
        Some(meta) if meta.is_file() => {
            return Err(ProviderError::refused(format!(
                "{} is a regular file, not a link; set 'force: true' to replace it with the link",
                path.display()
            )));
        }
        Some(meta) if meta.is_dir() => {
            return Err(ProviderError::refused(format!(
                "{} is a directory; a symlink resource never replaces one (remove it first)",
                path.display()
            )));
        }
        Some(_) => {
            return Err(ProviderError::refused(format!(
                "{} is a special file (socket, FIFO or device), not a link; remove it first",
                path.display()
            )));
        }
    };
    let parent = super::existing_parent(path, "create")?;
    if noop {
        return Ok(Outcome::changed(format!("would {what}")));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = parent.join(format!(".{name}.vigo-link-{}", atomic::random_suffix()));
    symlink(wanted, &temp).map_err(ProviderError::io("creating link", &temp))?;
    if let Err(e) = fs::rename(&temp, path) {
        let _ = fs::remove_file(&temp);
        return Err(ProviderError::io("replacing", path)(e));
    }
    atomic::sync_dir(parent).map_err(ProviderError::io("syncing", parent))?;
    let mut done = what;
    // "create x" -> "created x", "point x" -> "pointed x", "replace" -> "replaced"
    for (from, to) in [
        ("create ", "created "),
        ("point ", "pointed "),
        ("replace ", "replaced "),
    ] {
        if let Some(rest) = done.strip_prefix(from) {
            done = format!("{to}{rest}");
            break;
        }
    }
    Ok(Outcome::changed(done))
}

fn remove(path: &Path, noop: bool) -> Result<Outcome, ProviderError> {
    match current(path)? {
        None => Ok(Outcome::unchanged(format!("{} is absent", path.display()))),
        Some(meta) if meta.file_type().is_symlink() => {
            if noop {
                return Ok(Outcome::changed(format!(
                    "would remove link {}",
                    path.display()
                )));
            }
            fs::remove_file(path).map_err(ProviderError::io("removing", path))?;
            Ok(Outcome::changed(format!("removed link {}", path.display())))
        }
        Some(_) => Err(ProviderError::refused(format!(
            "{} is not a link; a symlink resource removes only links",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use vigo_catalog::AbsPath;

    use super::*;
    use crate::report::Status;

    fn spec(path: &Path, to: &str) -> SymlinkSpec {
        SymlinkSpec {
            target_path: AbsPath::parse(path.to_str().unwrap()).unwrap(),
            points_to: to.into(),
            force: false,
            state: Presence::Present,
        }
    }

    #[test]
    fn issue_15_creates_repoints_and_then_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("current");
        let s = spec(&link, "release-1");
        let noop = apply(&s, true);
        assert_eq!(noop.status, Status::Changed);
        assert!(noop.message.starts_with("would create"), "{}", noop.message);
        assert!(fs::symlink_metadata(&link).is_err());
        assert_eq!(apply(&s, false).status, Status::Changed);
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("release-1"));
        assert_eq!(apply(&s, false).status, Status::Unchanged);
        let s2 = spec(&link, "release-2");
        let out = apply(&s2, false);
        assert_eq!(
            out.message,
            format!("pointed {} to release-2 (was release-1)", link.display())
        );
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("release-2"));
        // No temporary link left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn issue_15_a_file_is_replaced_only_with_force() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("conf");
        fs::write(&link, "precious").unwrap();
        let mut s = spec(&link, "/etc/hostname");
        let refused = apply(&s, false);
        assert_eq!(refused.status, Status::Failed);
        assert!(
            refused.message.contains("force: true"),
            "{}",
            refused.message
        );
        assert_eq!(fs::read_to_string(&link).unwrap(), "precious");
        s.force = true;
        assert_eq!(apply(&s, true).status, Status::Changed);
        assert!(fs::symlink_metadata(&link).unwrap().is_file());
        assert_eq!(apply(&s, false).status, Status::Changed);
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("/etc/hostname"));
        let dir_target = dir.path().join("d");
        fs::create_dir(&dir_target).unwrap();
        let mut d = spec(&dir_target, "x");
        d.force = true;
        assert_eq!(apply(&d, false).status, Status::Failed);
        assert!(dir_target.is_dir());
    }

    #[test]
    fn issue_15_absent_removes_only_links() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("l");
        symlink("x", &link).unwrap();
        let mut s = spec(&link, "");
        s.state = Presence::Absent;
        assert_eq!(apply(&s, true).status, Status::Changed);
        assert!(fs::symlink_metadata(&link).is_ok());
        assert_eq!(apply(&s, false).status, Status::Changed);
        assert_eq!(apply(&s, false).status, Status::Unchanged);
        fs::write(&link, "file").unwrap();
        assert_eq!(apply(&s, false).status, Status::Failed);
        assert!(link.is_file());
    }
}
