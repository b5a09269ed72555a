//! Removing secret values from text before it leaves the engine.
//!
//! Every message and every byte of command output that goes into a
//! [`Report`](crate::Report) passes through a [`Scrubber`] built from the
//! values the catalog carries (SPEC 6.3).

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

    /// Scrubs text that is the tail of a longer output: besides whole
    /// values, a piece at the very start that is the end of a secret (the
    /// beginning of which was cut off) is replaced too.
    pub fn scrub_tail(&self, text: &str) -> String {
        let mut start = 0;
        for value in &self.values {
            // Longest cut-off suffix of the value that the text starts with.
            let found = value
                .char_indices()
                .skip(1)
                .map(|(i, _)| &value[i..])
                .find(|suffix| text.starts_with(suffix));
            if let Some(suffix) = found {
                start = start.max(suffix.len());
            }
        }
        if start == 0 {
            return self.scrub(text);
        }
        let mut out = String::from(REDACTED);
        out.push_str(&self.scrub(&text[start..]));
        out
    }

    /// Whether there is nothing to scrub.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
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
            s.scrub_tail("1234 rest canary-1234"),
            "[REDACTED] rest [REDACTED]"
        );
        assert_eq!(s.scrub_tail("plain"), "plain");
    }

    #[test]
    fn empty_values_are_ignored() {
        let s = scrubber(&["", "  "]);
        assert!(s.is_empty());
        assert_eq!(s.scrub("text"), "text");
    }
}
