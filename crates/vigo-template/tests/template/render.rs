//! Table-driven rendering: each expected text is what Go's `text/template`
//! prints for the same template and data.

use vigo_template::{RenderOptions, Template};

use crate::common::{assert_renders, data, render_with};

const CASES: &[(&str, &str)] = &[
    // Text and fields.
    ("plain text } {", "plain text } {"),
    ("", ""),
    ("héllo {{ .Vars.name }}", "héllo web"),
    ("{{.Envoy.Name}}", "db1.example.com"),
    ("{{ .Vars.port }}", "8080"),
    ("{{ .Vars.ratio }}", "0.5"),
    ("{{ .Vars.enabled }}/{{ .Vars.disabled }}", "true/false"),
    ("[{{ .Vars.nothing }}]", "[]"),
    ("{{ .Vars.list }}", "[a b c]"),
    ("{{ .Vars.m }}", "map[a:1 b:2]"),
    ("{{ .Vars.empty_list }}{{ .Vars.empty_map }}", "[]map[]"),
    ("{{ .Vars.nested.inner.leaf }}", "x"),
    ("{{ .Vars.m.a }}", "1"),
    ("{{ $.Vars.name }}", "web"),
    // Trim markers and comments.
    ("a  {{- .Vars.name -}}  \n b", "awebb"),
    ("a \r\n\t{{- 1 }}", "a1"),
    ("{{ 1 -}}\n\n  x", "1x"),
    ("a {{- /* comment */ -}} b", "ab"),
    ("a {{/* comment */}} b", "a  b"),
    ("a {{/* multi\nline */}}b", "a b"),
    ("{{ 3 }}-{{ -4 }}", "3--4"),
    (
        "list:\n{{- range .Vars.list }}\n  - {{ . }}\n{{- end }}\n",
        "list:\n  - a\n  - b\n  - c\n",
    ),
    // if / else if / else.
    ("{{ if .Vars.enabled }}yes{{ else }}no{{ end }}", "yes"),
    ("{{ if .Vars.disabled }}yes{{ else }}no{{ end }}", "no"),
    (
        "{{ if .Vars.empty }}s{{ else if .Vars.zero }}z{{ else if .Vars.list }}l{{ else }}n{{ end }}",
        "l",
    ),
    (
        "{{ if .Vars.empty_list }}a{{ else if .Vars.empty_map }}b{{ else if .Vars.nothing }}c{{ else }}d{{ end }}",
        "d",
    ),
    (
        "{{ if 0.0 }}a{{ else }}b{{ end }}{{ if 0.1 }}c{{ end }}",
        "bc",
    ),
    ("{{ if not .Vars.disabled }}ok{{ end }}", "ok"),
    (
        "{{ if $x := .Vars.name }}{{ $x }}{{ else }}{{ $x }}none{{ end }}",
        "web",
    ),
    ("{{ if eq .Vars.port 8080 }}http-alt{{ end }}", "http-alt"),
    // with / else with / else.
    ("{{ with .Vars.name }}{{ . }}{{ end }}", "web"),
    ("{{ with .Vars.empty }}x{{ else }}y{{ end }}", "y"),
    (
        "{{ with .Vars.empty }}x{{ else with .Vars.name }}{{ . }}{{ end }}",
        "web",
    ),
    (
        "{{ with .Vars.zero }}x{{ else with .Vars.nothing }}y{{ else }}z{{ end }}",
        "z",
    ),
    (
        "{{ with $x := .Vars.name }}{{ $x }}{{ . }}{{ end }}",
        "webweb",
    ),
    (
        "{{ with .Vars.nested }}{{ .inner.leaf }}{{ $.Envoy.Name }}{{ end }}",
        "xdb1.example.com",
    ),
    ("{{ with 0 }}x{{ end }}", ""),
    // range.
    ("{{ range .Vars.list }}[{{ . }}]{{ end }}", "[a][b][c]"),
    (
        "{{ range $i, $v := .Vars.list }}{{ $i }}:{{ $v }} {{ end }}",
        "0:a 1:b 2:c ",
    ),
    (
        "{{ range $k, $v := .Vars.m }}{{ $k }}={{ $v }};{{ end }}",
        "a=1;b=2;",
    ),
    ("{{ range .Vars.m }}{{ . }}{{ end }}", "12"),
    ("{{ range $v := .Vars.nums }}{{ $v }}{{ end }}", "312"),
    (
        "{{ range .Vars.empty_list }}x{{ else }}empty{{ end }}",
        "empty",
    ),
    (
        "{{ range .Vars.empty_map }}x{{ else }}empty{{ end }}",
        "empty",
    ),
    ("{{ range .Vars.nothing }}x{{ else }}nil{{ end }}", "nil"),
    ("{{ range 3 }}{{ . }}{{ end }}", "012"),
    ("{{ range $i := 2 }}{{ $i }}{{ end }}", "01"),
    ("{{ range 0 }}x{{ else }}none{{ end }}", "none"),
    (
        "{{ range .Vars.users }}{{ .name }}@{{ $.Envoy.Name }} {{ end }}",
        "ann@db1.example.com bob@db1.example.com ",
    ),
    (
        "{{ range .Vars.list }}{{ if eq . \"b\" }}{{ continue }}{{ end }}{{ . }}{{ end }}",
        "ac",
    ),
    (
        "{{ range .Vars.list }}{{ if eq . \"b\" }}{{ break }}{{ end }}{{ . }}{{ end }}",
        "a",
    ),
    (
        "{{ range .Vars.nums }}{{ range $.Vars.list }}{{ if eq . \"b\" }}{{ break }}{{ end }}{{ . }}{{ end }};{{ end }}",
        "a;a;a;",
    ),
    // Variables and scoping.
    ("{{ $x := .Vars.name }}{{ $x }}", "web"),
    ("{{ $x := 1 }}{{ $x = 2 }}{{ $x }}", "2"),
    (
        "{{ $x := \"outer\" }}{{ if true }}{{ $x := \"inner\" }}{{ $x }}{{ end }}{{ $x }}",
        "innerouter",
    ),
    (
        "{{ $x := 0 }}{{ range .Vars.nums }}{{ $x = . }}{{ end }}{{ $x }}",
        "2",
    ),
    ("{{ $u := index .Vars.users 1 }}{{ $u.name }}", "bob"),
    ("{{ with .Vars.list }}{{ $ | len }}{{ end }}", "2"),
    // Functions.
    (
        "{{ len .Vars.list }} {{ .Vars.list | len }} {{ len .Vars.name }} {{ len .Vars.m }}",
        "3 3 3 2",
    ),
    ("{{ len \"héllo\" }}", "6"),
    ("{{ index .Vars.list 1 }}", "b"),
    ("{{ index .Vars \"name\" }}", "web"),
    ("[{{ index .Vars \"nope\" }}]", "[]"),
    ("{{ if index .Vars \"nope\" }}y{{ else }}n{{ end }}", "n"),
    ("{{ index .Vars.users 0 \"name\" }}", "ann"),
    ("{{ index .Vars.list }}", "[a b c]"),
    (
        "{{ and 1 0 2 }}|{{ and 1 2 }}|{{ or 0 \"\" \"x\" }}|{{ or 0 \"\" }}|",
        "0|2|x||",
    ),
    (
        "{{ and false .Vars.nope }}{{ or true .Vars.nope }}",
        "falsetrue",
    ),
    ("{{ not 0 }}{{ not \"a\" }}", "truefalse"),
    ("{{ print \"a\" 1 2 \"b\" }}", "a1 2b"),
    ("{{ print nil }}", "<nil>"),
    ("{{ println \"a\" 1 }}", "a 1\n"),
    (
        "{{ printf \"%s-%d-%v-%q\" \"a\" 3 true \"b\" }}",
        "a-3-true-\"b\"",
    ),
    ("{{ printf \"%5.2f|%-4d|%%\" 3.14159 7 }}", " 3.14|7   |%"),
    ("{{ \"x\" | printf \"%s!\" }}", "x!"),
    ("{{ .Vars.port | printf \"%05d\" }}", "08080"),
    (
        "{{ printf \"%v %v\" .Vars.list .Vars.m }}",
        "[a b c] map[a:1 b:2]",
    ),
    ("{{ printf \"%d\" \"x\" }}", "%!d(string=x)"),
    (
        "{{ eq .Vars.name \"web\" }} {{ eq 1 2 3 1 }} {{ ne 1 2 }}",
        "true true true",
    ),
    (
        "{{ lt 1 2 }} {{ le 2 2 }} {{ gt \"b\" \"a\" }} {{ ge 1.5 2.5 }}",
        "true true true false",
    ),
    (
        "{{ eq nil .Vars.nothing }} {{ eq .Vars.nothing \"\" }}",
        "true false",
    ),
    ("{{ \"a\" | eq \"a\" }}", "true"),
    // Literals.
    ("{{ \"a\\tb\\u00e9\" }}", "a\tbé"),
    ("{{ `raw\\n` }}", "raw\\n"),
    (
        "{{ 0x10 }} {{ 0o17 }} {{ 0b11 }} {{ 1_000 }}",
        "16 15 3 1000",
    ),
    (
        "{{ 1e3 }} {{ 1.0 }} {{ 2.50 }} {{ .5 }} {{ 1e6 }}",
        "1000 1 2.5 0.5 1e+06",
    ),
    ("{{ 'a' }} {{ true }} {{ -5 }}", "97 true -5"),
    // Parentheses and chains.
    ("{{ (index .Vars.users 1).name }}", "bob"),
    ("{{ printf \"%s\" (print 1 2) }}", "1 2"),
    ("{{ len (index .Vars \"list\") }}", "3"),
    ("{{ (.Vars.nested).inner.leaf }}", "x"),
    // Newlines inside actions.
    (
        "{{ printf \"%s-%s\"\n   .Vars.name\n   .Envoy.Name }}",
        "web-db1.example.com",
    ),
];

#[test]
fn renders_like_go() {
    assert_renders(CASES);
}

#[test]
fn templates_render_many_times() {
    let template = Template::parse("{{ range .Vars.list }}{{ . }}{{ end }}").expect("parses");
    let data = data();
    for _ in 0..3 {
        let out = template
            .render(&data, RenderOptions::default())
            .expect("renders");
        assert_eq!(out.plain_text().as_deref(), Some("abc"));
    }
}

#[test]
fn secret_file_is_gated() {
    let allowed = RenderOptions {
        allow_secret_file: true,
    };
    let out = render_with("cmd --file {{secret_file}}", &data(), allowed).expect("renders");
    assert_eq!(
        out.plain_text().as_deref(),
        Some("cmd --file {{secret_file}}")
    );
    let out = render_with("{{- secret_file | printf \"%q\" }}", &data(), allowed).expect("renders");
    assert_eq!(out.plain_text().as_deref(), Some("\"{{secret_file}}\""));

    let e = render_with(
        "cmd\n  --file {{ secret_file }}",
        &data(),
        RenderOptions::default(),
    )
    .expect_err("not allowed");
    assert_eq!((e.line, e.column), (2, 13));
    assert_eq!(
        e.message,
        "function \"secret_file\" is only available in an exec command"
    );
    let template = Template::parse("{{ secret_file }}").expect("parses anywhere");
    assert!(template.uses_secret_file());
}

#[test]
fn literal_templates_report_it() {
    let template = Template::parse("no actions } here").expect("parses");
    assert!(template.is_literal());
    assert!(!Template::parse("{{ 1 }}").expect("parses").is_literal());
}
