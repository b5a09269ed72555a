//! Lexer: splits template source into text and the words inside actions.
//!
//! Trim markers (`{{- ` and ` -}}`) are applied here, to the neighbouring
//! text, and comments (`{{/* ... */}}`) are dropped, so the parser only sees
//! text, delimiters and action words. Every token carries its 1-based line
//! and column (in characters) and its byte range in the source.

use crate::TemplateError;
use crate::ast::Pos;

const LEFT_DELIM: &str = "{{";
const RIGHT_DELIM: &str = "}}";

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    Text(String),
    LeftDelim,
    RightDelim,
    /// A run of whitespace inside an action (it separates arguments).
    Space,
    /// A function name.
    Ident(String),
    Keyword(Keyword),
    /// `.name`, without the dot.
    Field(String),
    /// `.` alone.
    Dot,
    /// `$` or `$name`, with the `$`.
    Variable(String),
    /// A quoted or raw string, escapes decoded.
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    LeftParen,
    RightParen,
    Pipe,
    /// `:=`
    Declare,
    /// `=`
    Assign,
    Comma,
    Eof,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keyword {
    If,
    Else,
    End,
    Range,
    With,
    Break,
    Continue,
    Define,
    Template,
    Block,
}

impl Keyword {
    fn from_word(word: &str) -> Option<Self> {
        Some(match word {
            "if" => Keyword::If,
            "else" => Keyword::Else,
            "end" => Keyword::End,
            "range" => Keyword::Range,
            "with" => Keyword::With,
            "break" => Keyword::Break,
            "continue" => Keyword::Continue,
            "define" => Keyword::Define,
            "template" => Keyword::Template,
            "block" => Keyword::Block,
            _ => return None,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Keyword::If => "if",
            Keyword::Else => "else",
            Keyword::End => "end",
            Keyword::Range => "range",
            Keyword::With => "with",
            Keyword::Break => "break",
            Keyword::Continue => "continue",
            Keyword::Define => "define",
            Keyword::Template => "template",
            Keyword::Block => "block",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) kind: TokenKind,
    pub(crate) pos: Pos,
    /// Byte range in the source.
    pub(crate) start: usize,
    pub(crate) end: usize,
}

impl Token {
    /// How error messages name this token.
    pub(crate) fn describe(&self) -> String {
        match &self.kind {
            TokenKind::Text(_) => "text".into(),
            TokenKind::LeftDelim => "\"{{\"".into(),
            TokenKind::RightDelim => "\"}}\"".into(),
            TokenKind::Space => "space".into(),
            TokenKind::Ident(name) => format!("\"{name}\""),
            TokenKind::Keyword(k) => format!("{{{{{}}}}}", k.as_str()),
            TokenKind::Field(name) => format!("\".{name}\""),
            TokenKind::Dot => "\".\"".into(),
            TokenKind::Variable(name) => format!("\"{name}\""),
            TokenKind::Str(_) => "string".into(),
            TokenKind::Int(_) | TokenKind::Float(_) => "number".into(),
            TokenKind::Bool(b) => format!("\"{b}\""),
            TokenKind::Nil => "\"nil\"".into(),
            TokenKind::LeftParen => "\"(\"".into(),
            TokenKind::RightParen => "\")\"".into(),
            TokenKind::Pipe => "\"|\"".into(),
            TokenKind::Declare => "\":=\"".into(),
            TokenKind::Assign => "\"=\"".into(),
            TokenKind::Comma => "\",\"".into(),
            TokenKind::Eof => "end of template".into(),
        }
    }
}

/// The tokens of a template; the last one is always `Eof`, and every
/// `LeftDelim` has its `RightDelim`.
#[derive(Debug)]
pub(crate) struct Lexed {
    pub(crate) tokens: Vec<Token>,
    /// Whether the source holds any action or comment.
    pub(crate) has_actions: bool,
}

pub(crate) fn lex(src: &str) -> Result<Lexed, TemplateError> {
    let mut lexer = Lexer {
        src,
        pos: 0,
        line: 1,
        col: 1,
        tokens: Vec::new(),
        trim_next_text: false,
        has_actions: false,
    };
    lexer.run()?;
    Ok(Lexed {
        tokens: lexer.tokens,
        has_actions: lexer.has_actions,
    })
}

/// Go's notion of space inside and around actions.
pub(crate) fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alphanumeric(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

struct Lexer<'s> {
    src: &'s str,
    /// Byte offset of the next character.
    pos: usize,
    line: u32,
    col: u32,
    tokens: Vec<Token>,
    /// Set by ` -}}`: trim leading whitespace off the next text.
    trim_next_text: bool,
    has_actions: bool,
}

impl<'s> Lexer<'s> {
    fn here(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    fn rest(&self) -> &'s str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn slice(&self, start: usize) -> &'s str {
        self.src.get(start..self.pos).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.col = 1;
        } else {
            self.col = self.col.saturating_add(1);
        }
        Some(c)
    }

    fn bump_n(&mut self, chars: usize) {
        for _ in 0..chars {
            self.bump();
        }
    }

    fn advance_to(&mut self, end: usize) {
        while self.pos < end && self.bump().is_some() {}
    }

    fn push(&mut self, kind: TokenKind, pos: Pos, start: usize) {
        self.tokens.push(Token {
            kind,
            pos,
            start,
            end: self.pos,
        });
    }

    /// Whether the input continues with a space, `-` and `}}`.
    fn at_right_trim(&self) -> bool {
        let mut chars = self.rest().chars();
        chars.next().is_some_and(is_space) && chars.as_str().starts_with("-}}")
    }

    fn run(&mut self) -> Result<(), TemplateError> {
        loop {
            let start = self.pos;
            let text_pos = self.here();
            let end = self
                .rest()
                .find(LEFT_DELIM)
                .map_or(self.src.len(), |i| self.pos + i);
            self.advance_to(end);
            let mut text = self.slice(start);
            if std::mem::take(&mut self.trim_next_text) {
                text = text.trim_start_matches(is_space);
            }
            if self.pos >= self.src.len() {
                self.push_text(text, text_pos, start);
                self.push(TokenKind::Eof, self.here(), self.pos);
                return Ok(());
            }
            let delim_pos = self.here();
            let delim_start = self.pos;
            self.bump_n(2);
            let trim_left = self.peek() == Some('-') && self.peek_second().is_some_and(is_space);
            if trim_left {
                text = text.trim_end_matches(is_space);
            }
            self.push_text(text, text_pos, start);
            self.has_actions = true;
            if trim_left {
                self.bump_n(2);
            }
            if self.rest().starts_with("/*") {
                self.comment(delim_pos)?;
                continue;
            }
            self.push(TokenKind::LeftDelim, delim_pos, delim_start);
            self.inside_action(delim_pos)?;
        }
    }

    fn push_text(&mut self, text: &str, pos: Pos, start: usize) {
        if !text.is_empty() {
            self.tokens.push(Token {
                kind: TokenKind::Text(text.to_owned()),
                pos,
                start,
                end: start + text.len(),
            });
        }
    }

    fn comment(&mut self, delim_pos: Pos) -> Result<(), TemplateError> {
        self.bump_n(2);
        let Some(close) = self.rest().find("*/") else {
            return Err(TemplateError::at(
                delim_pos,
                "unclosed comment: missing \"*/\"",
            ));
        };
        self.advance_to(self.pos + close + 2);
        if self.at_right_trim() {
            self.bump_n(4);
            self.trim_next_text = true;
            Ok(())
        } else if self.rest().starts_with(RIGHT_DELIM) {
            self.bump_n(2);
            Ok(())
        } else {
            Err(TemplateError::at(
                self.here(),
                "comment ends before closing delimiter: \"*/\" must be followed by \"}}\"",
            ))
        }
    }

    fn inside_action(&mut self, delim_pos: Pos) -> Result<(), TemplateError> {
        loop {
            let pos = self.here();
            let start = self.pos;
            if self.rest().starts_with(RIGHT_DELIM) {
                self.bump_n(2);
                self.push(TokenKind::RightDelim, pos, start);
                return Ok(());
            }
            let Some(c) = self.peek() else {
                return Err(TemplateError::at(
                    delim_pos,
                    "unclosed action: missing \"}}\"",
                ));
            };
            if is_space(c) {
                if self.space(start, pos) {
                    return Ok(());
                }
                continue;
            }
            let kind = match c {
                '|' => self.single(TokenKind::Pipe),
                '(' => self.single(TokenKind::LeftParen),
                ')' => self.single(TokenKind::RightParen),
                ',' => self.single(TokenKind::Comma),
                '=' => self.single(TokenKind::Assign),
                ':' => {
                    self.bump();
                    if self.peek() != Some('=') {
                        return Err(TemplateError::at(pos, "expected \":=\" after \":\""));
                    }
                    self.bump();
                    TokenKind::Declare
                }
                '"' => self.quoted(pos)?,
                '`' => self.raw_string(pos)?,
                '\'' => self.char_constant(pos)?,
                '$' => {
                    self.bump();
                    self.word();
                    self.check_terminator()?;
                    TokenKind::Variable(self.slice(start).to_owned())
                }
                '.' => match self.peek_second() {
                    Some(d) if d.is_ascii_digit() => self.number(pos, start)?,
                    Some(a) if is_alphanumeric(a) => {
                        self.bump();
                        let name = self.word();
                        self.check_terminator()?;
                        TokenKind::Field(name.to_owned())
                    }
                    _ => {
                        self.bump();
                        self.check_terminator()?;
                        TokenKind::Dot
                    }
                },
                '+' | '-' | '0'..='9' => self.number(pos, start)?,
                c if is_alphanumeric(c) => {
                    let word = self.word();
                    self.check_terminator()?;
                    match word {
                        "true" => TokenKind::Bool(true),
                        "false" => TokenKind::Bool(false),
                        "nil" => TokenKind::Nil,
                        _ => Keyword::from_word(word)
                            .map_or_else(|| TokenKind::Ident(word.to_owned()), TokenKind::Keyword),
                    }
                }
                other => {
                    return Err(TemplateError::at(
                        pos,
                        format!("unrecognized character in action: {other:?}"),
                    ));
                }
            };
            self.push(kind, pos, start);
        }
    }

    /// Lexes a run of spaces; returns true when it ended the action with
    /// ` -}}`.
    fn space(&mut self, start: usize, pos: Pos) -> bool {
        while self.peek().is_some_and(is_space) {
            if self.at_right_trim() {
                if self.pos > start {
                    self.push(TokenKind::Space, pos, start);
                }
                let delim_pos = self.here();
                let delim_start = self.pos;
                self.bump_n(4);
                self.push(TokenKind::RightDelim, delim_pos, delim_start);
                self.trim_next_text = true;
                return true;
            }
            self.bump();
        }
        self.push(TokenKind::Space, pos, start);
        false
    }

    fn single(&mut self, kind: TokenKind) -> TokenKind {
        self.bump();
        kind
    }

    /// Consumes letters, digits and underscores.
    fn word(&mut self) -> &'s str {
        let start = self.pos;
        while self.peek().is_some_and(is_alphanumeric) {
            self.bump();
        }
        self.slice(start)
    }

    /// After a name, Go requires a space, punctuation or the end of the
    /// action.
    fn check_terminator(&self) -> Result<(), TemplateError> {
        match self.peek() {
            None => Ok(()),
            Some(c) if is_space(c) || matches!(c, '.' | ',' | '|' | ':' | ')' | '(') => Ok(()),
            Some(_) if self.rest().starts_with(RIGHT_DELIM) => Ok(()),
            Some(c) => Err(TemplateError::at(
                self.here(),
                format!("bad character {c:?} after a name"),
            )),
        }
    }

    /// Scans a number as Go's lexer does: a sign, a `0x`, `0o` or `0b`
    /// prefix, digits and `_`, a fraction, an `e` exponent (decimal) or a
    /// `p` exponent (hexadecimal), an `i` suffix; the text is then read by
    /// [`parse_number`].
    fn number(&mut self, pos: Pos, start: usize) -> Result<TokenKind, TemplateError> {
        if matches!(self.peek(), Some('+' | '-')) {
            self.bump();
        }
        let mut radix = 10;
        if self.peek() == Some('0') {
            self.bump();
            match self.peek() {
                Some('x' | 'X') => radix = 16,
                Some('o' | 'O') => radix = 8,
                Some('b' | 'B') => radix = 2,
                _ => {}
            }
            if radix != 10 {
                self.bump();
            }
        }
        self.digits(radix);
        if self.peek() == Some('.') {
            self.bump();
            self.digits(radix);
        }
        let exponent = match radix {
            10 => ['e', 'E'],
            16 => ['p', 'P'],
            _ => ['\0', '\0'],
        };
        if self
            .peek()
            .is_some_and(|c| c != '\0' && exponent.contains(&c))
        {
            self.bump();
            if matches!(self.peek(), Some('+' | '-')) {
                self.bump();
            }
            self.digits(10);
        }
        if self.peek() == Some('i') {
            self.bump();
        }
        if self.peek().is_some_and(|c| is_alphanumeric(c) || c == '.') {
            self.bump();
            return Err(TemplateError::at(
                pos,
                format!("bad number syntax: {:?}", self.slice(start)),
            ));
        }
        parse_number(self.slice(start)).map_err(|message| TemplateError::at(pos, message))
    }

    fn digits(&mut self, radix: u32) {
        while self.peek().is_some_and(|c| c == '_' || c.is_digit(radix)) {
            self.bump();
        }
    }

    /// Scans a quoted literal up to its closing `quote`; returns the text
    /// between the quotes, escapes still in.
    fn scan_quoted(&mut self, pos: Pos, quote: char, what: &str) -> Result<&'s str, TemplateError> {
        self.bump();
        let body_start = self.pos;
        loop {
            let body_end = self.pos;
            match self.bump() {
                None | Some('\n') => {
                    return Err(TemplateError::at(pos, format!("unterminated {what}")));
                }
                Some('\\') => {
                    if matches!(self.bump(), None | Some('\n')) {
                        return Err(TemplateError::at(pos, format!("unterminated {what}")));
                    }
                }
                Some(c) if c == quote => {
                    return Ok(self.src.get(body_start..body_end).unwrap_or(""));
                }
                Some(_) => {}
            }
        }
    }

    fn quoted(&mut self, pos: Pos) -> Result<TokenKind, TemplateError> {
        let body = self.scan_quoted(pos, '"', "quoted string")?;
        unquote(body, '"')
            .map(TokenKind::Str)
            .map_err(|message| TemplateError::at(pos, message))
    }

    fn char_constant(&mut self, pos: Pos) -> Result<TokenKind, TemplateError> {
        let body = self.scan_quoted(pos, '\'', "character constant")?;
        if let Some(byte) = byte_escape(body) {
            return Ok(TokenKind::Int(i64::from(byte)));
        }
        let text = unquote(body, '\'').map_err(|message| TemplateError::at(pos, message))?;
        let mut chars = text.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => Ok(TokenKind::Int(i64::from(u32::from(c)))),
            _ => Err(TemplateError::at(pos, "malformed character constant")),
        }
    }

    fn raw_string(&mut self, pos: Pos) -> Result<TokenKind, TemplateError> {
        self.bump();
        let Some(close) = self.rest().find('`') else {
            return Err(TemplateError::at(pos, "unterminated raw quoted string"));
        };
        let body_start = self.pos;
        self.advance_to(self.pos + close);
        let body = self.slice(body_start).replace('\r', "");
        self.bump();
        Ok(TokenKind::Str(body))
    }
}

/// Turns a number's text into a token value the way Go's template parser
/// and evaluator do: integers (with `0x`, `0o`, `0b` or a leading-`0` octal
/// prefix) become `Int`; decimals with a point or exponent and hexadecimal
/// floats (`0x1.8p1`) become `Float`. `_` may separate digits, as in Go.
fn parse_number(text: &str) -> Result<TokenKind, String> {
    let bad = || format!("bad number syntax: {text:?}");
    if text.ends_with('i') {
        return Err(format!("complex numbers are not supported: {text:?}"));
    }
    if text.contains('_') && !underscores_separate_digits(text) {
        return Err(format!(
            "bad number syntax: {text:?}: '_' may only separate digits"
        ));
    }
    let clean: String = text.chars().filter(|c| *c != '_').collect();
    let (negative, body) = match clean.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, clean.strip_prefix('+').unwrap_or(&clean)),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        if d.contains(['.', 'p']) {
            let magnitude = parse_hex_float(d).ok_or_else(|| {
                if d.contains('p') {
                    bad()
                } else {
                    format!("bad number syntax: {text:?}: a hexadecimal float needs a 'p' exponent")
                }
            })?;
            return float_token(text, if negative { -magnitude } else { magnitude });
        }
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if body.contains(['.', 'e', 'E']) {
        let value = clean.parse::<f64>().map_err(|_| bad())?;
        return float_token(text, value);
    } else if body.len() > 1 && body.starts_with('0') {
        if !body.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return Err(format!(
                "bad number syntax: {text:?}: a leading 0 makes an octal number"
            ));
        }
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || digits.contains('.') {
        return Err(bad());
    }
    let magnitude = i128::from_str_radix(digits, radix)
        .map_err(|_| format!("number {text} is out of range for an integer"))?;
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value)
        .map(TokenKind::Int)
        .map_err(|_| format!("number {text} is out of range for an integer"))
}

fn float_token(text: &str, value: f64) -> Result<TokenKind, String> {
    if value.is_finite() {
        Ok(TokenKind::Float(value))
    } else {
        Err(format!("number {text} is out of range for a float"))
    }
}

/// Go's rule for `_` in number literals: each `_` stands between two digits,
/// or between the base prefix and a digit.
fn underscores_separate_digits(text: &str) -> bool {
    let body = text.strip_prefix(['+', '-']).unwrap_or(text);
    let bytes = body.as_bytes();
    let mut rest = bytes;
    let mut hex = false;
    // After a digit or prefix: `_` may follow.
    let mut after_digit = false;
    if let [b'0', p, tail @ ..] = bytes
        && matches!(p.to_ascii_lowercase(), b'x' | b'o' | b'b')
    {
        hex = p.eq_ignore_ascii_case(&b'x');
        after_digit = true;
        rest = tail;
    }
    let mut after_underscore = false;
    for &b in rest {
        if b.is_ascii_digit() || (hex && b.is_ascii_hexdigit()) {
            after_digit = true;
            after_underscore = false;
        } else if b == b'_' {
            if !after_digit {
                return false;
            }
            after_digit = false;
            after_underscore = true;
        } else {
            if after_underscore {
                return false;
            }
            after_digit = false;
        }
    }
    !after_underscore
}

/// The value of a hexadecimal float's text after `0x` (underscores removed,
/// lowercase): hex digits with an optional point, then `p` and a decimal
/// exponent. Rounds to the nearest `f64`, ties to even, as Go's
/// `strconv.ParseFloat`; `None` when the syntax is wrong. Overflow yields
/// infinity.
fn parse_hex_float(text: &str) -> Option<f64> {
    let (mantissa, exponent) = text.split_once('p')?;
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let (exp_negative, exp_digits) = match exponent.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, exponent.strip_prefix('+').unwrap_or(exponent)),
    };
    if exp_digits.is_empty() || !exp_digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Exponents past this are infinity or zero whatever the mantissa.
    const EXP_LIMIT: i64 = 100_000;
    let mut exp: i64 = 0;
    for b in exp_digits.bytes() {
        exp = (exp * 10 + i64::from(b - b'0')).min(EXP_LIMIT);
    }
    if exp_negative {
        exp = -exp;
    }
    // value = mantissa × 2^exp; the first 16 significant hex digits are
    // kept, the rest only matter as a "sticky" non-zero for rounding.
    let mut mantissa: u64 = 0;
    let mut sticky = false;
    for (i, c) in int_part.chars().chain(frac_part.chars()).enumerate() {
        let digit = u64::from(c.to_digit(16)?);
        let fraction = i >= int_part.len();
        if mantissa >> 60 == 0 {
            mantissa = (mantissa << 4) | digit;
            if fraction {
                exp -= 4;
            }
        } else {
            sticky |= digit != 0;
            if !fraction {
                exp += 4;
            }
        }
    }
    Some(f64_from_parts(mantissa, sticky, exp))
}

/// `mantissa × 2^exp` (plus a little when `sticky`) rounded to the nearest
/// `f64`, ties to even; infinity past the largest finite value.
fn f64_from_parts(mantissa: u64, sticky: bool, exp: i64) -> f64 {
    if mantissa == 0 {
        return 0.0;
    }
    let shift = mantissa.leading_zeros();
    // 128 bits: the mantissa at the top, the sticky bit at the bottom.
    let bits = (u128::from(mantissa << shift) << 64) | u128::from(sticky);
    // The value is 1.f × 2^unbiased.
    let unbiased = exp - i64::from(shift) + 63;
    if unbiased > 1023 {
        return f64::INFINITY;
    }
    // Keep 53 bits for a normal number, fewer below the normal range.
    let below_normal = (-1022 - unbiased).max(0);
    if below_normal > 64 {
        return 0.0;
    }
    let dropped = 75 + u32::try_from(below_normal).unwrap_or(64);
    let mut kept = round_off(bits, dropped);
    if below_normal > 0 {
        // Subnormal: the bits are the significand; a carry into bit 52 is
        // the smallest normal number, which the same bits encode.
        return f64::from_bits(kept);
    }
    let mut unbiased = unbiased;
    if kept == 1 << 53 {
        kept >>= 1;
        unbiased += 1;
        if unbiased > 1023 {
            return f64::INFINITY;
        }
    }
    let biased = u64::try_from(unbiased + 1023).unwrap_or(0);
    f64::from_bits((biased << 52) | (kept & ((1 << 52) - 1)))
}

/// `bits >> dropped`, rounded to nearest, ties to even.
fn round_off(bits: u128, dropped: u32) -> u64 {
    if dropped >= 128 {
        return u64::from(dropped == 128 && bits > 1 << 127);
    }
    let kept = bits >> dropped;
    let rest = bits & ((1u128 << dropped) - 1);
    let half = 1u128 << (dropped - 1);
    let round_up = rest > half || (rest == half && kept & 1 == 1);
    u64::try_from(kept + u128::from(round_up)).unwrap_or(u64::MAX)
}

/// A character constant that is one `\xHH` or `\OOO` escape stands for that
/// byte value, as in Go (`'\xff'` is 255), not for UTF-8 text.
fn byte_escape(body: &str) -> Option<u8> {
    let escape = body.strip_prefix('\\')?;
    if let Some(hex) = escape.strip_prefix('x') {
        return (hex.len() == 2)
            .then(|| u8::from_str_radix(hex, 16).ok())
            .flatten();
    }
    (escape.len() == 3 && escape.bytes().all(|b| (b'0'..=b'7').contains(&b)))
        .then(|| u8::from_str_radix(escape, 8).ok())
        .flatten()
}

/// Decodes Go escapes in the body of a `quote`-quoted literal.
fn unquote(body: &str, quote: char) -> Result<String, String> {
    if !body.contains('\\') {
        return Ok(body.to_owned());
    }
    let mut bytes = Vec::with_capacity(body.len());
    let mut chars = body.chars();
    let mut buf = [0u8; 4];
    while let Some(c) = chars.next() {
        if c != '\\' {
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let escape = chars.next().ok_or("unterminated escape sequence")?;
        let simple = match escape {
            'a' => Some(b'\x07'),
            'b' => Some(b'\x08'),
            'f' => Some(b'\x0c'),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(b'\x0b'),
            '\\' => Some(b'\\'),
            '\'' | '"' if escape == quote => Some(escape as u8),
            _ => None,
        };
        if let Some(b) = simple {
            bytes.push(b);
            continue;
        }
        match escape {
            'x' => bytes.push(hex_byte(&mut chars, 2, 16)?),
            '0'..='7' => {
                let rest: String = chars.by_ref().take(2).collect();
                let digits = format!("{escape}{rest}");
                let value = u32::from_str_radix(&digits, 8)
                    .ok()
                    .filter(|_| digits.len() == 3)
                    .and_then(|v| u8::try_from(v).ok())
                    .ok_or("invalid octal escape in quoted text")?;
                bytes.push(value);
            }
            'u' | 'U' => {
                let len = if escape == 'u' { 4 } else { 8 };
                let digits: String = chars.by_ref().take(len).collect();
                let c = u32::from_str_radix(&digits, 16)
                    .ok()
                    .filter(|_| digits.len() == len)
                    .and_then(char::from_u32)
                    .ok_or("invalid unicode escape in quoted text")?;
                bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            other => return Err(format!("unknown escape sequence \\{other}")),
        }
    }
    String::from_utf8(bytes).map_err(|_| "escape sequences make invalid UTF-8".to_owned())
}

fn hex_byte(chars: &mut std::str::Chars<'_>, len: usize, radix: u32) -> Result<u8, String> {
    let digits: String = chars.by_ref().take(len).collect();
    u8::from_str_radix(&digits, radix)
        .ok()
        .filter(|_| digits.len() == len)
        .ok_or_else(|| "invalid hex escape in quoted text".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<TokenKind> {
        lex(src)
            .expect("lexes")
            .tokens
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    fn lex_err(src: &str) -> TemplateError {
        lex(src).expect_err("should fail")
    }

    #[test]
    fn text_and_fields() {
        use TokenKind::*;
        assert_eq!(
            kinds("a {{ .Vars.x }} b"),
            [
                Text("a ".into()),
                LeftDelim,
                Space,
                Field("Vars".into()),
                Field("x".into()),
                Space,
                RightDelim,
                Text(" b".into()),
                Eof
            ]
        );
    }

    #[test]
    fn trim_markers() {
        use TokenKind::*;
        assert_eq!(
            kinds("a \n\t{{- 1 -}} \n b"),
            [
                Text("a".into()),
                LeftDelim,
                Int(1),
                RightDelim,
                Text("b".into()),
                Eof
            ]
        );
        // Without a space the dash is a sign.
        assert_eq!(
            kinds("a {{-1}}"),
            [Text("a ".into()), LeftDelim, Int(-1), RightDelim, Eof]
        );
    }

    #[test]
    fn comments_are_dropped() {
        use TokenKind::*;
        assert_eq!(
            kinds("a {{/* x }} */}} b"),
            [Text("a ".into()), Text(" b".into()), Eof]
        );
        assert_eq!(
            kinds("a {{- /* x */ -}} b"),
            [Text("a".into()), Text("b".into()), Eof]
        );
        let lexed = lex("{{/**/}}").expect("lexes");
        assert!(lexed.has_actions);
        assert_eq!(
            lex_err("{{/* x").message,
            "unclosed comment: missing \"*/\""
        );
        assert!(
            lex_err("{{/* x */ }}")
                .message
                .starts_with("comment ends before")
        );
    }

    #[test]
    fn positions_count_characters_and_lines() {
        let tokens = lex("é\n  {{ $x }}").expect("lexes").tokens;
        let var = tokens
            .iter()
            .find(|t| matches!(t.kind, TokenKind::Variable(_)))
            .expect("variable token");
        assert_eq!(var.pos, Pos { line: 2, col: 6 });
    }

    #[test]
    fn numbers() {
        use TokenKind::*;
        let cases: &[(&str, TokenKind)] = &[
            ("{{1}}", Int(1)),
            ("{{-7}}", Int(-7)),
            ("{{+7}}", Int(7)),
            ("{{0x1F}}", Int(31)),
            ("{{0o17}}", Int(15)),
            ("{{017}}", Int(15)),
            ("{{0b101}}", Int(5)),
            ("{{1_000}}", Int(1000)),
            ("{{1.5}}", Float(1.5)),
            ("{{.5}}", Float(0.5)),
            ("{{1e3}}", Float(1000.0)),
            ("{{'a'}}", Int(97)),
            ("{{'\\n'}}", Int(10)),
        ];
        for (src, want) in cases {
            assert_eq!(&kinds(src)[1], want, "{src}");
        }
        assert!(lex_err("{{1x}}").message.starts_with("bad number syntax"));
        assert!(lex_err("{{1i}}").message.starts_with("complex numbers"));
        assert!(
            lex_err("{{99999999999999999999}}")
                .message
                .contains("out of range")
        );
        assert!(lex_err("{{-}}").message.starts_with("bad number syntax"));
    }

    #[test]
    fn issue_15_go_number_literals() {
        use TokenKind::*;
        let cases: &[(&str, TokenKind)] = &[
            ("{{0x1p-2}}", Float(0.25)),
            ("{{0x1.8p1}}", Float(3.0)),
            ("{{0X.8P+1}}", Float(1.0)),
            ("{{-0x1p0}}", Float(-1.0)),
            ("{{0x_1FFFp-16}}", Float(8191.0 / 65536.0)),
            ("{{0x1.fffffffffffffp1023}}", Float(f64::MAX)),
            ("{{0x1p-1022}}", Float(f64::MIN_POSITIVE)),
            ("{{0x1p-1074}}", Float(f64::from_bits(1))),
            // Halfway below the smallest subnormal: ties to even, zero.
            ("{{0x1p-1075}}", Float(0.0)),
            ("{{0x1.8p-1075}}", Float(f64::from_bits(1))),
            // 1 + 1.5 ulp rounds to the even 1 + 2 ulp; past 16 digits the
            // dropped digits still break the tie.
            ("{{0x1.00000000000018p0}}", Float(1.0 + 2.0 * f64::EPSILON)),
            ("{{0x1.00000000000008p0}}", Float(1.0)),
            ("{{0x1.000000000000080000001p0}}", Float(1.0 + f64::EPSILON)),
            ("{{0x1E}}", Int(30)),
            ("{{0Xff}}", Int(255)),
            ("{{0O17}}", Int(15)),
            ("{{0B11}}", Int(3)),
            ("{{0_17}}", Int(15)),
            ("{{0x_ff}}", Int(255)),
            ("{{1_000.5}}", Float(1000.5)),
            ("{{1e1_0}}", Float(1e10)),
            ("{{1.e2}}", Float(100.0)),
            ("{{+.5}}", Float(0.5)),
            ("{{00}}", Int(0)),
            ("{{1e-400}}", Float(0.0)),
            ("{{'\\x41'}}", Int(65)),
            ("{{'\\xff'}}", Int(255)),
            ("{{'\\377'}}", Int(255)),
            ("{{'\\u00e9'}}", Int(233)),
            ("{{'é'}}", Int(233)),
            ("{{'\\''}}", Int(39)),
        ];
        for (src, want) in cases {
            assert_eq!(&kinds(src)[1], want, "{src}");
        }
        let errors: &[(&str, &str)] = &[
            (
                "{{0x1.8}}",
                "bad number syntax: \"0x1.8\": a hexadecimal float needs a 'p' exponent",
            ),
            ("{{0x1p}}", "bad number syntax: \"0x1p\""),
            ("{{0xp1}}", "bad number syntax: \"0xp1\""),
            ("{{0x}}", "bad number syntax: \"0x\""),
            ("{{0b1.1}}", "bad number syntax: \"0b1.1\""),
            ("{{0o7.1}}", "bad number syntax: \"0o7.1\""),
            ("{{0b102}}", "bad number syntax: \"0b102\""),
            ("{{1e}}", "bad number syntax: \"1e\""),
            (
                "{{09}}",
                "bad number syntax: \"09\": a leading 0 makes an octal number",
            ),
            (
                "{{1__0}}",
                "bad number syntax: \"1__0\": '_' may only separate digits",
            ),
            (
                "{{1_}}",
                "bad number syntax: \"1_\": '_' may only separate digits",
            ),
            (
                "{{1_.5}}",
                "bad number syntax: \"1_.5\": '_' may only separate digits",
            ),
            ("{{1p3}}", "bad number syntax: \"1p\""),
            ("{{1e400}}", "number 1e400 is out of range for a float"),
            (
                "{{0x1p1024}}",
                "number 0x1p1024 is out of range for a float",
            ),
            (
                "{{0x1.fffffffffffff8p1023}}",
                "number 0x1.fffffffffffff8p1023 is out of range for a float",
            ),
            (
                "{{0x8000000000000000}}",
                "number 0x8000000000000000 is out of range for an integer",
            ),
            (
                "{{0x1p3i}}",
                "complex numbers are not supported: \"0x1p3i\"",
            ),
            ("{{'\\400'}}", "invalid octal escape in quoted text"),
            ("{{'\\\"'}}", "unknown escape sequence \\\""),
            ("{{''}}", "malformed character constant"),
        ];
        for (src, want) in errors {
            let e = lex_err(src);
            assert_eq!(
                (e.line, e.column, e.message.as_str()),
                (1, 3, *want),
                "{src}"
            );
        }
    }

    #[test]
    fn strings() {
        use TokenKind::*;
        assert_eq!(
            kinds(r#"{{"a\tb\"\u00e9\x41\101"}}"#)[1],
            Str("a\tb\"éAA".into())
        );
        assert_eq!(kinds("{{`a\\n\r\nb`}}")[1], Str("a\\n\nb".into()));
        assert_eq!(lex_err("{{\"abc}}").message, "unterminated quoted string");
        assert_eq!(
            lex_err("{{\"a\nb\"}}").message,
            "unterminated quoted string"
        );
        assert_eq!(
            lex_err("{{`abc}}").message,
            "unterminated raw quoted string"
        );
        assert!(lex_err(r#"{{"\q"}}"#).message.starts_with("unknown escape"));
        assert!(lex_err(r#"{{"\xff"}}"#).message.contains("invalid UTF-8"));
        assert_eq!(lex_err("{{'ab'}}").message, "malformed character constant");
    }

    #[test]
    fn keywords_and_words() {
        use TokenKind::*;
        assert_eq!(
            kinds("{{if true}}{{else}}{{end}}")[1..3],
            [Keyword(super::Keyword::If), Space]
        );
        assert_eq!(kinds("{{nil}}")[1], Nil);
        assert_eq!(kinds("{{printf}}")[1], Ident("printf".into()));
        assert_eq!(
            kinds("{{$x := $}}")[1..6],
            [
                Variable("$x".into()),
                Space,
                Declare,
                Space,
                Variable("$".into())
            ]
        );
    }

    #[test]
    fn lexing_errors() {
        let e = lex_err("ab\n {{ .x ");
        assert_eq!((e.line, e.column), (2, 2));
        assert_eq!(e.message, "unclosed action: missing \"}}\"");
        let e = lex_err("{{ # }}");
        assert_eq!((e.line, e.column), (1, 4));
        assert!(e.message.starts_with("unrecognized character"));
        assert!(
            lex_err("{{ .x-y }}")
                .message
                .starts_with("bad character '-'")
        );
        assert!(
            lex_err("{{ a : b }}")
                .message
                .starts_with("expected \":=\"")
        );
    }
}
