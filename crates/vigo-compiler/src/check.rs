//! `vigocli check`: validate every module as it would be compiled.

use std::collections::{BTreeMap, BTreeSet};

use vigo_secrets::{SecretPath, VersionedSecret};

use crate::compile::Selection;
use crate::diagnostics::Diagnostics;
use crate::repo::ConfigRepo;

impl ConfigRepo {
    /// Validates every module as it would compile, returning every problem
    /// found (empty: the repository is sound).
    ///
    /// For each node entry, its `match` pattern stands in for an envoy
    /// name: the entry itself and every entry whose pattern matches that
    /// name apply, as they would for a real envoy of that name, and the
    /// resulting catalog is compiled. Modules that no entry names are
    /// compiled alone with their own `vars:` defaults, so a var they use
    /// without a default is reported as missing. `secrets` should hold every
    /// path of [`ConfigRepo::referenced_secrets`]; a missing one is reported.
    pub fn check(&self, secrets: &BTreeMap<SecretPath, VersionedSecret>) -> Diagnostics {
        let mut all = Diagnostics::default();
        for (i, entry) in self.entries.iter().enumerate() {
            let stand_in = entry.pattern.as_str();
            let selected = self
                .entries
                .iter()
                .enumerate()
                .filter(|(j, e)| *j == i || e.matcher.is_match(stand_in))
                .map(|(_, e)| e);
            let selection = Selection::from_entries(selected);
            if let Err(d) = self.compile_selection(stand_in, &selection, secrets) {
                all.extend(d);
            }
        }
        let named: BTreeSet<&String> = self.entries.iter().flat_map(|e| &e.roles).collect();
        for role in self.modules.keys().filter(|r| !named.contains(r)) {
            let selection = Selection {
                roles: vec![role.clone()],
                vars: BTreeMap::new(),
            };
            if let Err(d) = self.compile_selection(&format!("{role}.example"), &selection, secrets)
            {
                all.extend(d);
            }
        }
        all.dedup();
        all
    }
}
