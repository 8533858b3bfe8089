//! What the router does with the provider's own signals and silences: a 429's `retry-after` holds
//! only the model it was for and at most a minute; `x-should-retry: false` stops the router's
//! retries; a call that got no head within the first-byte timeout is not retried (by the router or
//! the SDK) and is charged, since the provider has it; a connect timeout (nothing sent) is
//! retried like a refused connection.

mod common;

use common::raw::*;
use common::*;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

fn chat(model: &str, stream: bool) -> serde_json::Value {
    json!({ "model": model, "max_tokens": 50, "stream": stream,
            "messages": [{ "role": "user", "content": "Say hello, and tell me about the weather in Lisbon today." }] })
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_holds_only_its_model_and_for_at_most_a_minute() {
    bounded(20, async {
        // The first call is answered 429 asking to wait a day; every later one 200.
        let (port, count, _t) = raw_upstream(|n, mut s| async move {
            if read_request(&mut s).await {
                let reply = if n == 1 {
                    let body = r#"{"error":{"message":"Rate limit reached for gpt-4o","type":"requests","code":"rate_limit_exceeded"}}"#;
                    format!("HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 86400\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len())
                } else {
                    ok_response()
                };
                let _ = s.write_all(reply.as_bytes()).await;
            }
        })
        .await;
        let url = format!("http://127.0.0.1:{port}");
        let (_ks, router) = router_for(&url, json!({}), None).await;
        let first = post(&router, "/v1/chat/completions", &chat("gpt-4o", false)).await;
        assert_eq!(first.status(), 429, "the provider's 429 reaches the client");
        // Another model is not held back by gpt-4o's limit.
        let other = post(&router, "/v1/chat/completions", &chat("gpt-4o-mini", false)).await;
        assert_eq!(other.status(), 200);
        assert_eq!(count.load(Ordering::SeqCst), 2);
        // gpt-4o is held by the router, for at most a minute (not the day asked for).
        let held = post(&router, "/v1/chat/completions", &chat("gpt-4o", false)).await;
        assert_eq!(held.status(), 429);
        let wait: u64 = header(&held, "retry-after")
            .and_then(|v| v.parse().ok())
            .expect("retry-after in seconds");
        assert!((1..=60).contains(&wait), "retry-after {wait}");
        let (_, json, _) = status_json(held).await;
        let message = json["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("gpt-4o"), "{message}");
        assert_eq!(count.load(Ordering::SeqCst), 2, "the held call never left");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_the_provider_says_not_to_retry_is_passed_on_after_one_attempt() {
    bounded(20, async {
        let (port, count, _t) = raw_upstream(|_, mut s| async move {
            if read_request(&mut s).await {
                let body = r#"{"error":{"message":"The server had an error","type":"server_error"}}"#;
                let reply = format!("HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\nx-should-retry: false\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = s.write_all(reply.as_bytes()).await;
            }
        })
        .await;
        let url = format!("http://127.0.0.1:{port}");
        let (_ks, router) = router_for(&url, json!({}), None).await;
        let resp = post(&router, "/v1/chat/completions", &chat("gpt-4o", false)).await;
        assert_eq!(resp.status(), 500);
        assert_eq!(header(&resp, "x-should-retry").as_deref(), Some("false"));
        assert_eq!(count.load(Ordering::SeqCst), 1, "one attempt");
        assert_eq!(retries(&router), 0);
    })
    .await;
}

/// A provider that reads the request and never answers.
async fn silent_upstream() -> (u16, std::sync::Arc<std::sync::atomic::AtomicU32>) {
    let (port, count, _t) = raw_upstream(|_, mut s| async move {
        if read_request(&mut s).await {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    })
    .await;
    (port, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_head_within_the_first_byte_timeout_is_not_retried_and_is_charged() {
    bounded(30, async {
        let (port, count) = silent_upstream().await;
        let url = format!("http://127.0.0.1:{port}");
        let over = json!({ "timeouts": { "firstByteMs": 300, "totalMs": 5000 } });
        let (_ks, router) = router_for(&url, over, Some(1.0)).await;

        // A whole answer is generated before its head: the provider bills it whether anyone
        // waits. Charged its hold, like a whole answer cut short.
        let before = router.budget_status();
        let mut sub = router.events().subscribe();
        let resp = post(&router, "/v1/chat/completions", &chat("gpt-4o", false)).await;
        assert_eq!(resp.status(), 504);
        assert_eq!(header(&resp, "x-should-retry").as_deref(), Some("false"));
        assert_eq!(count.load(Ordering::SeqCst), 1, "not retried by the router");
        let after = router.budget_status();
        assert_eq!(after.reserved_micros, 0);
        let whole_charge = after.spent_micros - before.spent_micros;
        assert!(whole_charge > 0, "a timed-out whole answer is charged");
        // The refusal says what it was charged, as a whole answer does.
        let shown = format!(
            "{}.{:06}",
            whole_charge / 1_000_000,
            whole_charge % 1_000_000
        );
        assert_eq!(header(&resp, "x-iron-cage-cost-usd"), Some(shown));
        // Reported as a failed call, not a refusal: a `response` event with its charge.
        let event = loop {
            let ev = sub.recv().await.expect("event bus open");
            match &**ev {
                iron_runtime::RouterEvent::Response {
                    status,
                    cost_micros,
                    estimated,
                    outcome,
                    ..
                } => {
                    break (*status, *cost_micros, *estimated, outcome.clone());
                }
                iron_runtime::RouterEvent::Blocked { .. } => {
                    panic!("a charged call is not a refusal")
                }
                _ => {}
            }
        };
        assert_eq!(event, (504, whole_charge, true, "timeout".to_string()));

        // A stream's head comes before its first token: charged its estimated input only.
        let resp = post(&router, "/v1/chat/completions", &chat("gpt-4o", true)).await;
        assert_eq!(resp.status(), 504);
        assert_eq!(header(&resp, "x-should-retry").as_deref(), Some("false"));
        let end = router.budget_status();
        assert_eq!(end.reserved_micros, 0);
        let stream_charge = end.spent_micros - after.spent_micros;
        assert!(stream_charge > 0, "a timed-out stream is charged its input");
        assert!(
            stream_charge < whole_charge,
            "input only ({stream_charge}) is less than the hold ({whole_charge})"
        );
        assert_eq!(count.load(Ordering::SeqCst), 2);
        // Stats count the charges as the budget does, and the calls as failed.
        let stats = router.shared().stats_snapshot();
        assert_eq!(stats.cost_micros, end.spent_micros - before.spent_micros);
        assert_eq!((stats.blocked, stats.completed, stats.failed), (0, 0, 2));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_budget_an_unanswered_call_is_charged_its_input() {
    bounded(30, async {
        let (port, _count) = silent_upstream().await;
        let url = format!("http://127.0.0.1:{port}");
        let over = json!({ "timeouts": { "firstByteMs": 300, "totalMs": 5000 } });
        let (_ks, router) = router_for(&url, over, None).await;
        let resp = post(&router, "/v1/chat/completions", &chat("gpt-4o", false)).await;
        assert_eq!(resp.status(), 504);
        let stats = router.shared().stats_snapshot();
        assert!(stats.cost_micros > 0, "charged its input, not $0");
        assert!(stats.input_tokens > 0);
        assert_eq!(router.budget_status().spent_micros, stats.cost_micros);
        // A model without a price is charged nothing: its event says it is unpriced, not free.
        let mut sub = router.events().subscribe();
        let resp = post(
            &router,
            "/v1/chat/completions",
            &chat("gpt-4o-unknown-x", false),
        )
        .await;
        assert_eq!(resp.status(), 504);
        let event = loop {
            let ev = sub.recv().await.expect("event bus open");
            if let iron_runtime::RouterEvent::Response {
                cost_micros,
                unpriced,
                outcome,
                ..
            } = &**ev
            {
                break (*cost_micros, *unpriced, outcome.clone());
            }
        };
        assert_eq!(event, (0, true, "timeout".to_string()));
    })
    .await;
}

/// A port whose listener has a backlog of one and never accepts: once its queue is full, a new
/// connection's handshake is never answered. Keep the returned values alive while it is used.
async fn unconnectable_port() -> (u16, tokio::net::TcpListener, Vec<tokio::net::TcpStream>) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let port = socket.local_addr().expect("addr").port();
    let listener = socket.listen(0).expect("listen");
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(("127.0.0.1", port)),
        )
        .await
        {
            fillers.push(s);
        }
    }
    let probe = tokio::time::timeout(
        Duration::from_millis(300),
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await;
    assert!(
        probe.is_err(),
        "the full listener must leave connects hanging"
    );
    (port, listener, fillers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_never_made_is_retried_and_not_charged_whichever_timeout_ends_it() {
    bounded(40, async {
        let (port, _listener, _fillers) = unconnectable_port().await;
        let url = format!("http://127.0.0.1:{port}");
        // The connect timeout ends the wait, or a first-byte timeout shorter than it does: either
        // way nothing was sent.
        for timeouts in [
            json!({ "connectMs": 200, "firstByteMs": 3000, "totalMs": 10000 }),
            json!({ "connectMs": 3000, "firstByteMs": 200, "totalMs": 10000 }),
        ] {
            let over = json!({ "timeouts": timeouts });
            let (_ks, router) = router_for(&url, over, Some(1.0)).await;
            let resp = post(&router, "/v1/chat/completions", &chat("gpt-4o", false)).await;
            assert_eq!(
                resp.status(),
                502,
                "a connect failure, not a 504 ({timeouts})"
            );
            assert_eq!(
                retries(&router),
                2,
                "1 attempt + maxRetries 2 retries ({timeouts})"
            );
            let s = router.budget_status();
            assert_eq!(
                (s.reserved_micros, s.spent_micros),
                (0, 0),
                "nothing sent, nothing charged ({timeouts})"
            );
            router.stop().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_call_the_provider_does_not_bill_is_not_charged() {
    bounded(30, async {
        let (port, _count) = silent_upstream().await;
        let url = format!("http://127.0.0.1:{port}");
        let ks = FakeKeyServer::with_key(ANTHROPIC_KEY, Some("anthropic"), &url).await;
        let router = start_router(
            &ks,
            json!({ "budgetUsd": 0.05, "reliability": reliability(json!({ "timeouts": { "firstByteMs": 300, "totalMs": 5000 } })) }),
        );
        router.ready().await.expect("key fetched");
        let body = json!({ "model": "claude-sonnet-4-5", "messages": [{ "role": "user", "content": "x ".repeat(20_000) }] });
        for _ in 0..2 {
            let resp = post(&router, "/v1/messages/count_tokens", &body).await;
            assert_eq!(resp.status(), 504);
        }
        let s = router.budget_status();
        assert_eq!((s.reserved_micros, s.spent_micros), (0, 0), "token counts are free");
        assert_eq!(router.shared().stats_snapshot().cost_micros, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_budget_an_image_is_estimated_as_a_hold_counts_it_not_by_its_bytes() {
    bounded(30, async {
        let (port, _count) = silent_upstream().await;
        let url = format!("http://127.0.0.1:{port}");
        let over = json!({ "timeouts": { "firstByteMs": 300, "totalMs": 5000 } });
        let (_ks, router) = router_for(&url, over, None).await;
        // 2 MB of base64: 500k tokens if bytes were counted; a gpt-4o image is at most a few
        // thousand, and no input is over the 128k context window.
        let image = format!("data:image/png;base64,{}", "A".repeat(2_000_000));
        for stream in [false, true] {
            let body = json!({ "model": "gpt-4o", "max_tokens": 50, "stream": stream, "messages": [{ "role": "user", "content": [
                { "type": "text", "text": "What is in this picture?" },
                { "type": "image_url", "image_url": { "url": image } } ] }] });
            let before = router.shared().stats_snapshot();
            let resp = post(&router, "/v1/chat/completions", &body).await;
            assert_eq!(resp.status(), 504);
            let after = router.shared().stats_snapshot();
            let tokens = after.input_tokens - before.input_tokens;
            assert!((100..=128_000).contains(&tokens), "stream {stream}: {tokens} input tokens");
        }
    })
    .await;
}

/// With a budget and no request policy, a prompt cut inside an emoji (`"\ud83d"`, as
/// `JSON.stringify` writes it) that gets no answer is charged its hold, not $0: the estimate
/// reads the body as the policies would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_call_with_half_an_emoji_is_charged_its_hold() {
    bounded(30, async {
        let (port, _count) = silent_upstream().await;
        let ks = FakeKeyServer::with_key(
            OPENAI_KEY,
            Some("openai"),
            &format!("http://127.0.0.1:{port}"),
        )
        .await;
        let off = json!({ "default": "off", "secret": "off" });
        let router = start_router(
            &ks,
            json!({
                "budgetUsd": 1.0,
                "safety": { "request": off, "response": off },
                "reliability": reliability(json!({ "timeouts": { "firstByteMs": 300, "totalMs": 5000 } })),
            }),
        );
        router.ready().await.expect("key");
        let body = r#"{"model":"gpt-4o","max_tokens":50,"messages":[{"role":"user","content":"cut here \ud83d"}]}"#;
        let resp = post_with(
            &router,
            "/v1/chat/completions",
            body.to_string(),
            &[("authorization", &format!("Bearer {IC}"))],
        )
        .await;
        assert_eq!(resp.status(), 504);
        let b = router.budget_status();
        assert!(b.spent_micros > 0, "charged its hold, not $0: {b:?}");
        assert_eq!(b.reserved_micros, 0);
    })
    .await;
}
