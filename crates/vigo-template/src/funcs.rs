//! The built-in functions: Go's `and or not len index slice print printf
//! println html js urlquery eq ne lt le gt ge`, and Vigo's `secret_file`.
//!
//! Functions are resolved by name at parse time (an unknown name is a parse
//! error, as in Go). The evaluator refuses secrets before a function sees its
//! arguments, so nothing here can read or leak one; error texts name types,
//! never values.

use std::borrow::Cow;

use crate::Value;
use crate::{escape, format};

/// What `{{secret_file}}` renders as; the envoy replaces it with the path of
/// the transient file that holds the secret.
pub const SECRET_FILE_TEXT: &str = "{{secret_file}}";

/// A value during rendering: borrowed from the data or the template when
/// possible, owned when a function made it.
pub(crate) type Val<'a> = Cow<'a, Value>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    And,
    Or,
    Not,
    Len,
    Index,
    Slice,
    Print,
    Printf,
    Println,
    Html,
    Js,
    Urlquery,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    SecretFile,
}

impl Func {
    pub(crate) fn lookup(name: &str) -> Option<Func> {
        Some(match name {
            "and" => Func::And,
            "or" => Func::Or,
            "not" => Func::Not,
            "len" => Func::Len,
            "index" => Func::Index,
            "slice" => Func::Slice,
            "print" => Func::Print,
            "printf" => Func::Printf,
            "println" => Func::Println,
            "html" => Func::Html,
            "js" => Func::Js,
            "urlquery" => Func::Urlquery,
            "eq" => Func::Eq,
            "ne" => Func::Ne,
            "lt" => Func::Lt,
            "le" => Func::Le,
            "gt" => Func::Gt,
            "ge" => Func::Ge,
            "secret_file" => Func::SecretFile,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Func::And => "and",
            Func::Or => "or",
            Func::Not => "not",
            Func::Len => "len",
            Func::Index => "index",
            Func::Slice => "slice",
            Func::Print => "print",
            Func::Printf => "printf",
            Func::Println => "println",
            Func::Html => "html",
            Func::Js => "js",
            Func::Urlquery => "urlquery",
            Func::Eq => "eq",
            Func::Ne => "ne",
            Func::Lt => "lt",
            Func::Le => "le",
            Func::Gt => "gt",
            Func::Ge => "ge",
            Func::SecretFile => "secret_file",
        }
    }

    /// The least and the most arguments the function takes.
    fn arity(self) -> (usize, Option<usize>) {
        match self {
            Func::And | Func::Or | Func::Index | Func::Slice | Func::Printf => (1, None),
            Func::Not | Func::Len => (1, Some(1)),
            Func::Print | Func::Println | Func::Html | Func::Js | Func::Urlquery => (0, None),
            Func::Eq => (2, None),
            Func::Ne | Func::Lt | Func::Le | Func::Gt | Func::Ge => (2, Some(2)),
            Func::SecretFile => (0, Some(0)),
        }
    }

    /// Checks a call's argument count (piped value included), as Go's
    /// `wrong number of args for len: want 1 got 2`.
    pub(crate) fn check_arity(self, got: usize) -> Result<(), String> {
        let (min, max) = self.arity();
        match max {
            Some(max) if min == max && got != min => Err(format!(
                "wrong number of args for {}: want {min} got {got}",
                self.name()
            )),
            Some(max) if got > max => Err(format!(
                "wrong number of args for {}: want at most {max} got {got}",
                self.name()
            )),
            _ if got < min => Err(format!(
                "wrong number of args for {}: want at least {min} got {got}",
                self.name()
            )),
            _ => Ok(()),
        }
    }

    /// Whether the function turns its arguments into text (so a secret
    /// nested in a list or map argument must be refused too).
    pub(crate) fn formats(self) -> bool {
        matches!(
            self,
            Func::Print | Func::Printf | Func::Println | Func::Html | Func::Js | Func::Urlquery
        )
    }
}

/// Go's truth: false, 0, "", empty lists and maps and nil are false.
pub(crate) fn truth(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        Value::Float(f) => *f != 0.0,
        Value::Str(s) => !s.is_empty(),
        Value::List(l) => !l.is_empty(),
        Value::Map(m) => !m.is_empty(),
        Value::Secret(_) => true,
    }
}

/// One step into a list or map.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step<'k> {
    Key(&'k str),
    Index(usize),
}

fn lookup<'v>(value: &'v Value, step: Step<'_>) -> Option<&'v Value> {
    match (value, step) {
        (Value::Map(m), Step::Key(k)) => m.get(k),
        (Value::List(l), Step::Index(i)) => l.get(i),
        _ => None,
    }
}

/// Looks `step` up in `value`, borrowing when `value` is borrowed.
pub(crate) fn project<'a>(value: &Val<'a>, step: Step<'_>) -> Option<Val<'a>> {
    match value {
        Cow::Borrowed(b) => lookup(b, step).map(Cow::Borrowed),
        Cow::Owned(o) => lookup(o, step).map(|v| Cow::Owned(v.clone())),
    }
}

/// Applies a function to evaluated arguments that hold no secret at the top
/// level (the evaluator checks). The error is the part after
/// `error calling NAME: `.
pub(crate) fn apply<'a>(func: Func, args: Vec<Val<'a>>) -> Result<Val<'a>, String> {
    func.check_arity(args.len())?;
    let owned = |v: Value| Ok(Cow::Owned(v));
    match func {
        Func::And => Ok(pick(args, |v| !truth(v))),
        Func::Or => Ok(pick(args, truth)),
        Func::Not => owned(Value::Bool(!args.iter().any(|a| truth(a)))),
        Func::Len => len(&args[0]).map(|n| Cow::Owned(Value::Int(n))),
        Func::Index => index(args),
        Func::Slice => slice(args),
        Func::Print => owned(Value::Str(format::sprint(&refs(&args)))),
        Func::Println => owned(Value::Str(format::sprintln(&refs(&args)))),
        Func::Html => owned(Value::Str(escape::html(&escaper_text(&args)))),
        Func::Js => owned(Value::Str(escape::js(&escaper_text(&args)))),
        Func::Urlquery => owned(Value::Str(escape::query(&escaper_text(&args)))),
        Func::Printf => match &*args[0] {
            Value::Str(f) => owned(Value::Str(format::sprintf(f, &refs(&args[1..]))?)),
            other => Err(format!(
                "the format must be a string, not {}",
                other.a_type_name()
            )),
        },
        Func::Eq => {
            for other in &args[1..] {
                if equal(&args[0], other)? {
                    return owned(Value::Bool(true));
                }
            }
            owned(Value::Bool(false))
        }
        Func::Ne => owned(Value::Bool(!equal(&args[0], &args[1])?)),
        Func::Lt => owned(Value::Bool(less(&args[0], &args[1])?)),
        Func::Le => owned(Value::Bool(less_or_equal(&args[0], &args[1])?)),
        Func::Gt => owned(Value::Bool(!less_or_equal(&args[0], &args[1])?)),
        Func::Ge => owned(Value::Bool(!less(&args[0], &args[1])?)),
        Func::SecretFile => owned(Value::Str(SECRET_FILE_TEXT.to_owned())),
    }
}

fn refs<'r>(args: &'r [Val<'_>]) -> Vec<&'r Value> {
    args.iter().map(|a| &**a).collect()
}

/// `and`/`or` when every argument is already evaluated: the first argument
/// for which `stop` holds, else the last.
fn pick<'a>(args: Vec<Val<'a>>, stop: impl Fn(&Value) -> bool) -> Val<'a> {
    let mut last = Cow::Owned(Value::Null);
    for arg in args {
        if stop(&arg) {
            return arg;
        }
        last = arg;
    }
    last
}

fn len(value: &Value) -> Result<i64, String> {
    let n = match value {
        Value::Str(s) => s.len(),
        Value::List(l) => l.len(),
        Value::Map(m) => m.len(),
        Value::Null => return Err("len of nil".into()),
        other => return Err(format!("len of type {}", other.type_name())),
    };
    Ok(i64::try_from(n).unwrap_or(i64::MAX))
}

fn index(args: Vec<Val<'_>>) -> Result<Val<'_>, String> {
    let mut args = args.into_iter();
    let Some(mut item) = args.next() else {
        return Err("wrong number of args for index: want at least 1 got 0".into());
    };
    for key in args {
        let next = match (&*item, &*key) {
            (Value::Secret(path), _) | (_, Value::Secret(path)) => {
                return Err(format!(
                    "secret '{path}' cannot be indexed; secrets can only be inserted as they are"
                ));
            }
            (Value::List(l), Value::Int(i)) => usize::try_from(*i)
                .ok()
                .and_then(|i| project(&item, Step::Index(i)))
                .ok_or_else(|| format!("index out of range: the list has {} elements", l.len()))?,
            (Value::Map(_), Value::Str(k)) => {
                project(&item, Step::Key(k)).unwrap_or(Cow::Owned(Value::Null))
            }
            (Value::Str(s), Value::Int(i)) => usize::try_from(*i)
                .ok()
                .and_then(|i| s.as_bytes().get(i))
                .map(|b| Cow::Owned(Value::Int(i64::from(*b))))
                .ok_or_else(|| format!("index out of range: the string has {} bytes", s.len()))?,
            (Value::List(_), k) => {
                return Err(format!("cannot index a list with {}", k.a_type_name()));
            }
            (Value::Map(_), k) => {
                return Err(format!("cannot index a map with {}", k.a_type_name()));
            }
            (Value::Str(_), k) => {
                return Err(format!("cannot index a string with {}", k.a_type_name()));
            }
            (Value::Null, _) => return Err("index of nil".into()),
            (other, _) => return Err(format!("cannot index {}", other.a_type_name())),
        };
        item = next;
    }
    Ok(item)
}

/// Go's `slice`: `slice x` is `x[:]`, `slice x 1` is `x[1:]`, `slice x 1 2`
/// is `x[1:2]` and `slice x 1 2 3` is `x[1:2:3]`, on strings (by byte) and
/// lists. A list's capacity is its length. The messages name no index: an
/// index may come from the data.
fn slice(args: Vec<Val<'_>>) -> Result<Val<'_>, String> {
    let mut args = args.into_iter();
    let Some(item) = args.next() else {
        return Err("wrong number of args for slice: want at least 1 got 0".into());
    };
    let indexes: Vec<Val<'_>> = args.collect();
    if indexes.len() > 3 {
        return Err(format!("too many slice indexes: {}", indexes.len()));
    }
    let (len, kind, unit) = match &*item {
        Value::Str(_) if indexes.len() == 3 => {
            return Err("cannot 3-index slice a string".into());
        }
        Value::Str(s) => (s.len(), "string", "bytes"),
        Value::List(l) => (l.len(), "list", "elements"),
        Value::Null => return Err("slice of untyped nil".into()),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    let mut bounds = [0, len, len];
    for (bound, index) in bounds.iter_mut().zip(&indexes) {
        *bound = match &**index {
            Value::Int(i) => usize::try_from(*i)
                .ok()
                .filter(|i| *i <= len)
                .ok_or_else(|| format!("index out of range: the {kind} has {len} {unit}"))?,
            Value::Null => return Err("cannot index slice/array with nil".into()),
            other => {
                return Err(format!(
                    "cannot index slice/array with type {}",
                    other.type_name()
                ));
            }
        };
    }
    let [low, high, max] = bounds;
    if low > high {
        return Err("invalid slice index: the first index is greater than the second".into());
    }
    if high > max {
        return Err("invalid slice index: the second index is greater than the third".into());
    }
    match &*item {
        Value::Str(s) => match s.get(low..high) {
            Some(part) => Ok(Cow::Owned(Value::Str(part.to_owned()))),
            None => Err(
                "slicing a string must cut between characters, not inside a multi-byte UTF-8 character"
                    .into(),
            ),
        },
        Value::List(l) => Ok(Cow::Owned(Value::List(l[low..high].to_vec()))),
        // Every other kind returned above.
        _ => Err(format!("can't slice item of type {}", item.type_name())),
    }
}

/// What `html`, `js` and `urlquery` escape: Go's `evalArgs`, which is
/// `fmt.Sprint` of the arguments with nil as `<no value>`, or a lone string
/// as it is.
fn escaper_text(args: &[Val<'_>]) -> String {
    if let [only] = args
        && let Value::Str(s) = &**only
    {
        return s.clone();
    }
    let no_value = Value::Str(NO_VALUE.to_owned());
    let printable: Vec<&Value> = args
        .iter()
        .map(|a| match &**a {
            Value::Null => &no_value,
            other => other,
        })
        .collect();
    format::sprint(&printable)
}

/// How Go's escaping builtins print a nil argument.
const NO_VALUE: &str = "<no value>";

/// Go's `eq` on two values.
fn equal(a: &Value, b: &Value) -> Result<bool, String> {
    match (a, b) {
        (Value::Null, Value::Null) => Ok(true),
        (Value::Null, _) | (_, Value::Null) => Ok(false),
        (Value::Bool(x), Value::Bool(y)) => Ok(x == y),
        (Value::Int(x), Value::Int(y)) => Ok(x == y),
        (Value::Float(x), Value::Float(y)) => Ok(x == y),
        (Value::Str(x), Value::Str(y)) => Ok(x == y),
        (Value::List(_), Value::List(_)) | (Value::Map(_), Value::Map(_)) => {
            Err(format!("non-comparable type {}", a.type_name()))
        }
        _ => Err(incompatible(a, b)),
    }
}

fn less(a: &Value, b: &Value) -> Result<bool, String> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x < y),
        (Value::Float(x), Value::Float(y)) => Ok(x < y),
        (Value::Str(x), Value::Str(y)) => Ok(x < y),
        _ => {
            for v in [a, b] {
                if !matches!(v, Value::Int(_) | Value::Float(_) | Value::Str(_)) {
                    return Err(format!("invalid type for comparison: {}", v.type_name()));
                }
            }
            Err(incompatible(a, b))
        }
    }
}

fn less_or_equal(a: &Value, b: &Value) -> Result<bool, String> {
    Ok(less(a, b)? || equal(a, b)?)
}

fn incompatible(a: &Value, b: &Value) -> String {
    format!(
        "incompatible types for comparison: {} and {}",
        a.type_name(),
        b.type_name()
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn call(func: Func, args: Vec<Value>) -> Result<Value, String> {
        apply(func, args.into_iter().map(Cow::Owned).collect()).map(Cow::into_owned)
    }

    fn s(v: &str) -> Value {
        Value::Str(v.into())
    }

    #[test]
    fn lookup_and_names_round_trip() {
        for name in [
            "and",
            "or",
            "not",
            "len",
            "index",
            "slice",
            "print",
            "printf",
            "println",
            "html",
            "js",
            "urlquery",
            "eq",
            "ne",
            "lt",
            "le",
            "gt",
            "ge",
            "secret_file",
        ] {
            assert_eq!(Func::lookup(name).map(Func::name), Some(name));
        }
        assert_eq!(Func::lookup("call"), None);
    }

    #[test]
    fn arity_messages() {
        assert_eq!(
            Func::Len.check_arity(2).unwrap_err(),
            "wrong number of args for len: want 1 got 2"
        );
        assert_eq!(
            Func::Index.check_arity(0).unwrap_err(),
            "wrong number of args for index: want at least 1 got 0"
        );
        assert!(Func::Print.check_arity(0).is_ok());
        assert!(Func::SecretFile.check_arity(1).is_err());
    }

    #[test]
    fn truthiness() {
        for falsy in [
            Value::Null,
            Value::Bool(false),
            Value::Int(0),
            Value::Float(0.0),
            s(""),
        ] {
            assert!(!truth(&falsy), "{falsy:?}");
        }
        assert!(!truth(&Value::List(vec![])));
        assert!(!truth(&Value::Map(BTreeMap::new())));
        assert!(truth(&s("x")));
        assert!(truth(&Value::Int(-1)));
    }

    #[test]
    fn and_or_not() {
        assert_eq!(call(Func::And, vec![Value::Int(1), s("")]), Ok(s("")));
        assert_eq!(call(Func::And, vec![Value::Int(1), s("a")]), Ok(s("a")));
        assert_eq!(
            call(Func::Or, vec![s(""), Value::Int(0)]),
            Ok(Value::Int(0))
        );
        assert_eq!(call(Func::Or, vec![s(""), s("b")]), Ok(s("b")));
        assert_eq!(call(Func::Not, vec![s("")]), Ok(Value::Bool(true)));
    }

    #[test]
    fn len_and_index() {
        assert_eq!(call(Func::Len, vec![s("hé")]), Ok(Value::Int(3)));
        assert_eq!(
            call(Func::Len, vec![Value::Int(1)]),
            Err("len of type int".into())
        );
        let list = Value::List(vec![s("a"), s("b")]);
        assert_eq!(
            call(Func::Index, vec![list.clone(), Value::Int(1)]),
            Ok(s("b"))
        );
        assert_eq!(
            call(Func::Index, vec![list.clone(), Value::Int(5)]),
            Err("index out of range: the list has 2 elements".into())
        );
        assert_eq!(
            call(Func::Index, vec![list, s("x")]),
            Err("cannot index a list with a string".into())
        );
        let map = Value::Map(BTreeMap::from([("k".to_owned(), s("v"))]));
        assert_eq!(call(Func::Index, vec![map.clone(), s("k")]), Ok(s("v")));
        assert_eq!(call(Func::Index, vec![map, s("nope")]), Ok(Value::Null));
        assert_eq!(
            call(Func::Index, vec![Value::Null, s("k")]),
            Err("index of nil".into())
        );
        assert_eq!(
            call(Func::Index, vec![s("ab"), Value::Int(1)]),
            Ok(Value::Int(98))
        );
    }

    #[test]
    fn index_borrows_from_borrowed_input() {
        let list = Value::List(vec![s("a")]);
        let got = apply(
            Func::Index,
            vec![Cow::Borrowed(&list), Cow::Owned(Value::Int(0))],
        )
        .expect("indexes");
        assert!(matches!(got, Cow::Borrowed(_)));
    }

    #[test]
    fn comparisons() {
        let t = Ok(Value::Bool(true));
        let f = Ok(Value::Bool(false));
        assert_eq!(call(Func::Eq, vec![s("a"), s("b"), s("a")]), t);
        assert_eq!(call(Func::Eq, vec![Value::Null, s("a")]), f);
        assert_eq!(call(Func::Ne, vec![Value::Int(1), Value::Int(2)]), t);
        assert_eq!(
            call(Func::Eq, vec![Value::Int(1), s("1")]),
            Err("incompatible types for comparison: int and string".into())
        );
        assert_eq!(
            call(Func::Eq, vec![Value::List(vec![]), Value::List(vec![])]),
            Err("non-comparable type list".into())
        );
        assert_eq!(call(Func::Lt, vec![Value::Int(1), Value::Int(2)]), t);
        assert_eq!(call(Func::Le, vec![s("b"), s("b")]), t);
        assert_eq!(
            call(Func::Gt, vec![Value::Float(1.5), Value::Float(2.5)]),
            f
        );
        assert_eq!(
            call(Func::Ge, vec![Value::Float(2.5), Value::Float(2.5)]),
            t
        );
        assert_eq!(
            call(Func::Lt, vec![Value::Bool(true), Value::Bool(false)]),
            Err("invalid type for comparison: bool".into())
        );
        assert_eq!(
            call(Func::Lt, vec![Value::Int(1), Value::Float(1.0)]),
            Err("incompatible types for comparison: int and float".into())
        );
    }

    #[test]
    fn printing_functions() {
        assert_eq!(
            call(
                Func::Print,
                vec![s("a"), Value::Int(1), Value::Int(2), s("b")]
            ),
            Ok(s("a1 2b"))
        );
        assert_eq!(
            call(Func::Println, vec![s("a"), Value::Int(1)]),
            Ok(s("a 1\n"))
        );
        assert_eq!(
            call(Func::Printf, vec![s("%s=%d"), s("x"), Value::Int(3)]),
            Ok(s("x=3"))
        );
        assert_eq!(
            call(Func::Printf, vec![Value::Int(3)]),
            Err("the format must be a string, not an int".into())
        );
    }
}
