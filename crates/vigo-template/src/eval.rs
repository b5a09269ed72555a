//! Evaluator: walks the node tree against the data and builds the
//! [`Output`].
//!
//! Values are borrowed from the data and the template wherever possible
//! ([`Val`]), variables live in a stack indexed by the slots the parser
//! assigned, and text is appended to one buffer that is cut into a new
//! [`Piece::Text`] only where a secret lands. Secrets are checked at every
//! door: a function argument, a field lookup, a `range`, a printed list or
//! map; the only way through is printing one whole.

use std::borrow::Cow;

use vigo_secrets::SecretPath;

use crate::ast::{Chain, Control, Expr, ExprKind, Node, Pipeline, Pos};
use crate::funcs::{self, Func, Step, Val, truth};
use crate::{Output, Piece, RenderOptions, TemplateError, Value, format};

/// Range iterations allowed in one render, across all loops.
pub(crate) const MAX_ITERATIONS: u64 = 10_000_000;

/// Output allowed from one render.
pub(crate) const MAX_OUTPUT_BYTES: usize = 64 << 20;

/// Nesting of a printed list or map.
const MAX_PRINT_DEPTH: usize = 100;

pub(crate) fn render<'a>(
    nodes: &'a [Node],
    data: &'a Value,
    options: RenderOptions,
) -> Result<Output, TemplateError> {
    let root_vars = match data {
        Value::Map(map) => map.get("Vars"),
        _ => None,
    };
    let mut renderer = Renderer {
        root_vars,
        vars: vec![Cow::Borrowed(data)],
        out: OutputBuffer::default(),
        options,
        iterations: 0,
    };
    renderer.walk(nodes, &Cow::Borrowed(data))?;
    Ok(renderer.out.finish())
}

/// What a list of nodes asks of the enclosing `range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

#[derive(Debug, Default)]
struct OutputBuffer {
    pieces: Vec<Piece>,
    text: String,
    flushed: usize,
}

impl OutputBuffer {
    fn len(&self) -> usize {
        self.flushed + self.text.len()
    }

    fn flush(&mut self) {
        if !self.text.is_empty() {
            self.flushed += self.text.len();
            self.pieces
                .push(Piece::Text(std::mem::take(&mut self.text)));
        }
    }

    fn secret(&mut self, path: &SecretPath) {
        self.flush();
        self.pieces.push(Piece::Secret(path.clone()));
    }

    fn finish(mut self) -> Output {
        self.flush();
        Output(self.pieces)
    }
}

struct Renderer<'a> {
    /// The top-level `.Vars` map, to word its missing keys as missing vars.
    root_vars: Option<&'a Value>,
    /// Variables by slot; slot 0 is `$`.
    vars: Vec<Val<'a>>,
    out: OutputBuffer,
    options: RenderOptions,
    iterations: u64,
}

fn secret_argument(pos: Pos, path: &SecretPath, func: Func) -> TemplateError {
    TemplateError::at(
        pos,
        format!(
            "secret '{path}' cannot be passed to function \"{}\"; secrets can only be inserted as they are",
            func.name()
        ),
    )
}

/// What a value holds, found without recursion: the first secret inside,
/// and whether it nests deeper than can be printed.
fn inspect(value: &Value) -> (Option<&SecretPath>, bool) {
    let mut stack = vec![(value, 0usize)];
    let mut too_deep = false;
    while let Some((value, depth)) = stack.pop() {
        if depth > MAX_PRINT_DEPTH {
            too_deep = true;
        }
        match value {
            Value::Secret(path) => return (Some(path), too_deep),
            Value::List(items) => stack.extend(items.iter().rev().map(|v| (v, depth + 1))),
            Value::Map(map) => stack.extend(map.values().rev().map(|v| (v, depth + 1))),
            _ => {}
        }
    }
    (None, too_deep)
}

impl<'a> Renderer<'a> {
    fn walk(&mut self, nodes: &'a [Node], dot: &Val<'a>) -> Result<Flow, TemplateError> {
        for node in nodes {
            let flow = match node {
                Node::Text(text) => {
                    self.out.text.push_str(text);
                    Flow::Normal
                }
                Node::Action(pipe) => {
                    let value = self.pipeline(pipe, dot)?;
                    if pipe.decls.is_empty() {
                        self.print(&value, pipe.pos)?;
                        self.check_size(pipe.pos)?;
                    }
                    Flow::Normal
                }
                Node::If(control) => {
                    let value = self.pipeline(&control.pipe, dot)?;
                    let flow = if truth(&value) {
                        self.walk(&control.list, dot)?
                    } else {
                        self.walk(&control.else_list, dot)?
                    };
                    self.vars.truncate(control.scope);
                    flow
                }
                Node::With(control) => {
                    let value = self.pipeline(&control.pipe, dot)?;
                    let flow = if truth(&value) {
                        self.walk(&control.list, &value)?
                    } else {
                        self.walk(&control.else_list, dot)?
                    };
                    self.vars.truncate(control.scope);
                    flow
                }
                Node::Range(control) => self.range(control, dot)?,
                Node::Break => Flow::Break,
                Node::Continue => Flow::Continue,
            };
            if flow != Flow::Normal {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn check_size(&self, pos: Pos) -> Result<(), TemplateError> {
        if self.out.len() > MAX_OUTPUT_BYTES {
            return Err(TemplateError::at(
                pos,
                format!(
                    "rendered output is larger than {} MiB",
                    MAX_OUTPUT_BYTES >> 20
                ),
            ));
        }
        Ok(())
    }

    fn print(&mut self, value: &Value, pos: Pos) -> Result<(), TemplateError> {
        match value {
            Value::Secret(path) => self.out.secret(path),
            Value::Null => {}
            Value::Str(s) => self.out.text.push_str(s),
            Value::List(_) | Value::Map(_) => {
                let (secret, too_deep) = inspect(value);
                if let Some(path) = secret {
                    return Err(TemplateError::at(
                        pos,
                        format!(
                            "secret '{path}' is inside a {} and cannot be printed with it; insert each secret on its own",
                            value.type_name()
                        ),
                    ));
                }
                if too_deep {
                    return Err(TemplateError::at(
                        pos,
                        format!(
                            "a {} nested more than {MAX_PRINT_DEPTH} levels deep cannot be printed",
                            value.type_name()
                        ),
                    ));
                }
                format::write_value(&mut self.out.text, value);
            }
            other => format::write_value(&mut self.out.text, other),
        }
        Ok(())
    }

    fn pipeline(&mut self, pipe: &'a Pipeline, dot: &Val<'a>) -> Result<Val<'a>, TemplateError> {
        let value = self.commands(pipe, dot)?;
        self.bind(pipe, &value);
        Ok(value)
    }

    fn commands(&mut self, pipe: &'a Pipeline, dot: &Val<'a>) -> Result<Val<'a>, TemplateError> {
        let mut value: Option<Val<'a>> = None;
        for cmd in &pipe.cmds {
            value = Some(match cmd.head.kind {
                ExprKind::Func(func) => {
                    self.call(func, cmd.head.pos, &cmd.args, value.take(), dot)?
                }
                _ => self.expr(&cmd.head, dot)?,
            });
        }
        value.ok_or_else(|| TemplateError::at(pipe.pos, "missing value for command"))
    }

    /// Declares or assigns the pipeline's variables.
    fn bind(&mut self, pipe: &Pipeline, value: &Val<'a>) {
        for slot in &pipe.decls {
            self.set_var(*slot, value.clone(), pipe.is_assign);
        }
    }

    fn set_var(&mut self, slot: usize, value: Val<'a>, existing: bool) {
        if existing && let Some(var) = self.vars.get_mut(slot) {
            *var = value;
            return;
        }
        self.vars.truncate(slot);
        self.vars.resize(slot, Cow::Owned(Value::Null));
        self.vars.push(value);
    }

    fn range(&mut self, control: &'a Control, dot: &Val<'a>) -> Result<Flow, TemplateError> {
        let value = self.commands(&control.pipe, dot)?;
        self.bind(&control.pipe, &value);
        let mark = self.vars.len();
        let decls = &control.pipe.decls;
        let (key_slot, elem_slot) = match decls.as_slice() {
            [] => (None, None),
            [elem] => (None, Some(*elem)),
            [key, elem, ..] => (Some(*key), Some(*elem)),
        };
        let mut ran = false;
        let mut iterate = |this: &mut Self, key: Key<'_>, elem: Val<'a>| {
            ran = true;
            this.iterations += 1;
            if this.iterations > MAX_ITERATIONS {
                return Err(TemplateError::at(
                    control.pos,
                    format!("rendering took more than {MAX_ITERATIONS} range iterations"),
                ));
            }
            this.check_size(control.pos)?;
            this.vars.truncate(mark);
            if let Some(slot) = key_slot {
                this.set_var(slot, Cow::Owned(key.value()), true);
            }
            if let Some(slot) = elem_slot {
                this.set_var(slot, elem.clone(), true);
            }
            let flow = this.walk(&control.list, &elem)?;
            this.vars.truncate(mark);
            Ok(flow != Flow::Break)
        };
        match &value {
            Cow::Borrowed(Value::List(items)) => {
                for (i, item) in items.iter().enumerate() {
                    if !iterate(self, Key::Index(i), Cow::Borrowed(item))? {
                        break;
                    }
                }
            }
            Cow::Owned(Value::List(items)) => {
                for (i, item) in items.iter().enumerate() {
                    if !iterate(self, Key::Index(i), Cow::Owned(item.clone()))? {
                        break;
                    }
                }
            }
            Cow::Borrowed(Value::Map(map)) => {
                for (key, item) in map.iter() {
                    if !iterate(self, Key::Name(key), Cow::Borrowed(item))? {
                        break;
                    }
                }
            }
            Cow::Owned(Value::Map(map)) => {
                for (key, item) in map {
                    if !iterate(self, Key::Name(key), Cow::Owned(item.clone()))? {
                        break;
                    }
                }
            }
            other => match &**other {
                Value::Int(n) => {
                    if key_slot.is_some() {
                        return Err(TemplateError::at(
                            control.pos,
                            "range over an int takes at most one variable",
                        ));
                    }
                    for i in 0..*n {
                        if !iterate(self, Key::Index(0), Cow::Owned(Value::Int(i)))? {
                            break;
                        }
                    }
                }
                Value::Null => {}
                Value::Secret(path) => {
                    return Err(TemplateError::at(
                        control.pos,
                        format!(
                            "range can't iterate over secret '{path}'; secrets can only be inserted as they are"
                        ),
                    ));
                }
                other => {
                    return Err(TemplateError::at(
                        control.pos,
                        format!("range can't iterate over {}", other.a_type_name()),
                    ));
                }
            },
        }
        let flow = if ran {
            Flow::Normal
        } else {
            self.walk(&control.else_list, dot)?
        };
        self.vars.truncate(control.scope);
        Ok(flow)
    }

    fn expr(&mut self, expr: &'a Expr, dot: &Val<'a>) -> Result<Val<'a>, TemplateError> {
        match &expr.kind {
            ExprKind::Dot => Ok(dot.clone()),
            ExprKind::Literal(value) => Ok(Cow::Borrowed(value)),
            ExprKind::Var(slot) => self
                .vars
                .get(*slot)
                .cloned()
                .ok_or_else(|| TemplateError::at(expr.pos, "variable used outside its scope")),
            ExprKind::Func(func) => self.call(*func, expr.pos, &[], None, dot),
            ExprKind::Pipe(pipe) => self.commands(pipe, dot),
            ExprKind::Chain(chain) => {
                let base = self.expr(&chain.base, dot)?;
                self.fields(base, chain, expr.pos)
            }
        }
    }

    fn fields(
        &self,
        mut value: Val<'a>,
        chain: &Chain,
        pos: Pos,
    ) -> Result<Val<'a>, TemplateError> {
        for (i, name) in chain.fields.iter().enumerate() {
            let next = match &*value {
                Value::Map(_) => match funcs::project(&value, Step::Key(name)) {
                    Some(next) => next,
                    None => return Err(self.missing(&value, chain, i, pos)),
                },
                Value::Secret(path) => {
                    return Err(TemplateError::at(
                        pos,
                        format!(
                            "can't evaluate field '{name}' of secret '{path}' ({}): a secret has no fields",
                            chain.text(i + 1)
                        ),
                    ));
                }
                Value::Null => {
                    return Err(TemplateError::at(
                        pos,
                        format!(
                            "can't evaluate field '{name}' in {}: {} is nil",
                            chain.text(i + 1),
                            chain.text(i)
                        ),
                    ));
                }
                other => {
                    return Err(TemplateError::at(
                        pos,
                        format!(
                            "can't evaluate field '{name}' in {}: {} is {}, not a map",
                            chain.text(i + 1),
                            chain.text(i),
                            other.a_type_name()
                        ),
                    ));
                }
            };
            value = next;
        }
        Ok(value)
    }

    fn missing(&self, map: &Val<'a>, chain: &Chain, i: usize, pos: Pos) -> TemplateError {
        let name = chain.fields.get(i).map_or("", String::as_str);
        let is_root_vars = matches!(
            (self.root_vars, map),
            (Some(vars), Cow::Borrowed(map)) if std::ptr::eq(vars, *map)
        );
        let message = if is_root_vars {
            format!("missing var '{name}' ({})", chain.text(i + 1))
        } else {
            format!(
                "missing key '{name}' in {} ({})",
                chain.text(i),
                chain.text(i + 1)
            )
        };
        TemplateError::at(pos, message)
    }

    fn call(
        &mut self,
        func: Func,
        pos: Pos,
        args: &'a [Expr],
        piped: Option<Val<'a>>,
        dot: &Val<'a>,
    ) -> Result<Val<'a>, TemplateError> {
        match func {
            Func::SecretFile if !self.options.allow_secret_file => {
                return Err(TemplateError::at(
                    pos,
                    "function \"secret_file\" is only available in an exec command",
                ));
            }
            Func::And | Func::Or => return self.and_or(func, pos, args, piped, dot),
            _ => {}
        }
        let mut values: Vec<Val<'a>> = Vec::with_capacity(args.len() + 1);
        for arg in args {
            values.push(self.expr(arg, dot)?);
        }
        values.extend(piped);
        for value in &values {
            if let Value::Secret(path) = &**value {
                return Err(secret_argument(pos, path, func));
            }
            if func.formats() && matches!(&**value, Value::List(_) | Value::Map(_)) {
                let (secret, too_deep) = inspect(value);
                if let Some(path) = secret {
                    return Err(secret_argument(pos, path, func));
                }
                if too_deep {
                    return Err(TemplateError::at(
                        pos,
                        format!(
                            "a value nested more than {MAX_PRINT_DEPTH} levels deep cannot be passed to function \"{}\"",
                            func.name()
                        ),
                    ));
                }
            }
        }
        funcs::apply(func, values).map_err(|message| {
            TemplateError::at(pos, format!("error calling {}: {message}", func.name()))
        })
    }

    /// `and` and `or` evaluate their arguments only as far as needed.
    fn and_or(
        &mut self,
        func: Func,
        pos: Pos,
        args: &'a [Expr],
        mut piped: Option<Val<'a>>,
        dot: &Val<'a>,
    ) -> Result<Val<'a>, TemplateError> {
        let count = args.len() + usize::from(piped.is_some());
        for i in 0..count {
            let value = match args.get(i) {
                Some(arg) => self.expr(arg, dot)?,
                None => piped.take().unwrap_or(Cow::Owned(Value::Null)),
            };
            if let Value::Secret(path) = &*value {
                return Err(secret_argument(pos, path, func));
            }
            let stop = if func == Func::And {
                !truth(&value)
            } else {
                truth(&value)
            };
            if stop || i + 1 == count {
                return Ok(value);
            }
        }
        Err(TemplateError::at(
            pos,
            format!(
                "wrong number of args for {}: want at least 1 got 0",
                func.name()
            ),
        ))
    }
}

/// The key a `range` iteration binds: a list index or a map key.
#[derive(Debug, Clone, Copy)]
enum Key<'k> {
    Index(usize),
    Name(&'k str),
}

impl Key<'_> {
    fn value(self) -> Value {
        match self {
            Key::Index(i) => Value::Int(i64::try_from(i).unwrap_or(i64::MAX)),
            Key::Name(name) => Value::Str(name.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::Template;

    fn data() -> Value {
        let secret = SecretPath::parse("vigo/db/password").expect("valid path");
        Value::Map(BTreeMap::from([
            (
                "Vars".to_owned(),
                Value::Map(BTreeMap::from([
                    ("pw".to_owned(), Value::Secret(secret)),
                    ("name".to_owned(), Value::Str("web".into())),
                    (
                        "list".to_owned(),
                        Value::List(vec![Value::Int(1), Value::Int(2), Value::Int(3)]),
                    ),
                ])),
            ),
            (
                "Envoy".to_owned(),
                Value::Map(BTreeMap::from([(
                    "Name".to_owned(),
                    Value::Str("db1".into()),
                )])),
            ),
        ]))
    }

    fn render(src: &str) -> Result<Output, TemplateError> {
        Template::parse(src)
            .expect("parses")
            .render(&data(), RenderOptions::default())
    }

    fn text(src: &str) -> String {
        render(src)
            .expect("renders")
            .plain_text()
            .expect("no secrets")
    }

    #[test]
    fn secrets_split_the_text() {
        let out = render("a{{ .Vars.pw }}b{{ \"c\" }}").expect("renders");
        assert_eq!(
            out.0,
            [
                Piece::Text("a".into()),
                Piece::Secret(SecretPath::parse("vigo/db/password").expect("valid")),
                Piece::Text("bc".into()),
            ]
        );
    }

    #[test]
    fn missing_keys_name_the_chain() {
        let e = render("{{ .Vars.nope }}").expect_err("missing");
        assert_eq!(e.message, "missing var 'nope' (.Vars.nope)");
        let e = render("{{ .Envoy.Nam }}").expect_err("missing");
        assert_eq!(e.message, "missing key 'Nam' in .Envoy (.Envoy.Nam)");
        let e = render("{{ with .Vars }}{{ .x }}{{ end }}").expect_err("missing");
        assert_eq!(e.message, "missing var 'x' (.x)");
    }

    #[test]
    fn break_and_continue() {
        assert_eq!(
            text("{{ range .Vars.list }}{{ if eq . 2 }}{{ continue }}{{ end }}{{ . }}{{ end }}"),
            "13"
        );
        assert_eq!(
            text("{{ range .Vars.list }}{{ if eq . 2 }}{{ break }}{{ end }}{{ . }}{{ end }}"),
            "1"
        );
    }

    #[test]
    fn variables_use_slots() {
        assert_eq!(
            text("{{ $x := 1 }}{{ range .Vars.list }}{{ $x = . }}{{ $y := 5 }}{{ end }}{{ $x }}"),
            "3"
        );
        assert_eq!(
            text("{{ range $i, $v := .Vars.list }}{{ $i }}={{ $v }};{{ end }}"),
            "0=1;1=2;2=3;"
        );
    }

    #[test]
    fn inspect_finds_nested_secrets_without_recursion() {
        let mut deep = Value::Secret(SecretPath::parse("a/b").expect("valid"));
        for _ in 0..10_000 {
            deep = Value::List(vec![deep]);
        }
        let (secret, too_deep) = inspect(&deep);
        assert_eq!(secret.map(SecretPath::as_str), Some("a/b"));
        assert!(too_deep);
        // Dropping a 10 000-deep value recurses; unwrap it iteratively.
        while let Value::List(mut items) = deep {
            deep = items.pop().unwrap_or(Value::Null);
        }
    }

    #[test]
    fn iteration_budget_stops_runaway_loops() {
        let e = render("{{ range 100000 }}{{ range 1000 }}{{ end }}{{ end }}").expect_err("budget");
        assert!(e.message.contains("range iterations"), "{}", e.message);
    }
}
