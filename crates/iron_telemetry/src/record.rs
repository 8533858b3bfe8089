//! One log record as sinks receive it, and its JSON and text renderings.

use serde_json::{Map, Value};
use tracing::Level;

/// How a record is rendered into a line for line-oriented sinks (stderr, line callbacks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `2025-01-02T03:04:05.678Z  INFO target: message key=value`.
    #[default]
    Text,
    /// One JSON object per line: `{"ts_ms","level","target","message","fields"}`.
    Json,
}

/// A redacted log event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Severity.
    pub level: Level,
    /// Module path or explicit `target:` of the event.
    pub target: String,
    /// The formatted message, redacted.
    pub message: String,
    /// Span and event fields as one JSON object, redacted (event fields win over span fields).
    pub fields_json: String,
    /// Event time, ms since the Unix epoch.
    pub ts_ms: u64,
}

/// A record plus its structured fields, rendered lazily once per format for all sinks.
pub(crate) struct Rendered {
    pub record: LogRecord,
    pub fields: Map<String, Value>,
}

impl Rendered {
    pub(crate) fn new(
        level: Level,
        target: &str,
        message: String,
        fields: Map<String, Value>,
        ts_ms: u64,
    ) -> Self {
        let fields_json = serde_json::to_string(&fields).unwrap_or_else(|_| "{}".into());
        Rendered {
            record: LogRecord {
                level,
                target: target.to_string(),
                message,
                fields_json,
                ts_ms,
            },
            fields,
        }
    }

    pub(crate) fn line(&self, format: LogFormat) -> String {
        match format {
            LogFormat::Json => json_line(&self.record, &self.fields),
            LogFormat::Text => text_line(&self.record, &self.fields),
        }
    }
}

impl LogRecord {
    /// Renders the record as one line (without the trailing newline).
    pub fn to_line(&self, format: LogFormat) -> String {
        // Only our own layer builds records, but a hand-made one may carry anything: fall back to {}.
        let fields =
            serde_json::from_str::<Map<String, Value>>(&self.fields_json).unwrap_or_default();
        match format {
            LogFormat::Json => json_line(self, &fields),
            LogFormat::Text => text_line(self, &fields),
        }
    }
}

fn json_line(record: &LogRecord, fields: &Map<String, Value>) -> String {
    let mut obj = Map::new();
    obj.insert("ts_ms".into(), Value::from(record.ts_ms));
    obj.insert("level".into(), Value::from(record.level.as_str()));
    obj.insert("target".into(), Value::from(record.target.as_str()));
    obj.insert("message".into(), Value::from(record.message.as_str()));
    obj.insert("fields".into(), Value::Object(fields.clone()));
    serde_json::to_string(&Value::Object(obj)).unwrap_or_default()
}

fn text_line(record: &LogRecord, fields: &Map<String, Value>) -> String {
    let mut line = format!(
        "{} {:>5} {}: {}",
        rfc3339_ms(record.ts_ms),
        record.level.as_str(),
        record.target,
        one_line(&record.message)
    );
    for (key, value) in fields {
        line.push(' ');
        line.push_str(key);
        line.push('=');
        // JSON encoding quotes strings and escapes newlines, keeping one record per line.
        line.push_str(&value.to_string());
    }
    line
}

/// Escapes line breaks so a message cannot forge a second log line.
fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains(['\n', '\r']) {
        text.replace('\n', "\\n").replace('\r', "\\r").into()
    } else {
        text.into()
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a Unix time in ms (proleptic Gregorian, UTC).
pub(crate) fn rfc3339_ms(ts_ms: u64) -> String {
    let secs = ts_ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Days-to-civil conversion (era-based, valid for any u64 day count that fits the year type).
    let z = days as i128 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i128::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        ts_ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_render_as_utc() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        // 2024-02-29T12:34:56.789Z (leap day).
        assert_eq!(rfc3339_ms(1_709_210_096_789), "2024-02-29T12:34:56.789Z");
        assert!(!rfc3339_ms(u64::MAX).is_empty());
    }

    #[test]
    fn text_line_keeps_one_record_per_line() {
        // Inserted in name order: serde_json's map keeps insertion order when another crate of the
        // build enables `preserve_order`, and sorts otherwise.
        let mut fields = Map::new();
        fields.insert("n".into(), Value::from(3));
        fields.insert("path".into(), Value::from("/v1\nx"));
        let r = Rendered::new(Level::WARN, "t", "a\nb".into(), fields, 0);
        assert_eq!(
            r.line(LogFormat::Text),
            "1970-01-01T00:00:00.000Z  WARN t: a\\nb n=3 path=\"/v1\\nx\""
        );
    }

    #[test]
    fn json_line_carries_every_part() {
        let mut fields = Map::new();
        fields.insert("n".into(), Value::from(3));
        let r = Rendered::new(Level::INFO, "t", "m \"q\"".into(), fields, 7);
        let parsed: Value = serde_json::from_str(&r.line(LogFormat::Json)).expect("valid JSON");
        assert_eq!(
            parsed,
            serde_json::json!({"ts_ms": 7, "level": "INFO", "target": "t", "message": "m \"q\"", "fields": {"n": 3}})
        );
        assert_eq!(r.record.to_line(LogFormat::Json), r.line(LogFormat::Json));
    }
}
