//! Reliability where the SDK tests cannot reach: connection errors on a closed port (retried, then 502, and
//! counted by the breaker once per call; a connection that fails after the request was written is
//! never sent again: tests/no_resend.rs), the total
//! timeout of a stream that never goes idle and of a slow JSON answer, retry bounds in time, which
//! statuses are retried, and the exact fail-fast answer of an open breaker. Clients that stop reading
//! a stream or read it too slowly (cut off by the idle and total timeouts, the upstream closed and the
//! hold settled), and streamed half-open probes (a success at their head, a failure still counted).

mod common;

use common::raw::*;
use common::*;
use iron_runtime::RouterEvent;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_errors_are_retried_then_answered_502_and_release_the_hold() {
    bounded(20, async {
        let url = format!("http://127.0.0.1:{}", closed_port());
        let (_ks, router) = router_for(&url, json!({}), Some(1.0)).await;
        let t0 = Instant::now();
        let (status, json, _) =
            status_json(post(&router, "/v1/chat/completions", &body(false)).await).await;
        assert_eq!(status, 502);
        assert_eq!(json["error"]["type"], "server_error");
        assert_eq!(retries(&router), 2, "1 attempt + maxRetries 2 retries");
        // The answer to a call the router retried: no SDK retries on top.
        let again = post(&router, "/v1/chat/completions", &body(false)).await;
        assert_eq!(
            again
                .headers()
                .get("x-should-retry")
                .and_then(|v| v.to_str().ok()),
            Some("false")
        );
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        let s = router.budget_status();
        assert_eq!((s.reserved_micros, s.spent_micros), (0, 0));
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_errors_count_towards_the_breaker_which_then_fails_fast() {
    bounded(20, async {
        let url = format!("http://127.0.0.1:{}", closed_port());
        let over =
            json!({ "breaker": { "consecutiveFailures": 3, "openMs": 30000, "maxOpenMs": 60000 } });
        let (_ks, router) = router_for(&url, over, None).await;
        let mut sub = router.events().subscribe();
        // Each call (three attempts: one, then two retries) is one failure: the third opens it.
        for _ in 0..3 {
            let (status, _, _) =
                status_json(post(&router, "/v1/chat/completions", &body(false)).await).await;
            assert_eq!(status, 502);
        }
        let circuit = loop {
            let ev = sub.recv().await.expect("event bus open");
            if let RouterEvent::Circuit {
                provider,
                host,
                state,
                reason,
                ..
            } = &**ev
            {
                break (
                    provider.clone(),
                    host.clone(),
                    state.clone(),
                    reason.clone(),
                );
            }
        };
        // Breakers are per upstream host and port.
        assert!(circuit.1.starts_with("127.0.0.1:"), "{circuit:?}");
        assert_eq!(
            circuit,
            (
                "openai".into(),
                circuit.1.clone(),
                "open".into(),
                "3 consecutive failures".into()
            )
        );

        // Open: 503 in the OpenAI shape, without an attempt (no retry counted), with the wait in seconds.
        let t0 = Instant::now();
        let resp = post(&router, "/v1/chat/completions", &body(false)).await;
        let took = t0.elapsed();
        assert_eq!(resp.status().as_u16(), 503);
        let h = resp.headers().clone();
        assert_eq!(
            h.get("x-iron-cage-error").and_then(|v| v.to_str().ok()),
            Some("CIRCUIT_OPEN")
        );
        let retry_after: u64 = h
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("retry-after in seconds");
        assert!((29..=30).contains(&retry_after), "{retry_after}");
        // Fail fast means the SDK does not sit out the retry-after inside one call either.
        assert_eq!(
            h.get("x-should-retry").and_then(|v| v.to_str().ok()),
            Some("false")
        );
        let (_, json, _) = status_json(resp).await;
        assert_eq!(json["error"]["code"], "circuit_open");
        assert_eq!(json["error"]["type"], "server_error");
        let msg = json["error"]["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains("circuit breaker is open for openai at 127.0.0.1"),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("next probe is allowed in {retry_after} s")),
            "{msg}"
        );
        assert_eq!(retries(&router), 6);
        assert!(took < Duration::from_millis(200), "fail fast took {took:?}");
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_breaker_retry_after_is_capped_at_sixty_seconds() {
    bounded(20, async {
        let url = format!("http://127.0.0.1:{}", closed_port());
        let over = json!({
            "breaker": { "consecutiveFailures": 1, "openMs": 600000, "maxOpenMs": 600000 },
            "retry": { "maxRetries": 0 }
        });
        let (_ks, router) = router_for(&url, over, None).await;
        assert_eq!(
            post(&router, "/v1/chat/completions", &body(false))
                .await
                .status()
                .as_u16(),
            502
        );
        let resp = post(&router, "/v1/chat/completions", &body(false)).await;
        assert_eq!(resp.status().as_u16(), 503);
        assert_eq!(
            resp.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("60")
        );
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stop_at_max_total_ms() {
    bounded(20, async {
        let url = format!("http://127.0.0.1:{}", closed_port());
        // Equal jitter: every wait is 50..100 ms, so a 350 ms budget fits at least 2 and at most 7 retries.
        let over = json!({ "retry": { "maxRetries": 10, "baseMs": 100, "maxBackoffMs": 100, "maxTotalMs": 350, "jitter": "equal" } });
        let (_ks, router) = router_for(&url, over, None).await;
        let t0 = Instant::now();
        assert_eq!(post(&router, "/v1/chat/completions", &body(false)).await.status().as_u16(), 502);
        let took = t0.elapsed();
        let n = retries(&router);
        assert!((2..=7).contains(&n), "{n} retries");
        assert!(took >= Duration::from_millis(50 * n), "{took:?} for {n} retries");
        assert!(took < Duration::from_millis(350 + 500), "{took:?}");
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_500_502_503_504_and_529_are_retried() {
    bounded(20, async {
        for (status, attempts) in [
            (500, 3),
            (502, 3),
            (503, 3),
            (504, 3),
            (529, 3),
            (501, 1),
            (400, 1),
            (404, 1),
            (409, 1),
            (429, 1),
        ] {
            let provider = FakeProvider::start(Reply::Json {
                status,
                body: json!({ "error": { "message": "x", "type": "server_error" } }).to_string(),
            })
            .await;
            let (_ks, router) = router_for(&provider.url(), json!({}), None).await;
            let resp = post(&router, "/v1/chat/completions", &body(false)).await;
            assert_eq!(resp.status().as_u16(), status);
            // After the router's own retries the SDK is told not to retry on top (6 attempts per
            // call with an SDK's default 2 retries, enough to open a breaker); otherwise the
            // provider's answer is passed on as it came.
            let no_retry = resp
                .headers()
                .get("x-should-retry")
                .and_then(|v| v.to_str().ok());
            assert_eq!(
                no_retry,
                (attempts > 1).then_some("false"),
                "status {status}"
            );
            assert_eq!(provider.seen().len(), attempts, "status {status}");
            assert_eq!(retries(&router), attempts as u64 - 1, "status {status}");
            router.stop().await;
        }
    })
    .await;
}

/// Plain words (digits in a stream could be held back by the response PII filter as a possible number).
/// An SSE stream that never pauses longer than 40 ms (so the idle timeout never fires) and never ends.
fn endless_events() -> Reply {
    let events = (0..500)
        .map(|i| {
            format!(
                "data: {}\n\n",
                json!({ "id": "c", "object": "chat.completion.chunk", "model": "gpt-4o",
                        "choices": [{ "index": 0, "delta": { "content": format!(" {}", WORDS[i % WORDS.len()]) }, "finish_reason": null }] })
            )
        })
        .collect();
    Reply::Sse {
        events,
        gap: Duration::from_millis(40),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_timeout_ends_a_busy_stream_with_an_sse_error_event() {
    bounded(20, async {
        let provider = FakeProvider::start(endless_events()).await;
        let over = json!({ "timeouts": { "connectMs": 300, "firstByteMs": 300, "idleMs": 300, "totalMs": 600 } });
        let (_ks, router) = router_for(&provider.url(), over, Some(1.0)).await;
        let mut sub = router.events().subscribe();
        let t0 = Instant::now();
        let mut resp = post(&router, "/v1/chat/completions", &body(true)).await;
        assert_eq!(resp.status().as_u16(), 200);
        let mut text = String::new();
        while let Some(chunk) = resp.chunk().await.expect("the stream ends cleanly, not with a broken body") {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(580), "{took:?}");
        assert!(took < Duration::from_millis(600 + 700), "{took:?}");
        assert!(text.contains("lorem"), "content was relayed before the deadline: {text}");
        let tail = text.trim_end().rsplit("\n\n").next().unwrap_or_default().to_string();
        assert!(tail.starts_with("event: error\ndata: "), "{tail}");
        let err: Value = serde_json::from_str(tail.trim_start_matches("event: error\ndata: ")).expect("JSON error");
        assert_eq!(err["error"]["type"], "server_error");
        let msg = err["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains("timed out") && msg.contains("the total timeout ran out"), "{msg}");
        assert_eq!(provider.seen().len(), 1);
        let outcome = loop {
            let ev = sub.recv().await.expect("event bus open");
            if let RouterEvent::Response { outcome, .. } = &**ev {
                break outcome.clone();
            }
        };
        assert_eq!(outcome, "timeout");
        assert_eq!(router.budget_status().reserved_micros, 0);
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_timeout_ends_a_slow_json_answer_with_504() {
    bounded(20, async {
        // Headers at once, then a byte of body every 50 ms: never idle, never finished in time.
        let (port, count, _task) = raw_upstream(|_, mut s| async move {
            if !read_request(&mut s).await {
                return;
            }
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n";
            if s.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            for _ in 0..1000 {
                if s.write_all(b" ").await.is_err() || s.flush().await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        let over = json!({ "timeouts": { "connectMs": 300, "firstByteMs": 300, "idleMs": 300, "totalMs": 500 } });
        let (_ks, router) = router_for(&format!("http://127.0.0.1:{port}"), over, Some(1.0)).await;
        let t0 = Instant::now();
        let (status, json, _) = status_json(post(&router, "/v1/chat/completions", &body(false)).await).await;
        let took = t0.elapsed();
        assert_eq!(status, 504);
        assert!(json["error"]["message"].as_str().unwrap_or_default().contains("total timeout"), "{json}");
        assert!(took >= Duration::from_millis(480) && took < Duration::from_millis(500 + 700), "{took:?}");
        assert_eq!(count.load(Ordering::SeqCst), 1, "not retried once the head had arrived");
        assert_eq!(router.budget_status().reserved_micros, 0);
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_answer_cut_short_is_a_502_naming_the_cause_even_with_response_checks_off() {
    bounded(20, async {
        // Half the promised body, then the provider hangs up.
        let (port, count, _task) = raw_upstream(|_, mut s| async move {
            if !read_request(&mut s).await {
                return;
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                OK_JSON.len()
            );
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(&OK_JSON.as_bytes()[..OK_JSON.len() / 2]).await;
            let _ = s.flush().await;
        })
        .await;
        let ks = FakeKeyServer::with_key(
            OPENAI_KEY,
            Some("openai"),
            &format!("http://127.0.0.1:{port}"),
        )
        .await;
        let router = start_router(
            &ks,
            json!({ "reliability": reliability(json!({})), "budgetUsd": 1.0,
                    "safety": { "response": { "default": "off", "secret": "off" } } }),
        );
        router.ready().await.expect("key fetched");
        let resp = post(&router, "/v1/chat/completions", &body(false)).await;
        // The provider produced (and bills) the answer: an SDK's retry would be a second call.
        assert_eq!(
            resp.headers()
                .get("x-should-retry")
                .and_then(|v| v.to_str().ok()),
            Some("false")
        );
        let (status, json, _) = status_json(resp).await;
        // A clean provider-shaped error the SDK can act on, not a body that ends mid-JSON.
        assert_eq!(status, 502, "{json}");
        let message = json["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("broke off"), "{json}");
        assert_eq!(
            count.load(Ordering::SeqCst),
            1,
            "not retried once the head had arrived"
        );
        assert_eq!(router.budget_status().reserved_micros, 0);
        router.stop().await;
    })
    .await;
}

/// A keep-alive answer (no `connection: close`) for a raw upstream.
fn keep_alive_response() -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{OK_JSON}",
        OK_JSON.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_reused_and_one_closed_while_idle_is_replaced() {
    bounded(20, async {
        // Connection 1 answers twice and connection 2 once, each then closed by the provider
        // while it sits idle in the pool; later connections answer whatever comes.
        let (port, count, _task) = raw_upstream(|n, mut s| async move {
            let answers = match n {
                1 => 2,
                2 => 1,
                _ => 100,
            };
            for _ in 0..answers {
                if !read_request(&mut s).await {
                    return;
                }
                if s.write_all(keep_alive_response().as_bytes()).await.is_err() {
                    return;
                }
            }
        })
        .await;
        let (_ks, router) = router_for(
            &format!("http://127.0.0.1:{port}"),
            json!({ "retry": { "maxRetries": 0 } }),
            None,
        )
        .await;
        // One keep-alive client connection: its calls are served on one connection thread, whose
        // pool the upstream connection goes back to.
        let agent = client();
        let call = || async {
            let resp = post_on(&agent, &router, "/v1/chat/completions", &body(false)).await;
            let (status, json, _) = status_json(resp).await;
            assert_eq!(status, 200, "{json}");
        };
        call().await;
        call().await;
        assert_eq!(
            count.load(Ordering::SeqCst),
            1,
            "the second call reused the connection"
        );
        let http = &router.shared().http;
        assert_eq!(http.idle_connections(), 1);
        // Once the provider's close has arrived, the pool's sweep drops the connection.
        tokio::time::sleep(Duration::from_millis(100)).await;
        http.sweep();
        assert_eq!(http.idle_connections(), 0);
        call().await;
        assert_eq!(count.load(Ordering::SeqCst), 2);
        // Connection 2 is closed while idle and not swept: the next call takes a new connection
        // instead of failing on the dead one.
        tokio::time::sleep(Duration::from_millis(100)).await;
        call().await;
        assert_eq!(count.load(Ordering::SeqCst), 3);
        assert_eq!(
            retries(&router),
            0,
            "replacing a closed idle connection is not a retry"
        );
        router.stop().await;
    })
    .await;
}
