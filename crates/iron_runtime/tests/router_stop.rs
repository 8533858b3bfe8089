//! What `stop()` ends: the first key fetch (and `ready()` with it), pooled provider connections;
//! and the provider as it becomes known after a failed first fetch.

mod common;

use common::raw::*;
use common::*;
use iron_runtime::Provider;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_the_first_key_fetch_and_ready_at_once() {
    bounded(10, async {
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), "http://127.0.0.1:9").await;
        ks.set_delay_ms(8_000);
        let router = start_router(&ks, json!({ "keyServerTimeoutMs": 9000 }));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(router.provider_now(), None, "the fetch is still running");
        let started = Instant::now();
        let (ready, ()) = tokio::join!(router.ready(), async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            router.stop().await;
        });
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "ready took {:?} after stop (the key server's delay is 8 s)",
            started.elapsed()
        );
        assert_eq!(
            ready,
            Err(iron_runtime::server::STOPPED_BEFORE_KEY.to_string())
        );
        // Asked again after the stop: the same answer, at once.
        assert_eq!(
            router.ready().await,
            Err(iron_runtime::server::STOPPED_BEFORE_KEY.to_string())
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_follows_later_fetches_after_a_failed_first_one() {
    bounded(10, async {
        let up = FakeProvider::json(chat_completion()).await;
        let ks = FakeKeyServer::start(503, json!({ "error": "down" })).await;
        let router = start_router(&ks, json!({ "cacheTtlSeconds": 0 }));
        let first = router.ready().await;
        assert!(
            first.as_ref().is_err_and(|e| e.contains("503")),
            "{first:?}"
        );

        ks.set_reply(
            200,
            json!({ "api_key": OPENAI_KEY, "provider": "openai", "base_url": up.url() }),
        );
        let (status, _, body) =
            status_json(post(&router, "/v1/chat/completions", &chat_body("gpt-4o-mini")).await)
                .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(router.provider_now(), Some(Ok(Provider::OpenAi)));
        assert_eq!(router.ready().await, Ok(Provider::OpenAi));

        // A rotation to a key of the other provider shows too.
        ks.set_reply(
            200,
            json!({ "api_key": ANTHROPIC_KEY, "provider": "anthropic", "base_url": up.url() }),
        );
        let _ = post(
            &router,
            "/v1/messages",
            &messages_body("claude-3-5-haiku-latest"),
        )
        .await;
        assert_eq!(router.provider_now(), Some(Ok(Provider::Anthropic)));

        // A failure after a key was fetched keeps the provider known.
        ks.set_reply(503, json!({ "error": "down" }));
        let _ = post(
            &router,
            "/v1/messages",
            &messages_body("claude-3-5-haiku-latest"),
        )
        .await;
        assert_eq!(router.provider_now(), Some(Ok(Provider::Anthropic)));
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_closes_pooled_provider_connections() {
    bounded(10, async {
        let closed = Arc::new(AtomicBool::new(false));
        let seen_close = closed.clone();
        let (port, conns, _task) = raw_upstream(move |_, mut s| {
            let seen_close = seen_close.clone();
            async move {
                // Keep-alive answers until the router closes the connection.
                while read_request(&mut s).await {
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{OK_JSON}",
                        OK_JSON.len()
                    );
                    if s.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
                seen_close.store(true, Ordering::SeqCst);
            }
        })
        .await;
        let (_ks, router) = router_for(&format!("http://127.0.0.1:{port}"), json!({}), None).await;
        let (status, _, body) = status_json(post(&router, "/v1/chat/completions", &body(false)).await).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(router.shared().http.idle_connections(), 1, "the connection is pooled");

        router.stop().await;
        assert_eq!(router.shared().http.idle_connections(), 0);
        for _ in 0..100 {
            if closed.load(Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            closed.load(Ordering::SeqCst),
            "the provider's connection is still open after stop (the router object is alive)"
        );
        assert_eq!(conns.load(Ordering::SeqCst), 1);
    })
    .await;
}
