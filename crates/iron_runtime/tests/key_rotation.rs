//! A provider 401 after the key was rotated on the Iron Cage server: the router fetches the key
//! again (one fetch for all calls refused at once, rate limited) and retries the call once with a
//! new key for the same upstream; an unchanged key's 401 is passed on.

mod common;

use common::*;
use std::time::{Duration, Instant};

async fn chat(router: &iron_runtime::Router) -> (u16, serde_json::Value, String) {
    status_json(post(router, "/v1/chat/completions", &chat_body("gpt-4o-mini")).await).await
}

const OPENAI_KEY_2: &str = "sk-real-openai-rotated-5a0f";
const ANTHROPIC_KEY_2: &str = "sk-ant-real-anthropic-rotated-c41e";

fn anthropic_message() -> serde_json::Value {
    serde_json::json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-3-5-haiku-latest",
        "content": [{ "type": "text", "text": "hello" }], "stop_reason": "end_turn",
        "usage": { "input_tokens": 5, "output_tokens": 1 }
    })
}

/// Defect: after the key was rotated on the Iron Cage server (the old one revoked at the
/// provider), every call failed with the provider's 401 until the TTL ran out. Now a provider 401
/// fetches the key again and, the key having changed, the call is made once more with the new key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_401_after_a_rotation_fetches_the_new_key_and_retries() {
    bounded(60, async {
        for (name, key1, key2) in [
            ("openai", OPENAI_KEY, OPENAI_KEY_2),
            ("anthropic", ANTHROPIC_KEY, ANTHROPIC_KEY_2),
        ] {
            let (path, body, auth_header) = if name == "openai" {
                ("/v1/chat/completions", chat_body("gpt-4o-mini"), "authorization")
            } else {
                (
                    "/v1/messages",
                    messages_body("claude-3-5-haiku-latest"),
                    "x-api-key",
                )
            };
            let shown = |k: &str| {
                if name == "openai" {
                    format!("Bearer {k}")
                } else {
                    k.to_string()
                }
            };
            let provider = FakeProvider::json(if name == "openai" {
                chat_completion()
            } else {
                anthropic_message()
            })
            .await;
            provider.set_valid_key(Some(key1));
            let ks = FakeKeyServer::with_key(key1, Some(name), &provider.url()).await;
            let router = start_router(
                &ks,
                serde_json::json!({ "cacheTtlSeconds": 300, "reliability": { "breaker": { "consecutiveFailures": 2 } } }),
            );
            router.ready().await.expect("key");
            assert_eq!(status_json(post(&router, path, &body).await).await.0, 200);

            // Rotation: the key server hands out key2, the provider refuses key1 from now on.
            ks.set_reply(
                200,
                serde_json::json!({ "provider": name, "api_key": key2, "base_url": provider.url() }),
            );
            provider.set_valid_key(Some(key2));
            let before = provider.seen().len();
            let (status, _, text) = status_json(post(&router, path, &body).await).await;
            assert_eq!(status, 200, "{name}: the call after the rotation: {text}");
            let seen = provider.seen();
            let sent: Vec<String> = seen[before..]
                .iter()
                .map(|s| s.header(auth_header))
                .collect();
            assert_eq!(
                sent,
                vec![shown(key1), shown(key2)],
                "{name}: refused with the old key, then once with the new one"
            );
            assert_eq!(ks.count(), 2, "{name}: one fetch after the 401");

            // Later calls use the new key directly; concurrent ones too, with no more fetches.
            let mut tasks = Vec::new();
            for _ in 0..8 {
                let url = format!("http://127.0.0.1:{}{path}", router.port());
                let body = body.to_string();
                tasks.push(tokio::spawn(async move {
                    client()
                        .post(url)
                        .header("authorization", format!("Bearer {IC}"))
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                }));
            }
            for t in tasks {
                assert_eq!(t.await.expect("join").expect("send"), 200);
            }
            assert_eq!(ks.count(), 2, "{name}: calls with the new key fetched again");
            assert_eq!(provider.seen().len(), before + 2 + 8);

            if name != "openai" {
                router.stop().await;
                continue;
            }
            // A second rotation while many calls are in flight: their 401s share one fetch.
            ks.set_reply(
                200,
                serde_json::json!({ "provider": name, "api_key": key1, "base_url": provider.url() }),
            );
            ks.set_delay_ms(300);
            provider.set_valid_key(Some(key1));
            // The rate limit on 401-caused fetches (one per few seconds) has passed.
            tokio::time::sleep(Duration::from_millis(5200)).await;
            let mut tasks = Vec::new();
            for _ in 0..8 {
                let url = format!("http://127.0.0.1:{}{path}", router.port());
                let body = body.to_string();
                tasks.push(tokio::spawn(async move {
                    client()
                        .post(url)
                        .header("authorization", format!("Bearer {IC}"))
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                }));
            }
            for t in tasks {
                assert_eq!(t.await.expect("join").expect("send"), 200);
            }
            assert_eq!(ks.count(), 3, "{name}: concurrent 401s made more than one fetch");
            // The refused calls did not count against the breaker (it opens after 2 failures).
            assert_eq!(status_json(post(&router, path, &body).await).await.0, 200);
            for s in provider.seen() {
                let h = s.header(auth_header);
                assert!(h == shown(key1) || h == shown(key2), "{h}");
            }
            router.stop().await;
        }
    })
    .await;
}

/// A key the provider refuses for good: the 401 is passed on; the key server is asked once, and
/// not again for every call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_401_with_an_unchanged_key_is_passed_on_and_refetches_are_rate_limited() {
    bounded(30, async {
        let provider = FakeProvider::json(chat_completion()).await;
        provider.set_valid_key(Some("sk-some-other-key-entirely"));
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
        let router = start_router(
            &ks,
            serde_json::json!({ "reliability": { "breaker": { "consecutiveFailures": 2 } } }),
        );
        router.ready().await.expect("key");
        let started = Instant::now();
        for _ in 0..10 {
            let (status, body, text) = chat(&router).await;
            assert_eq!(status, 401, "{text}");
            assert_eq!(
                body["error"]["code"], "invalid_api_key",
                "the provider's own 401"
            );
            assert!(!text.contains(OPENAI_KEY));
        }
        // The first 401 asked the key server again (same key): no retry.
        assert_eq!(
            provider.seen().len(),
            10,
            "a call was retried with the same key"
        );
        let allowed = 2 + started.elapsed().as_secs() / 5;
        assert!(
            ks.count() >= 2,
            "the 401 did not make the router ask for the key again"
        );
        assert!(
            ks.count() <= allowed,
            "{} key fetches for 10 calls refused with the same key (at most {allowed})",
            ks.count()
        );
        router.stop().await;
    })
    .await;
}

/// A rotated key that belongs to another upstream is not sent to the one that refused the old key:
/// the 401 is passed on and the next call goes to the new upstream with the new key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_for_another_upstream_is_not_sent_to_the_old_one() {
    bounded(30, async {
        let old = FakeProvider::json(chat_completion()).await;
        old.set_valid_key(Some(OPENAI_KEY));
        let new = FakeProvider::json(chat_completion()).await;
        new.set_valid_key(Some(OPENAI_KEY_2));
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &old.url()).await;
        let router = start_router(&ks, serde_json::json!({}));
        router.ready().await.expect("key");
        assert_eq!(chat(&router).await.0, 200);
        ks.set_reply(
            200,
            serde_json::json!({ "provider": "openai", "api_key": OPENAI_KEY_2, "base_url": new.url() }),
        );
        old.set_valid_key(Some("sk-revoked-everything"));
        assert_eq!(chat(&router).await.0, 401);
        assert_eq!(ks.count(), 2);
        for s in old.seen() {
            assert_ne!(s.header("authorization"), format!("Bearer {OPENAI_KEY_2}"));
        }
        assert_eq!(chat(&router).await.0, 200);
        assert_eq!(new.only().header("authorization"), format!("Bearer {OPENAI_KEY_2}"));
        router.stop().await;
    })
    .await;
}
