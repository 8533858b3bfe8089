//! The breaker's half-open probes when the probe is a stream: its 2xx head closes the breaker, so
//! other calls flow while it streams, and a failure later in it still counts.

mod common;

use common::raw::*;
use common::*;
use iron_runtime::RouterEvent;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

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
