//! The key cache seen from outside: TTL, single flight, stale serving, and key-server errors.

mod common;

use common::*;
use iron_runtime::RouterEvent;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_fetch_per_ttl() {
    bounded(15, async {
        let provider = FakeProvider::json(chat_completion()).await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
        let router = start_router(&ks, serde_json::json!({ "cacheTtlSeconds": 1 }));
        router.ready().await.expect("key");
        for _ in 0..5 {
            let (status, _, _) =
                status_json(post(&router, "/v1/chat/completions", &chat_body("gpt-4o-mini")).await)
                    .await;
            assert_eq!(status, 200);
        }
        assert_eq!(ks.count(), 1, "requests within the TTL refetched the key");
        assert_eq!(router.shared().keys.fetch_count.load(Ordering::SeqCst), 1);

        tokio::time::sleep(Duration::from_millis(1150)).await;
        for _ in 0..3 {
            let (status, _, _) =
                status_json(post(&router, "/v1/chat/completions", &chat_body("gpt-4o-mini")).await)
                    .await;
            assert_eq!(status, 200);
        }
        assert_eq!(
            ks.count(),
            2,
            "an expired key should be fetched exactly once more"
        );
        assert_eq!(provider.seen().len(), 8);
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_cache_single_flight() {
    bounded(15, async {
        let provider = FakeProvider::json(chat_completion()).await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
        ks.set_delay_ms(200);
        let router = start_router(&ks, serde_json::json!({}));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let url = format!("{}/chat/completions", router.base_url());
            tasks.push(tokio::spawn(async move {
                client()
                    .post(url)
                    .header("authorization", format!("Bearer {IC}"))
                    .header("content-type", "application/json")
                    .body(chat_body("gpt-4o-mini").to_string())
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("join").expect("send"), 200);
        }
        assert_eq!(
            ks.count(),
            1,
            "20 concurrent requests on a cold cache must share one fetch"
        );
        assert_eq!(provider.seen().len(), 20);
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_failure_serves_stale_key_and_says_so() {
    bounded(15, async {
        let provider = FakeProvider::json(chat_completion()).await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
        let router = start_router(
            &ks,
            serde_json::json!({ "cacheTtlSeconds": 1, "keyStaleGraceSeconds": 60 }),
        );
        router.ready().await.expect("key");
        ks.set_reply(500, serde_json::json!({ "error": "database unavailable" }));
        tokio::time::sleep(Duration::from_millis(1150)).await;

        let mut events = router.events().subscribe();
        for _ in 0..3 {
            let (status, body, _) =
                status_json(post(&router, "/v1/chat/completions", &chat_body("gpt-4o-mini")).await)
                    .await;
            assert_eq!(status, 200);
            assert_eq!(body["choices"][0]["message"]["content"], "hello");
        }
        // One failed refresh; the next requests within the retry back-off do not hammer the server.
        assert_eq!(ks.count(), 2);
        for seen in provider.seen() {
            assert_eq!(seen.header("authorization"), format!("Bearer {OPENAI_KEY}"));
        }
        let mut stale = Vec::new();
        while let Some(ev) = events.try_recv() {
            if let RouterEvent::Key {
                action,
                provider,
                message,
            } = &**ev
            {
                if action == "stale" {
                    stale.push((provider.clone(), message.clone().unwrap_or_default()));
                }
            }
        }
        assert_eq!(
            stale.len(),
            1,
            "expected exactly one stale event, got {stale:?}"
        );
        assert_eq!(stale[0].0.as_deref(), Some("openai"));
        assert!(
            stale[0].1.contains("database unavailable"),
            "{}",
            stale[0].1
        );
        assert!(!stale[0].1.contains(OPENAI_KEY));
        router.stop().await;
    })
    .await;
}

/// The key server's error reaches the client as a 502 naming the server's message, never a key.
async fn key_error_case(status: u16, server_body: serde_json::Value, expect_in_message: &str) {
    let provider = FakeProvider::json(chat_completion()).await;
    let ks = FakeKeyServer::start(status, server_body).await;
    let router = start_router(&ks, serde_json::json!({}));
    let err = router.ready().await.expect_err("key fetch fails");
    assert!(
        err.contains(expect_in_message),
        "ready error for {status}: {err}"
    );

    let (code, body, text) =
        status_json(post(&router, "/v1/chat/completions", &chat_body("gpt-4o-mini")).await).await;
    assert_eq!(code, 502, "{text}");
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains(expect_in_message),
        "message for {status}: {message}"
    );
    assert!(
        message.contains(&status.to_string()),
        "message names the status: {message}"
    );
    assert_eq!(body["error"]["type"], "server_error");
    for secret in [OPENAI_KEY, ANTHROPIC_KEY, IC] {
        assert!(!text.contains(secret), "502 body leaks a secret: {text}");
    }

    // Anthropic route: same error in Anthropic's shape.
    let (code, body, text) = status_json(
        post(
            &router,
            "/v1/messages",
            &messages_body("claude-3-5-haiku-latest"),
        )
        .await,
    )
    .await;
    assert_eq!(code, 502, "{text}");
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "api_error");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains(expect_in_message));
    assert!(
        provider.seen().is_empty(),
        "nothing may be forwarded without a key"
    );
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_server_errors_become_502() {
    bounded(20, async {
        key_error_case(
            401,
            serde_json::json!({ "error": "Invalid token" }),
            "Invalid token",
        )
        .await;
        key_error_case(
            403,
            serde_json::json!({ "error": "Provider key is disabled" }),
            "Provider key is disabled",
        )
        .await;
        key_error_case(
            404,
            serde_json::json!({ "error": "No provider key assigned to project" }),
            "No provider key assigned to project",
        )
        .await;
        // A careless server that echoes a key next to its error must not leak it.
        key_error_case(
            500,
            serde_json::json!({ "error": "Internal failure", "api_key": OPENAI_KEY }),
            "Internal failure",
        )
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_key_response_is_502_without_the_key() {
    bounded(10, async {
        // 200 but an api_key with a newline: not a usable header value.
        let ks = FakeKeyServer::start(
            200,
            serde_json::json!({ "api_key": "sk-broken\nkey-material" }),
        )
        .await;
        let router = start_router(&ks, serde_json::json!({}));
        let (code, body, text) =
            status_json(post(&router, "/v1/chat/completions", &chat_body("gpt-4o-mini")).await)
                .await;
        assert_eq!(code, 502, "{text}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("api_key"),
            "{text}"
        );
        assert!(!text.contains("key-material"), "{text}");
        router.stop().await;
    })
    .await;
}
