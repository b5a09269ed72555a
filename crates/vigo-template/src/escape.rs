//! The escapers behind the `html`, `js` and `urlquery` builtins, written to
//! Go's `HTMLEscapeString`, `JSEscapeString` and `url.QueryEscape`, and
//! Go's notion of a printable character (`unicode.IsPrint`), which `js` and
//! `printf "%q"` use.

use std::fmt::Write;

use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

/// Go's `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols and
/// the ASCII space. Other spaces, controls, format characters, surrogates,
/// private-use and unassigned code points are not printable.
pub(crate) fn is_print(c: char) -> bool {
    c == ' '
        || matches!(
            c.general_category_group(),
            GeneralCategoryGroup::Letter
                | GeneralCategoryGroup::Mark
                | GeneralCategoryGroup::Number
                | GeneralCategoryGroup::Punctuation
                | GeneralCategoryGroup::Symbol
        )
}

/// Go's `template.HTMLEscapeString`: `<`, `>`, `&`, `'` and `"` become
/// entities, NUL becomes U+FFFD, everything else stays.
pub(crate) fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `template.JSEscapeString`: `\`, `'` and `"` get a backslash; `<`,
/// `>`, `&`, `=` and ASCII control characters become `\u00XX`; a
/// non-ASCII character that is not printable becomes `\uXXXX` (uppercase
/// hex, at least four digits); everything else stays.
pub(crate) fn js(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' | '>' | '&' | '=' => unicode_escape(&mut out, c),
            c if c < ' ' => unicode_escape(&mut out, c),
            c if c.is_ascii() || is_print(c) => out.push(c),
            c => unicode_escape(&mut out, c),
        }
    }
    out
}

fn unicode_escape(out: &mut String, c: char) {
    // Writing to a String cannot fail.
    let _ = write!(out, "\\u{:04X}", u32::from(c));
}

/// Go's `url.QueryEscape`: ASCII letters, digits and `-_.~` stay, a space
/// becomes `+`, every other byte of the UTF-8 text becomes `%XX`.
pub(crate) fn query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_as_go_says() {
        for c in ['a', 'é', '1', '!', '€', '\u{301}', ' ', '\u{FFFD}', '😀'] {
            assert!(is_print(c), "{c:?}");
        }
        // Control, no-break space, soft hyphen (format), line separator,
        // private use, unassigned.
        for c in [
            '\n', '\u{7f}', '\u{a0}', '\u{ad}', '\u{2028}', '\u{e000}', '\u{378}',
        ] {
            assert!(!is_print(c), "{c:?}");
        }
    }

    #[test]
    fn html_escapes_the_five_and_nul() {
        assert_eq!(
            html("<a href=\"x\">Tom & Jerry's</a>\0é"),
            "&lt;a href=&#34;x&#34;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;\u{FFFD}é"
        );
        assert_eq!(html("plain"), "plain");
    }

    #[test]
    fn js_escapes_like_go() {
        assert_eq!(
            js("'a' \"b\" \\ <x> & = \n\t\u{7f}é\u{a0}\u{2028}😀"),
            "\\'a\\' \\\"b\\\" \\\\ \\u003Cx\\u003E \\u0026 \\u003D \\u000A\\u0009\u{7f}é\\u00A0\\u2028😀"
        );
        assert_eq!(js("\u{e0001}"), "\\uE0001");
    }

    #[test]
    fn query_escapes_like_go() {
        assert_eq!(
            query("a b&c=d/e?f~g-h_i.j+k%é"),
            "a+b%26c%3Dd%2Fe%3Ff~g-h_i.j%2Bk%25%C3%A9"
        );
    }
}
