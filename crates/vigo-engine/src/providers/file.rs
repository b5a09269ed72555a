//! The `file` provider: content, mode, owner, group, presence.
//!
//! Content is revealed only here, held in zeroizing buffers, compared in
//! memory with the file on disk, and never put into a message: a message may
//! say that non-secret content changed, never what it was.

use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::unistd::{Gid, Uid};
use vigo_catalog::{FileSpec, Presence};
use zeroize::Zeroizing;

use super::{Context, Outcome, ProviderError};
use crate::atomic::{self, Attributes};
use crate::diff;
use crate::ownership;

/// Converges one `file` resource.
pub(crate) fn apply(spec: &FileSpec, ctx: &Context<'_>) -> Outcome {
    match spec.state {
        Presence::Absent => remove(spec.target_path.as_path(), ctx.noop),
        Presence::Present => ensure(spec, ctx),
    }
    .into()
}

/// Removes the file if present.
fn remove(path: &Path, noop: bool) -> Result<Outcome, ProviderError> {
    let Some(meta) = current(path)? else {
        return Ok(Outcome::unchanged(format!("{} is absent", path.display())));
    };
    if meta.is_dir() {
        return Err(ProviderError::refused(format!(
            "{} is a directory, not a file; use a directory resource to remove it",
            path.display()
        )));
    }
    if noop {
        return Ok(Outcome::changed(format!("would remove {}", path.display())));
    }
    fs::remove_file(path).map_err(ProviderError::io("removing", path))?;
    if let Some(dir) = path.parent() {
        atomic::sync_dir(dir).map_err(ProviderError::io("syncing", dir))?;
    }
    Ok(Outcome::changed(format!("removed {}", path.display())))
}

/// Writes the file, or fixes its attributes, where they differ.
fn ensure(spec: &FileSpec, ctx: &Context<'_>) -> Result<Outcome, ProviderError> {
    let path = spec.target_path.as_path();
    let mode = spec.mode.bits();
    // Without `owner`/`group` the file is the envoy's, whoever owned what
    // was at the path before (someone may have created it first).
    let uid = Some(ownership::owner_or_self(spec.owner.as_deref())?);
    let gid = Some(ownership::group_or_self(spec.group.as_deref())?);
    let desired: Option<Zeroizing<Vec<u8>>> = match (&spec.content, &spec.bytes) {
        (Some(text), _) => {
            let revealed = text.reveal(&ctx.catalog.secrets)?;
            Some(Zeroizing::new(revealed.as_bytes().to_vec()))
        }
        (None, Some(bytes)) => Some(Zeroizing::new(bytes.data.clone())),
        (None, None) => None,
    };
    let secret_content = spec.content.as_ref().is_some_and(|c| c.uses_secrets());
    if secret_content
        && let Some(owner) = uid
        && path.parent().is_some_and(Path::is_dir)
    {
        ownership::check_secret_folder(path, owner)?;
    }

    let meta = current(path)?;
    let Some(meta) = meta.filter(|m| m.is_file()) else {
        if meta_is_dir(path) {
            return Err(ProviderError::refused(format!(
                "{} is a directory; remove it or choose another target_path",
                path.display()
            )));
        }
        // Missing (or a symlink or special file, which is replaced rather
        // than written through).
        super::existing_parent(path, "write")?;
        if ctx.noop {
            // Say what is wrong with the path: missing, or not a file.
            let what = if fs::symlink_metadata(path).is_ok() {
                "replace the non-file at"
            } else {
                "create missing"
            };
            return Ok(Outcome::changed(format!(
                "would {what} {} (mode {})",
                path.display(),
                spec.mode
            )));
        }
        let bytes = desired.as_ref().map(|d| d.as_slice()).unwrap_or_default();
        write(path, bytes, Attributes { mode, uid, gid }, ctx)?;
        return Ok(Outcome::changed(format!(
            "wrote {} (mode {})",
            path.display(),
            spec.mode
        )));
    };

    let content_differs = match &desired {
        Some(d) => !same_content(path, &meta, d)?,
        None => false,
    };
    if content_differs && ctx.noop {
        return noop_content(
            spec,
            ctx,
            &meta,
            desired.as_ref().map(|d| d.as_slice()),
            uid,
            gid,
        );
    }
    if content_differs {
        // What the rewrite changes, as in a noop run, taken before the old
        // content goes.
        let (_, diff) = content_change(
            path,
            secret_content,
            desired.as_ref().map(|d| d.as_slice()).unwrap_or_default(),
        )?;
        // A rewrite makes a new inode with the owner the resource asks
        // for (or the envoy's): never the previous file's owner.
        let attributes = Attributes { mode, uid, gid };
        write(
            path,
            desired.as_ref().map(|d| d.as_slice()).unwrap_or_default(),
            attributes,
            ctx,
        )?;
        let what = if secret_content {
            ""
        } else {
            "content changed, "
        };
        return Ok(Outcome::changed(format!(
            "wrote {} ({what}mode {})",
            path.display(),
            spec.mode
        ))
        .with_diff(diff));
    }

    let changes = fix_attributes(path, &meta, mode, uid, gid, ctx.noop)?;
    Ok(Outcome::from_changes(
        changes,
        ctx.noop,
        format!("{} is in sync", path.display()),
    ))
}

/// Noop, content differs: what differs, changing nothing. Secret-bearing
/// content is only said to differ ([`diff::SECRET_CONTENT`]); other text
/// content comes with a unified diff. Mode, owner and group differences are
/// listed too, since the write would fix them.
fn noop_content(
    spec: &FileSpec,
    ctx: &Context<'_>,
    meta: &Metadata,
    desired: Option<&[u8]>,
    uid: Option<Uid>,
    gid: Option<Gid>,
) -> Result<Outcome, ProviderError> {
    let path = spec.target_path.as_path();
    let secret_content = spec.content.as_ref().is_some_and(|c| c.uses_secrets());
    let (content, diff) = content_change(path, secret_content, desired.unwrap_or_default())?;
    let mut changes = vec![format!("write {}: {content}", path.display())];
    changes.extend(fix_attributes(
        path,
        meta,
        spec.mode.bits(),
        uid,
        gid,
        true,
    )?);
    Ok(Outcome::from_changes(changes, ctx.noop, String::new()).with_diff(diff))
}

/// How the content of the file at `path` differs from `desired`: the words
/// for the message and, for text that holds no secret, a unified diff.
/// Secret-bearing content is only said to differ ([`diff::SECRET_CONTENT`])
/// and never read.
fn content_change(
    path: &Path,
    secret_content: bool,
    desired: &[u8],
) -> Result<(&'static str, Option<Zeroizing<String>>), ProviderError> {
    if secret_content {
        return Ok((diff::SECRET_CONTENT, None));
    }
    let current = Zeroizing::new(fs::read(path).map_err(ProviderError::io("reading", path))?);
    Ok(match diff::unified(path, &current, desired) {
        Some(diff) => ("content differs", Some(diff)),
        None => (diff::BINARY_CONTENT, None),
    })
}

/// Sets mode, owner and group where they differ; returns what was (or
/// would be) changed.
pub(super) fn fix_attributes(
    path: &Path,
    meta: &Metadata,
    mode: u32,
    uid: Option<Uid>,
    gid: Option<Gid>,
    noop: bool,
) -> Result<Vec<String>, ProviderError> {
    let mut changes = Vec::new();
    let new_uid = uid.filter(|u| u.as_raw() != meta.uid());
    let new_gid = gid.filter(|g| g.as_raw() != meta.gid());
    if new_uid.is_some() || new_gid.is_some() {
        if let Some(u) = new_uid {
            changes.push(format!(
                "set owner of {} to {} (was {})",
                path.display(),
                ownership::user_name(u.as_raw()),
                ownership::user_name(meta.uid())
            ));
        }
        if let Some(g) = new_gid {
            changes.push(format!(
                "set group of {} to {} (was {})",
                path.display(),
                ownership::group_name(g.as_raw()),
                ownership::group_name(meta.gid())
            ));
        }
    }
    let current_mode = meta.mode() & 0o7777;
    // chown clears set-id bits, so after a chown the mode is set again.
    let chowned = new_uid.is_some() || new_gid.is_some();
    if (current_mode != mode || chowned) && !noop {
        ownership::set_attributes(path, meta, new_uid, new_gid, mode)?;
    }
    if current_mode != mode {
        changes.push(format!(
            "set mode {mode:04o} on {} (was {current_mode:04o})",
            path.display()
        ));
    }
    Ok(changes)
}

/// The entry at `path` (not following a final symlink), `None` if missing.
pub(super) fn current(path: &Path) -> Result<Option<Metadata>, ProviderError> {
    match fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ProviderError::io("reading", path)(e)),
    }
}

fn meta_is_dir(path: &Path) -> bool {
    fs::symlink_metadata(path)
        .map(|m| m.is_dir())
        .unwrap_or(false)
}

/// Whether the file holds exactly `desired`, compared in memory without
/// copying either side into anything that could be logged.
fn same_content(path: &Path, meta: &Metadata, desired: &[u8]) -> Result<bool, ProviderError> {
    if meta.len() != desired.len() as u64 {
        return Ok(false);
    }
    let current = Zeroizing::new(fs::read(path).map_err(ProviderError::io("reading", path))?);
    Ok(aws_lc_rs::constant_time::verify_slices_are_equal(&current, desired).is_ok())
}

/// Writes the file durably, or stages it in the context's batch (which
/// makes it durable and renames it before the resource is reported).
fn write(
    path: &Path,
    bytes: &[u8],
    attributes: Attributes,
    ctx: &Context<'_>,
) -> Result<(), ProviderError> {
    match ctx.writes {
        Some(batch) => batch.stage(path, bytes, attributes),
        None => atomic::write_file(path, bytes, attributes),
    }
    .map_err(ProviderError::io("writing", path))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;

    use vigo_catalog::{AbsPath, Catalog, CatalogSecret, Mode, SecretText, Segment};
    use vigo_secrets::SecretPath;

    use super::*;
    use crate::report::Status;
    use crate::scrub::Scrubber;

    fn spec(path: &Path, content: Option<SecretText>, mode: u32) -> FileSpec {
        FileSpec {
            target_path: AbsPath::parse(path.to_str().unwrap()).unwrap(),
            content,
            bytes: None,
            mode: Mode::from_bits(mode),
            owner: None,
            group: None,
            state: Presence::Present,
        }
    }

    fn run(spec: &FileSpec, catalog: &Catalog, noop: bool) -> Outcome {
        let scrubber = Scrubber::for_catalog(catalog);
        let ctx = Context::for_test(catalog, &scrubber, noop);
        apply(spec, &ctx)
    }

    #[test]
    fn writes_then_fixes_mode_then_is_in_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.conf");
        let catalog = Catalog::empty("t");
        let s = spec(&path, Some(SecretText::literal("hello\n")), 0o640);
        let first = run(&s, &catalog, false);
        assert_eq!(first.status, Status::Changed, "{}", first.message);
        assert_eq!(fs::read_to_string(&path).unwrap(), "hello\n");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let second = run(&s, &catalog, false);
        assert_eq!(
            second.message,
            format!("set mode 0640 on {} (was 0644)", path.display())
        );
        assert_eq!(run(&s, &catalog, false).status, Status::Unchanged);
    }

    /// A catalog holding `db/pw` = `value`, and the content `pw=<db/pw>`.
    fn secret_catalog(value: &str) -> (Catalog, SecretText) {
        let secret = SecretPath::parse("db/pw").unwrap();
        let mut catalog = Catalog::empty("t");
        catalog.secrets = BTreeMap::from([(
            secret.clone(),
            CatalogSecret {
                version: 1,
                value: Some(value.into()),
            },
        )]);
        let content = SecretText(vec![Segment::Text("pw=".into()), Segment::Secret(secret)]);
        (catalog, content)
    }

    #[test]
    fn secret_content_is_written_but_never_described() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.conf");
        let (catalog, content) = secret_catalog("canary-file");
        let s = spec(&path, Some(content), 0o600);
        fs::write(&path, "pw=old").unwrap();
        let outcome = run(&s, &catalog, false);
        assert_eq!(outcome.status, Status::Changed);
        assert!(!outcome.message.contains("canary") && !outcome.message.contains("content"));
        assert_eq!(fs::read_to_string(&path).unwrap(), "pw=canary-file");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o600);
    }

    /// The diff of `port = 80` to `port = 8080` in a two-line file.
    fn port_diff(path: &Path) -> String {
        let shown = path.display();
        format!(
            "--- {shown}\n+++ {shown} (desired)\n@@ -1,2 +1,2 @@\n-port = 80\n+port = 8080\n name = web\n"
        )
    }

    #[test]
    fn issue_11_noop_shows_a_diff_of_plain_content_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.conf");
        fs::write(&path, "port = 80\nname = web\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let catalog = Catalog::empty("t");
        let s = spec(
            &path,
            Some(SecretText::literal("port = 8080\nname = web\n")),
            0o640,
        );
        let outcome = run(&s, &catalog, true);
        assert_eq!(outcome.status, Status::Changed);
        let shown = path.display();
        assert_eq!(
            outcome.message,
            format!("would write {shown}: content differs; set mode 0640 on {shown} (was 0644)")
        );
        assert_eq!(
            outcome.diff.as_deref().map(String::as_str),
            Some(port_diff(&path).as_str())
        );
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "port = 80\nname = web\n"
        );
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o644);
    }

    #[test]
    fn issue_15_a_rewrite_reports_the_diff_of_plain_content_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.conf");
        fs::write(&path, "port = 80\nname = web\n").unwrap();
        let catalog = Catalog::empty("t");
        let s = spec(
            &path,
            Some(SecretText::literal("port = 8080\nname = web\n")),
            0o644,
        );
        let outcome = run(&s, &catalog, false);
        assert_eq!(outcome.status, Status::Changed);
        assert_eq!(
            outcome.diff.as_deref().map(String::as_str),
            Some(port_diff(&path).as_str())
        );
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "port = 8080\nname = web\n"
        );
        // A new file says it was written, without a diff of all its lines.
        let new = dir.path().join("new.conf");
        let outcome = run(
            &spec(&new, Some(SecretText::literal("a\n")), 0o644),
            &catalog,
            false,
        );
        assert_eq!(outcome.status, Status::Changed);
        assert!(outcome.diff.is_none());
        // Secret-bearing content: no diff at all, before or after.
        let auth = dir.path().join("auth.conf");
        let (catalog, content) = secret_catalog("canary-rewrite");
        fs::write(&auth, "pw=edited-by-hand").unwrap();
        let outcome = run(&spec(&auth, Some(content), 0o600), &catalog, false);
        assert_eq!(outcome.status, Status::Changed);
        assert!(outcome.diff.is_none());
        assert!(!outcome.message.contains("edited-by-hand"));
    }

    #[test]
    fn issue_11_noop_never_shows_secret_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.conf");
        let (catalog, content) = secret_catalog("canary-noop");
        let s = spec(&path, Some(content), 0o600);
        fs::write(&path, "pw=edited-by-hand").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let outcome = run(&s, &catalog, true);
        let shown = path.display();
        assert_eq!(
            outcome.message,
            format!(
                "would write {shown}: content differs (secret, not shown); set mode 0600 on {shown} (was 0644)"
            )
        );
        assert!(outcome.diff.is_none());
        assert_eq!(fs::read_to_string(&path).unwrap(), "pw=edited-by-hand");
    }

    #[test]
    fn issue_11_noop_says_a_file_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone.conf");
        let s = spec(&path, Some(SecretText::literal("x\n")), 0o644);
        let outcome = run(&s, &Catalog::empty("t"), true);
        assert_eq!(
            outcome.message,
            format!("would create missing {} (mode 0644)", path.display())
        );
        assert!(!path.exists());
    }

    #[test]
    fn issue_15_repository_bytes_are_written_exactly_and_then_in_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob.bin");
        let data: Vec<u8> = (0..=255u8).rev().chain([0, 0, 0xc3]).collect();
        let mut s = spec(&path, None, 0o644);
        s.bytes = Some(vigo_catalog::FileBytes {
            from: "files/blob.bin".into(),
            data: data.clone(),
        });
        let catalog = Catalog::empty("t");
        assert_eq!(run(&s, &catalog, false).status, Status::Changed);
        assert_eq!(fs::read(&path).unwrap(), data);
        assert_eq!(run(&s, &catalog, false).status, Status::Unchanged);
        fs::write(&path, b"edited").unwrap();
        let noop = run(&s, &catalog, true);
        assert_eq!(noop.status, Status::Changed);
        assert_eq!(
            noop.message,
            format!(
                "would write {}: content differs (not text, not shown)",
                path.display()
            )
        );
        assert_eq!(fs::read(&path).unwrap(), b"edited");
        assert_eq!(run(&s, &catalog, false).status, Status::Changed);
        assert_eq!(fs::read(&path).unwrap(), data);
    }

    #[test]
    fn a_missing_folder_fails_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let s = spec(&dir.path().join("no/x"), None, 0o644);
        let outcome = run(&s, &Catalog::empty("t"), false);
        assert_eq!(outcome.status, Status::Failed);
        assert!(
            outcome.message.contains("add a directory resource"),
            "{}",
            outcome.message
        );
    }

    #[test]
    fn absent_removes_and_noop_only_reports() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old");
        fs::write(&path, "x").unwrap();
        let mut s = spec(&path, None, 0o644);
        s.state = Presence::Absent;
        let noop = run(&s, &Catalog::empty("t"), true);
        assert_eq!(noop.message, format!("would remove {}", path.display()));
        assert!(path.exists());
        assert_eq!(run(&s, &Catalog::empty("t"), false).status, Status::Changed);
        assert!(!path.exists());
        assert_eq!(
            run(&s, &Catalog::empty("t"), false).status,
            Status::Unchanged
        );
    }
}
