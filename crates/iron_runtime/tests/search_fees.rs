//! A provider-run web search, forwarded with `unmeteredCalls: 'allow'` while a budget is set, is
//! charged its per-search fee on top of its tokens. Chat completions search too: with
//! `web_search_options`, and on every call of a search model, whose usage does not count searches.

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

/// A chat answer of gpt-4o-mini-search-preview: 50 input tokens, 100 output, no search count.
fn search_answer() -> serde_json::Value {
    json!({ "id": "chatcmpl-s", "object": "chat.completion", "model": "gpt-4o-mini-search-preview-2025-03-11",
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": "Today ...",
            "annotations": [{ "type": "url_citation", "url_citation": { "url": "https://x", "title": "t", "start_index": 0, "end_index": 5 } }] },
            "finish_reason": "stop" }],
        "usage": { "prompt_tokens": 50, "completion_tokens": 100, "total_tokens": 150 } })
}

fn search_request(model: &str, options: bool) -> serde_json::Value {
    let mut b = json!({ "model": model, "max_completion_tokens": 200,
        "messages": [{ "role": "user", "content": "news today?" }] });
    if options {
        b["web_search_options"] = json!({ "search_context_size": "high" });
    }
    b
}

/// A review forwarded 20 chat searches on a $0.01 budget, each billed a fee the router never
/// saw: under a budget they are refused like other provider-run tools.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_web_search_is_refused_under_a_budget() {
    bounded(20, async {
        let provider = FakeProvider::json(search_answer()).await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
        let router = start_router(&ks, json!({ "budgetUsd": 1.0 }));
        for (body, cause) in [
            (
                search_request("gpt-4o-mini-search-preview", true),
                "web_search_options",
            ),
            (
                search_request("gpt-4o-search-preview", false),
                "gpt-4o-search-preview",
            ),
            (search_request("gpt-4o", true), "web_search_options"),
        ] {
            let (code, v, text) =
                status_json(post(&router, "/v1/chat/completions", &body).await).await;
            assert_eq!(code, 400, "{text}");
            assert_eq!(v["error"]["code"], "unmetered_call", "{text}");
            let message = v["error"]["message"].as_str().unwrap_or_default();
            assert!(
                message.contains(cause) && message.contains("unmeteredCalls: 'allow'"),
                "{message}"
            );
        }
        assert!(provider.seen().is_empty());
        router.stop().await;
    })
    .await;
}

/// Allowed, a search model's call is held and charged one search fee (the data's $10 per 1,000
/// for gpt-4o-mini-search-preview) on top of its tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_chat_search_is_held_and_charged_its_search_fee() {
    bounded(20, async {
        let provider = FakeProvider::json(search_answer()).await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
        let router = start_router(&ks, json!({ "budgetUsd": 1.0, "unmeteredCalls": "allow" }));
        let mut sub = router.events().subscribe();
        let body = search_request("gpt-4o-mini-search-preview", true);
        let (code, _, text) = status_json(post(&router, "/v1/chat/completions", &body).await).await;
        assert_eq!(code, 200, "{text}");
        // 50 × $0.15 + 100 × $0.60 (per 1M) = 67.5 µ$, plus one search at $10 per 1,000.
        let cost = loop {
            let ev = sub.recv().await.expect("event bus open");
            if let RouterEvent::Response { cost_micros, .. } = &**ev {
                break *cost_micros;
            }
        };
        assert_eq!(cost, 10_068);
        router.stop().await;
        // The hold covers the fee: on a $0.01 budget the call does not fit.
        let router = start_router(&ks, json!({ "budgetUsd": 0.01, "unmeteredCalls": "allow" }));
        let (code, v, text) = status_json(post(&router, "/v1/chat/completions", &body).await).await;
        assert_eq!(code, 402, "{text}");
        assert_eq!(v["error"]["code"], "budget_exceeded", "{text}");
        assert_eq!(provider.seen().len(), 1);
        router.stop().await;
    })
    .await;
}
