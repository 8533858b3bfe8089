//! Reliability where the SDK tests cannot reach: connection errors on a closed port (retried, then 502, and
//! counted by the breaker), a connection dropped before any answer (retried into a success), the total
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
        // Three attempts (one call, two retries) are three failures: the breaker opens on the last one.
        let (status, _, _) =
            status_json(post(&router, "/v1/chat/completions", &body(false)).await).await;
        assert_eq!(status, 502);
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
        assert_eq!(retries(&router), 2);
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
async fn a_connection_dropped_before_any_answer_is_retried_into_a_success() {
    bounded(20, async {
        let (port, count, _task) = raw_upstream(|n, mut s| async move {
            if !read_request(&mut s).await {
                return;
            }
            if n > 1 {
                let _ = s.write_all(ok_response().as_bytes()).await;
                let _ = s.flush().await;
            }
            // n == 1: close without a byte of answer.
        })
        .await;
        let (_ks, router) = router_for(&format!("http://127.0.0.1:{port}"), json!({}), None).await;
        let (status, json, _) =
            status_json(post(&router, "/v1/chat/completions", &body(false)).await).await;
        assert_eq!(status, 200);
        assert_eq!(json["choices"][0]["message"]["content"], "hello");
        assert_eq!(count.load(Ordering::SeqCst), 2);
        assert_eq!(retries(&router), 1);
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
const WORDS: [&str; 5] = ["lorem", "ipsum", "dolor", "sit", "amet"];

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
        assert!(msg.contains("timed out") && msg.contains("total"), "{msg}");
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
        let (status, json, _) =
            status_json(post(&router, "/v1/chat/completions", &body(false)).await).await;
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
        let call = || async {
            let (status, json, _) =
                status_json(post(&router, "/v1/chat/completions", &body(false)).await).await;
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

/// The next `n` circuit events as "state: reason" (fewer if they do not come within 5 s).
async fn circuit_events(sub: &mut iron_runtime::events::Subscription, n: usize) -> Vec<String> {
    let mut seen = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while seen.len() < n {
        let Ok(ev) = tokio::time::timeout_at(until, sub.recv()).await else {
            break;
        };
        if let RouterEvent::Circuit { state, reason, .. } = &**ev.expect("event bus open") {
            seen.push(format!("{state}: {reason}"));
        }
    }
    seen
}

/// An upstream whose first connection answers 500, whose second streams `parts` (chunked, 100 ms
/// apart; finished with the last chunk if `complete`, else cut off), and whose later ones answer
/// a JSON completion. Every answer closes its connection.
async fn recovering_upstream(
    parts: usize,
    complete: bool,
) -> (u16, Arc<AtomicU32>, tokio::task::JoinHandle<()>) {
    raw_upstream(move |n, mut s| async move {
        if !read_request(&mut s).await {
            return;
        }
        match n {
            1 => {
                let body = r#"{"error":{"message":"boom","type":"server_error"}}"#;
                let _ = s
                    .write_all(format!("HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).as_bytes())
                    .await;
            }
            2 => {
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for i in 0..parts {
                    let ev = format!(
                        "data: {}\n\n",
                        json!({ "id": "c", "object": "chat.completion.chunk", "model": "gpt-4o",
                                "choices": [{ "index": 0, "delta": { "content": format!(" {}", WORDS[i % WORDS.len()]) }, "finish_reason": null }] })
                    );
                    if s.write_all(format!("{:x}\r\n{ev}\r\n", ev.len()).as_bytes()).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                if complete {
                    let done = "data: [DONE]\n\n";
                    let _ = s.write_all(format!("{:x}\r\n{done}\r\n0\r\n\r\n", done.len()).as_bytes()).await;
                }
            }
            _ => {
                let _ = s.write_all(ok_response().as_bytes()).await;
            }
        }
        let _ = s.flush().await;
    })
    .await
}

/// A breaker that opens on one failure, half-opens after 200 ms and needs one probe.
fn one_probe_breaker() -> Value {
    json!({
        "breaker": { "consecutiveFailures": 1, "openMs": 200, "maxOpenMs": 200, "halfOpenProbes": 1 },
        "retry": { "maxRetries": 0 }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_probe_closes_the_breaker_at_its_head_so_other_calls_flow_during_its_stream() {
    bounded(30, async {
        // The probe's stream lasts 3 s.
        let (port, count, _task) = recovering_upstream(30, true).await;
        let (_ks, router) = router_for(
            &format!("http://127.0.0.1:{port}"),
            one_probe_breaker(),
            None,
        )
        .await;
        let mut sub = router.events().subscribe();
        assert_eq!(
            post(&router, "/v1/chat/completions", &body(false))
                .await
                .status()
                .as_u16(),
            500
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        // The first call after the open period is the probe: a healthy stream.
        let mut probe = post(&router, "/v1/chat/completions", &body(true)).await;
        assert_eq!(probe.status().as_u16(), 200);
        let first = probe.chunk().await.expect("read").expect("a first piece");
        assert!(String::from_utf8_lossy(&first).contains("data: "));
        // While the probe still streams, other calls reach the provider (before: 503, all of them).
        let mut during = Vec::new();
        for _ in 0..3 {
            during.push(
                post(&router, "/v1/chat/completions", &body(false))
                    .await
                    .status()
                    .as_u16(),
            );
        }
        assert_eq!(during, [200, 200, 200]);
        let mut text = String::from_utf8_lossy(&first).into_owned();
        while let Some(c) = probe
            .chunk()
            .await
            .expect("the probe's stream ends cleanly")
        {
            text.push_str(&String::from_utf8_lossy(&c));
        }
        assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
        assert_eq!(count.load(Ordering::SeqCst), 5);
        assert_eq!(
            circuit_events(&mut sub, 3).await,
            [
                "open: 1 consecutive failures",
                "half_open: open period of 200 ms elapsed",
                "closed: probe succeeded"
            ]
        );
        // The probe's end counted nothing more: the window holds the three calls made since.
        let b = router.shared().policies.reliability.breakers.snapshots();
        assert_eq!(
            (b[0].2.calls_in_window, b[0].2.failures_in_window),
            (3, 0),
            "{b:?}"
        );
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_probe_that_breaks_after_its_head_still_counts_as_a_failure() {
    bounded(30, async {
        // The probe's stream breaks after three chunks.
        let (port, _count, _task) = recovering_upstream(3, false).await;
        let (_ks, router) = router_for(
            &format!("http://127.0.0.1:{port}"),
            one_probe_breaker(),
            None,
        )
        .await;
        let mut sub = router.events().subscribe();
        assert_eq!(
            post(&router, "/v1/chat/completions", &body(false))
                .await
                .status()
                .as_u16(),
            500
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        let (status, _, text) =
            status_json(post(&router, "/v1/chat/completions", &body(true)).await).await;
        assert_eq!(status, 200);
        assert!(
            text.contains("event: error"),
            "the client learns the stream broke: {text}"
        );
        // Closed at the head; the break later is a failure in the closed window, which (one
        // failure opens this breaker) opens it again.
        assert_eq!(
            circuit_events(&mut sub, 4).await,
            [
                "open: 1 consecutive failures",
                "half_open: open period of 200 ms elapsed",
                "closed: probe succeeded",
                "open: 1 consecutive failures"
            ]
        );
        assert_eq!(
            post(&router, "/v1/chat/completions", &body(false))
                .await
                .status()
                .as_u16(),
            503
        );
        router.stop().await;
    })
    .await;
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

/// One OpenAI chat chunk of SSE, about 2 KB of words.
fn big_chunk() -> String {
    let text: String = (0..340)
        .map(|i| format!(" {}", WORDS[i % WORDS.len()]))
        .collect();
    format!(
        "data: {}\n\n",
        json!({ "id": "c", "object": "chat.completion.chunk", "model": "gpt-4o",
                "choices": [{ "index": 0, "delta": { "content": text }, "finish_reason": null }] })
    )
}

/// An upstream that answers every request with an SSE stream written as fast as the socket takes
/// it, forever; `closed` is set once the router has closed the connection (a write fails).
async fn flooding_upstream() -> (
    u16,
    Arc<std::sync::atomic::AtomicBool>,
    tokio::task::JoinHandle<()>,
) {
    let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = closed.clone();
    let (port, _count, task) = raw_upstream(move |_, mut s| {
        let flag = flag.clone();
        async move {
            if !read_request(&mut s).await {
                return;
            }
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
            let chunk = big_chunk();
            let framed = format!("{:x}\r\n{chunk}\r\n", chunk.len());
            let mut ok = s.write_all(head.as_bytes()).await.is_ok();
            while ok {
                ok = s.write_all(framed.as_bytes()).await.is_ok();
            }
            flag.store(true, Ordering::SeqCst);
        }
    })
    .await;
    (port, closed, task)
}

/// The next `response` event: (status, outcome, cost in µ$, estimated).
async fn next_response(sub: &mut iron_runtime::events::Subscription) -> (u16, String, u64, bool) {
    loop {
        let ev = sub.recv().await.expect("event bus open");
        if let RouterEvent::Response {
            status,
            outcome,
            cost_micros,
            estimated,
            ..
        } = &**ev
        {
            return (*status, outcome.clone(), *cost_micros, *estimated);
        }
    }
}

/// Waits (up to `secs`) until `done` holds; false if it never did.
async fn eventually(secs: u64, done: impl Fn() -> bool) -> bool {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}

/// Send a streamed chat request on a raw socket and read until the answer's first bytes arrive.
async fn raw_stream_request(port: u16) -> (tokio::net::TcpStream, Vec<u8>) {
    let body = body(true).to_string();
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nauthorization: Bearer {IC}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut got = vec![0u8; 4096];
    let n = s.read(&mut got).await.expect("read the head");
    got.truncate(n);
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    (s, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_a_stream_is_cut_off_after_the_idle_timeout() {
    bounded(30, async {
        let (port, upstream_closed, _task) = flooding_upstream().await;
        // The total timeout is far away: only the idle timeout can end this call.
        let over = json!({ "timeouts": { "connectMs": 1000, "firstByteMs": 1000, "idleMs": 500, "totalMs": 60000 } });
        let ks = FakeKeyServer::with_key(
            OPENAI_KEY,
            Some("openai"),
            &format!("http://127.0.0.1:{port}"),
        )
        .await;
        // A state file, to read the call's ledger row back.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("iron-stall-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let db = dir.join("state.db");
        let router = start_router(
            &ks,
            json!({ "reliability": reliability(over), "budgetUsd": 1.0,
                    "statePath": db.to_string_lossy(), "agentId": "stall-agent" }),
        );
        router.ready().await.expect("key fetched");
        let mut sub = router.events().subscribe();
        // The client reads the head of the answer, then nothing more, and keeps its socket open.
        let (mut client, _) = raw_stream_request(router.port()).await;
        assert!(router.budget_status().reserved_micros > 0, "held while streaming");
        // Before the fix both stayed until the client's socket closed, however long that took.
        let released = eventually(15, || {
            upstream_closed.load(Ordering::SeqCst) && router.budget_status().reserved_micros == 0
        })
        .await;
        assert!(
            released,
            "upstream closed: {}, still reserved: {} µ$",
            upstream_closed.load(Ordering::SeqCst),
            router.budget_status().reserved_micros
        );
        // Settled like a client that left: charged for what was streamed (an estimate, the usage
        // never came), and why it ended is on record.
        let (status, outcome, cost, estimated) = next_response(&mut sub).await;
        assert_eq!((status, outcome.as_str(), estimated), (200, "client_timeout", true));
        let s = router.budget_status();
        assert_eq!((s.reserved_micros, s.spent_micros), (0, cost));
        assert!(cost > 0);
        // The provider did nothing wrong: the breaker did not count it.
        let breakers = router.shared().policies.reliability.breakers.snapshots();
        assert_eq!(breakers.len(), 1);
        assert_eq!(breakers[0].2.calls_in_window, 0, "{breakers:?}");
        // A client that reads again gets what was already on its way, and then a body that ends
        // broken (no final chunk), not an answer that looks complete.
        let mut rest = Vec::new();
        let _ = client.read_to_end(&mut rest).await;
        assert!(!rest.is_empty());
        assert!(!rest.ends_with(b"0\r\n\r\n"), "the body ended as if complete");
        router.stop().await;
        // The ledger row says why the call ended and what it was charged.
        let store = iron_runtime_state::Store::open(iron_runtime_state::StoreConfig::at_path(&db))
            .expect("reopen the state file");
        let rows = store.requests_for_agent("stall-agent").expect("rows");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].status, rows[0].error_code.as_deref(), rows[0].estimated, rows[0].cost_micros),
            (200, Some("client_timeout"), true, cost)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_is_cut_off_at_the_total_timeout() {
    bounded(30, async {
        let (port, upstream_closed, _task) = flooding_upstream().await;
        let over = json!({ "timeouts": { "connectMs": 1000, "firstByteMs": 1000, "idleMs": 1500, "totalMs": 2000 } });
        let (_ks, router) = router_for(&format!("http://127.0.0.1:{port}"), over, Some(1.0)).await;
        let mut sub = router.events().subscribe();
        let t0 = Instant::now();
        let (mut client, _) = raw_stream_request(router.port()).await;
        // The client keeps reading, a little at a time (never idle for long): the total timeout
        // still bounds the call, delivery included.
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                match client.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        });
        let released = eventually(15, || {
            upstream_closed.load(Ordering::SeqCst) && router.budget_status().reserved_micros == 0
        })
        .await;
        assert!(released, "the call went on past totalMs: {:?}", t0.elapsed());
        let (status, outcome, _, _) = next_response(&mut sub).await;
        assert_eq!(status, 200);
        // Waiting on the client when the time ran out, or (rarely) between two pieces.
        assert!(outcome == "client_timeout" || outcome == "timeout", "{outcome}");
        reader.abort();
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_reader_gets_a_large_burst_whole_with_a_short_idle_timeout() {
    bounded(30, async {
        // ~4 MB at once, far more than the relay's channel and the sockets' buffers hold.
        let mut events: Vec<String> = (0..2000).map(|_| big_chunk()).collect();
        events.push("data: [DONE]\n\n".into());
        let all: String = events.concat();
        let provider = FakeProvider::start(Reply::Sse {
            events: vec![all.clone()],
            gap: Duration::ZERO,
        })
        .await;
        let over = json!({ "timeouts": { "connectMs": 1000, "firstByteMs": 1000, "idleMs": 300, "totalMs": 20000 } });
        let (_ks, router) = router_for(&provider.url(), over, Some(1.0)).await;
        let mut sub = router.events().subscribe();
        let resp = post(&router, "/v1/chat/completions", &body(true)).await;
        assert_eq!(resp.status().as_u16(), 200);
        let text = resp.text().await.expect("the whole stream");
        // Every word arrives (the response filter may move a word to the next event).
        assert_eq!(streamed_text(&text), streamed_text(&all));
        assert!(text.trim_end().ends_with("data: [DONE]"));
        let (status, outcome, _, _) = next_response(&mut sub).await;
        assert_eq!((status, outcome.as_str()), (200, "complete"));
        assert_eq!(router.budget_status().reserved_micros, 0);
        router.stop().await;
    })
    .await;
}

/// A provider that always has more ready and a reader that keeps up: the total timeout's timer only
/// ran while the relay waited for the provider, which it never did, so the stream had no end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_timeout_ends_a_stream_that_always_has_more_ready_for_a_fast_reader() {
    bounded(30, async {
        let (port, upstream_closed, _task) = flooding_upstream().await;
        let over = json!({ "timeouts": { "connectMs": 1000, "firstByteMs": 1000, "idleMs": 1000, "totalMs": 1500 } });
        let (_ks, router) = router_for(&format!("http://127.0.0.1:{port}"), over, Some(1.0)).await;
        let mut sub = router.events().subscribe();
        let mut resp = post(&router, "/v1/chat/completions", &body(true)).await;
        assert_eq!(resp.status().as_u16(), 200);
        // Read as fast as possible, until the router ends the stream (or 15 s have passed).
        let t0 = Instant::now();
        let mut tail = Vec::new();
        while t0.elapsed() < Duration::from_secs(15) {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    tail.extend_from_slice(&c);
                    let keep = tail.len().saturating_sub(4096);
                    tail.drain(..keep);
                }
                Ok(None) | Err(_) => break,
            }
        }
        assert!(
            upstream_closed.load(Ordering::SeqCst) || eventually(2, || upstream_closed.load(Ordering::SeqCst)).await,
            "still streaming after {:?}",
            t0.elapsed()
        );
        let (status, outcome, _, _) = next_response(&mut sub).await;
        assert_eq!(status, 200);
        // Whichever side was slower when the time ran out: the router reading (the provider's
        // stream timed out) or the reader taking the pieces.
        assert!(outcome == "timeout" || outcome == "client_timeout", "{outcome}");
        assert_eq!(router.budget_status().reserved_micros, 0);
        router.stop().await;
    })
    .await;
}
