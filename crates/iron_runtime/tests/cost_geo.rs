//! Anthropic's US-only inference through the router: a call the answer says ran US-only
//! (`usage.inference_geo: "us"`) is charged 1.1× on Opus 4.6 and later, whichever way the router
//! read the answer (whole or streamed); a request that does not ask for `"global"` may run
//! US-only (a workspace default), so it is held at that rate.

mod common;

use common::sse_answers::sse;
use common::*;
use serde_json::{json, Value};

/// Claude Opus 4.6: $5 in, $25 out per 1M tokens. 1000 + 1000 tokens: 5,000 + 25,000 µ$.
fn answer(geo: &str, text: &str) -> Value {
    json!({ "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-opus-4-6",
        "content": [{ "type": "text", "text": text }], "stop_reason": "end_turn",
        "usage": { "input_tokens": 1000, "output_tokens": 1000, "inference_geo": geo } })
}

fn request(extra: Value) -> Value {
    merged(
        json!({ "model": "claude-opus-4-6", "max_tokens": 1000,
            "messages": [{ "role": "user", "content": "Count to three." }] }),
        extra,
    )
}

async fn send(router: &iron_runtime::Router, body: &Value) -> reqwest::Response {
    post_with(
        router,
        "/v1/messages",
        body.to_string(),
        &[("x-api-key", IC), ("anthropic-version", "2023-06-01")],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_answer_that_ran_us_only_is_charged_a_tenth_more() {
    bounded(30, async {
        // The response policy's own pass reads the usage (the default), the bytes are read for it
        // (policy off), or the parsed tree is (an answer the policy redacts).
        for options in [
            json!({ "budgetUsd": 10.0 }),
            json!({ "budgetUsd": 10.0,
                "safety": { "response": { "default": "off", "secret": "off" } } }),
            json!({ "budgetUsd": 10.0, "safety": { "response": { "default": "redact" } } }),
        ] {
            for (geo, cost) in [("us", 33_000), ("global", 30_000)] {
                let provider = FakeProvider::json(answer(geo, "mail jane.doe@example.com")).await;
                let ks = FakeKeyServer::with_key(ANTHROPIC_KEY, Some("anthropic"), &provider.url())
                    .await;
                let router = start_router(&ks, options.clone());
                let mut sub = router.events().subscribe();
                let (code, _, text) =
                    status_json(send(&router, &request(json!({ "inference_geo": geo }))).await)
                        .await;
                assert_eq!(code, 200, "{text}");
                assert_eq!(next_cost(&mut sub).await, cost, "{geo} {options}");
                router.stop().await;
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_answer_is_charged_at_the_geography_of_its_message_start() {
    bounded(20, async {
        let provider = FakeProvider::start(Reply::Sse {
            events: vec![
                sse(
                    Some("message_start"),
                    &json!({ "type": "message_start", "message": { "id": "msg_1", "type": "message",
                        "role": "assistant", "model": "claude-opus-4-6", "content": [],
                        "usage": { "input_tokens": 1000, "output_tokens": 1, "inference_geo": "us" } } }),
                ),
                sse(
                    Some("content_block_delta"),
                    &json!({ "type": "content_block_delta", "index": 0,
                        "delta": { "type": "text_delta", "text": "one two three" } }),
                ),
                sse(
                    Some("message_delta"),
                    &json!({ "type": "message_delta", "delta": { "stop_reason": "end_turn" },
                        "usage": { "output_tokens": 1000 } }),
                ),
                sse(Some("message_stop"), &json!({ "type": "message_stop" })),
            ],
            gap: std::time::Duration::from_millis(1),
        })
        .await;
        let ks = FakeKeyServer::with_key(ANTHROPIC_KEY, Some("anthropic"), &provider.url()).await;
        let router = start_router(&ks, json!({ "budgetUsd": 10.0 }));
        let mut sub = router.events().subscribe();
        let resp = send(&router, &request(json!({ "stream": true }))).await;
        assert_eq!(resp.status().as_u16(), 200);
        let _ = resp.text().await;
        assert_eq!(next_cost(&mut sub).await, 33_000);
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_may_run_us_only_is_held_at_that_rate() {
    bounded(20, async {
        let provider = FakeProvider::json(answer("global", "three")).await;
        let ks = FakeKeyServer::with_key(ANTHROPIC_KEY, Some("anthropic"), &provider.url()).await;
        let price = iron_cost::Catalog::builtin()
            .price("claude-opus-4-6")
            .expect("priced");
        let hold = |extra: Value| {
            iron_cost::worst_case_micros(
                &request(extra),
                iron_cost::ApiKind::AnthropicMessages,
                price,
            )
            .expect("held")
        };
        let global = hold(json!({ "inference_geo": "global" }));
        assert!(
            hold(json!({})) > global + 1_000,
            "the US-only rate raises the hold"
        );
        // A budget the standard hold fits in and the US-only one does not.
        let budget = (global + 500) as f64 / 1e6;
        for (extra, status) in [
            (json!({ "inference_geo": "global" }), 200),
            (json!({}), 402),
            (json!({ "inference_geo": "us" }), 402),
        ] {
            let router = start_router(&ks, json!({ "budgetUsd": budget }));
            let (code, v, text) = status_json(send(&router, &request(extra.clone())).await).await;
            assert_eq!(code, status, "{extra}: {text}");
            if status == 402 {
                assert_eq!(v["error"]["type"], "budget_exceeded", "{text}");
            }
            router.stop().await;
        }
        assert_eq!(provider.seen().len(), 1, "only the global call was sent");
    })
    .await;
}
