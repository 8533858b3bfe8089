//! Output safety for streamed answers at the SSE-event level: knows where text lives in OpenAI
//! chat/completions chunks, Responses events and Anthropic events, redacts it incrementally per
//! stream, flushes held text as synthesized events before the event that ends a stream, and fails
//! closed when anything cannot be processed.

use crate::audit::{Detection, Tally};
use crate::guard::TextGuard;
use crate::inspect::ApiShape;
use crate::kind::Direction;
use crate::stream::StreamRedactor;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One SSE event to emit: optional `event:` name and the `data:` payload.
pub type SseEvent = (Option<String>, String);

/// What to send in place of one upstream event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterOutcome {
    /// These events, in order (usually just the input, rewritten only if its text changed).
    Emit(Vec<SseEvent>),
    /// Stop the stream; the message names types and counts, never values.
    Block {
        /// Why the stream was stopped.
        message: String,
    },
}

/// Per-stream key: choice index (chat), (output_index, content_index) (Responses), block index (Anthropic).
type StreamKey = (u64, u64);

/// Redacts the text of one streamed response, event by event.
pub struct SseOutputFilter {
    api: ApiShape,
    guard: Arc<TextGuard>,
    streams: BTreeMap<StreamKey, StreamRedactor>,
    /// Responses API: `item_id` last seen for each stream, for synthesized deltas.
    item_ids: BTreeMap<StreamKey, Value>,
    /// OpenAI chat: id/object/created/model of the latest chunk, for synthesized chunks.
    chunk_meta: Map<String, Value>,
    tally: Tally,
    blocked: Option<String>,
}

impl SseOutputFilter {
    /// A filter for a stream of `api` under the response-direction `guard`.
    pub fn new(api: ApiShape, guard: Arc<TextGuard>) -> SseOutputFilter {
        SseOutputFilter {
            api,
            guard,
            streams: BTreeMap::new(),
            item_ids: BTreeMap::new(),
            chunk_meta: Map::new(),
            tally: Tally::default(),
            blocked: None,
        }
    }

    /// Processes one upstream event and says what to send instead.
    pub fn on_event(&mut self, event: Option<&str>, data: &str) -> FilterOutcome {
        if let Some(message) = &self.blocked {
            return FilterOutcome::Block {
                message: message.clone(),
            };
        }
        let result = match self.api {
            ApiShape::OpenAiChat | ApiShape::OpenAiCompletions => self.openai_chunk(event, data),
            ApiShape::OpenAiResponses => self.responses_event(event, data),
            ApiShape::AnthropicMessages => self.anthropic_event(event, data),
            ApiShape::OpenAiEmbeddings | ApiShape::Other => Ok(vec![pass(event, data)]),
        };
        let events = match result {
            Ok(events) => events,
            Err(why) => {
                let message = format!(
                    "Response stopped by Iron Cage: the PII filter could not process a streamed event ({why}), so it failed closed rather than risk leaking unredacted text."
                );
                self.blocked = Some(message.clone());
                return FilterOutcome::Block { message };
            }
        };
        let mut all = self.tally.clone();
        self.streams.values().for_each(|s| all.merge(&s.tally()));
        if let Some(message) = all.block_message(Direction::Response) {
            self.blocked = Some(message.clone());
            return FilterOutcome::Block { message };
        }
        FilterOutcome::Emit(events)
    }

    /// Everything detected so far, for the audit summary.
    pub fn detections(&self) -> Vec<Detection> {
        let mut all = self.tally.clone();
        self.streams.values().for_each(|s| all.merge(&s.tally()));
        all.detections(Direction::Response)
    }

    fn push(&mut self, key: StreamKey, text: &str) -> String {
        let guard = &self.guard;
        self.streams
            .entry(key)
            .or_insert_with(|| StreamRedactor::new(guard.clone()))
            .push(text)
    }

    fn flush(&mut self, key: StreamKey) -> String {
        match self.streams.remove(&key) {
            Some(mut s) => {
                let out = s.finish();
                self.tally.merge(&s.tally());
                out
            }
            None => String::new(),
        }
    }

    /// Redacts a complete text (a `.done` or final event) whose values were already counted
    /// in the deltas; only a block-action value there adds to the tally.
    fn redact_whole(&mut self, v: Option<&mut Value>) {
        if let Some(Value::String(s)) = v {
            let mut scratch = Tally::default();
            if let Some(new) = self.guard.process(s, &mut scratch) {
                *s = new;
            }
            if scratch.is_blocked() {
                self.tally.merge(&scratch);
            }
        }
    }

    fn openai_chunk(&mut self, event: Option<&str>, data: &str) -> Result<Vec<SseEvent>, String> {
        let text_field = if self.api == ApiShape::OpenAiChat {
            "content"
        } else {
            "text"
        };
        if data.trim() == "[DONE]" {
            let mut out = Vec::new();
            for key in self.streams.keys().copied().collect::<Vec<_>>() {
                let flushed = self.flush(key);
                if !flushed.is_empty() {
                    out.push((None, self.synth_chunk(key.0, text_field, flushed)));
                }
            }
            out.push(pass(event, data));
            return Ok(out);
        }
        let mut v: Value = parse(data)?;
        if v.get("error").is_some() {
            return Ok(vec![pass(event, data)]);
        }
        for k in ["id", "object", "created", "model"] {
            if let Some(x) = v.get(k) {
                self.chunk_meta.insert(k.to_string(), x.clone());
            }
        }
        let mut before = Vec::new();
        let mut changed = false;
        if let Some(Value::Array(choices)) = v.get_mut("choices") {
            for choice in choices.iter_mut() {
                let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
                let finishing = choice.get("finish_reason").is_some_and(|f| !f.is_null());
                let holder = if text_field == "content" {
                    choice.get_mut("delta")
                } else {
                    Some(choice)
                };
                let Some(holder) = holder else { continue };
                let mut released = String::new();
                let had_text = if let Some(Value::String(s)) = holder.get(text_field) {
                    released = self.push((index, 0), s);
                    if released != *s {
                        holder[text_field] = Value::String(released.clone());
                        changed = true;
                    }
                    true
                } else {
                    false
                };
                if finishing {
                    // Held text must reach the client before the chunk that ends the choice.
                    let flushed = self.flush((index, 0));
                    if !flushed.is_empty() {
                        let text = if had_text {
                            format!("{released}{flushed}")
                        } else {
                            flushed
                        };
                        if had_text {
                            holder[text_field] = Value::String(String::new());
                            changed = true;
                        }
                        before.push((None, self.synth_chunk(index, text_field, text)));
                    }
                }
            }
        }
        let this = if changed {
            (event.map(str::to_string), v.to_string())
        } else {
            pass(event, data)
        };
        before.push(this);
        Ok(before)
    }

    fn synth_chunk(&self, index: u64, text_field: &str, text: String) -> String {
        let mut chunk = self.chunk_meta.clone();
        let choice = if text_field == "content" {
            json!({"index": index, "delta": {"content": text}, "finish_reason": null})
        } else {
            json!({"index": index, "text": text, "finish_reason": null})
        };
        chunk.insert("choices".to_string(), json!([choice]));
        Value::Object(chunk).to_string()
    }

    fn responses_event(
        &mut self,
        event: Option<&str>,
        data: &str,
    ) -> Result<Vec<SseEvent>, String> {
        let mut v: Value = parse(data)?;
        let kind = event
            .map(str::to_string)
            .or_else(|| v.get("type").and_then(Value::as_str).map(str::to_string));
        let key = (
            v.get("output_index").and_then(Value::as_u64).unwrap_or(0),
            v.get("content_index").and_then(Value::as_u64).unwrap_or(0),
        );
        match kind.as_deref() {
            Some("response.output_text.delta") => {
                if let Some(id) = v.get("item_id") {
                    self.item_ids.insert(key, id.clone());
                }
                let Some(Value::String(s)) = v.get("delta") else {
                    return Ok(vec![pass(event, data)]);
                };
                let s = s.clone();
                let out = self.push(key, &s);
                if out == s {
                    return Ok(vec![pass(event, data)]);
                }
                v["delta"] = Value::String(out);
                Ok(vec![(event.map(str::to_string), v.to_string())])
            }
            Some("response.output_text.done") => {
                let mut out = Vec::new();
                let flushed = self.flush(key);
                if !flushed.is_empty() {
                    out.push(self.synth_responses_delta(key, &v, flushed));
                }
                self.redact_whole(v.get_mut("text"));
                out.push((event.map(str::to_string), reserialize_if_changed(data, &v)));
                Ok(out)
            }
            Some("response.content_part.done") => {
                self.redact_whole(v.get_mut("part").and_then(|p| p.get_mut("text")));
                Ok(vec![(
                    event.map(str::to_string),
                    reserialize_if_changed(data, &v),
                )])
            }
            Some("response.output_item.done") => {
                self.redact_output_item(v.get_mut("item"));
                Ok(vec![(
                    event.map(str::to_string),
                    reserialize_if_changed(data, &v),
                )])
            }
            Some("response.completed" | "response.incomplete" | "response.failed") => {
                let mut out = Vec::new();
                for k in self.streams.keys().copied().collect::<Vec<_>>() {
                    let flushed = self.flush(k);
                    if !flushed.is_empty() {
                        out.push(self.synth_responses_delta(k, &v, flushed));
                    }
                }
                if let Some(Value::Array(items)) =
                    v.get_mut("response").and_then(|r| r.get_mut("output"))
                {
                    for item in items.iter_mut() {
                        self.redact_output_item(Some(item));
                    }
                }
                out.push((event.map(str::to_string), reserialize_if_changed(data, &v)));
                Ok(out)
            }
            _ => Ok(vec![pass(event, data)]),
        }
    }

    fn redact_output_item(&mut self, item: Option<&mut Value>) {
        if let Some(Value::Array(parts)) = item.and_then(|i| i.get_mut("content")) {
            for part in parts.iter_mut() {
                self.redact_whole(part.get_mut("text"));
            }
        }
    }

    fn synth_responses_delta(&self, key: StreamKey, current: &Value, text: String) -> SseEvent {
        let mut delta = json!({
            "type": "response.output_text.delta",
            "output_index": key.0,
            "content_index": key.1,
            "delta": text,
        });
        if let Some(id) = self.item_ids.get(&key).or_else(|| current.get("item_id")) {
            delta["item_id"] = id.clone();
        }
        if let Some(seq) = current.get("sequence_number") {
            delta["sequence_number"] = seq.clone();
        }
        (
            Some("response.output_text.delta".to_string()),
            delta.to_string(),
        )
    }

    fn anthropic_event(
        &mut self,
        event: Option<&str>,
        data: &str,
    ) -> Result<Vec<SseEvent>, String> {
        let mut v: Value = parse(data)?;
        let kind = event
            .map(str::to_string)
            .or_else(|| v.get("type").and_then(Value::as_str).map(str::to_string));
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        match kind.as_deref() {
            Some("content_block_delta") => {
                let is_text = v
                    .get("delta")
                    .and_then(|d| d.get("type"))
                    .and_then(Value::as_str)
                    == Some("text_delta");
                let Some(Value::String(s)) = v.get("delta").and_then(|d| d.get("text")) else {
                    return Ok(vec![pass(event, data)]);
                };
                if !is_text {
                    return Ok(vec![pass(event, data)]);
                }
                let s = s.clone();
                let out = self.push((index, 0), &s);
                if out == s {
                    return Ok(vec![pass(event, data)]);
                }
                v["delta"]["text"] = Value::String(out);
                Ok(vec![(event.map(str::to_string), v.to_string())])
            }
            Some("content_block_stop") => {
                let mut out = Vec::new();
                let flushed = self.flush((index, 0));
                if !flushed.is_empty() {
                    out.push(synth_anthropic_delta(index, flushed));
                }
                out.push(pass(event, data));
                Ok(out)
            }
            Some("message_stop") => {
                let mut out = Vec::new();
                for k in self.streams.keys().copied().collect::<Vec<_>>() {
                    let flushed = self.flush(k);
                    if !flushed.is_empty() {
                        out.push(synth_anthropic_delta(k.0, flushed));
                    }
                }
                out.push(pass(event, data));
                Ok(out)
            }
            _ => Ok(vec![pass(event, data)]),
        }
    }
}

fn synth_anthropic_delta(index: u64, text: String) -> SseEvent {
    let data = json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}});
    (Some("content_block_delta".to_string()), data.to_string())
}

fn pass(event: Option<&str>, data: &str) -> SseEvent {
    (event.map(str::to_string), data.to_string())
}

fn parse(data: &str) -> Result<Value, String> {
    serde_json::from_str(data).map_err(|e| format!("invalid JSON in event data: {e}"))
}

/// The original bytes when re-parsing shows nothing changed, else the re-serialized value.
fn reserialize_if_changed(original: &str, v: &Value) -> String {
    match serde_json::from_str::<Value>(original) {
        Ok(orig) if orig == *v => original.to_string(),
        _ => v.to_string(),
    }
}
