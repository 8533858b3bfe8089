//! The tracing layer: turns events (and their spans' fields) into redacted records for the sinks.

use std::cell::Cell;
use std::error::Error;
use std::fmt::Debug;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::record::Rendered;
use crate::{sinks, Redactor};

/// Longest value kept per field or message, in bytes, after redaction (longer ones are cut).
const MAX_VALUE_BYTES: usize = 16 * 1024;
/// Error sources followed when rendering an error chain.
const MAX_ERROR_CHAIN: usize = 16;

thread_local! {
    /// Set while this thread is inside a sink, so a sink that logs cannot recurse forever.
    static IN_SINK: Cell<bool> = const { Cell::new(false) };
}

/// The layer the global subscriber is built from; add it to your own subscriber if you install one.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactingLayer;

/// Redacted fields recorded on a span, kept in its extensions.
struct SpanFields(Map<String, Value>);

impl<S> Layer<S> for RedactingLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, _metadata: &'static Metadata<'static>) -> Interest {
        // Sinks and levels change at run time, so every callsite is asked each time via `enabled`.
        Interest::sometimes()
    }

    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        *metadata.level() <= sinks::max_level()
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(sinks::max_level())
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut visitor = FieldVisitor::default();
        attrs.record(&mut visitor);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(visitor.fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let mut visitor = FieldVisitor::default();
        values.record(&mut visitor);
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            match ext.get_mut::<SpanFields>() {
                Some(existing) => existing.0.extend(visitor.fields),
                None => ext.insert(SpanFields(visitor.fields)),
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if IN_SINK.with(Cell::get) {
            return;
        }
        let mut fields = Map::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(span_fields) = span.extensions().get::<SpanFields>() {
                    fields.extend(span_fields.0.clone());
                }
            }
        }
        let mut visitor = FieldVisitor::default();
        event.record(&mut visitor);
        fields.extend(visitor.fields);
        let meta = event.metadata();
        let rendered = Rendered::new(
            *meta.level(),
            meta.target(),
            visitor.message.unwrap_or_default(),
            fields,
            crate::now_ms(),
        );
        IN_SINK.with(|flag| flag.set(true));
        sinks::dispatch(&rendered);
        IN_SINK.with(|flag| flag.set(false));
    }
}

/// Collects an event's or span's fields, redacting every textual value.
#[derive(Default)]
struct FieldVisitor {
    message: Option<String>,
    fields: Map<String, Value>,
}

impl FieldVisitor {
    fn put_text(&mut self, field: &Field, text: &str) {
        let clean = clip(Redactor::global().redact(text).into_owned());
        if field.name() == "message" {
            self.message = Some(clean);
        } else {
            self.fields
                .insert(field.name().to_string(), Value::String(clean));
        }
    }

    fn put(&mut self, field: &Field, value: Value) {
        self.fields.insert(field.name().to_string(), value);
    }
}

impl Visit for FieldVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put_text(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.put_text(field, &format!("{value:?}"));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn Error + 'static)) {
        let mut chain = value.to_string();
        let mut source = value.source();
        for _ in 0..MAX_ERROR_CHAIN {
            let Some(err) = source else { break };
            chain.push_str(": ");
            chain.push_str(&err.to_string());
            source = err.source();
        }
        self.put_text(field, &chain);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // NaN and infinities have no JSON number form.
        let v = serde_json::Number::from_f64(value)
            .map_or_else(|| Value::String(value.to_string()), Value::Number);
        self.put(field, v);
    }
}

/// Cuts `text` to `MAX_VALUE_BYTES` on a char boundary (after redaction, so no secret is half-kept).
fn clip(mut text: String) -> String {
    if text.len() > MAX_VALUE_BYTES {
        let mut end = MAX_VALUE_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("…[truncated]");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_cuts_long_values_on_a_char_boundary() {
        let long = "é".repeat(MAX_VALUE_BYTES);
        let cut = clip(long);
        assert!(cut.ends_with("…[truncated]"));
        assert!(cut.len() <= MAX_VALUE_BYTES + "…[truncated]".len());
        assert_eq!(clip("short".into()), "short");
    }
}
