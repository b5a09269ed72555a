//! Errors found in the config repository, each with its file and position.

use std::fmt;

/// One problem in the config repository.
///
/// `file` is relative to the config directory (`modules/database.vgo`);
/// `line` and `column` are 1-based, or 0 when the problem concerns the file
/// as a whole (it cannot be read). Messages name paths, vars and resources,
/// never a secret value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Diagnostic {
    /// File relative to the config directory.
    pub file: String,
    /// 1-based line, 0 for a whole-file problem.
    pub line: usize,
    /// 1-based column (in characters), 0 for a whole-file problem.
    pub column: usize,
    /// The resource concerned, when there is one.
    pub resource: Option<String>,
    /// What is wrong and, where it helps, what to do.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        f.write_str(": ")?;
        if let Some(resource) = &self.resource {
            write!(f, "resource '{resource}': ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in one load, compile or check, in the order found.
///
/// `Display` prints one diagnostic per line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Whether no problem was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many problems were found.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The problems, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    pub(crate) fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    pub(crate) fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    /// Drops exact repeats, keeping the first of each (the same module
    /// checked for several node entries reports the same problem once).
    pub(crate) fn dedup(&mut self) {
        let mut seen = std::collections::HashSet::new();
        self.0.retain(|d| seen.insert(d.clone()));
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            d.fmt(f)?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl From<Vec<Diagnostic>> for Diagnostics {
    fn from(list: Vec<Diagnostic>) -> Self {
        Self(list)
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_position_and_resource() {
        let mut all = Diagnostics::default();
        all.push(Diagnostic {
            file: "modules/database.vgo".into(),
            line: 12,
            column: 5,
            resource: Some("pg-config".into()),
            message: "missing var 'db_password'".into(),
        });
        all.push(Diagnostic {
            file: "nodes.vgo".into(),
            line: 0,
            column: 0,
            resource: None,
            message: "cannot read the file: not found".into(),
        });
        assert_eq!(
            all.to_string(),
            "modules/database.vgo:12:5: resource 'pg-config': missing var 'db_password'\n\
             nodes.vgo: cannot read the file: not found"
        );
    }
}
