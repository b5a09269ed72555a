//! Fuzz target: parse arbitrary text as a template and, when it parses,
//! render it against data holding every kind of value, a secret included,
//! with and without `secret_file`. Any panic is a bug; errors are fine.
//! A template without actions must render to itself.

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use vigo_secrets::SecretPath;
use vigo_template::{RenderOptions, Template, Value};

fn data() -> Value {
    let mut vars = BTreeMap::new();
    if let Ok(path) = SecretPath::parse("vigo/fuzz/secret") {
        vars.insert("secret".to_owned(), Value::Secret(path));
    }
    vars.insert("name".to_owned(), Value::from("web"));
    vars.insert("port".to_owned(), Value::Int(8080));
    vars.insert("ratio".to_owned(), Value::Float(0.5));
    vars.insert("on".to_owned(), Value::Bool(true));
    vars.insert("nothing".to_owned(), Value::Null);
    vars.insert(
        "list".to_owned(),
        Value::List(vec![Value::from("a"), Value::Int(2), Value::Null]),
    );
    let mut envoy = BTreeMap::new();
    envoy.insert("Name".to_owned(), Value::from("db1"));
    let mut root = BTreeMap::new();
    root.insert("Vars".to_owned(), Value::Map(vars));
    root.insert("Envoy".to_owned(), Value::Map(envoy));
    Value::Map(root)
}

fuzz_target!(|input: &str| {
    let Ok(template) = Template::parse(input) else {
        return;
    };
    let data = data();
    for allow_secret_file in [false, true] {
        let result = template.render(&data, RenderOptions { allow_secret_file });
        if template.is_literal() {
            let text = result.ok().and_then(|out| out.plain_text());
            assert_eq!(text.as_deref(), Some(input));
        }
    }
});
