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
            index_of(v.get("output_index")),
            index_of(v.get("content_index")),
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
        let Some(item) = item else { return };
        if item.get("type").and_then(Value::as_str) == Some("function_call") {
            self.redact_whole_json(item.get_mut("arguments"));
        }
        if let Some(Value::Array(parts)) = item.get_mut("content") {
            for part in parts.iter_mut() {
                self.redact_whole(part.get_mut("text"));
            }
        }
    }

    pub(super) fn synth_responses_delta(
        &self,
        key: StreamKey,
        current: &Value,
        text: String,
    ) -> SseEvent {
        let kind = if is_tool_key(key) {
            "response.function_call_arguments.delta"
        } else {
            "response.output_text.delta"
        };
        let mut delta = if is_tool_key(key) {
            json!({"type": kind, "output_index": key.0, "delta": text})
        } else {
            json!({"type": kind, "output_index": key.0, "content_index": key.1, "delta": text})
        };
        if let Some(id) = self.item_ids.get(&key).or_else(|| current.get("item_id")) {
            delta["item_id"] = id.clone();
        }
        if let Some(seq) = current.get("sequence_number") {
            delta["sequence_number"] = seq.clone();
        }
        (Some(kind.to_string()), delta.to_string())
    }
}
