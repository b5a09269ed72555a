//! `vigocli check`: validate every module as it would be compiled.

use std::collections::{BTreeMap, BTreeSet};

use vigo_proto::facts::Facts;
use vigo_secrets::{SecretPath, VersionedSecret};

use crate::compile::{FactsMode, Selection};
use crate::diagnostics::Diagnostics;
use crate::repo::ConfigRepo;

impl ConfigRepo {
    /// Validates every module as it would compile, returning every problem
    /// found (empty: the repository is sound).
    ///
    /// Templates are rendered against stand-in facts
    /// ([`Facts::stand_in`]): every built-in fact is present, a key read in
    /// `.Facts.custom` or `.Facts.networking.interfaces` is taken as
    /// present (only the envoys know those), and anything else read in
    /// `.Facts` is an unknown fact.
    ///
    /// For each node entry, its `match` pattern (or, without one, the
    /// stand-in's name `envoy.example`) stands in for an envoy name and its
    /// `match_facts` values are set in the stand-in facts: the entry itself
    /// and every entry that applies to that name and those facts count, as
    /// they would for a real envoy, and the resulting catalog is compiled.
    /// Modules that no entry names or includes are compiled alone with
    /// their own `vars:` defaults, so a var they use without a default is
    /// reported as missing. `secrets` should hold every path of
    /// [`ConfigRepo::referenced_secrets`]; a missing one is reported.
    pub fn check(&self, secrets: &BTreeMap<SecretPath, VersionedSecret>) -> Diagnostics {
        let mut all = Diagnostics::default();
        let base = Facts::stand_in().to_json();
        for (i, entry) in self.entries.iter().enumerate() {
            let stand_in = entry.pattern.clone().unwrap_or_else(|| base_name(&base));
            let mut facts = base.clone();
            for m in &entry.facts {
                set_path(&mut facts, &m.path, m.expected.clone().into());
            }
            let selected = self
                .entries
                .iter()
                .enumerate()
                .filter(|(j, e)| *j == i || e.applies(&stand_in, &facts))
                .map(|(_, e)| e);
            let selection = Selection::from_entries(selected);
            if let Err(d) =
                self.compile_selection(&stand_in, &facts, &selection, secrets, FactsMode::StandIn)
            {
                all.extend(d);
            }
        }
        let listed: Vec<String> = self
            .entries
            .iter()
            .flat_map(|e| e.roles.iter().cloned())
            .collect();
        let named: BTreeSet<String> = self.expand_includes(&listed).into_iter().collect();
        for role in self.modules.keys().filter(|r| !named.contains(*r)) {
            let selection = Selection {
                roles: vec![role.clone()],
                vars: BTreeMap::new(),
            };
            if let Err(d) = self.compile_selection(
                &format!("{role}.example"),
                &base,
                &selection,
                secrets,
                FactsMode::StandIn,
            ) {
                all.extend(d);
            }
        }
        all.dedup();
        all
    }
}

/// The stand-in envoy's name: the stand-in facts' `fqdn`.
fn base_name(facts: &serde_json::Map<String, serde_json::Value>) -> String {
    facts
        .get("fqdn")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("envoy.example")
        .to_owned()
}

/// Sets the value at a dotted path, making maps on the way.
fn set_path(
    facts: &mut serde_json::Map<String, serde_json::Value>,
    path: &str,
    value: serde_json::Value,
) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let Some(last) = parts.pop() else {
        return;
    };
    let mut at = facts;
    for part in parts {
        let next = at
            .entry(part.to_owned())
            .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
        if !next.is_object() {
            *next = serde_json::Value::Object(serde_json::Map::new());
        }
        let serde_json::Value::Object(map) = next else {
            return;
        };
        at = map;
    }
    at.insert(last.to_owned(), value);
}
