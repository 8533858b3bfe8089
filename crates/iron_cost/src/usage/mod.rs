//! Token usage reported by providers, normalised into one shape.

pub mod anthropic;
pub mod openai;
pub mod stream;

use crate::api_kind::ApiKind;
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
    usage_member(kind, body.get("usage"))
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
    }
    match kind {
        // Any JSON at all counts for these, not only objects with a `usage` member.
        ApiKind::AnthropicCountTokens | ApiKind::Other => {
            usage_from_response(kind, &serde_json::from_slice(body).ok()?)
        }
        _ => usage_member(
            kind,
            serde_json::from_slice::<Top>(body).ok()?.usage.as_ref(),
        ),
    }
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
