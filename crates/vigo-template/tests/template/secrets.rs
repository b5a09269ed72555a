//! Secrets: where they land in the output, where they are refused, and that
//! no error text ever carries a value from the data.

use vigo_template::{Piece, RenderOptions, Template, Value};

use crate::common::{error, list, map, path, render, render_with, s, secret};

fn text(t: &str) -> Piece {
    Piece::Text(t.to_owned())
}

fn sec(p: &str) -> Piece {
    Piece::Secret(path(p))
}

#[test]
fn secrets_become_pieces() {
    let cases: Vec<(&str, Vec<Piece>)> = vec![
        ("{{ .Vars.db_password }}", vec![sec("vigo/db/password")]),
        (
            "password={{ .Vars.db_password }}\n",
            vec![text("password="), sec("vigo/db/password"), text("\n")],
        ),
        (
            "{{ with .Vars.db_password }}{{ . }}{{ end }}",
            vec![sec("vigo/db/password")],
        ),
        (
            "{{ $p := .Vars.db_password }}{{ $p }}{{ $p }}",
            vec![sec("vigo/db/password"), sec("vigo/db/password")],
        ),
        (
            "{{ index .Vars \"db_password\" }}",
            vec![sec("vigo/db/password")],
        ),
        (
            "{{ (index .Vars.users 1).pw }}",
            vec![sec("vigo/users/bob")],
        ),
        (
            "{{ range .Vars.users }}{{ .name }}:{{ .pw }}\n{{ end }}",
            vec![
                text("ann:"),
                sec("vigo/users/ann"),
                text("\nbob:"),
                sec("vigo/users/bob"),
                text("\n"),
            ],
        ),
        (
            "{{ range $u := .Vars.users }}{{ with $u.pw }}[{{ . }}]{{ end }}{{ end }}",
            vec![
                text("["),
                sec("vigo/users/ann"),
                text("]["),
                sec("vigo/users/bob"),
                text("]"),
            ],
        ),
        (
            "{{ range .Vars.secrets }}{{ . }},{{ end }}",
            vec![sec("vigo/a"), text(","), sec("vigo/b"), text(",")],
        ),
        ("{{ if .Vars.db_password }}set{{ end }}", vec![text("set")]),
        ("{{ len .Vars.secrets }}", vec![text("2")]),
        ("a{{ \"b\" }}{{ 1 }}c", vec![text("ab1c")]),
    ];
    for (src, want) in cases {
        let out = render(src).unwrap_or_else(|e| panic!("{src:?}: {e}"));
        assert_eq!(out.0, want, "{src:?}");
    }
}

#[test]
fn secrets_are_refused_everywhere_else() {
    let cases: &[(&str, &str)] = &[
        (
            "{{ printf \"%s\" .Vars.db_password }}",
            "secret 'vigo/db/password' cannot be passed to function \"printf\"; secrets can only be inserted as they are",
        ),
        (
            "{{ .Vars.db_password | printf \"%s\" }}",
            "secret 'vigo/db/password' cannot be passed to function \"printf\"; secrets can only be inserted as they are",
        ),
        (
            "{{ print .Vars.db_password }}",
            "secret 'vigo/db/password' cannot be passed to function \"print\"; secrets can only be inserted as they are",
        ),
        (
            "{{ println .Vars.users }}",
            "secret 'vigo/users/ann' cannot be passed to function \"println\"; secrets can only be inserted as they are",
        ),
        (
            "{{ len .Vars.db_password }}",
            "secret 'vigo/db/password' cannot be passed to function \"len\"; secrets can only be inserted as they are",
        ),
        (
            "{{ eq .Vars.db_password \"x\" }}",
            "secret 'vigo/db/password' cannot be passed to function \"eq\"; secrets can only be inserted as they are",
        ),
        (
            "{{ lt \"x\" .Vars.db_password }}",
            "secret 'vigo/db/password' cannot be passed to function \"lt\"; secrets can only be inserted as they are",
        ),
        (
            "{{ not .Vars.db_password }}",
            "secret 'vigo/db/password' cannot be passed to function \"not\"; secrets can only be inserted as they are",
        ),
        (
            "{{ or .Vars.db_password \"default\" }}",
            "secret 'vigo/db/password' cannot be passed to function \"or\"; secrets can only be inserted as they are",
        ),
        (
            "{{ and 1 .Vars.db_password }}",
            "secret 'vigo/db/password' cannot be passed to function \"and\"; secrets can only be inserted as they are",
        ),
        (
            "{{ index .Vars.m .Vars.db_password }}",
            "secret 'vigo/db/password' cannot be passed to function \"index\"; secrets can only be inserted as they are",
        ),
        (
            "{{ index .Vars.db_password 0 }}",
            "secret 'vigo/db/password' cannot be passed to function \"index\"; secrets can only be inserted as they are",
        ),
        (
            "{{ index .Vars.secrets 0 1 }}",
            "error calling index: secret 'vigo/a' cannot be indexed; secrets can only be inserted as they are",
        ),
        (
            "{{ range .Vars.db_password }}{{ end }}",
            "range can't iterate over secret 'vigo/db/password'; secrets can only be inserted as they are",
        ),
        (
            "{{ .Vars.db_password.x }}",
            "can't evaluate field 'x' of secret 'vigo/db/password' (.Vars.db_password.x): a secret has no fields",
        ),
        (
            "{{ .Vars.users }}",
            "secret 'vigo/users/ann' is inside a list and cannot be printed with it; insert each secret on its own",
        ),
        (
            "{{ index .Vars.users 0 }}",
            "secret 'vigo/users/ann' is inside a map and cannot be printed with it; insert each secret on its own",
        ),
    ];
    for (src, message) in cases {
        assert_eq!(error(src).message, *message, "{src:?}");
    }
}

/// Every kind of value carries a canary; no error text may contain one.
#[test]
fn errors_never_contain_values() {
    const CANARY: &str = "CANARY";
    const INT: i64 = 424_242;
    const FLOAT: f64 = 4242.4242;
    let data = map(vec![
        (
            "Vars",
            map(vec![
                ("s", s("CANARY string")),
                ("i", Value::Int(INT)),
                ("f", Value::Float(FLOAT)),
                ("b", Value::Bool(true)),
                ("nil", Value::Null),
                ("p", secret("vigo/canary/path")),
                (
                    "list",
                    list(vec![
                        s("CANARY in list"),
                        Value::Int(INT),
                        Value::Float(FLOAT),
                    ]),
                ),
                (
                    "m",
                    map(vec![
                        ("CANARY_key", s("CANARY value")),
                        ("k", list(vec![s("CANARY deep")])),
                    ]),
                ),
                (
                    "with_secret",
                    list(vec![
                        s("CANARY beside secret"),
                        secret("vigo/canary/in_list"),
                        Value::Int(INT),
                    ]),
                ),
            ]),
        ),
        ("Envoy", map(vec![("Name", s("CANARY envoy"))])),
    ]);
    let templates = [
        "{{ .Vars.s.x }}",
        "{{ .Vars.i.x }}",
        "{{ .Vars.f.x }}",
        "{{ .Vars.list.x }}",
        "{{ .Vars.nil.x }}",
        "{{ .Vars.nope }}",
        "{{ .Vars.m.nope }}",
        "{{ .Envoy.nope }}",
        "{{ .Vars.p.x }}",
        "{{ len .Vars.i }}",
        "{{ len .Vars.f }}",
        "{{ len .Vars.nil }}",
        "{{ len .Vars.p }}",
        "{{ index .Vars.list 99 }}",
        "{{ index .Vars.list .Vars.i }}",
        "{{ index .Vars.list \"x\" }}",
        "{{ index .Vars.list .Vars.s }}",
        "{{ index .Vars.s 99 }}",
        "{{ index .Vars.s .Vars.i }}",
        "{{ index .Vars.m 1 }}",
        "{{ index .Vars.m .Vars.list }}",
        "{{ index .Vars.nil 1 }}",
        "{{ index .Vars.i 1 }}",
        "{{ eq .Vars.s .Vars.i }}",
        "{{ eq .Vars.f .Vars.i }}",
        "{{ eq .Vars.list .Vars.list }}",
        "{{ eq .Vars.m .Vars.s }}",
        "{{ lt .Vars.b .Vars.b }}",
        "{{ lt .Vars.s .Vars.f }}",
        "{{ ge .Vars.list .Vars.i }}",
        "{{ printf .Vars.i }}",
        "{{ printf .Vars.list }}",
        "{{ printf \"%s\" .Vars.p }}",
        "{{ print .Vars.with_secret }}",
        "{{ .Vars.with_secret }}",
        "{{ range .Vars.s }}{{ end }}",
        "{{ range .Vars.f }}{{ end }}",
        "{{ range .Vars.b }}{{ end }}",
        "{{ range .Vars.p }}{{ end }}",
        "{{ range $i, $v := .Vars.i }}{{ end }}",
        "{{ range $k, $v := .Vars.m }}{{ $k.x }}{{ end }}",
        "{{ range $k, $v := .Vars.m }}{{ $v.x }}{{ end }}",
        "{{ range .Vars.list }}{{ .x }}{{ end }}",
        "{{ with .Vars.s }}{{ .x }}{{ end }}",
        "{{ with .Vars.m }}{{ .nope }}{{ end }}",
        "{{ secret_file }}",
        "{{ and .Vars.s .Vars.p }}",
        "{{ or .Vars.nil .Vars.p }}",
        "{{ (index .Vars.m \"k\").x }}",
        "{{ $x := .Vars.s }}{{ $x.y }}",
        "{{ $x := .Vars.list }}{{ $x.y }}",
        "{{ slice .Vars.list .Vars.i }}",
        "{{ slice .Vars.list 0 .Vars.i }}",
        "{{ slice .Vars.list 0 1 .Vars.i }}",
        "{{ slice .Vars.s .Vars.i }}",
        "{{ slice .Vars.s 1 0 }}",
        "{{ slice .Vars.s 0 1 2 }}",
        "{{ slice .Vars.list .Vars.f }}",
        "{{ slice .Vars.list .Vars.s }}",
        "{{ slice .Vars.m }}",
        "{{ slice .Vars.f }}",
        "{{ slice .Vars.p }}",
        "{{ html .Vars.p }}",
        "{{ js .Vars.with_secret }}",
        "{{ urlquery .Vars.s .Vars.p }}",
        "{{ printf \"%T\" .Vars.with_secret }}",
    ];
    let mut checked = 0;
    for src in templates {
        let template = Template::parse(src).unwrap_or_else(|e| panic!("{src:?} should parse: {e}"));
        let Err(e) = template.render(&data, RenderOptions::default()) else {
            panic!("{src:?} should fail");
        };
        for text in [e.message.clone(), e.to_string(), format!("{e:?}")] {
            for canary in [CANARY, &INT.to_string(), &FLOAT.to_string(), "4242.42"] {
                assert!(!text.contains(canary), "{src:?} leaked {canary:?}: {text}");
            }
        }
        checked += 1;
    }
    assert_eq!(checked, templates.len());
}

#[test]
fn printing_secrets_needs_no_options() {
    let out = render_with(
        "{{ .Vars.db_password }}",
        &crate::common::data(),
        RenderOptions {
            allow_secret_file: true,
        },
    )
    .expect("renders");
    assert_eq!(
        out.secret_paths().map(|p| p.as_str()).collect::<Vec<_>>(),
        ["vigo/db/password"]
    );
    assert!(out.has_secrets());
    assert_eq!(out.plain_text(), None);
}
