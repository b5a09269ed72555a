//! Vars: from YAML values to template values, with `secret:` references
//! turned into opaque [`Value::Secret`] tokens.

use std::collections::{BTreeMap, BTreeSet};

use serde_saphyr::Spanned;
use vigo_secrets::{PathError, SecretPath, SecretRef};
use vigo_template::Value;

use crate::diagnostics::Diagnostic;
use crate::yaml::{Node, SourceFile};

/// Vars by name.
pub(crate) type Vars = BTreeMap<String, Value>;

/// Vars as written in a file, each with its position.
pub(crate) type RawVars = BTreeMap<String, Spanned<Node>>;

/// Converts a file's `vars:` block; an invalid `secret:` path anywhere in a
/// var is an error at that var.
pub(crate) fn convert_vars(file: &SourceFile, raw: RawVars, errors: &mut Vec<Diagnostic>) -> Vars {
    let mut vars = Vars::new();
    for (name, value) in raw {
        match to_value(&file.json(&value)) {
            Ok(v) => {
                vars.insert(name, v);
            }
            Err(e) => errors.push(file.diagnostic(
                file.key_pos(&name, &value),
                None,
                format!("var '{name}': {e}"),
            )),
        }
    }
    vars
}

/// One YAML value as a template value. Strings that start with `secret:`
/// become [`Value::Secret`].
pub(crate) fn to_value(json: &serde_json::Value) -> Result<Value, PathError> {
    convert(json, true)
}

/// Host data (an envoy's facts) as a template value: every string stays
/// plain text, even one that starts with `secret:`, so that whoever writes
/// the data can never name a secret into a catalog.
pub(crate) fn plain_value(json: &serde_json::Value) -> Value {
    // Without secret recognition nothing can fail.
    convert(json, false).unwrap_or(Value::Null)
}

fn convert(json: &serde_json::Value, secrets: bool) -> Result<Value, PathError> {
    Ok(match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) if secrets => match SecretRef::recognise(s)? {
            Some(r) => Value::Secret(r.into_path()),
            None => Value::Str(s.clone()),
        },
        serde_json::Value::String(s) => Value::Str(s.clone()),
        serde_json::Value::Array(items) => Value::List(
            items
                .iter()
                .map(|v| convert(v, secrets))
                .collect::<Result<_, _>>()?,
        ),
        serde_json::Value::Object(map) => Value::Map(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), convert(v, secrets)?)))
                .collect::<Result<_, PathError>>()?,
        ),
    })
}

/// Overlays `top` on `base`: a var in `top` replaces the whole var of the
/// same name in `base` (no deep merge).
pub(crate) fn overlay(base: &mut Vars, top: &Vars) {
    for (k, v) in top {
        base.insert(k.clone(), v.clone());
    }
}

/// Every secret path in `vars`, nested values included.
pub(crate) fn collect_secrets(vars: &Vars, into: &mut BTreeSet<SecretPath>) {
    fn walk(value: &Value, into: &mut BTreeSet<SecretPath>) {
        match value {
            Value::Secret(p) => {
                into.insert(p.clone());
            }
            Value::List(items) => items.iter().for_each(|v| walk(v, into)),
            Value::Map(map) => map.values().for_each(|v| walk(v, into)),
            Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) | Value::Str(_) => {}
        }
    }
    vars.values().for_each(|v| walk(v, into));
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secret_strings_become_tokens_at_any_depth() {
        let v = to_value(&json!({"a": ["secret:vigo/x", "plain"], "n": 3, "b": false})).unwrap();
        let Value::Map(map) = v else {
            panic!("not a map")
        };
        assert_eq!(
            map["a"],
            Value::List(vec![
                Value::Secret(SecretPath::parse("vigo/x").unwrap()),
                Value::Str("plain".into())
            ])
        );
        assert_eq!(map["n"], Value::Int(3));
        assert!(to_value(&json!("secret:../etc/shadow")).is_err());
    }

    #[test]
    fn issue_15_plain_values_hold_no_secret_tokens() {
        let v = plain_value(&json!({"a": ["secret:vigo/x"], "b": "secret:../etc"}));
        let Value::Map(map) = v else {
            panic!("not a map")
        };
        assert_eq!(
            map["a"],
            Value::List(vec![Value::Str("secret:vigo/x".into())])
        );
        assert_eq!(map["b"], Value::Str("secret:../etc".into()));
    }

    #[test]
    fn overlay_replaces_whole_vars() {
        let mut base = Vars::from([("a".into(), Value::Int(1)), ("b".into(), Value::Int(2))]);
        overlay(&mut base, &Vars::from([("b".into(), Value::Int(3))]));
        assert_eq!(base["a"], Value::Int(1));
        assert_eq!(base["b"], Value::Int(3));
    }
}
