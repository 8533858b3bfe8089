//! Limits on everything that comes in over the local port, and who may talk to it: DNS-rebinding
//! hosts, browser origins and preflights, header count and size, slow clients, connection count,
//! body size and token guessing. Each limit answers with its status and a clear error, and the
//! router keeps serving afterwards.

mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A router on a fake OpenAI provider answering a chat completion.
async fn setup(extra: serde_json::Value) -> (FakeProvider, FakeKeyServer, iron_runtime::Router) {
    let up = FakeProvider::json(chat_completion()).await;
    let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &up.url()).await;
    let router = start_router(&ks, extra);
    (up, ks, router)
}

fn get_root(port: u16, extra_headers: &str) -> String {
    format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra_headers}Connection: close\r\n\r\n")
}

/// The value of header `name` in a raw HTTP answer.
fn header_of(answer: &str, name: &str) -> Option<String> {
    let head = answer.split("\r\n\r\n").next()?;
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// The router still answers its health check at once.
async fn still_serving(port: u16) {
    let t = Instant::now();
    let answer = raw(port, &get_root(port, "")).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "health took {:?}",
        t.elapsed()
    );
}

/// Read until the peer closes or `limit` passes; returns what was read and whether it closed.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebinding_hosts_are_refused_with_403_and_a_reason() {
    bounded(10, async {
        let (_up, _ks, router) = setup(json!({})).await;
        let port = router.port();
        let mut sub = router.events().subscribe();
        let mut ids = Vec::new();
        for host in [
            format!("attacker.example:{port}"),
            format!("localhost.attacker.example:{port}"),
            format!("127.0.0.1.nip.io:{port}"),
            format!("0.0.0.0:{port}"),
            format!("[::ffff:127.0.0.1]:{port}"),
            format!("127.0.0.2:{port}"),
        ] {
            let answer = raw(port, &format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")).await;
            assert!(answer.starts_with("HTTP/1.1 403"), "{host}: {answer}");
            assert!(answer.contains("DNS rebinding"), "{host}: {answer}");
            ids.push(header_of(&answer, "x-iron-cage-request-id").expect("request id"));
        }
        // Listeners hear of it (an attack in progress), with the id the first answer carried; a
        // page sending them in a loop gets one event a second, not one each.
        let first = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                let ev = sub.recv().await.expect("bus");
                if let iron_runtime::RouterEvent::Blocked { request_id, reason, code, .. } = &**ev {
                    return (request_id.to_string(), reason.clone(), code.clone());
                }
            }
        })
        .await
        .expect("a blocked event");
        assert_eq!(first, (ids[0].clone(), "host".to_string(), "FORBIDDEN".to_string()));
        let mut more = Vec::new();
        while let Some(ev) = sub.try_recv() {
            if let iron_runtime::RouterEvent::Blocked { reason, .. } = &**ev {
                more.push(reason.clone());
            }
        }
        assert!(more.is_empty(), "one event for a burst of refusals: {more:?}");
        assert_eq!(router.shared().stats_snapshot().blocked_by_reason.get("host"), Some(&6), "every refusal counted");
        // An authorised API call through a rebinding host is refused before auth and never forwarded.
        let body = chat_body("gpt-4o-mini").to_string();
        let answer = raw(port, &format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: rebind.attacker.example:{port}\r\nAuthorization: Bearer {IC}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())).await;
        assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
        assert!(_up.seen().is_empty());
        // HTTP/1.0 without any Host header.
        let answer = raw(port, "GET / HTTP/1.0\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.0 403") || answer.starts_with("HTTP/1.1 403"), "{answer}");
        for host in [format!("LOCALHOST:{port}"), format!("[::1]:{port}")] {
            let answer = raw(port, &format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")).await;
            assert!(answer.starts_with("HTTP/1.1 200"), "{host}: {answer}");
        }
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_requests_are_refused_unless_their_origin_is_listed() {
    bounded(10, async {
        let (up, _ks, router) = setup(json!({"allowedOrigins": ["http://localhost:3000"]})).await;
        let port = router.port();
        let mut sub = router.events().subscribe();
        let call = |headers: &str| {
            let body = chat_body("gpt-4o-mini").to_string();
            format!("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {IC}\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
        };
        for h in [
            "Origin: https://attacker.example\r\n",
            "Origin: null\r\n",
            "Origin: http://localhost:3000.attacker.example\r\n",
            "Sec-Fetch-Site: cross-site\r\n",
            "Origin: https://attacker.example\r\nanthropic-dangerous-direct-browser-access: true\r\n",
        ] {
            let answer = raw(port, &call(h)).await;
            assert!(answer.starts_with("HTTP/1.1 403"), "{h}: {answer}");
            assert!(answer.contains("allowedOrigins"), "{h}: {answer}");
            assert!(!answer.to_ascii_lowercase().contains("access-control-allow"), "{h}: {answer}");
            assert!(header_of(&answer, "x-iron-cage-request-id").is_some(), "{answer}");
        }
        let mut reasons = Vec::new();
        while let Some(ev) = sub.try_recv() {
            if let iron_runtime::RouterEvent::Blocked { reason, .. } = &**ev {
                reasons.push(reason.clone());
            }
        }
        assert_eq!(reasons, ["origin"], "one event a second per reason");
        assert!(up.seen().is_empty(), "a refused browser request reached the provider");
        // The Anthropic browser flag alone is not a browser (server-side SDKs set it too); browsers
        // always add Origin or Sec-Fetch-Site, refused above.
        let answer = raw(port, &call("anthropic-dangerous-direct-browser-access: true\r\n")).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert_eq!(up.seen().len(), 1);

        // Preflight from an unlisted origin, or without any origin: 403, no CORS headers.
        for h in ["Origin: https://attacker.example\r\n", ""] {
            let answer = raw(port, &format!("OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{h}Access-Control-Request-Method: POST\r\nConnection: close\r\n\r\n")).await;
            assert!(answer.starts_with("HTTP/1.1 403"), "{h}: {answer}");
            assert!(!answer.to_ascii_lowercase().contains("access-control-allow"), "{answer}");
        }

        // Preflight from the listed origin: 204 naming that origin, never `*`.
        let answer = raw(port, &format!("OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://localhost:3000\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization, content-type\r\nConnection: close\r\n\r\n")).await;
        let lower = answer.to_ascii_lowercase();
        assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
        assert!(lower.contains("access-control-allow-origin: http://localhost:3000\r\n"), "{answer}");
        assert!(!lower.contains("access-control-allow-origin: *"), "{answer}");
        assert!(!lower.contains("access-control-allow-credentials"), "{answer}");
        assert_eq!(up.seen().len(), 1, "a preflight reached the provider");

        // The listed origin's real call still needs the token, and is answered with its origin.
        let answer = raw(port, &call("Origin: http://localhost:3000\r\n")).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.to_ascii_lowercase().contains("access-control-allow-origin: http://localhost:3000\r\n"));
        let answer = raw(port, &call("Origin: http://localhost:3000\r\n").replace(IC, "ic_wrong")).await;
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_or_too_large_headers_are_refused_and_the_router_survives() {
    bounded(15, async {
        let (_up, _ks, router) = setup(json!({})).await;
        let port = router.port();
        // 200 headers: over the 128 the parser accepts. hyper answers 431 and closes.
        let many: String = (0..200).map(|i| format!("X-Filler-{i}: v\r\n")).collect();
        let answer = raw(port, &get_root(port, &many)).await;
        assert!(
            answer.starts_with("HTTP/1.1 431"),
            "{:?}",
            &answer[..answer.len().min(200)]
        );
        still_serving(port).await;

        // One 100 KiB header: over the 64 KiB head limit. 431, connection closed. (hyper's
        // max_buf_size alone lets heads of up to about twice that through when they arrive in one
        // read; server.rs needs `max_header_size(64 * 1024)` for an exact limit.)
        let huge = format!("X-Huge: {}\r\n", "a".repeat(100 * 1024));
        let mut s = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let _ = s.write_all(get_root(port, &huge).as_bytes()).await;
        let (answer, closed) = read_until_closed(&mut s, Duration::from_secs(3)).await;
        assert!(
            answer.starts_with("HTTP/1.1 431"),
            "{:?}",
            &answer[..answer.len().min(200)]
        );
        assert!(closed);
        still_serving(port).await;

        // 100 headers of 1 KiB each fit the count but not the buffer.
        let wide: String = (0..100)
            .map(|i| format!("X-W-{i}: {}\r\n", "b".repeat(1000)))
            .collect();
        let answer = raw(port, &get_root(port, &wide)).await;
        assert!(
            answer.starts_with("HTTP/1.1 431"),
            "{:?}",
            &answer[..answer.len().min(200)]
        );
        still_serving(port).await;
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    bounded(15, async {
        let (_up, _ks, router) = setup(json!({"headerReadTimeoutMs": 400})).await;
        let port = router.port();
        let started = Instant::now();
        let mut s = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        s.write_all(format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Slow: ").as_bytes())
            .await
            .expect("write");
        // Trickle a byte now and then: the deadline is for the whole head, not per read.
        let mut trickle = 0;
        let closed_at = loop {
            let mut buf = [0u8; 1024];
            match tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break started.elapsed(),
                Ok(Ok(n)) => {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    assert!(
                        text.starts_with("HTTP/1.1 408"),
                        "unexpected answer {text:?}"
                    );
                }
                Err(_) => {
                    trickle += 1;
                    let _ = s.write_all(b"a").await;
                    assert!(
                        started.elapsed() < Duration::from_secs(5),
                        "slow client still connected"
                    );
                }
            }
        };
        assert!(
            closed_at >= Duration::from_millis(350),
            "closed too early: {closed_at:?}"
        );
        assert!(
            closed_at < Duration::from_secs(3),
            "closed late: {closed_at:?}"
        );
        assert!(trickle >= 2, "the client did send bytes while waiting");
        still_serving(port).await;
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stalls_its_body_gets_408_and_frees_its_slot() {
    bounded(15, async {
        let (_up, _ks, router) =
            setup(json!({"headerReadTimeoutMs": 300, "maxConnections": 1})).await;
        let port = router.port();
        let started = Instant::now();
        let mut s = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        // With the token, a body announced at 200 bytes of which 10 come, then nothing.
        s.write_all(format!("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {IC}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"model\":\"").as_bytes())
            .await
            .expect("write");
        let (answer, _) = read_until_closed(&mut s, Duration::from_secs(5)).await;
        let took = started.elapsed();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("BODY_TIMEOUT") || answer.contains("stopped arriving"), "{answer}");
        assert!(took < Duration::from_secs(3), "answered late: {took:?}");
        drop(s);
        // The one connection slot is free again.
        still_serving(port).await;
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_max_connections_get_503() {
    bounded(15, async {
        let (_up, _ks, router) = setup(json!({"maxConnections": 2})).await;
        let port = router.port();
        // Two idle keep-alive connections hold both slots.
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut s = TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            s.write_all(format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
                .await
                .expect("write");
            let mut buf = [0u8; 256];
            let n = s.read(&mut buf).await.expect("read");
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
            held.push(s);
        }
        let answer = raw(port, &get_root(port, "")).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("maxConnections"), "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("retry-after: 1"),
            "{answer}"
        );
        // A slot frees as soon as a connection closes.
        drop(held.pop());
        let mut ok = false;
        for _ in 0..50 {
            if raw(port, &get_root(port, ""))
                .await
                .starts_with("HTTP/1.1 200")
            {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(ok, "the freed slot was not reused");
        drop(held);
        let t = Instant::now();
        router.stop().await;
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "stop took {:?}",
            t.elapsed()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_max_body_bytes_get_413_with_or_without_content_length() {
    bounded(15, async {
        let (up, _ks, router) = setup(json!({"maxBodyBytes": 4096})).await;
        let port = router.port();
        let big = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x".repeat(5000)}]}).to_string();
        // Declared length over the limit: refused before the body is read.
        let answer = raw(port, &format!("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {IC}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{big}", big.len())).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("4096"), "{answer}");
        // Chunked, no length: refused once the limit is passed.
        let chunked = format!("{:x}\r\n{big}\r\n0\r\n\r\n", big.len());
        let answer = raw(port, &format!("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {IC}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunked}")).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(up.seen().is_empty(), "an oversized body reached the provider");
        // A body just under the limit goes through.
        let small = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x".repeat(3000)}]}).to_string();
        let (status, _, text) = status_json(post_with(&router, "/v1/chat/completions", small, &[("authorization", &format!("Bearer {IC}"))]).await).await;
        assert_eq!(status, 200, "{text}");
        router.stop().await;
    })
    .await;
}

/// Guesses against the internal endpoints count with those against the proxy: one budget per source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_guessing_on_internal_endpoints_is_limited_too() {
    bounded(15, async {
        let (_up, _ks, router) = setup(json!({})).await;
        let client = reqwest::Client::new();
        let stats = format!("http://127.0.0.1:{}/_iron/stats", router.port());
        let get = |token: String| client.get(&stats).bearer_auth(token).send();
        for i in 0..20 {
            let status = get(format!("ic_guess_{i}")).await.expect("send").status();
            assert_eq!(status.as_u16(), 401, "guess {i}");
        }
        let resp = get("ic_guess_20".into()).await.expect("send");
        assert_eq!(resp.status().as_u16(), 429);
        assert!(resp.headers().get("retry-after").is_some());
        // And a proxied guess from the same source is limited as well.
        let body = chat_body("gpt-4o-mini").to_string();
        let resp = post_with(
            &router,
            "/v1/chat/completions",
            body,
            &[("authorization", "Bearer ic_guess_21")],
        )
        .await;
        assert_eq!(resp.status().as_u16(), 429);
        // The right token still reads the stats.
        assert_eq!(
            get(IC.to_string()).await.expect("send").status().as_u16(),
            200
        );
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_guessing_is_rate_limited_but_the_right_token_works_at_once() {
    bounded(15, async {
        let (up, _ks, router) = setup(json!({})).await;
        let body = chat_body("gpt-4o-mini").to_string();
        let wrong = |i: usize| format!("Bearer ic_guess_{i}");
        for i in 0..20 {
            let resp = post_with(
                &router,
                "/v1/chat/completions",
                body.clone(),
                &[("authorization", &wrong(i))],
            )
            .await;
            assert_eq!(resp.status().as_u16(), 401, "guess {i}");
        }
        let resp = post_with(
            &router,
            "/v1/chat/completions",
            body.clone(),
            &[("authorization", &wrong(20))],
        )
        .await;
        assert_eq!(resp.status().as_u16(), 429);
        assert_eq!(
            resp.headers()
                .get("x-iron-cage-error")
                .and_then(|v| v.to_str().ok()),
            Some("RATE_LIMITED")
        );
        let wait: u64 = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("retry-after");
        assert!((1..=10).contains(&wait), "retry-after {wait}");
        let (_, json, text) = status_json(resp).await;
        let message = json["error"]["message"].as_str().unwrap_or("");
        assert!(
            message.contains("wrong Iron Cage token")
                && message.contains(&format!("wait {wait} s")),
            "{text}"
        );
        assert!(
            !text.contains("ic_guess"),
            "the presented token is echoed: {text}"
        );
        // The agent with the right token is not slowed down by someone else's guesses.
        let (status, _, text) =
            status_json(post(&router, "/v1/chat/completions", &chat_body("gpt-4o-mini")).await)
                .await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(up.seen().len(), 1);
        assert_eq!(
            up.only().header("authorization"),
            format!("Bearer {OPENAI_KEY}")
        );
        router.stop().await;
    })
    .await;
}

/// `serde_json` keeps the last of two equal keys; the body goes out as it came, and a provider that
/// keeps the first would read text the PII policy never saw. A repeated key at any depth is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_repeats_a_key_cannot_slip_text_past_the_pii_policy() {
    bounded(15, async {
        let (up, _ks, router) = setup(json!({ "safety": { "request": { "default": "block" } } })).await;
        let auth = format!("Bearer {IC}");
        for raw in [
            r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"card 4111 1111 1111 1111, mail maria@example.com","content":"hello"}]}"#,
            r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"mail maria@example.com"}],"messages":[{"role":"user","content":"hello"}]}"#,
        ] {
            let resp = post_with(&router, "/v1/chat/completions", raw.to_string(), &[("authorization", &auth)]).await;
            let (code, json, text) = status_json(resp).await;
            assert_eq!(code, 400, "{raw}: {text}");
            let message = json["error"]["message"].as_str().unwrap_or("");
            assert!(message.contains("no repeated keys"), "{text}");
            assert!(!text.contains("maria@example.com"), "{text}");
        }
        assert!(up.seen().is_empty(), "a body with a repeated key reached the provider");
        // A body without a repeated key goes through as usual.
        let one = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}"#;
        let (code, _, text) = status_json(post_with(&router, "/v1/chat/completions", one.to_string(), &[("authorization", &auth)]).await).await;
        assert_eq!(code, 200, "{text}");
        router.stop().await;
    })
    .await;
}

/// A key that no key pattern matches: only its registration as a secret can redact it.
const PANIC_CANARY: &str = "canary-panic-secret-5d81e0b7";

/// The child side of `a_panic_message_never_prints_a_key`: runs only when that test re-executes
/// this binary with `IRON_PANIC_CHILD` set (a panic hook is process-wide, so it needs a process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_child_entry() {
    if std::env::var_os("IRON_PANIC_CHILD").is_none() {
        return;
    }
    let router = iron_runtime::Router::start_json(
        &json!({ "providerKey": PANIC_CANARY, "provider": "openai", "providerBaseUrl": "http://127.0.0.1:9" })
            .to_string(),
    )
    .expect("start");
    let worker = std::thread::Builder::new()
        .name("request-worker".into())
        .spawn(|| {
            panic!(
                "could not use key {PANIC_CANARY} (sk-proj-{})",
                "A".repeat(40)
            )
        })
        .unwrap();
    assert!(worker.join().is_err());
    router.stop().await;
}

#[test]
fn a_panic_message_never_prints_a_key() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "panic_child_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("IRON_PANIC_CHILD", "1")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("re-run the test binary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("iron-cage: thread 'request-worker' panicked at"),
        "the panic is still reported, with its thread and place: {stderr}"
    );
    assert!(stderr.contains("could not use key [REDACTED"), "{stderr}");
    assert!(
        !stderr.contains(PANIC_CANARY),
        "registered key printed: {stderr}"
    );
    assert!(
        !stderr.contains("AAAAAAAAAAAAAAAA"),
        "key-shaped text printed: {stderr}"
    );
}
