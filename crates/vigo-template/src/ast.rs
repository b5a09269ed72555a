//! The parsed form of a template: a tree of nodes built once by the parser
//! and walked by the evaluator on every render.
//!
//! Function names are resolved to [`Func`] and variables to stack slots at
//! parse time, so rendering does no name lookups beyond map keys.

use crate::Value;
use crate::funcs::Func;

/// A 1-based line and column (in characters) in the template source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub(crate) line: u32,
    pub(crate) col: u32,
}

/// One element of a template's body.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// Literal text, trim markers already applied.
    Text(String),
    /// `{{ pipeline }}`: printed unless it declares or assigns variables.
    Action(Pipeline),
    If(Box<Control>),
    With(Box<Control>),
    Range(Box<Control>),
    Break,
    Continue,
}

/// The common shape of `if`, `with` and `range`.
#[derive(Debug, Clone)]
pub(crate) struct Control {
    /// Position of the keyword.
    pub(crate) pos: Pos,
    pub(crate) pipe: Pipeline,
    pub(crate) list: Vec<Node>,
    /// The `{{else}}` branch; an `{{else if}}` is a nested `If` here.
    pub(crate) else_list: Vec<Node>,
    /// How many variables were live before this structure: its own
    /// declarations and everything declared inside end with it.
    pub(crate) scope: usize,
}

/// `[$a[, $b] := | =] cmd | cmd ...`
#[derive(Debug, Clone)]
pub(crate) struct Pipeline {
    pub(crate) pos: Pos,
    /// Stack slots of the declared (or, with `is_assign`, assigned) variables.
    pub(crate) decls: Vec<usize>,
    pub(crate) is_assign: bool,
    /// At least one command; each one after the first is a function call
    /// that receives the previous result as its last argument.
    pub(crate) cmds: Vec<Command>,
}

/// A function call with arguments, or a single operand.
#[derive(Debug, Clone)]
pub(crate) struct Command {
    pub(crate) head: Expr,
    /// Only ever non-empty when `head` is a function.
    pub(crate) args: Vec<Expr>,
}

#[derive(Debug, Clone)]
pub(crate) struct Expr {
    pub(crate) pos: Pos,
    pub(crate) kind: ExprKind,
}

#[derive(Debug, Clone)]
pub(crate) enum ExprKind {
    /// `.`
    Dot,
    /// `nil`, booleans, numbers and strings.
    Literal(Value),
    /// A variable, by stack slot (`$` is slot 0).
    Var(usize),
    /// A function: called with the command's arguments when it heads a
    /// command, with none when it is an argument itself.
    Func(Func),
    /// `( pipeline )`
    Pipe(Box<Pipeline>),
    /// Field lookups on a base: `.a.b` (base `.`), `$x.a`, `(p).a`.
    Chain(Box<Chain>),
}

#[derive(Debug, Clone)]
pub(crate) struct Chain {
    pub(crate) base: Expr,
    /// The base as written (`$x`, `(index .Vars "m")`), empty for the
    /// implicit dot of `.a.b`; used to name the chain in error messages.
    pub(crate) base_text: String,
    pub(crate) fields: Vec<String>,
}

impl Chain {
    /// The chain as written, up to and including `fields[..upto]`.
    pub(crate) fn text(&self, upto: usize) -> String {
        let mut text = self.base_text.clone();
        for field in self.fields.iter().take(upto) {
            text.push('.');
            text.push_str(field);
        }
        if text.is_empty() {
            text.push('.');
        }
        text
    }

    /// Whether the chain starts from the data root: `$` or the dot while it
    /// still is the root.
    fn starts_at_root(&self, dot_is_root: bool) -> bool {
        match self.base.kind {
            ExprKind::Dot => dot_is_root && self.base_text.is_empty(),
            ExprKind::Var(0) => self.base_text == "$",
            _ => false,
        }
    }
}

/// Adds to `names` every `x` of `.Vars.x` read from the data root.
pub(crate) fn collect_var_refs<'t>(nodes: &'t [Node], dot_is_root: bool, names: &mut Vec<&'t str>) {
    for node in nodes {
        match node {
            Node::Text(_) | Node::Break | Node::Continue => {}
            Node::Action(pipe) => pipe_var_refs(pipe, dot_is_root, names),
            Node::If(c) => {
                pipe_var_refs(&c.pipe, dot_is_root, names);
                collect_var_refs(&c.list, dot_is_root, names);
                collect_var_refs(&c.else_list, dot_is_root, names);
            }
            Node::With(c) | Node::Range(c) => {
                pipe_var_refs(&c.pipe, dot_is_root, names);
                collect_var_refs(&c.list, false, names);
                collect_var_refs(&c.else_list, dot_is_root, names);
            }
        }
    }
}

fn pipe_var_refs<'t>(pipe: &'t Pipeline, dot_is_root: bool, names: &mut Vec<&'t str>) {
    for cmd in &pipe.cmds {
        for expr in std::iter::once(&cmd.head).chain(&cmd.args) {
            expr_var_refs(expr, dot_is_root, names);
        }
    }
}

fn expr_var_refs<'t>(expr: &'t Expr, dot_is_root: bool, names: &mut Vec<&'t str>) {
    match &expr.kind {
        ExprKind::Pipe(p) => pipe_var_refs(p, dot_is_root, names),
        ExprKind::Chain(chain) => {
            if chain.starts_at_root(dot_is_root)
                && let [first, second, ..] = chain.fields.as_slice()
                && first == "Vars"
            {
                names.push(second);
            }
            expr_var_refs(&chain.base, dot_is_root, names);
        }
        ExprKind::Dot | ExprKind::Literal(_) | ExprKind::Var(_) | ExprKind::Func(_) => {}
    }
}

/// Whether `func` is called anywhere in `nodes`.
pub(crate) fn uses_func(nodes: &[Node], func: Func) -> bool {
    nodes.iter().any(|node| match node {
        Node::Text(_) | Node::Break | Node::Continue => false,
        Node::Action(pipe) => pipe_uses(pipe, func),
        Node::If(c) | Node::With(c) | Node::Range(c) => {
            pipe_uses(&c.pipe, func) || uses_func(&c.list, func) || uses_func(&c.else_list, func)
        }
    })
}

fn pipe_uses(pipe: &Pipeline, func: Func) -> bool {
    pipe.cmds.iter().any(|cmd| {
        std::iter::once(&cmd.head)
            .chain(&cmd.args)
            .any(|e| expr_uses(e, func))
    })
}

fn expr_uses(expr: &Expr, func: Func) -> bool {
    match &expr.kind {
        ExprKind::Func(f) => *f == func,
        ExprKind::Pipe(p) => pipe_uses(p, func),
        ExprKind::Chain(c) => expr_uses(&c.base, func),
        ExprKind::Dot | ExprKind::Literal(_) | ExprKind::Var(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(base_text: &str, kind: ExprKind, fields: &[&str]) -> Chain {
        Chain {
            base: Expr {
                pos: Pos { line: 1, col: 1 },
                kind,
            },
            base_text: base_text.into(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    #[test]
    fn chain_text_names_prefixes() {
        let c = chain("", ExprKind::Dot, &["Vars", "x"]);
        assert_eq!(c.text(0), ".");
        assert_eq!(c.text(1), ".Vars");
        assert_eq!(c.text(2), ".Vars.x");
        let v = chain("$v", ExprKind::Var(1), &["a"]);
        assert_eq!(v.text(0), "$v");
        assert_eq!(v.text(1), "$v.a");
    }

    #[test]
    fn root_detection() {
        assert!(chain("", ExprKind::Dot, &["Vars"]).starts_at_root(true));
        assert!(!chain("", ExprKind::Dot, &["Vars"]).starts_at_root(false));
        assert!(chain("$", ExprKind::Var(0), &["Vars"]).starts_at_root(false));
        assert!(!chain("$x", ExprKind::Var(1), &["Vars"]).starts_at_root(true));
    }
}
