//! The event that makes up almost all of a streamed answer, one piece of generated text, read
//! straight from its JSON into borrowed fields: no tree is built, nothing is copied unless the
//! text holds escapes. Anything that is not plainly such an event (a finishing chunk, tool calls,
//! usage, an error, an unexpected type, duplicate keys) is not recognised here and takes the
//! general path, which parses the whole event.

use crate::inspect::ApiShape;
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::borrow::Cow;

/// One piece of generated text from a streamed event (see [`TextDelta::read`]).
pub struct TextDelta<'a> {
    /// The text stream it belongs to: (choice, 0), (block, 0) or (output_index, content_index).
    pub(crate) key: (u64, u64),
    pub(crate) text: Option<Cow<'a, str>>,
    /// OpenAI chunks: the fields repeated on every chunk (kept for synthesized chunks).
    pub(crate) meta: Option<ChunkMeta<'a>>,
    /// Responses events: the output item the text belongs to.
    pub(crate) item_id: Option<Cow<'a, str>>,
}

/// `id`, `object`, `created` and `model` of an OpenAI chunk.
pub(crate) struct ChunkMeta<'a> {
    pub id: Option<Cow<'a, str>>,
    pub object: Option<Cow<'a, str>>,
    pub created: Option<u64>,
    pub model: Option<Cow<'a, str>>,
}

impl<'a> TextDelta<'a> {
    /// Recognises a plain text event of `api`: an OpenAI chat chunk whose one choice carries only
    /// `delta.content`, a completions chunk with only `text`, a Responses
    /// `response.output_text.delta`, or an Anthropic `text_delta`.
    /// `None` for every other event, including any this reader is unsure of.
    pub fn read(api: ApiShape, event: Option<&str>, data: &'a str) -> Option<TextDelta<'a>> {
        match api {
            ApiShape::OpenAiChat | ApiShape::OpenAiCompletions if event.is_none() => {
                let c: ChatChunk<'a> = serde_json::from_str(data).ok()?;
                let [choice] = c.choices;
                if c.error.is_some()
                    || c.usage.is_some()
                    || c.kind.is_some()
                    || choice.finish_reason.is_some()
                {
                    return None;
                }
                let text = if api == ApiShape::OpenAiChat {
                    let delta = choice.delta?;
                    let plain = delta.tool_calls.is_none()
                        && delta.refusal.is_none()
                        && delta.reasoning_content.is_none()
                        && delta.audio.is_none()
                        && delta.function_call.is_none();
                    if !plain || choice.text.is_some() {
                        return None;
                    }
                    delta.content
                } else {
                    if choice.delta.is_some() || choice.tool_calls.is_some() {
                        return None;
                    }
                    Some(choice.text?)
                };
                Some(TextDelta {
                    key: (choice.index.unwrap_or(0), 0),
                    text,
                    meta: Some(ChunkMeta {
                        id: c.id,
                        object: c.object,
                        created: c.created,
                        model: c.model,
                    }),
                    item_id: None,
                })
            }
            ApiShape::OpenAiResponses
                if matches!(event, None | Some("response.output_text.delta")) =>
            {
                let e: ResponsesDelta<'a> = serde_json::from_str(data).ok()?;
                (e.kind == "response.output_text.delta").then(|| TextDelta {
                    key: (e.output_index.unwrap_or(0), e.content_index.unwrap_or(0)),
                    text: Some(e.delta),
                    meta: None,
                    item_id: e.item_id,
                })
            }
            ApiShape::AnthropicMessages if matches!(event, None | Some("content_block_delta")) => {
                let e: AnthropicDelta<'a> = serde_json::from_str(data).ok()?;
                let d = e.delta;
                let plain = e.kind == "content_block_delta"
                    && d.kind == "text_delta"
                    && d.thinking.is_none()
                    && d.partial_json.is_none();
                plain.then(|| TextDelta {
                    key: (e.index.unwrap_or(0), 0),
                    text: Some(d.text),
                    meta: None,
                    item_id: None,
                })
            }
            _ => None,
        }
    }

    /// The text stream it belongs to (see [`SseOutputFilter::on_text_run`](crate::SseOutputFilter::on_text_run)).
    pub fn key(&self) -> (u64, u64) {
        self.key
    }

    /// `data` (the event this was read from) with its text replaced by `text`, every other byte as
    /// it came; `None` when the text was not read in place (it had escapes).
    pub fn rewrite(&self, data: &str, text: &str) -> Option<String> {
        crate::sse::splice_text(data, self.text.as_deref()?, text)
    }

    /// The text when it was read in place from the event's data (it had no escapes).
    pub fn text_in_place(&self) -> Option<&'a str> {
        match &self.text {
            Some(Cow::Borrowed(t)) => Some(t),
            _ => None,
        }
    }

    /// The generated text ("" when the chunk carries none, such as a role-only first chunk).
    pub fn text(&self) -> &str {
        self.text.as_deref().unwrap_or("")
    }
}

/// `Option<Cow<str>>` that borrows from the input when the string has no escapes: serde borrows a
/// `Cow` field only when it is the field's own type, never inside an `Option`, so without this
/// every id, model and text was copied.
pub(crate) fn opt_borrowed<'de: 'a, 'a, D>(d: D) -> Result<Option<Cow<'a, str>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Borrowed<'a>>::deserialize(d)?.map(|b| b.0))
}

/// The bytes around the text of the last plain text event of a stream. A stream repeats them on
/// every event (the chunk id, model, index and the keys after the text), so an event that starts
/// and ends with exactly these bytes and has a plain string in between (no quote, backslash or
/// control character) parses to the same fields with another text: it is read with two
/// comparisons instead of a JSON parse. Anything else takes [`TextDelta::read`] and teaches the
/// template again.
#[derive(Default)]
pub struct DeltaTemplate {
    learned: Option<Learned>,
}

struct Learned {
    event: Option<String>,
    prefix: String,
    suffix: String,
    key: (u64, u64),
}

impl DeltaTemplate {
    /// A text event shaped like the last one learnt: its text, borrowed from `data`.
    pub fn read<'a>(&self, event: Option<&str>, data: &'a str) -> Option<TextDelta<'a>> {
        let t = self.learned.as_ref()?;
        if t.event.as_deref() != event
            || data.len() < t.prefix.len() + t.suffix.len()
            || !data.starts_with(&t.prefix)
            || !data.ends_with(&t.suffix)
        {
            return None;
        }
        // Both ends are a quote, so these are character boundaries.
        let text = &data[t.prefix.len()..data.len() - t.suffix.len()];
        if text.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
            return None;
        }
        Some(TextDelta {
            key: t.key,
            text: Some(Cow::Borrowed(text)),
            // The same bytes carried the same id, model and item as the event learnt from.
            meta: None,
            item_id: None,
        })
    }

    /// Remembers the bytes around `delta`'s text, when that text was read in place from `data`.
    pub fn learn(&mut self, event: Option<&str>, data: &str, delta: &TextDelta<'_>) {
        self.learned = None;
        let Some(Cow::Borrowed(text)) = &delta.text else {
            return;
        };
        let Some(start) = (text.as_ptr() as usize).checked_sub(data.as_ptr() as usize) else {
            return;
        };
        let end = start + text.len();
        let bytes = data.as_bytes();
        if start == 0 || end >= bytes.len() || bytes[start - 1] != b'"' || bytes[end] != b'"' {
            return;
        }
        self.learned = Some(Learned {
            event: event.map(str::to_string),
            prefix: data[..start].to_string(),
            suffix: data[end..].to_string(),
            key: delta.key,
        });
    }
}

#[derive(Deserialize)]
struct ChatChunk<'a> {
    #[serde(borrow, default, deserialize_with = "opt_borrowed")]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_borrowed")]
    object: Option<Cow<'a, str>>,
    #[serde(default)]
    created: Option<u64>,
    #[serde(borrow, default, deserialize_with = "opt_borrowed")]
    model: Option<Cow<'a, str>>,
    /// Exactly one choice (any other count is not this reader's case).
    #[serde(borrow)]
    choices: [ChatChoice<'a>; 1],
    #[serde(default)]
    usage: Option<IgnoredAny>,
    #[serde(default)]
    error: Option<IgnoredAny>,
    #[serde(rename = "type", default)]
    kind: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ChatChoice<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow, default)]
    delta: Option<ChatDeltaFields<'a>>,
    #[serde(borrow, default, deserialize_with = "opt_borrowed")]
    text: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<IgnoredAny>,
    #[serde(default)]
    finish_reason: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ChatDeltaFields<'a> {
    #[serde(borrow, default, deserialize_with = "opt_borrowed")]
    content: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<IgnoredAny>,
    #[serde(default)]
    refusal: Option<IgnoredAny>,
    #[serde(default)]
    reasoning_content: Option<IgnoredAny>,
    #[serde(default)]
    audio: Option<IgnoredAny>,
    #[serde(default)]
    function_call: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ResponsesDelta<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default, deserialize_with = "opt_borrowed")]
    item_id: Option<Cow<'a, str>>,
    #[serde(default)]
    output_index: Option<u64>,
    #[serde(default)]
    content_index: Option<u64>,
    #[serde(borrow)]
    delta: Cow<'a, str>,
}

#[derive(Deserialize)]
struct AnthropicDelta<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow)]
    delta: AnthropicTextFields<'a>,
}

#[derive(Deserialize)]
struct AnthropicTextFields<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    text: Cow<'a, str>,
    #[serde(default)]
    thinking: Option<IgnoredAny>,
    #[serde(default)]
    partial_json: Option<IgnoredAny>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_reads_events_shaped_like_the_last_one_and_nothing_else() {
        let first = r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":2,"delta":{"content":" Hello"},"logprobs":null,"finish_reason":null}]}"#;
        let d = TextDelta::read(ApiShape::OpenAiChat, None, first).unwrap();
        let mut t = DeltaTemplate::default();
        t.learn(None, first, &d);
        let next = first.replace(" Hello", " wörld, 42");
        let got = t.read(None, &next).unwrap();
        let parsed = TextDelta::read(ApiShape::OpenAiChat, None, &next).unwrap();
        assert_eq!((got.text(), got.key), (parsed.text(), parsed.key));
        assert_eq!(got.key, (2, 0));
        assert_eq!(
            t.read(None, &first.replace(" Hello", "")).unwrap().text(),
            ""
        );
        for other in [
            first.replace(" Hello", r#"a\"b"#),
            first.replace(" Hello", r#"a\nb"#),
            first.replace(" Hello", "a\tb"),
            first.replace(" Hello", r#"a","content":"b"#),
            first.replace("\"c1\"", "\"c2\""),
            first.replace("\"finish_reason\":null", "\"finish_reason\":\"stop\""),
            first.to_string() + " ",
        ] {
            assert!(t.read(None, &other).is_none(), "{other}");
        }
        assert!(t.read(Some("message"), first).is_none());
        // A text with escapes is copied when parsed, so there is nothing to learn from it.
        let escaped = first.replace(" Hello", r#"a\nb"#);
        let e = TextDelta::read(ApiShape::OpenAiChat, None, &escaped).unwrap();
        t.learn(None, &escaped, &e);
        assert!(t.read(None, first).is_none());
    }

    fn chat(data: &str) -> Option<String> {
        TextDelta::read(ApiShape::OpenAiChat, None, data).map(|d| d.text().to_string())
    }

    #[test]
    fn reads_plain_text_events_only() {
        let plain = r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":"fp","choices":[{"index":0,"delta":{"content":"Hi \"x\""},"logprobs":null,"finish_reason":null}]}"#;
        assert_eq!(chat(plain).as_deref(), Some("Hi \"x\""));
        // Without escapes the text and the chunk's fields are borrowed from the event, not copied.
        let d = TextDelta::read(
            ApiShape::OpenAiChat,
            None,
            r#"{"id":"c","model":"m","choices":[{"index":0,"delta":{"content":" Hi"}}]}"#,
        )
        .unwrap();
        assert!(matches!(d.text, Some(Cow::Borrowed(" Hi"))));
        let meta = d.meta.as_ref().unwrap();
        assert!(
            matches!(meta.id, Some(Cow::Borrowed("c")))
                && matches!(meta.model, Some(Cow::Borrowed("m")))
        );
        let role = r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#;
        assert_eq!(chat(role).as_deref(), Some(""));
        for other in [
            r#"{"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"refusal":"no"}}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":1}}"#,
            r#"{"choices":[{"delta":{"content":"a"}},{"delta":{"content":"b"}}]}"#,
            r#"{"choices":[{"delta":{"content":"a"}}],"usage":{"total_tokens":1}}"#,
            r#"{"choices":[{"delta":{"content":"a","content":"b"}}]}"#,
            r#"{"error":{"message":"x"},"choices":[{"delta":{"content":"a"}}]}"#,
            r#"{"choices":[{"delta":{"content":5}}]}"#,
            "[DONE]",
        ] {
            assert_eq!(chat(other), None, "{other}");
        }
        assert!(TextDelta::read(ApiShape::OpenAiChat, Some("x"), plain).is_none());
        let ant =
            r#"{"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":"hé"}}"#;
        let d = TextDelta::read(
            ApiShape::AnthropicMessages,
            Some("content_block_delta"),
            ant,
        );
        assert_eq!(d.as_ref().map(|d| (d.key, d.text())), Some(((2, 0), "hé")));
        let resp = r#"{"type":"response.output_text.delta","item_id":"msg_1","output_index":1,"content_index":2,"delta":"ok","sequence_number":9}"#;
        let d = TextDelta::read(
            ApiShape::OpenAiResponses,
            Some("response.output_text.delta"),
            resp,
        );
        assert_eq!(d.as_ref().map(|d| (d.key, d.text())), Some(((1, 2), "ok")));
        let done = r#"{"type":"response.output_text.done","output_index":0,"content_index":0,"text":"ok"}"#;
        assert!(TextDelta::read(ApiShape::OpenAiResponses, None, done).is_none());
        let args =
            r#"{"type":"response.function_call_arguments.delta","output_index":0,"delta":"{"}"#;
        assert!(TextDelta::read(ApiShape::OpenAiResponses, None, args).is_none());
        let json_delta = r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{"}}"#;
        assert!(TextDelta::read(ApiShape::AnthropicMessages, None, json_delta).is_none());
        assert!(TextDelta::read(ApiShape::AnthropicMessages, Some("ping"), ant).is_none());
        let completion = r#"{"id":"c","object":"text_completion","choices":[{"index":0,"text":"abc","finish_reason":null}]}"#;
        let d = TextDelta::read(ApiShape::OpenAiCompletions, None, completion);
        assert_eq!(d.map(|d| d.text().to_string()).as_deref(), Some("abc"));
        assert!(TextDelta::read(ApiShape::OpenAiResponses, None, plain).is_none());
        assert!(TextDelta::read(ApiShape::OpenAiEmbeddings, None, plain).is_none());
    }
}
