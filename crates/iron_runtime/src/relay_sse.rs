//! The side parser of a relayed SSE stream: events are read as they pass (usage, the injected
//! usage chunk, the response PII filter) without holding back more than one partial event; text
//! events that arrived together are filtered as one run (see `relay_runs`).

use crate::client_sink::ClientSink;
use crate::exchange::Exchange;
use crate::relay_runs::{flush_or_stop, offset_in, TextRun, MAX_RUN};
use crate::sse::{parse_event, write_event, SseSplitter};
use bytes::{Bytes, BytesMut};
use iron_cost::StreamUsage;
use iron_safety::{ApiShape, DeltaTemplate, FilterOutcome, SseOutputFilter, TextDelta};

/// Largest SSE event read; a larger one ends the stream as too large.
pub(crate) const MAX_SSE_EVENT: usize = 8 * 1024 * 1024;

/// Reads a relayed stream's events as they pass: usage for metering, the usage chunk to strip,
/// and the PII filter's verdict on each.
pub(crate) struct SideParser {
    shape: ApiShape,
    pub(crate) splitter: SseSplitter,
    /// Whether the provider sent an error event (the call settles as failed).
    pub(crate) saw_error_event: bool,
    pub(crate) usage: Option<StreamUsage>,
    pub(crate) filter: Option<SseOutputFilter>,
    /// The shape of the last plain text event, to read the next ones without a JSON parse.
    pub(crate) template: DeltaTemplate,
}

impl SideParser {
    /// A parser for a stream of `shape`, metering with `usage` and filtering with `filter`.
    pub(crate) fn new(
        shape: ApiShape,
        usage: Option<StreamUsage>,
        filter: Option<SseOutputFilter>,
    ) -> SideParser {
        SideParser {
            shape,
            splitter: SseSplitter::new(MAX_SSE_EVENT),
            saw_error_event: false,
            usage,
            filter,
            template: DeltaTemplate::default(),
        }
    }
}

/// Why the side parser stopped a stream.
pub(crate) enum SseStop {
    TooLarge,
    Blocked(String),
}

/// Output of a burst handed to the client at a time (see `process_sse`).
pub(crate) const SEND_EVERY: usize = 16 * 1024;

/// Adds `chunk` and processes the complete events buffered, until `limit` bytes of output are
/// ready. Returns those bytes and whether events may be left (on a stop, the bytes that may
/// still be sent before it).
pub(crate) fn process_sse(
    p: &mut SideParser,
    ex: &Exchange,
    chunk: &[u8],
    limit: usize,
) -> Result<(Bytes, bool), (Bytes, SseStop)> {
    p.splitter.push(chunk);
    // Sized for what this call can pass on unchanged: growing from empty copied a 16 KiB piece
    // several times over.
    let mut out = BytesMut::with_capacity(p.splitter.buffered().min(limit) + 1024);
    // Text events of one stream that arrived together and match the template: filtered as one.
    let mut run = TextRun::default();
    loop {
        if out.len() + run.bytes >= limit {
            flush_or_stop(p, &mut out, &mut run)?;
            return Ok((out.freeze(), true));
        }
        let raw = match p.splitter.next_event() {
            Ok(Some(raw)) => raw,
            Ok(None) => break,
            Err(_) => {
                flush_or_stop(p, &mut out, &mut run)?;
                return Err((out.freeze(), SseStop::TooLarge));
            }
        };
        let ev = parse_event(&raw);
        if ev.event == Some("error") || ev.data.starts_with("{\"error\"") {
            p.saw_error_event = true;
        }
        if p.filter.is_some() && ev.unreadable {
            flush_or_stop(p, &mut out, &mut run)?;
            return Err((out.freeze(), SseStop::Blocked("The provider's stream held a line Iron Cage could not read (not UTF-8, a bare carriage return, or a byte order mark opening a line), so its PII policy could not check it; the stream was stopped.".into())));
        }
        if !ev.has_data {
            // A comment, `retry:` or an event name alone: clients dispatch nothing for it.
            flush_or_stop(p, &mut out, &mut run)?;
            out.extend_from_slice(&raw);
            continue;
        }
        if p.filter.is_some() {
            if let Some(data_at) = offset_in(&raw, &ev.data) {
                if let Some(d) = p.template.read(ev.event, &ev.data) {
                    if run.items.len() >= MAX_RUN || run.key.is_some_and(|k| k != d.key()) {
                        flush_or_stop(p, &mut out, &mut run)?;
                    }
                    if let Some(u) = p.usage.as_mut() {
                        u.observe_text(d.text());
                    }
                    if run.items.is_empty() {
                        // Every event of a run has the template's event name.
                        run.event = ev.event.map(str::to_string);
                    }
                    run.key = Some(d.key());
                    run.bytes += raw.len();
                    run.items
                        .push((raw.clone(), data_at..data_at + ev.data.len()));
                    continue;
                }
            }
        }
        flush_or_stop(p, &mut out, &mut run)?;
        // Most events are one piece of text: read those without a JSON tree.
        let plain = if p.usage.is_some() || p.filter.is_some() {
            p.template.read(ev.event, &ev.data).or_else(|| {
                let d = TextDelta::read(p.shape, ev.event, &ev.data);
                if let Some(d) = &d {
                    p.template.learn(ev.event, &ev.data, d);
                }
                d
            })
        } else {
            None
        };
        if let Some(d) = plain {
            if let Some(u) = p.usage.as_mut() {
                u.observe_text(d.text());
            }
            let outcome = match p.filter.as_mut() {
                Some(f) => f.on_text_delta(&d, ev.event, &ev.data),
                None => FilterOutcome::Unchanged,
            };
            if let Err(message) = emit(&mut out, &raw, outcome) {
                return Err((out.freeze(), SseStop::Blocked(message)));
            }
            continue;
        }
        // One JSON parse per event serves usage, the usage-chunk check and the PII filter.
        let parsed = if p.usage.is_some() || p.filter.is_some() || ex.strip_usage_chunk {
            parse_json_object(&ev.data)
        } else {
            None
        };
        if let (Some(u), Some(v)) = (p.usage.as_mut(), parsed.as_ref()) {
            u.observe_value(ev.event, v);
        }
        if ex.strip_usage_chunk && parsed.as_ref().is_some_and(is_usage_only_chunk) {
            continue;
        }
        let Some(filter) = p.filter.as_mut() else {
            out.extend_from_slice(&raw);
            continue;
        };
        let outcome = match filter.on_event_parsed(ev.event, &ev.data, parsed) {
            FilterOutcome::Emit(events)
                if events.len() == 1
                    && events[0].1 == ev.data
                    && events[0].0.as_deref() == ev.event =>
            {
                FilterOutcome::Unchanged
            }
            other => other,
        };
        if let Err(message) = emit(&mut out, &raw, outcome) {
            return Err((out.freeze(), SseStop::Blocked(message)));
        }
    }
    flush_or_stop(p, &mut out, &mut run)?;
    Ok((out.freeze(), false))
}

/// Appends what the filter said to send for one upstream event (`raw`); a block is an error.
pub(crate) fn emit(out: &mut BytesMut, raw: &[u8], outcome: FilterOutcome) -> Result<(), String> {
    match outcome {
        FilterOutcome::Unchanged => out.extend_from_slice(raw),
        FilterOutcome::Emit(events) => {
            for (name, data) in &events {
                write_event(out, name.as_deref(), data);
            }
        }
        FilterOutcome::Block { message } => return Err(message),
    }
    Ok(())
}

/// End of a filtered stream: an unterminated last event goes through the filter like any other, then
/// the filter releases what it still holds. Returns a block message if the filter stops the stream.
pub(crate) async fn flush_filtered_tail(
    p: &mut SideParser,
    ex: &Exchange,
    rest: Bytes,
    client: &mut ClientSink,
) -> Option<String> {
    if !rest.is_empty() {
        let mut tail = BytesMut::from(&rest[..]);
        tail.extend_from_slice(b"\n\n");
        match process_sse(p, ex, &tail, usize::MAX) {
            Ok((out, _)) => {
                let _ = client.send(Ok(out)).await;
            }
            Err((out, SseStop::Blocked(message))) => {
                let _ = client.send(Ok(out)).await;
                return Some(message);
            }
            Err((out, SseStop::TooLarge)) => {
                let _ = client.send(Ok(out)).await;
            }
        }
    }
    let filter = p.filter.as_mut()?;
    match filter.finish() {
        FilterOutcome::Emit(events) => {
            let mut out = BytesMut::new();
            for (name, data) in &events {
                write_event(&mut out, name.as_deref(), data);
            }
            if !out.is_empty() {
                let _ = client.send(Ok(out.freeze())).await;
            }
            None
        }
        FilterOutcome::Block { message } => Some(message),
        FilterOutcome::Unchanged => None,
    }
}

/// The event's data as a JSON object, if it is one (`[DONE]` and other non-JSON data are not).
fn parse_json_object(data: &str) -> Option<serde_json::Value> {
    let data = data.trim();
    if !data.starts_with('{') {
        return None;
    }
    serde_json::from_str::<serde_json::Value>(data).ok()
}

/// The extra chunk OpenAI sends when asked for usage: empty `choices` and a `usage` object.
fn is_usage_only_chunk(v: &serde_json::Value) -> bool {
    v.get("usage").is_some_and(|u| u.is_object())
        && v.get("choices")
            .and_then(|c| c.as_array())
            .is_some_and(|c| c.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_chunk_detection() {
        let is = |data: &str| {
            parse_json_object(data)
                .as_ref()
                .is_some_and(is_usage_only_chunk)
        };
        assert!(is(r#"{"id":"x","choices":[],"usage":{"prompt_tokens":1}}"#));
        assert!(!is(r#"{"id":"x","choices":[{"delta":{}}],"usage":null}"#));
        assert!(!is(r#"{"choices":[{"delta":{"content":"usage"}}]}"#));
        assert!(!is("[DONE]"));
    }
}
