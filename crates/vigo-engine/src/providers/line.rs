//! The `line` provider: one line of an existing file, as Ansible's
//! `lineinfile`.
//!
//! Present: with `match`, the last line the pattern matches is replaced by
//! `line` (appended when none matches and the line is not already there);
//! without, `line` is appended unless some line equals it. Absent: every
//! line that `match` matches (or that equals `line`) is removed. The file
//! is rewritten atomically with its own mode, owner and group; in a noop
//! run the change is shown as a diff.

use std::fs;
use std::os::unix::fs::MetadataExt;

use nix::unistd::{Gid, Uid};
use regex::Regex;
use vigo_catalog::{LineSpec, Presence};
use zeroize::Zeroizing;

use super::file::current;
use super::{Outcome, ProviderError};
use crate::atomic::{self, Attributes};
use crate::diff;

/// Converges one `line` resource.
pub(crate) fn apply(spec: &LineSpec, noop: bool) -> Outcome {
    converge(spec, noop).into()
}

fn converge(spec: &LineSpec, noop: bool) -> Result<Outcome, ProviderError> {
    let path = spec.target_path.as_path();
    let pattern = spec
        .pattern
        .as_deref()
        .map(Regex::new)
        .transpose()
        .map_err(ProviderError::Pattern)?;
    let Some(meta) = current(path)?.filter(|m| m.is_file()) else {
        return Err(ProviderError::refused(format!(
            "{} does not exist or is not a regular file; create it first (a file resource in depends_on)",
            path.display()
        )));
    };
    let text =
        Zeroizing::new(
            fs::read_to_string(path).map_err(|source| ProviderError::NotText {
                path: path.to_path_buf(),
                source,
            })?,
        );
    let Some((new, what)) = edit(&text, spec, pattern.as_ref()) else {
        let state = match spec.state {
            Presence::Present => "is present",
            Presence::Absent => "is absent",
        };
        return Ok(Outcome::unchanged(format!(
            "{}: the line {state}",
            path.display()
        )));
    };
    if noop {
        let diff = diff::unified(path, text.as_bytes(), new.as_bytes());
        return Ok(Outcome::changed(format!("would {what} in {}", path.display())).with_diff(diff));
    }
    let attributes = Attributes {
        mode: meta.mode() & 0o7777,
        uid: Some(Uid::from_raw(meta.uid())),
        gid: Some(Gid::from_raw(meta.gid())),
    };
    atomic::write_file(path, new.as_bytes(), attributes)
        .map_err(ProviderError::io("writing", path))?;
    let done = what
        .replacen("replace", "replaced", 1)
        .replacen("append", "appended", 1)
        .replacen("remove", "removed", 1);
    Ok(Outcome::changed(format!("{done} in {}", path.display())))
}

/// The new text and what changed, or `None` when the file is as wanted.
fn edit(text: &str, spec: &LineSpec, pattern: Option<&Regex>) -> Option<(String, String)> {
    let mut lines: Vec<&str> = text.lines().collect();
    let wanted = spec.line.as_str();
    match spec.state {
        Presence::Present => {
            let target = pattern.and_then(|re| lines.iter().rposition(|l| re.is_match(l)));
            let what = match target {
                Some(i) if lines[i] == wanted => return None,
                Some(i) => {
                    lines[i] = wanted;
                    format!("replace line {}", i + 1)
                }
                None if lines.contains(&wanted) => return None,
                None => {
                    lines.push(wanted);
                    "append a line".to_owned()
                }
            };
            Some((join(&lines), what))
        }
        Presence::Absent => {
            let before = lines.len();
            lines.retain(|l| match pattern {
                Some(re) => !re.is_match(l),
                None => *l != wanted,
            });
            let removed = before - lines.len();
            (removed > 0).then(|| {
                let plural = if removed == 1 { "" } else { "s" };
                (join(&lines), format!("remove {removed} line{plural}"))
            })
        }
    }
}

/// Lines joined, each ending with a newline.
fn join(lines: &[&str]) -> String {
    let mut out = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use vigo_catalog::AbsPath;

    use super::*;
    use crate::report::Status;

    fn spec(path: &Path, line: &str, pattern: Option<&str>, state: Presence) -> LineSpec {
        LineSpec {
            target_path: AbsPath::parse(path.to_str().unwrap()).unwrap(),
            line: line.into(),
            pattern: pattern.map(str::to_owned),
            state,
        }
    }

    #[test]
    fn issue_13_a_failure_message_names_the_file_and_its_cause_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        fs::write(&path, [0xff, 0xfe, b'\n']).unwrap();
        let out = apply(&spec(&path, "x", None, Presence::Present), false);
        assert_eq!(out.status, Status::Failed);
        assert_eq!(
            out.message,
            format!(
                "reading {} as text: stream did not contain valid UTF-8",
                path.display()
            )
        );
        let bad = apply(&spec(&path, "x", Some("(open"), Presence::Present), false);
        assert!(
            bad.message
                .starts_with("'match' is not a valid regular expression: regex parse error"),
            "{}",
            bad.message
        );
        assert_eq!(bad.message.matches("regex parse error").count(), 1);
    }

    #[test]
    fn issue_15_appends_once_and_keeps_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        fs::write(&path, "a\nb").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let s = spec(&path, "c", None, Presence::Present);
        let noop = apply(&s, true);
        assert_eq!(noop.status, Status::Changed);
        let diff = noop.diff.as_deref().map(String::as_str).unwrap_or_default();
        assert!(diff.ends_with("+b\n+c\n"), "{diff}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "a\nb");
        let out = apply(&s, false);
        assert_eq!(
            out.message,
            format!("appended a line in {}", path.display())
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "a\nb\nc\n");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o640);
        assert_eq!(apply(&s, false).status, Status::Unchanged);
    }

    #[test]
    fn issue_15_match_replaces_the_last_matching_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sshd_config");
        fs::write(
            &path,
            "PermitRootLogin yes\nPort 22\n#PermitRootLogin yes\n",
        )
        .unwrap();
        let s = spec(
            &path,
            "PermitRootLogin no",
            Some("^#?PermitRootLogin"),
            Presence::Present,
        );
        let out = apply(&s, false);
        assert_eq!(
            out.message,
            format!("replaced line 3 in {}", path.display())
        );
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "PermitRootLogin yes\nPort 22\nPermitRootLogin no\n"
        );
        assert_eq!(apply(&s, false).status, Status::Unchanged);
        let gone = spec(&path, "", Some("^PermitRootLogin"), Presence::Absent);
        assert_eq!(
            apply(&gone, false).message,
            format!("removed 2 lines in {}", path.display())
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "Port 22\n");
        assert_eq!(apply(&gone, false).status, Status::Unchanged);
    }

    #[test]
    fn issue_15_a_missing_file_fails() {
        let dir = tempfile::tempdir().unwrap();
        let s = spec(&dir.path().join("nope"), "x", None, Presence::Present);
        let out = apply(&s, false);
        assert_eq!(out.status, Status::Failed);
        assert!(out.message.contains("create it first"), "{}", out.message);
    }
}
