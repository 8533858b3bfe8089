//! OpenAI usage objects: chat/completions, Responses and embeddings.

use super::{count, readable, Usage};
use serde_json::Value;

/// The counts a chat/completions `usage` is priced from.
const CHAT_COUNTS: &[&[&str]] = &[
    &["prompt_tokens"],
    &["prompt_tokens_details", "cached_tokens"],
    &["prompt_tokens_details", "cache_write_tokens"],
    &["prompt_tokens_details", "audio_tokens"],
    &["completion_tokens"],
    &["completion_tokens_details", "reasoning_tokens"],
    &["completion_tokens_details", "audio_tokens"],
];

/// The counts a Responses `usage` is priced from.
const RESPONSES_COUNTS: &[&[&str]] = &[
    &["input_tokens"],
    &["input_tokens_details", "cached_tokens"],
    &["input_tokens_details", "cache_write_tokens"],
    &["output_tokens"],
    &["output_tokens_details", "reasoning_tokens"],
];

/// Chat/completions `usage`: `cached_tokens` (and `cache_write_tokens`) are a SUBSET of
/// `prompt_tokens`; `reasoning_tokens` are INSIDE `completion_tokens`; so are the `audio_tokens`
/// of `prompt_tokens_details` and `completion_tokens_details` (audio models: the rest is text).
/// `None` when it cannot be read: not an object, no count, or a count that is not one (see
/// `readable`).
pub fn chat_usage(usage: &Value) -> Option<Usage> {
    if !readable(usage, CHAT_COUNTS) {
        return None;
    }
    Some(split(Counts {
        prompt: count(usage, &["prompt_tokens"]).unwrap_or(0),
        cached: count(usage, &["prompt_tokens_details", "cached_tokens"]).unwrap_or(0),
        written: count(usage, &["prompt_tokens_details", "cache_write_tokens"]).unwrap_or(0),
        prompt_audio: count(usage, &["prompt_tokens_details", "audio_tokens"]).unwrap_or(0),
        output: count(usage, &["completion_tokens"]).unwrap_or(0),
        reasoning: count(usage, &["completion_tokens_details", "reasoning_tokens"]).unwrap_or(0),
        output_audio: count(usage, &["completion_tokens_details", "audio_tokens"]).unwrap_or(0),
    }))
}

/// Responses API `usage`: same subset rules under the names `input_tokens` / `output_tokens`;
/// `None` when it cannot be read, as for chat.
pub fn responses_usage(usage: &Value) -> Option<Usage> {
    if !readable(usage, RESPONSES_COUNTS) {
        return None;
    }
    Some(split(Counts {
        prompt: count(usage, &["input_tokens"]).unwrap_or(0),
        cached: count(usage, &["input_tokens_details", "cached_tokens"]).unwrap_or(0),
        written: count(usage, &["input_tokens_details", "cache_write_tokens"]).unwrap_or(0),
        prompt_audio: 0,
        output: count(usage, &["output_tokens"]).unwrap_or(0),
        reasoning: count(usage, &["output_tokens_details", "reasoning_tokens"]).unwrap_or(0),
        output_audio: 0,
    }))
}

/// Embeddings `usage`: only `prompt_tokens` (`None` when it cannot be read).
pub fn embeddings_usage(usage: &Value) -> Option<Usage> {
    if !readable(usage, &[&["prompt_tokens"]]) {
        return None;
    }
    Some(Usage {
        input_tokens: count(usage, &["prompt_tokens"]).unwrap_or(0),
        ..Usage::default()
    })
}

/// Web search calls among a Responses answer's `output` items.
pub fn web_search_calls(output: Option<&Value>) -> u64 {
    output
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter(|i| i.get("type").and_then(Value::as_str) == Some("web_search_call"))
                .count() as u64
        })
        .unwrap_or(0)
}

/// OpenAI's inclusive counts, as reported.
struct Counts {
    prompt: u64,
    cached: u64,
    written: u64,
    prompt_audio: u64,
    output: u64,
    reasoning: u64,
    output_audio: u64,
}

/// Splits OpenAI's inclusive prompt count into uncached / cache-read / cache-write parts, and
/// places the prompt's audio tokens. The usage does not say which cached tokens were audio, so
/// audio is counted uncached first, then cached: the split that costs most, since audio's premium
/// over text is larger on uncached input than on cached input in every listed price.
fn split(c: Counts) -> Usage {
    // Clamped so an inconsistent report can never make the parts exceed the whole.
    let cached = c.cached.min(c.prompt);
    let written = c.written.min(c.prompt - cached);
    let uncached = c.prompt - cached - written;
    let audio = c.prompt_audio.min(c.prompt);
    let input_audio = audio.min(uncached);
    Usage {
        input_tokens: uncached,
        cache_read_tokens: cached,
        cache_write_5m_tokens: written,
        cache_write_1h_tokens: 0,
        output_tokens: c.output,
        reasoning_tokens: c.reasoning.min(c.output),
        input_audio_tokens: input_audio,
        cache_read_audio_tokens: (audio - input_audio).min(cached),
        output_audio_tokens: c.output_audio.min(c.output),
        ..Usage::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_kind::ApiKind;
    use crate::usage::usage_from_response;
    use serde_json::json;

    #[test]
    fn chat_cached_tokens_are_taken_out_of_prompt_tokens() {
        let body = json!({"id":"chatcmpl-1","object":"chat.completion","usage":{
            "prompt_tokens":2006,"completion_tokens":300,"total_tokens":2306,
            "prompt_tokens_details":{"cached_tokens":1920,"audio_tokens":0},
            "completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,
              "accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}});
        let u = usage_from_response(ApiKind::OpenAiChat, &body).expect("usage");
        assert_eq!(
            u,
            Usage {
                input_tokens: 86,
                cache_read_tokens: 1920,
                output_tokens: 300,
                ..Usage::default()
            }
        );
    }

    #[test]
    fn chat_reasoning_stays_inside_completion_tokens() {
        let body = json!({"usage":{"prompt_tokens":50,"completion_tokens":1200,
            "completion_tokens_details":{"reasoning_tokens":1024}}});
        let u = usage_from_response(ApiKind::OpenAiChat, &body).expect("usage");
        assert_eq!(
            (u.input_tokens, u.output_tokens, u.reasoning_tokens),
            (50, 1200, 1024)
        );
    }

    #[test]
    fn responses_usage_uses_input_and_output_names() {
        let body = json!({"object":"response","usage":{"input_tokens":5000,
            "input_tokens_details":{"cached_tokens":4000,"cache_write_tokens":500},
            "output_tokens":900,"output_tokens_details":{"reasoning_tokens":600},"total_tokens":5900}});
        let u = usage_from_response(ApiKind::OpenAiResponses, &body).expect("usage");
        assert_eq!(
            u,
            Usage {
                input_tokens: 500,
                cache_read_tokens: 4000,
                cache_write_5m_tokens: 500,
                cache_write_1h_tokens: 0,
                output_tokens: 900,
                reasoning_tokens: 600,
                ..Usage::default()
            }
        );
    }

    #[test]
    fn chat_audio_tokens_are_parts_of_prompt_and_completion_tokens() {
        let body = json!({"usage":{"prompt_tokens":1000,"completion_tokens":500,
            "prompt_tokens_details":{"cached_tokens":600,"audio_tokens":700},
            "completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":400}}});
        let u = usage_from_response(ApiKind::OpenAiChat, &body).expect("usage");
        assert_eq!(
            u,
            Usage {
                input_tokens: 400,
                cache_read_tokens: 600,
                output_tokens: 500,
                // Uncached first (400), the rest (300) among the cached tokens.
                input_audio_tokens: 400,
                cache_read_audio_tokens: 300,
                output_audio_tokens: 400,
                ..Usage::default()
            }
        );
        // Counts larger than their totals are clamped.
        let u = chat_usage(&json!({"prompt_tokens":10,"completion_tokens":5,
            "prompt_tokens_details":{"audio_tokens":50},
            "completion_tokens_details":{"audio_tokens":9}}))
        .expect("usage");
        assert_eq!(
            (
                u.input_audio_tokens,
                u.cache_read_audio_tokens,
                u.output_audio_tokens
            ),
            (10, 0, 5)
        );
    }

    #[test]
    fn embeddings_usage_is_prompt_tokens_only() {
        let body = json!({"object":"list","data":[],"usage":{"prompt_tokens":8,"total_tokens":8}});
        let u = usage_from_response(ApiKind::OpenAiEmbeddings, &body).expect("usage");
        assert_eq!(
            u,
            Usage {
                input_tokens: 8,
                ..Usage::default()
            }
        );
    }

    #[test]
    fn inconsistent_counts_are_clamped_not_underflowed() {
        let u = chat_usage(
            &json!({"prompt_tokens":10,"prompt_tokens_details":{"cached_tokens":50},
            "completion_tokens":3}),
        )
        .expect("usage");
        assert_eq!(
            (u.input_tokens, u.cache_read_tokens, u.output_tokens),
            (0, 10, 3)
        );
    }

    /// A count the router cannot read was priced as 0 tokens, and an answer whose usage had only
    /// such counts was recorded at $0 as exact: the usage is unreadable (`None`), and the call is
    /// charged as one whose usage never arrived. Whole numbers written as floats are read.
    #[test]
    fn counts_that_are_not_counts_make_the_usage_unreadable() {
        let unreadable = [
            json!({"prompt_tokens":100000.5,"completion_tokens":50000.5}),
            json!({"prompt_tokens":-100000,"completion_tokens":-5}),
            json!({"prompt_tokens":10,"completion_tokens":-3}),
            json!({"prompt_tokens":"100000","completion_tokens":"50000"}),
            json!({"prompt_tokens":1e30,"completion_tokens":1}),
            json!({"prompt_tokens":10,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":2.5}}),
            json!({"total_tokens":6}),
            json!({}),
            json!([1, 2]),
            json!(null),
        ];
        for u in &unreadable {
            assert_eq!(chat_usage(u), None, "{u}");
        }
        assert_eq!(
            responses_usage(&json!({"input_tokens":-1,"output_tokens":5})),
            None
        );
        assert_eq!(responses_usage(&json!({})), None);
        assert_eq!(embeddings_usage(&json!({"prompt_tokens":8.5})), None);
        assert_eq!(embeddings_usage(&json!({"total_tokens":8})), None);
        // 1e5 and 12.0 are whole numbers: the same counts as 100000 and 12.
        let body = br#"{"usage":{"prompt_tokens":1e5,"completion_tokens":5e4,"prompt_tokens_details":{"cached_tokens":12.0,"audio_tokens":null}}}"#;
        let u = crate::usage::usage_from_bytes(ApiKind::OpenAiChat, body).expect("usage");
        assert_eq!(
            (u.input_tokens, u.cache_read_tokens, u.output_tokens),
            (99_988, 12, 50_000)
        );
        let u = embeddings_usage(&json!({"prompt_tokens":8.0})).expect("usage");
        assert_eq!(u.input_tokens, 8);
    }
}
