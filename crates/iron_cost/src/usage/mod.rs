//! Token usage reported by providers, normalised into one shape.

pub mod anthropic;
pub mod openai;
pub mod stream;

use crate::api_kind::ApiKind;
use crate::price::ServiceTier;
use serde_json::Value;

/// Billed tokens of one call. `input_tokens` is UNCACHED input on every provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Input tokens billed at the plain input rate (cache reads and writes excluded).
    pub input_tokens: u64,
    /// Input tokens served from the prompt cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to a 5-minute cache (OpenAI `cache_write_tokens` land here too).
    pub cache_write_5m_tokens: u64,
    /// Input tokens written to a 1-hour cache.
    pub cache_write_1h_tokens: u64,
    /// Output tokens, reasoning included.
    pub output_tokens: u64,
    /// Reasoning / thinking tokens: informational, already inside `output_tokens`.
    pub reasoning_tokens: u64,
    /// Audio tokens among `input_tokens` (priced at the audio input rate; the rest is text).
    pub input_audio_tokens: u64,
    /// Audio tokens among `cache_read_tokens` (priced at the cached audio rate).
    pub cache_read_audio_tokens: u64,
    /// Audio tokens among `output_tokens` (priced at the audio output rate).
    pub output_audio_tokens: u64,
    /// Web searches the provider ran for the call (Anthropic `server_tool_use.web_search_requests`,
    /// OpenAI Responses `web_search_call` output items), each billed the model's search fee.
    pub web_search_requests: u64,
    /// The tier OpenAI says it served the call at (the answer's `service_tier`, beside `usage`);
    /// standard for Anthropic and when the answer does not say.
    pub service_tier: ServiceTier,
}

impl Usage {
    /// All input tokens: uncached, cache reads and cache writes.
    pub fn total_input_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.cache_read_tokens)
            .saturating_add(self.cache_write_5m_tokens)
            .saturating_add(self.cache_write_1h_tokens)
    }
}

/// Usage from a complete (non-streaming) JSON response body of `kind`; `None` when the body
/// carries none. `count_tokens` is free, so it yields zero usage.
pub fn usage_from_response(kind: ApiKind, body: &Value) -> Option<Usage> {
    let usage = with_tier(
        kind,
        usage_member(kind, body.get("usage")),
        body.get("service_tier"),
    );
    with_searches(kind, usage, body.get("output"))
}

/// Usage from a response's top-level `usage` value already read (`None` when it has none), for
/// every kind but `count_tokens` and `Other`, which read the whole body ([`usage_from_bytes`]).
/// An OpenAI answer's service tier is not inside `usage`, so the usage is standard-tier: read
/// OpenAI answers with [`usage_from_bytes`] or [`usage_from_response`].
pub fn usage_from_member(kind: ApiKind, usage: Option<&Value>) -> Option<Usage> {
    match kind {
        ApiKind::AnthropicCountTokens | ApiKind::Other => None,
        _ => usage_member(kind, usage),
    }
}

/// Usage from the body's `usage` member (`None` when it has none).
fn usage_member(kind: ApiKind, usage: Option<&Value>) -> Option<Usage> {
    match kind {
        ApiKind::OpenAiChat | ApiKind::OpenAiCompletions => openai::chat_usage(usage?),
        ApiKind::OpenAiResponses => openai::responses_usage(usage?),
        ApiKind::OpenAiEmbeddings => openai::embeddings_usage(usage?),
        ApiKind::AnthropicMessages => anthropic::messages_usage(usage?),
        ApiKind::AnthropicCountTokens => Some(Usage::default()),
        ApiKind::Other => None,
    }
}

/// Like [`usage_from_response`] on raw bytes; malformed JSON yields `None`. Only the `usage`
/// member is kept; the rest of the answer is skipped, not built as a tree.
pub fn usage_from_bytes(kind: ApiKind, body: &[u8]) -> Option<Usage> {
    #[derive(serde::Deserialize)]
    struct Top {
        #[serde(default)]
        usage: Option<Value>,
        #[serde(default)]
        service_tier: Option<Value>,
        /// Responses output items, for their web search calls.
        #[serde(default)]
        output: Option<Value>,
    }
    match kind {
        // Any JSON at all counts for these, not only objects with a `usage` member.
        ApiKind::AnthropicCountTokens | ApiKind::Other => {
            usage_from_response(kind, &serde_json::from_slice(body).ok()?)
        }
        _ => {
            let top = serde_json::from_slice::<Top>(body).ok()?;
            let usage = with_tier(
                kind,
                usage_member(kind, top.usage.as_ref()),
                top.service_tier.as_ref(),
            );
            with_searches(kind, usage, top.output.as_ref())
        }
    }
}

/// Counts the web searches of an OpenAI Responses answer: its `web_search_call` output items (each
/// one tool call, billed per call whatever its action).
fn with_searches(kind: ApiKind, usage: Option<Usage>, output: Option<&Value>) -> Option<Usage> {
    usage.map(|mut u| {
        if kind == ApiKind::OpenAiResponses {
            u.web_search_requests = openai::web_search_calls(output);
        }
        u
    })
}

/// Sets the service tier an OpenAI answer reports (its top-level `service_tier`) on its usage.
fn with_tier(kind: ApiKind, usage: Option<Usage>, tier: Option<&Value>) -> Option<Usage> {
    let openai = matches!(
        kind,
        ApiKind::OpenAiChat | ApiKind::OpenAiCompletions | ApiKind::OpenAiResponses
    );
    usage.map(|mut u| {
        if let Some(name) = tier.and_then(Value::as_str).filter(|_| openai) {
            u.service_tier = ServiceTier::parse(name);
        }
        u
    })
}

/// A non-negative integer at `path`, or `None`.
pub(crate) fn count(v: &Value, path: &[&str]) -> Option<u64> {
    path.iter().try_fold(v, |v, key| v.get(key))?.as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_or_usage_less_bodies_yield_none() {
        assert_eq!(usage_from_bytes(ApiKind::OpenAiChat, b"{not json"), None);
        assert_eq!(
            usage_from_bytes(ApiKind::OpenAiChat, b"{\"id\":\"x\"}"),
            None
        );
        assert_eq!(
            usage_from_bytes(ApiKind::AnthropicMessages, b"{\"usage\":null}"),
            None
        );
        assert_eq!(
            usage_from_bytes(ApiKind::Other, b"{\"usage\":{\"prompt_tokens\":1}}"),
            None
        );
        assert_eq!(usage_from_bytes(ApiKind::OpenAiChat, &[0xff, 0xfe]), None);
    }

    #[test]
    fn a_usage_member_read_elsewhere_meters_as_the_whole_body_does() {
        let bodies = [
            (
                ApiKind::OpenAiChat,
                r#"{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":6},"completion_tokens_details":{"reasoning_tokens":2}}}"#,
            ),
            (ApiKind::OpenAiChat, r#"{"choices":[],"usage":null}"#),
            (ApiKind::OpenAiChat, r#"{"choices":[]}"#),
            (
                ApiKind::OpenAiCompletions,
                r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}}"#,
            ),
            (
                ApiKind::AnthropicMessages,
                r#"{"content":[],"usage":{"input_tokens":3,"output_tokens":9,"cache_read_input_tokens":100,"cache_creation_input_tokens":20}}"#,
            ),
        ];
        for (kind, body) in bodies {
            let tree: Value = serde_json::from_str(body).unwrap();
            let member = tree.get("usage").filter(|u| !u.is_null());
            assert_eq!(
                usage_from_member(kind, member),
                usage_from_bytes(kind, body.as_bytes()),
                "{kind:?} {body}"
            );
        }
        assert!(usage_from_member(
            ApiKind::OpenAiChat,
            serde_json::from_str::<Value>(bodies[0].1)
                .unwrap()
                .get("usage")
        )
        .is_some());
        // These two read the whole body, not a member.
        let u = serde_json::json!({"input_tokens": 3});
        assert_eq!(
            usage_from_member(ApiKind::AnthropicCountTokens, Some(&u)),
            None
        );
        assert_eq!(usage_from_member(ApiKind::Other, Some(&u)), None);
    }

    #[test]
    fn count_tokens_is_free() {
        let v = serde_json::json!({"input_tokens": 1234});
        assert_eq!(
            usage_from_response(ApiKind::AnthropicCountTokens, &v),
            Some(Usage::default())
        );
    }

    #[test]
    fn total_input_sums_every_input_kind() {
        let u = Usage {
            input_tokens: 1,
            cache_read_tokens: 2,
            cache_write_5m_tokens: 4,
            cache_write_1h_tokens: 8,
            ..Usage::default()
        };
        assert_eq!(u.total_input_tokens(), 15);
    }
}
