//! Pricing straight from what the providers put on the wire (JSON bodies and SSE events), against
//! figures computed by hand from the published per-1M prices: the usage extraction and the catalog
//! together must give the right micro-USD for each shape.

use iron_cost::{cost_micros, usage_from_bytes, ApiKind, Catalog, Provider, StreamUsage};

fn priced(provider: Provider, model: &str, kind_path: &str, body: &str) -> u64 {
    let kind = ApiKind::from_path(provider, kind_path);
    let price = Catalog::builtin()
        .price_for(provider, model)
        .unwrap_or_else(|| panic!("{model} is priced"));
    let usage = usage_from_bytes(kind, body.as_bytes()).expect("usage in body");
    cost_micros(price, provider, &usage)
}

#[test]
fn gpt_4o_chat_json_cached_tokens_are_inside_prompt_tokens() {
    // prompt 2006 of which 1920 cached: 86 × $2.50 + 1920 × $1.25 + 300 × $10 (per 1M)
    // = 215 + 2400 + 3000 = 5615 µ$. Pricing all 2006 at the input rate would give 8015.
    let body = r#"{"object":"chat.completion","choices":[],"usage":{"prompt_tokens":2006,
        "completion_tokens":300,"total_tokens":2306,"prompt_tokens_details":{"cached_tokens":1920}}}"#;
    assert_eq!(
        priced(
            Provider::OpenAi,
            "gpt-4o-2024-08-06",
            "/v1/chat/completions",
            body
        ),
        5_615
    );
}

#[test]
fn o3_reasoning_tokens_are_billed_once_inside_completion_tokens() {
    // 50 × $2 + 1200 × $8 = 100 + 9600 = 9700 µ$ (the 1024 reasoning tokens are part of the 1200).
    let body = r#"{"usage":{"prompt_tokens":50,"completion_tokens":1200,
        "completion_tokens_details":{"reasoning_tokens":1024}}}"#;
    assert_eq!(
        priced(
            Provider::OpenAi,
            "o3-2025-04-16",
            "/v1/chat/completions",
            body
        ),
        9_700
    );
    // The Responses API names them input/output: same price.
    let body = r#"{"object":"response","status":"completed","usage":{"input_tokens":50,
        "output_tokens":1200,"output_tokens_details":{"reasoning_tokens":1024}}}"#;
    assert_eq!(priced(Provider::OpenAi, "o3", "/v1/responses", body), 9_700);
}

#[test]
fn claude_sonnet_4_5_json_input_tokens_exclude_cache_reads_and_writes() {
    // 120 × $3 + 10000 × $0.30 + 1500 × $3.75 + 350 × $15 = 360 + 3000 + 5625 + 5250 = 14235 µ$
    let body = r#"{"type":"message","usage":{"input_tokens":120,"cache_read_input_tokens":10000,
        "cache_creation_input_tokens":1500,"cache_creation":{"ephemeral_5m_input_tokens":1500,
        "ephemeral_1h_input_tokens":0},"output_tokens":350}}"#;
    assert_eq!(
        priced(
            Provider::Anthropic,
            "claude-sonnet-4-5-20250929",
            "/v1/messages",
            body
        ),
        14_235
    );
}

#[test]
fn embedding_json_is_priced_on_prompt_tokens_and_rounded_up() {
    // 1234 × $0.02/M = 24.68 µ$ → 25
    let body = r#"{"object":"list","data":[],"usage":{"prompt_tokens":1234,"total_tokens":1234}}"#;
    assert_eq!(
        priced(
            Provider::OpenAi,
            "text-embedding-3-small",
            "/v1/embeddings",
            body
        ),
        25
    );
}

#[test]
fn anthropic_stream_prices_message_start_plus_the_last_message_delta() {
    let price = Catalog::builtin()
        .price_for(Provider::Anthropic, "claude-sonnet-4-5")
        .expect("priced");
    let mut s = StreamUsage::new();
    s.observe(Some("message_start"), r#"{"type":"message_start","message":{"usage":{"input_tokens":120,
        "cache_read_input_tokens":10000,"cache_creation_input_tokens":1500,
        "cache_creation":{"ephemeral_5m_input_tokens":1500,"ephemeral_1h_input_tokens":0},"output_tokens":1}}}"#);
    s.observe(
        Some("message_delta"),
        r#"{"type":"message_delta","usage":{"output_tokens":200}}"#,
    );
    s.observe(
        Some("message_delta"),
        r#"{"type":"message_delta","usage":{"output_tokens":350}}"#,
    );
    s.observe(Some("message_stop"), r#"{"type":"message_stop"}"#);
    let (usage, estimated) = s.finish(999);
    assert!(!estimated);
    // Same figures as the JSON case: 14235 µ$ (the cumulative 350 counts once, not 1 + 200 + 350).
    assert_eq!(cost_micros(price, Provider::Anthropic, &usage), 14_235);
}

#[test]
fn openai_stream_prices_the_usage_chunk() {
    let price = Catalog::builtin()
        .price_for(Provider::OpenAi, "gpt-4o")
        .expect("priced");
    let mut s = StreamUsage::new();
    s.observe(
        None,
        r#"{"choices":[{"index":0,"delta":{"content":"Hi"}}],"usage":null}"#,
    );
    s.observe(
        None,
        r#"{"choices":[],"usage":{"prompt_tokens":2006,"completion_tokens":300,
        "prompt_tokens_details":{"cached_tokens":1920}}}"#,
    );
    s.observe(None, "[DONE]");
    let (usage, estimated) = s.finish(5);
    assert!(!estimated);
    assert_eq!(cost_micros(price, Provider::OpenAi, &usage), 5_615);
}

#[test]
fn gpt_audio_chat_prices_audio_tokens_at_audio_rates() {
    // prompt 1000 of which 800 audio, completion 500 of which 400 audio (gpt-audio: text $2.50 in,
    // $10 out; audio $32 in, $64 out per 1M): 200 × 2.5 + 800 × 32 + 100 × 10 + 400 × 64
    // = 500 + 25600 + 1000 + 25600 = 52700 µ$. At text rates it would be 7500.
    let body = r#"{"object":"chat.completion","choices":[],"usage":{"prompt_tokens":1000,
        "completion_tokens":500,"total_tokens":1500,
        "prompt_tokens_details":{"cached_tokens":0,"audio_tokens":800},
        "completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":400}}}"#;
    assert_eq!(
        priced(
            Provider::OpenAi,
            "gpt-audio-2025-08-28",
            "/v1/chat/completions",
            body
        ),
        52_700
    );
    // Streamed, the same usage arrives in the last chunk.
    let price = Catalog::builtin()
        .price_for(Provider::OpenAi, "gpt-audio")
        .expect("priced");
    let mut s = StreamUsage::new();
    s.observe(
        None,
        r#"{"choices":[{"index":0,"delta":{"audio":{"transcript":"Hi"}}}],"usage":null}"#,
    );
    s.observe(
        None,
        r#"{"choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":500,
        "prompt_tokens_details":{"audio_tokens":800},"completion_tokens_details":{"audio_tokens":400}}}"#,
    );
    let (usage, estimated) = s.finish(5);
    assert!(!estimated);
    assert_eq!(cost_micros(price, Provider::OpenAi, &usage), 52_700);
}

#[test]
fn cached_audio_is_priced_at_the_cached_audio_rate() {
    // gpt-realtime-mini: text $0.60 in, $0.06 cached; audio $10 in, $0.30 cached (per 1M).
    // prompt 1000: 600 cached; 700 audio. Audio fills the 400 uncached first, 300 are cached:
    // 400 × 10 + 300 × 0.30 + 300 × 0.06 = 4000 + 90 + 18 = 4108 µ$.
    let body = r#"{"usage":{"prompt_tokens":1000,"completion_tokens":0,
        "prompt_tokens_details":{"cached_tokens":600,"audio_tokens":700}}}"#;
    assert_eq!(
        priced(
            Provider::OpenAi,
            "gpt-realtime-mini",
            "/v1/chat/completions",
            body
        ),
        4_108
    );
}

#[test]
fn openai_answers_are_priced_at_the_service_tier_they_report() {
    // gpt-5, 1000 in (200 cached) / 1000 out. Priority: 800 × 2.50 + 200 × 0.25 + 1000 × 20
    // = 2000 + 50 + 20000 = 22050 µ$; standard: 1000 + 25 + 10000 = 11025; flex: 500 + 12.5 + 5000
    // = 5512.5 → 5513.
    let usage = r#"{"prompt_tokens":1000,"completion_tokens":1000,"prompt_tokens_details":{"cached_tokens":200}}"#;
    for (tier, cost) in [
        ("priority", 22_050),
        ("default", 11_025),
        ("auto", 11_025),
        ("flex", 5_513),
    ] {
        let body = format!(
            r#"{{"object":"chat.completion","service_tier":"{tier}","choices":[],"usage":{usage}}}"#
        );
        assert_eq!(
            priced(Provider::OpenAi, "gpt-5", "/v1/chat/completions", &body),
            cost,
            "{tier}"
        );
    }
    // The Responses API reports it on the response object, streamed in the terminal event.
    let body = r#"{"object":"response","service_tier":"priority","usage":{"input_tokens":1000,
        "input_tokens_details":{"cached_tokens":200},"output_tokens":1000}}"#;
    assert_eq!(
        priced(Provider::OpenAi, "gpt-5", "/v1/responses", body),
        22_050
    );
    let price = Catalog::builtin()
        .price_for(Provider::OpenAi, "gpt-5")
        .expect("priced");
    let mut s = StreamUsage::new();
    s.observe(
        Some("response.completed"),
        r#"{"type":"response.completed","response":{"service_tier":"flex","usage":{"input_tokens":1000,
        "input_tokens_details":{"cached_tokens":200},"output_tokens":1000}}}"#,
    );
    assert_eq!(cost_micros(price, Provider::OpenAi, &s.finish(0).0), 5_513);
    // Chat streams carry it on every chunk, the usage chunk included.
    let mut s = StreamUsage::new();
    s.observe(
        None,
        r#"{"service_tier":"priority","choices":[{"index":0,"delta":{"content":"Hi"}}],"usage":null}"#,
    );
    s.observe(
        None,
        &format!(r#"{{"service_tier":"priority","choices":[],"usage":{usage}}}"#),
    );
    assert_eq!(cost_micros(price, Provider::OpenAi, &s.finish(0).0), 22_050);
}

#[test]
fn provider_run_web_searches_add_their_fee() {
    // claude-sonnet-4-5: 1000 × $3 + 500 × $15 = 3000 + 7500 µ$, plus 3 searches at $10 per 1,000
    // = 30000 µ$: 40500 µ$.
    let body = r#"{"type":"message","content":[],"usage":{"input_tokens":1000,"output_tokens":500,
        "server_tool_use":{"web_search_requests":3}}}"#;
    assert_eq!(
        priced(
            Provider::Anthropic,
            "claude-sonnet-4-5",
            "/v1/messages",
            body
        ),
        40_500
    );
    // Streamed: the (cumulative) count arrives with the usage of message_delta.
    let price = Catalog::builtin()
        .price_for(Provider::Anthropic, "claude-sonnet-4-5")
        .expect("priced");
    let mut s = StreamUsage::new();
    s.observe(
        Some("message_start"),
        r#"{"type":"message_start","message":{"usage":{"input_tokens":1000,"output_tokens":1}}}"#,
    );
    s.observe(
        Some("message_delta"),
        r#"{"type":"message_delta","usage":{"output_tokens":500,"server_tool_use":{"web_search_requests":3}}}"#,
    );
    assert_eq!(
        cost_micros(price, Provider::Anthropic, &s.finish(0).0),
        40_500
    );
    // OpenAI Responses: one fee per web_search_call output item. gpt-5: 1000 × $1.25 + 500 × $10
    // = 1250 + 5000 µ$, plus 2 × $0.01: 26250 µ$.
    let body = r#"{"object":"response","output":[
        {"type":"web_search_call","id":"ws_1","status":"completed","action":{"type":"search","query":"a"}},
        {"type":"web_search_call","id":"ws_2","status":"completed","action":{"type":"search","query":"b"}},
        {"type":"message","id":"msg_1","role":"assistant","content":[{"type":"output_text","text":"hi"}]}],
        "usage":{"input_tokens":1000,"output_tokens":500}}"#;
    assert_eq!(
        priced(Provider::OpenAi, "gpt-5", "/v1/responses", body),
        26_250
    );
    let gpt5 = Catalog::builtin()
        .price_for(Provider::OpenAi, "gpt-5")
        .expect("priced");
    let mut s = StreamUsage::new();
    s.observe(
        Some("response.completed"),
        &format!(r#"{{"type":"response.completed","response":{body}}}"#),
    );
    assert_eq!(cost_micros(gpt5, Provider::OpenAi, &s.finish(0).0), 26_250);
}
