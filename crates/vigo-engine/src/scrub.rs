//! Removing secret values from text before it leaves the engine.
//!
//! Every message and every byte of command output that goes into a
//! [`Report`](crate::Report) passes through a [`Scrubber`] built from the
//! values the catalog carries (docs/ARCHITECTURE.md "A check-in").

use std::fmt;

use vigo_catalog::Catalog;
use zeroize::Zeroizing;

/// What a secret value is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Replaces every known secret value in a text with [`REDACTED`].
pub struct Scrubber {
    /// Values to remove, longest first so a value that contains another is
    /// replaced whole.
    values: Vec<Zeroizing<String>>,
}

impl fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scrubber({} values)", self.values.len())
    }
}

impl Scrubber {
    /// A scrubber for every secret value `catalog` carries. A value with
    /// surrounding whitespace is also removed in its trimmed form, since
    /// commands often echo a value without its trailing newline.
    pub fn for_catalog(catalog: &Catalog) -> Self {
        let mut values: Vec<Zeroizing<String>> = Vec::new();
        for value in catalog.secret_values() {
            let raw = value.expose_secret();
            // A value of only whitespace cannot be told apart from ordinary
            // spacing; replacing it would garble every message.
            if raw.trim().is_empty() {
                continue;
            }
            for form in [raw, raw.trim()] {
                if !form.is_empty() && !values.iter().any(|v| v.as_str() == form) {
                    values.push(Zeroizing::new(form.to_owned()));
                }
            }
        }
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        Self { values }
    }

    /// `text` with every secret value replaced.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for value in &self.values {
            if out.contains(value.as_str()) {
                let replaced = out.replace(value.as_str(), REDACTED);
                // The old text may hold the value: clear it before dropping.
                zeroize::Zeroize::zeroize(&mut out);
                out = replaced;
            }
        }
        out
    }

    /// The text of captured command output, scrubbed, then cut to at most
    /// `limit` bytes (its end kept) at a character boundary.
    ///
    /// Scrubbing works on the raw bytes before anything is decoded or cut:
    /// when `truncated` (the capture dropped the output's beginning), a
    /// leading piece that is the end of a secret value whose beginning was
    /// dropped is replaced too, even when the cut fell inside one of the
    /// value's characters. Only then is the text decoded (lossily) and cut,
    /// since replacing short values can make it longer than the capture.
    pub fn scrub_output(&self, bytes: &[u8], truncated: bool, limit: usize) -> String {
        let mut start = 0;
        if truncated {
            for value in &self.values {
                let value = value.as_bytes();
                // Longest proper suffix of the value the output starts with.
                if let Some(i) = (1..value.len()).find(|&i| bytes.starts_with(&value[i..])) {
                    start = start.max(value.len() - i);
                }
            }
        }
        let mut work = Zeroizing::new(Vec::with_capacity(bytes.len() + REDACTED.len()));
        if start > 0 {
            work.extend_from_slice(REDACTED.as_bytes());
        }
        work.extend_from_slice(&bytes[start..]);
        for value in &self.values {
            if let Some(replaced) = replace_all(&work, value.as_bytes()) {
                work = replaced;
            }
        }
        let text = Zeroizing::new(String::from_utf8_lossy(&work).into_owned());
        let mut cut = text.len().saturating_sub(limit);
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        text[cut..].to_owned()
    }

    /// Whether there is nothing to scrub.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// `haystack` with every `needle` replaced by [`REDACTED`], or `None` when
/// there is none. Works on bytes so that output which is not valid UTF-8
/// is scrubbed before it is decoded.
fn replace_all(haystack: &[u8], needle: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let first = *needle.first()?;
    let found = |at: usize| haystack[at..].starts_with(needle);
    let mut at = (0..haystack.len()).find(|&i| haystack[i] == first && found(i))?;
    let mut out = Zeroizing::new(Vec::with_capacity(haystack.len()));
    let mut copied = 0;
    loop {
        out.extend_from_slice(&haystack[copied..at]);
        out.extend_from_slice(REDACTED.as_bytes());
        copied = at + needle.len();
        match (copied..haystack.len()).find(|&i| haystack[i] == first && found(i)) {
            Some(next) => at = next,
            None => break,
        }
    }
    out.extend_from_slice(&haystack[copied..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use vigo_catalog::CatalogSecret;
    use vigo_secrets::SecretPath;

    use super::*;

    fn scrubber(values: &[&str]) -> Scrubber {
        let mut catalog = Catalog::empty("db1");
        for (i, v) in values.iter().enumerate() {
            catalog.secrets.insert(
                SecretPath::parse(&format!("s/{i}")).unwrap(),
                CatalogSecret {
                    version: 1,
                    value: Some((*v).into()),
                },
            );
        }
        Scrubber::for_catalog(&catalog)
    }

    #[test]
    fn replaces_every_occurrence_longest_first() {
        let s = scrubber(&["abc", "abcdef"]);
        assert_eq!(s.scrub("x abcdef y abc z"), "x [REDACTED] y [REDACTED] z");
    }

    #[test]
    fn trimmed_forms_are_removed_too() {
        let s = scrubber(&["hunter2\n"]);
        assert_eq!(s.scrub("pw=hunter2;"), "pw=[REDACTED];");
    }

    #[test]
    fn a_cut_off_value_at_the_start_of_a_tail_is_removed() {
        let s = scrubber(&["canary-1234"]);
        assert_eq!(
            s.scrub_output(b"1234 rest canary-1234", true, 100),
            "[REDACTED] rest [REDACTED]"
        );
        assert_eq!(s.scrub_output(b"plain", true, 100), "plain");
        // Not truncated: the output's start is the real start.
        assert_eq!(s.scrub_output(b"1234 x", false, 100), "1234 x");
    }

    #[test]
    fn issue_12_item_9_a_cut_inside_a_character_is_still_scrubbed() {
        let secret = "€uro-canary";
        let s = scrubber(&[secret]);
        for cut in 1..secret.len() {
            let mut bytes = secret.as_bytes()[cut..].to_vec();
            bytes.extend_from_slice(" after ".as_bytes());
            bytes.extend_from_slice(secret.as_bytes());
            assert_eq!(
                s.scrub_output(&bytes, true, 1000),
                "[REDACTED] after [REDACTED]",
                "cut at byte {cut}"
            );
        }
    }

    #[test]
    fn issue_12_item_9_invalid_utf8_around_a_value_does_not_hide_it() {
        let s = scrubber(&["hunter2"]);
        let mut bytes = vec![0xff, 0xe2, 0x82];
        bytes.extend_from_slice(b"hunter2");
        bytes.push(0xc3);
        assert_eq!(
            s.scrub_output(&bytes, false, 1000),
            "\u{FFFD}\u{FFFD}[REDACTED]\u{FFFD}"
        );
    }

    #[test]
    fn issue_12_item_9_the_cut_comes_after_scrubbing_at_a_boundary() {
        let s = scrubber(&["k9"]);
        // 22 bytes once scrubbed; the last 21 would start inside the é.
        let out = s.scrub_output("ék9k9".as_bytes(), false, 21);
        assert_eq!(out, "[REDACTED][REDACTED]");
        assert_eq!(
            s.scrub_output("ék9k9".as_bytes(), false, 22),
            "é[REDACTED][REDACTED]"
        );
        assert_eq!(s.scrub_output(b"k9", false, 0), "");
    }

    #[test]
    fn empty_values_are_ignored() {
        let s = scrubber(&["", "  "]);
        assert!(s.is_empty());
        assert_eq!(s.scrub("text"), "text");
    }
}
