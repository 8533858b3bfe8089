//! A call the provider may have is never sent twice: a connection that fails after the request was
//! written (a fresh one, or one that broke off in the answer's head) ends the call with 502 and
//! `x-should-retry: false`, charged as the provider may bill it (an answer the router withholds
//! says the same: tests/reliability_upstream.rs); and the breaker counts calls, not the attempts of a retried call,
//! nor an answer over the router's own limits. A reused connection that closes before a byte of
//! answer (a keep-alive timeout crossing the request) is the exception: it goes once more.

mod common;

use common::raw::*;
use common::*;
use iron_runtime::RouterEvent;
use serde_json::json;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// A keep-alive answer (no `connection: close`).
fn keep_alive_response() -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{OK_JSON}",
        OK_JSON.len()
    )
}

/// One call with a budget; returns status, `x-should-retry`, body, and the call's `response` event
/// (status, outcome, cost, estimated).
async fn call_once(
    router: &iron_runtime::Router,
) -> (u16, Option<String>, String, (u16, String, u64, bool)) {
    call_on(&client(), router).await
}

/// [`call_once`] on the given client: calls on one keep-alive client connection are served on
/// one connection thread, and so share its pool of upstream connections.
async fn call_on(
    agent: &reqwest::Client,
    router: &iron_runtime::Router,
) -> (u16, Option<String>, String, (u16, String, u64, bool)) {
    let mut sub = router.events().subscribe();
    let resp = post_on(agent, router, "/v1/chat/completions", &body(false)).await;
    let retry = resp
        .headers()
        .get("x-should-retry")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (status, _, text) = status_json(resp).await;
    let event = loop {
        let ev = sub.recv().await.expect("event bus open");
        if let RouterEvent::Response {
            status,
            outcome,
            cost_micros,
            estimated,
            ..
        } = &**ev
        {
            break (*status, outcome.clone(), *cost_micros, *estimated);
        }
    };
    (status, retry, text, event)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_fails_after_the_request_was_written_is_not_sent_again() {
    bounded(20, async {
        // Every connection: read the whole request, then hang up without a byte of answer.
        let requests = Arc::new(AtomicU32::new(0));
        let seen = requests.clone();
        let (port, conns, _task) = raw_upstream(move |_, mut s| {
            let seen = seen.clone();
            async move {
                if read_request(&mut s).await {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
        .await;
        let (_ks, router) =
            router_for(&format!("http://127.0.0.1:{port}"), json!({}), Some(1.0)).await;
        let (status, retry, text, event) = call_once(&router).await;
        assert_eq!(status, 502, "{text}");
        assert_eq!(
            retry.as_deref(),
            Some("false"),
            "the SDK must not send it again either"
        );
        assert!(text.contains("the provider may have it"), "{text}");
        assert_eq!(
            requests.load(Ordering::SeqCst),
            1,
            "the provider got the call once"
        );
        assert_eq!(conns.load(Ordering::SeqCst), 1);
        assert_eq!(retries(&router), 0);
        // Charged as the provider may bill it (a whole answer: its hold), never $0.
        assert_eq!(event.0, 502);
        assert_eq!(event.1, "upstream_error");
        assert!(event.2 > 0 && event.3, "{event:?}");
        let b = router.budget_status();
        assert_eq!(b.reserved_micros, 0);
        assert_eq!(b.spent_micros, event.2);
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_connection_closed_before_any_answer_goes_once_more_on_a_new_one() {
    bounded(20, async {
        // Connection 1 answers its first request (keep-alive), then hangs up on the second without
        // a byte: what a keep-alive timeout crossing the request looks like. Later ones answer.
        let (port, conns, _task) = raw_upstream(move |n, mut s| async move {
            let answers = if n == 1 { 1 } else { 100 };
            for _ in 0..answers {
                if !read_request(&mut s).await
                    || s.write_all(keep_alive_response().as_bytes()).await.is_err()
                {
                    return;
                }
            }
            let _ = read_request(&mut s).await;
        })
        .await;
        let (_ks, router) = router_for(&format!("http://127.0.0.1:{port}"), json!({}), None).await;
        let agent = client();
        assert_eq!(call_on(&agent, &router).await.0, 200);
        assert_eq!(router.shared().http.idle_connections(), 1);
        let (status, _, text, event) = call_on(&agent, &router).await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(event.1, "complete");
        assert_eq!(
            conns.load(Ordering::SeqCst),
            2,
            "sent again on a new connection, once"
        );
        assert_eq!(
            retries(&router),
            0,
            "replacing a closed idle connection is not a retry"
        );
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_drops_in_the_answer_head_is_not_sent_again() {
    bounded(20, async {
        let (port, conns, _task) = raw_upstream(|_, mut s| async move {
            if read_request(&mut s).await {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-ty").await;
                let _ = s.flush().await;
            }
        })
        .await;
        let (_ks, router) = router_for(&format!("http://127.0.0.1:{port}"), json!({}), None).await;
        let (status, retry, text, _) = call_once(&router).await;
        assert_eq!(status, 502, "{text}");
        assert_eq!(retry.as_deref(), Some("false"));
        assert_eq!(conns.load(Ordering::SeqCst), 1);
        assert_eq!(retries(&router), 0);
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_counts_a_retried_call_once() {
    bounded(20, async {
        let (port, attempts, _task) = raw_upstream(|_, mut s| async move {
            if read_request(&mut s).await {
                let body = r#"{"error":{"message":"overloaded","type":"server_error"}}"#;
                let answer = format!(
                    "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(answer.as_bytes()).await;
            }
        })
        .await;
        let over = json!({ "breaker": { "consecutiveFailures": 2, "openMs": 30000, "maxOpenMs": 60000 } });
        let (_ks, router) = router_for(&format!("http://127.0.0.1:{port}"), over, None).await;
        let code = |text: &str| {
            serde_json::from_str::<serde_json::Value>(text).unwrap_or_default()["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        // Two calls of three attempts each: two failures, the provider's own 503 both times.
        for expected_attempts in [3, 6] {
            let (status, _, text, _) = call_once(&router).await;
            assert_eq!(status, 503, "{text}");
            assert_ne!(code(&text), "circuit_open", "{text}");
            assert_eq!(attempts.load(Ordering::SeqCst), expected_attempts);
        }
        // Then it is open: the third call fails fast.
        let resp = post(&router, "/v1/chat/completions", &body(false)).await;
        let (status, _, text) = status_json(resp).await;
        assert_eq!(status, 503);
        assert_eq!(code(&text), "circuit_open", "{text}");
        assert_eq!(attempts.load(Ordering::SeqCst), 6);
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_event_over_the_limit_is_not_a_provider_failure() {
    bounded(30, async {
        // One SSE event of 9 MiB (over the 8 MiB limit), then a normal end.
        let (port, attempts, _task) = raw_upstream(|_, mut s| async move {
            if !read_request(&mut s).await {
                return;
            }
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n")
                .await;
            let big = format!("data: {{\"x\":\"{}\"}}\n\n", "a".repeat(9 << 20));
            let _ = s.write_all(big.as_bytes()).await;
            let _ = s.write_all(b"data: [DONE]\n\n").await;
        })
        .await;
        let over = json!({ "breaker": { "consecutiveFailures": 1, "openMs": 30000, "maxOpenMs": 60000 } });
        let (_ks, router) = router_for(&format!("http://127.0.0.1:{port}"), over, None).await;
        let (status, _, text) =
            status_json(post(&router, "/v1/chat/completions", &body(true)).await).await;
        assert_eq!(status, 200);
        assert!(text.contains("error"), "the stream ends with an error event");
        // A breaker that opens on one failure is still closed: the next call reaches the provider.
        let _ = status_json(post(&router, "/v1/chat/completions", &body(true)).await).await;
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_still_being_sent_at_the_first_byte_timeout_is_named_as_such() {
    bounded(30, async {
        // The provider accepts and never reads: a large body cannot be written whole.
        let (port, _conns, _task) = raw_upstream(|_, s| async move {
            tokio::time::sleep(std::time::Duration::from_secs(10)).await;
            drop(s);
        })
        .await;
        let over = json!({ "retry": { "maxRetries": 0 }, "timeouts": { "firstByteMs": 300 } });
        let (_ks, router) = router_for(&format!("http://127.0.0.1:{port}"), over, None).await;
        let big = json!({ "model": "gpt-4o", "max_tokens": 5,
            "messages": [{ "role": "user", "content": "x".repeat(24 << 20) }] });
        let (status, _, text) =
            status_json(post(&router, "/v1/chat/completions", &big).await).await;
        assert_eq!(status, 502, "{text}");
        assert!(text.contains("still being sent"), "{text}");
        assert!(!text.contains("no connection"), "{text}");
        router.stop().await;
    })
    .await;
}
