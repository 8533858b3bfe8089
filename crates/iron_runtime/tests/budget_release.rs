//! Every way a call can end gives its budget hold back: a client that hangs up mid-stream, an upstream
//! error status, an upstream that breaks mid-stream or mid-body, an unreachable upstream. Cut-short
//! answers are charged an estimate marked `estimated`; error statuses cost nothing.

mod common;

use common::*;
use iron_runtime::{Router, RouterEvent};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const PROMPT: &str = "Count to three, please.";
/// gpt-4o, max_tokens 500, input bound 78 tokens (54 bytes of the messages' JSON text + 8 per
/// message + 16): 78 × $2.50/M + 500 × $10/M = 195 + 5000 = 5195 µ$.
const HOLD: u64 = 5195;
/// The input part of an estimate for this body (35 tokens, the best guess, not the bound):
/// 35 × $2.50/M = 87.5 µ$.
const INPUT_PART: u64 = 87;

fn body(stream: bool) -> Value {
    json!({ "model": "gpt-4o", "max_tokens": 500, "stream": stream,
            "messages": [{ "role": "user", "content": PROMPT }] })
}

/// The `response` event of the next settled call.
async fn next_response(
    events: &mut iron_runtime::events::Subscription,
) -> (u16, u64, bool, String) {
    loop {
        let ev = events.recv().await.expect("event bus open");
        if let RouterEvent::Response {
            status,
            cost_micros,
            estimated,
            outcome,
            ..
        } = &**ev
        {
            return (*status, *cost_micros, *estimated, outcome.clone());
        }
    }
}

/// The concatenated `delta.content` of an OpenAI chat stream.
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

fn chunk(text: &str) -> String {
    format!(
        "data: {}\n\n",
        json!({ "id": "c", "object": "chat.completion.chunk", "model": "gpt-4o",
                "choices": [{ "index": 0, "delta": { "content": text }, "finish_reason": null }] })
    )
}

async fn router_on(provider_url: &str) -> (FakeKeyServer, Router) {
    let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), provider_url).await;
    // One attempt per call and no breaker: each failure below reaches settle exactly once.
    let router = start_router(
        &ks,
        json!({ "budgetUsd": 1.0,
                "reliability": { "retry": { "maxRetries": 0 }, "breaker": { "enabled": false } } }),
    );
    router.ready().await.expect("key fetched");
    (ks, router)
}

/// An upstream that answers every request with `head` and `parts` (written with a pause between them),
/// then closes the connection without finishing the answer.
async fn breaking_upstream(
    head: &'static str,
    parts: Vec<String>,
) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let parts = parts.clone();
            tokio::spawn(async move {
                let _ = common::raw::read_request(&mut s).await;
                let _ = s.write_all(head.as_bytes()).await;
                for p in parts {
                    let _ = s.write_all(p.as_bytes()).await;
                    let _ = s.flush().await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                // Dropping the socket mid-answer: the body never completes.
            });
        }
    });
    (port, task)
}

/// A stream upstream that sends "one", " two", " three" in chunked framing and closes before the
/// final zero-length chunk: a break, not an end.
async fn stream_cut_after_three_chunks() -> (u16, tokio::task::JoinHandle<()>) {
    const HEAD: &str =
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
    let framed = |s: String| format!("{:x}\r\n{s}\r\n", s.len());
    let parts = vec![
        framed(chunk("one")),
        framed(chunk(" two")),
        framed(chunk(" three")),
    ];
    breaking_upstream(HEAD, parts).await
}

/// A provider streaming 30 words, one every 100 ms.
async fn slow_words() -> FakeProvider {
    let mut events: Vec<String> = (0..30).map(|i| chunk(&format!(" word{i}"))).collect();
    events.push("data: [DONE]\n\n".into());
    FakeProvider::start(Reply::Sse {
        events,
        gap: Duration::from_millis(100),
    })
    .await
}

/// Post `body` and read until the first words arrive (the router may re-split the pieces it
/// relays); the response is handed back unfinished.
async fn first_words(router: &Router, body: &Value) -> reqwest::Response {
    let mut resp = post(router, "/v1/chat/completions", body).await;
    assert_eq!(resp.status().as_u16(), 200);
    let mut seen = String::new();
    while !streamed_text(&seen).contains("word1") {
        let c = resp.chunk().await.expect("read").expect("more chunks");
        seen.push_str(&String::from_utf8_lossy(&c));
    }
    resp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_hanging_up_mid_stream_is_charged_an_estimate_and_releases_the_hold() {
    bounded(20, async {
        let provider = slow_words().await;
        let (_ks, router) = router_on(&provider.url()).await;
        let mut sub = router.events().subscribe();

        let resp = first_words(&router, &body(true)).await;
        assert_eq!(
            router.budget_status().reserved_micros,
            HOLD,
            "the worst case is held while streaming"
        );
        drop(resp);

        let (status, cost, estimated, outcome) = next_response(&mut sub).await;
        assert_eq!(
            (status, estimated, outcome.as_str()),
            (200, true, "client_aborted")
        );
        assert!(
            cost > INPUT_PART && cost < HOLD,
            "estimate {cost} µ$: input plus a few words, far below the hold"
        );
        let s = router.budget_status();
        assert_eq!((s.reserved_micros, s.spent_micros), (0, cost));
        router.stop().await;
    })
    .await;
}

/// A reasoning model bills thinking the stream never shows: cut short before its usage, the call
/// is charged its hold rather than the few words seen (a review saw $0.0006 recorded for ~$0.16).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reasoning_stream_cut_short_is_charged_its_hold() {
    bounded(20, async {
        let provider = slow_words().await;
        let (_ks, router) = router_on(&provider.url()).await;
        let mut sub = router.events().subscribe();
        let mut b = body(true);
        b["model"] = json!("o3-mini");
        let resp = first_words(&router, &b).await;
        let hold = router.budget_status().reserved_micros;
        assert!(hold > 0);
        drop(resp);
        let (status, cost, estimated, outcome) = next_response(&mut sub).await;
        assert_eq!(
            (status, estimated, outcome.as_str()),
            (200, true, "client_aborted")
        );
        assert_eq!(cost, hold, "charged the hold, not the words seen");
        let s = router.budget_status();
        assert_eq!((s.reserved_micros, s.spent_micros), (0, hold));
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_error_status_costs_nothing_and_releases_the_hold() {
    bounded(20, async {
        let provider = FakeProvider::start(Reply::Json {
            status: 500,
            body: json!({ "error": { "message": "boom", "type": "server_error", "param": null, "code": null } }).to_string(),
        })
        .await;
        let (_ks, router) = router_on(&provider.url()).await;
        let mut sub = router.events().subscribe();
        for stream in [false, true] {
            let (code, _, text) = status_json(post(&router, "/v1/chat/completions", &body(stream)).await).await;
            assert_eq!(code, 500, "{text}");
            let (status, cost, _, _) = next_response(&mut sub).await;
            assert_eq!((status, cost), (500, 0));
        }
        let s = router.budget_status();
        assert_eq!((s.spent_micros, s.reserved_micros), (0, 0));
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_broken_mid_way_is_charged_an_estimate_and_the_client_gets_an_error_event() {
    bounded(20, async {
        let (port, _task) = stream_cut_after_three_chunks().await;
        let (_ks, router) = router_on(&format!("http://127.0.0.1:{port}")).await;
        let mut sub = router.events().subscribe();

        let resp = post(&router, "/v1/chat/completions", &body(true)).await;
        assert_eq!(resp.status().as_u16(), 200);
        let text = resp.text().await.unwrap_or_default();
        assert!(streamed_text(&text).starts_with("one"), "{text}");
        assert!(
            text.contains("stream broke"),
            "the client is told the stream broke: {text}"
        );

        let (status, cost, estimated, outcome) = next_response(&mut sub).await;
        assert_eq!(
            (status, estimated, outcome.as_str()),
            (200, true, "upstream_error")
        );
        assert!(cost > INPUT_PART && cost < HOLD, "estimate {cost}");
        let s = router.budget_status();
        assert_eq!((s.reserved_micros, s.spent_micros), (0, cost));
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_budget_a_cut_stream_with_an_image_is_estimated_as_a_hold_counts_it() {
    bounded(20, async {
        let (port, _task) = stream_cut_after_three_chunks().await;
        let url = format!("http://127.0.0.1:{port}");
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &url).await;
        let router = start_router(&ks, json!({ "reliability": { "retry": { "maxRetries": 0 } } }));
        router.ready().await.expect("key fetched");
        let mut sub = router.events().subscribe();
        // 2 MB of base64 (500k tokens counted as bytes over 4): one image, at most a few
        // thousand tokens.
        let image = format!("data:image/png;base64,{}", "A".repeat(2_000_000));
        let body = json!({ "model": "gpt-4o", "max_tokens": 50, "stream": true, "messages": [{ "role": "user", "content": [
            { "type": "text", "text": "What is in this picture?" },
            { "type": "image_url", "image_url": { "url": image } } ] }] });
        let resp = post(&router, "/v1/chat/completions", &body).await;
        assert_eq!(resp.status().as_u16(), 200);
        let _ = resp.text().await;
        let (_, cost, estimated, _) = next_response(&mut sub).await;
        assert!(estimated);
        let tokens = router.shared().stats_snapshot().input_tokens;
        assert!((100..=128_000).contains(&tokens), "{tokens} input tokens");
        assert!(cost > 0);
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_stream_is_never_charged_more_than_its_hold() {
    bounded(20, async {
        // 600 pieces of 64 characters (each one token, as models stream: 9,600 tokens counted as
        // characters over 4), more than the 500 max_tokens the hold assumed; then a break.
        const HEAD: &str =
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
        let framed = |s: String| format!("{:x}\r\n{s}\r\n", s.len());
        let piece = "y".repeat(64);
        let all: String = (0..600).map(|_| chunk(&piece)).collect();
        let (port, _task) = breaking_upstream(HEAD, vec![framed(all)]).await;
        let (_ks, router) = router_on(&format!("http://127.0.0.1:{port}")).await;
        let mut sub = router.events().subscribe();
        let resp = post(&router, "/v1/chat/completions", &body(true)).await;
        assert_eq!(resp.status().as_u16(), 200);
        let _ = resp.text().await;
        let (_, cost, estimated, _) = next_response(&mut sub).await;
        assert!(estimated);
        assert_eq!(cost, HOLD, "an estimate past the hold is charged the hold");
        let s = router.budget_status();
        assert_eq!((s.reserved_micros, s.spent_micros), (0, HOLD));
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_body_broken_mid_way_is_charged_the_hold_and_nothing_stays_reserved() {
    bounded(20, async {
        // The provider answered (and billed) but its usage never arrived: the hold is the best bound.
        const HEAD: &str =
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 400\r\n\r\n";
        let (port, _task) = breaking_upstream(
            HEAD,
            vec![r#"{"id":"chatcmpl-x","object":"chat.completion","choi"#.to_string()],
        )
        .await;
        let (_ks, router) = router_on(&format!("http://127.0.0.1:{port}")).await;
        let mut sub = router.events().subscribe();

        // The client never gets a whole success: a 502 (when the router inspects JSON answers before
        // relaying them) or a 200 whose body breaks.
        let resp = post(&router, "/v1/chat/completions", &body(false)).await;
        let code = resp.status().as_u16();
        let cost_header = resp
            .headers()
            .get("x-iron-cage-cost-usd")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let whole = resp.bytes().await;
        assert!(
            code == 502 || (code == 200 && whole.is_err()),
            "status {code}"
        );

        // The event and the ledger say what the client got, and the answer what it cost.
        let (status, cost, estimated, _) = next_response(&mut sub).await;
        assert_eq!((status, cost, estimated), (code, HOLD, true));
        if code == 502 {
            assert_eq!(cost_header.as_deref(), Some("0.005195"));
        }
        let s = router.budget_status();
        assert_eq!((s.reserved_micros, s.spent_micros), (0, HOLD));
        router.stop().await;

        // Without a budget: the hold it would have had, not $0.
        let url = format!("http://127.0.0.1:{port}");
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &url).await;
        let router = start_router(
            &ks,
            json!({ "reliability": { "retry": { "maxRetries": 0 } } }),
        );
        router.ready().await.expect("key fetched");
        let mut sub = router.events().subscribe();
        let resp = post(&router, "/v1/chat/completions", &body(false)).await;
        let _ = resp.bytes().await;
        let (_, cost, estimated, _) = next_response(&mut sub).await;
        assert_eq!((cost, estimated), (HOLD, true));
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_upstream_releases_the_hold() {
    bounded(20, async {
        let (_ks, router) = router_on(&format!("http://127.0.0.1:{}", closed_port())).await;
        let (code, v, text) =
            status_json(post(&router, "/v1/chat/completions", &body(false)).await).await;
        assert_eq!(code, 502, "{text}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("unreachable"),
            "{text}"
        );
        let s = router.budget_status();
        assert_eq!((s.spent_micros, s.reserved_micros), (0, 0));
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_model_is_blocked_with_a_budget_and_charged_flat_when_allowed() {
    bounded(20, async {
        let provider = FakeProvider::json(chat_completion()).await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
        let body = json!({ "model": "house-model-7", "messages": [{ "role": "user", "content": "x" }] });

        let router = start_router(&ks, json!({ "budgetUsd": 1.0 }));
        let (code, v, text) = status_json(post(&router, "/v1/chat/completions", &body).await).await;
        assert_eq!(code, 400, "{text}");
        assert_eq!(v["error"]["code"], "unknown_model_price");
        let msg = v["error"]["message"].as_str().unwrap_or("");
        assert!(msg.contains("'house-model-7'") && msg.contains("pricing") && msg.contains("unknownModel: 'block'"), "{msg}");
        assert!(provider.seen().is_empty());
        router.stop().await;

        let router = start_router(&ks, json!({ "budgetUsd": 1.0, "unknownModel": { "action": "allow", "costUsd": 0.004 } }));
        for _ in 0..3 {
            let (code, _, text) = status_json(post(&router, "/v1/chat/completions", &body).await).await;
            assert_eq!(code, 200, "{text}");
        }
        // Settles run just after the bodies end.
        let mut spent = 0;
        for _ in 0..200 {
            spent = router.budget_status().spent_micros;
            if spent == 12_000 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(spent, 3 * 4_000);
        assert_eq!(router.budget_status().reserved_micros, 0);
        router.stop().await;

        // A pricing override prices the custom model exactly: chat_completion() reports 5 in, 1 out;
        // 5 × $4/M + 1 × $20/M = 20 + 20 = 40 µ$.
        let router = start_router(&ks, json!({ "budgetUsd": 1.0, "pricing": { "house-model-7": { "input": 4.0, "output": 20.0 } } }));
        let mut sub = router.events().subscribe();
        let (code, _, text) = status_json(post(&router, "/v1/chat/completions", &body).await).await;
        assert_eq!(code, 200, "{text}");
        let (_, cost, estimated, _) = next_response(&mut sub).await;
        assert_eq!((cost, estimated), (40, false));
        assert_eq!(router.budget_status().spent_micros, 40);
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_the_router_cannot_read_is_not_forwarded_unbudgeted() {
    bounded(20, async {
        let provider = FakeProvider::start(Reply::Json {
            status: 200,
            body: json!({ "id": "x", "object": "chat.completion", "model": "gpt-4o",
                "choices": [{ "index": 0, "message": { "role": "assistant", "content": "hi" }, "finish_reason": "stop" }],
                "usage": { "prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11 } })
            .to_string(),
        })
        .await;
        // PII checks off: they refuse unreadable bodies on their own; this is about the budget.
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
        let router = start_router(
            &ks,
            json!({ "budgetUsd": 1.0, "safety": { "request": { "default": "off", "secret": "off" } } }),
        );
        router.ready().await.expect("key fetched");
        let auth = format!("Bearer {IC}");
        // A repeated key is valid JSON to many parsers (the provider may read either model), and
        // a body that is not JSON at all: neither may reach the provider without a budget hold.
        for raw in [
            r#"{"model":"gpt-4o-mini","model":"gpt-4o","max_tokens":500,"messages":[{"role":"user","content":"hi"}]}"#,
            r#"{"model":"gpt-4o","max_tokens":500,"messages":[{"role":"user","content":"hi"}"#,
        ] {
            let resp = post_with(&router, "/v1/chat/completions", raw.to_string(), &[("authorization", &auth)]).await;
            let (code, _, text) = status_json(resp).await;
            assert_eq!(code, 400, "{raw}: {text}");
            assert!(text.contains("cannot hold budget"), "{text}");
        }
        assert!(provider.seen().is_empty(), "an unreadable body reached the provider");
        let b = router.budget_status();
        assert_eq!((b.reserved_micros, b.spent_micros), (0, 0));
        // A well-formed call still goes through.
        let (code, _, text) = status_json(post(&router, "/v1/chat/completions", &body(false)).await).await;
        assert_eq!(code, 200, "{text}");
        assert_eq!(provider.seen().len(), 1);
    })
    .await;
}

/// An answer too large to read whole (over 64 MiB, e.g. many float embeddings) cannot be read for
/// its usage: it is charged its hold, not $0; where the response policy must read it, the client
/// is told it was too large (not that it was not JSON).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_too_large_to_read_is_charged_its_hold() {
    bounded(60, async {
        let filler = "x".repeat(65 << 20);
        let answer = format!(
            r#"{{"id":"c","object":"chat.completion","model":"gpt-4o","choices":[{{"index":0,"message":{{"role":"assistant","content":"{filler}"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}}}"#
        );
        drop(filler);
        let provider = FakeProvider::start(Reply::Json {
            status: 200,
            body: answer,
        }).await;
        // Response policy off: the answer is passed on and priced at its hold.
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
        let off = json!({ "response": { "default": "off", "secret": "off" } });
        let router = start_router(&ks, json!({ "budgetUsd": 1.0, "safety": off }));
        let mut sub = router.events().subscribe();
        let resp = post(&router, "/v1/chat/completions", &body(false)).await;
        assert_eq!(resp.status().as_u16(), 200);
        assert!(resp.bytes().await.expect("whole answer").len() > 65 << 20);
        let (status, cost, estimated, _) = next_response(&mut sub).await;
        assert_eq!((status, estimated), (200, true));
        assert_eq!(cost, HOLD, "priced at the hold, not $0");
        router.stop().await;
        // Default policy: refused, saying why.
        let router = start_router(&ks, json!({ "budgetUsd": 1.0 }));
        let (code, v, text) = status_json(post(&router, "/v1/chat/completions", &body(false)).await).await;
        assert_eq!(code, 502, "{}", &text[..text.len().min(300)]);
        assert!(v["error"]["message"].as_str().unwrap_or_default().contains("larger than 64 MiB"), "{v}");
        assert_eq!(router.budget_status().spent_micros, HOLD);
        router.stop().await;
    })
    .await;
}

/// The provider bills a stream's input whole however the stream ends: cut before its usage, a call
/// is charged its text estimate plus its images and audio clips as its hold counts them (audio at
/// the audio rate), at the service tier it asked for. A review saw an audio clip charged as 4,096
/// text tokens (4-64× under its bill), a gpt-4o-mini image URL as its URL's text, and a priority
/// call at standard rates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_before_its_usage_is_charged_its_media_at_the_tier_asked_for() {
    bounded(30, async {
        // "one two three": 13 characters, 4 output tokens.
        let (port, _task) = stream_cut_after_three_chunks().await;
        let (_ks, router) = router_on(&format!("http://127.0.0.1:{port}")).await;
        let mut sub = router.events().subscribe();
        // The charge of one call to the breaking upstream.
        async fn cut(
            router: &Router,
            sub: &mut iron_runtime::events::Subscription,
            body: Value,
        ) -> u64 {
            let resp = post(router, "/v1/chat/completions", &body).await;
            assert_eq!(resp.status().as_u16(), 200);
            let _ = resp.text().await;
            let (status, cost, estimated, outcome) = next_response(sub).await;
            assert_eq!((status, estimated, outcome.as_str()), (200, true, "upstream_error"));
            cost
        }

        // A 400,000-byte MP3 clip (533,336 base64 characters): 12,501 audio tokens by the hold's
        // rule, at $40/M on gpt-4o-audio-preview = 500,040 µ$; its text 30 tokens at $2.50/M and 4
        // output tokens at $10/M: 500,155 µ$.
        let clip = "A".repeat(533_336);
        let audio = json!({ "model": "gpt-4o-audio-preview", "stream": true, "max_completion_tokens": 50,
            "messages": [{ "role": "user", "content": [
                { "type": "text", "text": "transcribe" },
                { "type": "input_audio", "input_audio": { "data": clip, "format": "mp3" } }] }] });
        assert_eq!(cut(&router, &mut sub, audio).await, 500_155);

        // gpt-4o-mini by image URL: 48,169 image tokens + 30 of text at $0.15/M, 4 output tokens
        // at $0.60/M: 7,232.35 µ$ rounded up.
        let image = json!({ "model": "gpt-4o-mini", "stream": true, "max_completion_tokens": 10,
            "messages": [{ "role": "user", "content": [
                { "type": "text", "text": "describe" },
                { "type": "image_url", "image_url": { "url": "https://example.com/big.png", "detail": "high" } }] }] });
        assert_eq!(cut(&router, &mut sub, image).await, 7_233);

        // Text alone is charged its estimate, as before: gpt-4.1 at $2/M in and $8/M out, 35 input
        // tokens and 4 output = 102 µ$; asked for priority ($3.50 / $14): 178.5 µ$ rounded up.
        let mut text = body(true);
        text["model"] = json!("gpt-4.1");
        assert_eq!(cut(&router, &mut sub, text.clone()).await, 102);
        text["service_tier"] = json!("priority");
        assert_eq!(cut(&router, &mut sub, text).await, 179);
        let s = router.budget_status();
        assert_eq!((s.reserved_micros, s.spent_micros), (0, 500_155 + 7_233 + 102 + 179));
        router.stop().await;
    })
    .await;
}
