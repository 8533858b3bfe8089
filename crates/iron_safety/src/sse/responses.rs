//! The filter's handling of OpenAI Responses events: text and function-call argument deltas, the
//! `*.done` events and finished output items, and the deltas it synthesizes to flush held text.

use super::*;

impl SseOutputFilter {
    /// Pushes a fragment of tool-call arguments (JSON text) and returns what may be emitted.
    /// A Responses `*.delta` event: remember its item id, push its `delta` through the stream
    /// redactor (text, or JSON arguments), and rewrite the event only if the delta changed.
    fn responses_delta(
        &mut self,
        key: StreamKey,
        json_arguments: bool,
        event: Option<&str>,
        data: &str,
        mut v: Value,
    ) -> Vec<SseEvent> {
        if let Some(id) = v.get("item_id") {
            self.item_ids.insert(key, id.clone());
        }
        let Some(Value::String(s)) = v.get("delta") else {
            return vec![pass(event, data)];
        };
        let s = s.clone();
        let out = if json_arguments {
            self.push_json(key, &s)
        } else {
            self.push(key, &s)
        };
        if out == s {
            return vec![pass(event, data)];
        }
        v["delta"] = Value::String(out);
        vec![(event.map(str::to_string), v.to_string())]
    }

    /// A `.done` event: the text still held for `key` goes out first as a synthesized delta, then
    /// the event with its whole value redacted by `redact`.
    fn responses_done(
        &mut self,
        key: StreamKey,
        event: Option<&str>,
        data: &str,
        mut v: Value,
        redact: impl FnOnce(&mut Self, &mut Value),
    ) -> Vec<SseEvent> {
        let mut out = Vec::new();
        let flushed = self.flush(key);
        if !flushed.is_empty() {
            out.push(self.synth_responses_delta(key, &v, flushed));
        }
        self.closed_keys.insert(key);
        redact(self, &mut v);
        out.push((event.map(str::to_string), reserialize_if_changed(data, &v)));
        out
    }

    pub(super) fn responses_event(
        &mut self,
        event: Option<&str>,
        data: &str,
        parsed: Option<Value>,
    ) -> Result<Vec<SseEvent>, String> {
        let mut v = parsed_or_parse(parsed, data)?;
        let kind = event_kind(event, &v);
        let key = (
            index_of(v.get("output_index"))?,
            index_of(v.get("content_index"))?,
        );
        match kind.as_deref() {
            // Items and parts as they start, and the response as created: normally empty, but
            // the SDKs keep whatever text they carry.
            Some("response.output_item.added") => {
                let Some(item) = v.get_mut("item").map(Value::take) else {
                    return Ok(vec![pass(event, data)]);
                };
                let mut wrapper = json!({ "output": [item] });
                let changed = self.check_embedded(ApiShape::OpenAiResponses, &mut wrapper);
                v["item"] = wrapper["output"][0].take();
                Ok(vec![self.rewritten_if(changed, event, data, &v)])
            }
            Some("response.content_part.added") => {
                let Some(part) = v.get_mut("part").map(Value::take) else {
                    return Ok(vec![pass(event, data)]);
                };
                let mut wrapper = json!({ "output": [{"type": "message", "content": [part]}] });
                let changed = self.check_embedded(ApiShape::OpenAiResponses, &mut wrapper);
                v["part"] = wrapper["output"][0]["content"][0].take();
                Ok(vec![self.rewritten_if(changed, event, data, &v)])
            }
            Some("response.created" | "response.in_progress" | "response.queued") => {
                let changed = v
                    .get_mut("response")
                    .is_some_and(|r| self.check_embedded(ApiShape::OpenAiResponses, r));
                Ok(vec![self.rewritten_if(changed, event, data, &v)])
            }
            Some("response.output_text.delta") => {
                Ok(self.responses_delta(key, false, event, data, v))
            }
            Some("response.output_text.done") => {
                Ok(self.responses_done(key, event, data, v, |f, v| {
                    f.redact_whole(v.get_mut("text"))
                }))
            }
            Some("response.function_call_arguments.delta") => {
                Ok(self.responses_delta((key.0, TOOL_SLOT), true, event, data, v))
            }
            Some("response.function_call_arguments.done") => {
                Ok(
                    self.responses_done((key.0, TOOL_SLOT), event, data, v, |f, v| {
                        f.redact_whole_json(v.get_mut("arguments"))
                    }),
                )
            }
            // Texts beside the answer's main text: refusals, reasoning summaries and reasoning
            // text, an audio answer's transcript, a custom tool's input.
            Some("response.mcp_call_arguments.delta") => {
                Ok(self.responses_delta((key.0, MCP_SLOT), true, event, data, v))
            }
            Some("response.mcp_call_arguments.done") => {
                Ok(
                    self.responses_done((key.0, MCP_SLOT), event, data, v, |f, v| {
                        f.redact_whole_json(v.get_mut("arguments"))
                    }),
                )
            }
            // Annotations arrive whole (a cited page's title and URL); errors carry a message the
            // SDK raises.
            Some("response.output_text.annotation.added") => {
                let changed = v
                    .get_mut("annotation")
                    .is_some_and(|a| self.check_embedded(ApiShape::Other, a));
                Ok(vec![self.rewritten_if(changed, event, data, &v)])
            }
            Some("error") => {
                let changed = self.check_embedded(ApiShape::Other, &mut v);
                Ok(vec![self.rewritten_if(changed, event, data, &v)])
            }
            Some(
                kind @ ("response.refusal.delta"
                | "response.reasoning_summary_text.delta"
                | "response.reasoning_text.delta"
                | "response.audio.transcript.delta"
                | "response.custom_tool_call_input.delta"
                | "response.code_interpreter_call_code.delta"),
            ) => {
                let key = (key.0, side_slot(kind, &v)?);
                Ok(self.responses_delta(key, false, event, data, v))
            }
            Some(
                kind @ ("response.refusal.done"
                | "response.reasoning_summary_text.done"
                | "response.reasoning_text.done"
                | "response.audio.transcript.done"
                | "response.custom_tool_call_input.done"
                | "response.code_interpreter_call_code.done"),
            ) => {
                let key = (key.0, side_slot(kind, &v)?);
                let field = match kind {
                    "response.refusal.done" => "refusal",
                    "response.custom_tool_call_input.done" => "input",
                    "response.code_interpreter_call_code.done" => "code",
                    _ => "text",
                };
                Ok(self
                    .responses_done(key, event, data, v, |f, v| f.redact_whole(v.get_mut(field))))
            }
            Some("response.reasoning_summary_part.added") => {
                let changed = v.get_mut("part").is_some_and(|p| {
                    let mut wrapper =
                        json!({ "output": [{"type": "reasoning", "summary": [p.take()]}] });
                    let changed = self.check_embedded(ApiShape::OpenAiResponses, &mut wrapper);
                    *p = wrapper["output"][0]["summary"][0].take();
                    changed
                });
                Ok(vec![self.rewritten_if(changed, event, data, &v)])
            }
            Some("response.content_part.done" | "response.reasoning_summary_part.done") => {
                if let Some(part) = v.get_mut("part") {
                    self.redact_whole(part.get_mut("text"));
                    self.redact_whole(part.get_mut("refusal"));
                }
                Ok(vec![(
                    event.map(str::to_string),
                    reserialize_if_changed(data, &v),
                )])
            }
            Some("response.output_item.done") => {
                self.redact_output_item(v.get_mut("item"), true);
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
                        self.redact_output_item(Some(item), false);
                    }
                }
                // A failed response's error message, which the SDK raises.
                if let Some(error) = v.get_mut("response").and_then(|r| r.get_mut("error")) {
                    self.check_embedded(ApiShape::Other, error);
                }
                out.push((event.map(str::to_string), reserialize_if_changed(data, &v)));
                Ok(out)
            }
            // Encoded audio and image data.
            Some("response.audio.delta" | "response.image_generation_call.partial_image") => {
                Ok(vec![pass(event, data)])
            }
            // Any other event (tool-call progress, event types newer than this filter): every
            // string but ids and types is checked whole, as an unknown answer's would be.
            _ => {
                let changed = self.check_embedded(ApiShape::Other, &mut v);
                Ok(vec![self.rewritten_if(changed, event, data, &v)])
            }
        }
    }

    /// A finished output item, walked like a whole answer's item. The members its deltas carried
    /// (a message's content, reasoning text, custom tool input, code interpreter code, call
    /// arguments) were counted there: only a block-action value in them adds to the tally. The
    /// others (a tool's output, search results, a shell command) arrive only whole: counted here
    /// when `count_whole` (`output_item.done`; `response.completed` repeats the items). Arguments
    /// are redacted as text, the way their deltas were (the same bytes, members in order).
    fn redact_output_item(&mut self, item: Option<&mut Value>, count_whole: bool) {
        let Some(Value::Object(map)) = item else {
            return;
        };
        let mut arguments = match map.get_mut("arguments") {
            Some(a) if a.is_string() => Some(a.take()),
            _ => None,
        };
        if arguments.is_some() {
            self.redact_whole_json(arguments.as_mut());
        }
        let kind = map.get("type").cloned().unwrap_or(Value::Null);
        let streamed: &[&str] = match kind.as_str() {
            Some("message") => &["content"],
            Some("reasoning") => &["summary", "content"],
            Some("custom_tool_call") => &["input"],
            Some("code_interpreter_call") => &["code"],
            _ => &[],
        };
        let mut streamed_part = serde_json::Map::new();
        for k in streamed {
            if let Some(v) = map.remove(*k) {
                streamed_part.insert((*k).to_string(), v);
            }
        }
        let walk = |f: &mut Self, part: serde_json::Map<String, Value>| {
            let mut wrapper = json!({ "output": [Value::Object(part)] });
            let (tally, _) =
                crate::inspect::walk_response(&f.guard, ApiShape::OpenAiResponses, &mut wrapper);
            let Value::Object(out) = wrapper["output"][0].take() else {
                unreachable!("an object goes in")
            };
            (out, tally)
        };
        let (mut rest, whole_tally) = walk(self, std::mem::take(map));
        if !streamed_part.is_empty() {
            streamed_part.insert("type".to_string(), kind);
            let (part, tally) = walk(self, streamed_part);
            for (k, v) in part {
                if k != "type" {
                    rest.insert(k, v);
                }
            }
            if tally.is_blocked() {
                self.tally.merge(&tally);
            }
        }
        if count_whole || whole_tally.is_blocked() {
            self.tally.merge(&whole_tally);
        }
        if let Some(a) = arguments {
            rest.insert("arguments".to_string(), a);
        }
        *map = rest;
    }

    pub(super) fn synth_responses_delta(
        &self,
        key: StreamKey,
        current: &Value,
        text: String,
    ) -> SseEvent {
        let (kind, index_field, index) = match key.1 {
            MCP_SLOT => ("response.mcp_call_arguments.delta", None, MCP_SLOT),
            k if is_tool_key(key) => ("response.function_call_arguments.delta", None, k),
            k if k >= CODE_SLOT => ("response.code_interpreter_call_code.delta", None, k),
            k if k >= CUSTOM_INPUT_SLOT => ("response.custom_tool_call_input.delta", None, k),
            k if k >= AUDIO_SLOT => ("response.audio.transcript.delta", None, k),
            k if k >= REASONING_SLOT => (
                "response.reasoning_text.delta",
                Some("content_index"),
                k - REASONING_SLOT,
            ),
            k if k >= SUMMARY_SLOT => (
                "response.reasoning_summary_text.delta",
                Some("summary_index"),
                k - SUMMARY_SLOT,
            ),
            k if k >= REFUSAL_SLOT => (
                "response.refusal.delta",
                Some("content_index"),
                k - REFUSAL_SLOT,
            ),
            k => ("response.output_text.delta", Some("content_index"), k),
        };
        let mut delta = json!({"type": kind, "delta": text});
        if kind != "response.audio.transcript.delta" {
            delta["output_index"] = json!(key.0);
        }
        if let Some(field) = index_field {
            delta[field] = json!(index);
        }
        if let Some(id) = self.item_ids.get(&key).or_else(|| current.get("item_id")) {
            delta["item_id"] = id.clone();
        }
        if let Some(seq) = current.get("sequence_number") {
            delta["sequence_number"] = seq.clone();
        }
        (Some(kind.to_string()), delta.to_string())
    }
}

/// The second key part of a Responses side text event (see the slots in the parent module).
fn side_slot(kind: &str, v: &Value) -> Result<u64, String> {
    let content = index_of(v.get("content_index"))?;
    Ok(
        match kind.trim_end_matches(".delta").trim_end_matches(".done") {
            "response.refusal" => REFUSAL_SLOT + content,
            "response.reasoning_summary_text" => SUMMARY_SLOT + index_of(v.get("summary_index"))?,
            "response.reasoning_text" => REASONING_SLOT + content,
            "response.audio.transcript" => AUDIO_SLOT,
            "response.code_interpreter_call_code" => CODE_SLOT,
            _ => CUSTOM_INPUT_SLOT,
        },
    )
}
