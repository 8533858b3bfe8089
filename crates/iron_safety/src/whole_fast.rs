//! A whole (non-streamed) answer whose text sits in plain string fields, checked straight from its
//! bytes: the text fields are read into borrowed strings (copied only when they hold escapes), no
//! tree is built. When that reading finds nothing to change, the original bytes go out as they came.
//! Any answer this reader is unsure of (tool calls, content parts, tool blocks, Responses output,
//! duplicate keys, anything that does not parse) is left to the tree walk in `inspect.rs`, as is
//! every answer in which a value must be redacted or that must be blocked.

use crate::audit::Tally;
use crate::guard::TextGuard;
use crate::inspect::{ApiShape, Verdict};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;

/// An answer that can go out as it came: the verdict, and the answer's top-level `usage` member
/// when the reader parsed the answer's top level (so the caller need not parse it again).
#[derive(Debug)]
pub struct UnchangedAnswer {
    pub verdict: Verdict,
    pub usage: UsageRead,
}

/// What the reader saw of the answer's top-level `usage` member.
#[derive(Debug, Clone, PartialEq)]
pub enum UsageRead {
    /// The top level was parsed: its `usage` value (`None` when absent or `null`), and for
    /// OpenAI answers the `service_tier` beside it (the tier decides the rates).
    Read {
        /// The `usage` member.
        usage: Option<Value>,
        /// The `service_tier` member (OpenAI chat and completions answers; else `None`).
        service_tier: Option<Value>,
    },
    /// The reader did not parse this answer (embeddings, unknown shapes).
    NotRead,
}

/// The verdict on `body` when it can go out unchanged, found without building a tree: `None` when
/// the caller must take the tree walk (an unsure shape, or a value to redact or block).
pub(crate) fn inspect_response_unchanged(
    guard: &TextGuard,
    api: ApiShape,
    body: &[u8],
) -> Option<UnchangedAnswer> {
    let mut tally = Tally::default();
    // `true` while every text seen is left as it is.
    let mut check = |text: Option<&Cow<'_, str>>| match text {
        Some(t) => guard.process(t, &mut tally).is_none(),
        None => true,
    };
    let mut usage = UsageRead::NotRead;
    let unchanged = match api {
        ApiShape::OpenAiChat => {
            let a: ChatAnswer<'_> = serde_json::from_slice(body).ok()?;
            usage = UsageRead::Read {
                usage: a.usage,
                service_tier: a.service_tier,
            };
            let mut ok = true;
            for message in a.choices.iter().filter_map(|c| c.message.as_ref()) {
                // Text outside content and refusal (tool calls, an audio transcript, annotations)
                // is read by the tree walk.
                if message.tool_calls.is_some()
                    || message.function_call.is_some()
                    || message.audio.is_some()
                    || message.annotations.as_ref().is_some_and(|a| !a.is_empty())
                {
                    return None;
                }
                // The tree walk's order: content, then refusal.
                ok &= check(message.content.as_ref());
                ok &= check(message.refusal.as_ref());
            }
            ok
        }
        ApiShape::OpenAiCompletions => {
            let a: CompletionsAnswer<'_> = serde_json::from_slice(body).ok()?;
            usage = UsageRead::Read {
                usage: a.usage,
                service_tier: a.service_tier,
            };
            a.choices
                .iter()
                .fold(true, |ok, c| check(c.text.as_ref()) & ok)
        }
        ApiShape::AnthropicMessages => {
            let a: AnthropicAnswer<'_> = serde_json::from_slice(body).ok()?;
            usage = UsageRead::Read {
                usage: a.usage,
                service_tier: None,
            };
            let mut ok = true;
            for block in &a.content {
                match block.kind.as_ref() {
                    "text" if block.citations.is_none() => ok &= check(block.text.as_ref()),
                    // Signed by the provider, which refuses a changed one when it comes back.
                    "thinking" | "redacted_thinking" => {}
                    // Citations, tool inputs and results, thinking, provider-run tools: the tree
                    // walk reads them.
                    _ => return None,
                }
            }
            ok
        }
        // No answer text to scan in an embedding; nothing is read.
        ApiShape::OpenAiEmbeddings => true,
        // No known shape: every string is read, by the tree walk.
        ApiShape::Other => return None,
        ApiShape::OpenAiResponses => return None,
    };
    if !unchanged || tally.is_blocked() {
        return None;
    }
    let direction = guard.direction();
    Some(UnchangedAnswer {
        verdict: Verdict {
            detections: tally.detections(direction),
            modified: false,
            blocked: false,
            message: None,
        },
        usage,
    })
}

#[derive(Deserialize)]
struct ChatAnswer<'a> {
    #[serde(borrow)]
    choices: Vec<ChatAnswerChoice<'a>>,
    #[serde(default)]
    usage: Option<Value>,
    #[serde(default)]
    service_tier: Option<Value>,
}

#[derive(Deserialize)]
struct ChatAnswerChoice<'a> {
    #[serde(borrow, default)]
    message: Option<ChatAnswerMessage<'a>>,
}

#[derive(Deserialize)]
struct ChatAnswerMessage<'a> {
    #[serde(borrow, default, deserialize_with = "crate::text_delta::opt_borrowed")]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "crate::text_delta::opt_borrowed")]
    refusal: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<IgnoredAny>,
    #[serde(default)]
    function_call: Option<IgnoredAny>,
    #[serde(default)]
    audio: Option<IgnoredAny>,
    #[serde(default)]
    annotations: Option<Vec<IgnoredAny>>,
}

#[derive(Deserialize)]
struct CompletionsAnswer<'a> {
    #[serde(borrow)]
    choices: Vec<CompletionsChoice<'a>>,
    #[serde(default)]
    usage: Option<Value>,
    #[serde(default)]
    service_tier: Option<Value>,
}

#[derive(Deserialize)]
struct CompletionsChoice<'a> {
    #[serde(borrow, default, deserialize_with = "crate::text_delta::opt_borrowed")]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct AnthropicAnswer<'a> {
    #[serde(borrow)]
    content: Vec<AnthropicBlock<'a>>,
    #[serde(default)]
    usage: Option<Value>,
}

#[derive(Deserialize)]
struct AnthropicBlock<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default, deserialize_with = "crate::text_delta::opt_borrowed")]
    text: Option<Cow<'a, str>>,
    #[serde(default)]
    citations: Option<IgnoredAny>,
}
