//! What a noop run shows about a file whose content drifted.
//!
//! Content that holds no secret is shown as a unified diff (the file on disk
//! against the desired content); content that holds a secret is never shown,
//! only [`SECRET_CONTENT`]. The diff is built in zeroizing buffers, and the
//! engine scrubs it of every secret value the catalog carries before it goes
//! into a report.

use std::path::Path;

use similar::TextDiff;
use zeroize::Zeroizing;

/// The only thing said about secret-bearing content that differs.
pub const SECRET_CONTENT: &str = "content differs (secret, not shown)";

/// Said about content that is not UTF-8 text.
pub(crate) const BINARY_CONTENT: &str = "content differs (not text, not shown)";

/// Lines of diff kept; the rest is cut with a note.
const MAX_LINES: usize = 400;

/// Lines of context around each change.
const CONTEXT: usize = 3;

/// A unified diff from `current` (the file at `path`) to `desired`, or
/// `None` when either side is not UTF-8 text. The headers are
/// `--- PATH` and `+++ PATH (desired)`; a diff longer than [`MAX_LINES`]
/// lines is cut, saying how many lines were left out.
pub(crate) fn unified(path: &Path, current: &[u8], desired: &[u8]) -> Option<Zeroizing<String>> {
    let current = std::str::from_utf8(current).ok()?;
    let desired = std::str::from_utf8(desired).ok()?;
    let shown = path.display().to_string();
    let diff = TextDiff::from_lines(current, desired);
    let text = Zeroizing::new(
        diff.unified_diff()
            .context_radius(CONTEXT)
            .header(&shown, &format!("{shown} (desired)"))
            .missing_newline_hint(true)
            .to_string(),
    );
    let total = text.lines().count();
    if total <= MAX_LINES {
        return Some(text);
    }
    let mut cut = Zeroizing::new(String::with_capacity(text.len()));
    for line in text.lines().take(MAX_LINES) {
        cut.push_str(line);
        cut.push('\n');
    }
    cut.push_str(&format!(
        "... ({} more lines of diff not shown)\n",
        total - MAX_LINES
    ));
    Some(cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_changed_lines_with_headers() {
        let diff = unified(
            Path::new("/etc/app.conf"),
            b"port = 80\nname = web\n",
            b"port = 8080\nname = web\n",
        )
        .unwrap();
        assert_eq!(
            diff.as_str(),
            "--- /etc/app.conf\n+++ /etc/app.conf (desired)\n@@ -1,2 +1,2 @@\n-port = 80\n+port = 8080\n name = web\n"
        );
    }

    #[test]
    fn binary_content_is_not_diffed() {
        assert!(unified(Path::new("/x"), b"\xff\xfe", b"text\n").is_none());
    }

    #[test]
    fn long_diffs_are_cut() {
        let desired: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        let diff = unified(Path::new("/x"), b"", desired.as_bytes()).unwrap();
        assert_eq!(diff.lines().count(), MAX_LINES + 1);
        assert!(
            diff.ends_with("... (603 more lines of diff not shown)\n"),
            "{}",
            &diff[diff.len() - 80..]
        );
    }
}
