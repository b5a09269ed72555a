//! Property tests: no input makes `parse` or `render` panic, and plain text
//! renders to itself.

use std::collections::BTreeMap;

use proptest::prelude::*;
use vigo_secrets::SecretPath;
use vigo_template::{RenderOptions, Template, Value};

use crate::common::data;

/// Fragments that combine into mostly-valid templates, to reach deep into
/// the parser and evaluator.
const FRAGMENTS: &[&str] = &[
    "{{",
    "}}",
    "{{- ",
    " -}}",
    "{{/*",
    "*/}}",
    " ",
    "\n",
    "x",
    "é",
    ".",
    ".Vars",
    ".Vars.name",
    ".Vars.list",
    ".Vars.m",
    ".Vars.users",
    ".Vars.db_password",
    ".Envoy.Name",
    ".nope",
    "$",
    "$x",
    "$x := ",
    "$x = ",
    "$i, $v := ",
    "if ",
    "else ",
    "else if ",
    "with ",
    "range ",
    "end",
    "break",
    "continue",
    "(",
    ")",
    "|",
    ",",
    "\"s\"",
    "`r`",
    "'c'",
    "1",
    "-2",
    "3.5",
    "0x1f",
    "true",
    "nil",
    "and ",
    "or ",
    "not ",
    "len ",
    "index ",
    "print ",
    "printf ",
    "\"%v %d %q\" ",
    "println ",
    "eq ",
    "ne ",
    "lt ",
    "le ",
    "gt ",
    "ge ",
    "slice ",
    "html ",
    "js ",
    "urlquery ",
    "\"%T\" ",
    "0x1.8p1",
    "1_0",
    "'\\xff'",
    "secret_file",
    "{{end}}",
    "{{else}}",
    "{{ range .Vars.list }}",
    "{{ if 1 }}",
    "{{ . }}",
];

fn fragments() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..40).prop_map(|parts| parts.concat())
}

fn parse_and_render(src: &str) {
    if let Ok(template) = Template::parse(src) {
        let data = data();
        for allow_secret_file in [false, true] {
            // Errors are fine; panics are not.
            let _ = template.render(&data, RenderOptions { allow_secret_file });
        }
    }
}

/// Any value a var can hold: extreme numbers, any text, secrets, nesting.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        prop_oneof![
            Just(i64::MIN),
            Just(i64::MAX),
            Just(-1),
            Just(0),
            Just(70_000)
        ]
        .prop_map(Value::Int),
        any::<f64>().prop_map(Value::Float),
        prop_oneof![
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::MIN_POSITIVE),
            Just(f64::MAX),
            Just(-0.0)
        ]
        .prop_map(Value::Float),
        any::<String>().prop_map(Value::Str),
        "[a-z]{1,8}(/[a-z]{1,8}){1,2}".prop_map(|p| {
            Value::Secret(SecretPath::parse(&p).expect("generated paths are valid"))
        }),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            prop::collection::btree_map("[a-c]", inner, 0..4).prop_map(Value::Map),
        ]
    })
}

/// `.Vars` with random values under the names the fragments use.
fn random_data() -> impl Strategy<Value = Value> {
    prop::collection::vec(value(), 4).prop_map(|values| {
        let vars: BTreeMap<String, Value> = ["a", "b", "c", "d"]
            .into_iter()
            .map(str::to_owned)
            .zip(values)
            .collect();
        Value::Map(BTreeMap::from([
            ("Vars".to_owned(), Value::Map(vars)),
            (
                "Envoy".to_owned(),
                Value::Map(BTreeMap::from([(
                    "Name".to_owned(),
                    Value::Str("db1".to_owned()),
                )])),
            ),
        ]))
    })
}

/// A width or precision: mostly small, often past every limit.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..20).prop_map(|n| n.to_string()),
        (0u64..200_000).prop_map(|n| n.to_string()),
        Just("65536".to_owned()),
        Just("70000".to_owned()),
        Just("99999999999999999999999".to_owned()),
        Just("*".to_owned()),
    ]
}

/// One `printf` verb with flags, width and precision.
fn verb() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(vec!["-", "+", "#", "0", " "]), 0..3),
        prop::option::of(number()),
        prop::option::of(prop::option::of(number())),
        prop::sample::select(vec![
            "v", "s", "q", "d", "b", "o", "O", "x", "X", "c", "U", "t", "e", "E", "f", "F", "g",
            "G", "T", "%", "z", "é", "",
        ]),
    )
        .prop_map(|(flags, width, precision, verb)| {
            let mut out = format!("%{}", flags.concat());
            out.push_str(width.as_deref().unwrap_or(""));
            if let Some(precision) = precision {
                out.push('.');
                out.push_str(precision.as_deref().unwrap_or(""));
            }
            out.push_str(verb);
            out
        })
}

/// A `printf` format: verbs between bits of text.
fn printf_format() -> impl Strategy<Value = String> {
    let part = prop_oneof![verb(), verb(), "[a-z %\\\n]{0,3}"];
    prop::collection::vec(part, 0..5).prop_map(|parts| parts.concat())
}

/// Templates over the random data: fields, functions, control structures and
/// `printf` with random formats and arguments.
fn random_template() -> impl Strategy<Value = String> {
    let operand = prop_oneof![
        prop::sample::select(vec![
            ".Vars.a",
            ".Vars.b",
            ".Vars.c",
            ".Vars.d",
            ".",
            "$",
            ".Vars",
            ".Envoy.Name",
            "(index .Vars \"a\")",
            "(len .Vars.b)",
            "1.5",
            "-7",
            "70000",
            "\"s\"",
            "nil",
            "true",
            "9223372036854775807",
            "-9223372036854775808",
            "1e308",
            "0x7fffffffffffffff",
            "0x1.fffffffffffffp1023",
            "0x1p-1074",
            "3",
        ])
        .prop_map(str::to_owned),
        any::<i64>().prop_map(|n| n.to_string()),
        printf_format().prop_map(|f| format!("{f:?}")),
    ];
    let command = (
        prop::sample::select(vec![
            "printf", "printf", "printf", "print", "println", "len", "index", "eq", "ne", "lt",
            "le", "gt", "ge", "and", "or", "not", "slice", "slice", "html", "js", "urlquery", "",
        ]),
        prop::collection::vec(operand.clone(), 0..4),
    )
        .prop_map(|(func, args)| format!("{func} {}", args.join(" ")));
    let printf = (
        printf_format(),
        prop::collection::vec(operand.clone(), 0..4),
    )
        .prop_map(|(format, args)| format!("{{{{ printf {format:?} {} }}}}", args.join(" ")))
        .boxed();
    let action = prop_oneof![
        printf.clone(),
        printf,
        command.clone().prop_map(|c| format!("{{{{ {c} }}}}")),
        command
            .clone()
            .prop_map(|c| format!("{{{{ if {c} }}}}x{{{{ else }}}}y{{{{ end }}}}")),
        command.clone().prop_map(|c| format!(
            "{{{{ range $i, $v := {c} }}}}{{{{ printf \"%v%d\" $v $i }}}}{{{{ end }}}}"
        )),
        command.prop_map(|c| format!("{{{{ with {c} }}}}{{{{ . }}}}{{{{ end }}}}")),
        Just("{{ range .Vars.a }}{{ . }}{{ end }}".to_owned()),
        "[a-z\\n ]{0,4}",
    ];
    prop::collection::vec(action, 1..6).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// The server renders every envoy's catalog on a background task: a
    /// panic there (once: `printf "%.70000f"`) stops rotations for good.
    #[test]
    fn issue_12_item_4_random_templates_and_data_never_panic(
        src in random_template(),
        data in random_data(),
    ) {
        if let Ok(template) = Template::parse(&src) {
            for allow_secret_file in [false, true] {
                let _ = template.render(&data, RenderOptions { allow_secret_file });
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(src in "\\PC*") {
        parse_and_render(&src);
    }

    #[test]
    fn arbitrary_bytes_never_panic(src in any::<String>()) {
        parse_and_render(&src);
    }

    #[test]
    fn template_soup_never_panics(src in fragments()) {
        parse_and_render(&src);
    }

    #[test]
    fn plain_text_renders_to_itself(src in any::<String>().prop_filter("no actions", |s| !s.contains("{{"))) {
        let template = Template::parse(&src).expect("plain text parses");
        prop_assert!(template.is_literal());
        let out = template.render(&data(), RenderOptions::default()).expect("plain text renders");
        prop_assert_eq!(out.plain_text(), Some(src));
    }
}
