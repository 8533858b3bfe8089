//! Clients that stop reading or read slowly: cut off at the idle or total timeout (upstream
//! closed, charged, hold released, outcome `client_timeout`), while a normal reader of a large burst
//! and a fast reader of an endless stream are bounded only by the total timeout. A client that
//! leaves while the provider works does not cut the call short: it settles as the provider ended it.

mod common;

use common::raw::*;
use common::*;
use iron_runtime::RouterEvent;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_before_the_answer_does_not_cut_the_call_short() {
    bounded(20, async {
        // The provider answers 300 ms after it read the request; the client is gone by then.
        let (port, _, _task) = raw_upstream(|_, mut s| async move {
            if read_request(&mut s).await {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let _ = s.write_all(ok_response().as_bytes()).await;
            }
        })
        .await;
        let (_ks, router) = router_for(&format!("http://127.0.0.1:{port}"), json!({}), Some(1.0)).await;
        let mut sub = router.events().subscribe();
        let body = body(false).to_string();
        let request = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {IC}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            router.port(),
            body.len()
        );
        let mut client = tokio::net::TcpStream::connect(("127.0.0.1", router.port())).await.expect("connect");
        client.write_all(request.as_bytes()).await.expect("request sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(client);
        let (outcome, cost) = loop {
            let ev = sub.recv().await.expect("event bus open");
            if let RouterEvent::Response { outcome, cost_micros, .. } = &**ev {
                break (outcome.clone(), *cost_micros);
            }
        };
        // The whole answer was read from the provider and priced from its usage (5 + 1 tokens of
        // gpt-4o), and nothing stays held.
        assert_eq!(outcome, "complete");
        assert!(cost > 0);
        let b = router.budget_status();
        assert_eq!((b.reserved_micros, b.spent_micros), (0, cost));
        router.stop().await;
    })
    .await;
}
