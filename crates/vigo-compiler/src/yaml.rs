//! Reading `.vgo` files: YAML options, positions, and error conversion.
//!
//! Free-form values (vars, resource fields) are read as [`Node`]s, which
//! keep the position of every scalar, and turned into JSON with the file's
//! text at hand: a boolean must be spelled `true` or `false` (YAML 1.2's
//! `True` and `FALSE` stay strings, as docs/modules.md says), and a field
//! such as `mode` can read a number back as written (`0o644`, not 420).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value as Json;
use serde_saphyr::{Location, Spanned};
use vigo_template::TemplateError;

use crate::diagnostics::Diagnostic;

/// A 1-based position in a file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

impl Pos {
    pub(crate) fn of(location: &Location) -> Self {
        Self {
            line: location.line() as usize,
            column: location.column() as usize,
        }
    }
}

/// One `.vgo` file's text and its name relative to the config directory.
#[derive(Debug)]
pub(crate) struct SourceFile {
    pub(crate) rel: String,
    pub(crate) text: String,
}

impl SourceFile {
    /// Parses the whole file; YAML 1.1 surprises are off (`no` and `012` stay
    /// strings) and duplicate keys are refused.
    pub(crate) fn parse<T: DeserializeOwned + Default>(&self) -> Result<T, Diagnostic> {
        if self.text.trim().is_empty() {
            return Ok(T::default());
        }
        serde_saphyr::from_str_with_options(&self.text, vigo_config::yaml::options()).map_err(|e| {
            let pos = e
                .location()
                .map(|l| Pos::of(&l))
                .unwrap_or(Pos { line: 0, column: 0 });
            let message = vigo_config::yaml::error_message(&e);
            self.diagnostic(pos, None, message)
        })
    }

    pub(crate) fn diagnostic(
        &self,
        pos: Pos,
        resource: Option<&str>,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            file: self.rel.clone(),
            line: pos.line,
            column: pos.column,
            resource: resource.map(str::to_owned),
            message: message.into(),
        }
    }

    /// The position of `key` as written before the value at `value` (the
    /// YAML reader reports where values start; errors about a field read
    /// better pointing at its key).
    pub(crate) fn key_pos<T>(&self, key: &str, value: &Spanned<T>) -> Pos {
        let fallback = Pos::of(&value.referenced);
        let Some(end) = byte_offset(&value.referenced) else {
            return fallback;
        };
        let Some(head) = self.text.get(..end) else {
            return fallback;
        };
        match head.rfind(key) {
            Some(at) => self.pos_at(at),
            None => fallback,
        }
    }

    /// Where the text of a string scalar starts, for mapping template error
    /// positions back into the file.
    pub(crate) fn text_start<T>(&self, value: &Spanned<T>) -> TextStart {
        let pos = Pos::of(&value.referenced);
        let offset = byte_offset(&value.referenced);
        let first = offset
            .and_then(|o| self.text.get(o..))
            .and_then(|t| t.chars().next());
        if matches!(first, Some('"' | '\'')) {
            return TextStart {
                line: pos.line,
                column: pos.column + 1,
                block: false,
            };
        }
        // Block scalars (`|`, `>`) are reported at their first content line;
        // every line of the template then shares that indentation.
        let block = offset
            .and_then(|o| self.text.get(..o))
            .map(|head| {
                let token = head
                    .trim_end()
                    .rsplit([' ', '\n', '\t'])
                    .next()
                    .unwrap_or("");
                token.starts_with(['|', '>'])
                    && token[1..]
                        .chars()
                        .all(|c| c == '-' || c == '+' || c.is_ascii_digit())
            })
            .unwrap_or(false);
        TextStart {
            line: pos.line,
            column: pos.column,
            block,
        }
    }

    fn pos_at(&self, byte: usize) -> Pos {
        let head = &self.text[..byte];
        let line = head.matches('\n').count() + 1;
        let line_start = head.rfind('\n').map_or(0, |i| i + 1);
        Pos {
            line,
            column: head[line_start..].chars().count() + 1,
        }
    }
}

impl SourceFile {
    /// The JSON form of a free-form value, with booleans as the docs define
    /// them: only the plain scalars `true` and `false` are booleans; `True`,
    /// `FALSE` and the like are the strings written.
    pub(crate) fn json(&self, node: &Spanned<Node>) -> Json {
        match &node.value {
            Node::Null => Json::Null,
            Node::Bool(b) => match self.scalar_text(node) {
                Some(text) if text != "true" && text != "false" && !text.starts_with('!') => {
                    Json::String(text.to_owned())
                }
                _ => Json::Bool(*b),
            },
            Node::Number(n) => Json::Number(n.clone()),
            Node::String(s) => Json::String(s.clone()),
            Node::List(items) => Json::Array(items.iter().map(|i| self.json(i)).collect()),
            Node::Map(map) => {
                Json::Object(map.iter().map(|(k, v)| (k.clone(), self.json(v))).collect())
            }
        }
    }

    /// [`SourceFile::json`], keeping the node's positions.
    pub(crate) fn spanned_json(&self, node: &Spanned<Node>) -> Spanned<Json> {
        Spanned::new(self.json(node), node.referenced, node.defined)
    }

    /// The text of a plain scalar as written (`0o644`, `True`), read from
    /// where the value is defined (an alias reads its anchor's value);
    /// `None` when the position is unknown.
    pub(crate) fn scalar_text<T>(&self, value: &Spanned<T>) -> Option<&str> {
        let offset = byte_offset(&value.defined).or_else(|| byte_offset(&value.referenced))?;
        let mut text = self.text.get(offset..)?;
        // An anchor (`&name value`) comes before the scalar.
        if let Some(rest) = text.strip_prefix('&') {
            let end = rest.find(char::is_whitespace)?;
            text = rest[end..].trim_start_matches([' ', '\t']);
        }
        let end = text
            .find(|c: char| c.is_whitespace() || matches!(c, ',' | ']' | '}' | '#'))
            .unwrap_or(text.len());
        Some(&text[..end])
    }
}

/// A YAML value with the position of every node inside it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    List(Vec<Spanned<Node>>),
    Map(BTreeMap<String, Spanned<Node>>),
}

impl<'de> serde::Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        // As serde_json: a float JSON cannot hold (NaN, infinity) is null.
        Ok(serde_json::Number::from_f64(v).map_or(Node::Null, Node::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push(item);
        }
        Ok(Node::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = BTreeMap::new();
        while let Some((key, value)) = map.next_entry::<String, Spanned<Node>>()? {
            entries.insert(key, value);
        }
        Ok(Node::Map(entries))
    }
}

fn byte_offset(location: &Location) -> Option<usize> {
    location
        .span()
        .byte_offset()
        .filter(|&o| o != u64::from(u32::MAX))
        .and_then(|o| usize::try_from(o).ok())
}

/// Where a template's text begins in its file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TextStart {
    pub(crate) line: usize,
    pub(crate) column: usize,
    /// A block scalar: every line is indented like the first.
    pub(crate) block: bool,
}

impl TextStart {
    /// The file position of a template error.
    pub(crate) fn locate(&self, error: &TemplateError) -> Pos {
        let line = self.line + error.line.saturating_sub(1);
        let column = if error.line <= 1 || self.block {
            self.column + error.column.saturating_sub(1)
        } else {
            error.column
        };
        Pos { line, column }
    }

    pub(crate) fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.column,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    type Doc = BTreeMap<String, Spanned<String>>;

    fn file(text: &str) -> SourceFile {
        SourceFile {
            rel: "modules/x.vgo".into(),
            text: text.into(),
        }
    }

    #[test]
    fn template_positions_map_into_the_file() {
        let f = file("a: plain {{ x }}\nb: \"quoted\"\nc: |\n    line one\n    line two\n");
        let doc: Doc = f.parse().unwrap();
        let err = |line, column| TemplateError {
            line,
            column,
            message: String::new(),
        };
        let a = f.text_start(&doc["a"]);
        assert_eq!(
            a.locate(&err(1, 7)),
            Pos {
                line: 1,
                column: 10
            }
        );
        let b = f.text_start(&doc["b"]);
        assert_eq!(b.pos(), Pos { line: 2, column: 5 });
        let c = f.text_start(&doc["c"]);
        assert!(c.block);
        assert_eq!(
            c.locate(&err(2, 6)),
            Pos {
                line: 5,
                column: 10
            }
        );
        assert_eq!(f.key_pos("b", &doc["b"]), Pos { line: 2, column: 1 });
    }

    #[test]
    fn yaml_errors_carry_position_without_suffix() {
        let f = file("a: 1\na: 2\n");
        let d = f.parse::<BTreeMap<String, u32>>().unwrap_err();
        assert_eq!(d.line, 2);
        assert!(d.message.contains("written twice"), "{}", d.message);
        assert!(!d.message.contains(" at line "), "{}", d.message);
    }
}
