//! The line formatter: field collection, logfmt quoting and JSON lines.
//!
//! Quoting rule for text values: written bare when non-empty and free of
//! spaces, `"`, `=` and control characters; otherwise in double quotes, with
//! `"` and `\` escaped by a backslash, newline, carriage return and tab as
//! `\n`, `\r`, `\t`, and other control characters as `\u{..}`.

use std::collections::HashSet;
use std::fmt::{self, Write as _};

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::{LogFormat, LogOptions};

/// Keys of a JSON line that fields cannot take; a field with one of these
/// names is written as `field.<name>`.
const RESERVED_JSON_KEYS: [&str; 3] = ["level", "message", "timestamp"];

/// Formats events as Vigo log lines.
#[derive(Clone, Copy, Debug, Default)]
pub struct EventFormat {
    format: LogFormat,
    options: LogOptions,
}

impl EventFormat {
    /// A formatter for `format` lines.
    pub fn new(format: LogFormat, options: LogOptions) -> Self {
        Self { format, options }
    }
}

impl<S> FormatEvent<S, SpanFields> for EventFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, SpanFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut collector = FieldCollector {
            message: Some(String::new()),
            fields: Vec::new(),
        };
        event.record(&mut collector);
        let mut fields = collector.fields;
        if let Some(scope) = ctx.event_scope() {
            for span in scope {
                if let Some(stored) = span.extensions().get::<FormattedFields<SpanFields>>() {
                    fields.extend(decode_span_fields(&stored.fields));
                }
            }
        }
        let fields = first_of_each_key(fields);
        let level = event.metadata().level().as_str();
        let message = collector.message.unwrap_or_default();
        let timestamp = self.options.timestamps.then(timestamp_now);

        let line = Line {
            timestamp: timestamp.as_deref(),
            level,
            message: &message,
            fields: &fields,
        };
        writer.write_str(&match self.format {
            LogFormat::Text => line.text(),
            LogFormat::Json => line.json(),
        })
    }
}

/// Stores span fields for [`EventFormat`]: a JSON array of `[name, value]`
/// pairs, so their order and types survive until an event is written.
#[derive(Clone, Copy, Debug, Default)]
pub struct SpanFields;

impl<'writer> FormatFields<'writer> for SpanFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut collector = FieldCollector {
            message: None,
            fields: Vec::new(),
        };
        fields.record(&mut collector);
        writer.write_str(&encode_span_fields(&collector.fields))
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut stored = decode_span_fields(&current.fields);
        let mut collector = FieldCollector {
            message: None,
            fields: Vec::new(),
        };
        fields.record(&mut collector);
        for (name, value) in collector.fields {
            match stored.iter_mut().find(|(existing, _)| *existing == name) {
                Some(slot) => slot.1 = value,
                None => stored.push((name, value)),
            }
        }
        current.fields = encode_span_fields(&stored);
        Ok(())
    }
}

/// Quotes a text value following the rule in this module's documentation.
pub fn quote_value(value: &str) -> String {
    let needs_quotes = value.is_empty()
        || value
            .chars()
            .any(|c| c == ' ' || c == '"' || c == '=' || c.is_control());
    if !needs_quotes {
        return value.to_owned();
    }
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            _ => push_escaped_control(&mut quoted, c),
        }
    }
    quoted.push('"');
    quoted
}

/// Pushes `c`, spelling control characters as escapes so a value never
/// breaks the one-event-per-line shape.
fn push_escaped_control(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if c.is_control() => {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
        c => out.push(c),
    }
}

/// One event, ready to be written in either format.
struct Line<'a> {
    timestamp: Option<&'a str>,
    level: &'a str,
    message: &'a str,
    fields: &'a [(String, Value)],
}

impl Line<'_> {
    fn text(&self) -> String {
        let mut line = String::new();
        if let Some(timestamp) = self.timestamp {
            line.push_str(timestamp);
            line.push(' ');
        }
        line.push_str(self.level);
        if !self.message.is_empty() {
            line.push(' ');
            self.message
                .chars()
                .for_each(|c| push_escaped_control(&mut line, c));
        }
        for (name, value) in self.fields {
            line.push(' ');
            line.push_str(name);
            line.push('=');
            match value {
                Value::String(text) => line.push_str(&quote_value(text)),
                other => line.push_str(&quote_value(&other.to_string())),
            }
        }
        line.push('\n');
        line
    }

    fn json(&self) -> String {
        let mut line = String::from("{");
        push_json_entry(&mut line, "level", &Value::from(self.level));
        push_json_entry(&mut line, "message", &Value::from(self.message));
        for (name, value) in self.fields {
            if RESERVED_JSON_KEYS.contains(&name.as_str()) {
                push_json_entry(&mut line, &format!("field.{name}"), value);
            } else {
                push_json_entry(&mut line, name, value);
            }
        }
        if let Some(timestamp) = self.timestamp {
            push_json_entry(&mut line, "timestamp", &Value::from(timestamp));
        }
        line.push_str("}\n");
        line
    }
}

fn push_json_entry(line: &mut String, key: &str, value: &Value) {
    if !line.ends_with('{') {
        line.push(',');
    }
    // A `Value` always serialises and a key is written as a JSON string.
    line.push_str(&Value::from(key).to_string());
    line.push(':');
    line.push_str(&value.to_string());
}

fn timestamp_now() -> String {
    let mut text = String::new();
    // `SystemTime` writes RFC 3339 UTC with microseconds into a String, which
    // cannot fail.
    let _ = SystemTime.format_time(&mut Writer::new(&mut text));
    text
}

fn encode_span_fields(fields: &[(String, Value)]) -> String {
    let pairs: Vec<Value> = fields
        .iter()
        .map(|(name, value)| Value::from(vec![Value::from(name.as_str()), value.clone()]))
        .collect();
    Value::from(pairs).to_string()
}

fn decode_span_fields(stored: &str) -> Vec<(String, Value)> {
    // Only `encode_span_fields` writes this text, so it always decodes; an
    // empty list is the safe answer if it ever did not.
    serde_json::from_str::<Vec<(String, Value)>>(stored).unwrap_or_default()
}

fn first_of_each_key(fields: Vec<(String, Value)>) -> Vec<(String, Value)> {
    let mut seen = HashSet::new();
    fields
        .into_iter()
        .filter(|(name, _)| seen.insert(name.clone()))
        .collect()
}

/// Collects an event's or span's fields. For events, `message` starts as
/// `Some` and receives the `message` field; for spans it stays `None` and a
/// `message` field is kept as an ordinary field.
struct FieldCollector {
    message: Option<String>,
    fields: Vec<(String, Value)>,
}

impl FieldCollector {
    fn push(&mut self, field: &Field, value: Value) {
        let name = field.name();
        if name == "message"
            && let Some(message) = self.message.as_mut()
        {
            *message = match value {
                Value::String(text) => text,
                other => other.to_string(),
            };
            return;
        }
        // Fields that the `log` crate bridge adds describe the call site,
        // which Vigo's lines do not show.
        if name.starts_with("log.") {
            return;
        }
        self.fields.push((name.to_owned(), value));
    }
}

impl Visit for FieldCollector {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, Value::String(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        let value = serde_json::Number::from_f64(value)
            .map_or_else(|| Value::String(value.to_string()), Value::Number);
        self.push(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Value::from(value));
    }

    /// An error is written with its chain of sources, `outer: inner: root`.
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        self.push(field, Value::String(text));
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;
    use crate::subscriber;

    /// Collects everything written, for inspection.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    impl io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn capture(level: &str, format: LogFormat, options: LogOptions, f: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let subscriber = subscriber(level, format, options, buffer.clone()).unwrap();
        tracing::subscriber::with_default(subscriber, f);
        buffer.text()
    }

    fn text(f: impl FnOnce()) -> String {
        capture("trace", LogFormat::Text, LogOptions::default(), f)
    }

    fn json(f: impl FnOnce()) -> Vec<serde_json::Map<String, Value>> {
        capture("trace", LogFormat::Json, LogOptions::default(), f)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    #[derive(Debug)]
    struct Failure(&'static str);

    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    const CONTRACT_CAUSE: &str =
        "loading server config: resolving secret 'vigo/db/dsn': file not found";

    #[test]
    fn contract_line() {
        let err = Failure(CONTRACT_CAUSE);
        let out = text(|| tracing::error!(error = %err, "server failed"));
        assert_eq!(
            out,
            "ERROR server failed error=\"loading server config: resolving secret 'vigo/db/dsn': file not found\"\n"
        );
    }

    #[test]
    fn level_names_and_value_types() {
        let out = text(|| {
            tracing::warn!(count = 3, ratio = 0.5, ok = true, path = "vigo/db/dsn", "w");
            tracing::info!("i");
            tracing::debug!(name = ?"db1", "d");
            tracing::trace!("t");
        });
        assert_eq!(
            out,
            "WARN w count=3 ratio=0.5 ok=true path=vigo/db/dsn\nINFO i\nDEBUG d name=\"\\\"db1\\\"\"\nTRACE t\n"
        );
    }

    #[test]
    fn quoting_cases() {
        for (value, expected) in [
            ("plain", "plain"),
            ("", "\"\""),
            ("two words", "\"two words\""),
            ("a=b", "\"a=b\""),
            ("say \"hi\"", "\"say \\\"hi\\\"\""),
            ("back\\slash", "back\\slash"),
            ("back\\ slash", "\"back\\\\ slash\""),
            ("line\nbreak", "\"line\\nbreak\""),
            ("tab\there", "\"tab\\there\""),
            ("bell\u{7}", "\"bell\\u{7}\""),
            ("ünïcode", "ünïcode"),
        ] {
            assert_eq!(quote_value(value), expected, "{value:?}");
        }
    }

    #[test]
    fn message_stays_on_one_line() {
        let out = text(|| tracing::info!("first\nsecond"));
        assert_eq!(out, "INFO first\\nsecond\n");
    }

    #[test]
    fn event_without_message() {
        let out = text(|| tracing::info!(key = "v"));
        assert_eq!(out, "INFO key=v\n");
    }

    #[test]
    fn error_values_carry_their_sources() {
        let inner = io::Error::new(io::ErrorKind::NotFound, "file not found");
        let outer = io::Error::other(Wrapped(inner));
        let out = text(|| {
            tracing::error!(
                error = &outer as &(dyn std::error::Error + 'static),
                "failed"
            )
        });
        assert_eq!(out, "ERROR failed error=\"reading key: file not found\"\n");
    }

    #[derive(Debug)]
    struct Wrapped(io::Error);

    impl fmt::Display for Wrapped {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("reading key")
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn span_fields_follow_event_fields() {
        let out = text(|| {
            let outer = tracing::info_span!(
                "checkin",
                envoy = "db1.example.com",
                run = tracing::field::Empty
            );
            let _outer = outer.enter();
            outer.record("run", 7);
            let inner = tracing::info_span!("resource", resource = "file:/etc/motd");
            let _inner = inner.enter();
            tracing::info!(status = "changed", envoy = "shadowed", "applied");
        });
        assert_eq!(
            out,
            "INFO applied status=changed envoy=shadowed resource=file:/etc/motd run=7\n"
        );
    }

    #[test]
    fn json_lines() {
        let err = Failure(CONTRACT_CAUSE);
        let lines = json(|| {
            let span = tracing::info_span!("checkin", envoy = "db1");
            let _span = span.enter();
            tracing::error!(error = %err, count = 2, level = "odd", "server failed");
        });
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["level"], "ERROR");
        assert_eq!(line["message"], "server failed");
        assert_eq!(line["error"], CONTRACT_CAUSE);
        assert_eq!(line["count"], 2);
        assert_eq!(line["envoy"], "db1");
        assert_eq!(line["field.level"], "odd");
        assert!(!line.contains_key("timestamp"));
    }

    #[test]
    fn json_key_order() {
        let out = capture("info", LogFormat::Json, LogOptions::default(), || {
            tracing::info!(b = 1, a = "x y", "m");
        });
        assert_eq!(
            out,
            "{\"level\":\"INFO\",\"message\":\"m\",\"b\":1,\"a\":\"x y\"}\n"
        );
    }

    #[test]
    fn timestamps_when_asked() {
        let options = LogOptions { timestamps: true };
        let out = capture("info", LogFormat::Text, options, || tracing::info!("hello"));
        let (stamp, rest) = out.split_once(' ').unwrap();
        assert_eq!(rest, "INFO hello\n");
        assert!(stamp.ends_with('Z') && stamp.len() == 27, "{stamp}");
        assert_eq!(&stamp[10..11], "T");

        let out = capture("info", LogFormat::Json, options, || tracing::info!("hello"));
        let line: serde_json::Map<String, Value> = serde_json::from_str(&out).unwrap();
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn level_filter_hides_lower_levels() {
        let out = capture("info", LogFormat::Text, LogOptions::default(), || {
            tracing::debug!("hidden");
            tracing::trace!("hidden too");
            tracing::info!("shown");
            tracing::error!("shown too");
        });
        assert_eq!(out, "INFO shown\nERROR shown too\n");
        let out = capture("error", LogFormat::Json, LogOptions::default(), || {
            tracing::warn!("hidden");
        });
        assert_eq!(out, "");
    }
}
