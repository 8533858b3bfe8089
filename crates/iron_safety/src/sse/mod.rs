//! Output safety for streamed answers at the SSE-event level: knows where text and tool-call
//! arguments live in OpenAI chat/completions chunks, Responses events and Anthropic events, redacts
//! them incrementally per stream, flushes held text as synthesized events before the event that
//! ends a stream, and fails closed when anything cannot be processed.

use crate::audit::{Detection, Tally};
use crate::guard::TextGuard;
use crate::inspect::ApiShape;
use crate::json_text::{self, EscapeCodec};
use crate::kind::Direction;
use crate::stream::StreamRedactor;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

mod anthropic;
use anthropic::synth_anthropic_delta;
mod responses;
mod text_fast;
pub use text_fast::splice_text;
pub use text_fast::RunOutcome;

/// One SSE event to emit: optional `event:` name and the `data:` payload.
pub type SseEvent = (Option<String>, String);

/// What to send in place of one upstream event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterOutcome {
    /// These events, in order (usually just the input, rewritten only if its text changed).
    Emit(Vec<SseEvent>),
    /// The event may go out exactly as it came (only from [`SseOutputFilter::on_text_delta`]).
    Unchanged,
    /// Stop the stream; the message names types and counts, never values.
    Block {
        /// Why the stream was stopped.
        message: String,
    },
}

/// Per-stream key: choice index (chat), (output_index, content_index) (Responses), block index (Anthropic).
/// Tool-call argument streams use a second part of [`TOOL_SLOT`] and up.
type StreamKey = (u64, u64);

/// Second key part of tool-call argument streams (chat adds the tool call's index).
const TOOL_SLOT: u64 = 1 << 32;
/// Streams beside the main text, by second key part (plus a content or summary index where the
/// API has one): refusals, reasoning summaries, reasoning text, audio transcripts, custom tool
/// input (plain text), and the legacy `function_call` arguments of chat (JSON, so a tool slot).
const REFUSAL_SLOT: u64 = 1 << 20;
const SUMMARY_SLOT: u64 = 2 << 20;
const REASONING_SLOT: u64 = 3 << 20;
const AUDIO_SLOT: u64 = 4 << 20;
const CUSTOM_INPUT_SLOT: u64 = 5 << 20;
const CODE_SLOT: u64 = 6 << 20;
const LEGACY_FUNCTION_SLOT: u64 = TOOL_SLOT + (1 << 31);
/// Responses MCP call arguments (JSON text, so a tool slot).
const MCP_SLOT: u64 = TOOL_SLOT + (1 << 30);
/// Indexes read from events are capped below the slots (a hostile `1e300` cannot overflow a key).
const INDEX_CAP: u64 = REFUSAL_SLOT - 1;

fn is_tool_key(key: StreamKey) -> bool {
    key.1 >= TOOL_SLOT
}

/// Redacts the text of one streamed response, event by event.
pub struct SseOutputFilter {
    api: ApiShape,
    guard: Arc<TextGuard>,
    streams: BTreeMap<StreamKey, StreamRedactor>,
    /// Escape state of the tool-call argument streams (JSON text).
    codecs: BTreeMap<StreamKey, EscapeCodec>,
    /// Responses API: `item_id` last seen for each stream, for synthesized deltas.
    item_ids: BTreeMap<StreamKey, Value>,
    /// OpenAI chat: id/object/created/model of the latest chunk, for synthesized chunks.
    chunk_meta: Map<String, Value>,
    tally: Tally,
    blocked: Option<String>,
    /// Choices (chat) and content blocks (Anthropic) that have finished, and Responses streams
    /// whose `.done` has come: text for them afterwards is held state the redactor no longer
    /// has (a value split across the end would pass in two halves), so the stream stops.
    closed_indexes: std::collections::BTreeSet<u64>,
    closed_keys: std::collections::BTreeSet<StreamKey>,
    /// Set when text arrived for a closed stream.
    reopened: bool,
}

impl SseOutputFilter {
    /// A filter for a stream of `api` under the response-direction `guard`.
    pub fn new(api: ApiShape, guard: Arc<TextGuard>) -> SseOutputFilter {
        SseOutputFilter {
            api,
            guard,
            streams: BTreeMap::new(),
            codecs: BTreeMap::new(),
            item_ids: BTreeMap::new(),
            chunk_meta: Map::new(),
            tally: Tally::default(),
            blocked: None,
            closed_indexes: Default::default(),
            closed_keys: Default::default(),
            reopened: false,
        }
    }

    /// Processes one upstream event and says what to send instead.
    pub fn on_event(&mut self, event: Option<&str>, data: &str) -> FilterOutcome {
        self.on_event_parsed(event, data, None)
    }

    /// Like [`on_event`](Self::on_event), with `data` already parsed as JSON by the caller (so that
    /// one parse per event serves every reader of the stream). `parsed` must be `data`'s value.
    pub fn on_event_parsed(
        &mut self,
        event: Option<&str>,
        data: &str,
        parsed: Option<Value>,
    ) -> FilterOutcome {
        if let Some(message) = &self.blocked {
            return FilterOutcome::Block {
                message: message.clone(),
            };
        }
        let result = match self.api {
            ApiShape::OpenAiChat | ApiShape::OpenAiCompletions => {
                self.openai_chunk(event, data, parsed)
            }
            ApiShape::OpenAiResponses => self.responses_event(event, data, parsed),
            ApiShape::AnthropicMessages => self.anthropic_event(event, data, parsed),
            ApiShape::OpenAiEmbeddings | ApiShape::Other => Ok(vec![pass(event, data)]),
        };
        let events = match result {
            Ok(_) if self.reopened => {
                return self.fail_closed("text for a choice or block that had already finished")
            }
            Ok(events) => events,
            Err(why) => return self.fail_closed(&why),
        };
        self.block_if_called_for()
            .unwrap_or(FilterOutcome::Emit(events))
    }

    /// A stream that cannot be processed stops (fail closed).
    fn fail_closed(&mut self, why: &str) -> FilterOutcome {
        let message = format!(
            "Response stopped by Iron Cage: the PII filter could not process a streamed event ({why}), so it failed closed rather than risk leaking unredacted text."
        );
        self.blocked = Some(message.clone());
        FilterOutcome::Block { message }
    }

    /// A block once a block-action value has been seen (the merged tally is built only then).
    fn block_if_called_for(&mut self) -> Option<FilterOutcome> {
        if self.tally.is_blocked() || self.streams.values().any(StreamRedactor::is_blocked) {
            let mut all = self.tally.clone();
            self.streams.values().for_each(|s| all.merge(&s.tally()));
            if let Some(message) = all.block_message(Direction::Response) {
                self.blocked = Some(message.clone());
                return Some(FilterOutcome::Block { message });
            }
        }
        None
    }

    /// Everything detected so far, for the audit summary.
    pub fn detections(&self) -> Vec<Detection> {
        let mut all = self.tally.clone();
        self.streams.values().for_each(|s| all.merge(&s.tally()));
        all.detections(Direction::Response)
    }

    /// True when `key` belongs to a choice, block or stream that has finished.
    fn is_closed(&self, key: StreamKey) -> bool {
        self.closed_indexes.contains(&key.0) || self.closed_keys.contains(&key)
    }

    fn push(&mut self, key: StreamKey, text: &str) -> String {
        if !text.is_empty() && self.is_closed(key) {
            self.reopened = true;
        }
        let guard = &self.guard;
        self.streams
            .entry(key)
            .or_insert_with(|| StreamRedactor::new(guard.clone()))
            .push(text)
    }

    fn push_json(&mut self, key: StreamKey, fragment: &str) -> String {
        if !fragment.is_empty() && self.is_closed(key) {
            self.reopened = true;
        }
        let encoded = self.codecs.entry(key).or_default().encode(fragment);
        let guard = &self.guard;
        let out = self
            .streams
            .entry(key)
            .or_insert_with(|| StreamRedactor::new_json(guard.clone()))
            .push(&encoded);
        json_text::decode(&out)
    }

    fn flush(&mut self, key: StreamKey) -> String {
        let tail = self
            .codecs
            .remove(&key)
            .map(|mut c| c.finish())
            .unwrap_or_default();
        match self.streams.remove(&key) {
            Some(mut s) => {
                let mut out = s.push(&tail);
                out.push_str(&s.finish());
                self.tally.merge(&s.tally());
                if is_tool_key(key) {
                    json_text::decode(&out)
                } else {
                    out
                }
            }
            None => tail,
        }
    }

    /// Flushes every stream still open, for an upstream that ended without its closing events:
    /// the events carrying the held text (empty when nothing is held), or a block.
    pub fn finish(&mut self) -> FilterOutcome {
        if let Some(message) = &self.blocked {
            return FilterOutcome::Block {
                message: message.clone(),
            };
        }
        let mut out = Vec::new();
        for key in self.streams.keys().copied().collect::<Vec<_>>() {
            let flushed = self.flush(key);
            if flushed.is_empty() {
                continue;
            }
            out.push(match self.api {
                ApiShape::OpenAiChat | ApiShape::OpenAiCompletions => {
                    let field = if self.api == ApiShape::OpenAiChat {
                        "content"
                    } else {
                        "text"
                    };
                    (None, self.synth_chunk(key, field, flushed))
                }
                ApiShape::OpenAiResponses => self.synth_responses_delta(key, &Value::Null, flushed),
                _ => synth_anthropic_delta(key, flushed),
            });
        }
        if let Some(message) = self.tally.block_message(Direction::Response) {
            self.blocked = Some(message.clone());
            return FilterOutcome::Block { message };
        }
        FilterOutcome::Emit(out)
    }

    /// A whole answer part carried inside an event (Anthropic `message_start` and
    /// `content_block_start`, Responses `output_item.added`): walked like a non-streamed answer
    /// of `api`; its values count as new ones. True when it was changed.
    fn check_embedded(&mut self, api: ApiShape, body: &mut Value) -> bool {
        let (tally, modified) = crate::inspect::walk_response(&self.guard, api, body);
        self.tally.merge(&tally);
        modified
    }

    /// Like [`Self::redact_whole`] for complete tool-call arguments (JSON text).
    fn redact_whole_json(&mut self, v: Option<&mut Value>) {
        if let Some(Value::String(s)) = v {
            let mut scratch = Tally::default();
            let encoded = json_text::encode_whole(s);
            if let Some(new) = self.guard.process_json(&encoded, &mut scratch) {
                *s = json_text::decode(&new);
            }
            if scratch.is_blocked() {
                self.tally.merge(&scratch);
            }
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

    fn openai_chunk(
        &mut self,
        event: Option<&str>,
        data: &str,
        parsed: Option<Value>,
    ) -> Result<Vec<SseEvent>, String> {
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
                    out.push((None, self.synth_chunk(key, text_field, flushed)));
                }
            }
            out.push(pass(event, data));
            return Ok(out);
        }
        let mut v = parsed_or_parse(parsed, data)?;
        // The SDKs raise an error for a chunk whose `error` is truthy and read any other chunk
        // (`"error": null`, `false`, `""`, `0`) as a normal one: so must the filter.
        if v.get("error").is_some_and(js_truthy) {
            // The SDK raises it, with its message: checked like an error answer.
            let changed = self.check_embedded(ApiShape::Other, &mut v);
            return Ok(vec![self.rewritten_if(changed, event, data, &v)]);
        }
        for k in ["id", "object", "created", "model"] {
            if let Some(x) = v.get(k) {
                if self.chunk_meta.get(k) != Some(x) {
                    self.chunk_meta.insert(k.to_string(), x.clone());
                }
            }
        }
        let mut before = Vec::new();
        let mut changed = false;
        if let Some(Value::Array(choices)) = v.get_mut("choices") {
            for choice in choices.iter_mut() {
                let index = index_of(choice.get("index"))?;
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
                        before.push((None, self.synth_chunk((index, 0), text_field, text)));
                    }
                }
                // The choice's other streamed texts: a refusal, an audio answer's transcript, and
                // the legacy `function_call` arguments (JSON text).
                for (slot, path) in [
                    (REFUSAL_SLOT, &["refusal"][..]),
                    (AUDIO_SLOT, &["audio", "transcript"][..]),
                    (LEGACY_FUNCTION_SLOT, &["function_call", "arguments"][..]),
                ] {
                    let Some(s) = string_at(holder, path) else {
                        continue;
                    };
                    let key = (index, slot);
                    let mut out = if is_tool_key(key) {
                        self.push_json(key, &s)
                    } else {
                        self.push(key, &s)
                    };
                    if finishing {
                        out.push_str(&self.flush(key));
                    }
                    if out != s {
                        set_string_at(holder, path, out);
                        changed = true;
                    }
                }
                if let Some(Value::Array(calls)) = holder.get_mut("tool_calls") {
                    for call in calls.iter_mut() {
                        let key = (index, TOOL_SLOT + index_of(call.get("index"))?);
                        let Some(args) = call
                            .get("function")
                            .and_then(|f| f.get("arguments"))
                            .and_then(Value::as_str)
                            .map(str::to_string)
                        else {
                            continue;
                        };
                        let mut out = self.push_json(key, &args);
                        if finishing {
                            out.push_str(&self.flush(key));
                        }
                        if out != args {
                            call["function"]["arguments"] = Value::String(out);
                            changed = true;
                        }
                    }
                }
                if finishing {
                    // Tool calls (and other texts) whose last fragment came in an earlier chunk.
                    let open: Vec<StreamKey> = self
                        .streams
                        .keys()
                        .copied()
                        .filter(|k| k.0 == index)
                        .collect();
                    for key in open {
                        let flushed = self.flush(key);
                        if !flushed.is_empty() {
                            before.push((None, self.synth_chunk(key, text_field, flushed)));
                        }
                    }
                    self.closed_indexes.insert(index);
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

    /// The event as it came, or re-serialized when `changed`.
    fn rewritten_if(&self, changed: bool, event: Option<&str>, data: &str, v: &Value) -> SseEvent {
        if changed {
            (event.map(str::to_string), v.to_string())
        } else {
            pass(event, data)
        }
    }

    fn synth_chunk(&self, key: StreamKey, text_field: &str, text: String) -> String {
        let mut chunk = self.chunk_meta.clone();
        let index = key.0;
        let choice = if key.1 == LEGACY_FUNCTION_SLOT {
            json!({"index": index, "delta": {"function_call": {"arguments": text}}, "finish_reason": null})
        } else if is_tool_key(key) {
            let call = json!({"index": key.1 - TOOL_SLOT, "function": {"arguments": text}});
            json!({"index": index, "delta": {"tool_calls": [call]}, "finish_reason": null})
        } else if key.1 == REFUSAL_SLOT {
            json!({"index": index, "delta": {"refusal": text}, "finish_reason": null})
        } else if key.1 == AUDIO_SLOT {
            json!({"index": index, "delta": {"audio": {"transcript": text}}, "finish_reason": null})
        } else if text_field == "content" {
            json!({"index": index, "delta": {"content": text}, "finish_reason": null})
        } else {
            json!({"index": index, "text": text, "finish_reason": null})
        };
        chunk.insert("choices".to_string(), json!([choice]));
        Value::Object(chunk).to_string()
    }
}

fn pass(event: Option<&str>, data: &str) -> SseEvent {
    (event.map(str::to_string), data.to_string())
}

/// The event's kind: the `type` field of its data, else its `event:` line. The SDKs act on the
/// data's type (an Anthropic client takes any event its name lets through and files it by that
/// type), so a text delta sent under another event name is still a text delta.
fn event_kind(event: Option<&str>, v: &Value) -> Option<String> {
    v.get("type")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| event.map(str::to_string))
}

/// An array index as the SDKs read it: absent is 0, a whole number (`1`, `1.0`, `1e0`) or a
/// canonical numeric string (`"1"`: JavaScript's `choices["1"]` is `choices[1]`) is that number.
/// Anything else (negative, fractional, `"01"`, `null`, past [`INDEX_CAP`]) names a slot the
/// filter cannot follow the way the client will, so the stream stops.
pub(super) fn index_of(v: Option<&Value>) -> Result<u64, String> {
    let i = match v {
        None => Some(0),
        Some(Value::Number(n)) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= INDEX_CAP as f64)
                .map(|f| f as u64)
        }),
        Some(Value::String(s))
            if !s.is_empty()
                && s.len() <= 7
                && s.bytes().all(|b| b.is_ascii_digit())
                && (s == "0" || !s.starts_with('0')) =>
        {
            s.parse().ok()
        }
        Some(_) => None,
    };
    i.filter(|&i| i <= INDEX_CAP)
        .ok_or_else(|| "an event index that is not a whole number".to_string())
}

/// The string at `path` in `v`.
fn string_at(v: &Value, path: &[&str]) -> Option<String> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Sets the string at `path` in `v` (which holds one there).
fn set_string_at(v: &mut Value, path: &[&str], s: String) {
    if let Some(x) = path.iter().try_fold(v, |v, k| v.get_mut(k)) {
        *x = Value::String(s);
    }
}

/// JavaScript truthiness of a JSON value.
fn js_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// The caller's parse of `data` when it has one, else our own.
fn parsed_or_parse(parsed: Option<Value>, data: &str) -> Result<Value, String> {
    match parsed {
        Some(v) => Ok(v),
        None => parse(data),
    }
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
