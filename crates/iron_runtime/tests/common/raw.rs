//! Raw loopback upstreams for the reliability tests: a provider written byte by byte (statuses,
//! dropped connections, slow heads), a router over it with a breaker that never opens and tiny
//! backoff unless a test says otherwise.

use super::*;
use iron_runtime::Router;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use tokio::io::AsyncReadExt;

/// Breaker that never opens and tiny backoff, unless a test overrides a part.
pub fn reliability(over: Value) -> Value {
    let mut r = json!({
        "breaker": { "consecutiveFailures": 1000, "minimumCalls": 1000, "windowSize": 1000, "openMs": 30000 },
        "retry": { "maxRetries": 2, "baseMs": 5, "maxBackoffMs": 20, "maxTotalMs": 3000 },
        "timeouts": { "connectMs": 1000, "firstByteMs": 1000, "idleMs": 1000, "totalMs": 5000 }
    });
    if let (Some(base), Some(over)) = (r.as_object_mut(), over.as_object()) {
        for (part, fields) in over {
            if let (Some(dst), Some(src)) = (
                base.get_mut(part).and_then(Value::as_object_mut),
                fields.as_object(),
            ) {
                for (k, v) in src {
                    dst.insert(k.clone(), v.clone());
                }
            }
        }
    }
    r
}

pub async fn router_for(
    provider_url: &str,
    over: Value,
    budget: Option<f64>,
) -> (FakeKeyServer, Router) {
    let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), provider_url).await;
    let mut opts = json!({ "reliability": reliability(over) });
    if let Some(b) = budget {
        opts["budgetUsd"] = json!(b);
    }
    let router = start_router(&ks, opts);
    router.ready().await.expect("key fetched");
    (ks, router)
}

pub fn retries(router: &Router) -> u64 {
    router.shared().stats.snapshot().retries
}

pub fn body(stream: bool) -> Value {
    json!({ "model": "gpt-4o", "max_tokens": 50, "stream": stream,
            "messages": [{ "role": "user", "content": "Say hello." }] })
}

/// Read one HTTP/1.1 request (headers and a content-length body); false if the peer went away.
pub async fn read_request(s: &mut tokio::net::TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    loop {
        let n = match s.read(&mut tmp).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        buf.extend_from_slice(&tmp[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return true;
            }
        }
    }
}

/// A raw upstream: for connection number n (from 1) it calls `answer(n, socket)`; counts connections.
pub async fn raw_upstream<F, Fut>(answer: F) -> (u16, Arc<AtomicU32>, tokio::task::JoinHandle<()>)
where
    F: Fn(u32, tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let count = Arc::new(AtomicU32::new(0));
    let seen = count.clone();
    let answer = Arc::new(answer);
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
            let answer = answer.clone();
            tokio::spawn(async move { answer(n, s).await });
        }
    });
    (port, count, task)
}

pub const OK_JSON: &str = r#"{"id":"c1","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#;

pub fn ok_response() -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{OK_JSON}",
        OK_JSON.len()
    )
}

/// Words for streamed test answers.
pub const WORDS: [&str; 5] = ["lorem", "ipsum", "dolor", "sit", "amet"];
