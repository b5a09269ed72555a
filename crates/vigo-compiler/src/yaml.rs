//! Reading `.vgo` files: YAML options, positions, and error conversion.

use serde::de::DeserializeOwned;
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
        let options = serde_saphyr::options! {
            strict_booleans: true,
            leading_zero_numbers_as_strings: true,
            with_snippet: false,
        };
        serde_saphyr::from_str_with_options(&self.text, options).map_err(|e| {
            let pos = e
                .location()
                .map(|l| Pos::of(&l))
                .unwrap_or(Pos { line: 0, column: 0 });
            let text = e.without_snippet().to_string();
            // The position travels in the diagnostic itself; drop the
            // library's own " at line N, column M" suffix.
            let message = match text.rsplit_once(" at line ") {
                Some((head, _)) => head.to_owned(),
                None => text,
            };
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
        assert!(d.message.contains("duplicate"), "{}", d.message);
        assert!(!d.message.contains(" at line "), "{}", d.message);
    }
}
