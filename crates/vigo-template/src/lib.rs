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

use std::collections::BTreeMap;

use vigo_secrets::SecretPath;

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

/// A parsed template, ready to render many times.
#[derive(Debug, Clone)]
pub struct Template {
    _private: (),
}

impl Template {
    /// Parses `source`.
    pub fn parse(_source: &str) -> Result<Self, TemplateError> {
        Err(TemplateError {
            line: 1,
            column: 1,
            message: "the template engine is being written".into(),
        })
    }

    /// Renders against `data` (the value `.` starts as).
    pub fn render(&self, _data: &Value, _options: RenderOptions) -> Result<Output, TemplateError> {
        Err(TemplateError {
            line: 1,
            column: 1,
            message: "the template engine is being written".into(),
        })
    }

    /// Whether the template is plain text with no actions (renders to itself).
    pub fn is_literal(&self) -> bool {
        false
    }
}
