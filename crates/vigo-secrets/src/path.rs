//! Secret paths and `secret:` references (docs/secrets.md "References").
//!
//! A path is validated once, when it is parsed; everything downstream takes a
//! [`SecretPath`] and so can never be handed `../../etc/shadow`.

use std::fmt;

use crate::checked_text::{checked_text_impls, truncate_for_display};

/// The prefix that marks a config string as a secret reference.
pub const SECRET_PREFIX: &str = "secret:";

/// The longest path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 256;

/// A validated secret path: one or more `/`-separated segments of
/// `[A-Za-z0-9._-]`, no `.` or `..` segment, at most 256 bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretPath(String);

/// Why a string is not a valid secret path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid secret path '{input}': {reason}")]
pub struct PathError {
    /// The rejected input (a path, never a value), truncated for display.
    pub input: String,
    /// What rule it broke.
    pub reason: &'static str,
}

impl SecretPath {
    /// Parses and validates a path such as `vigo/db/dsn`.
    pub fn parse(input: &str) -> Result<Self, PathError> {
        let fail = |reason| {
            Err(PathError {
                input: truncate_for_display(input),
                reason,
            })
        };
        if input.is_empty() {
            return fail("the path is empty");
        }
        if input.len() > MAX_PATH_LEN {
            return fail("the path is longer than 256 bytes");
        }
        if input.starts_with('/') {
            return fail("a path must not start with '/'");
        }
        if input.ends_with('/') {
            return fail("a path must not end with '/'");
        }
        for segment in input.split('/') {
            if segment.is_empty() {
                return fail("a path must not contain an empty segment ('//')");
            }
            if segment == "." || segment == ".." {
                return fail("a path must not contain '.' or '..' segments");
            }
            if !segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                return fail("segments may only hold letters, digits, '.', '_' and '-'");
            }
        }
        Ok(Self(input.to_owned()))
    }

    /// The path as text, e.g. `vigo/db/dsn`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path's segments, in order.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// Whether this path lies under `prefix` (segment-wise: `vigo/db` is a
    /// prefix of `vigo/db/dsn`, but not of `vigo/dbx`). An empty prefix
    /// matches everything.
    pub fn has_prefix(&self, prefix: &str) -> bool {
        let prefix = prefix.trim_end_matches('/');
        prefix.is_empty()
            || self.0 == prefix
            || (self.0.starts_with(prefix) && self.0.as_bytes().get(prefix.len()) == Some(&b'/'))
    }
}

checked_text_impls!(SecretPath, PathError);

/// A `secret:<path>` reference found in a config value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretRef(SecretPath);

impl SecretRef {
    /// Recognises a reference: `Ok(None)` when `value` does not start with
    /// `secret:` (a plain literal), an error when it does but the path is
    /// invalid.
    pub fn recognise(value: &str) -> Result<Option<Self>, PathError> {
        match value.strip_prefix(SECRET_PREFIX) {
            None => Ok(None),
            Some(path) => SecretPath::parse(path).map(|p| Some(Self(p))),
        }
    }

    /// The referenced path.
    pub fn path(&self) -> &SecretPath {
        &self.0
    }

    /// Consumes the reference, giving its path.
    pub fn into_path(self) -> SecretPath {
        self.0
    }
}

impl From<SecretPath> for SecretRef {
    fn from(path: SecretPath) -> Self {
        Self(path)
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SECRET_PREFIX}{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn accepts_ordinary_paths() {
        for ok in [
            "vigo/db/dsn",
            "a",
            "x.y_z-1/B2",
            "vigo/grafana/admin-password",
        ] {
            assert_eq!(SecretPath::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_traversal_and_odd_shapes() {
        for bad in [
            "",
            "../../etc/shadow",
            "/etc/shadow",
            "vigo/",
            "vigo//db",
            "vigo/./db",
            "vigo/../db",
            "..",
            ".",
            "vigo/db dsn",
            "vigo\\db",
            "vigo/db\0",
            "vigo/dé",
        ] {
            assert!(SecretPath::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(SecretPath::parse(&"a".repeat(257)).is_err());
        assert!(SecretPath::parse(&"a".repeat(256)).is_ok());
    }

    #[test]
    fn error_names_the_input_and_the_rule() {
        let err = SecretPath::parse("../../etc/shadow").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid secret path '../../etc/shadow': a path must not contain '.' or '..' segments"
        );
    }

    #[test]
    fn references_are_recognised() {
        assert_eq!(SecretRef::recognise("plain").unwrap(), None);
        let r = SecretRef::recognise("secret:vigo/db/dsn").unwrap().unwrap();
        assert_eq!(r.path().as_str(), "vigo/db/dsn");
        assert_eq!(r.to_string(), "secret:vigo/db/dsn");
        assert!(SecretRef::recognise("secret:../x").is_err());
    }

    #[test]
    fn prefixes_match_whole_segments() {
        let p = SecretPath::parse("vigo/db/dsn").unwrap();
        assert!(p.has_prefix(""));
        assert!(p.has_prefix("vigo"));
        assert!(p.has_prefix("vigo/db/"));
        assert!(p.has_prefix("vigo/db/dsn"));
        assert!(!p.has_prefix("vigo/d"));
        assert!(!p.has_prefix("vigo/db/dsnx"));
    }

    proptest! {
        #[test]
        fn valid_paths_round_trip(segs in prop::collection::vec("[A-Za-z0-9_-][A-Za-z0-9._-]{0,10}", 1..6)) {
            let joined = segs.join("/");
            let parsed = SecretPath::parse(&joined);
            let has_dot_segment = segs.iter().any(|s| s == "." || s == "..");
            prop_assert_eq!(parsed.is_ok(), !has_dot_segment);
            if let Ok(p) = parsed {
                prop_assert_eq!(p.as_str(), joined.as_str());
                prop_assert_eq!(p.segments().count(), segs.len());
            }
        }

        #[test]
        fn accepted_paths_never_escape(input in "\\PC{0,40}") {
            if let Ok(p) = SecretPath::parse(&input) {
                prop_assert!(!p.as_str().starts_with('/'));
                prop_assert!(p.segments().all(|s| !s.is_empty() && s != "." && s != ".."));
                prop_assert!(p.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b)));
            }
        }
    }
}
