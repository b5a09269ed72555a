//! Compiled catalogs, cached per envoy for the current [`RepoSnapshot`].
//!
//! Most check-ins are "unchanged": the envoy sends the fingerprint of the
//! catalog it holds and the server only has to compare. Compiling once per
//! envoy and snapshot (and fingerprinting once) keeps that path cheap. The
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
    /// The catalog of `envoy` under `snapshot`, compiled on first use.
    pub(crate) fn get(
        &self,
        snapshot: &Arc<RepoSnapshot>,
        envoy: &str,
        hmac_key: &SecretValue,
        metrics: &Metrics,
    ) -> Result<Arc<CompiledCatalog>, Diagnostics> {
        if let Some(found) = self.lookup(snapshot, envoy) {
            return Ok(found);
        }
        let started = Instant::now();
        let compiled = snapshot.repo.compile(envoy, &snapshot.secrets)?;
        let fingerprint = compiled
            .catalog
            .fingerprint(hmac_key.expose_secret().as_bytes());
        metrics.compile_time(started.elapsed());
        let entry = Arc::new(CompiledCatalog {
            catalog: compiled.catalog,
            fingerprint,
            index: compiled.index,
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

    fn lookup(&self, snapshot: &Arc<RepoSnapshot>, envoy: &str) -> Option<Arc<CompiledCatalog>> {
        let mut entries = self.lock();
        let current = Arc::downgrade(snapshot);
        if !Weak::ptr_eq(&entries.snapshot, &current) {
            entries.snapshot = current;
            entries.by_envoy.clear();
            return None;
        }
        entries.by_envoy.get(envoy).cloned()
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
        let first = Arc::new(RepoSnapshot::default());
        let a = cache.get(&first, "db1", &key, &metrics).unwrap();
        let b = cache.get(&first, "db1", &key, &metrics).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "second call is served from the cache");

        let second = Arc::new(RepoSnapshot::default());
        let c = cache.get(&second, "db1", &key, &metrics).unwrap();
        assert!(!Arc::ptr_eq(&a, &c), "a new snapshot compiles again");
        assert_eq!(a.fingerprint, c.fingerprint, "same (empty) repository");

        cache.clear();
        let d = cache.get(&second, "db1", &key, &metrics).unwrap();
        assert!(!Arc::ptr_eq(&c, &d));
    }
}
