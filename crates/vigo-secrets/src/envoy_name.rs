//! Envoy names (docs/operations.md "An envoy", "Enroll envoys"): the one rule for what an envoy may
//! be called.
//!
//! An envoy's name is its identity: the common name and only DNS name of its
//! certificate, the key of its database row, the name its catalog is compiled
//! for. Host names are case-insensitive, so a name is lower-cased once, when
//! it is parsed, and everything downstream compares the normalised form:
//! `DB1.EXAMPLE.COM` and `db1.example.com` are the same envoy, never two.
//!
//! It lives in this crate, the lowest one the PKI, the server, the envoy and
//! the CLI all depend on, so all four share this single rule.

use std::ops::Deref;

use crate::checked_text::{checked_text_impls, truncate_for_display};

/// The longest envoy name, in bytes (a DNS name).
pub const MAX_ENVOY_NAME_LEN: usize = 253;

/// The longest label of an envoy name, in bytes.
const MAX_LABEL_LEN: usize = 63;

/// A validated, lower-case envoy name: a host name such as `db1.example.com`.
///
/// Dot-separated labels of ASCII letters, digits and `-` (not at either end
/// of a label), each 1 to 63 bytes, 253 bytes in all, no trailing dot, and a
/// last label that is not all digits (so no IP address). Letters are stored
/// in lower case.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnvoyName(String);

/// Why a string is not a valid envoy name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid envoy name {input:?}: {reason}; use a host name such as db1.example.com")]
pub struct EnvoyNameError {
    /// The rejected input, truncated for display.
    pub input: String,
    /// What rule it broke.
    pub reason: &'static str,
}

impl EnvoyName {
    /// Parses, validates and lower-cases a name such as `DB1.example.com`.
    pub fn parse(input: &str) -> Result<Self, EnvoyNameError> {
        let fail = |reason| {
            Err(EnvoyNameError {
                input: truncate_for_display(input),
                reason,
            })
        };
        if input.is_empty() {
            return fail("the name is empty");
        }
        if input.len() > MAX_ENVOY_NAME_LEN {
            return fail("it is longer than 253 bytes");
        }
        if input.ends_with('.') {
            return fail("it must not end with '.'");
        }
        for label in input.split('.') {
            if label.is_empty() {
                return fail("it must not start with '.' or contain '..'");
            }
            if label.len() > MAX_LABEL_LEN {
                return fail("each dot-separated label is at most 63 bytes");
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return fail("only letters, digits, '-' and '.' are allowed");
            }
            if label.starts_with('-') || label.ends_with('-') {
                return fail("a label must not start or end with '-'");
            }
        }
        let last = input.rsplit('.').next().unwrap_or(input);
        if last.bytes().all(|b| b.is_ascii_digit()) {
            return fail("it must be a host name, not an IP address or a number");
        }
        Ok(Self(input.to_ascii_lowercase()))
    }

    /// The name as text, always lower case.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

checked_text_impls!(EnvoyName, EnvoyNameError);

impl Deref for EnvoyName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<EnvoyName> for String {
    fn from(name: EnvoyName) -> Self {
        name.0
    }
}

impl PartialEq<str> for EnvoyName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for EnvoyName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn host_names_are_accepted() {
        for good in ["db1.example.com", "web-2", "a.b.c", "x1", "a-b.c-d.e9"] {
            assert_eq!(EnvoyName::parse(good).unwrap().as_str(), good);
        }
        let label = "a".repeat(63);
        let longest = format!("{label}.{label}.{label}.{}", "b".repeat(61));
        assert_eq!(longest.len(), 253);
        assert!(EnvoyName::parse(&longest).is_ok());
    }

    #[test]
    fn issue_12_names_are_lower_cased_once() {
        let upper = EnvoyName::parse("DB1.EXAMPLE.COM").unwrap();
        let mixed = EnvoyName::parse("Db1.Example.com").unwrap();
        assert_eq!(upper.as_str(), "db1.example.com");
        assert_eq!(upper, mixed);
        assert_eq!(upper, EnvoyName::parse("db1.example.com").unwrap());
        let json = serde_json::to_string(&upper).unwrap();
        assert_eq!(json, "\"db1.example.com\"");
        let back: EnvoyName = serde_json::from_str("\"WEB1.example.com\"").unwrap();
        assert_eq!(back, "web1.example.com");
    }

    #[test]
    fn issue_12_one_rule_refuses_what_any_place_refused() {
        for bad in [
            "",
            "10.0.0.1",
            "127.0.0.1",
            "42",
            "db1.example.com.",
            ".db1",
            "a..b",
            "db 1",
            "*.example.com",
            "../x",
            "a/b",
            "x?y",
            "-a",
            "a-",
            "x_y.example.com",
            "ü.de",
            "::1",
        ] {
            let err = EnvoyName::parse(bad).unwrap_err();
            assert!(err.to_string().contains("db1.example.com"), "{bad}: {err}");
        }
        assert!(EnvoyName::parse(&"a".repeat(64)).is_err());
        assert!(EnvoyName::parse(&format!("{}.c", "a.".repeat(126))).is_err());
        assert!(serde_json::from_str::<EnvoyName>("\"a_b\"").is_err());
    }

    proptest! {
        #[test]
        fn parsing_is_idempotent_and_lower_case(input in "[A-Za-z0-9.\\-_ ]{0,40}") {
            if let Ok(name) = EnvoyName::parse(&input) {
                prop_assert_eq!(name.as_str(), input.to_ascii_lowercase());
                prop_assert_eq!(EnvoyName::parse(name.as_str()).unwrap(), name.clone());
                prop_assert!(!name.bytes().any(|b| b.is_ascii_uppercase()));
            }
        }
    }
}
