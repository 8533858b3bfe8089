//! The filter's side of the fast path for plain text events (see [`TextDelta`]): the same
//! outcome as the general path, without a JSON tree unless the text changed.

use super::{parse, FilterOutcome, SseEvent, SseOutputFilter};
use crate::inspect::ApiShape;
use crate::text_delta::{ChunkMeta, TextDelta};
use serde_json::Value;

impl SseOutputFilter {
    /// The same as [`on_event`](Self::on_event) for an event that [`TextDelta::read`] recognised
    /// in `data`, without a JSON tree: `Unchanged` when the event may go out as it came, which is
    /// the common case (the text is re-encoded only when the redactor changed or held some of it).
    pub fn on_text_delta(
        &mut self,
        delta: &TextDelta<'_>,
        event: Option<&str>,
        data: &str,
    ) -> FilterOutcome {
        if let Some(message) = &self.blocked {
            return FilterOutcome::Block {
                message: message.clone(),
            };
        }
        if let Some(meta) = &delta.meta {
            self.note_meta(meta);
        }
        if let Some(id) = &delta.item_id {
            if !matches!(self.item_ids.get(&delta.key), Some(Value::String(s)) if s == id) {
                self.item_ids
                    .insert(delta.key, Value::String(id.to_string()));
            }
        }
        let outcome = match &delta.text {
            None => FilterOutcome::Unchanged,
            Some(text) => {
                let out = self.push(delta.key, text);
                if out == **text {
                    FilterOutcome::Unchanged
                } else {
                    match self.with_text(event, data, out) {
                        Ok(e) => FilterOutcome::Emit(vec![e]),
                        Err(why) => self.fail_closed(&why),
                    }
                }
            }
        };
        self.block_if_called_for().unwrap_or(outcome)
    }

    /// `data` with its one text field (by API) set to `text`.
    fn with_text(&self, event: Option<&str>, data: &str, text: String) -> Result<SseEvent, String> {
        let mut v = parse(data)?;
        let slot = match self.api {
            ApiShape::OpenAiChat => v.pointer_mut("/choices/0/delta/content"),
            ApiShape::OpenAiCompletions => v.pointer_mut("/choices/0/text"),
            ApiShape::OpenAiResponses => v.pointer_mut("/delta"),
            _ => v.pointer_mut("/delta/text"),
        };
        let Some(slot) = slot else {
            return Err("a text event lost its text field".into());
        };
        *slot = Value::String(text);
        Ok((event.map(str::to_string), v.to_string()))
    }

    /// Keeps an OpenAI chunk's `id`, `object`, `created` and `model` for synthesized chunks,
    /// copying only what changed (on a stream, nothing after the first chunk).
    fn note_meta(&mut self, meta: &ChunkMeta<'_>) {
        let texts = [
            ("id", &meta.id),
            ("object", &meta.object),
            ("model", &meta.model),
        ];
        for (k, v) in texts {
            if let Some(v) = v {
                if !matches!(self.chunk_meta.get(k), Some(Value::String(s)) if s == v) {
                    self.chunk_meta
                        .insert(k.to_string(), Value::String(v.to_string()));
                }
            }
        }
        if let Some(c) = meta.created {
            if self.chunk_meta.get("created").and_then(Value::as_u64) != Some(c) {
                self.chunk_meta
                    .insert("created".to_string(), Value::from(c));
            }
        }
    }
}
