//! A hostile or broken provider or key server cannot crash the router, hold a budget reservation,
//! or pull the real key elsewhere: malformed JSON, broken and huge SSE, invalid UTF-8, wrong content
//! types, truncated bodies, garbage status lines, redirects. After each, the router answers its
//! health check at once and a normal call works.

mod common;

use common::*;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the scripted server does with each request.
#[derive(Clone)]
enum Act {
    /// Write these bytes, then close.
    Send(Vec<u8>),
    /// Write these bytes, then keep the connection open without a word.
    SendThenHang(Vec<u8>),
}

/// A raw TCP server on 127.0.0.1 answering every request with the current script, counting hits
/// and keeping the head of each request it read.
struct Scripted {
    port: u16,
    act: Arc<Mutex<Act>>,
    hits: Arc<AtomicU64>,
    heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read_request(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk)).await
        else {
            break;
        };
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return text[..end].to_string();
            }
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

impl Scripted {
    async fn start(act: Act) -> Scripted {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let act = Arc::new(Mutex::new(act));
        let hits = Arc::new(AtomicU64::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (a, h, hd) = (act.clone(), hits.clone(), heads.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let (a, h, hd) = (a.clone(), h.clone(), hd.clone());
                tokio::spawn(async move {
                    let head = read_request(&mut s).await;
                    h.fetch_add(1, Ordering::SeqCst);
                    if let Ok(mut v) = hd.lock() {
                        v.push(head);
                    }
                    let act = a.lock().map(|g| g.clone()).unwrap_or(Act::Send(Vec::new()));
                    match act {
                        Act::Send(bytes) => {
                            let _ = s.write_all(&bytes).await;
                            let _ = s.shutdown().await;
                        }
                        Act::SendThenHang(bytes) => {
                            let _ = s.write_all(&bytes).await;
                            tokio::time::sleep(Duration::from_secs(30)).await;
                        }
                    }
                });
            }
        });
        Scripted {
            port,
            act,
            hits,
            heads,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn set(&self, act: Act) {
        if let Ok(mut a) = self.act.lock() {
            *a = act;
        }
    }

    fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

fn http(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

fn good_json() -> Act {
    Act::Send(http(
        "200 OK",
        "application/json",
        chat_completion().to_string().as_bytes(),
    ))
}

fn good_sse() -> Act {
    let body = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1,\"total_tokens\":6}}\n\ndata: [DONE]\n\n";
    Act::Send(http("200 OK", "text/event-stream", body.as_bytes()))
}

/// Call chat (JSON or stream) with a per-call deadline; returns status and body text, or the
/// client error as text when the answer broke off.
async fn call(router: &iron_runtime::Router, stream: bool) -> (u16, String) {
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 20, "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
    // This test client must not follow redirects itself: only the router's behaviour counts.
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let send = client
        .post(format!(
            "http://127.0.0.1:{}/v1/chat/completions",
            router.port()
        ))
        .header("authorization", format!("Bearer {IC}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .timeout(Duration::from_secs(10))
        .send();
    match send.await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            match resp.bytes().await {
                Ok(b) => (status, String::from_utf8_lossy(&b).into_owned()),
                Err(e) => (status, format!("<body broke off: {e}>")),
            }
        }
        Err(e) => (0, format!("<no answer: {e}>")),
    }
}

/// The router is healthy: `/` at once, no reservation left, and a normal call of each kind works.
async fn recovers(router: &iron_runtime::Router, up: &Scripted, what: &str) {
    let t = Instant::now();
    let port = router.port();
    let answer = raw(
        port,
        &format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(answer.ends_with("LlmRouter OK"), "{what}: health {answer}");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "{what}: health took {:?}",
        t.elapsed()
    );
    // Settling runs after the answer ends; give it a moment.
    let mut reserved = u64::MAX;
    for _ in 0..100 {
        reserved = router.budget_status().reserved_micros;
        if reserved == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(reserved, 0, "{what}: a reservation is left");
    up.set(good_json());
    let (status, text) = call(router, false).await;
    assert_eq!(status, 200, "{what}: normal call afterwards: {text}");
    assert!(text.contains("hello"), "{what}: {text}");
    up.set(good_sse());
    let (status, text) = call(router, true).await;
    assert_eq!(status, 200, "{what}: normal stream afterwards: {text}");
    assert!(
        text.contains("\"hi\"") && text.contains("[DONE]"),
        "{what}: {text}"
    );
}

async fn setup() -> (Scripted, FakeKeyServer, iron_runtime::Router) {
    let up = Scripted::start(good_json()).await;
    let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &up.url()).await;
    let router = start_router(
        &ks,
        json!({
            "budgetUsd": 100,
            "reliability": {
                "retry": {"maxRetries": 0},
                "breaker": {"consecutiveFailures": 1000, "minimumCalls": 1000},
                "timeouts": {"connectMs": 1000, "firstByteMs": 1500, "idleMs": 800, "totalMs": 5000}
            }
        }),
    );
    (up, ks, router)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_provider_answers_never_crash_the_router() {
    bounded(120, async {
        let (up, _ks, router) = setup().await;
        let invalid_utf8_sse = b"data: {\"choices\":[{\"delta\":{\"content\":\"\xff\xfe\xc3\"}}]}\n\ndata: \xff\n\n".to_vec();
        let cases: Vec<(&str, bool, Act)> = vec![
            ("malformed JSON", false, Act::Send(http("200 OK", "application/json", b"{\"choices\":[{\"message\":"))),
            ("JSON of the wrong shape", false, Act::Send(http("200 OK", "application/json", b"[1,2,{\"usage\":\"lots\"}]"))),
            ("invalid UTF-8 JSON", false, Act::Send(http("200 OK", "application/json", b"{\"choices\":\"\xff\xfe\"}"))),
            ("HTML instead of JSON", false, Act::Send(http("200 OK", "text/html", b"<html><body>oops</body></html>"))),
            ("SSE to a JSON call", false, good_sse()),
            ("JSON to a stream call", true, good_json()),
            ("text/plain to a stream call", true, Act::Send(http("200 OK", "text/plain", b"data: nope\n\n"))),
            ("broken SSE", true, Act::Send(http("200 OK", "text/event-stream", b"data: {\"choices\":[{\"delta\":\ndata: }}}}\n\nevent: \xff\n\n: comment\n\ndata: [DONE"))),
            ("invalid UTF-8 SSE", true, Act::Send(http("200 OK", "text/event-stream", &invalid_utf8_sse))),
            ("truncated JSON body", false, Act::Send(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 5000\r\n\r\n{\"choices\":[".to_vec())),
            ("truncated SSE body", true, Act::Send(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n20\r\ndata: {\"choices\":[]}\n\n".to_vec())),
            ("bad chunk framing", false, Act::Send(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n".to_vec())),
            ("garbage status line", false, Act::Send(b"HELLO THERE\r\n\r\n".to_vec())),
            ("no answer at all", false, Act::Send(Vec::new())),
            ("headers then silence", false, Act::SendThenHang(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{".to_vec())),
            ("stream then silence", true, Act::SendThenHang(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n".to_vec())),
            ("error status with garbage", false, Act::Send(http("500 Internal Server Error", "application/json", b"\xff\xfe{{{"))),
            ("1xx then nothing", false, Act::Send(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec())),
        ];
        for (what, stream, act) in cases {
            up.set(act);
            let (status, text) = call(&router, stream).await;
            // A complete answer from the router (any status) or a stream it ended: never a hang.
            assert!(status != 0, "{what}: the router did not answer: {text}");
            assert!(!text.contains(OPENAI_KEY), "{what}: the key leaked: {text}");
            recovers(&router, &up, what).await;
        }
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_provider_answers_are_cut_off_cleanly() {
    bounded(120, async {
        let (up, _ks, router) = setup().await;
        // One SSE event over the 8 MiB cap, never terminated.
        let mut huge = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"".to_vec();
        huge.extend(std::iter::repeat_n(b'x', 9 * 1024 * 1024));
        up.set(Act::Send(huge));
        let (status, text) = call(&router, true).await;
        assert_eq!(status, 200, "{}", &text[..text.len().min(300)]);
        assert!(text.len() < 1024 * 1024, "the huge event was relayed ({} bytes)", text.len());
        assert!(text.contains("error"), "the stream did not end with an error: {}", &text[..text.len().min(300)]);
        recovers(&router, &up, "huge SSE event").await;

        // A JSON answer over the 64 MiB cap.
        let mut body = b"{\"choices\":[{\"message\":{\"content\":\"".to_vec();
        body.extend(std::iter::repeat_n(b'y', 65 * 1024 * 1024));
        body.extend_from_slice(b"\"}}]}");
        up.set(Act::Send(http("200 OK", "application/json", &body)));
        drop(body);
        let (status, text) = call(&router, false).await;
        assert!(status >= 500 || text.starts_with("<body broke off"), "status {status}: {}", &text[..text.len().min(300)]);
        recovers(&router, &up, "huge JSON").await;
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirecting_provider_is_neither_followed_nor_passed_on() {
    bounded(30, async {
        let elsewhere = Scripted::start(good_json()).await;
        let (up, _ks, router) = setup().await;
        for status in ["301 Moved Permanently", "302 Found", "307 Temporary Redirect", "308 Permanent Redirect"] {
            let location = format!("{}/v1/chat/completions", elsewhere.url());
            up.set(Act::Send(format!("HTTP/1.1 {status}\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").into_bytes()));
            let (code, text) = call(&router, false).await;
            // Neither followed nor passed on (the client's SDK would follow it with the prompt).
            assert_eq!(code, 502, "{status}: {text}");
            assert!(text.contains("redirect"), "{status}: {text}");
            assert!(!text.contains(OPENAI_KEY) && !text.contains("/v1/chat"), "{status}: {text}");
        }
        assert_eq!(elsewhere.hits(), 0, "the router followed a redirect to another host");
        assert!(up.heads().iter().all(|h| h.contains(&format!("Bearer {OPENAI_KEY}"))));
        recovers(&router, &up, "redirect").await;
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_echoing_the_key_in_a_header_does_not_pass_it_on() {
    bounded(30, async {
        let (up, _ks, router) = setup().await;
        for (status, body) in [
            ("200 OK", chat_completion().to_string()),
            ("401 Unauthorized", json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}).to_string()),
        ] {
            up.set(Act::Send(format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nx-debug-authorization: Bearer {OPENAI_KEY}\r\nx-request-id: req_123\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            ).into_bytes()));
            let resp = post(&router, "/v1/chat/completions", &chat_body("gpt-4o-mini")).await;
            assert_eq!(resp.status().as_u16().to_string(), status[..3]);
            let headers = format!("{:?}", resp.headers());
            assert!(!headers.contains(OPENAI_KEY), "{status}: {headers}");
            assert!(resp.headers().get("x-debug-authorization").is_none());
            // Other headers pass as they came.
            assert_eq!(resp.headers().get("x-request-id").map(|v| v.as_bytes()), Some(&b"req_123"[..]));
            let text = resp.text().await.unwrap_or_default();
            assert!(!text.contains(OPENAI_KEY), "{status}: {text}");
        }
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_error_is_withheld_with_its_status_not_corrupted() {
    bounded(30, async {
        let (up, _ks, router) = setup().await;
        // gzip bytes (magic, method, then what would hide a quoted key from a text scan).
        let gzipped: Vec<u8> = [0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xab, 0x56, 0x4a, 0x2d, 0xff, 0xfe, 0x80, 0x81]
            .to_vec();
        let mut raw = format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            gzipped.len()
        )
        .into_bytes();
        raw.extend_from_slice(&gzipped);
        up.set(Act::Send(raw));
        let resp = post(&router, "/v1/chat/completions", &chat_body("gpt-4o-mini")).await;
        assert_eq!(resp.status().as_u16(), 400, "the provider's status stays");
        assert!(resp.headers().get("content-encoding").is_none());
        let (_, json, text) = status_json(resp).await;
        let message = json["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("compressed"), "{text}");
        assert_eq!(json["error"]["code"], "compressed_error_body");
        recovers(&router, &up, "compressed error").await;
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_key_server_cannot_crash_the_router_or_redirect_the_token() {
    bounded(60, async {
        let up = Scripted::start(good_json()).await;
        let keys = Scripted::start(Act::Send(Vec::new())).await;
        let elsewhere = Scripted::start(good_json()).await;
        let router = iron_runtime::Router::start_json(&json!({"apiKey": IC, "serverUrl": keys.url(), "cacheTtlSeconds": 0, "keyStaleGraceSeconds": 0}).to_string()).expect("start");
        let mut huge = b"{\"api_key\":\"sk-".to_vec();
        huge.extend(std::iter::repeat_n(b'k', 200 * 1024));
        huge.extend_from_slice(b"\"}");
        let cases: Vec<(&str, Act)> = vec![
            ("not JSON", Act::Send(http("200 OK", "application/json", b"<html>login</html>"))),
            ("invalid UTF-8", Act::Send(http("200 OK", "application/json", b"{\"api_key\":\"sk-\xff\xfe\"}"))),
            ("huge body", Act::Send(http("200 OK", "application/json", &huge))),
            ("truncated", Act::Send(b"HTTP/1.1 200 OK\r\ncontent-length: 500\r\n\r\n{\"api_key\":".to_vec())),
            ("garbage status", Act::Send(b"NOPE\r\n\r\n".to_vec())),
            ("no key", Act::Send(http("200 OK", "application/json", b"{\"provider\":\"openai\"}"))),
            ("key with a newline", Act::Send(http("200 OK", "application/json", br#"{"api_key":"sk-a\r\nX-Injected: 1"}"#))),
            ("plain-http base_url", Act::Send(http("200 OK", "application/json", br#"{"api_key":"sk-x","base_url":"http://evil.example"}"#))),
            ("error with garbage", Act::Send(http("500 Oops", "text/plain", b"\xff\xfe"))),
            ("redirect", Act::Send(format!("HTTP/1.1 302 Found\r\nlocation: {}/api/keys\r\ncontent-length: 0\r\n\r\n", elsewhere.url()).into_bytes())),
        ];
        for (what, act) in cases {
            keys.set(act);
            let (status, text) = call(&router, false).await;
            assert!((500..600).contains(&status), "{what}: {status} {text}");
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            assert!(v["error"]["message"].as_str().is_some_and(|m| m.contains("key server")), "{what}: {text}");
            assert!(!text.contains("kkkkkkkk") && !text.contains(IC), "{what}: {text}");
            let port = router.port();
            let answer = raw(port, &format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")).await;
            assert!(answer.ends_with("LlmRouter OK"), "{what}: {answer}");
        }
        assert_eq!(elsewhere.hits(), 0, "the key-server redirect was followed with the IC token");
        assert_eq!(up.hits(), 0, "a call went upstream without a valid key");
        // A sane key server again: calls work at once.
        keys.set(Act::Send(http("200 OK", "application/json", json!({"provider": "openai", "api_key": OPENAI_KEY, "base_url": up.url()}).to_string().as_bytes())));
        let (status, text) = call(&router, false).await;
        assert_eq!(status, 200, "{text}");
        router.stop().await;
    })
    .await;
}

/// Absurd usage (u64::MAX tokens) from a broken provider must not panic the settle step. The
/// stats counters once overflowed (`attempt to add with overflow` in stats.rs, a poisoned lock in
/// debug builds, wrapped totals in release).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_usage_numbers_do_not_break_settling_or_stats() {
    bounded(30, async {
        let (up, _ks, router) = setup().await;
        // No budget: the first answer alone would exhaust any budget (which is what it should do).
        router.set_budget_usd(None).expect("no budget");
        up.set(Act::Send(http("200 OK", "application/json", br#"{"choices":[],"usage":{"prompt_tokens":18446744073709551615,"completion_tokens":18446744073709551615}}"#)));
        for _ in 0..2 {
            let (status, text) = call(&router, false).await;
            assert_eq!(status, 200, "{text}");
        }
        let s = router.shared().stats.snapshot();
        assert_eq!(s.completed, 2);
        // Usage beyond any real context window is clamped to 10M tokens a field, so one broken
        // answer cannot lock a budget for good.
        assert_eq!(s.input_tokens, 2 * 10_000_000, "usage is clamped");
        assert_eq!(router.budget_status().reserved_micros, 0);
        let port = router.port();
        let answer = raw(port, &format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")).await;
        assert!(answer.ends_with("LlmRouter OK"), "{answer}");
        router.stop().await;
    })
    .await;
}

/// A client that gives up while the provider has not answered yet: the request was counted, so it
/// must end as exactly one of completed, failed or blocked (and its reservation be released). The
/// soak test found such requests missing from the counters: hyper drops the request future when
/// the client goes away, and nothing settled it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_before_the_answer_is_still_accounted() {
    bounded(30, async {
        let (up, _ks, router) = setup().await;
        up.set(Act::SendThenHang(Vec::new()));
        let port = router.port();
        let body = json!({"model": "gpt-4o-mini", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}).to_string();
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        s.write_all(format!("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {IC}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes()).await.expect("write");
        // Wait until the provider has the request, then leave.
        for _ in 0..100 {
            if up.hits() > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(up.hits(), 1);
        drop(s);
        // The router's first-byte deadline (1.5 s) passes; everything must have settled by then.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let st = router.shared().stats.snapshot();
        assert_eq!(st.requests, 1);
        assert_eq!(st.completed + st.failed + st.blocked, 1, "the abandoned request was never settled: {st:?}");
        assert_eq!(router.budget_status().reserved_micros, 0);
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_provider_gets_a_tls_handshake_and_never_the_key_in_clear() {
    bounded(60, async {
        // A TCP server that records the first bytes it receives and closes: no certificate it
        // could present would be trusted, so the call must fail, but only after TLS began.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let received: Arc<Mutex<Vec<u8>>> = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        let server = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = vec![0u8; 4096];
                if let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await
                {
                    sink.lock().expect("lock").extend_from_slice(&buf[..n]);
                }
            }
        });
        let ks = FakeKeyServer::with_key(
            OPENAI_KEY,
            Some("openai"),
            &format!("https://127.0.0.1:{port}"),
        )
        .await;
        let router = start_router(
            &ks,
            json!({ "reliability": { "retry": {"maxRetries": 0},
                "timeouts": {"connectMs": 1000, "firstByteMs": 2000, "idleMs": 2000, "totalMs": 5000} } }),
        );
        let (status, text) = call(&router, false).await;
        assert_eq!(status, 502, "{text}");
        assert!(
            text.contains("Provider unreachable") && text.contains("tls"),
            "{text}"
        );
        let bytes = received.lock().expect("lock").clone();
        // 0x16 0x03: a TLS handshake record (the ClientHello), not an HTTP request line.
        assert!(bytes.len() > 5, "the provider received nothing");
        assert_eq!(&bytes[..2], &[0x16, 0x03], "not TLS: {:?}", &bytes[..16.min(bytes.len())]);
        let clear = String::from_utf8_lossy(&bytes);
        assert!(!clear.contains(OPENAI_KEY) && !clear.contains("POST "), "{clear}");
        server.abort();
    })
    .await;
}
