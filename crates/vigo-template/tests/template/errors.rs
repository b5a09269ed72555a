//! Parse and render errors: exact 1-based line and column, exact message.

use crate::common::{assert_errors, error};

/// (template, line, column, message)
const CASES: &[(&str, usize, usize, &str)] = &[
    // Missing vars and keys (render time), also in if/with.
    (
        "line1\n  {{ .Vars.nope }}",
        2,
        6,
        "missing var 'nope' (.Vars.nope)",
    ),
    (
        "{{ if .Vars.nope }}x{{ end }}",
        1,
        7,
        "missing var 'nope' (.Vars.nope)",
    ),
    (
        "{{ with .Vars.nope }}x{{ end }}",
        1,
        9,
        "missing var 'nope' (.Vars.nope)",
    ),
    (
        "{{ $.Vars.nope.x }}",
        1,
        4,
        "missing var 'nope' ($.Vars.nope)",
    ),
    (
        "{{ .Envoy.Nam }}",
        1,
        4,
        "missing key 'Nam' in .Envoy (.Envoy.Nam)",
    ),
    ("{{ .Nope }}", 1, 4, "missing key 'Nope' in . (.Nope)"),
    (
        "{{ .Vars.nested.inner.nope }}",
        1,
        4,
        "missing key 'nope' in .Vars.nested.inner (.Vars.nested.inner.nope)",
    ),
    (
        "{{ range .Vars.users }}{{ .nope }}{{ end }}",
        1,
        27,
        "missing key 'nope' in . (.nope)",
    ),
    (
        "{{ $u := index .Vars.users 0 }}{{ $u.nope }}",
        1,
        35,
        "missing key 'nope' in $u ($u.nope)",
    ),
    (
        "{{ (index .Vars.users 0).nope }}",
        1,
        4,
        "missing key 'nope' in (index .Vars.users 0) ((index .Vars.users 0).nope)",
    ),
    ("é{{ .Vars.x }}", 1, 5, "missing var 'x' (.Vars.x)"),
    (
        "{{ .Vars.name.x }}",
        1,
        4,
        "can't evaluate field 'x' in .Vars.name.x: .Vars.name is a string, not a map",
    ),
    (
        "{{ .Vars.port.x }}",
        1,
        4,
        "can't evaluate field 'x' in .Vars.port.x: .Vars.port is an int, not a map",
    ),
    (
        "{{ .Vars.nothing.x }}",
        1,
        4,
        "can't evaluate field 'x' in .Vars.nothing.x: .Vars.nothing is nil",
    ),
    // Functions at render time.
    ("{{ len 3 }}", 1, 4, "error calling len: len of type int"),
    (
        "{{ index .Vars.list 5 }}",
        1,
        4,
        "error calling index: index out of range: the list has 3 elements",
    ),
    (
        "{{ index .Vars.list \"a\" }}",
        1,
        4,
        "error calling index: cannot index a list with a string",
    ),
    (
        "{{ eq 1 \"a\" }}",
        1,
        4,
        "error calling eq: incompatible types for comparison: int and string",
    ),
    (
        "{{ lt true false }}",
        1,
        4,
        "error calling lt: invalid type for comparison: bool",
    ),
    (
        "{{ printf 1 }}",
        1,
        4,
        "error calling printf: the format must be a string, not an int",
    ),
    (
        "\n\n   {{ \"a\" | printf \"%s\" | lt 1 }}",
        3,
        27,
        "error calling lt: incompatible types for comparison: int and string",
    ),
    (
        "{{ range .Vars.name }}{{ end }}",
        1,
        4,
        "range can't iterate over a string",
    ),
    (
        "{{ range $i, $v := 3 }}{{ end }}",
        1,
        4,
        "range over an int takes at most one variable",
    ),
    // Lexing.
    ("x {{ .Vars.name", 1, 3, "unclosed action: missing \"}}\""),
    ("a\n{{/* no end", 2, 1, "unclosed comment: missing \"*/\""),
    ("{{ \"abc }}", 1, 4, "unterminated quoted string"),
    ("{{ .a-b }}", 1, 6, "bad character '-' after a name"),
    ("{{ @ }}", 1, 4, "unrecognized character in action: '@'"),
    // Structure.
    ("{{ end }}", 1, 4, "unexpected {{end}}"),
    ("a\n\n{{- else }}", 3, 5, "unexpected {{else}}"),
    (
        "a\n{{ if 1 }}\n",
        2,
        4,
        "{{if}} at line 2 has no matching {{end}}",
    ),
    (
        "{{ range .Vars.list }}{{ with . }}{{ end }}",
        1,
        4,
        "{{range}} at line 1 has no matching {{end}}",
    ),
    (
        "{{ with 1 }}\n{{ else with 2 }}",
        2,
        9,
        "{{with}} at line 2 has no matching {{end}}",
    ),
    (
        "{{ if 1 }}{{ else }}{{ else }}{{ end }}",
        1,
        24,
        "unexpected {{else}}: the {{if}} at line 1 already had one at line 1",
    ),
    ("{{ break }}", 1, 4, "{{break}} outside {{range}}"),
    (
        "{{ define \"x\" }}{{ end }}",
        1,
        4,
        "{{define}} is not supported in Vigo templates",
    ),
    // Names and commands.
    ("{{ foo 1 }}", 1, 4, "function \"foo\" not defined"),
    (
        "\n\n   {{ printf \"%d\" 1 | call }}",
        3,
        23,
        "function \"call\" not defined",
    ),
    ("{{ $x }}", 1, 4, "undefined variable \"$x\""),
    (
        "{{ len }}",
        1,
        4,
        "wrong number of args for len: want 1 got 0",
    ),
    (
        "{{ .Vars.name 1 }}",
        1,
        4,
        ".Vars.name is not a function and cannot take arguments",
    ),
    (
        "{{ 1 | .Vars.name }}",
        1,
        8,
        "cannot pipe into .Vars.name: only a function can receive a piped value",
    ),
    ("{{ nil }}", 1, 4, "nil is not a command"),
    ("{{ }}", 1, 4, "missing value for command before \"}}\""),
    ("{{ (1 }}", 1, 4, "unclosed left paren"),
];

#[test]
fn errors_have_exact_positions_and_messages() {
    assert_errors(CASES);
}

#[test]
fn display_leads_with_the_position() {
    let e = error("{{ .Vars.nope }}");
    assert_eq!(
        e.to_string(),
        "line 1, column 4: missing var 'nope' (.Vars.nope)"
    );
}

/// `printf` with a huge width or precision once panicked Rust's formatter
/// (and with it the server's rotation worker); it is a positioned error.
#[test]
fn issue_12_item_4_huge_printf_width_is_a_positioned_error() {
    let cases = [
        (
            "{{ printf \"%.70000f\" 1.5 }}",
            1,
            4,
            "error calling printf: precision 70000 is too large; widths and precisions go up to 10000",
        ),
        (
            "x\n  {{ 1.5 | printf \"%70000.2f\" }}",
            2,
            12,
            "error calling printf: width 70000 is too large; widths and precisions go up to 10000",
        ),
        (
            "{{ printf \"%.*e\" 65536 1.5 }}",
            1,
            4,
            "error calling printf: precision 65536 is too large; widths and precisions go up to 10000",
        ),
    ];
    for (src, line, column, message) in cases {
        let e = std::panic::catch_unwind(|| error(src))
            .unwrap_or_else(|_| panic!("{src:?} panicked or rendered"));
        assert_eq!(
            (e.line, e.column, e.message.as_str()),
            (line, column, message),
            "{src:?}"
        );
    }
}
