//! 200 concurrent calls against a budget for about 20: the worst case is held atomically before
//! forwarding, so the admitted count is exactly what fits, the ledger never shows spent (or spent plus
//! reserved) above the limit at any sampled moment, and nothing stays reserved afterwards.

mod common;

use common::*;
use iron_runtime::{Router, RouterEvent};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const PROMPT: &str = "Count to three, please.";
const MAX_TOKENS: u64 = 100;
const N: usize = 200;
/// The router's bound on the body's input tokens: one per byte of the messages' JSON text
/// (`[{"role":"user","content":PROMPT}]` = 54) + 8 for the one message + 16 = 78.
const INPUT_BOUND: u64 = 78;
/// gpt-4o at $2.50 / $10 per 1M tokens: 78 × 2.50 + 100 × 10 = 195 + 1000 = 1195 µ$.
const EACH: u64 = 1195;
/// Room for 20.5 calls: exactly 20 fit.
const LIMIT: u64 = EACH * 41 / 2;

fn body(stream: bool) -> Value {
    json!({ "model": "gpt-4o", "max_tokens": MAX_TOKENS, "stream": stream,
            "messages": [{ "role": "user", "content": PROMPT }] })
}

/// OpenAI usage equal to the worst case held: the input bound and all of max_tokens.
fn usage() -> Value {
    json!({ "prompt_tokens": INPUT_BOUND, "completion_tokens": MAX_TOKENS,
            "total_tokens": INPUT_BOUND + MAX_TOKENS })
}

fn json_reply() -> Reply {
    Reply::Json {
        status: 200,
        body: json!({ "id": "chatcmpl-b", "object": "chat.completion", "model": "gpt-4o",
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": "one two three" }, "finish_reason": "stop" }],
            "usage": usage() })
        .to_string(),
    }
}

fn sse_reply() -> Reply {
    let chunk = |choices: Value, usage: Value| {
        format!(
            "data: {}\n\n",
            json!({ "id": "chatcmpl-b", "object": "chat.completion.chunk", "model": "gpt-4o",
                "choices": choices, "usage": usage })
        )
    };
    let delta =
        |text: &str| json!([{ "index": 0, "delta": { "content": text }, "finish_reason": null }]);
    Reply::Sse {
        events: vec![
            chunk(delta("one"), Value::Null),
            chunk(delta(" two"), Value::Null),
            chunk(delta(" three"), Value::Null),
            chunk(
                json!([{ "index": 0, "delta": {}, "finish_reason": "stop" }]),
                Value::Null,
            ),
            chunk(json!([]), usage()),
            "data: [DONE]\n\n".to_string(),
        ],
        gap: Duration::from_millis(3),
    }
}

/// The concatenated `delta.content` of an OpenAI chat stream (the router may re-split the pieces).
fn streamed_text(sse: &str) -> String {
    sse.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

/// Reads the ledger on its own thread until stopped; returns (violations, samples, max reserved).
fn sample(
    router: Arc<Router>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(Vec<String>, u64, u64)> {
    std::thread::spawn(move || {
        let mut violations = Vec::new();
        let (mut samples, mut max_reserved) = (0u64, 0u64);
        while !stop.load(Ordering::SeqCst) {
            let s = router.budget_status();
            samples += 1;
            max_reserved = max_reserved.max(s.reserved_micros);
            if s.spent_micros > LIMIT || s.spent_micros + s.reserved_micros > LIMIT {
                violations.push(format!(
                    "spent {} + reserved {} > {LIMIT}",
                    s.spent_micros, s.reserved_micros
                ));
            }
            std::thread::sleep(Duration::from_micros(300));
        }
        (violations, samples, max_reserved)
    })
}

async fn storm(reply: Reply, stream: bool) {
    let provider = FakeProvider::start(reply).await;
    let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
    let router = Arc::new(start_router(
        &ks,
        json!({ "budgetUsd": LIMIT as f64 / 1e6 }),
    ));
    assert_eq!(router.ready().await, Ok(iron_runtime::Provider::OpenAi));
    let mut events = router.events().subscribe();

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample(router.clone(), stop.clone());
    let mut tasks = Vec::new();
    for _ in 0..N {
        let router = router.clone();
        tasks.push(tokio::spawn(async move {
            let resp = post(&router, "/v1/chat/completions", &body(stream)).await;
            let status = resp.status().as_u16();
            let retry = resp
                .headers()
                .get("x-should-retry")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let text = resp.text().await.unwrap_or_default();
            (status, retry, text)
        }));
    }
    let mut admitted = 0u64;
    for t in tasks {
        let (status, retry, text) = t.await.expect("task");
        match status {
            200 => {
                admitted += 1;
                if stream {
                    assert_eq!(streamed_text(&text), "one two three", "{text}");
                    assert!(
                        !text.contains("prompt_tokens"),
                        "usage the client did not ask for leaked: {text}"
                    );
                }
            }
            402 => {
                let v: Value = serde_json::from_str(&text).expect("402 body is JSON");
                assert_eq!(v["error"]["code"], "budget_exceeded", "{text}");
                let msg = v["error"]["message"].as_str().unwrap_or("");
                assert!(
                    msg.contains("would be exceeded")
                        && msg.contains("reserved by requests in flight"),
                    "{msg}"
                );
                assert_eq!(retry, "false");
            }
            other => panic!("unexpected status {other}: {text}"),
        }
    }

    // Every admitted call settles with one response event at the worst-case cost.
    let mut settled = 0u64;
    while settled < admitted {
        let ev = events.recv().await.expect("event bus open");
        if let RouterEvent::Response {
            cost_micros,
            status,
            estimated,
            ..
        } = &**ev
        {
            assert_eq!((*status, *cost_micros, *estimated), (200, EACH, false));
            settled += 1;
        }
    }
    stop.store(true, Ordering::SeqCst);
    let (violations, samples, max_reserved) = sampler.join().expect("sampler");

    assert_eq!(violations, Vec::<String>::new());
    assert!(samples > 10, "only {samples} samples");
    assert!(max_reserved > 0, "no reservation was ever seen in flight");
    assert_eq!(admitted, 20, "exactly floor(limit / cost) calls fit");
    assert_eq!(provider.seen().len() as u64, admitted);
    let s = router.budget_status();
    assert_eq!(s.reserved_micros, 0);
    assert_eq!(s.spent_micros, admitted * EACH);
    assert!(s.spent_micros <= LIMIT);
    assert_eq!(router.total_spent_micros(), admitted * EACH);
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn json_calls_never_overshoot_the_budget() {
    bounded(60, storm(json_reply(), false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streamed_calls_never_overshoot_the_budget() {
    bounded(60, storm(sse_reply(), true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_calls_reach_nobody_and_raising_the_budget_lets_calls_pass() {
    bounded(20, async {
        let provider = FakeProvider::start(json_reply()).await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
        // Room for one call only.
        let router = start_router(&ks, json!({ "budgetUsd": (EACH + 500) as f64 / 1e6 }));
        let mut events = router.events().subscribe();
        let (code, _, text) = status_json(post(&router, "/v1/chat/completions", &body(false)).await).await;
        assert_eq!(code, 200, "{text}");
        while !matches!(&**events.recv().await.expect("event"), RouterEvent::Response { .. }) {}
        let (code, v, text) = status_json(post(&router, "/v1/chat/completions", &body(false)).await).await;
        assert_eq!(code, 402, "{text}");
        // $0.001695 limit, $0.001195 spent, $0.00 reserved, $0.0005 left, up to $0.001195.
        assert_eq!(
            v["error"]["message"],
            "Iron Cage budget $0.001695 would be exceeded: $0.001195 spent, $0.00 reserved by requests in flight, $0.0005 left, this request may cost up to $0.001195 (its whole output limit, and its input counted at one token per byte up to the model's context window); raise the budget (budgetUsd; --budget for iron-cage run) or lower max_tokens"
        );
        assert_eq!(provider.seen().len(), 1);

        router.set_budget_usd(Some(1.0)).expect("set budget");
        let (code, _, text) = status_json(post(&router, "/v1/chat/completions", &body(false)).await).await;
        assert_eq!(code, 200, "{text}");
        assert_eq!(provider.seen().len(), 2);
        router.stop().await;
    })
    .await;
}

/// Calls whose cost the router cannot hold are refused while a budget is set, and reach nobody:
/// endpoints it does not price (or odd spellings of priced ones), provider-run tools, background
/// responses. Free calls still pass, and `unmeteredCalls: 'allow'` forwards the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_the_budget_cannot_hold_are_refused_unless_allowed() {
    bounded(20, async {
        let provider = FakeProvider::start(json_reply()).await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
        let router = start_router(&ks, json!({ "budgetUsd": 10.0 }));
        let refused = [
            (
                "/v1/images/generations",
                json!({ "model": "gpt-image-1", "prompt": "a cat" }),
            ),
            (
                "/v1/batches",
                json!({ "input_file_id": "file-1", "endpoint": "/v1/chat/completions" }),
            ),
            ("/v1//chat/completions", body(false)),
            (
                "/v1/responses",
                json!({ "model": "gpt-4o", "input": "hi", "background": true }),
            ),
            (
                "/v1/responses",
                json!({ "model": "gpt-4o", "input": "hi", "tools": [{ "type": "web_search" }] }),
            ),
        ];
        for (path, b) in &refused {
            let (code, v, text) = status_json(post(&router, path, b).await).await;
            assert_eq!(code, 400, "{path}: {text}");
            assert_eq!(v["error"]["code"], "unmetered_call", "{text}");
            let message = v["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("unmeteredCalls: 'allow'"), "{message}");
        }
        assert_eq!(
            provider.seen().len(),
            0,
            "a refused call reached the provider"
        );
        // Free calls pass: reads and moderation.
        let resp = client()
            .get(format!("http://127.0.0.1:{}/v1/models", router.port()))
            .header("authorization", format!("Bearer {IC}"))
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.status().as_u16(), 200);
        let (code, _, text) =
            status_json(post(&router, "/v1/moderations", &json!({ "input": "hi" })).await).await;
        assert_eq!(code, 200, "{text}");
        assert_eq!(provider.seen().len(), 2);
        router.stop().await;

        let router = start_router(&ks, json!({ "budgetUsd": 10.0, "unmeteredCalls": "allow" }));
        for (path, b) in &refused {
            let (code, _, text) = status_json(post(&router, path, b).await).await;
            assert_eq!(code, 200, "{path}: {text}");
        }
        assert_eq!(provider.seen().len(), 2 + refused.len());
        router.stop().await;
    })
    .await;
}

/// A chat or Responses request without an output limit is sent with the one its hold assumed, so
/// the provider cannot answer past what was held; a request's own limit is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_an_output_limit_gets_the_one_that_was_held() {
    bounded(20, async {
        let provider = FakeProvider::start(json_reply()).await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
        let router = start_router(&ks, json!({ "budgetUsd": 10.0 }));
        let no_limit =
            json!({ "model": "gpt-4o", "messages": [{ "role": "user", "content": PROMPT }] });
        let (code, _, text) =
            status_json(post(&router, "/v1/chat/completions", &no_limit).await).await;
        assert_eq!(code, 200, "{text}");
        let (code, _, text) = status_json(
            post(
                &router,
                "/v1/responses",
                &json!({ "model": "gpt-4o", "input": "hi" }),
            )
            .await,
        )
        .await;
        assert_eq!(code, 200, "{text}");
        let (code, _, text) =
            status_json(post(&router, "/v1/chat/completions", &body(false)).await).await;
        assert_eq!(code, 200, "{text}");
        let sent: Vec<Value> = provider
            .seen()
            .iter()
            .map(|s| serde_json::from_slice(&s.body).expect("JSON forwarded"))
            .collect();
        // gpt-4o's largest answer in the catalog is 16,384 tokens.
        assert_eq!(sent[0]["max_completion_tokens"], 16_384);
        assert_eq!(sent[0]["messages"][0]["content"], PROMPT);
        assert_eq!(sent[1]["max_output_tokens"], 16_384);
        assert_eq!(sent[2]["max_tokens"], MAX_TOKENS);
        assert!(sent[2].get("max_completion_tokens").is_none());
        router.stop().await;

        // Without a budget nothing is held and the body goes as it came.
        let router = start_router(&ks, json!({}));
        let (code, _, _) =
            status_json(post(&router, "/v1/chat/completions", &no_limit).await).await;
        assert_eq!(code, 200);
        let last = provider.seen().pop().expect("forwarded");
        assert_eq!(last.body, no_limit.to_string().as_bytes());
        router.stop().await;
    })
    .await;
}

/// An explicit `null` limit (the SDKs' types allow it) is no limit: the hold assumed the model's
/// maximum, but the body went on with `null` and the provider answered past it (a review's
/// gpt-5-pro call held at $3.93 settled at $24 on a $10 budget). It is replaced by the limit the
/// hold assumed, as a missing one is; the other members keep their order and text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_null_output_limit_is_sent_as_the_one_that_was_held() {
    bounded(20, async {
        let provider = FakeProvider::start(json_reply()).await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
        let router = start_router(&ks, json!({ "budgetUsd": 10.0 }));
        let chat = r#"{"model":"gpt-4o","max_completion_tokens":null,"messages":[{"role":"user","content":"caf\u00e9 \u2713"}],"temperature":0.1,"seed":123456789012345678901234}"#;
        let legacy_name = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":null}"#;
        let responses = r#"{"model":"gpt-4o","input":"hi","max_output_tokens":null}"#;
        let auth = format!("Bearer {IC}");
        for (path, body) in [
            ("/v1/chat/completions", chat),
            ("/v1/chat/completions", legacy_name),
            ("/v1/responses", responses),
        ] {
            let resp =
                post_with(&router, path, body.to_string(), &[("authorization", &auth)]).await;
            assert_eq!(resp.status().as_u16(), 200, "{body}");
        }
        let seen = provider.seen();
        let sent: Vec<Value> = seen.iter().map(|s| s.json()).collect();
        assert_eq!(
            std::str::from_utf8(&seen[0].body).expect("utf-8"),
            // The other members as they came (escapes, and a number beyond 64 bits, included).
            r#"{"max_completion_tokens":16384,"model":"gpt-4o","messages":[{"role":"user","content":"caf\u00e9 \u2713"}],"temperature":0.1,"seed":123456789012345678901234}"#
        );
        assert_eq!(sent[1]["max_completion_tokens"], 16_384);
        assert!(sent[1].get("max_tokens").is_none(), "{}", sent[1]);
        assert_eq!(sent[2]["max_output_tokens"], 16_384);
        router.stop().await;
    })
    .await;
}

/// Input the request only refers to (a previous response) is held at the model's context window:
/// a small budget refuses the call instead of letting its hidden input overshoot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_held_elsewhere_is_held_at_the_context_window() {
    bounded(20, async {
        let provider = FakeProvider::start(json_reply()).await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
        // gpt-4o: 128,000 tokens × $2.50/M = $0.32 of input alone.
        let router = start_router(&ks, json!({ "budgetUsd": 0.30 }));
        let follow_up = json!({ "model": "gpt-4o", "input": "and then?", "previous_response_id": "resp_1", "max_output_tokens": 10 });
        let (code, v, text) = status_json(post(&router, "/v1/responses", &follow_up).await).await;
        assert_eq!(code, 402, "{text}");
        assert!(v["error"]["message"].as_str().unwrap_or_default().contains("$0.3201"), "{text}");
        let inline = json!({ "model": "gpt-4o", "input": "and then?", "max_output_tokens": 10 });
        let (code, _, text) = status_json(post(&router, "/v1/responses", &inline).await).await;
        assert_eq!(code, 200, "{text}");
        assert_eq!(provider.seen().len(), 1);
        router.stop().await;
    })
    .await;
}
