//! Issue 15: the parts of Go's `text/template` a module author reaches for
//! that the engine once lacked: `printf "%T"`, hexadecimal floats and the
//! other number forms, and the builtins `slice`, `html`, `js` and
//! `urlquery`. Each expected text is written by hand from Go's
//! documentation of `text/template`, `fmt`, `strconv` and `net/url`.

use proptest::prelude::*;
use vigo_template::{Piece, RenderOptions, Template, Value};

use crate::common::{assert_errors, assert_renders, error, map, path, render, render_with, s};

const CASES: &[(&str, &str)] = &[
    // %T: the names Go prints for the same data decoded from YAML.
    ("{{ printf \"%T\" .Vars.name }}", "string"),
    (
        "{{ printf \"%T %T %T %T\" .Vars.port .Vars.ratio .Vars.enabled .Vars.nothing }}",
        "int float64 bool <nil>",
    ),
    (
        "{{ printf \"%T|%T\" .Vars.list .Vars.m }}",
        "[]interface {}|map[string]interface {}",
    ),
    (
        "{{ printf \"%T %T %T %T %T\" 1 1.5 'a' \"s\" true }}",
        "int float64 int string bool",
    ),
    (
        "{{ printf \"%T %T %T %T\" 0x1p-2 1e3 0x1E 1.0 }}",
        "float64 float64 int float64",
    ),
    ("{{ printf \"%T\" nil }}", "<nil>"),
    (
        "{{ printf \"%10T|%-8T|%.3T|%.1T\" 1 \"s\" 1.5 nil }}",
        "       int|string  |flo|<nil>",
    ),
    (
        "{{ printf \"%T\" .Vars.nested }}",
        "map[string]interface {}",
    ),
    ("{{ printf \"%T\" (slice .Vars.list 1) }}", "[]interface {}"),
    ("{{ .Vars.port | printf \"%T\" }}", "int"),
    ("{{ printf \"%d %T\" 1 }}", "1 %!T(MISSING)"),
    ("{{ printf \"%d\" nil }}", "%!d(<nil>)"),
    // Number literals.
    (
        "{{ 0x1p-2 }} {{ 0x1.8p1 }} {{ 0x1P4 }} {{ 0X.8p0 }} {{ -0x1p-1 }}",
        "0.25 3 16 0.5 -0.5",
    ),
    ("{{ 0x_1FFFp-16 }}", "0.1249847412109375"),
    ("{{ if eq 0x1p-2 0.25 }}equal{{ end }}", "equal"),
    (
        "{{ 1_000_000 }} {{ 0b1010 }} {{ 0o777 }} {{ 0777 }} {{ 0x_FF }}",
        "1000000 10 511 511 255",
    ),
    ("{{ 1e3 }} {{ 1.5e-3 }} {{ 1_0.2_5 }}", "1000 0.0015 10.25"),
    (
        "{{ 'a' }} {{ '\\n' }} {{ '\\x41' }} {{ 'é' }}",
        "97 10 65 233",
    ),
    ("{{ printf \"%c%c\" 'h' 0x69 }}", "hi"),
    // slice: Go's x[i:j] and x[i:j:k], strings by byte.
    ("{{ slice \"abcdef\" 1 3 }}", "bc"),
    ("{{ slice \"abcdef\" 2 }}", "cdef"),
    ("{{ slice \"abcdef\" }}", "abcdef"),
    ("[{{ slice \"abcdef\" 6 }}]", "[]"),
    ("{{ slice \"héllo\" 0 3 }}", "hé"),
    ("{{ len (slice .Vars.name 1) }}", "2"),
    ("{{ slice .Vars.list 1 }}", "[b c]"),
    ("{{ slice .Vars.list 0 2 }}", "[a b]"),
    ("{{ slice .Vars.list 1 2 3 }}", "[b]"),
    ("{{ slice .Vars.list 3 }}", "[]"),
    ("{{ slice .Vars.list 1 1 }}", "[]"),
    ("{{ slice .Vars.list }}", "[a b c]"),
    ("{{ range slice .Vars.nums 1 }}{{ . }}{{ end }}", "12"),
    ("{{ index (slice .Vars.list 1) 0 }}", "b"),
    ("{{ .Vars.list | slice }}", "[a b c]"),
    ("{{ (slice .Vars.users 1 2) | len }}", "1"),
    // html: Go's HTMLEscapeString of fmt.Sprint of the arguments.
    (
        "{{ html \"<a href=\\\"x\\\">O'Neil & Co</a>\" }}",
        "&lt;a href=&#34;x&#34;&gt;O&#39;Neil &amp; Co&lt;/a&gt;",
    ),
    ("{{ \"<b>\" | html }}", "&lt;b&gt;"),
    ("{{ html \"a\\x00b\" }}", "a\u{FFFD}b"),
    ("{{ html 1 2 \"<\" 3 }}", "1 2&lt;3"),
    ("{{ html nil }}", "&lt;no value&gt;"),
    ("{{ html 1 nil 2 }}", "1&lt;no value&gt;2"),
    ("[{{ html }}]", "[]"),
    ("{{ html .Vars.list }}", "[a b c]"),
    ("{{ html .Vars.port .Vars.ratio }}", "8080 0.5"),
    ("{{ html \"é—ok\" }}", "é—ok"),
    // js: Go's JSEscapeString.
    (
        "{{ js \"it's \\\"quoted\\\" \\\\ <script>&=\" }}",
        "it\\'s \\\"quoted\\\" \\\\ \\u003Cscript\\u003E\\u0026\\u003D",
    ),
    (
        "{{ js \"line\\nbreak\\ttab\\x7f\" }}",
        "line\\u000Abreak\\u0009tab\u{7f}",
    ),
    (
        "{{ js \"é\\u00a0\\u2028\\u00ad😀\" }}",
        "é\\u00A0\\u2028\\u00AD😀",
    ),
    ("{{ js 1 \"=\" true }}", "1\\u003Dtrue"),
    ("{{ js nil }}", "\\u003Cno value\\u003E"),
    ("{{ .Vars.name | js }}", "web"),
    // urlquery: Go's url.QueryEscape.
    ("{{ urlquery \"a b&c=d/é\" }}", "a+b%26c%3Dd%2F%C3%A9"),
    ("{{ urlquery \"-_.~\" \"+%\" }}", "-_.~%2B%25"),
    ("{{ urlquery \"x\" 1 2 }}", "x1+2"),
    ("{{ .Vars.name | urlquery }}", "web"),
    ("{{ urlquery .Vars.m }}", "map%5Ba%3A1+b%3A2%5D"),
    ("{{ urlquery nil }}", "%3Cno+value%3E"),
    (
        "https://x/?q={{ urlquery .Envoy.Name }}&n={{ .Vars.port | urlquery }}",
        "https://x/?q=db1.example.com&n=8080",
    ),
    ("{{ printf \"q=%s\" (urlquery \"a&b\") }}", "q=a%26b"),
    // The examples of the function table in docs/modules.md.
    ("{{ and .Vars.port \"on\" }}", "on"),
    ("{{ or .Vars.empty \"default\" }}", "default"),
    ("{{ not 0 }}", "true"),
    ("{{ len \"héllo\" }}", "6"),
    ("{{ index \"abc\" 1 }}", "98"),
    ("{{ print \"a\" 1 2 }}", "a1 2"),
    ("{{ println \"a\" 1 }}", "a 1\n"),
    ("{{ printf \"%05d\" 42 }}", "00042"),
    ("{{ html \"<b>&\" }}", "&lt;b&gt;&amp;"),
    ("{{ js \"it's <b>\" }}", "it\\'s \\u003Cb\\u003E"),
    ("{{ urlquery \"a b&c\" }}", "a+b%26c"),
    ("{{ eq .Vars.port 80 8080 }}", "true"),
    ("{{ ne 1 2 }}", "true"),
    ("{{ lt 1 2 }}", "true"),
];

#[test]
fn issue_15_go_builtins_render_like_go() {
    assert_renders(CASES);
}

/// (template, line, column, message)
const ERRORS: &[(&str, usize, usize, &str)] = &[
    (
        "{{ slice \"abc\" 1 5 }}",
        1,
        4,
        "error calling slice: index out of range: the string has 3 bytes",
    ),
    (
        "a\n  {{ slice .Vars.list -1 }}",
        2,
        6,
        "error calling slice: index out of range: the list has 3 elements",
    ),
    (
        "{{ slice .Vars.list 0 1 4 }}",
        1,
        4,
        "error calling slice: index out of range: the list has 3 elements",
    ),
    (
        "{{ slice .Vars.list 2 1 }}",
        1,
        4,
        "error calling slice: invalid slice index: the first index is greater than the second",
    ),
    (
        "{{ slice .Vars.list 0 2 1 }}",
        1,
        4,
        "error calling slice: invalid slice index: the second index is greater than the third",
    ),
    (
        "{{ slice \"abc\" 0 1 2 }}",
        1,
        4,
        "error calling slice: cannot 3-index slice a string",
    ),
    (
        "{{ slice .Vars.list 0 1 2 3 }}",
        1,
        4,
        "error calling slice: too many slice indexes: 4",
    ),
    (
        "{{ slice .Vars.m 1 }}",
        1,
        4,
        "error calling slice: can't slice item of type map",
    ),
    (
        "{{ 5 | slice }}",
        1,
        8,
        "error calling slice: can't slice item of type int",
    ),
    (
        "{{ slice .Vars.nothing }}",
        1,
        4,
        "error calling slice: slice of untyped nil",
    ),
    (
        "{{ slice .Vars.list \"1\" }}",
        1,
        4,
        "error calling slice: cannot index slice/array with type string",
    ),
    (
        "{{ slice .Vars.list 1.5 }}",
        1,
        4,
        "error calling slice: cannot index slice/array with type float",
    ),
    (
        "{{ slice .Vars.list 0 nil }}",
        1,
        4,
        "error calling slice: cannot index slice/array with nil",
    ),
    (
        "{{ slice \"héllo\" 0 2 }}",
        1,
        4,
        "error calling slice: slicing a string must cut between characters, not inside a multi-byte UTF-8 character",
    ),
    (
        "{{ if true }}\n{{ slice }}{{ end }}",
        2,
        4,
        "wrong number of args for slice: want at least 1 got 0",
    ),
    (
        "{{ html .Vars.nested.inner.nope }}",
        1,
        9,
        "missing key 'nope' in .Vars.nested.inner (.Vars.nested.inner.nope)",
    ),
    // Number literals Go rejects, at the literal.
    (
        "{{ print 0x1.8 }}",
        1,
        10,
        "bad number syntax: \"0x1.8\": a hexadecimal float needs a 'p' exponent",
    ),
    (
        "\n {{ 09 }}",
        2,
        5,
        "bad number syntax: \"09\": a leading 0 makes an octal number",
    ),
    (
        "{{ 1__000 }}",
        1,
        4,
        "bad number syntax: \"1__000\": '_' may only separate digits",
    ),
    (
        "{{ 0x1p99999 }}",
        1,
        4,
        "number 0x1p99999 is out of range for a float",
    ),
    ("{{ 0b12 }}", 1, 4, "bad number syntax: \"0b12\""),
    (
        "{{ 1i }}",
        1,
        4,
        "complex numbers are not supported: \"1i\"",
    ),
    ("{{ 'ab' }}", 1, 4, "malformed character constant"),
];

#[test]
fn issue_15_go_builtin_errors_are_positioned() {
    assert_errors(ERRORS);
}

/// The taint model holds through the new builtins: a secret cannot be
/// passed to them, nor printed inside a list or map they print, and a list
/// that `slice` cuts keeps its secrets as secrets.
#[test]
fn issue_15_secrets_keep_their_taint_through_the_new_builtins() {
    let refused = [
        (
            "{{ slice .Vars.db_password 1 }}",
            "vigo/db/password",
            "slice",
        ),
        ("{{ html .Vars.db_password }}", "vigo/db/password", "html"),
        ("{{ .Vars.db_password | js }}", "vigo/db/password", "js"),
        (
            "{{ urlquery \"a\" .Vars.db_password }}",
            "vigo/db/password",
            "urlquery",
        ),
        ("{{ urlquery .Vars.users }}", "vigo/users/ann", "urlquery"),
        ("{{ html (slice .Vars.secrets 1) }}", "vigo/b", "html"),
        ("{{ js .Vars.secrets }}", "vigo/a", "js"),
        (
            "{{ printf \"%T\" .Vars.db_password }}",
            "vigo/db/password",
            "printf",
        ),
        (
            "{{ printf \"%T\" .Vars.users }}",
            "vigo/users/ann",
            "printf",
        ),
        (
            "{{ slice .Vars.list .Vars.db_password }}",
            "vigo/db/password",
            "slice",
        ),
    ];
    for (src, secret, func) in refused {
        assert_eq!(
            error(src).message,
            format!(
                "secret '{secret}' cannot be passed to function \"{func}\"; secrets can only be inserted as they are"
            ),
            "{src:?}"
        );
    }

    // Cut out of a list, a secret is still a secret piece, never text.
    let out = render("[{{ index (slice .Vars.secrets 1) 0 }}]").expect("renders");
    assert_eq!(
        out.0,
        [
            Piece::Text("[".into()),
            Piece::Secret(path("vigo/b")),
            Piece::Text("]".into()),
        ]
    );
    let out =
        render("{{ range slice .Vars.users 1 }}{{ .name }}={{ .pw }}{{ end }}").expect("renders");
    assert_eq!(
        out.0,
        [
            Piece::Text("bob=".into()),
            Piece::Secret(path("vigo/users/bob")),
        ]
    );
    // Printing the cut list whole is refused as printing the list is.
    assert_eq!(
        error("{{ slice .Vars.secrets 0 1 }}").message,
        "secret 'vigo/a' is inside a list and cannot be printed with it; insert each secret on its own"
    );
}

/// Renders `{{ FUNC .Vars.s }}` with `s` as the only var.
fn escape_with(func: &str, input: &str) -> String {
    let data = map(vec![("Vars", map(vec![("s", s(input))]))]);
    render_with(
        &format!("{{{{ {func} .Vars.s }}}}"),
        &data,
        RenderOptions::default(),
    )
    .expect("renders")
    .plain_text()
    .expect("no secrets")
}

fn html_unescape(escaped: &str) -> String {
    escaped
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Decodes `js` output whose `\u` escapes all have four digits.
fn js_unescape(escaped: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            }
            c @ ('\\' | '\'' | '"') => out.push(c),
            _ => return None,
        }
    }
    Some(out)
}

fn query_unescape(escaped: &str) -> Option<String> {
    let mut bytes = Vec::new();
    let mut iter = escaped.bytes();
    while let Some(b) = iter.next() {
        match b {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = [iter.next()?, iter.next()?];
                bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            b => bytes.push(b),
        }
    }
    String::from_utf8(bytes).ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn issue_15_html_output_is_inert_and_reversible(input in any::<String>()) {
        let out = escape_with("html", &input);
        prop_assert!(!out.contains(['<', '>', '"', '\'', '\0']), "{out:?}");
        prop_assert_eq!(html_unescape(&out), input.replace('\0', "\u{FFFD}"));
    }

    #[test]
    fn issue_15_js_output_is_inert_and_reversible(
        input in any::<String>().prop_map(|s| s.chars().filter(|c| u32::from(*c) < 0x10000).collect::<String>()),
    ) {
        let out = escape_with("js", &input);
        prop_assert!(!out.contains(['<', '>', '&', '=']), "{out:?}");
        prop_assert!(!out.chars().any(|c| c < ' '), "{out:?}");
        prop_assert_eq!(js_unescape(&out), Some(input));
    }

    #[test]
    fn issue_15_urlquery_output_is_unreserved_and_reversible(input in any::<String>()) {
        let out = escape_with("urlquery", &input);
        prop_assert!(
            out.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~+%".contains(&b)),
            "{out:?}"
        );
        prop_assert_eq!(query_unescape(&out), Some(input));
    }

    /// Every cut Go allows on a list gives Go's sub-list, every other one a
    /// positioned error; never a panic.
    #[test]
    fn issue_15_slice_agrees_with_go_bounds(
        len in 0usize..5,
        low in -1i64..7,
        high in -1i64..7,
        max in -1i64..7,
        three in any::<bool>(),
    ) {
        let items: Vec<Value> = (0..len).map(|i| Value::Int(i64::try_from(i).unwrap_or(0))).collect();
        let data = map(vec![("Vars", map(vec![("l", Value::List(items.clone()))]))]);
        let src = if three {
            format!("{{{{ slice .Vars.l {low} {high} {max} }}}}")
        } else {
            format!("{{{{ slice .Vars.l {low} {high} }}}}")
        };
        let got = Template::parse(&src)
            .expect("parses")
            .render(&data, RenderOptions::default());
        let n = i64::try_from(len).unwrap_or(0);
        let cap = if three { max } else { n };
        let valid = 0 <= low && low <= high && high <= cap && cap <= n;
        if valid {
            let (low, high) = (usize::try_from(low).unwrap_or(0), usize::try_from(high).unwrap_or(0));
            let want = Template::parse("{{ . }}")
                .expect("parses")
                .render(&Value::List(items[low..high].to_vec()), RenderOptions::default())
                .expect("renders");
            prop_assert_eq!(got.expect("valid cut renders"), want);
        } else {
            let e = got.expect_err("invalid cut fails");
            prop_assert_eq!((e.line, e.column), (1, 4));
            prop_assert!(e.message.starts_with("error calling slice: "), "{}", e.message);
        }
    }
}
