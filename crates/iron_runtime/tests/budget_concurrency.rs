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
/// Input tokens the router estimates for the body: "user" + PROMPT's letters and spaces = 25
/// characters → ⌈25 / 3⌉ = 9, + 2 for "," and ".", + 8 for the one message + 16 = 35.
const EST_INPUT: u64 = 35;
/// gpt-4o at $2.50 / $10 per 1M tokens: 35 × 2.50 + 100 × 10 = 87.5 + 1000 = 1087.5 µ$, rounded up.
const EACH: u64 = 1088;
/// Room for 20.5 calls: exactly 20 fit.
const LIMIT: u64 = EACH * 41 / 2;

fn body(stream: bool) -> Value {
    json!({ "model": "gpt-4o", "max_tokens": MAX_TOKENS, "stream": stream,
            "messages": [{ "role": "user", "content": PROMPT }] })
}

/// OpenAI usage equal to the worst case held: the estimated input and all of max_tokens.
fn usage() -> Value {
    json!({ "prompt_tokens": EST_INPUT, "completion_tokens": MAX_TOKENS,
            "total_tokens": EST_INPUT + MAX_TOKENS })
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
        // $0.001588 limit, $0.001088 spent, $0.00 reserved, $0.0005 left, up to $0.001088.
        assert_eq!(
            v["error"]["message"],
            "Iron Cage budget $0.001588 would be exceeded: $0.001088 spent, $0.00 reserved by requests in flight, $0.0005 left, this request may cost up to $0.001088; raise budgetUsd or lower max_tokens"
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
