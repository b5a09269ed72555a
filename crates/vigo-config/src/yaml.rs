//! YAML parser errors in the user's terms, for every Vigo file read with
//! `serde-saphyr` (`vigosrv.yaml`, `.vgo` files).
//!
//! The library's default messages are written for the programmer calling
//! it (`use from_str_multiple…`, `set DuplicateKeyPolicy in Options…`) and
//! its position suffix was once cut off with the rest of a sentence. Here the
//! errors a user can cause by editing a file get Vigo's own words; the rest
//! use the library's user-facing formatter. The message never carries the
//! position (callers print `file:line:column` in front) or a snippet of the
//! file (which could quote a value).

use serde_saphyr::{Error, MessageFormatter, UserMessageFormatter};

/// The options every Vigo YAML file is read with: only `true` and `false`
/// are booleans (see also the compiler's spelling check), numbers with a
/// leading zero (`0644`) stay strings, duplicate keys are errors, and no
/// snippet of the file is kept in an error.
pub fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        with_snippet: false,
    }
}

/// One line saying what is wrong, without position or file text.
pub fn error_message(err: &Error) -> String {
    let message = match innermost(err) {
        Error::MultipleDocuments { .. } => {
            "the file holds more than one YAML document; remove the '---' line that starts the second"
                .to_owned()
        }
        Error::DuplicateMappingKey { key: Some(key), .. } => {
            format!("key '{key}' is written twice in the same mapping; keep one of them")
        }
        Error::DuplicateMappingKey { key: None, .. } => {
            "a key is written twice in the same mapping; keep one of them".to_owned()
        }
        Error::AliasReplayCounterOverflow { .. }
        | Error::AliasReplayLimitExceeded { .. }
        | Error::AliasExpansionLimitExceeded { .. }
        | Error::AliasReplayStackDepthExceeded { .. }
        | Error::Budget { .. } => {
            "the file expands to too much data through anchors and aliases (&name, *name); write the values out instead"
                .to_owned()
        }
        Error::UnknownAnchor { .. } => {
            "an alias (*name) refers to an anchor (&name) that is not defined before it".to_owned()
        }
        Error::Eof { .. } => "the file ends in the middle of a value".to_owned(),
        Error::InvalidUtf8Input => "the file is not valid UTF-8 text".to_owned(),
        other => UserMessageFormatter.format_message(other).into_owned(),
    };
    // One line, whatever the library wrote.
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The error itself, without the alias and snippet wrappers.
fn innermost(mut err: &Error) -> &Error {
    while let Error::AliasError { error, .. } | Error::WithSnippet { error, .. } = err {
        err = error;
    }
    err
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn message(text: &str) -> String {
        let err = serde_saphyr::from_str_with_options::<BTreeMap<String, i64>>(text, options())
            .unwrap_err();
        error_message(&err)
    }

    #[test]
    fn issue_12_item_17_library_advice_never_reaches_the_user() {
        assert_eq!(
            message("a: 1\n---\nb: 2\n"),
            "the file holds more than one YAML document; remove the '---' line that starts the second"
        );
        assert_eq!(
            message("a: 1\na: 2\n"),
            "key 'a' is written twice in the same mapping; keep one of them"
        );
        assert_eq!(
            message("a: *nope\n"),
            "an alias (*name) refers to an anchor (&name) that is not defined before it"
        );
    }
}
