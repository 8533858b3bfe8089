//! A provider-run web search, forwarded with `unmeteredCalls: 'allow'` while a budget is set, is
//! charged its per-search fee on top of its tokens.

mod common;

use common::*;
use iron_runtime::RouterEvent;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_web_search_is_charged_its_fee() {
    bounded(20, async {
        let provider = FakeProvider::json(json!({ "id": "msg_1", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5-20250929", "content": [{ "type": "text", "text": "It is sunny." }],
            "stop_reason": "end_turn",
            "usage": { "input_tokens": 1000, "output_tokens": 500,
                       "server_tool_use": { "web_search_requests": 2 } } }))
        .await;
        let ks = FakeKeyServer::with_key(ANTHROPIC_KEY, Some("anthropic"), &provider.url()).await;
        let router = start_router(&ks, json!({ "budgetUsd": 1.0, "unmeteredCalls": "allow" }));
        let mut sub = router.events().subscribe();
        let body = json!({ "model": "claude-sonnet-4-5", "max_tokens": 1000,
            "tools": [{ "type": "web_search_20250305", "name": "web_search", "max_uses": 2 }],
            "messages": [{ "role": "user", "content": "Weather in Paris?" }] });
        let (code, _, text) = status_json(
            post_with(
                &router,
                "/v1/messages",
                body.to_string(),
                &[("x-api-key", IC), ("anthropic-version", "2023-06-01")],
            )
            .await,
        )
        .await;
        assert_eq!(code, 200, "{text}");
        // 1000 × $3 + 500 × $15 (per 1M) = 10500 µ$, plus 2 searches at $10 per 1,000 = 20000 µ$.
        let cost = loop {
            let ev = sub.recv().await.expect("event bus open");
            if let RouterEvent::Response { cost_micros, .. } = &**ev {
                break *cost_micros;
            }
        };
        assert_eq!(cost, 30_500);
        router.stop().await;
    })
    .await;
}
