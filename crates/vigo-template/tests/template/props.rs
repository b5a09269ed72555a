//! Property tests: no input makes `parse` or `render` panic, and plain text
//! renders to itself.

use proptest::prelude::*;
use vigo_template::{RenderOptions, Template};

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
