//! The key cache seen from outside: TTL, single flight, stale-while-revalidate, key-server errors,
//! refusals (revoked token, disabled key) dropping the cached key. Rotation: `key_rotation.rs`.

mod common;

use common::*;
use iron_runtime::RouterEvent;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Wait (polling, up to 10 s) until `cond` holds.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..400 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The next `key` event with `action`, skipping other events (up to 10 s).
async fn key_event(
    events: &mut iron_runtime::events::Subscription,
    want: &str,
) -> Option<(Option<String>, String)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .ok()
            .flatten()?;
        if let RouterEvent::Key {
            action,
            provider,
            message,
            ..
        } = &**ev
        {
            if action == want {
                return Some((provider.clone(), message.clone().unwrap_or_default()));
            }
        }
    }
}

async fn chat(router: &iron_runtime::Router) -> (u16, serde_json::Value, String) {
    status_json(post(router, "/v1/chat/completions", &chat_body("gpt-4o-mini")).await).await
}

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
        let mut events = router.events().subscribe();
        for _ in 0..3 {
            let (status, _, _) =
                status_json(post(&router, "/v1/chat/completions", &chat_body("gpt-4o-mini")).await)
                    .await;
            assert_eq!(status, 200);
        }
        // The refresh runs in the background (the expired key is served meanwhile).
        assert!(
            key_event(&mut events, "refreshed").await.is_some(),
            "no refresh after the TTL"
        );
        for _ in 0..2 {
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
        assert_eq!(provider.seen().len(), 10);
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

/// A key server that fails (5xx) or rate-limits (429) is an outage, not a refusal: the cached key
/// is served for the stale grace, and the failure is reported once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_failure_serves_stale_key_and_says_so() {
    bounded(30, async {
        for (status, error) in [(500, "database unavailable"), (429, "Rate limit exceeded")] {
            let provider = FakeProvider::json(chat_completion()).await;
            let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
            let router = start_router(
                &ks,
                serde_json::json!({ "cacheTtlSeconds": 1, "keyStaleGraceSeconds": 60 }),
            );
            router.ready().await.expect("key");
            ks.set_reply(status, serde_json::json!({ "error": error }));
            tokio::time::sleep(Duration::from_millis(1150)).await;

            let mut events = router.events().subscribe();
            for _ in 0..3 {
                let (code, body, _) = chat(&router).await;
                assert_eq!(code, 200, "key server {status}");
                assert_eq!(body["choices"][0]["message"]["content"], "hello");
            }
            let (provider_name, message) = key_event(&mut events, "stale")
                .await
                .unwrap_or_else(|| panic!("no stale event after a failed refresh ({status})"));
            assert_eq!(provider_name.as_deref(), Some("openai"));
            assert!(message.contains(error), "{message}");
            assert!(!message.contains(OPENAI_KEY));
            // The next requests within the retry back-off do not hammer the server.
            for _ in 0..3 {
                assert_eq!(chat(&router).await.0, 200, "key server {status}");
            }
            assert_eq!(ks.count(), 2, "one failed refresh (key server {status})");
            for seen in provider.seen() {
                assert_eq!(seen.header("authorization"), format!("Bearer {OPENAI_KEY}"));
            }
            while let Some(ev) = events.try_recv() {
                if let RouterEvent::Key { action, .. } = &**ev {
                    assert_ne!(action, "stale", "a second stale event");
                    assert_ne!(action, "failed", "a stale key was served: not failed");
                }
            }
            router.stop().await;
        }
    })
    .await;
}

/// The key server's error reaches the client naming the server's message, never a key: a refusal
/// (400/401/403/404) as 403 `KEY_REFUSED` naming the cause and the fix, an outage as 502.
async fn key_error_case(
    status: u16,
    server_body: serde_json::Value,
    expect_in_message: &[&str],
    refused: bool,
) {
    let provider = FakeProvider::json(chat_completion()).await;
    let ks = FakeKeyServer::start(status, server_body).await;
    let router = start_router(&ks, serde_json::json!({}));
    let err = router.ready().await.expect_err("key fetch fails");
    for want in expect_in_message {
        assert!(err.contains(want), "ready error for {status}: {err}");
    }

    let resp = post(&router, "/v1/chat/completions", &chat_body("gpt-4o-mini")).await;
    let code_header = resp
        .headers()
        .get("x-iron-cage-error")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let should_retry = resp
        .headers()
        .get("x-should-retry")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (code, body, text) = status_json(resp).await;
    let message = body["error"]["message"].as_str().unwrap_or("");
    for want in expect_in_message {
        assert!(message.contains(want), "message for {status}: {message}");
    }
    assert!(
        message.contains(&status.to_string()),
        "message names the status: {message}"
    );
    if refused {
        assert_eq!(code, 403, "{text}");
        assert_eq!(code_header, "KEY_REFUSED");
        assert_eq!(body["error"]["code"], "key_refused");
        assert_eq!(should_retry, "false", "a retry cannot fix a refusal");
        assert!(message.contains("Fix:"), "{message}");
    } else {
        assert_eq!(code, 502, "{text}");
        assert_eq!(code_header, "KEY_SERVER_ERROR");
        assert_eq!(body["error"]["type"], "server_error");
    }
    for secret in [OPENAI_KEY, ANTHROPIC_KEY, IC] {
        assert!(!text.contains(secret), "{code} body leaks a secret: {text}");
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
    assert_eq!(code, if refused { 403 } else { 502 }, "{text}");
    assert_eq!(body["type"], "error");
    assert_eq!(
        body["error"]["type"],
        if refused {
            "permission_error"
        } else {
            "api_error"
        }
    );
    for want in expect_in_message {
        assert!(body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains(want));
    }
    assert!(
        provider.seen().is_empty(),
        "nothing may be forwarded without a key"
    );
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_server_refusals_are_403_and_failures_502() {
    bounded(20, async {
        key_error_case(
            401,
            serde_json::json!({ "error": "Invalid token" }),
            &["Invalid token", "revoked", "new token"],
            true,
        )
        .await;
        key_error_case(
            403,
            serde_json::json!({ "error": "Provider key is disabled" }),
            &["Provider key is disabled", "enable it"],
            true,
        )
        .await;
        key_error_case(
            404,
            serde_json::json!({ "error": "No provider key assigned to project" }),
            &["No provider key assigned to project", "assign one"],
            true,
        )
        .await;
        key_error_case(
            400,
            serde_json::json!({ "error": "Token not assigned to a project" }),
            &["Token not assigned to a project", "assign it to a project"],
            true,
        )
        .await;
        // A careless server that echoes a key next to its error must not leak it.
        key_error_case(
            500,
            serde_json::json!({ "error": "Internal failure", "api_key": OPENAI_KEY }),
            &["Internal failure"],
            false,
        )
        .await;
        key_error_case(
            429,
            serde_json::json!({ "error": "Rate limit exceeded" }),
            &["Rate limit exceeded"],
            false,
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

/// Defect: a revoked token or a disabled key kept working for the TTL plus the stale grace (the
/// stale grace took the key server's refusal for an outage). Now the refresh's refusal drops the
/// cached key at once: from then on calls are refused, none reaches the provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_drops_the_cached_key_at_once() {
    bounded(60, async {
        for (status, error, cause) in [
            (401, "Invalid or revoked token", "revoked"),
            (403, "Provider key is disabled", "disabled"),
            (404, "No provider key assigned to project", "no provider key"),
        ] {
            let provider = FakeProvider::json(chat_completion()).await;
            let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
            // The default grace (600 s) would have kept the revoked key in use for ten minutes.
            let router = start_router(&ks, serde_json::json!({ "cacheTtlSeconds": 1 }));
            router.ready().await.expect("key");
            assert_eq!(chat(&router).await.0, 200);
            ks.set_reply(status, serde_json::json!({ "error": error }));
            tokio::time::sleep(Duration::from_millis(1150)).await;

            let mut events = router.events().subscribe();
            // Past the TTL the cached key is served while the refresh runs in the background;
            // its answer arrives moments later.
            assert_eq!(chat(&router).await.0, 200);
            let (_, message) = key_event(&mut events, "failed").await.unwrap_or_else(|| {
                panic!("key server {status}: no 'failed' key event, the cached key is still in use")
            });
            assert!(message.contains(error), "{message}");
            assert!(message.contains("dropped"), "{message}");
            assert!(!message.contains(OPENAI_KEY) && !message.contains(IC));

            let forwarded = provider.seen().len();
            for _ in 0..3 {
                let resp = post(&router, "/v1/chat/completions", &chat_body("gpt-4o-mini")).await;
                let code = resp
                    .headers()
                    .get("x-iron-cage-error")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let (st, body, text) = status_json(resp).await;
                assert_eq!(st, 403, "key server {status}: {text}");
                assert_eq!(code, "KEY_REFUSED");
                let m = body["error"]["message"].as_str().unwrap_or("");
                assert!(m.contains(cause) && m.contains("Fix:"), "{m}");
                assert!(!text.contains(OPENAI_KEY) && !text.contains(IC), "{text}");
            }
            assert_eq!(
                provider.seen().len(),
                forwarded,
                "key server {status}: calls still reached the provider with the dropped key"
            );
            // The refusal is repeated for a few seconds without asking again.
            assert!(ks.count() <= 3, "key fetches: {}", ks.count());

            // Once the key server hands out a key again, calls go through again (after the
            // refusal's few seconds).
            if status == 403 {
                ks.set_reply(
                    200,
                    serde_json::json!({ "provider": "openai", "api_key": OPENAI_KEY, "base_url": provider.url() }),
                );
                let deadline = Instant::now() + Duration::from_secs(20);
                loop {
                    let (st, _, text) = chat(&router).await;
                    if st == 200 {
                        break;
                    }
                    assert_eq!(st, 403, "{text}");
                    assert!(Instant::now() < deadline, "the key never came back");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
            router.stop().await;
        }
    })
    .await;
}

/// Defect: with a stale key cached, a hung key server stalled every request for the whole fetch
/// (the refresh lock was held across it). Now requests get the cached key at once and one
/// background fetch runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_key_server_does_not_stall_requests_with_a_stale_key() {
    bounded(60, async {
        let provider = FakeProvider::json(chat_completion()).await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
        let router = start_router(
            &ks,
            serde_json::json!({ "cacheTtlSeconds": 1, "keyStaleGraceSeconds": 600, "keyServerTimeoutMs": 120000 }),
        );
        router.ready().await.expect("key");
        ks.set_delay_ms(300_000);
        tokio::time::sleep(Duration::from_millis(1150)).await;
        // Each fetch would hang for two minutes; a request waiting for it would not finish in 20 s
        // (the calls themselves take milliseconds).
        for i in 0..5 {
            let answered = tokio::time::timeout(Duration::from_secs(20), chat(&router)).await;
            let (status, _, text) = answered.unwrap_or_else(|_| {
                panic!("request {i} waited for the hung key server although a stale key was cached")
            });
            assert_eq!(status, 200, "{text}");
        }
        until("the background fetch", || ks.count() >= 2).await;
        assert_eq!(ks.count(), 2, "one background fetch, not one per request");
        assert_eq!(provider.seen().len(), 5);
        router.stop().await;
    })
    .await;
}

/// Defect: with no usable key, requests queued on the refresh lock and each made its own fetch
/// after the one before failed (N requests, N fetches, N timeouts in a row). Now they share one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_key_share_one_fetch_even_when_it_fails() {
    bounded(60, async {
        let provider = FakeProvider::json(chat_completion()).await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
        ks.set_delay_ms(60_000);
        // The start-up fetch is under way (it times out after 5 s); the requests join it.
        let router = start_router(&ks, serde_json::json!({ "keyServerTimeoutMs": 5000 }));
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let url = format!("{}/chat/completions", router.base_url());
            tasks.push(tokio::spawn(async move {
                let resp = client()
                    .post(url)
                    .header("authorization", format!("Bearer {IC}"))
                    .header("content-type", "application/json")
                    .body(chat_body("gpt-4o-mini").to_string())
                    .send()
                    .await
                    .expect("send");
                status_json(resp).await
            }));
        }
        for t in tasks {
            let (status, body, text) = t.await.expect("join");
            assert_eq!(status, 502, "{text}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("no answer within 5000 ms"),
                "{text}"
            );
        }
        assert_eq!(ks.count(), 1, "the requests did not share the fetch");
        assert!(provider.seen().is_empty());
        router.stop().await;
    })
    .await;
}
