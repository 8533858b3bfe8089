//! Usage from a server-sent-event stream, one event at a time, with an estimate when the
//! stream ends before the provider reported usage.

use super::anthropic::{messages_usage_readable, AnthropicCounters};
use super::{openai, Usage};
use crate::estimate::InputEstimate;
use crate::price::ServiceTier;
use serde_json::Value;

/// Accumulates usage over the SSE events of one streamed response (any supported shape).
#[derive(Debug, Clone, Default)]
pub struct StreamUsage {
    /// Final usage from an OpenAI usage chunk or a terminal Responses event.
    final_usage: Option<Usage>,
    /// Anthropic counters from `message_start`, overwritten by each `message_delta`.
    anthropic: Option<AnthropicCounters>,
    /// Whether an Anthropic `message_delta` (which carries the final output count) arrived.
    anthropic_final: bool,
    /// An Anthropic stream reported usage the router cannot read (a `message_start` without
    /// readable usage, a `message_delta` whose usage has no count or a count that is not one):
    /// its counters are not the call's, so it is estimated like a stream without usage.
    anthropic_unreadable: bool,
    /// Characters of generated text, tool arguments and thinking seen in deltas.
    output_chars: u64,
    /// Quarter tokens of that text, for the estimate of a stream cut short.
    output_quarters: u64,
    /// The service tier OpenAI events report (chat chunks, the terminal Responses event).
    service_tier: Option<ServiceTier>,
}

impl StreamUsage {
    /// A fresh accumulator.
    pub fn new() -> StreamUsage {
        StreamUsage::default()
    }

    /// Feeds one SSE event: its `event:` name (if any) and its `data:` payload.
    /// Unknown, malformed and `[DONE]` events are ignored.
    pub fn observe(&mut self, event: Option<&str>, data: &str) {
        let data = data.trim();
        if data.is_empty() || data == "[DONE]" {
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return;
        };
        self.observe_value(event, &v);
    }

    /// Like [`observe`](Self::observe), with the event's `data` already parsed as JSON by the
    /// caller (one parse per event can then serve every reader of the stream).
    pub fn observe_value(&mut self, event: Option<&str>, v: &Value) {
        if !v.is_object() {
            return;
        }
        // The data's own `type` is authoritative; the SSE name is a fallback (`message` is the
        // SSE default and says nothing).
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .or(event.filter(|e| !e.is_empty() && *e != "message"))
            .unwrap_or("");
        match kind {
            "message_start" => {
                let counters = self
                    .anthropic
                    .get_or_insert_with(AnthropicCounters::default);
                match v.get("message").and_then(|m| m.get("usage")) {
                    Some(usage) if messages_usage_readable(usage) => counters.merge(usage),
                    _ => self.anthropic_unreadable = true,
                }
            }
            "message_delta" => {
                if let Some(usage) = v.get("usage").filter(|u| u.is_object()) {
                    if messages_usage_readable(usage) {
                        self.anthropic
                            .get_or_insert_with(AnthropicCounters::default)
                            .merge(usage);
                        self.anthropic_final = true;
                    } else {
                        self.anthropic_unreadable = true;
                    }
                }
            }
            "content_block_delta" => {
                if let Some(delta) = v.get("delta") {
                    for key in ["text", "thinking", "partial_json"] {
                        self.add_chars(delta.get(key));
                    }
                }
            }
            "response.output_text.delta"
            | "response.refusal.delta"
            | "response.function_call_arguments.delta"
            | "response.reasoning_text.delta"
            | "response.reasoning_summary_text.delta" => self.add_chars(v.get("delta")),
            "response.completed" | "response.incomplete" | "response.failed" => {
                let response = v.get("response");
                self.note_tier(response.and_then(|r| r.get("service_tier")));
                if let Some(mut u) = response
                    .and_then(|r| r.get("usage"))
                    .and_then(openai::responses_usage)
                {
                    u.web_search_requests =
                        openai::web_search_calls(response.and_then(|r| r.get("output")));
                    self.final_usage = Some(u);
                }
            }
            _ => self.observe_chat_chunk(v),
        }
    }

    /// Counts the text of an event the caller has already read as one plain piece of generated
    /// text (an OpenAI chat or completions text chunk without usage, an Anthropic `text_delta`):
    /// the same as [`observe`](Self::observe) on that event, without parsing it again.
    pub fn observe_text(&mut self, text: &str) {
        self.count_text(text);
    }

    /// Characters, and quarter tokens for the estimate: an ASCII character a quarter of a token,
    /// any other a whole one (CJK runs about one token per character; a quarter undercounted them
    /// by half).
    fn count_text(&mut self, text: &str) {
        let (mut ascii, mut other) = (0u64, 0u64);
        for b in text.bytes() {
            if b.is_ascii() {
                ascii += 1;
            } else if b >= 0xC0 {
                other += 1;
            }
        }
        self.output_chars = self.output_chars.saturating_add(ascii + other);
        self.output_quarters = self
            .output_quarters
            .saturating_add(ascii.saturating_add(other.saturating_mul(4)));
    }

    /// Characters of output seen so far.
    pub fn output_chars(&self) -> u64 {
        self.output_chars
    }

    /// Whether the provider's own final usage has arrived.
    pub fn has_final_usage(&self) -> bool {
        self.final_usage.is_some() || (self.anthropic_final && !self.anthropic_unreadable)
    }

    /// The usage, and whether it is an estimate. Without a final report, missing input comes
    /// from `estimated_input_tokens` (text at standard rates: see [`Self::finish_with`]) and
    /// output is the larger of any reported count and the text seen: a quarter token per ASCII
    /// character, one per other character, rounded up.
    pub fn finish(self, estimated_input_tokens: u64) -> (Usage, bool) {
        self.finish_with(&InputEstimate::text(estimated_input_tokens))
    }

    /// [`Self::finish`] with an estimate of the input that says how much of it is audio and which
    /// service tier the request asked for ([`crate::estimate_input`]): without a final report,
    /// missing input is `input`, and the usage is at the tier the stream reported, else at the
    /// one asked for.
    pub fn finish_with(self, input: &InputEstimate) -> (Usage, bool) {
        let (mut usage, estimated) = self.usage(input);
        match self.service_tier {
            Some(tier) => usage.service_tier = tier,
            None if estimated => usage.service_tier = input.service_tier,
            None => {}
        }
        (usage, estimated)
    }

    fn usage(&self, input: &InputEstimate) -> (Usage, bool) {
        if let Some(u) = self.final_usage {
            return (u, false);
        }
        let from_text = self.output_quarters.div_ceil(4);
        match self.anthropic.filter(|_| !self.anthropic_unreadable) {
            Some(c) if self.anthropic_final => (c.to_usage(), false),
            Some(c) => {
                let mut u = c.to_usage();
                u.output_tokens = u.output_tokens.max(from_text);
                (u, true)
            }
            None => {
                let u = Usage {
                    input_tokens: input.tokens,
                    input_audio_tokens: input.audio_tokens.min(input.tokens),
                    output_tokens: from_text,
                    us_only: input.us_only,
                    ..Usage::default()
                };
                (u, true)
            }
        }
    }

    /// Keeps the service tier an OpenAI event reports.
    fn note_tier(&mut self, tier: Option<&Value>) {
        if let Some(name) = tier.and_then(Value::as_str) {
            self.service_tier = Some(ServiceTier::parse(name));
        }
    }

    /// OpenAI chat / legacy completions chunk: text in `choices[]`, usage on the last chunk, the
    /// service tier on every chunk.
    fn observe_chat_chunk(&mut self, v: &Value) {
        self.note_tier(v.get("service_tier"));
        if let Some(choices) = v.get("choices").and_then(Value::as_array) {
            for choice in choices {
                self.add_chars(choice.get("text"));
                let Some(delta) = choice.get("delta") else {
                    continue;
                };
                for key in ["content", "refusal", "reasoning_content"] {
                    self.add_chars(delta.get(key));
                }
                for call in delta
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    self.add_chars(call.get("function").and_then(|f| f.get("arguments")));
                }
            }
        }
        if let Some(u) = v.get("usage").and_then(openai::chat_usage) {
            self.final_usage = Some(u);
        }
    }

    fn add_chars(&mut self, text: Option<&Value>) {
        if let Some(s) = text.and_then(Value::as_str) {
            self.count_text(s);
        }
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
