//! Helpers shared by the compiler's test binaries and benchmark.

use std::collections::BTreeMap;

use vigo_compiler::ConfigRepo;
use vigo_secrets::{SecretPath, SecretValue, VersionedSecret};

/// A value for every secret `repo` references: `value(path)` gives its
/// text and version.
pub(crate) fn secrets_for(
    repo: &ConfigRepo,
    value: impl Fn(&SecretPath) -> (String, u64),
) -> BTreeMap<SecretPath, VersionedSecret> {
    repo.referenced_secrets()
        .into_iter()
        .map(|p| {
            let (text, version) = value(&p);
            let value = SecretValue::new(text);
            (p, VersionedSecret { value, version })
        })
        .collect()
}
