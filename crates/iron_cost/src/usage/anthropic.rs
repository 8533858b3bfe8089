//! Anthropic Messages usage: `input_tokens` EXCLUDES cache reads and writes.

use super::{count, readable, Usage};
use serde_json::Value;

/// Raw Anthropic counters; stream events overwrite the fields they carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct AnthropicCounters {
    input: u64,
    cache_read: u64,
    cache_creation: u64,
    ephemeral_5m: Option<u64>,
    ephemeral_1h: Option<u64>,
    output: u64,
    thinking: u64,
    web_searches: u64,
    /// `inference_geo` as last reported: `Some(true)` for `"us"`.
    us_only: Option<bool>,
}

impl AnthropicCounters {
    /// Overwrites every field present (and numeric) in `usage`; absent or null fields keep
    /// their value. Values are cumulative, so later reports replace, never add.
    pub(crate) fn merge(&mut self, usage: &Value) {
        self.merge_counts(usage);
        if let Some(v) = count(usage, &["server_tool_use", "web_search_requests"]) {
            self.web_searches = v;
        }
        if let Some(geo) = usage.get("inference_geo").and_then(Value::as_str) {
            self.us_only = Some(geo == "us");
        }
        // Server-side compaction runs sampling passes of its own (a summary of the conversation,
        // then the answer): the top-level counts are the last pass's, and the call bills the sum
        // of `iterations`.
        if let Some(passes) = usage
            .get("iterations")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
        {
            let mut sum = AnthropicCounters::default();
            for pass in passes {
                let mut c = AnthropicCounters::default();
                c.merge_counts(pass);
                sum.input = sum.input.saturating_add(c.input);
                sum.cache_read = sum.cache_read.saturating_add(c.cache_read);
                sum.cache_creation = sum.cache_creation.saturating_add(c.cache_creation);
                let add = |a: Option<u64>, b: Option<u64>| match (a, b) {
                    (None, None) => None,
                    (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
                };
                sum.ephemeral_5m = add(sum.ephemeral_5m, c.ephemeral_5m);
                sum.ephemeral_1h = add(sum.ephemeral_1h, c.ephemeral_1h);
                sum.output = sum.output.saturating_add(c.output);
                sum.thinking = sum.thinking.saturating_add(c.thinking);
            }
            self.input = sum.input;
            self.cache_read = sum.cache_read;
            self.cache_creation = sum.cache_creation;
            self.ephemeral_5m = sum.ephemeral_5m;
            self.ephemeral_1h = sum.ephemeral_1h;
            self.output = sum.output;
            self.thinking = sum.thinking;
        }
    }

    /// The token counts of one `usage` (or one pass of `iterations`), without the passes.
    fn merge_counts(&mut self, usage: &Value) {
        let set = |slot: &mut u64, path: &[&str]| {
            if let Some(v) = count(usage, path) {
                *slot = v;
            }
        };
        set(&mut self.input, &["input_tokens"]);
        set(&mut self.cache_read, &["cache_read_input_tokens"]);
        set(&mut self.cache_creation, &["cache_creation_input_tokens"]);
        set(&mut self.output, &["output_tokens"]);
        set(
            &mut self.thinking,
            &["output_tokens_details", "thinking_tokens"],
        );
        if let Some(v) = count(usage, &["cache_creation", "ephemeral_5m_input_tokens"]) {
            self.ephemeral_5m = Some(v);
        }
        if let Some(v) = count(usage, &["cache_creation", "ephemeral_1h_input_tokens"]) {
            self.ephemeral_1h = Some(v);
        }
    }

    /// Normalised usage. Without a 5m/1h breakdown every cache write is billed at the 5m rate;
    /// with one, creation tokens the breakdown does not account for are billed at 5m too.
    pub(crate) fn to_usage(self) -> Usage {
        let (w5m, w1h) = match (self.ephemeral_5m, self.ephemeral_1h) {
            (None, None) => (self.cache_creation, 0),
            (e5m, e1h) => {
                let w1h = e1h.unwrap_or(0);
                (
                    e5m.unwrap_or(0)
                        .max(self.cache_creation.saturating_sub(w1h)),
                    w1h,
                )
            }
        };
        Usage {
            input_tokens: self.input,
            cache_read_tokens: self.cache_read,
            cache_write_5m_tokens: w5m,
            cache_write_1h_tokens: w1h,
            output_tokens: self.output,
            reasoning_tokens: self.thinking.min(self.output),
            web_search_requests: self.web_searches,
            us_only: self.us_only.unwrap_or(false),
            ..Usage::default()
        }
    }
}

/// The counts an Anthropic `usage` is priced from.
pub(crate) const MESSAGES_COUNTS: &[&[&str]] = &[
    &["input_tokens"],
    &["cache_read_input_tokens"],
    &["cache_creation_input_tokens"],
    &["cache_creation", "ephemeral_5m_input_tokens"],
    &["cache_creation", "ephemeral_1h_input_tokens"],
    &["output_tokens"],
    &["output_tokens_details", "thinking_tokens"],
    &["server_tool_use", "web_search_requests"],
];

/// True when an Anthropic `usage` (a response's, or a stream event's) can be priced: see `readable`.
pub(crate) fn messages_usage_readable(usage: &Value) -> bool {
    // Each compaction pass must be readable too: a pass priced as 0 tokens would undercharge.
    let passes_readable = match usage.get("iterations") {
        None | Some(Value::Null) => true,
        Some(Value::Array(passes)) => passes.iter().all(|p| readable(p, MESSAGES_COUNTS)),
        Some(_) => false,
    };
    passes_readable && readable(usage, MESSAGES_COUNTS)
}

/// The `usage` object of a Messages response (`None` when it cannot be read: not an object, no
/// count, or a count that is not one).
pub fn messages_usage(usage: &Value) -> Option<Usage> {
    if !messages_usage_readable(usage) {
        return None;
    }
    let mut c = AnthropicCounters::default();
    c.merge(usage);
    Some(c.to_usage())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_kind::ApiKind;
    use crate::usage::usage_from_response;
    use serde_json::json;

    #[test]
    fn cache_fields_are_separate_from_input_tokens() {
        let body = json!({"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
            "content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{
            "input_tokens":120,"cache_creation_input_tokens":2000,"cache_read_input_tokens":10000,
            "cache_creation":{"ephemeral_5m_input_tokens":1500,"ephemeral_1h_input_tokens":500},
            "output_tokens":350,"service_tier":"standard"}});
        let u = usage_from_response(ApiKind::AnthropicMessages, &body).expect("usage");
        assert_eq!(
            u,
            Usage {
                input_tokens: 120,
                cache_read_tokens: 10000,
                cache_write_5m_tokens: 1500,
                cache_write_1h_tokens: 500,
                output_tokens: 350,
                reasoning_tokens: 0,
                ..Usage::default()
            }
        );
    }

    #[test]
    fn a_usage_with_no_readable_count_is_unreadable() {
        for u in [
            json!({}),
            json!({"input_tokens":-5,"output_tokens":10}),
            json!({"input_tokens":10,"output_tokens":"10"}),
            json!({"input_tokens":10.5,"output_tokens":10}),
            json!({"input_tokens":10,"output_tokens":3,"cache_creation":{"ephemeral_1h_input_tokens":-1}}),
            json!("usage"),
        ] {
            assert_eq!(messages_usage(&u), None, "{u}");
        }
        let u = messages_usage(&json!({"input_tokens":1e3,"output_tokens":20.0})).expect("usage");
        assert_eq!((u.input_tokens, u.output_tokens), (1000, 20));
    }

    #[test]
    fn without_breakdown_all_cache_writes_are_5m() {
        let u = messages_usage(&json!({"input_tokens":10,"cache_creation_input_tokens":700,
            "cache_read_input_tokens":null,"output_tokens":5}))
        .expect("usage");
        assert_eq!(
            (
                u.cache_write_5m_tokens,
                u.cache_write_1h_tokens,
                u.cache_read_tokens
            ),
            (700, 0, 0)
        );
    }

    #[test]
    fn partial_breakdown_never_loses_creation_tokens() {
        let u = messages_usage(&json!({"cache_creation_input_tokens":1000,
            "cache_creation":{"ephemeral_1h_input_tokens":400}}))
        .expect("usage");
        assert_eq!(
            (u.cache_write_5m_tokens, u.cache_write_1h_tokens),
            (600, 400)
        );
    }

    #[test]
    fn server_tool_web_searches_are_counted() {
        let u = messages_usage(&json!({"input_tokens":10,"output_tokens":5,
            "server_tool_use":{"web_search_requests":3,"web_fetch_requests":1}}))
        .expect("usage");
        assert_eq!(u.web_search_requests, 3);
    }

    #[test]
    fn non_object_usage_is_none() {
        assert_eq!(messages_usage(&json!("12")), None);
    }

    /// Server-side compaction: the top-level usage is the answer's pass only; the call bills
    /// every pass in `iterations` (the summary read the whole conversation).
    #[test]
    fn a_compacted_call_is_billed_the_sum_of_its_passes() {
        let body = json!({"type":"message","content":[],"usage":{
            "input_tokens":23000,"output_tokens":1000,
            "iterations":[
                {"type":"compaction","input_tokens":180000,"output_tokens":3500,"cache_read_input_tokens":1000},
                {"type":"message","input_tokens":23000,"output_tokens":1000}]}});
        let u = usage_from_response(ApiKind::AnthropicMessages, &body).expect("usage");
        assert_eq!(
            (u.input_tokens, u.output_tokens, u.cache_read_tokens),
            (203_000, 4_500, 1_000)
        );
        // A pass whose count cannot be read makes the usage unreadable, not cheaper.
        let odd = json!({"usage":{"input_tokens":1,"output_tokens":1,
            "iterations":[{"type":"compaction","input_tokens":"lots","output_tokens":1}]}});
        assert!(usage_from_response(ApiKind::AnthropicMessages, &odd).is_none());
        // No passes: the top-level counts.
        let plain = json!({"usage":{"input_tokens":5,"output_tokens":2,"iterations":[]}});
        let u = usage_from_response(ApiKind::AnthropicMessages, &plain).expect("usage");
        assert_eq!((u.input_tokens, u.output_tokens), (5, 2));
    }
}
