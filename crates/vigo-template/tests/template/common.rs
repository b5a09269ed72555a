//! Shared fixture data and render helpers.

use std::collections::BTreeMap;

use vigo_secrets::SecretPath;
use vigo_template::{Output, RenderOptions, Template, TemplateError, Value};

pub(crate) fn path(p: &str) -> SecretPath {
    SecretPath::parse(p).expect("valid test secret path")
}

pub(crate) fn secret(p: &str) -> Value {
    Value::Secret(path(p))
}

pub(crate) fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect::<BTreeMap<_, _>>(),
    )
}

pub(crate) fn list(items: Vec<Value>) -> Value {
    Value::List(items)
}

pub(crate) fn s(v: &str) -> Value {
    Value::Str(v.to_owned())
}

/// The data most tests render against: `.Vars` and `.Envoy` as the envoy
/// sees them.
pub(crate) fn data() -> Value {
    map(vec![
        (
            "Vars",
            map(vec![
                ("db_password", secret("vigo/db/password")),
                ("name", s("web")),
                ("port", Value::Int(8080)),
                ("ratio", Value::Float(0.5)),
                ("enabled", Value::Bool(true)),
                ("disabled", Value::Bool(false)),
                ("empty", s("")),
                ("zero", Value::Int(0)),
                ("nothing", Value::Null),
                ("list", list(vec![s("a"), s("b"), s("c")])),
                (
                    "nums",
                    list(vec![Value::Int(3), Value::Int(1), Value::Int(2)]),
                ),
                ("empty_list", list(vec![])),
                ("m", map(vec![("b", Value::Int(2)), ("a", Value::Int(1))])),
                ("empty_map", map(vec![])),
                (
                    "users",
                    list(vec![
                        map(vec![("name", s("ann")), ("pw", secret("vigo/users/ann"))]),
                        map(vec![("name", s("bob")), ("pw", secret("vigo/users/bob"))]),
                    ]),
                ),
                ("nested", map(vec![("inner", map(vec![("leaf", s("x"))]))])),
                ("secrets", list(vec![secret("vigo/a"), secret("vigo/b")])),
            ]),
        ),
        (
            "Envoy",
            map(vec![
                ("Name", s("db1.example.com")),
                ("Tags", list(vec![s("db"), s("prod")])),
            ]),
        ),
    ])
}

pub(crate) fn render_with(
    src: &str,
    data: &Value,
    options: RenderOptions,
) -> Result<Output, TemplateError> {
    Template::parse(src)?.render(data, options)
}

pub(crate) fn render(src: &str) -> Result<Output, TemplateError> {
    render_with(src, &data(), RenderOptions::default())
}

/// Renders `src` and returns its text; panics if it fails or holds a secret.
pub(crate) fn text(src: &str) -> String {
    match render(src) {
        Ok(out) => out
            .plain_text()
            .unwrap_or_else(|| panic!("{src:?} rendered a secret: {out:?}")),
        Err(e) => panic!("{src:?} failed: {e}"),
    }
}

/// The error `src` fails with, at parse or render time.
pub(crate) fn error(src: &str) -> TemplateError {
    match render(src) {
        Ok(out) => panic!("{src:?} rendered {out:?}, expected an error"),
        Err(e) => e,
    }
}

/// Renders every `(template, text)` case and fails listing each mismatch.
pub(crate) fn assert_renders(cases: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (src, want) in cases {
        match std::panic::catch_unwind(|| text(src)) {
            Ok(got) if got == *want => {}
            Ok(got) => failures.push(format!("{src:?}: got {got:?}, want {want:?}")),
            Err(_) => failures.push(format!("{src:?}: failed")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Checks every `(template, line, column, message)` error case and fails
/// listing each mismatch.
pub(crate) fn assert_errors(cases: &[(&str, usize, usize, &str)]) {
    let mut failures = Vec::new();
    for (src, line, column, message) in cases {
        match std::panic::catch_unwind(|| error(src)) {
            Ok(e) if (e.line, e.column, e.message.as_str()) == (*line, *column, *message) => {}
            Ok(e) => failures.push(format!(
                "{src:?}:\n   got {}:{} {}\n  want {line}:{column} {message}",
                e.line, e.column, e.message
            )),
            Err(_) => failures.push(format!("{src:?}: rendered without error")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
