//! [`error_chain`]: an error and its causes on one line, the form the
//! binaries print and the server logs.

use std::error::Error;

/// Joins an error and its sources with `": "`, the one-line form the
/// binaries print (`loading server config: resolving secret 'vigo/db/dsn':
/// file not found`). A source whose text the line already ends with is
/// skipped: some errors print their cause inline and also return it as
/// their source.
pub fn error_chain(err: &(dyn Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut next = err.source();
    while let Some(source) = next {
        let text = source.to_string();
        if !text.is_empty() && !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        next = source.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inline);

    #[derive(Debug, thiserror::Error)]
    #[error("inline: {0}")]
    struct Inline(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("reading 'a.yaml'")]
    struct Reading(#[source] std::io::Error);

    fn gone() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::NotFound, "gone")
    }

    #[test]
    fn chain_joins_every_cause_once() {
        let cases: [(&(dyn std::error::Error + 'static), &str); 2] = [
            // A cause the message already printed is skipped.
            (&Outer(Inline(gone())), "outer: inline: gone"),
            // A cause the message did not print is joined.
            (&Reading(gone()), "reading 'a.yaml': gone"),
        ];
        for (error, expected) in cases {
            assert_eq!(error_chain(error), expected);
        }
    }
}
