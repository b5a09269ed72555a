//! Go's `fmt` formatting for template values: how an action prints a value
//! (`%v`) and what `print`, `println` and `printf` produce.
//!
//! `printf` supports the flags `-+# 0`, widths and precisions (also `*`),
//! and the verbs `v s q d b o O x X c U t e E f F g G T %`; `%T` names the
//! value's Go type ([`go_type_name`]). A verb that does
//! not fit its argument prints Go's `%!d(string=...)` form into the output
//! (output, not an error message, so the value may appear there).
//!
//! A width or precision above [`MAX_WIDTH`] is an error (Go allows a
//! million; Rust's formatter panics above 65,535, and no config file needs
//! more than a few thousand columns).

use std::fmt::Write;

use crate::{Value, escape};

/// The largest width or precision `printf` accepts.
pub(crate) const MAX_WIDTH: usize = 10_000;

/// Appends `value` as Go's `%v` prints it.
pub(crate) fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        // Writing to a String cannot fail.
        Value::Int(i) => drop(write!(out, "{i}")),
        Value::Float(f) => write_float(out, *f, 'v', &Spec::default()),
        Value::Str(s) => out.push_str(s),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Map(map) => {
            out.push_str("map[");
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(key);
                out.push(':');
                write_value(out, item);
            }
            out.push(']');
        }
        // Never reached: secrets are refused before formatting. Only the
        // marker is written, never anything that could be a value.
        Value::Secret(_) => out.push_str("<secret>"),
    }
}

/// Go's `fmt.Sprint`: spaces between operands when neither is a string.
pub(crate) fn sprint(args: &[&Value]) -> String {
    let mut out = String::new();
    let mut previous_string = false;
    for (i, arg) in args.iter().enumerate() {
        let is_string = matches!(arg, Value::Str(_));
        if i > 0 && !is_string && !previous_string {
            out.push(' ');
        }
        write_value(&mut out, arg);
        previous_string = is_string;
    }
    out
}

/// Go's `fmt.Sprintln`: spaces between all operands, a newline at the end.
pub(crate) fn sprintln(args: &[&Value]) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        write_value(&mut out, arg);
    }
    out.push('\n');
    out
}

/// Flags, width and precision of one `printf` verb.
#[derive(Debug, Default, Clone)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    zero: bool,
    space: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

/// Go's `fmt.Sprintf`. The error (a width or precision above
/// [`MAX_WIDTH`]) names the number, never an argument.
pub(crate) fn sprintf(format: &str, args: &[&Value]) -> Result<String, String> {
    let mut out = String::new();
    let mut next_arg = 0;
    let mut rest = format;
    while let Some(percent) = rest.find('%') {
        out.push_str(&rest[..percent]);
        let mut chars = rest[percent + 1..].chars();
        let mut spec = Spec::default();
        let mut c = chars.next();
        loop {
            match c {
                Some('-') => {
                    spec.minus = true;
                    spec.zero = false;
                }
                Some('+') => spec.plus = true,
                Some('#') => spec.sharp = true,
                Some('0') => spec.zero = !spec.minus,
                Some(' ') => spec.space = true,
                _ => break,
            }
            c = chars.next();
        }
        if c == Some('*') {
            spec.width = star_argument(args, &mut next_arg, &mut spec, &mut out, "BADWIDTH");
            c = chars.next();
        } else {
            let (width, after) = digits(c, &mut chars);
            spec.width = width;
            c = after;
        }
        if c == Some('.') {
            c = chars.next();
            if c == Some('*') {
                // As Go: a negative precision means none.
                let mut negative = Spec::default();
                spec.precision =
                    star_argument(args, &mut next_arg, &mut negative, &mut out, "BADPREC")
                        .filter(|_| !negative.minus);
                c = chars.next();
            } else {
                let (precision, after) = digits(c, &mut chars);
                spec.precision = Some(precision.unwrap_or(0));
                c = after;
            }
        }
        if let Some(width) = spec.width.filter(|w| *w > MAX_WIDTH) {
            return Err(format!(
                "width {width} is too large; widths and precisions go up to {MAX_WIDTH}"
            ));
        }
        if let Some(precision) = spec.precision.filter(|p| *p > MAX_WIDTH) {
            return Err(format!(
                "precision {precision} is too large; widths and precisions go up to {MAX_WIDTH}"
            ));
        }
        let Some(verb) = c else {
            out.push_str("%!(NOVERB)");
            rest = "";
            break;
        };
        rest = chars.as_str();
        if verb == '%' {
            out.push('%');
            continue;
        }
        match args.get(next_arg) {
            Some(arg) => {
                next_arg += 1;
                write_arg(&mut out, arg, verb, &spec);
            }
            None => {
                out.push_str("%!");
                out.push(verb);
                out.push_str("(MISSING)");
            }
        }
    }
    out.push_str(rest);
    if next_arg < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, arg) in args[next_arg..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            write_typed(&mut out, arg);
        }
        out.push(')');
    }
    Ok(out)
}

/// Reads decimal digits starting with `first`; returns the number (if any
/// digit was read) and the character after them.
fn digits(first: Option<char>, chars: &mut std::str::Chars<'_>) -> (Option<usize>, Option<char>) {
    let mut c = first;
    let mut value: Option<usize> = None;
    while let Some(d) = c.and_then(|c| c.to_digit(10)) {
        value = Some(
            value
                .unwrap_or(0)
                .saturating_mul(10)
                .saturating_add(d as usize),
        );
        c = chars.next();
    }
    (value, c)
}

/// A `*` width or precision: the next argument, which must be an int.
fn star_argument(
    args: &[&Value],
    next_arg: &mut usize,
    spec: &mut Spec,
    out: &mut String,
    bad: &str,
) -> Option<usize> {
    let arg = args.get(*next_arg);
    *next_arg += 1;
    match arg {
        Some(Value::Int(n)) => {
            if *n < 0 {
                spec.minus = true;
                spec.zero = false;
            }
            usize::try_from(n.unsigned_abs()).ok()
        }
        _ => {
            out.push_str("%!(");
            out.push_str(bad);
            out.push(')');
            None
        }
    }
}

/// The name Go's `%T` prints for the value Go's YAML decoder would make of
/// the same data: `int`, `float64`, `string`, `bool`, `[]interface {}`,
/// `map[string]interface {}`, and `<nil>` for nil. A secret never reaches a
/// formatter; its marker names no value.
pub(crate) fn go_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float64",
        Value::Str(_) => "string",
        Value::List(_) => "[]interface {}",
        Value::Map(_) => "map[string]interface {}",
        Value::Secret(_) => "secret",
    }
}

/// `type=value`, as Go's `%!verb(...)` and `%!(EXTRA ...)` print it.
fn write_typed(out: &mut String, value: &Value) {
    out.push_str(go_type_name(value));
    if !matches!(value, Value::Null) {
        out.push('=');
        write_value(out, value);
    }
}

fn bad_verb(out: &mut String, value: &Value, verb: char) {
    out.push_str("%!");
    out.push(verb);
    out.push('(');
    write_typed(out, value);
    out.push(')');
}

fn write_arg(out: &mut String, value: &Value, verb: char, spec: &Spec) {
    match value {
        // As Go: the type of the whole argument, a string padded and
        // truncated like `%s`.
        Value::Null if verb == 'T' => pad(out, "<nil>", spec),
        _ if verb == 'T' => pad(out, truncate(go_type_name(value), spec.precision), spec),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_arg(out, item, verb, spec);
            }
            out.push(']');
        }
        Value::Map(map) => {
            out.push_str("map[");
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_arg(out, &Value::Str(key.clone()), verb, spec);
                out.push(':');
                write_arg(out, item, verb, spec);
            }
            out.push(']');
        }
        Value::Null if verb == 'v' => pad(out, "<nil>", spec),
        Value::Bool(b) if matches!(verb, 'v' | 't') => {
            pad(out, if *b { "true" } else { "false" }, spec);
        }
        Value::Int(n) => match verb {
            'v' | 'd' => write_integer(out, *n, 10, verb, spec),
            'b' => write_integer(out, *n, 2, verb, spec),
            'o' | 'O' => write_integer(out, *n, 8, verb, spec),
            'x' | 'X' => write_integer(out, *n, 16, verb, spec),
            'c' => {
                let c = rune(*n);
                pad(out, c.encode_utf8(&mut [0; 4]), spec);
            }
            'q' => pad(out, &quote(&rune(*n).to_string(), '\''), spec),
            'U' => pad(out, &format!("U+{:04X}", n), spec),
            _ => bad_verb(out, value, verb),
        },
        Value::Float(f) if matches!(verb, 'v' | 'e' | 'E' | 'f' | 'F' | 'g' | 'G') => {
            write_float(out, *f, verb, spec);
        }
        Value::Str(s) => match verb {
            'v' | 's' => pad(out, truncate(s, spec.precision), spec),
            'q' => pad(out, &quote(truncate(s, spec.precision), '"'), spec),
            'x' | 'X' => {
                let mut hex = String::with_capacity(s.len() * 2);
                for b in s.bytes() {
                    let _ = if verb == 'x' {
                        write!(hex, "{b:02x}")
                    } else {
                        write!(hex, "{b:02X}")
                    };
                }
                pad(out, &hex, spec);
            }
            _ => bad_verb(out, value, verb),
        },
        _ => bad_verb(out, value, verb),
    }
}

fn rune(n: i64) -> char {
    u32::try_from(n)
        .ok()
        .and_then(char::from_u32)
        .unwrap_or(char::REPLACEMENT_CHARACTER)
}

fn truncate(s: &str, precision: Option<usize>) -> &str {
    match precision.and_then(|p| s.char_indices().nth(p)) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

/// Pads `text` with spaces to the width, left or right.
fn pad(out: &mut String, text: &str, spec: &Spec) {
    let len = text.chars().count();
    let fill = spec.width.map_or(0, |w| w.saturating_sub(len));
    if spec.minus {
        out.push_str(text);
        out.extend(std::iter::repeat_n(' ', fill));
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(text);
    }
}

fn sign(negative: bool, spec: &Spec) -> &'static str {
    if negative {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    }
}

fn write_integer(out: &mut String, n: i64, base: u32, verb: char, spec: &Spec) {
    let magnitude = n.unsigned_abs();
    let mut digits = match (base, verb) {
        (2, _) => format!("{magnitude:b}"),
        (8, _) => format!("{magnitude:o}"),
        (16, 'X') => format!("{magnitude:X}"),
        (16, _) => format!("{magnitude:x}"),
        _ => magnitude.to_string(),
    };
    let prefix = match (base, verb) {
        (8, 'O') => "0o",
        (16, 'x') if spec.sharp => "0x",
        (16, 'X') if spec.sharp => "0X",
        (2, _) if spec.sharp => "0b",
        (8, _) if spec.sharp && magnitude != 0 => "0",
        _ => "",
    };
    let sign = sign(n < 0, spec);
    let zeros = match (spec.precision, spec.width) {
        (Some(0), _) if n == 0 => {
            digits.clear();
            0
        }
        (Some(p), _) => p.saturating_sub(digits.len()),
        (None, Some(w)) if spec.zero => w.saturating_sub(digits.len() + sign.len() + prefix.len()),
        _ => 0,
    };
    let mut text = String::with_capacity(sign.len() + prefix.len() + zeros + digits.len());
    text.push_str(sign);
    text.push_str(prefix);
    text.extend(std::iter::repeat_n('0', zeros));
    text.push_str(&digits);
    pad(out, &text, spec);
}

fn write_float(out: &mut String, f: f64, verb: char, spec: &Spec) {
    let body = if f.is_nan() {
        "NaN".to_owned()
    } else if f.is_infinite() {
        "Inf".to_owned()
    } else {
        let a = f.abs();
        match verb {
            'e' | 'E' => format_e(a, spec.precision.unwrap_or(6)),
            'f' | 'F' => format!("{:.*}", spec.precision.unwrap_or(6), a),
            _ => format_g(a, spec.precision),
        }
    };
    let body = if matches!(verb, 'E' | 'G') {
        body.replace('e', "E")
    } else {
        body
    };
    let sign = if f.is_nan() {
        sign(false, spec)
    } else if f == f64::INFINITY && !spec.space {
        "+"
    } else {
        sign(f.is_sign_negative(), spec)
    };
    let zeros = match spec.width {
        Some(w) if spec.zero && f.is_finite() => w.saturating_sub(sign.len() + body.len()),
        _ => 0,
    };
    let mut text = String::with_capacity(sign.len() + zeros + body.len());
    text.push_str(sign);
    text.extend(std::iter::repeat_n('0', zeros));
    text.push_str(&body);
    pad(out, &text, spec);
}

/// Decimal digits (no trailing zeros, at least one) and the position of
/// the decimal point: `value = 0.DIGITS × 10^point`.
fn decimal_digits(scientific: &str) -> (Vec<u8>, i64) {
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((scientific, "0"));
    let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    if digits.is_empty() {
        digits.push(b'0');
    }
    let exponent: i64 = exponent.parse().unwrap_or(0);
    (digits, exponent + 1)
}

/// `%e` with `precision` digits after the point, Go's two-digit exponent.
fn format_e(a: f64, precision: usize) -> String {
    let scientific = format!("{a:.precision$e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i64 = exponent.parse().unwrap_or(0);
    format!(
        "{mantissa}e{}{:02}",
        if exponent < 0 { '-' } else { '+' },
        exponent.unsigned_abs()
    )
}

/// `%g` (and `%v`): Go's `strconv.FormatFloat(a, 'g', precision, 64)`.
fn format_g(a: f64, precision: Option<usize>) -> String {
    let (digits, point) = match precision {
        None => decimal_digits(&format!("{a:e}")),
        Some(p) => decimal_digits(&format!("{:.*e}", p.max(1) - 1, a)),
    };
    let nd = digits.len() as i64;
    let mut shown = precision.map_or(nd, |p| p.max(1) as i64);
    let mut eprec = shown;
    if eprec > nd && nd >= point {
        eprec = nd;
    }
    if precision.is_none() {
        eprec = 6;
    }
    let exponent = point - 1;
    let mut out = String::new();
    if exponent < -4 || exponent >= eprec {
        shown = shown.min(nd);
        out.push(char::from(digits[0]));
        if shown > 1 {
            out.push('.');
            for i in 1..shown {
                out.push(digit_at(&digits, i));
            }
        }
        let exponent = if digits == [b'0'] { 0 } else { exponent };
        let _ = write!(
            out,
            "e{}{:02}",
            if exponent < 0 { '-' } else { '+' },
            exponent.unsigned_abs()
        );
    } else {
        if shown > point {
            shown = nd;
        }
        let decimals = (shown - point).max(0);
        if point > 0 {
            for i in 0..point {
                out.push(digit_at(&digits, i));
            }
        } else {
            out.push('0');
        }
        if decimals > 0 {
            out.push('.');
            for i in 0..decimals {
                out.push(digit_at(&digits, point + i));
            }
        }
    }
    out
}

fn digit_at(digits: &[u8], i: i64) -> char {
    usize::try_from(i)
        .ok()
        .and_then(|i| digits.get(i))
        .map_or('0', |d| char::from(*d))
}

/// Go's `strconv.Quote` (with `'` for runes).
fn quote(s: &str, q: char) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        match c {
            c if c == q || c == '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if escape::is_print(c) => out.push(c),
            c if u32::from(c) < 0x80 => drop(write!(out, "\\x{:02x}", u32::from(c))),
            c if u32::from(c) < 0x10000 => drop(write!(out, "\\u{:04x}", u32::from(c))),
            c => drop(write!(out, "\\U{:08x}", u32::from(c))),
        }
    }
    out.push(q);
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn v(value: &Value) -> String {
        let mut out = String::new();
        write_value(&mut out, value);
        out
    }

    fn printf(format: &str, args: &[Value]) -> String {
        sprintf(format, &args.iter().collect::<Vec<_>>()).expect("formats")
    }

    #[test]
    fn floats_print_like_go() {
        let cases = [
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (100000.0, "100000"),
            (1000000.0, "1e+06"),
            (123456789.0, "1.23456789e+08"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.23456, "1.23456"),
            (-2.5, "-2.5"),
            (1e21, "1e+21"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ];
        for (f, want) in cases {
            assert_eq!(v(&Value::Float(f)), want, "{f}");
        }
    }

    #[test]
    fn composite_values() {
        let map = Value::Map(BTreeMap::from([
            ("b".to_owned(), Value::Int(2)),
            (
                "a".to_owned(),
                Value::List(vec![Value::Bool(true), Value::Null]),
            ),
        ]));
        assert_eq!(v(&map), "map[a:[true <nil>] b:2]");
    }

    #[test]
    fn sprint_spacing() {
        let (a, one, two) = (Value::Str("a".into()), Value::Int(1), Value::Int(2));
        assert_eq!(sprint(&[&one, &two, &a, &one]), "1 2a1");
        assert_eq!(sprintln(&[&a, &one]), "a 1\n");
    }

    #[test]
    fn printf_verbs() {
        let s = |x: &str| Value::Str(x.into());
        let i = Value::Int;
        let cases: Vec<(&str, Vec<Value>, &str)> = vec![
            ("%s|%v|%d", vec![s("a"), i(1), i(-2)], "a|1|-2"),
            (
                "%5d|%-5d|%05d|%+d",
                vec![i(42), i(42), i(-42), i(3)],
                "   42|42   |-0042|+3",
            ),
            (
                "%x|%X|%#x|%o|%O|%b",
                vec![i(255), i(255), i(255), i(8), i(8), i(5)],
                "ff|FF|0xff|10|0o10|101",
            ),
            ("%q|%q", vec![s("a\"b\n"), i(97)], "\"a\\\"b\\n\"|'a'"),
            ("%c|%U", vec![i(233), i(233)], "é|U+00E9"),
            (
                "%t|%v",
                vec![Value::Bool(true), Value::Bool(false)],
                "true|false",
            ),
            (
                "%.2f|%8.3f|%e|%g|%.3g",
                vec![
                    Value::Float(1.23456),
                    Value::Float(2.5),
                    Value::Float(1234.5678),
                    Value::Float(0.000012),
                    Value::Float(1234.5678),
                ],
                "1.23|   2.500|1.234568e+03|1.2e-05|1.23e+03",
            ),
            (
                "%.2s|%-4s|%4s",
                vec![s("héllo"), s("ab"), s("ab")],
                "hé|ab  |  ab",
            ),
            ("%x", vec![s("hi")], "6869"),
            ("100%%", vec![], "100%"),
            ("%d", vec![], "%!d(MISSING)"),
            ("%d", vec![s("x")], "%!d(string=x)"),
            ("a", vec![i(1), s("b")], "a%!(EXTRA int=1, string=b)"),
            ("%", vec![], "%!(NOVERB)"),
            ("%*d|%-*d", vec![i(4), i(7), i(3), i(1)], "   7|1  "),
            ("%.*f", vec![i(-3), Value::Float(1.5)], "1.500000"),
            ("%v", vec![Value::List(vec![s("a"), i(1)])], "[a 1]"),
            (
                "%q",
                vec![Value::List(vec![s("a"), s("b")])],
                "[\"a\" \"b\"]",
            ),
            ("%v|%d", vec![Value::Null, Value::Null], "<nil>|%!d(<nil>)"),
            ("%.0d|%.3d", vec![i(0), i(7)], "|007"),
            (
                "%08.3f|%+.1e",
                vec![Value::Float(-1.23456), Value::Float(12345.0)],
                "-001.235|+1.2e+04",
            ),
        ];
        for (format, args, want) in cases {
            assert_eq!(printf(format, &args), want, "{format}");
        }
    }

    #[test]
    fn issue_12_item_4_widths_and_precisions_are_bounded() {
        let args = [Value::Float(1.5)];
        let args: Vec<&Value> = args.iter().collect();
        assert_eq!(
            sprintf("%.10000f", &args).expect("at the limit").len(),
            10_002
        );
        assert_eq!(
            sprintf("%10000d", &[&Value::Int(1)]).expect("at the limit"),
            format!("{:>10000}", 1)
        );
        for (format, args, want) in [
            (
                "%.70000f",
                vec![Value::Float(1.5)],
                "precision 70000 is too large; widths and precisions go up to 10000",
            ),
            (
                "%.70000e",
                vec![Value::Float(1.5)],
                "precision 70000 is too large; widths and precisions go up to 10000",
            ),
            (
                "%.70000g",
                vec![Value::Float(1.5)],
                "precision 70000 is too large; widths and precisions go up to 10000",
            ),
            (
                "%70000d",
                vec![Value::Int(1)],
                "width 70000 is too large; widths and precisions go up to 10000",
            ),
            (
                "%*d",
                vec![Value::Int(-70000), Value::Int(1)],
                "width 70000 is too large; widths and precisions go up to 10000",
            ),
            (
                "%*d",
                vec![Value::Int(i64::MIN), Value::Int(1)],
                "width 9223372036854775808 is too large; widths and precisions go up to 10000",
            ),
            (
                "%.*f",
                vec![Value::Int(70_000), Value::Float(1.0)],
                "precision 70000 is too large; widths and precisions go up to 10000",
            ),
            (
                "%99999999999999999999999999s",
                vec![Value::Str("x".into())],
                "width 18446744073709551615 is too large; widths and precisions go up to 10000",
            ),
        ] {
            let args: Vec<&Value> = args.iter().collect();
            assert_eq!(sprintf(format, &args).unwrap_err(), want, "{format}");
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(
            quote("tab\there\u{1}\u{a0}\u{1F600}", '"'),
            "\"tab\\there\\x01\\u00a0\u{1F600}\""
        );
        assert_eq!(quote("'", '\''), "'\\''");
    }
}
