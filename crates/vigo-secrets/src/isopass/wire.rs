//! The JSON bodies exchanged with isopass, and buffers that never leave a
//! secret value behind in freed memory.
//!
//! Answers are read into a [`Zeroizing`] buffer that is sized up front and
//! grown by copying into a fresh zeroizing buffer, and the `value` field is
//! parsed straight into a [`SecretValue`]. The `PUT` body is written into a
//! zeroizing buffer large enough for any escaping and handed to the HTTP
//! stack as [`Bytes`] that own it, so it is wiped when the request is done.
//! Copies the HTTP and TLS libraries make internally are beyond Vigo's reach.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::SecretValue;

/// The largest answer accepted (values are certificates and tokens, and a
/// `versions` answer for every secret Vigo references stays far below).
pub(super) const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// `GET /v1/secrets/{path}`.
#[derive(Deserialize)]
pub(super) struct ValueAnswer {
    pub(super) path: String,
    pub(super) version: u64,
    #[serde(deserialize_with = "secret_value")]
    pub(super) value: SecretValue,
}

/// `PUT /v1/secrets/{path}`.
#[derive(Deserialize)]
pub(super) struct PutAnswer {
    pub(super) version: u64,
}

/// `POST /v1/versions`.
#[derive(Deserialize)]
pub(super) struct VersionsAnswer {
    pub(super) versions: BTreeMap<String, u64>,
}

/// `POST /v1/versions` request body.
#[derive(Serialize)]
pub(super) struct VersionsRequest<'a> {
    pub(super) paths: Vec<&'a str>,
}

/// `GET /v1/secrets?prefix=` (Vigo's extension).
#[derive(Deserialize)]
pub(super) struct ListAnswer {
    pub(super) secrets: Vec<ListEntry>,
}

/// One entry of a [`ListAnswer`].
#[derive(Deserialize)]
pub(super) struct ListEntry {
    pub(super) path: String,
    pub(super) version: u64,
}

#[derive(Serialize)]
struct PutRequest<'a> {
    value: &'a str,
}

/// The `PUT` body `{"value":"..."}` in a buffer that is zeroized when the
/// HTTP stack drops it.
pub(super) fn put_body(value: &SecretValue) -> Result<Bytes, serde_json::Error> {
    // Worst case every byte becomes a six-byte `\u00XX` escape; with this
    // capacity the buffer never reallocates, so no copy is left behind.
    let mut buf = Zeroizing::new(Vec::with_capacity(value.len() * 6 + 16));
    serde_json::to_writer(
        &mut *buf,
        &PutRequest {
            value: value.expose_secret(),
        },
    )?;
    Ok(Bytes::from_owner(buf))
}

/// Appends `chunk` to `buf`; when it does not fit, moves everything into a
/// new zeroizing buffer of twice the size, so the old one is wiped rather
/// than freed with its content.
pub(super) fn append(buf: &mut Zeroizing<Vec<u8>>, chunk: &[u8]) {
    let needed = buf.len() + chunk.len();
    if needed > buf.capacity() {
        let mut bigger = Zeroizing::new(Vec::with_capacity(needed.max(buf.capacity() * 2)));
        bigger.extend_from_slice(buf);
        *buf = bigger;
    }
    buf.extend_from_slice(chunk);
}

/// Deserialises a JSON string straight into a [`SecretValue`].
fn secret_value<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SecretValue, D::Error> {
    deserializer.deserialize_string(SecretValueVisitor)
}

struct SecretValueVisitor;

impl Visitor<'_> for SecretValueVisitor {
    type Value = SecretValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<SecretValue, E> {
        Ok(SecretValue::from(v))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<SecretValue, E> {
        Ok(SecretValue::new(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_answer_parses_into_a_secret_value() {
        let answer: ValueAnswer = serde_json::from_slice(
            br#"{"path":"a/b","version":3,"value":"l1\nl2 \u00e9\u2603","extra":1}"#,
        )
        .unwrap();
        assert_eq!(answer.path, "a/b");
        assert_eq!(answer.version, 3);
        assert_eq!(answer.value.expose_secret(), "l1\nl2 é☃");
    }

    #[test]
    fn put_body_round_trips_every_kind_of_character() {
        let tricky = "quote\" backslash\\ nl\n tab\t nul\u{0} ctl\u{1f} ünï 🦀";
        let body = put_body(&SecretValue::from(tricky)).unwrap();
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed["value"], tricky);
        let all_controls: String = (0u8..0x20).map(char::from).collect();
        let body = put_body(&SecretValue::from(all_controls.as_str())).unwrap();
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed["value"], all_controls.as_str());
    }

    #[test]
    fn append_keeps_every_byte_in_order() {
        let mut buf = Zeroizing::new(Vec::with_capacity(2));
        for chunk in [&b"ab"[..], b"cde", b"", b"fghijklmnop"] {
            append(&mut buf, chunk);
        }
        assert_eq!(&buf[..], b"abcdefghijklmnop");
    }
}
