//! Errors that carry advice, printed after the error as `hint: ...`.

use std::error::Error;
use std::fmt;

/// An error plus what the operator can do about it. It prints as the error
/// itself; `main` finds it in the chain and prints the hint on its own line.
#[derive(Debug)]
pub(crate) struct Hinted {
    inner: anyhow::Error,
    hint: String,
}

impl Hinted {
    /// The advice.
    pub(crate) fn hint(&self) -> &str {
        &self.hint
    }
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl Error for Hinted {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.inner.source()
    }
}

/// Attaches a hint to an error.
pub(crate) trait WithHint<T> {
    /// Wraps the error, if any, with `hint`.
    fn hint(self, hint: impl Into<String>) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> WithHint<T> for Result<T, E> {
    fn hint(self, hint: impl Into<String>) -> anyhow::Result<T> {
        self.map_err(|e| {
            anyhow::Error::new(Hinted {
                inner: e.into(),
                hint: hint.into(),
            })
        })
    }
}
