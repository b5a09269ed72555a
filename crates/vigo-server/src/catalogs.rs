//! Compiled catalogs, cached per envoy for the current [`RepoSnapshot`].
//!
//! Most check-ins are "unchanged": the envoy sends the fingerprint of the
//! catalog it holds and the server only has to compare. Compiling once per
//! envoy and snapshot (and fingerprinting once) keeps that path cheap.
//! A catalog also depends on the envoy's facts: each entry keeps the
//! SHA-256 of the canonical facts it was compiled with, and facts that
//! differ from it compile again (and replace the entry), with no query. The
//! entry keeps the compiler's [`SecretIndex`] too, so the rotation flow and
//! `who-uses` find who uses a secret without compiling again. The cache
//! belongs to one snapshot: replacing the snapshot (a config reload or a
//! rotation) empties it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use vigo_catalog::{Catalog, Fingerprint};
use vigo_compiler::{Diagnostics, SecretIndex};
use vigo_secrets::{SecretPath, SecretValue};

use crate::metrics::Metrics;
use crate::repo::RepoSnapshot;

/// One envoy's compiled catalog, its fingerprint and its secret index.
#[derive(Debug)]
pub(crate) struct CompiledCatalog {
    /// The catalog, secret values included.
    pub catalog: Catalog,
    /// `catalog.fingerprint(hmac_key)`.
    pub fingerprint: Fingerprint,
    /// Which resources use or watch each secret path.
    pub index: SecretIndex,
    /// SHA-256 of the canonical facts it was compiled with.
    facts_digest: FactsDigest,
}

/// SHA-256 of an envoy's facts in canonical JSON (keys sorted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FactsDigest([u8; 32]);

impl FactsDigest {
    fn of(facts: &serde_json::Value) -> Self {
        // serde_json's map is sorted by key, so the text is canonical; a
        // `Value` always serialises.
        let text = serde_json::to_vec(facts).unwrap_or_default();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &text);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Self(out)
    }
}

impl CompiledCatalog {
    /// Whether any resource uses or watches `path`.
    pub(crate) fn references(&self, path: &SecretPath) -> bool {
        self.index.uses.contains_key(path) || self.index.watches.contains_key(path)
    }
}

/// The cache.
#[derive(Default)]
pub(crate) struct CatalogCache {
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    /// The snapshot the entries were compiled from. A `Weak` keeps the
    /// allocation (so the pointer comparison stays sound) without keeping
    /// an old snapshot's secrets alive.
    snapshot: Weak<RepoSnapshot>,
    by_envoy: HashMap<String, Arc<CompiledCatalog>>,
}

impl CatalogCache {
    /// The catalog of `envoy` with `facts` under `snapshot`, compiled on
    /// first use and whenever the facts differ from the cached entry's.
    pub(crate) fn get(
        &self,
        snapshot: &Arc<RepoSnapshot>,
        envoy: &str,
        facts: &serde_json::Value,
        hmac_key: &SecretValue,
        metrics: &Metrics,
    ) -> Result<Arc<CompiledCatalog>, Diagnostics> {
        let facts_digest = FactsDigest::of(facts);
        if let Some(found) = self.lookup(snapshot, envoy, facts_digest) {
            return Ok(found);
        }
        let started = Instant::now();
        let compiled = snapshot.repo.compile(envoy, facts, &snapshot.secrets)?;
        let fingerprint = compiled
            .catalog
            .fingerprint(hmac_key.expose_secret().as_bytes());
        metrics.compile_time(started.elapsed());
        let entry = Arc::new(CompiledCatalog {
            catalog: compiled.catalog,
            fingerprint,
            index: compiled.index,
            facts_digest,
        });
        let mut entries = self.lock();
        if Weak::ptr_eq(&entries.snapshot, &Arc::downgrade(snapshot)) {
            entries
                .by_envoy
                .insert(envoy.to_owned(), Arc::clone(&entry));
        }
        Ok(entry)
    }

    /// Forgets every entry (the snapshot was replaced).
    pub(crate) fn clear(&self) {
        let mut entries = self.lock();
        entries.snapshot = Weak::new();
        entries.by_envoy.clear();
    }

    fn lookup(
        &self,
        snapshot: &Arc<RepoSnapshot>,
        envoy: &str,
        facts: FactsDigest,
    ) -> Option<Arc<CompiledCatalog>> {
        let mut entries = self.lock();
        let current = Arc::downgrade(snapshot);
        if !Weak::ptr_eq(&entries.snapshot, &current) {
            entries.snapshot = current;
            entries.by_envoy.clear();
            return None;
        }
        entries
            .by_envoy
            .get(envoy)
            .filter(|e| e.facts_digest == facts)
            .cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // Every change is a whole insert, clear or assignment.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for CatalogCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CatalogCache")
            .field("envoys", &self.lock().by_envoy.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_follow_the_snapshot() {
        let cache = CatalogCache::default();
        let metrics = Metrics::new();
        let key = SecretValue::from("k");
        let facts = serde_json::json!({"os": {"family": "debian"}});
        let first = Arc::new(RepoSnapshot::default());
        let a = cache.get(&first, "db1", &facts, &key, &metrics).unwrap();
        let b = cache.get(&first, "db1", &facts, &key, &metrics).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "second call is served from the cache");

        let second = Arc::new(RepoSnapshot::default());
        let c = cache.get(&second, "db1", &facts, &key, &metrics).unwrap();
        assert!(!Arc::ptr_eq(&a, &c), "a new snapshot compiles again");
        assert_eq!(a.fingerprint, c.fingerprint, "same (empty) repository");

        cache.clear();
        let d = cache.get(&second, "db1", &facts, &key, &metrics).unwrap();
        assert!(!Arc::ptr_eq(&c, &d));
    }

    #[test]
    fn issue_15_other_facts_compile_again() {
        let cache = CatalogCache::default();
        let metrics = Metrics::new();
        let key = SecretValue::from("k");
        let snapshot = Arc::new(RepoSnapshot::default());
        let debian = serde_json::json!({"os": {"family": "debian"}});
        let rhel = serde_json::json!({"os": {"family": "rhel"}});
        let a = cache
            .get(&snapshot, "db1", &debian, &key, &metrics)
            .unwrap();
        let b = cache.get(&snapshot, "db1", &rhel, &key, &metrics).unwrap();
        assert!(!Arc::ptr_eq(&a, &b), "changed facts compile again");
        let c = cache.get(&snapshot, "db1", &rhel, &key, &metrics).unwrap();
        assert!(Arc::ptr_eq(&b, &c), "the new facts' entry is cached");
        // Key order does not matter: the facts are compared canonically.
        let reordered: serde_json::Value =
            serde_json::from_str(r#"{"os":{"family":"rhel"}}"#).unwrap();
        let d = cache
            .get(&snapshot, "db1", &reordered, &key, &metrics)
            .unwrap();
        assert!(Arc::ptr_eq(&c, &d));
    }
}
