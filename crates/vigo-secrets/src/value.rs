//! The redacting secret value type.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// A secret value in memory.
///
/// `Debug` and `Display` print `[REDACTED]`; the text is read only through
/// [`SecretValue::expose_secret`], and the memory is zeroized when the value
/// is dropped. It deliberately implements neither `Serialize` nor
/// `PartialEq`: writing a value out or comparing two values must be spelled
/// out at the call site.
#[derive(Clone)]
pub struct SecretValue(SecretString);

impl SecretValue {
    /// Wraps a value; the `String` is moved, not copied.
    pub fn new(value: String) -> Self {
        Self(SecretString::from(value))
    }

    /// The value itself. Every caller is a place where a secret leaves its
    /// wrapper; keep them few and never pass the result to a log or error.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }

    /// Length in bytes (safe to log: it does not reveal the value's content).
    pub fn len(&self) -> usize {
        self.expose_secret().len()
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Compares two values in constant time for equal lengths.
    pub fn ct_eq(&self, other: &Self) -> bool {
        let (a, b) = (
            self.expose_secret().as_bytes(),
            other.expose_secret().as_bytes(),
        );
        aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
    }
}

impl From<String> for SecretValue {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for SecretValue {
    fn from(value: &str) -> Self {
        Self::new(value.to_owned())
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let v = SecretValue::from("canary-7f3a");
        assert_eq!(format!("{v:?}"), "[REDACTED]");
        assert_eq!(format!("{v}"), "[REDACTED]");
        assert_eq!(format!("{:?}", Some(v.clone())), "Some([REDACTED])");
        assert_eq!(v.expose_secret(), "canary-7f3a");
    }

    #[test]
    fn constant_time_compare() {
        let a = SecretValue::from("x1");
        assert!(a.ct_eq(&SecretValue::from("x1")));
        assert!(!a.ct_eq(&SecretValue::from("x2")));
        assert!(!a.ct_eq(&SecretValue::from("x11")));
    }
}
