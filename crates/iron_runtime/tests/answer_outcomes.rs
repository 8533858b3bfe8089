//! How a call that the provider answered, but that did not end well for the client, is reported and
//! priced: an answer that is not JSON (the response PII policy cannot read it: refused, priced at
//! its hold), an answer the response policy blocks (the client's 400 in the event and the ledger,
//! priced from its usage), a stream ending with the provider's error event or a call answered
//! with an error status (outcome `upstream_error`, not `complete`), a `count_tokens`
//! body (it goes to the provider too and is checked like a Messages body), and, with the answer
//! checks off, an answer that is not JSON (passed on, priced at its hold instead of $0).

mod common;

use common::*;
use iron_runtime::{Router, RouterEvent};
use serde_json::json;

async fn response_event(sub: &mut iron_runtime::events::Subscription) -> RouterEvent {
    loop {
        let ev = sub.recv().await.expect("event bus open");
        if let RouterEvent::Response { .. } = &**ev {
            return (*ev).clone();
        }
    }
}

async fn router_to(provider: &FakeProvider, extra: serde_json::Value) -> (FakeKeyServer, Router) {
    let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
    let router = start_router(&ks, extra);
    router.ready().await.expect("key fetched");
    (ks, router)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_is_not_json_is_refused_and_priced_at_its_hold() {
    bounded(20, async {
        // Half an answer: the text holds an address and an AWS key.
        let whole = json!({ "id": "c", "object": "chat.completion", "model": "gpt-4o-mini",
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": "write to maria.keller@example.com, key AKIAIOSFODNN7EXAMPLE" }, "finish_reason": "stop" }],
            "usage": { "prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30 } })
        .to_string();
        let half = whole[..whole.len() / 2 + 40].to_string();
        assert!(half.contains("maria.keller@example.com"));
        let provider = FakeProvider::start(Reply::Json { status: 200, body: half }).await;
        let (_ks, router) = router_to(&provider, json!({ "budgetUsd": 1.0, "safety": { "response": { "default": "redact" } } })).await;
        let mut sub = router.events().subscribe();
        let (status, json, text) = status_json(post(&router, "/v1/chat/completions", &chat_body("gpt-4o-mini")).await).await;
        assert_eq!(status, 502, "{text}");
        assert!(!text.contains("maria.keller") && !text.contains("AKIA"), "{text}");
        assert!(json["error"]["message"].as_str().unwrap_or("").contains("not valid JSON"), "{text}");
        let RouterEvent::Response { status, outcome, estimated, cost_micros, .. } = response_event(&mut sub).await else {
            unreachable!()
        };
        assert_eq!((status, outcome.as_str(), estimated), (502, "upstream_error", true));
        // The provider billed it and its usage is unreadable: the hold is charged, not $0.
        assert!(cost_micros > 0);
        let b = router.budget_status();
        assert_eq!((b.reserved_micros, b.spent_micros), (0, cost_micros));
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_blocked_by_the_response_policy_reports_the_clients_400_and_is_priced() {
    bounded(20, async {
        let answer = json!({ "id": "c", "object": "chat.completion", "model": "gpt-4o-mini",
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": "card 4111 1111 1111 1111" }, "finish_reason": "stop" }],
            "usage": { "prompt_tokens": 1000, "completion_tokens": 1000, "total_tokens": 2000 } });
        let provider = FakeProvider::json(answer).await;
        let (_ks, router) = router_to(&provider, json!({ "budgetUsd": 1.0, "safety": { "response": { "creditCard": "block" } } })).await;
        let mut sub = router.events().subscribe();
        let (status, _, text) = status_json(post(&router, "/v1/chat/completions", &chat_body("gpt-4o-mini")).await).await;
        assert_eq!(status, 400, "{text}");
        assert!(!text.contains("4111"), "{text}");
        let RouterEvent::Response { status, outcome, estimated, cost_micros, .. } = response_event(&mut sub).await else {
            unreachable!()
        };
        assert_eq!((status, outcome.as_str(), estimated), (400, "blocked", false));
        // 1000 + 1000 tokens of gpt-4o-mini at $0.15 / $0.60 per 1M.
        assert_eq!(cost_micros, 750);
        assert_eq!(router.budget_status().spent_micros, 750);
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_ends_with_the_providers_error_event_is_not_complete() {
    bounded(20, async {
        let chunk = |text: &str| {
            format!("data: {}\n\n", json!({ "id": "c", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
                "choices": [{ "index": 0, "delta": { "content": text }, "finish_reason": null }] }))
        };
        let events = vec![
            chunk("Hello"),
            chunk(" there"),
            format!("data: {}\n\n", json!({ "error": { "message": "The server had an error while processing your request.", "type": "server_error" } })),
        ];
        let provider = FakeProvider::start(Reply::Sse { events, gap: std::time::Duration::from_millis(1) }).await;
        let (_ks, router) = router_to(&provider, json!({})).await;
        let mut sub = router.events().subscribe();
        let mut body = chat_body("gpt-4o-mini");
        body["stream"] = json!(true);
        let resp = post(&router, "/v1/chat/completions", &body).await;
        assert_eq!(resp.status().as_u16(), 200);
        let text = resp.text().await.expect("stream");
        assert!(text.contains("server had an error"), "{text}");
        let RouterEvent::Response { outcome, .. } = response_event(&mut sub).await else { unreachable!() };
        assert_eq!(outcome, "upstream_error");
        assert_eq!(router.shared().stats.snapshot().completed, 0);
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_status_from_the_provider_is_an_upstream_error_not_complete() {
    bounded(20, async {
        let body = json!({ "error": { "message": "Invalid value for 'temperature'", "type": "invalid_request_error" } }).to_string();
        let provider = FakeProvider::start(Reply::Json { status: 400, body }).await;
        let (_ks, router) = router_to(&provider, json!({})).await;
        let mut sub = router.events().subscribe();
        let resp = post(&router, "/v1/chat/completions", &chat_body("gpt-4o-mini")).await;
        assert_eq!(resp.status().as_u16(), 400);
        let RouterEvent::Response { status, outcome, .. } = response_event(&mut sub).await else { unreachable!() };
        assert_eq!((status, outcome.as_str()), (400, "upstream_error"));
        assert_eq!(router.shared().stats.snapshot().failed, 1);
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_count_tokens_body_is_checked_like_a_messages_body() {
    bounded(20, async {
        let provider = FakeProvider::json(json!({ "input_tokens": 12 })).await;
        let ks = FakeKeyServer::with_key(
            "sk-ant-api03-count-tokens-test",
            Some("anthropic"),
            &provider.url(),
        )
        .await;
        let router = start_router(&ks, json!({}));
        router.ready().await.expect("key fetched");
        let url = format!("{}/v1/messages/count_tokens", router.anthropic_base_url());
        let send = |content: &str| {
            client()
                .post(&url)
                .header("x-api-key", IC)
                .header("anthropic-version", "2023-06-01")
                .header("content-type", "application/json")
                .body(
                    json!({ "model": "claude-3-5-haiku-20241022", "system": "be brief",
                        "messages": [{ "role": "user", "content": content }] })
                    .to_string(),
                )
                .send()
        };
        // Secrets are blocked in prompts by default: count_tokens sends the prompt to the provider too.
        let (status, _, text) =
            status_json(send("my key is AKIAIOSFODNN7EXAMPLE").await.expect("send")).await;
        assert_eq!(status, 400, "{text}");
        assert!(
            text.contains("pii_detected") && !text.contains("AKIAIOSFODNN7EXAMPLE"),
            "{text}"
        );
        assert!(
            provider.seen().is_empty(),
            "the secret reached the provider"
        );
        let (status, json, text) = status_json(send("hello").await.expect("send")).await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(json["input_tokens"], 12);
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_answer_checks_off_an_answer_that_is_not_json_passes_but_is_priced_at_its_hold() {
    bounded(20, async {
        let provider = FakeProvider::start(Reply::Json {
            status: 200,
            body: r#"{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assis"#.into(),
        })
        .await;
        let off = json!({ "default": "off", "secret": "off" });
        let (_ks, router) = router_to(&provider, json!({ "budgetUsd": 1.0, "safety": { "response": off } })).await;
        let mut sub = router.events().subscribe();
        let resp = post(&router, "/v1/chat/completions", &chat_body("gpt-4o-mini")).await;
        assert_eq!(resp.status().as_u16(), 200);
        assert!(resp.text().await.expect("body").ends_with("\"assis"));
        let RouterEvent::Response { estimated, cost_micros, .. } = response_event(&mut sub).await else {
            unreachable!()
        };
        // Its usage cannot be read, and the provider billed it: not $0.
        assert!(estimated && cost_micros > 0, "estimated {estimated}, cost {cost_micros}");
        assert_eq!(router.budget_status().spent_micros, cost_micros);
        // A whole JSON answer that reports no usage was billed all the same: charged the same hold
        // (see settle_charges.rs), not recorded as an exact $0.
        let provider2 = FakeProvider::json(json!({ "id": "c", "object": "chat.completion", "choices": [] })).await;
        let (_ks2, router2) = router_to(&provider2, json!({ "budgetUsd": 1.0, "safety": { "response": off } })).await;
        let mut sub2 = router2.events().subscribe();
        let resp = post(&router2, "/v1/chat/completions", &chat_body("gpt-4o-mini")).await;
        assert_eq!(resp.status().as_u16(), 200);
        let RouterEvent::Response { estimated, cost_micros: no_usage, .. } = response_event(&mut sub2).await else {
            unreachable!()
        };
        assert_eq!((estimated, no_usage), (true, cost_micros));
        router.stop().await;
        router2.stop().await;
    })
    .await;
}
