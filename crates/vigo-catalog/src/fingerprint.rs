//! The catalog fingerprint an envoy sends at check-in, so the server can
//! answer "unchanged" (docs/ARCHITECTURE.md, "Check-in and rotation flow").
//!
//! An HMAC-SHA256, under the server's `vigo/server/hmac_key`, of the
//! catalog's canonical JSON *with* its secret values. Values are included so
//! that a rotated secret changes the fingerprint; the key makes the result
//! reveal nothing about them (without the key, no one can test a guess).
//! Per-check-in flags (`_secret_triggered`) are left out: they are not part of
//! the desired state.

use std::fmt;

use aws_lc_rs::hmac;
use zeroize::Zeroizing;

use crate::Catalog;

/// Version tag mixed into every fingerprint, so a change to the canonical
/// form can never make an old envoy's fingerprint match by accident.
pub const CATALOG_FORMAT: &str = "vigo-catalog-v1";

/// A catalog fingerprint: 64 lowercase hex characters.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps a fingerprint received from elsewhere (an envoy's check-in).
    pub fn from_hex(hex_text: &str) -> Option<Self> {
        (hex_text.len() == 64 && hex_text.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(hex_text.to_ascii_lowercase()))
    }

    /// Constant-time comparison.
    pub fn matches(&self, other: &Self) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(self.0.as_bytes(), other.0.as_bytes())
            .is_ok()
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.0)
    }
}

impl Catalog {
    /// The canonical bytes: compact JSON of the catalog with every trigger
    /// flag cleared. Field order is fixed by the types and maps are sorted,
    /// so equal catalogs give equal bytes. Zeroized on drop (it holds values).
    pub fn canonical_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut plain = self.clone();
        for r in &mut plain.resources {
            r.secret_triggered = false;
        }
        // Serialising these plain data types cannot fail: no maps with
        // non-string keys, no custom serialisers that return errors.
        Zeroizing::new(serde_json::to_vec(&plain).unwrap_or_default())
    }

    /// The keyed fingerprint of this catalog (values included, see module doc).
    pub fn fingerprint(&self, hmac_key: &[u8]) -> Fingerprint {
        let key = hmac::Key::new(hmac::HMAC_SHA256, hmac_key);
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(CATALOG_FORMAT.as_bytes());
        ctx.update(&[0]);
        ctx.update(&self.canonical_bytes());
        Fingerprint(hex::encode(ctx.sign().as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use vigo_secrets::SecretPath;

    use super::*;
    use crate::CatalogSecret;

    fn catalog(value: &str) -> Catalog {
        let mut c = Catalog::empty("db1");
        c.secrets.insert(
            SecretPath::parse("a/b").unwrap(),
            CatalogSecret {
                version: 1,
                value: Some(value.into()),
            },
        );
        c
    }

    #[test]
    fn fingerprint_is_keyed_and_tracks_values() {
        let a = catalog("one").fingerprint(b"key");
        assert_eq!(a, catalog("one").fingerprint(b"key"));
        assert_ne!(a, catalog("two").fingerprint(b"key"));
        assert_ne!(a, catalog("one").fingerprint(b"other key"));
        assert_eq!(a.as_str().len(), 64);
        assert!(!a.as_str().contains("one"));
    }

    #[test]
    fn hex_input_is_checked() {
        assert!(Fingerprint::from_hex(&"ab".repeat(32)).is_some());
        assert!(Fingerprint::from_hex("abc").is_none());
        assert!(Fingerprint::from_hex(&"zz".repeat(32)).is_none());
    }
}
