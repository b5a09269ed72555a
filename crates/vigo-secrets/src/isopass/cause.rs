//! Turning a failed HTTP exchange into a short cause for
//! [`SecretError::Unreachable`](crate::SecretError::Unreachable).
//!
//! reqwest's own message starts with the request URL and wraps the real
//! reason several errors deep; operators need the reason only
//! (`connection refused`, `timed out`, `TLS: invalid peer certificate: ...`).

use std::error::Error;
use std::io;

/// The longest cause kept; a longer innermost message is cut.
const MAX_CAUSE: usize = 160;

/// What a walk down an error's source chain found.
struct Findings<'a> {
    tls: Option<&'a rustls::Error>,
    io_kind: Option<io::ErrorKind>,
    innermost: Option<&'a (dyn Error + 'static)>,
}

/// Walks `err`'s sources, looking inside `io::Error`s too: their `source`
/// skips the error they wrap, and the TLS library's error arrives wrapped in
/// two of them.
fn walk(err: &reqwest::Error) -> Findings<'_> {
    let mut found = Findings {
        tls: None,
        io_kind: None,
        innermost: None,
    };
    let mut next = err.source();
    while let Some(current) = next {
        found.innermost = Some(current);
        if let Some(t) = current.downcast_ref::<rustls::Error>() {
            found.tls = Some(t);
        }
        if let Some(e) = current.downcast_ref::<io::Error>() {
            found.io_kind = Some(e.kind());
            if let Some(inner) = e.get_ref() {
                next = Some(inner);
                continue;
            }
        }
        next = current.source();
    }
    found
}

/// Whether `err` is a TLS failure (an untrusted or mismatched certificate,
/// a server that does not speak TLS): retrying cannot help.
pub(super) fn is_tls(err: &reqwest::Error) -> bool {
    walk(err).tls.is_some()
}

/// The innermost meaningful reason `err` happened, without URL or body.
pub(super) fn transport_cause(err: &reqwest::Error) -> String {
    let found = walk(err);
    if let Some(tls) = found.tls {
        return shorten(format!("TLS: {tls}"));
    }
    match found.io_kind {
        Some(io::ErrorKind::ConnectionRefused) => return "connection refused".to_owned(),
        Some(io::ErrorKind::ConnectionReset) => return "connection reset".to_owned(),
        Some(io::ErrorKind::ConnectionAborted) => return "connection aborted".to_owned(),
        Some(io::ErrorKind::TimedOut) => return "timed out".to_owned(),
        Some(io::ErrorKind::HostUnreachable) => return "host unreachable".to_owned(),
        Some(io::ErrorKind::NetworkUnreachable) => return "network unreachable".to_owned(),
        _ => {}
    }
    if err.is_timeout() {
        return "timed out".to_owned();
    }
    match found.innermost {
        // Messages below reqwest's own are about sockets, DNS and HTTP
        // framing; none of them carries the URL or a body.
        Some(inner) => shorten(inner.to_string()),
        None if err.is_connect() => "connection failed".to_owned(),
        None if err.is_body() || err.is_decode() => "reading the answer failed".to_owned(),
        None => "request failed".to_owned(),
    }
}

fn shorten(mut text: String) -> String {
    if text.len() > MAX_CAUSE {
        let mut end = MAX_CAUSE;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_causes_are_cut_on_a_char_boundary() {
        let cut = shorten("é".repeat(200));
        assert!(cut.ends_with("..."));
        assert!(cut.len() <= MAX_CAUSE + 3);
        assert_eq!(shorten("short".to_owned()), "short");
    }
}
