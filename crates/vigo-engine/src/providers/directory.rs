//! The `directory` provider: presence (with parents), mode, owner, group.
//!
//! Without `owner`/`group` a directory belongs to the envoy's effective user
//! and group, also one that existed before with another owner.

use std::fs;
use std::path::Path;

use vigo_catalog::{DirectorySpec, Presence};

use super::file::{current, fix_attributes};
use super::{Context, Outcome, ProviderError};
use crate::ownership;

/// Converges one `directory` resource.
pub(crate) fn apply(spec: &DirectorySpec, ctx: &Context<'_>) -> Outcome {
    match spec.state {
        Presence::Absent => remove(spec.target_path.as_path(), ctx.noop),
        Presence::Present => ensure(spec, ctx.noop),
    }
    .into()
}

/// Removes the directory if present and empty.
fn remove(path: &Path, noop: bool) -> Result<Outcome, ProviderError> {
    let Some(meta) = current(path)? else {
        return Ok(Outcome::unchanged(format!("{} is absent", path.display())));
    };
    if !meta.is_dir() {
        return Err(ProviderError::refused(format!(
            "{} is not a directory; use a file resource to remove it",
            path.display()
        )));
    }
    let empty = fs::read_dir(path)
        .map_err(ProviderError::io("reading", path))?
        .next()
        .is_none();
    if !empty {
        return Err(ProviderError::refused(format!(
            "directory {} is not empty; remove its contents first (file resources with state: absent), then it can be removed",
            path.display()
        )));
    }
    if noop {
        return Ok(Outcome::changed(format!("would remove {}", path.display())));
    }
    fs::remove_dir(path).map_err(ProviderError::io("removing", path))?;
    Ok(Outcome::changed(format!("removed {}", path.display())))
}

/// Creates the directory (and missing parents) or fixes its attributes.
fn ensure(spec: &DirectorySpec, noop: bool) -> Result<Outcome, ProviderError> {
    let path = spec.target_path.as_path();
    let mode = spec.mode.bits();
    // Without `owner`/`group` the directory is the envoy's: one created
    // first by someone else (in /tmp, say) does not stay theirs.
    let uid = Some(ownership::owner_or_self(spec.owner.as_deref())?);
    let gid = Some(ownership::group_or_self(spec.group.as_deref())?);
    match current(path)? {
        Some(meta) if meta.is_dir() => {
            let changes = fix_attributes(path, &meta, mode, uid, gid, noop)?;
            Ok(Outcome::from_changes(
                changes,
                noop,
                format!("{} is in sync", path.display()),
            ))
        }
        Some(_) => Err(ProviderError::refused(format!(
            "{} exists and is not a directory; remove it first (a file resource with state: absent)",
            path.display()
        ))),
        None => {
            let created = format!("created {} (mode {})", path.display(), spec.mode);
            if noop {
                return Ok(Outcome::changed(format!("would {created}")));
            }
            fs::create_dir_all(path).map_err(ProviderError::io("creating", path))?;
            let meta = fs::symlink_metadata(path).map_err(ProviderError::io("reading", path))?;
            // The umask shaped the initial mode; set the real one.
            fix_attributes(path, &meta, mode, uid, gid, false)?;
            Ok(Outcome::changed(created))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use vigo_catalog::{AbsPath, Catalog, Mode};

    use super::*;
    use crate::report::Status;
    use crate::scrub::Scrubber;

    fn run(path: &Path, state: Presence, noop: bool) -> Outcome {
        let catalog = Catalog::empty("t");
        let scrubber = Scrubber::for_catalog(&catalog);
        let ctx = Context::for_test(&catalog, &scrubber, noop);
        let spec = DirectorySpec {
            target_path: AbsPath::parse(path.to_str().unwrap()).unwrap(),
            mode: Mode::from_bits(0o750),
            owner: None,
            group: None,
            state,
        };
        apply(&spec, &ctx)
    }

    #[test]
    fn creates_with_parents_and_mode_then_is_in_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/c");
        assert_eq!(run(&path, Presence::Present, true).status, Status::Changed);
        assert!(!path.exists());
        assert_eq!(run(&path, Presence::Present, false).status, Status::Changed);
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o750);
        assert_eq!(
            run(&path, Presence::Present, false).status,
            Status::Unchanged
        );
    }

    #[test]
    fn absent_refuses_a_non_empty_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("f"), "x").unwrap();
        let outcome = run(&path, Presence::Absent, false);
        assert_eq!(outcome.status, Status::Failed);
        assert!(
            outcome.message.contains("is not empty"),
            "{}",
            outcome.message
        );
        fs::remove_file(path.join("f")).unwrap();
        assert_eq!(run(&path, Presence::Absent, false).status, Status::Changed);
        assert!(!path.exists());
    }
}
