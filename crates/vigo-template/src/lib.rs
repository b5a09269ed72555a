//! Go `text/template` syntax for Vigo module fields (`content`, `command`,
//! `stdin`, `secret_file`).
//!
//! Vigo's own engine rather than a port: templates are parsed once per config
//! load ([`Template::parse`]) and rendered once per envoy
//! ([`Template::render`]). Secrets never enter the engine as text: a var that
//! holds a `secret:` reference is a [`Value::Secret`], an opaque token that
//! can only be printed verbatim. Rendering yields [`Output`], a list of
//! literal text and secret references, so the caller sees exactly where each
//! secret lands (taint tracking) and no engine error can ever contain a
//! secret value.
//!
//! Main types: [`Template`], [`Value`], [`RenderOptions`], [`Output`],
//! [`TemplateError`].
//!
//! # The language
//!
//! Go's `text/template` semantics, with these Vigo rules:
//!
//! - Text and actions `{{ ... }}`; `{{- ` and ` -}}` trim all whitespace
//!   (newlines included) before or after the action (the dash must be
//!   followed, or preceded, by a space); comments `{{/* ... */}}`.
//! - Pipelines: fields `.Vars.db_password`, `.`, `$`, `$x`, `$x.field`,
//!   `(pipeline).field`; `$x := pipeline` declares, `$x = pipeline` assigns;
//!   literals (`"..."` with Go escapes, `` `raw` ``, `'c'`, integers in
//!   decimal, `0x`, `0o`, `0b` and leading-`0` octal, floats in decimal and
//!   hexadecimal (`0x1.8p1`), `_` between digits, `true`, `false`, `nil`);
//!   `|` passes the value on as the last argument of the next function.
//! - Control: `if`/`else if`/`else`/`end`, `with`/`else with`/`else`/`end`,
//!   `range` over lists (in order), maps (in key order) and integers, with
//!   `range $i, $v := ...`, `{{else}}` for an empty collection, `break` and
//!   `continue`. A variable lives until the `end` of the control structure
//!   that declares it. `define`, `template` and `block` are not supported.
//! - Functions: Go's `and or not len index slice print printf println html
//!   js urlquery eq ne lt le gt ge` (not `call`: the data holds no
//!   functions), and `secret_file` (only with
//!   [`RenderOptions::allow_secret_file`]; it renders the literal text
//!   `{{secret_file}}`). Unknown functions and undefined variables are parse
//!   errors. `slice` cuts strings by byte, but only between characters, and
//!   a list's capacity is its length; `printf "%T"` names the Go type of the
//!   same data decoded from YAML (`int`, `float64`, `string`, `bool`,
//!   `[]interface {}`, `map[string]interface {}`, `<nil>`).
//! - Truthiness as Go: `false`, `0`, `0.0`, `""`, empty lists and maps and
//!   `nil` are false; everything else, a secret included, is true.
//! - A field missing from a map is an error, in `if` and `with` too:
//!   `missing var 'nope' (.Vars.nope)` for the top-level `.Vars` map,
//!   `missing key 'Nam' in .Envoy (.Envoy.Nam)` for any other map. Use
//!   `index .Vars "name"` to test an optional var: it yields `nil` when the
//!   key is absent.
//! - Secrets: printing a secret (`{{ .Vars.db_password }}`, `{{ . }}` inside
//!   `with` or `range`) yields a [`Piece::Secret`]. Passing a secret to any
//!   function or comparison, ranging over it, reading a field of it, or
//!   printing a list or map that holds one is an error naming its path.
//! - Printing: strings as they are, numbers and booleans as Go prints them,
//!   `nil` as nothing, lists as `[a b]`, maps as `map[k:v]` in key order.
//! - Errors carry the 1-based line and column (in characters) of the token
//!   at fault: the keyword of an unclosed `if`, the start of a field chain
//!   such as `.Vars.nope`, the name of a failing function. Messages hold
//!   names, types, positions and secret paths, never a value from the data.
//! - Limits: 100 levels of nesting (control structures and parentheses),
//!   10 million loop iterations and 64 MiB of output per render; `printf`
//!   widths and precisions up to 10,000 (more is an error at the `printf`).
//!   No template and no data make the engine panic (property-tested).
//!
//! # Example
//!
//! ```
//! use std::collections::BTreeMap;
//!
//! use vigo_secrets::SecretPath;
//! use vigo_template::{Piece, RenderOptions, Template, Value};
//!
//! let template = Template::parse("password={{ .Vars.db_password }} # {{ .Envoy.Name }}\n")?;
//! let vars = BTreeMap::from([(
//!     "db_password".to_owned(),
//!     Value::Secret(SecretPath::parse("vigo/db/password")?),
//! )]);
//! let envoy = BTreeMap::from([("Name".to_owned(), Value::from("db1"))]);
//! let data = Value::Map(BTreeMap::from([
//!     ("Vars".to_owned(), Value::Map(vars)),
//!     ("Envoy".to_owned(), Value::Map(envoy)),
//! ]));
//! let output = template.render(&data, RenderOptions::default())?;
//! assert_eq!(
//!     output.0,
//!     [
//!         Piece::Text("password=".into()),
//!         Piece::Secret(SecretPath::parse("vigo/db/password")?),
//!         Piece::Text(" # db1\n".into()),
//!     ]
//! );
//!
//! let error = Template::parse("{{ .Vars.nope }}")?
//!     .render(&data, RenderOptions::default())
//!     .unwrap_err();
//! assert_eq!(error.to_string(), "line 1, column 4: missing var 'nope' (.Vars.nope)");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod ast;
mod escape;
mod eval;
mod format;
mod funcs;
mod lexer;
mod parser;

use std::collections::BTreeMap;

use vigo_secrets::SecretPath;

pub use funcs::SECRET_FILE_TEXT;

/// Data a template renders against (`.Vars`, `.Envoy`, ...).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Go's nil.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A list (`range` iterates it).
    List(Vec<Value>),
    /// A map with string keys (`.Key` and `index` look up; `range` iterates in
    /// key order).
    Map(BTreeMap<String, Value>),
    /// A secret, by reference: printable only as a whole, verbatim; passing it
    /// to any function or comparison is an error naming the path.
    Secret(SecretPath),
}

impl Value {
    /// The name of this value's type as error messages say it (`string`,
    /// `map`, `secret`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Map(_) => "map",
            Value::Secret(_) => "secret",
        }
    }
}

impl Value {
    /// The type with its article, for messages: `an int`, `a string`, `nil`.
    pub(crate) fn a_type_name(&self) -> &'static str {
        match self {
            Value::Null => "nil",
            Value::Bool(_) => "a bool",
            Value::Int(_) => "an int",
            Value::Float(_) => "a float",
            Value::Str(_) => "a string",
            Value::List(_) => "a list",
            Value::Map(_) => "a map",
            Value::Secret(_) => "a secret",
        }
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Value::Str(value.to_owned())
    }
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Value::Str(value)
    }
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Value::Int(value)
    }
}

impl From<f64> for Value {
    fn from(value: f64) -> Self {
        Value::Float(value)
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Value::Bool(value)
    }
}

impl From<Vec<Value>> for Value {
    fn from(value: Vec<Value>) -> Self {
        Value::List(value)
    }
}

impl From<BTreeMap<String, Value>> for Value {
    fn from(value: BTreeMap<String, Value>) -> Self {
        Value::Map(value)
    }
}

impl From<SecretPath> for Value {
    fn from(value: SecretPath) -> Self {
        Value::Secret(value)
    }
}

/// A piece of rendered output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text.
    Text(String),
    /// The value of this secret goes here.
    Secret(SecretPath),
}

/// The result of rendering: text and secret references, adjacent text merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output(pub Vec<Piece>);

impl Output {
    /// The rendered text when no secret is inside, `None` otherwise.
    pub fn plain_text(&self) -> Option<String> {
        let mut text = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => text.push_str(t),
                Piece::Secret(_) => return None,
            }
        }
        Some(text)
    }

    /// Whether any secret is inside.
    pub fn has_secrets(&self) -> bool {
        self.0.iter().any(|p| matches!(p, Piece::Secret(_)))
    }

    /// The secrets inside, in output order (a path appears once per use).
    pub fn secret_paths(&self) -> impl Iterator<Item = &SecretPath> {
        self.0.iter().filter_map(|p| match p {
            Piece::Secret(path) => Some(path),
            Piece::Text(_) => None,
        })
    }
}

/// Per-render switches.
#[derive(Debug, Clone, Copy, Default)]
pub struct RenderOptions {
    /// Whether `{{secret_file}}` is available (exec `command` only). It
    /// renders as the literal text `{{secret_file}}`, which the envoy
    /// replaces with the transient file's path.
    pub allow_secret_file: bool,
}

/// A parse or render error. `line` and `column` are 1-based and relative to
/// the start of the template text; the message names the field, var or
/// function involved and never contains a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct TemplateError {
    /// 1-based line within the template text.
    pub line: usize,
    /// 1-based column (in characters) within that line.
    pub column: usize,
    /// What is wrong, e.g. `missing var 'db_password' (.Vars.db_password)`.
    pub message: String,
}

impl TemplateError {
    pub(crate) fn at(pos: ast::Pos, message: impl Into<String>) -> Self {
        TemplateError {
            line: pos.line as usize,
            column: pos.col as usize,
            message: message.into(),
        }
    }
}

/// A parsed template, ready to render many times.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<ast::Node>,
    literal: bool,
}

impl Template {
    /// Parses `source`.
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let parsed = parser::parse(source)?;
        Ok(Template {
            nodes: parsed.nodes,
            literal: parsed.literal,
        })
    }

    /// Renders against `data` (the value `.` starts as).
    pub fn render(&self, data: &Value, options: RenderOptions) -> Result<Output, TemplateError> {
        eval::render(&self.nodes, data, options)
    }

    /// Whether the template is plain text with no actions (renders to itself).
    pub fn is_literal(&self) -> bool {
        self.literal
    }

    /// The names `x` of the top-level vars the template reads as `.Vars.x`
    /// or `$.Vars.x`, sorted and without duplicates. Vars read another way
    /// (`index .Vars "x"`, or `.x` inside `{{with .Vars}}`) are not listed.
    pub fn var_refs(&self) -> Vec<&str> {
        let mut names = Vec::new();
        ast::collect_var_refs(&self.nodes, true, &mut names);
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Whether the template calls `secret_file` anywhere.
    pub fn uses_secret_file(&self) -> bool {
        ast::uses_func(&self.nodes, funcs::Func::SecretFile)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> SecretPath {
        SecretPath::parse(p).expect("valid test path")
    }

    #[test]
    fn output_helpers() {
        let out = Output(vec![
            Piece::Text("a".into()),
            Piece::Secret(path("vigo/x")),
            Piece::Text("b".into()),
        ]);
        assert_eq!(out.plain_text(), None);
        assert!(out.has_secrets());
        assert_eq!(
            out.secret_paths()
                .map(SecretPath::as_str)
                .collect::<Vec<_>>(),
            ["vigo/x"]
        );
        let plain = Output(vec![Piece::Text("a".into())]);
        assert_eq!(plain.plain_text().as_deref(), Some("a"));
        assert!(!plain.has_secrets());
        assert_eq!(Output::default().plain_text().as_deref(), Some(""));
    }

    #[test]
    fn literal_templates() {
        assert!(
            Template::parse("plain } text")
                .expect("parses")
                .is_literal()
        );
        assert!(
            !Template::parse("a {{/* c */}}")
                .expect("parses")
                .is_literal()
        );
        assert!(!Template::parse("{{ 1 }}").expect("parses").is_literal());
    }

    #[test]
    fn var_refs_lists_static_references() {
        let t = Template::parse(
            "{{ .Vars.b }}{{ $.Vars.a.x }}{{ with .Envoy }}{{ .Vars.c }}{{ $.Vars.d }}{{ end }}{{ .Vars.b }}",
        )
        .expect("parses");
        assert_eq!(t.var_refs(), ["a", "b", "d"]);
    }

    #[test]
    fn uses_secret_file_finds_nested_calls() {
        let t = Template::parse("{{ if true }}{{ print (secret_file) }}{{ end }}").expect("parses");
        assert!(t.uses_secret_file());
        assert!(
            !Template::parse("{{ .Vars.x }}")
                .expect("parses")
                .uses_secret_file()
        );
    }

    #[test]
    fn value_conversions() {
        assert_eq!(Value::from("a"), Value::Str("a".into()));
        assert_eq!(Value::from(3), Value::Int(3));
        assert_eq!(Value::from(true).type_name(), "bool");
        assert_eq!(Value::from(path("a/b")).type_name(), "secret");
    }
}
