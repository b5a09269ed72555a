//! Parser: turns the lexer's tokens into the node tree.
//!
//! As in Go, function names and variables are resolved here: an unknown
//! function or an undefined variable is a parse error, and each variable
//! becomes a stack slot the evaluator indexes directly. Nesting (control
//! structures and parentheses) is limited to [`MAX_DEPTH`] levels so that
//! no input can exhaust the stack.

use crate::TemplateError;
use crate::Value;
use crate::ast::{Chain, Command, Control, Expr, ExprKind, Node, Pipeline, Pos};
use crate::funcs::Func;
use crate::lexer::{self, Keyword, Token, TokenKind};

/// How deeply control structures and parentheses may nest.
pub(crate) const MAX_DEPTH: usize = 100;

#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) nodes: Vec<Node>,
    /// No action or comment: the template is its own text.
    pub(crate) literal: bool,
}

pub(crate) fn parse(src: &str) -> Result<Parsed, TemplateError> {
    let lexed = lexer::lex(src)?;
    let eof = lexed.tokens.last().cloned().unwrap_or(Token {
        kind: TokenKind::Eof,
        pos: Pos { line: 1, col: 1 },
        start: src.len(),
        end: src.len(),
    });
    let mut parser = Parser {
        src,
        tokens: lexed.tokens,
        eof,
        next: 0,
        vars: vec!["$".to_owned()],
        depth: 0,
        range_depth: 0,
    };
    let (nodes, end) = parser.list()?;
    match end {
        ListEnd::Eof => Ok(Parsed {
            nodes,
            literal: !lexed.has_actions,
        }),
        ListEnd::End(pos) => Err(TemplateError::at(pos, "unexpected {{end}}")),
        ListEnd::Else(pos) => Err(TemplateError::at(pos, "unexpected {{else}}")),
    }
}

/// What stopped a list of nodes.
enum ListEnd {
    Eof,
    /// `{{end}}`, consumed; the position of `end`.
    End(Pos),
    /// `{{else`, the rest of the action not yet consumed; the position of
    /// `else`.
    Else(Pos),
}

/// Where a pipeline appears, for messages and the rules that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    Command,
    If,
    With,
    Range,
    Paren,
}

impl Context {
    fn name(self) -> &'static str {
        match self {
            Context::Command => "command",
            Context::If => "if",
            Context::With => "with",
            Context::Range => "range",
            Context::Paren => "parenthesized pipeline",
        }
    }
}

struct Parser<'s> {
    src: &'s str,
    tokens: Vec<Token>,
    eof: Token,
    next: usize,
    /// Variables in scope, by slot; slot 0 is `$`.
    vars: Vec<String>,
    depth: usize,
    range_depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        self.tokens.get(self.next).unwrap_or(&self.eof)
    }

    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        self.next += 1;
        token
    }

    fn skip_space(&mut self) {
        while self.peek().kind == TokenKind::Space {
            self.next += 1;
        }
    }

    fn peek_non_space(&mut self) -> &Token {
        self.skip_space();
        self.peek()
    }

    fn enter(&mut self, pos: Pos) -> Result<(), TemplateError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(TemplateError::at(
                pos,
                format!("template nested more than {MAX_DEPTH} levels deep"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn expect_right_delim(&mut self, context: &str) -> Result<(), TemplateError> {
        let token = self.peek_non_space();
        if token.kind == TokenKind::RightDelim {
            self.next += 1;
            return Ok(());
        }
        Err(TemplateError::at(
            token.pos,
            format!("unexpected {} in {context}", token.describe()),
        ))
    }

    fn list(&mut self) -> Result<(Vec<Node>, ListEnd), TemplateError> {
        let mut nodes = Vec::new();
        loop {
            let token = self.advance();
            match token.kind {
                TokenKind::Text(text) => nodes.push(Node::Text(text)),
                TokenKind::Eof => return Ok((nodes, ListEnd::Eof)),
                TokenKind::LeftDelim => {
                    if let Some(end) = self.action(&mut nodes)? {
                        return Ok((nodes, end));
                    }
                }
                _ => {
                    return Err(TemplateError::at(
                        token.pos,
                        format!("unexpected {}", token.describe()),
                    ));
                }
            }
        }
    }

    /// Parses the action after `{{`; returns how the list ends if it was an
    /// `end` or `else`.
    fn action(&mut self, nodes: &mut Vec<Node>) -> Result<Option<ListEnd>, TemplateError> {
        let token = self.peek_non_space().clone();
        let TokenKind::Keyword(keyword) = token.kind else {
            let pipe = self.pipeline(Context::Command)?;
            self.expect_right_delim("command")?;
            nodes.push(Node::Action(pipe));
            return Ok(None);
        };
        self.next += 1;
        match keyword {
            Keyword::End => {
                self.expect_right_delim("{{end}}")?;
                Ok(Some(ListEnd::End(token.pos)))
            }
            Keyword::Else => Ok(Some(ListEnd::Else(token.pos))),
            Keyword::If => {
                nodes.push(Node::If(self.control(Keyword::If, token.pos)?));
                Ok(None)
            }
            Keyword::With => {
                nodes.push(Node::With(self.control(Keyword::With, token.pos)?));
                Ok(None)
            }
            Keyword::Range => {
                nodes.push(Node::Range(self.control(Keyword::Range, token.pos)?));
                Ok(None)
            }
            Keyword::Break | Keyword::Continue => {
                let name = keyword.as_str();
                if self.range_depth == 0 {
                    return Err(TemplateError::at(
                        token.pos,
                        format!("{{{{{name}}}}} outside {{{{range}}}}"),
                    ));
                }
                self.expect_right_delim(&format!("{{{{{name}}}}}"))?;
                nodes.push(if keyword == Keyword::Break {
                    Node::Break
                } else {
                    Node::Continue
                });
                Ok(None)
            }
            Keyword::Define | Keyword::Template | Keyword::Block => Err(TemplateError::at(
                token.pos,
                format!(
                    "{{{{{}}}}} is not supported in Vigo templates",
                    keyword.as_str()
                ),
            )),
        }
    }

    /// Parses `if`, `with` or `range` after its keyword, through its
    /// `{{end}}`.
    fn control(&mut self, keyword: Keyword, pos: Pos) -> Result<Box<Control>, TemplateError> {
        self.enter(pos)?;
        let name = keyword.as_str();
        let context = match keyword {
            Keyword::If => Context::If,
            Keyword::With => Context::With,
            _ => Context::Range,
        };
        let scope = self.vars.len();
        let pipe = self.pipeline(context)?;
        self.expect_right_delim(&format!("{{{{{name}}}}}"))?;
        let missing_end = || {
            TemplateError::at(
                pos,
                format!(
                    "{{{{{name}}}}} at line {} has no matching {{{{end}}}}",
                    pos.line
                ),
            )
        };
        if keyword == Keyword::Range {
            self.range_depth += 1;
        }
        let body = self.list();
        if keyword == Keyword::Range {
            self.range_depth -= 1;
        }
        let (list, end) = body?;
        let else_list = match end {
            ListEnd::Eof => return Err(missing_end()),
            ListEnd::End(_) => Vec::new(),
            ListEnd::Else(else_pos) => {
                let next = self.peek_non_space().clone();
                match (keyword, &next.kind) {
                    (Keyword::If, TokenKind::Keyword(Keyword::If)) => {
                        self.next += 1;
                        vec![Node::If(self.control(Keyword::If, next.pos)?)]
                    }
                    (Keyword::With, TokenKind::Keyword(Keyword::With)) => {
                        self.next += 1;
                        vec![Node::With(self.control(Keyword::With, next.pos)?)]
                    }
                    _ => {
                        self.expect_right_delim("{{else}}")?;
                        let (else_list, end) = self.list()?;
                        match end {
                            ListEnd::End(_) => else_list,
                            ListEnd::Eof => return Err(missing_end()),
                            ListEnd::Else(second) => {
                                return Err(TemplateError::at(
                                    second,
                                    format!(
                                        "unexpected {{{{else}}}}: the {{{{{name}}}}} at line {} already had one at line {}",
                                        pos.line, else_pos.line
                                    ),
                                ));
                            }
                        }
                    }
                }
            }
        };
        self.vars.truncate(scope);
        self.leave();
        Ok(Box::new(Control {
            pos,
            pipe,
            list,
            else_list,
            scope,
        }))
    }

    fn lookup_var(&self, name: &str, pos: Pos) -> Result<usize, TemplateError> {
        self.vars
            .iter()
            .rposition(|v| v == name)
            .ok_or_else(|| TemplateError::at(pos, format!("undefined variable \"{name}\"")))
    }

    fn pipeline(&mut self, context: Context) -> Result<Pipeline, TemplateError> {
        let pos = self.peek_non_space().pos;
        let (names, is_assign) = self.declarations(context)?;
        let mut cmds = Vec::new();
        loop {
            cmds.push(self.command()?);
            let token = self.peek_non_space();
            match token.kind {
                TokenKind::Pipe => self.next += 1,
                TokenKind::RightDelim | TokenKind::RightParen => break,
                _ => {
                    return Err(TemplateError::at(
                        token.pos,
                        format!("unexpected {} in {}", token.describe(), context.name()),
                    ));
                }
            }
        }
        for (stage, cmd) in cmds.iter().enumerate() {
            let piped = usize::from(stage > 0);
            match cmd.head.kind {
                ExprKind::Func(func) => func
                    .check_arity(cmd.args.len() + piped)
                    .map_err(|m| TemplateError::at(cmd.head.pos, m))?,
                _ if stage > 0 => {
                    return Err(TemplateError::at(
                        cmd.head.pos,
                        format!(
                            "cannot pipe into {}: only a function can receive a piped value",
                            self.text_of(&cmd.head)
                        ),
                    ));
                }
                _ => {}
            }
        }
        let decls = if is_assign {
            names
                .iter()
                .map(|(name, pos)| self.lookup_var(name, *pos))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            names
                .into_iter()
                .map(|(name, _)| {
                    self.vars.push(name);
                    self.vars.len() - 1
                })
                .collect()
        };
        Ok(Pipeline {
            pos,
            decls,
            is_assign,
            cmds,
        })
    }

    /// Parses `$x :=`, `$x =` and, in `range`, `$i, $v :=` at the start of
    /// a pipeline; returns the names and whether it is an assignment.
    #[allow(clippy::type_complexity)]
    fn declarations(
        &mut self,
        context: Context,
    ) -> Result<(Vec<(String, Pos)>, bool), TemplateError> {
        let start = self.next;
        let first = self.peek_non_space().clone();
        let TokenKind::Variable(name) = first.kind else {
            return Ok((Vec::new(), false));
        };
        self.next += 1;
        let mut names = vec![(name, first.pos)];
        let after = self.peek_non_space().clone();
        match after.kind {
            TokenKind::Declare | TokenKind::Assign => {}
            TokenKind::Comma if context == Context::Range => {
                self.next += 1;
                let second = self.peek_non_space().clone();
                let TokenKind::Variable(name) = second.kind else {
                    return Err(TemplateError::at(
                        second.pos,
                        "range can only initialize variables",
                    ));
                };
                self.next += 1;
                names.push((name, second.pos));
            }
            TokenKind::Comma => {
                return Err(TemplateError::at(
                    after.pos,
                    format!("too many declarations in {}", context.name()),
                ));
            }
            _ => {
                self.next = start;
                return Ok((Vec::new(), false));
            }
        }
        let op = self.peek_non_space().clone();
        let is_assign = match op.kind {
            TokenKind::Declare => false,
            TokenKind::Assign => true,
            _ => {
                return Err(TemplateError::at(
                    op.pos,
                    format!("expected \":=\" or \"=\", found {}", op.describe()),
                ));
            }
        };
        self.next += 1;
        if context == Context::Paren {
            return Err(TemplateError::at(
                first.pos,
                "variables cannot be declared inside parentheses",
            ));
        }
        Ok((names, is_assign))
    }

    fn command(&mut self) -> Result<Command, TemplateError> {
        let mut operands = Vec::new();
        loop {
            self.skip_space();
            let Some(operand) = self.operand()? else {
                break;
            };
            operands.push(operand);
            let token = self.peek();
            match token.kind {
                TokenKind::Space => {}
                TokenKind::RightDelim
                | TokenKind::RightParen
                | TokenKind::Pipe
                | TokenKind::Eof => {
                    break;
                }
                _ => {
                    return Err(TemplateError::at(
                        token.pos,
                        format!("unexpected {} in operand", token.describe()),
                    ));
                }
            }
        }
        let mut operands = operands.into_iter();
        let Some(head) = operands.next() else {
            let token = self.peek();
            return Err(TemplateError::at(
                token.pos,
                format!("missing value for command before {}", token.describe()),
            ));
        };
        let args: Vec<Expr> = operands.collect();
        for arg in &args {
            if let ExprKind::Func(func) = arg.kind {
                // A function named as an argument is called with none.
                func.check_arity(0)
                    .map_err(|m| TemplateError::at(arg.pos, m))?;
            }
        }
        match head.kind {
            ExprKind::Func(_) => {}
            ExprKind::Literal(Value::Null) if args.is_empty() => {
                return Err(TemplateError::at(head.pos, "nil is not a command"));
            }
            _ if !args.is_empty() => {
                return Err(TemplateError::at(
                    head.pos,
                    format!(
                        "{} is not a function and cannot take arguments",
                        self.text_of(&head)
                    ),
                ));
            }
            _ => {}
        }
        Ok(Command { head, args })
    }

    /// How an expression is written, for messages.
    fn text_of(&self, expr: &Expr) -> String {
        match &expr.kind {
            ExprKind::Dot => ".".into(),
            ExprKind::Literal(Value::Str(_)) => "a string".into(),
            ExprKind::Literal(Value::Null) => "nil".into(),
            ExprKind::Literal(Value::Bool(b)) => b.to_string(),
            ExprKind::Literal(_) => "a number".into(),
            ExprKind::Var(slot) => self.vars.get(*slot).cloned().unwrap_or_else(|| "$".into()),
            ExprKind::Func(f) => f.name().into(),
            ExprKind::Pipe(_) => "a parenthesized pipeline".into(),
            ExprKind::Chain(chain) => chain.text(chain.fields.len()),
        }
    }

    /// A term and the fields that follow it directly (`$x.a.b`).
    fn operand(&mut self) -> Result<Option<Expr>, TemplateError> {
        let start = self.peek().start;
        let Some(term) = self.term()? else {
            return Ok(None);
        };
        if !matches!(self.peek().kind, TokenKind::Field(_)) {
            return Ok(Some(term));
        }
        let end = self
            .tokens
            .get(self.next.wrapping_sub(1))
            .map_or(start, |t| t.end);
        let mut chain = match term.kind {
            ExprKind::Chain(chain) => *chain,
            ExprKind::Literal(_) | ExprKind::Dot => {
                return Err(TemplateError::at(
                    self.peek().pos,
                    format!("unexpected . after term {}", self.text_of(&term)),
                ));
            }
            ExprKind::Func(func) => {
                func.check_arity(0)
                    .map_err(|m| TemplateError::at(term.pos, m))?;
                Chain {
                    base_text: self.src.get(start..end).unwrap_or_default().to_owned(),
                    base: term,
                    fields: Vec::new(),
                }
            }
            _ => Chain {
                base_text: self.src.get(start..end).unwrap_or_default().to_owned(),
                base: term,
                fields: Vec::new(),
            },
        };
        while let TokenKind::Field(name) = &self.peek().kind {
            chain.fields.push(name.clone());
            self.next += 1;
        }
        let pos = chain.base.pos;
        Ok(Some(Expr {
            pos,
            kind: ExprKind::Chain(Box::new(chain)),
        }))
    }

    fn term(&mut self) -> Result<Option<Expr>, TemplateError> {
        let token = self.peek().clone();
        let pos = token.pos;
        let kind = match token.kind {
            TokenKind::Ident(name) => ExprKind::Func(Func::lookup(&name).ok_or_else(|| {
                TemplateError::at(pos, format!("function \"{name}\" not defined"))
            })?),
            TokenKind::Dot => ExprKind::Dot,
            TokenKind::Nil => ExprKind::Literal(Value::Null),
            TokenKind::Bool(b) => ExprKind::Literal(Value::Bool(b)),
            TokenKind::Int(i) => ExprKind::Literal(Value::Int(i)),
            TokenKind::Float(f) => ExprKind::Literal(Value::Float(f)),
            TokenKind::Str(s) => ExprKind::Literal(Value::Str(s)),
            TokenKind::Variable(name) => ExprKind::Var(self.lookup_var(&name, pos)?),
            TokenKind::Field(name) => ExprKind::Chain(Box::new(Chain {
                base: Expr {
                    pos,
                    kind: ExprKind::Dot,
                },
                base_text: String::new(),
                fields: vec![name],
            })),
            TokenKind::LeftParen => {
                self.next += 1;
                self.enter(pos)?;
                let pipe = self.pipeline(Context::Paren)?;
                if self.peek_non_space().kind != TokenKind::RightParen {
                    return Err(TemplateError::at(pos, "unclosed left paren"));
                }
                self.next += 1;
                self.leave();
                return Ok(Some(Expr {
                    pos,
                    kind: ExprKind::Pipe(Box::new(pipe)),
                }));
            }
            TokenKind::RightDelim | TokenKind::RightParen | TokenKind::Pipe | TokenKind::Eof => {
                return Ok(None);
            }
            _ => {
                return Err(TemplateError::at(
                    pos,
                    format!("unexpected {} in command", token.describe()),
                ));
            }
        };
        self.next += 1;
        Ok(Some(Expr { pos, kind }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> (usize, usize, String) {
        let e = parse(src).expect_err("should not parse");
        (e.line, e.column, e.message)
    }

    #[test]
    fn parses_every_construct() {
        let src = "a {{ .Vars.x }} {{- if $x := .Vars.y -}} {{ $x }} {{ else if eq 1 2 }} x \
                   {{ else }}{{ with $.Envoy }}{{ .Name }}{{ else with 3 }}{{ end }}{{ end }} \
                   {{ range $i, $v := .Vars.list }}{{ if $i }}{{ break }}{{ end }}{{ continue }}{{ else }}none{{ end }} \
                   {{ $y := 1 }}{{ $y = 2 }}{{ (index .Vars \"m\").k | printf \"%v\" }}{{ print nil }}";
        let parsed = parse(src).expect("parses");
        assert!(!parsed.literal);
        assert!(parse("just text").expect("parses").literal);
    }

    #[test]
    fn structure_errors_point_at_keywords() {
        assert_eq!(err("a\n {{ end }}"), (2, 5, "unexpected {{end}}".into()));
        assert_eq!(err("{{else}}"), (1, 3, "unexpected {{else}}".into()));
        assert_eq!(
            err("x\n  {{if .a}}\n"),
            (2, 5, "{{if}} at line 2 has no matching {{end}}".into())
        );
        assert_eq!(
            err("{{range .a}}{{else}}"),
            (1, 3, "{{range}} at line 1 has no matching {{end}}".into())
        );
        assert!(
            err("{{if 1}}{{else}}{{else}}{{end}}")
                .2
                .starts_with("unexpected {{else}}")
        );
        assert_eq!(err("{{break}}").2, "{{break}} outside {{range}}");
        assert_eq!(
            err("{{range .a}}{{else}}{{continue}}{{end}}").2,
            "{{continue}} outside {{range}}"
        );
        assert_eq!(
            err("{{template \"x\"}}").2,
            "{{template}} is not supported in Vigo templates"
        );
    }

    #[test]
    fn names_are_resolved() {
        assert_eq!(
            err("{{ call .x }}"),
            (1, 4, "function \"call\" not defined".into())
        );
        assert_eq!(
            err("{{ $nope }}"),
            (1, 4, "undefined variable \"$nope\"".into())
        );
        assert_eq!(err("{{ $x = 1 }}").2, "undefined variable \"$x\"");
        // A variable ends with the control structure that declared it.
        assert_eq!(
            err("{{ if true }}{{ $x := 1 }}{{ end }}{{ $x }}").2,
            "undefined variable \"$x\""
        );
        assert!(parse("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}").is_ok());
    }

    #[test]
    fn command_errors() {
        assert_eq!(err("{{ }}").2, "missing value for command before \"}}\"");
        assert_eq!(err("{{ nil }}").2, "nil is not a command");
        assert_eq!(
            err("{{ len 1 2 }}").2,
            "wrong number of args for len: want 1 got 2"
        );
        assert_eq!(
            err("{{ 1 | len 2 }}").2,
            "wrong number of args for len: want 1 got 2"
        );
        assert_eq!(
            err("{{ .x 1 }}").2,
            ".x is not a function and cannot take arguments"
        );
        assert_eq!(
            err("{{ 1 | .x }}").2,
            "cannot pipe into .x: only a function can receive a piped value"
        );
        assert_eq!(err("{{ (1 }}"), (1, 4, "unclosed left paren".into()));
        assert_eq!(err("{{ 1) }}").2, "unexpected \")\" in command");
        assert_eq!(err("{{ \"a\".x }}").2, "unexpected . after term a string");
        assert_eq!(
            err("{{ $a, $b := 1 }}").2,
            "too many declarations in command"
        );
        assert_eq!(
            err("{{ if true }}{{ end 1 }}").2,
            "unexpected number in {{end}}"
        );
        assert_eq!(err("{{ 1 := }}").2, "unexpected \":=\" in command");
    }

    #[test]
    fn nesting_is_limited() {
        let deep = "{{if 1}}".repeat(MAX_DEPTH + 1) + &"{{end}}".repeat(MAX_DEPTH + 1);
        assert!(err(&deep).2.contains("nested more than 100 levels"));
        let ok = "{{if 1}}".repeat(MAX_DEPTH) + &"{{end}}".repeat(MAX_DEPTH);
        assert!(parse(&ok).is_ok());
        let parens = format!("{{{{ {}1{} }}}}", "(".repeat(200), ")".repeat(200));
        assert!(err(&parens).2.contains("nested more than 100 levels"));
    }
}
