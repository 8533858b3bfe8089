//! OpenAI service tiers through the router: an answer is charged at the rates of the tier it says it
//! ran at (whichever way the router read it), a request asking for priority is held at priority
//! rates, and one asking for a tier the price data has no rates for is refused like other calls the
//! budget cannot hold.

mod common;

use common::*;
use iron_runtime::RouterEvent;
use serde_json::{json, Value};

/// gpt-5: standard $1.25 in / $10 out, priority $2.50 / $20, flex $0.625 / $5 (per 1M tokens).
fn answer(tier: &str) -> Value {
    json!({ "id": "chatcmpl-t", "object": "chat.completion", "model": "gpt-5-2025-08-07",
        "service_tier": tier,
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": "one two three" }, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": 1000, "completion_tokens": 1000, "total_tokens": 2000 } })
}

fn request(extra: Value) -> Value {
    merged(
        json!({ "model": "gpt-5", "max_completion_tokens": 1000,
            "messages": [{ "role": "user", "content": "Count to three." }] }),
        extra,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_is_charged_at_the_rates_of_the_tier_it_ran_at() {
    bounded(20, async {
        // 1000 × in + 1000 × out: priority 2500 + 20000, standard 1250 + 10000, flex 625 + 5000.
        let cases = [("priority", 22_500), ("default", 11_250), ("flex", 5_625)];
        // The response policy's own pass reads the usage (the default), the answer's bytes are
        // read for it (policy off), or the parsed tree is (an answer the policy redacts): each must
        // see the tier beside the usage.
        for options in [
            json!({ "budgetUsd": 10.0 }),
            json!({ "budgetUsd": 10.0,
                "safety": { "response": { "default": "off", "secret": "off" } } }),
            json!({ "budgetUsd": 10.0, "safety": { "response": { "default": "redact" } },
                "answer": "mail jane.doe@example.com" }),
        ] {
            for (tier, cost) in cases {
                let mut reply = answer(tier);
                let mut options = options.clone();
                if let Some(text) = options.as_object_mut().and_then(|o| o.remove("answer")) {
                    reply["choices"][0]["message"]["content"] = text;
                }
                let provider = FakeProvider::json(reply).await;
                let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
                let router = start_router(&ks, options.clone());
                let mut sub = router.events().subscribe();
                let (code, _, text) =
                    status_json(post(&router, "/v1/chat/completions", &request(json!({}))).await)
                        .await;
                assert_eq!(code, 200, "{text}");
                assert!(!text.contains("jane.doe"), "{text}");
                assert_eq!(next_cost(&mut sub).await, cost, "{tier} {options}");
                router.stop().await;
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_answer_is_charged_at_the_tier_its_chunks_report() {
    bounded(20, async {
        let chunk = |choices: Value, usage: Value| {
            format!(
                "data: {}\n\n",
                json!({ "id": "chatcmpl-t", "object": "chat.completion.chunk", "model": "gpt-5",
                    "service_tier": "priority", "choices": choices, "usage": usage })
            )
        };
        let provider = FakeProvider::start(Reply::Sse {
            events: vec![
                chunk(
                    json!([{ "index": 0, "delta": { "content": "one" }, "finish_reason": null }]),
                    Value::Null,
                ),
                chunk(
                    json!([]),
                    json!({ "prompt_tokens": 1000, "completion_tokens": 1000, "total_tokens": 2000 }),
                ),
                "data: [DONE]\n\n".to_string(),
            ],
            gap: std::time::Duration::from_millis(1),
        })
        .await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
        let router = start_router(&ks, json!({ "budgetUsd": 10.0 }));
        let mut sub = router.events().subscribe();
        let resp = post(&router, "/v1/chat/completions", &request(json!({ "stream": true }))).await;
        assert_eq!(resp.status().as_u16(), 200);
        let _ = resp.text().await;
        assert_eq!(next_cost(&mut sub).await, 22_500);
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_priority_request_is_held_at_priority_rates() {
    bounded(20, async {
        let provider = FakeProvider::json(answer("default")).await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
        // Input bound 70 tokens (46 bytes of the messages' JSON text + 8 + 16), output 1000:
        // standard 70 × 1.25 + 1000 × 10 = 10,088 µ$ fits in $0.015; priority 70 × 2.5 + 1000 × 20
        // = 20,175 µ$ does not.
        // `auto` (the project's default tier, standard unless its owner changed it), `default`
        // and `flex` are held at standard rates.
        // `fast` is priority's newer name (OpenAI accepts both).
        for (tier, status) in [
            ("priority", 402),
            ("fast", 402),
            ("auto", 200),
            ("default", 200),
            ("flex", 200),
        ] {
            let router = start_router(&ks, json!({ "budgetUsd": 0.015 }));
            let (code, v, text) = status_json(
                post(
                    &router,
                    "/v1/chat/completions",
                    &request(json!({ "service_tier": tier })),
                )
                .await,
            )
            .await;
            assert_eq!(code, status, "{tier}: {text}");
            if status == 402 {
                assert_eq!(v["error"]["code"], "budget_exceeded", "{text}");
                assert_eq!(provider.seen().len(), 0);
            }
            router.stop().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tier_without_rates_cannot_be_held_unless_allowed() {
    bounded(20, async {
        let provider = FakeProvider::json(answer("priority")).await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
        // gpt-5-nano has flex rates in the data, no priority rates.
        let nano = json!({ "model": "gpt-5-nano", "service_tier": "priority", "max_completion_tokens": 100,
            "messages": [{ "role": "user", "content": "hi" }] });
        let router = start_router(&ks, json!({ "budgetUsd": 1.0 }));
        let (code, v, text) = status_json(post(&router, "/v1/chat/completions", &nano).await).await;
        assert_eq!(code, 400, "{text}");
        assert_eq!(v["error"]["code"], "unmetered_call", "{text}");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("service_tier 'priority'"), "{message}");
        assert_eq!(provider.seen().len(), 0);
        router.stop().await;
        let router = start_router(&ks, json!({ "budgetUsd": 1.0, "unmeteredCalls": "allow" }));
        let (code, _, text) = status_json(post(&router, "/v1/chat/completions", &nano).await).await;
        assert_eq!(code, 200, "{text}");
        router.stop().await;
        // Without a budget nothing is held, so nothing is refused.
        let router = start_router(&ks, json!({}));
        let (code, _, text) = status_json(post(&router, "/v1/chat/completions", &nano).await).await;
        assert_eq!(code, 200, "{text}");
        router.stop().await;
        // Ultrafast has no rates in the data and costs more than priority: allowed, it is held at
        // the priority rates (as its answer is charged), so a budget that fits the standard hold
        // (10,088 µ$) but not the priority one (20,175 µ$) refuses it.
        let router = start_router(&ks, json!({ "budgetUsd": 0.015, "unmeteredCalls": "allow" }));
        let (code, v, text) = status_json(
            post(
                &router,
                "/v1/chat/completions",
                &request(json!({ "service_tier": "ultrafast" })),
            )
            .await,
        )
        .await;
        assert_eq!(code, 402, "{text}");
        assert_eq!(v["error"]["code"], "budget_exceeded", "{text}");
        router.stop().await;
    })
    .await;
}

/// Every answer names its call (`x-iron-cage-request-id`, the id of its events and ledger row); a
/// whole answer also carries its cost (`x-iron-cage-cost-usd`), so an agent in any language can
/// read what the call cost without a listener. A stream's cost is known only at its end: events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_answers_carry_their_cost_and_every_answer_its_request_id() {
    bounded(20, async {
        let provider = FakeProvider::json(answer("priority")).await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
        let router = start_router(&ks, json!({ "budgetUsd": 10.0 }));
        let mut sub = router.events().subscribe();
        let resp = post(&router, "/v1/chat/completions", &request(json!({}))).await;
        assert_eq!(resp.status().as_u16(), 200);
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        assert_eq!(header("x-iron-cage-cost-usd").as_deref(), Some("0.022500"));
        let id = header("x-iron-cage-request-id").expect("request id");
        let ev = loop {
            let ev = sub.recv().await.expect("events");
            if let RouterEvent::Response {
                request_id,
                cost_micros,
                ..
            } = &**ev
            {
                break (*request_id, *cost_micros);
            }
        };
        assert_eq!((id, 22_500), (ev.0.to_string(), ev.1));
        router.stop().await;

        let provider = FakeProvider::start(Reply::Sse {
            events: vec!["data: [DONE]\n\n".to_string()],
            gap: std::time::Duration::from_millis(1),
        })
        .await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
        let router = start_router(&ks, json!({}));
        let resp = post(
            &router,
            "/v1/chat/completions",
            &request(json!({ "stream": true })),
        )
        .await;
        assert!(resp.headers().contains_key("x-iron-cage-request-id"));
        assert!(!resp.headers().contains_key("x-iron-cage-cost-usd"));
        router.stop().await;

        // An answer the response policy blocks is still this call (billed, with events).
        let mut reply = answer("default");
        reply["choices"][0]["message"]["content"] = json!("mail jane.doe@example.com");
        let provider = FakeProvider::json(reply).await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
        let router = start_router(
            &ks,
            json!({ "safety": { "response": { "email": "block" } } }),
        );
        let resp = post(&router, "/v1/chat/completions", &request(json!({}))).await;
        assert_eq!(resp.status().as_u16(), 400);
        assert!(resp.headers().contains_key("x-iron-cage-request-id"));
        router.stop().await;

        // A refusal by the router names its `blocked` event too.
        let router = start_router(&ks, json!({ "budgetUsd": 0.000001 }));
        let mut sub = router.events().subscribe();
        let resp = post(&router, "/v1/chat/completions", &request(json!({}))).await;
        assert_eq!(resp.status().as_u16(), 402);
        let id = resp
            .headers()
            .get("x-iron-cage-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let blocked = loop {
            let ev = sub.recv().await.expect("events");
            if let RouterEvent::Blocked { request_id, .. } = &**ev {
                break request_id.to_string();
            }
        };
        assert_eq!(id, Some(blocked));
        router.stop().await;
    })
    .await;
}

/// A request that names no tier (or `auto`) runs at the OpenAI project's default tier: on a
/// project whose default is priority (`openaiProjectServiceTier: 'priority'`) it is held at
/// priority rates; one that asks for `default` is still held at standard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_whose_default_tier_is_priority_holds_untiered_calls_at_priority() {
    bounded(20, async {
        let provider = FakeProvider::json(answer("priority")).await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
        // Standard hold 10,088 µ$ fits in $0.015, priority 20,175 µ$ does not (see above).
        let router = start_router(
            &ks,
            json!({ "budgetUsd": 0.015, "openaiProjectServiceTier": "priority" }),
        );
        for (extra, status) in [
            (json!({}), 402),
            (json!({ "service_tier": "auto" }), 402),
            (json!({ "service_tier": "default" }), 200),
        ] {
            let (code, _, text) =
                status_json(post(&router, "/v1/chat/completions", &request(extra.clone())).await)
                    .await;
            assert_eq!(code, status, "{extra}: {text}");
        }
        router.stop().await;
        let opts = json!({ "providerKey": "sk-test-1234567890abcdef",
            "providerBaseUrl": provider.url(), "openaiProjectServiceTier": "flex" });
        let err = match iron_runtime::Router::start_json(&opts.to_string()) {
            Ok(_) => panic!("flex accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("openaiProjectServiceTier"), "{err}");
    })
    .await;
}
