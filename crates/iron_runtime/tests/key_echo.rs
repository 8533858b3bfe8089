//! Something in front of the provider that echoes the request (a debug endpoint, a gateway, a web
//! server answering TRACE) must not hand the real key to the agent: whatever the answer's status,
//! shape or chunking, and with the PII policy's own secret check off. Only GET, POST and DELETE go
//! out with the key, and only to a path.

mod common;

use common::raw::*;
use common::*;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Every check of the PII policy off: only the key guard stands between the echo and the client.
fn no_pii() -> serde_json::Value {
    json!({ "safety": {
        "request": { "default": "off", "secret": "off" },
        "response": { "default": "off", "secret": "off" } } })
}

/// What the key becomes: `[REDACTED]` padded with `*` to the key's length (a body keeps its length).
fn masked() -> String {
    format!("[REDACTED{}]", "*".repeat(OPENAI_KEY.len() - 10))
}

async fn router_over(port: u16) -> (FakeKeyServer, iron_runtime::Router) {
    let ks = FakeKeyServer::with_key(
        OPENAI_KEY,
        Some("openai"),
        &format!("http://127.0.0.1:{port}"),
    )
    .await;
    let router = start_router(&ks, no_pii());
    router.ready().await.expect("key fetched");
    (ks, router)
}

#[tokio::test]
async fn a_key_echoed_in_a_whole_answer_is_replaced() {
    bounded(20, async {
        let (port, _, _task) = raw_upstream(|_, mut s| async move {
            if read_request(&mut s).await {
                let body = format!(
                    r#"{{"id":"c1","object":"chat.completion","model":"gpt-4o","debug":{{"sent":"Bearer {OPENAI_KEY}"}},"choices":[{{"index":0,"message":{{"role":"assistant","content":"your key is {OPENAI_KEY}"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}}}"#
                );
                let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
                let _ = s.write_all(format!("{head}{body}").as_bytes()).await;
            }
        })
        .await;
        let (_ks, router) = router_over(port).await;
        let (status, doc, text) = status_json(post(&router, "/v1/chat/completions", &body(false)).await).await;
        assert_eq!(status, 200, "{text}");
        assert!(!text.contains(OPENAI_KEY), "{text}");
        assert_eq!(doc["debug"]["sent"], format!("Bearer {}", masked()));
        assert_eq!(doc["choices"][0]["message"]["content"], format!("your key is {}", masked()));
        // Still priced from its usage.
        assert_eq!(doc["usage"]["prompt_tokens"], 5);
        router.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_key_echoed_in_a_stream_is_replaced_even_split_across_writes() {
    bounded(20, async {
        let (port, _, _task) = raw_upstream(|_, mut s| async move {
            if !read_request(&mut s).await {
                return;
            }
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n").await;
            let (head, tail) = OPENAI_KEY.split_at(7);
            let parts = [
                format!(": debug {OPENAI_KEY}\n\n"),
                format!("data: {{\"id\":\"{head}"),
                format!("{tail}\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"hi\"}},\"finish_reason\":null}}]}}\n\n"),
                "data: [DONE]\n\n".to_string(),
            ];
            for p in parts {
                let _ = s.write_all(p.as_bytes()).await;
                let _ = s.flush().await;
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        })
        .await;
        let (_ks, router) = router_over(port).await;
        let (status, _, text) = status_json(post(&router, "/v1/chat/completions", &body(true)).await).await;
        assert_eq!(status, 200, "{text}");
        assert!(!text.contains(OPENAI_KEY), "{text}");
        assert!(!text.contains(&OPENAI_KEY[..7]), "not even the half sent first: {text}");
        assert!(text.contains(&format!(": debug {}\n\n", masked())), "{text}");
        assert!(text.contains(&format!("data: {{\"id\":\"{}\",\"object\"", masked())), "{text}");
        assert!(text.ends_with("data: [DONE]\n\n"), "the stream ends as it came: {text}");
        router.stop().await;
    })
    .await;
}

#[tokio::test]
async fn trace_and_asterisk_targets_never_reach_the_provider() {
    bounded(20, async {
        let (port, count, _task) = raw_upstream(|_, mut s| async move {
            if read_request(&mut s).await {
                let _ = s.write_all(ok_response().as_bytes()).await;
            }
        })
        .await;
        let (_ks, router) = router_over(port).await;
        let port = router.port();
        for method in ["TRACE", "PUT", "PATCH", "CONNECT"] {
            let target = if method == "CONNECT" { "127.0.0.1:80" } else { "/v1/models" };
            let answer = raw(
                router.port(),
                &format!("{method} {target} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nauthorization: Bearer {IC}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"),
            )
            .await;
            if method != "CONNECT" {
                assert!(answer.starts_with("HTTP/1.1 405"), "{method}: {answer}");
                assert!(answer.to_ascii_lowercase().contains("allow: get, post, delete"), "{answer}");
                assert!(answer.contains("METHOD_NOT_ALLOWED"), "{answer}");
            } else {
                assert!(!answer.starts_with("HTTP/1.1 2"), "{answer}");
            }
        }
        let answer = raw(
            router.port(),
            &format!("GET * HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nauthorization: Bearer {IC}\r\nconnection: close\r\n\r\n"),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains("BAD_REQUEST_TARGET"), "{answer}");
        // A path the provider would resolve elsewhere: an upload path (no budget hold) that is
        // really a chat call.
        for target in ["/v1/uploads/../chat/completions", "/v1/uploads/%2e%2E/messages", "/v1/uploads%2F..%2Fchat/completions"] {
            let body = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
            let answer = raw(
                router.port(),
                &format!("POST {target} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nauthorization: Bearer {IC}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()),
            )
            .await;
            assert!(answer.starts_with("HTTP/1.1 400"), "{target}: {answer}");
            assert!(answer.contains("BAD_REQUEST_TARGET") && answer.contains("'..' segments"), "{answer}");
        }
        assert_eq!(count.load(Ordering::SeqCst), 0, "nothing went to the provider");
        // GET, POST and DELETE still go.
        for method in ["GET", "DELETE"] {
            let answer = raw(
                router.port(),
                &format!("{method} /v1/models HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nauthorization: Bearer {IC}\r\nconnection: close\r\n\r\n"),
            )
            .await;
            assert!(answer.starts_with("HTTP/1.1 200"), "{method}: {answer}");
        }
        router.stop().await;
    })
    .await;
}

/// An option error quotes what was wrong, but never a key: the configured `providerKey` pasted
/// into another option, or any key-shaped value.
#[tokio::test]
async fn option_errors_never_quote_a_key() {
    const KEY: &str = "CANARY-7d1e-0b5f-44aa-provider-key";
    let cases = [
        json!({ "providerKey": KEY, "provider": KEY }),
        json!({ "providerKey": KEY, "logLevel": KEY }),
        json!({ "providerKey": KEY, "safety": { "request": { "email": KEY } } }),
        json!({ "providerKey": KEY, "reliability": { "timeouts": { "connectMs": KEY } } }),
        json!({ "providerKey": "sk-x", "provider": "sk-proj-0123456789abcdefghij" }),
        json!({ "providerKey": KEY, "ic_0123456789abcdefghij": 1 }),
    ];
    for opts in cases {
        let e = match iron_runtime::Router::start_json(&opts.to_string()) {
            Ok(r) => {
                r.stop().await;
                panic!("accepted {opts}");
            }
            Err(e) => e.to_string(),
        };
        assert!(e.starts_with("invalid option"), "{e}");
        for secret in [
            KEY,
            "sk-proj-0123456789abcdefghij",
            "ic_0123456789abcdefghij",
        ] {
            assert!(!e.contains(secret), "{e}");
        }
        assert!(e.contains("[REDACTED]"), "{e}");
    }
}

/// Answers the router cannot read whole (long downloads) keep the length their head declares, with
/// the key masked in place; error answers are searched for every form of the key; a compressed
/// answer (the router asked for none) cannot be searched, so it is withheld.
#[tokio::test]
async fn long_error_and_compressed_answers_never_carry_the_key() {
    bounded(30, async {
        let (port, _, _task) = raw_upstream(|n, mut s| async move {
            if !read_request(&mut s).await {
                return;
            }
            // Every character escaped, as some JSON writers do for non-alphanumerics (or all).
            let slashed: String = OPENAI_KEY.chars().map(|c| format!("\\u{:04x}", c as u32)).collect();
            let (head, body): (&str, Vec<u8>) = match n {
                // 300 KiB of bytes with the key in the middle: relayed as it arrives.
                1 => {
                    let mut b = vec![b'x'; 300 * 1024];
                    b[150_000..150_000 + OPENAI_KEY.len()].copy_from_slice(OPENAI_KEY.as_bytes());
                    ("200 OK\r\ncontent-type: application/octet-stream", b)
                }
                2 => (
                    "400 Bad Request\r\ncontent-type: application/json",
                    format!(r#"{{"error":{{"message":"bad key {slashed}","type":"invalid_request_error"}}}}"#).into_bytes(),
                ),
                _ => (
                    "200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip",
                    format!("not really gzip but holds {OPENAI_KEY}").into_bytes(),
                ),
            };
            let head = format!("HTTP/1.1 {head}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(&body).await;
        })
        .await;
        let (_ks, router) = router_over(port).await;
        let get = |path: &'static str| {
            let url = format!("http://127.0.0.1:{}{path}", router.port());
            async move {
                client().get(url).header("authorization", format!("Bearer {IC}")).send().await.expect("answer")
            }
        };
        let resp = get("/v1/files/file-1/content").await;
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(resp.content_length(), Some(300 * 1024), "the declared length stands");
        let bytes = resp.bytes().await.expect("the whole body arrives");
        assert_eq!(bytes.len(), 300 * 1024);
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(OPENAI_KEY));
        assert_eq!(&text[150_000..150_000 + OPENAI_KEY.len()], masked());

        let (status, _, text) = status_json(post(&router, "/v1/chat/completions", &body(false)).await).await;
        assert_eq!(status, 400, "{text}");
        assert!(!text.contains("\\u0073\\u006b"), "the escaped key is masked: {text}");
        assert!(text.contains("bad key [REDACTED"), "{text}");

        let (status, _, text) = status_json(post(&router, "/v1/chat/completions", &body(false)).await).await;
        assert_eq!(status, 502, "{text}");
        assert!(!text.contains(OPENAI_KEY), "{text}");
        assert!(text.contains("compressed body (gzip)"), "{text}");
        router.stop().await;
    })
    .await;
}
