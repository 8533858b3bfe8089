//! The whole per-call flow through the public API, as the proxy runs it.

use iron_cost::{
    cost_micros, usage_from_bytes, worst_case_micros, ApiKind, BudgetLedger, BudgetThreshold,
    Catalog, Provider, StreamUsage,
};
use serde_json::json;

#[test]
fn reserve_stream_settle_for_an_anthropic_call() {
    let kind = ApiKind::from_path(Provider::Anthropic, "/v1/messages");
    let price = Catalog::builtin()
        .price_for(Provider::Anthropic, "claude-haiku-4-5-20251001")
        .expect("priced");
    let body = json!({"model":"claude-haiku-4-5-20251001","max_tokens":1000,
        "messages":[{"role":"user","content":"Say hi"}]});
    // Input bound: 37 bytes of the messages' JSON text + 8 per message + 16 = 61 tokens at the 1h-write
    // rate $2/M = 122 µ$; output 1000 × $5/M = 5000 µ$.
    let hold = worst_case_micros(&body, kind, price).expect("held");
    assert_eq!(hold, 5_122);

    let ledger = BudgetLedger::new(Some(6_000));
    let reservation = ledger.reserve(hold).expect("fits");
    assert!(
        ledger.reserve(1_000).is_err(),
        "the in-flight hold blocks a second call"
    );

    let mut stream = StreamUsage::new();
    stream.observe(
        Some("message_start"),
        r#"{"type":"message_start","message":{"usage":{"input_tokens":12,"output_tokens":1}}}"#,
    );
    stream.observe(
        Some("content_block_delta"),
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi!"}}"#,
    );
    stream.observe(Some("message_delta"), r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":4}}"#);
    let (usage, estimated) = stream.finish(28);
    assert!(!estimated);
    // 12 × $1/M + 4 × $5/M = 12 + 20 µ$
    let cost = cost_micros(price, Provider::Anthropic, &usage);
    assert_eq!(cost, 32);
    assert!(reservation.commit(cost).is_empty());
    assert_eq!((ledger.status().spent, ledger.status().reserved), (32, 0));
}

#[test]
fn non_streaming_openai_call_settles_from_the_body() {
    let kind = ApiKind::from_path(Provider::OpenAi, "/v1/chat/completions");
    let price = Catalog::builtin()
        .price_for(Provider::OpenAi, "gpt-4o-mini")
        .expect("priced");
    let ledger = BudgetLedger::new(Some(1_000));
    let reservation = ledger.reserve(900).expect("fits");
    let response = br#"{"id":"chatcmpl-1","object":"chat.completion","choices":[],
        "usage":{"prompt_tokens":4000,"completion_tokens":1000,"prompt_tokens_details":{"cached_tokens":2000}}}"#;
    let usage = usage_from_bytes(kind, response).expect("usage");
    // 2000 × $0.15/M + 2000 × $0.075/M + 1000 × $0.60/M = 300 + 150 + 600 µ$
    let cost = cost_micros(price, Provider::OpenAi, &usage);
    assert_eq!(cost, 1_050);
    assert_eq!(
        reservation.commit(cost),
        vec![
            BudgetThreshold::Warning {
                spent: 1_050,
                limit: 1_000
            },
            BudgetThreshold::Exceeded {
                spent: 1_050,
                limit: 1_000
            }
        ]
    );
    assert!(ledger.reserve(1).is_err());
}
