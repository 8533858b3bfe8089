//! The filter's handling of Anthropic Messages events: text and tool-input deltas per content block,
//! and the deltas it synthesizes to flush held text.

use super::*;

impl SseOutputFilter {
    pub(super) fn anthropic_event(
        &mut self,
        event: Option<&str>,
        data: &str,
        parsed: Option<Value>,
    ) -> Result<Vec<SseEvent>, String> {
        let mut v = parsed_or_parse(parsed, data)?;
        let kind = event_kind(event, &v);
        let index = index_of(v.get("index"))?;
        match kind.as_deref() {
            // Whole blocks arrive in start events: a server tool's result, and whatever text an
            // upstream puts there (the SDKs keep it).
            Some("message_start") => {
                let changed = v
                    .get_mut("message")
                    .is_some_and(|m| self.check_embedded(ApiShape::AnthropicMessages, m));
                Ok(vec![self.rewritten_if(changed, event, data, &v)])
            }
            Some("content_block_start") => {
                let Some(block) = v.get_mut("content_block").map(Value::take) else {
                    return Ok(vec![pass(event, data)]);
                };
                let mut wrapper = json!({ "content": [block] });
                let changed = self.check_embedded(ApiShape::AnthropicMessages, &mut wrapper);
                v["content_block"] = wrapper["content"][0].take();
                Ok(vec![self.rewritten_if(changed, event, data, &v)])
            }
            Some("content_block_delta") => {
                let delta_type = v
                    .get("delta")
                    .and_then(|d| d.get("type"))
                    .and_then(Value::as_str);
                let (field, key) = match delta_type {
                    Some("text_delta") => ("text", (index, 0)),
                    Some("input_json_delta") => ("partial_json", (index, TOOL_SLOT)),
                    // A citation arrives whole: the cited text, the document's title.
                    Some("citations_delta") => {
                        let changed = v
                            .get_mut("delta")
                            .is_some_and(|d| self.check_embedded(ApiShape::Other, d));
                        return Ok(vec![self.rewritten_if(changed, event, data, &v)]);
                    }
                    // Signed by the provider, which refuses a changed one when it comes back.
                    Some("thinking_delta" | "signature_delta") => {
                        return Ok(vec![pass(event, data)])
                    }
                    // A delta type newer than this filter: every string in it, checked whole.
                    _ => {
                        let changed = v
                            .get_mut("delta")
                            .is_some_and(|d| self.check_embedded(ApiShape::Other, d));
                        return Ok(vec![self.rewritten_if(changed, event, data, &v)]);
                    }
                };
                let Some(Value::String(s)) = v.get("delta").and_then(|d| d.get(field)) else {
                    return Ok(vec![pass(event, data)]);
                };
                let s = s.clone();
                let out = if is_tool_key(key) {
                    self.push_json(key, &s)
                } else {
                    self.push(key, &s)
                };
                if out == s {
                    return Ok(vec![pass(event, data)]);
                }
                v["delta"][field] = Value::String(out);
                Ok(vec![(event.map(str::to_string), v.to_string())])
            }
            Some("content_block_stop") => {
                self.closed_indexes.insert(index);
                let mut out = Vec::new();
                for key in [(index, 0), (index, TOOL_SLOT)] {
                    let flushed = self.flush(key);
                    if !flushed.is_empty() {
                        out.push(synth_anthropic_delta(key, flushed));
                    }
                }
                out.push(pass(event, data));
                Ok(out)
            }
            // The SDK raises it with its message: checked like an error answer.
            Some("error") => {
                let changed = self.check_embedded(ApiShape::Other, &mut v);
                Ok(vec![self.rewritten_if(changed, event, data, &v)])
            }
            Some("message_stop") => {
                let mut out = Vec::new();
                for k in self.streams.keys().copied().collect::<Vec<_>>() {
                    let flushed = self.flush(k);
                    if !flushed.is_empty() {
                        out.push(synth_anthropic_delta(k, flushed));
                    }
                }
                out.push(pass(event, data));
                Ok(out)
            }
            // Any other event (`message_delta`, `ping`, types newer than this filter): every
            // string but ids and types, checked whole.
            _ => {
                let changed = self.check_embedded(ApiShape::Other, &mut v);
                Ok(vec![self.rewritten_if(changed, event, data, &v)])
            }
        }
    }
}

pub(super) fn synth_anthropic_delta(key: StreamKey, text: String) -> SseEvent {
    let delta = if is_tool_key(key) {
        json!({"type": "input_json_delta", "partial_json": text})
    } else {
        json!({"type": "text_delta", "text": text})
    };
    let data = json!({"type": "content_block_delta", "index": key.0, "delta": delta});
    (Some("content_block_delta".to_string()), data.to_string())
}
