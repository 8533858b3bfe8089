//! The filter's side of the fast path for plain text events (see [`TextDelta`]): the same
//! outcome as the general path, without a JSON tree unless the text changed.

use super::{parse, FilterOutcome, SseEvent, SseOutputFilter, StreamKey};
use crate::inspect::ApiShape;
use crate::stream::StreamRedactor;
use crate::text_delta::{ChunkMeta, TextDelta};
use serde_json::Value;

/// What to send for a run of text events (see [`SseOutputFilter::on_text_run`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// Per event: `None` to send it as it came, `Some(text)` to send it with this text instead.
    Texts(Vec<Option<String>>),
    /// Stop the stream before these events.
    Block { message: String },
}

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
            Some(text) if !text.is_empty() && self.is_closed(delta.key) => {
                self.fail_closed("text for a choice or block that had already finished")
            }
            Some(text) => {
                let out = self.push(delta.key, text);
                if out == **text {
                    FilterOutcome::Unchanged
                } else if let Some(spliced) = splice_text(data, text, &out) {
                    FilterOutcome::Emit(vec![(event.map(str::to_string), spliced)])
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

    /// Several plain text events of stream `key` that arrived together, all read by a
    /// [`DeltaTemplate`](crate::DeltaTemplate) (so every field but the text is that of an event
    /// already seen): their texts go through the redactor as one piece instead of one by one.
    /// What it releases is handed back event by event wherever it is the text as it came (the
    /// usual case: nothing redacted, at most a word held back or carried into the next event);
    /// when something was redacted the first event carries all of it and the others none.
    /// `None` when the run must go event by event: a private key is being dropped, or the run holds
    /// a value to block (the filter is then as it was before the call).
    pub fn on_text_run(&mut self, key: StreamKey, texts: &[&str]) -> Option<RunOutcome> {
        if let Some(message) = &self.blocked {
            return Some(RunOutcome::Block {
                message: message.clone(),
            });
        }
        if texts.is_empty() {
            return Some(RunOutcome::Texts(Vec::new()));
        }
        if self.is_closed(key) {
            return None;
        }
        let guard = &self.guard;
        let stream = self
            .streams
            .entry(key)
            .or_insert_with(|| StreamRedactor::new(guard.clone()));
        if stream.is_swallowing() {
            return None;
        }
        let held = stream.held().len();
        let mut all = String::with_capacity(held + texts.iter().map(|t| t.len()).sum::<usize>());
        all.push_str(stream.held());
        texts.iter().for_each(|t| all.push_str(t));
        // Kept to step back to: a run that blocks goes event by event instead, so that the client
        // gets the text before the value and the detections stop where the stream stops.
        let before = stream.clone();
        let out = stream.push(&all[held..]);
        if self.block_if_called_for().is_some() {
            self.blocked = None;
            self.streams.insert(key, before);
            return None;
        }
        let released = out.len();
        if !all.as_bytes().starts_with(out.as_bytes()) {
            let mut per_event = vec![Some(String::new()); texts.len()];
            per_event[0] = Some(out);
            return Some(RunOutcome::Texts(per_event));
        }
        // Event i carried all[end - len..end] (the first one also the held text before it) and
        // now carries what of that was released.
        let mut end = held;
        let per_event = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let own = end;
                end += t.len();
                let from = if i == 0 { 0 } else { own };
                let (a, b) = (from.min(released), end.min(released));
                (a != own || b != end).then(|| all[a..b].to_string())
            })
            .collect();
        Some(RunOutcome::Texts(per_event))
    }

    /// `data` with its one text field (by API) set to `text`, through a JSON tree (see
    /// [`splice_text`] for the common case).
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
        // Inserted in the order the general path uses (`id`, `object`, `created`, `model`, as
        // OpenAI sends them), so a synthesized chunk reads the same from either path.
        fn set_text(
            meta_map: &mut serde_json::Map<String, Value>,
            k: &str,
            v: &Option<std::borrow::Cow<'_, str>>,
        ) {
            if let Some(v) = v.as_deref() {
                if !matches!(meta_map.get(k), Some(Value::String(s)) if s == v) {
                    meta_map.insert(k.to_string(), Value::String(v.to_string()));
                }
            }
        }
        set_text(&mut self.chunk_meta, "id", &meta.id);
        set_text(&mut self.chunk_meta, "object", &meta.object);
        if let Some(c) = meta.created {
            if self.chunk_meta.get("created").and_then(Value::as_u64) != Some(c) {
                self.chunk_meta
                    .insert("created".to_string(), Value::from(c));
            }
        }
        set_text(&mut self.chunk_meta, "model", &meta.model);
    }
}

/// `data` with the string `old` (read from it, borrowed, so it lies inside `data` between quotes)
/// replaced by `new`, JSON-encoded; every other byte of the event stays as it came. `None` when
/// `old` is not such a slice (text with escapes is unescaped into a copy, which lies elsewhere in
/// memory), and the caller re-encodes a tree.
/// Streamed tokens usually begin with a space, so the redactor holds each word back until the
/// next one arrives and most events are rewritten: this keeps that to a copy of one event.
pub fn splice_text(data: &str, old: &str, new: &str) -> Option<String> {
    let start = (old.as_ptr() as usize).checked_sub(data.as_ptr() as usize)?;
    let end = start.checked_add(old.len())?;
    let bytes = data.as_bytes();
    if start == 0 || end >= bytes.len() || bytes[start - 1] != b'"' || bytes[end] != b'"' {
        return None;
    }
    let quoted = serde_json::to_string(new).ok()?;
    let mut out = String::with_capacity(data.len() - old.len() + quoted.len());
    out.push_str(&data[..start - 1]);
    out.push_str(&quoted);
    out.push_str(&data[end + 1..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::splice_text;

    #[test]
    fn a_borrowed_text_is_replaced_in_place_and_the_rest_kept_byte_for_byte() {
        let data = r#"{"id":"c1","created":1700000000,"choices":[{"index":0,"delta":{"content":" world"},"finish_reason":null}]}"#;
        let at = data.find(" world").unwrap();
        let out = splice_text(data, &data[at..at + 6], "Hello \"x\"\n").unwrap();
        assert_eq!(
            out,
            r#"{"id":"c1","created":1700000000,"choices":[{"index":0,"delta":{"content":"Hello \"x\"\n"},"finish_reason":null}]}"#
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["choices"][0]["delta"]["content"], "Hello \"x\"\n");
    }

    #[test]
    fn a_copy_or_a_slice_from_elsewhere_is_not_spliced() {
        let data = r#"{"delta":{"text":"a\nb"}}"#;
        let copy = String::from("a\nb");
        assert_eq!(splice_text(data, &copy, "x"), None);
        let other = String::from("\"a\"");
        assert_eq!(splice_text(data, &other[1..2], "x"), None);
        // Not between quotes: a slice of the key, not of a string value.
        assert_eq!(splice_text(data, &data[3..7], "x"), None);
    }
}
