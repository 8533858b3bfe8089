//! What a call the provider answered is charged when its usage does not tell: a whole answer whose
//! usage is missing or unreadable (its hold, estimated, not $0), a reasoning stream cut short with
//! no budget (the hold it would have had, as with one), a model without a price (recorded at $0
//! but marked `unpriced`, and a warning names it), and usage that costs more than the call's hold
//! (recorded in full, with a warning that the bound was wrong).

mod common;

use common::*;
use iron_runtime::{Router, RouterEvent};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// gpt-4o, `max_tokens` 100 and this prompt: held at 78 input tokens (the bytes of the messages'
/// JSON + 8 + 16) × $2.50/M + 100 × $10/M = 1,195 µ$ (as in budget_concurrency.rs).
const HOLD: u64 = 1_195;

fn request() -> Value {
    json!({ "model": "gpt-4o", "max_tokens": 100,
        "messages": [{ "role": "user", "content": "Count to three, please." }] })
}

fn answer(usage: Option<Value>) -> String {
    answer_with(usage, "one two three")
}

/// An answer saying `text`; one of more than 256 KiB with the response policy off is relayed as it
/// arrives (its head, without the cost, goes first), and its usage read from a copy of its bytes.
fn answer_with(usage: Option<Value>, text: &str) -> String {
    let mut a = json!({ "id": "chatcmpl-u", "object": "chat.completion", "model": "gpt-4o",
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": text }, "finish_reason": "stop" }] });
    if let Some(u) = usage {
        a["usage"] = u;
    }
    a.to_string()
}

struct Settled {
    cost_micros: u64,
    estimated: bool,
    unpriced: bool,
    outcome: String,
}

async fn settled(sub: &mut iron_runtime::events::Subscription) -> Settled {
    loop {
        let ev = sub.recv().await.expect("event bus open");
        if let RouterEvent::Response {
            cost_micros,
            estimated,
            unpriced,
            outcome,
            ..
        } = &**ev
        {
            return Settled {
                cost_micros: *cost_micros,
                estimated: *estimated,
                unpriced: *unpriced,
                outcome: outcome.clone(),
            };
        }
    }
}

async fn router_to(provider: &FakeProvider, extra: Value) -> (FakeKeyServer, Router) {
    let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
    let router = start_router(&ks, extra);
    router.ready().await.expect("key fetched");
    (ks, router)
}

/// The newest ledger row, once the writer has it.
fn last_row(router: &Router) -> iron_runtime_state::RequestRow {
    let store = &router.shared().policies.ledger.store;
    store.flush().expect("flush");
    store.requests(1).expect("rows").remove(0)
}

/// The router's log lines from now on (at its default level, INFO).
fn log_lines(router: &Router) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    router
        .shared()
        .policies
        .logging
        .attach(Arc::new(move |line: &str| {
            sink.lock().expect("lines").push(line.to_string());
        }));
    lines
}

fn lines_with(lines: &Arc<Mutex<Vec<String>>>, words: &[&str]) -> Vec<String> {
    lines
        .lock()
        .expect("lines")
        .iter()
        .filter(|l| words.iter().all(|w| l.contains(w)))
        .cloned()
        .collect()
}

/// A review's 15 calls whose answers carried no readable usage were each recorded at $0, "exact",
/// with $1 of budget to spare: every later call was admitted too. The provider billed them, so
/// each is charged its hold (without a budget, the hold it would have had) and marked estimated,
/// whichever way the router read the answer (the response policy's own pass, the default, or the
/// copy of its bytes with the policy off), and the answer's header says what it was charged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_answer_without_readable_usage_is_charged_its_hold() {
    bounded(60, async {
        let usages = [
            None,
            Some(Value::Null),
            Some(json!({})),
            Some(json!({ "prompt_tokens": 100000.5, "completion_tokens": 50000.5 })),
            Some(json!({ "prompt_tokens": -100000, "completion_tokens": -5 })),
            Some(json!({ "prompt_tokens": "100000", "completion_tokens": "50000" })),
            Some(json!({ "total_tokens": 150000 })),
        ];
        let policy_off = json!({ "response": { "default": "off", "secret": "off" } });
        let long = "word ".repeat(60_000);
        for usage in usages {
            for (options, text) in [
                (json!({ "budgetUsd": 1.0 }), "one two three"),
                (
                    json!({ "budgetUsd": 1.0, "safety": policy_off }),
                    "one two three",
                ),
                (
                    json!({ "budgetUsd": 1.0, "safety": policy_off }),
                    long.as_str(),
                ),
                (json!({}), "one two three"),
                (json!({ "safety": policy_off }), long.as_str()),
            ] {
                let provider = FakeProvider::start(Reply::Json {
                    status: 200,
                    body: answer_with(usage.clone(), text),
                })
                .await;
                let (_ks, router) = router_to(&provider, options.clone()).await;
                let mut sub = router.events().subscribe();
                // One client for the call and after it: a client that closes its connection the
                // moment it has the last byte can be taken for one that left before the end.
                let keep = client();
                let resp = keep
                    .post(format!("{}/chat/completions", router.base_url()))
                    .bearer_auth(IC)
                    .header("content-type", "application/json")
                    .body(request().to_string())
                    .send()
                    .await
                    .expect("router answers");
                let case = format!("usage {usage:?}, options {options}, {} bytes", text.len());
                assert_eq!(resp.status().as_u16(), 200, "{case}");
                let header = resp
                    .headers()
                    .get("x-iron-cage-cost-usd")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let whole = text.len() < 1000;
                assert_eq!(header.as_deref(), whole.then_some("0.001195"), "{case}");
                let got = resp.bytes().await.map(|b| b.len());
                assert!(got.is_ok(), "{case}: {got:?}");
                let s = settled(&mut sub).await;
                assert_eq!(
                    (s.cost_micros, s.estimated, s.unpriced),
                    (HOLD, true, false),
                    "{case}"
                );
                // A long answer relayed as it arrives is complete too, though the client's
                // connection lets go of the body at its last byte (it read as `client_aborted`).
                assert_eq!(s.outcome, "complete", "{case}");
                let b = router.budget_status();
                assert_eq!((b.spent_micros, b.reserved_micros), (HOLD, 0), "{case}");
                let row = last_row(&router);
                assert_eq!(
                    (row.cost_micros, row.estimated, row.status),
                    (HOLD, true, 200),
                    "{case}"
                );
                router.stop().await;
            }
        }
    })
    .await;
}

/// `1e5` and `12.0` are whole numbers: counts, read exactly (they were read as absent, $0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_numbers_written_as_floats_are_read_as_counts() {
    bounded(20, async {
        let body = r#"{"id":"c","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1e5,"completion_tokens":50.0}}"#;
        let provider = FakeProvider::start(Reply::Json {
            status: 200,
            body: body.into(),
        })
        .await;
        let (_ks, router) = router_to(&provider, json!({})).await;
        let mut sub = router.events().subscribe();
        let resp = post(&router, "/v1/chat/completions", &request()).await;
        assert_eq!(resp.status().as_u16(), 200);
        let s = settled(&mut sub).await;
        // 100,000 × $2.50/M + 50 × $10/M.
        assert_eq!((s.cost_micros, s.estimated), (250_500, false));
        router.stop().await;
    })
    .await;
}

/// A reasoning model's stream cut before its usage: with a budget it is charged its hold (its
/// thinking is billed and never shown), without one it was charged only the text it showed. It
/// is charged the hold it would have had, as a whole answer cut short already was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_budget_a_cut_reasoning_stream_is_charged_the_hold_it_would_have_had() {
    bounded(20, async {
        let chunk = |text: &str| {
            format!(
                "data: {}\n\n",
                json!({ "id": "c", "object": "chat.completion.chunk", "model": "o3",
                "choices": [{ "index": 0, "delta": { "content": text }, "finish_reason": null }] })
            )
        };
        let provider = FakeProvider::start(Reply::Sse {
            events: vec![chunk(&"thinking done, here it is ".repeat(16))],
            gap: std::time::Duration::from_millis(1),
        })
        .await;
        let body = json!({ "model": "o3", "stream": true, "max_completion_tokens": 2000,
            "messages": [{ "role": "user", "content": "Prove it." }] });
        let mut charged = Vec::new();
        for options in [json!({ "budgetUsd": 10.0 }), json!({})] {
            let (_ks, router) = router_to(&provider, options).await;
            let mut sub = router.events().subscribe();
            let resp = post(&router, "/v1/chat/completions", &body).await;
            assert_eq!(resp.status().as_u16(), 200);
            let _ = resp.text().await;
            let s = settled(&mut sub).await;
            assert!(s.estimated);
            assert_eq!(router.budget_status().spent_micros, s.cost_micros);
            charged.push(s.cost_micros);
            router.stop().await;
        }
        // o3 at $8/M output: the 2,000 tokens allowed alone are 16,000 µ$; the text shown is
        // about 100 tokens.
        assert!(charged[0] > 16_000, "{charged:?}");
        assert_eq!(charged[0], charged[1], "with and without a budget");
    })
    .await;
}

/// An unknown model without a budget was recorded at exactly $0 and looked like a real $0: no
/// header, no event field, no log above DEBUG. The call says it is unpriced (event and ledger)
/// and a warning names the model and the fix, once per model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_without_a_price_is_marked_unpriced_and_named_in_one_warning() {
    bounded(20, async {
        let model = "ft:gpt-4.1-2025-04-14:org::unpriced-test";
        let provider = FakeProvider::start(Reply::Json {
            status: 200,
            body: answer(Some(
                json!({ "prompt_tokens": 1_000_000, "completion_tokens": 1_000_000 }),
            )),
        })
        .await;
        let (_ks, router) = router_to(&provider, json!({})).await;
        let lines = log_lines(&router);
        let mut sub = router.events().subscribe();
        let mut body = request();
        body["model"] = json!(model);
        for _ in 0..2 {
            let resp = post(&router, "/v1/chat/completions", &body).await;
            assert_eq!(resp.status().as_u16(), 200);
            assert!(!resp.headers().contains_key("x-iron-cage-cost-usd"));
            let s = settled(&mut sub).await;
            assert_eq!((s.cost_micros, s.estimated, s.unpriced), (0, false, true));
            let row = last_row(&router);
            assert_eq!(
                (row.model.as_str(), row.unpriced, row.cost_micros),
                (model, true, 0)
            );
        }
        let warned = lines_with(&lines, &["WARN", model, "pricing"]);
        assert_eq!(warned.len(), 1, "{:?}", lines.lock().expect("lines"));
        // A priced model is not unpriced.
        let resp = post(&router, "/v1/chat/completions", &request()).await;
        assert_eq!(resp.status().as_u16(), 200);
        let s = settled(&mut sub).await;
        assert!(!s.unpriced && s.cost_micros > 0);
        assert!(!last_row(&router).unpriced);
        router.stop().await;
    })
    .await;
}

/// Usage that costs more than the call's hold (9M output tokens on a call allowed 10): what the
/// provider reports is what was spent, so it is recorded in full, but the hold was meant to be a
/// bound the provider cannot bill past: a warning names the model, the hold and the cost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_above_the_hold_is_recorded_in_full_with_a_warning() {
    bounded(20, async {
        let provider = FakeProvider::start(Reply::Json {
            status: 200,
            body: answer(Some(
                json!({ "prompt_tokens": 5, "completion_tokens": 9_000_000 }),
            )),
        })
        .await;
        let (_ks, router) = router_to(&provider, json!({ "budgetUsd": 0.05 })).await;
        let lines = log_lines(&router);
        let mut sub = router.events().subscribe();
        let body = json!({ "model": "gpt-4o-mini", "max_completion_tokens": 10,
            "messages": [{ "role": "user", "content": "over-hold-test" }] });
        let resp = post(&router, "/v1/chat/completions", &body).await;
        assert_eq!(resp.status().as_u16(), 200);
        let s = settled(&mut sub).await;
        // 9,000,000 × $0.60/M, plus 5 input tokens.
        assert!(
            s.cost_micros >= 5_400_000 && !s.estimated,
            "{}",
            s.cost_micros
        );
        assert_eq!(router.budget_status().spent_micros, s.cost_micros);
        let warned = lines_with(&lines, &["WARN", "gpt-4o-mini", "hold_usd", "cost_usd=5.4"]);
        assert_eq!(warned.len(), 1, "{:?}", lines.lock().expect("lines"));
        router.stop().await;
    })
    .await;
}
