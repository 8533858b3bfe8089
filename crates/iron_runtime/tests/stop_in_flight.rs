//! `stop()` with calls in flight: a client still waiting gets a provider-shaped answer (a 503
//! `ROUTER_STOPPED` that says not to retry, or an SSE error event once the stream began), every
//! `request` event gets its `response` event (outcome `router_stopped`), and no budget stays
//! reserved. A call still waiting for the first key fetch gets the same 503.

mod common;

use common::raw::*;
use common::*;
use iron_runtime::RouterEvent;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

fn slow_timeouts() -> serde_json::Value {
    json!({ "timeouts": { "firstByteMs": 20000, "idleMs": 20000, "totalMs": 60000 } })
}

/// A non-streamed chat call sent from its own task, to be answered while the test goes on.
fn call_in_background(
    router: &iron_runtime::Router,
) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
    let url = format!("http://127.0.0.1:{}/v1/chat/completions", router.port());
    tokio::spawn(
        client()
            .post(url)
            .bearer_auth(IC)
            .header("content-type", "application/json")
            .body(body(false).to_string())
            .send(),
    )
}

/// The answer a call got at stop, checked to be the 503 `ROUTER_STOPPED` that says not to retry;
/// its body.
async fn stopped_answer(
    call: tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>,
) -> String {
    let resp = call
        .await
        .expect("task")
        .expect("an answer, not a socket error");
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers()["x-should-retry"], "false");
    assert_eq!(resp.headers()["x-iron-cage-error"], "ROUTER_STOPPED");
    let (_, json, text) = status_json(resp).await;
    assert_eq!(json["error"]["code"], "router_stopped", "{text}");
    text
}

fn outcomes(sub: &mut iron_runtime::events::Subscription) -> (Vec<u64>, Vec<(u64, String)>) {
    let (mut requests, mut ends) = (Vec::new(), Vec::new());
    while let Some(e) = sub.try_recv() {
        match &**e {
            RouterEvent::Request { request_id, .. } => requests.push(*request_id),
            RouterEvent::Response {
                request_id,
                outcome,
                ..
            } => ends.push((*request_id, outcome.clone())),
            RouterEvent::Blocked {
                request_id, code, ..
            } => ends.push((*request_id, code.clone())),
            _ => {}
        }
    }
    (requests, ends)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_waiting_for_its_answer_gets_a_503_that_says_do_not_retry() {
    bounded(20, async {
        // The provider takes the call and never answers.
        let (port, _, _task) = raw_upstream(|_, mut s| async move {
            read_request(&mut s).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        })
        .await;
        let (_ks, router) = router_for(
            &format!("http://127.0.0.1:{port}"),
            slow_timeouts(),
            Some(1.0),
        )
        .await;
        let mut sub = router.events().subscribe();
        let call = call_in_background(&router);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let held = router.budget_status().reserved_micros;
        assert!(held > 0, "the call holds budget");

        let started = Instant::now();
        router.stop().await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let text = stopped_answer(call).await;
        assert!(text.contains("router.stop()"), "{text}");

        let (requests, ends) = outcomes(&mut sub);
        assert_eq!(requests.len(), 1);
        assert_eq!(ends, vec![(requests[0], "router_stopped".to_string())]);
        // Its hold was charged (the provider has the call), and nothing stays reserved.
        let b = router.budget_status();
        assert_eq!((b.spent_micros, b.reserved_micros), (held, 0));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_at_stop_ends_with_an_sse_error_event() {
    bounded(20, async {
        // A stream that never ends: one chunk every 100 ms.
        let (port, _, _task) = raw_upstream(|_, mut s| async move {
            read_request(&mut s).await;
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
            if s.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            loop {
                let ev = r#"data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"content":"lorem "},"finish_reason":null}]}"#;
                if s.write_all(format!("{ev}\n\n").as_bytes()).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        let (_ks, router) =
            router_for(&format!("http://127.0.0.1:{port}"), slow_timeouts(), Some(1.0)).await;
        let mut sub = router.events().subscribe();
        let url = format!("http://127.0.0.1:{}/v1/chat/completions", router.port());
        let resp = client()
            .post(url)
            .bearer_auth(IC)
            .header("content-type", "application/json")
            .body(body(true).to_string())
            .send()
            .await
            .expect("head");
        assert_eq!(resp.status().as_u16(), 200);
        let reader = tokio::spawn(async move {
            let mut resp = resp;
            let mut text = String::new();
            loop {
                match resp.chunk().await {
                    Ok(Some(chunk)) => text.push_str(&String::from_utf8_lossy(chunk.as_ref())),
                    Ok(None) => break,
                    Err(e) => {
                        text.push_str(&format!("\n\n[body error: {e}]"));
                        break;
                    }
                }
            }
            text
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        router.stop().await;
        let text = reader.await.expect("reader");
        assert!(text.contains("lorem"), "{text}");
        let tail = text.rsplit("\n\n").find(|e| !e.trim().is_empty()).unwrap_or("");
        assert!(tail.starts_with("event: error") && tail.contains("router_stopped"), "{tail}");

        let (requests, ends) = outcomes(&mut sub);
        assert_eq!(requests.len(), 1);
        assert_eq!(ends, vec![(requests[0], "router_stopped".to_string())]);
        assert_eq!(router.budget_status().reserved_micros, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_client_left_ends_when_the_stop_stops_waiting() {
    bounded(20, async {
        let (port, _, _task) = raw_upstream(|_, mut s| async move {
            read_request(&mut s).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        })
        .await;
        let (_ks, router) = router_for(
            &format!("http://127.0.0.1:{port}"),
            slow_timeouts(),
            Some(1.0),
        )
        .await;
        let mut sub = router.events().subscribe();
        let url = format!("http://127.0.0.1:{}/v1/chat/completions", router.port());
        // The client gives up after 200 ms; the call stays at the provider.
        let _ = client()
            .post(url)
            .bearer_auth(IC)
            .header("content-type", "application/json")
            .body(body(false).to_string())
            .timeout(Duration::from_millis(200))
            .send()
            .await;
        let held = router.budget_status().reserved_micros;
        assert!(held > 0);
        let unsettled = router.stop_within(Duration::from_millis(200)).await;
        assert_eq!((unsettled.calls, unsettled.held_micros), (1, held));
        let b = router.budget_status();
        assert_eq!((b.spent_micros, b.reserved_micros), (held, 0));
        // The call ends now, with its closing event; its settling changes no figure.
        let mut ends = Vec::new();
        for _ in 0..50 {
            let (_, more) = outcomes(&mut sub);
            ends.extend(more);
            if !ends.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(ends.len(), 1, "{ends:?}");
        assert_eq!(ends[0].1, "router_stopped");
        assert_eq!(router.shared().calls.now(), 0);
        let b = router.budget_status();
        assert_eq!((b.spent_micros, b.reserved_micros), (held, 0));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_waiting_for_the_key_gets_the_same_503_not_a_key_server_error() {
    bounded(20, async {
        // The key server answers after 8 s: the call is still waiting for the key at stop.
        let up = FakeProvider::json(chat_completion()).await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &up.url()).await;
        ks.set_delay_ms(8_000);
        let router = start_router(&ks, json!({ "keyServerTimeoutMs": 9000, "budgetUsd": 1.0 }));
        let mut sub = router.events().subscribe();
        let call = call_in_background(&router);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            router.provider_now(),
            None,
            "the key fetch is still running"
        );

        router.stop().await;
        stopped_answer(call).await;

        // Its closing event names the stop, not the key server; the provider never got it.
        let (requests, ends) = outcomes(&mut sub);
        assert_eq!(requests.len(), 1);
        assert_eq!(ends, vec![(requests[0], "ROUTER_STOPPED".to_string())]);
        assert!(up.seen().is_empty());
        let b = router.budget_status();
        assert_eq!((b.spent_micros, b.reserved_micros), (0, 0));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_ttl_of_0_a_call_waiting_for_the_key_at_stop_is_not_sent_with_the_cached_one() {
    bounded(20, async {
        // Every call waits for a fetch (TTL 0); the first fetch answered at once, the next one
        // takes 8 s: a key is cached, within its grace, when the router stops.
        let up = FakeProvider::json(chat_completion()).await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &up.url()).await;
        let router = start_router(
            &ks,
            json!({ "keyServerTimeoutMs": 9000, "cacheTtlSeconds": 0 }),
        );
        router.ready().await.expect("first key");
        ks.set_delay_ms(8_000);
        let call = call_in_background(&router);
        tokio::time::sleep(Duration::from_millis(300)).await;
        router.stop().await;
        let resp = call.await.expect("task").expect("an answer");
        assert_eq!(resp.status().as_u16(), 503);
        assert_eq!(resp.headers()["x-iron-cage-error"], "ROUTER_STOPPED");
        assert!(up.seen().is_empty(), "the provider got a call after stop");
    })
    .await;
}
