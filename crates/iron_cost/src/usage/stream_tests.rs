use super::*;

/// Feeds a raw SSE transcript (`event:` / `data:` lines, blank-line separated).
fn feed(acc: &mut StreamUsage, transcript: &str) {
    for block in transcript.split("\n\n") {
        let mut event = None;
        let mut data = String::new();
        for line in block.lines() {
            if let Some(e) = line.strip_prefix("event: ") {
                event = Some(e);
            } else if let Some(d) = line.strip_prefix("data: ") {
                data.push_str(d);
            }
        }
        if !data.is_empty() {
            acc.observe(event, &data);
        }
    }
}

const ANTHROPIC_STREAM: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_01XFD","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5-20250929","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":1200,"cache_read_input_tokens":9000,"cache_creation":{"ephemeral_5m_input_tokens":1200,"ephemeral_1h_input_tokens":0},"output_tokens":2,"service_tier":"standard"}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":", world!"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},"usage":{"output_tokens":15}}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":472,"cache_creation_input_tokens":1200,"cache_read_input_tokens":9000,"output_tokens":17}}

event: message_stop
data: {"type":"message_stop"}
"#;

#[test]
fn anthropic_message_delta_usage_is_cumulative_last_wins() {
    let mut acc = StreamUsage::new();
    feed(&mut acc, ANTHROPIC_STREAM);
    assert!(acc.has_final_usage());
    assert_eq!(acc.output_chars(), 13);
    let (u, estimated) = acc.finish(999);
    assert!(!estimated);
    // 17, not 2 + 15 + 17.
    assert_eq!(
        u,
        Usage {
            input_tokens: 472,
            cache_read_tokens: 9000,
            cache_write_5m_tokens: 1200,
            cache_write_1h_tokens: 0,
            output_tokens: 17,
            reasoning_tokens: 0,
            ..Usage::default()
        }
    );
}

#[test]
fn anthropic_message_delta_input_fields_override_message_start() {
    let mut acc = StreamUsage::new();
    acc.observe(
        Some("message_start"),
        r#"{"type":"message_start","message":{"usage":{"input_tokens":0,"output_tokens":1}}}"#,
    );
    acc.observe(
        Some("message_delta"),
        r#"{"type":"message_delta","usage":{"input_tokens":800,"output_tokens":40}}"#,
    );
    let (u, estimated) = acc.finish(0);
    assert!(!estimated);
    assert_eq!((u.input_tokens, u.output_tokens), (800, 40));
}

#[test]
fn anthropic_cut_stream_estimates_output_from_text_and_thinking() {
    let mut acc = StreamUsage::new();
    acc.observe(
        Some("message_start"),
        r#"{"type":"message_start","message":{"usage":{"input_tokens":300,"output_tokens":1}}}"#,
    );
    acc.observe(Some("content_block_delta"), r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me think."}}"#);
    acc.observe(Some("content_block_delta"), r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Par"}}"#);
    // 13 + 14 = 27 characters -> ceil(27 / 4) = 7 tokens; input comes from message_start.
    let (u, estimated) = acc.finish(5000);
    assert!(estimated);
    assert_eq!((u.input_tokens, u.output_tokens), (300, 7));
}

const OPENAI_CHAT_STREAM: &str = r#"data: {"id":"chatcmpl-B9","object":"chat.completion.chunk","created":1727000000,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"a1b2"}

data: {"id":"chatcmpl-B9","object":"chat.completion.chunk","created":1727000000,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"content":"Hello there"},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-B9","object":"chat.completion.chunk","created":1727000000,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}

data: {"id":"chatcmpl-B9","object":"chat.completion.chunk","created":1727000000,"model":"gpt-4o-2024-08-06","choices":[],"usage":{"prompt_tokens":1300,"completion_tokens":3,"total_tokens":1303,"prompt_tokens_details":{"cached_tokens":1024,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}

data: [DONE]
"#;

#[test]
fn openai_chat_stream_takes_usage_chunk() {
    let mut acc = StreamUsage::new();
    feed(&mut acc, OPENAI_CHAT_STREAM);
    assert_eq!(acc.output_chars(), 11);
    let (u, estimated) = acc.finish(0);
    assert!(!estimated);
    assert_eq!(
        u,
        Usage {
            input_tokens: 276,
            cache_read_tokens: 1024,
            output_tokens: 3,
            ..Usage::default()
        }
    );
}

#[test]
fn openai_chat_stream_cut_before_usage_is_estimated() {
    let mut acc = StreamUsage::new();
    let cut = OPENAI_CHAT_STREAM
        .split("\n\n")
        .take(2)
        .collect::<Vec<_>>()
        .join("\n\n");
    feed(&mut acc, &cut);
    acc.observe(None, r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":1}"}}]}}]}"#);
    // "Hello there" (11) + {"a":1} (7) = 18 chars -> 5 tokens.
    assert_eq!(
        acc.clone().finish(420),
        (
            Usage {
                input_tokens: 420,
                output_tokens: 5,
                ..Usage::default()
            },
            true
        )
    );
    assert!(!acc.has_final_usage());
}

#[test]
fn responses_stream_takes_usage_from_terminal_event() {
    let mut acc = StreamUsage::new();
    acc.observe(Some("response.created"), r#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","status":"in_progress","usage":null}}"#);
    acc.observe(Some("response.output_text.delta"), r#"{"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi!"}"#);
    acc.observe(Some("response.incomplete"), r#"{"type":"response.incomplete","sequence_number":9,"response":{"id":"resp_1","status":"incomplete","usage":{"input_tokens":900,"input_tokens_details":{"cached_tokens":0},"output_tokens":4000,"output_tokens_details":{"reasoning_tokens":3990},"total_tokens":4900}}}"#);
    assert_eq!(acc.output_chars(), 3);
    let (u, estimated) = acc.finish(0);
    assert!(!estimated);
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.reasoning_tokens),
        (900, 4000, 3990)
    );
}

#[test]
fn garbage_events_are_ignored() {
    let mut acc = StreamUsage::new();
    for data in [
        "",
        "[DONE]",
        "{",
        "null",
        "42",
        "\"x\"",
        r#"{"type":"error","error":{"type":"overloaded_error"}}"#,
    ] {
        acc.observe(Some("error"), data);
    }
    acc.observe(None, r#"{"choices":"nope","usage":[1]}"#);
    acc.observe(
        Some("message_delta"),
        r#"{"type":"message_delta","usage":null}"#,
    );
    assert_eq!(
        acc.finish(12),
        (
            Usage {
                input_tokens: 12,
                ..Usage::default()
            },
            true
        )
    );
}

#[test]
fn multibyte_text_counts_characters_not_bytes() {
    let mut acc = StreamUsage::new();
    acc.observe(None, r#"{"choices":[{"delta":{"content":"héllo 日本"}}]}"#);
    assert_eq!(acc.output_chars(), 8);
}

/// Cut before its usage, a stream's input is the estimate given: its audio part as audio, at the
/// tier the request asked for unless a chunk reported the one it ran at. With a final report the
/// estimate plays no part.
#[test]
fn a_cut_stream_takes_audio_and_tier_from_the_input_estimate() {
    use crate::price::ServiceTier;
    let input = InputEstimate {
        tokens: 12_531,
        audio_tokens: 12_501,
        service_tier: ServiceTier::Priority,
        us_only: false,
    };
    let mut acc = StreamUsage::new();
    acc.observe(
        None,
        r#"{"choices":[{"index":0,"delta":{"content":"word "}}]}"#,
    );
    let (u, estimated) = acc.clone().finish_with(&input);
    assert!(estimated);
    assert_eq!(
        u,
        Usage {
            input_tokens: 12_531,
            input_audio_tokens: 12_501,
            output_tokens: 2,
            service_tier: ServiceTier::Priority,
            ..Usage::default()
        }
    );
    // A chunk said the call ran at the standard tier.
    acc.observe(
        None,
        r#"{"service_tier":"default","choices":[{"index":0,"delta":{"content":"x"}}]}"#,
    );
    assert_eq!(
        acc.clone().finish_with(&input).0.service_tier,
        ServiceTier::Standard
    );
    // Complete: the provider's usage and tier alone.
    feed(&mut acc, OPENAI_CHAT_STREAM);
    let (u, estimated) = acc.finish_with(&input);
    assert!(!estimated);
    assert_eq!(
        (u.input_tokens, u.input_audio_tokens, u.service_tier),
        (276, 0, ServiceTier::Standard)
    );
}

/// A stream whose final usage cannot be read (an empty or broken `message_delta` usage, a
/// `message_start` without usage, a usage chunk of strings) was taken as final: $0 or the
/// `message_start` counts, "exact". It is estimated like a stream without usage.
#[test]
fn a_stream_whose_usage_cannot_be_read_is_estimated() {
    let start =
        r#"{"type":"message_start","message":{"usage":{"input_tokens":600,"output_tokens":1}}}"#;
    let text = r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"abcdefgh"}}"#;
    for delta in [
        r#"{"type":"message_delta","usage":{}}"#,
        r#"{"type":"message_delta","usage":{"output_tokens":-4}}"#,
        r#"{"type":"message_delta","usage":{"output_tokens":"90"}}"#,
    ] {
        let mut acc = StreamUsage::new();
        acc.observe(Some("message_start"), start);
        acc.observe(Some("content_block_delta"), text);
        acc.observe(Some("message_delta"), delta);
        assert!(!acc.has_final_usage(), "{delta}");
        let (u, estimated) = acc.finish(700);
        assert!(estimated, "{delta}");
        assert_eq!((u.input_tokens, u.output_tokens), (700, 2), "{delta}");
    }
    let mut acc = StreamUsage::new();
    acc.observe(
        Some("message_start"),
        r#"{"type":"message_start","message":{"id":"m"}}"#,
    );
    acc.observe(
        Some("message_delta"),
        r#"{"type":"message_delta","usage":{"output_tokens":9}}"#,
    );
    assert!(!acc.has_final_usage());
    assert_eq!(acc.finish(700).0.input_tokens, 700);
    let mut acc = StreamUsage::new();
    acc.observe(
        None,
        r#"{"choices":[],"usage":{"prompt_tokens":"5","completion_tokens":"3"}}"#,
    );
    assert!(!acc.has_final_usage());
    // Whole numbers written as floats are counts.
    let mut acc = StreamUsage::new();
    acc.observe(
        None,
        r#"{"choices":[],"usage":{"prompt_tokens":5e2,"completion_tokens":3.0}}"#,
    );
    let (u, estimated) = acc.finish(1);
    assert_eq!(
        (u.input_tokens, u.output_tokens, estimated),
        (500, 3, false)
    );
}

#[test]
fn an_anthropic_stream_says_where_it_ran_in_message_start() {
    let mut acc = StreamUsage::new();
    feed(
        &mut acc,
        &ANTHROPIC_STREAM.replace(r#""service_tier":"standard""#, r#""inference_geo":"us""#),
    );
    let (u, estimated) = acc.finish(999);
    assert!(!estimated);
    assert!(u.us_only, "the geography of message_start is kept");
    let mut global = StreamUsage::new();
    feed(&mut global, ANTHROPIC_STREAM);
    assert!(!global.finish(999).0.us_only);
}

#[test]
fn a_compacted_stream_is_billed_the_passes_its_message_delta_lists() {
    let mut acc = StreamUsage::new();
    acc.observe(
        Some("message_start"),
        r#"{"type":"message_start","message":{"usage":{"input_tokens":23000,"output_tokens":1}}}"#,
    );
    acc.observe(
        Some("message_delta"),
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":1000,"iterations":[{"type":"compaction","input_tokens":180000,"output_tokens":3500},{"type":"message","input_tokens":23000,"output_tokens":1000}]}}"#,
    );
    let (u, estimated) = acc.finish(0);
    assert!(!estimated);
    assert_eq!((u.input_tokens, u.output_tokens), (203_000, 4_500));
}

/// An Anthropic stream cut before its `message_start` is charged its estimated input at the
/// US-only rate when the request asked for US-only inference.
#[test]
fn a_stream_cut_before_message_start_keeps_the_requested_geography() {
    let body = serde_json::json!({"model":"claude-opus-4-6","max_tokens":10,"inference_geo":"us",
        "messages":[{"role":"user","content":"hi"}]});
    let input = crate::estimate_input(&body, crate::ApiKind::AnthropicMessages, None);
    assert!(input.us_only);
    let (u, estimated) = StreamUsage::new().finish_with(&input);
    assert!(estimated && u.us_only);
    let global = serde_json::json!({"model":"claude-opus-4-6","max_tokens":10,
        "messages":[{"role":"user","content":"hi"}]});
    assert!(!crate::estimate_input(&global, crate::ApiKind::AnthropicMessages, None).us_only);
}
