//! Requests through the router to a fake provider: auth, provider mismatch, forwarded headers and paths,
//! usage injection, streaming, body limit, unreachable upstream and static-key mode.

mod common;

use common::*;
use futures_util::StreamExt;
use iron_runtime::Router;
use std::time::{Duration, Instant};

const MISMATCH: &str = "Provider mismatch: you requested 'anthropic' but your Iron Cage token has 'openai' key configured. Please configure a 'anthropic' provider key in your Iron Cage dashboard.";

async fn openai_setup() -> (FakeProvider, FakeKeyServer, Router) {
    let provider = FakeProvider::json(chat_completion()).await;
    let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
    let router = start_router(&ks, serde_json::json!({}));
    (provider, ks, router)
}

async fn anthropic_setup() -> (FakeProvider, FakeKeyServer, Router) {
    let provider = FakeProvider::json(serde_json::json!({ "id": "msg_1", "type": "message", "content": [{ "type": "text", "text": "hi" }] })).await;
    let ks = FakeKeyServer::with_key(ANTHROPIC_KEY, None, &provider.url()).await;
    let router = start_router(&ks, serde_json::json!({}));
    (provider, ks, router)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_wrong_token_is_401_in_each_shape() {
    bounded(10, async {
        let (provider, _ks, router) = openai_setup().await;
        let body = chat_body("gpt-4o-mini").to_string();
        for headers in [vec![], vec![("authorization", "Bearer ic_wrong")], vec![("x-api-key", "ic_wrong")], vec![("authorization", IC)]] {
            let (code, json, text) = status_json(post_with(&router, "/v1/chat/completions", body.clone(), &headers).await).await;
            assert_eq!(code, 401, "{headers:?}: {text}");
            assert_eq!(json["error"]["message"], "Invalid API key");
            assert_eq!(json["error"]["code"], "invalid_api_key");
            assert!(json["error"].get("param").is_some(), "OpenAI shape has param: {text}");
        }
        let (code, json, text) = status_json(post_with(&router, "/v1/messages", messages_body("claude-3-5-haiku-latest").to_string(), &[("x-api-key", "nope")]).await).await;
        assert_eq!(code, 401, "{text}");
        assert_eq!(json, serde_json::json!({ "type": "error", "error": { "type": "authentication_error", "message": "Invalid API key" } }));
        assert!(provider.seen().is_empty());
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_in_either_header_is_accepted() {
    bounded(10, async {
        let (provider, _ks, router) = openai_setup().await;
        let body = chat_body("gpt-4o-mini").to_string();
        let bearer = format!("Bearer {IC}");
        for headers in [
            vec![("authorization", bearer.as_str())],
            vec![("x-api-key", IC)],
        ] {
            let (code, json, text) = status_json(
                post_with(&router, "/v1/chat/completions", body.clone(), &headers).await,
            )
            .await;
            assert_eq!(code, 200, "{headers:?}: {text}");
            assert_eq!(json, chat_completion());
        }
        assert_eq!(provider.seen().len(), 2);
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_prefix_with_openai_key_is_a_mismatch() {
    bounded(10, async {
        let (provider, _ks, router) = openai_setup().await;
        let (code, json, text) = status_json(
            post(
                &router,
                "/anthropic/v1/messages",
                &messages_body("claude-3-5-haiku-latest"),
            )
            .await,
        )
        .await;
        assert_eq!(code, 400, "{text}");
        assert_eq!(json["type"], "error");
        assert_eq!(json["error"]["message"], MISMATCH);
        assert_eq!(json["error"]["type"], "invalid_request_error");
        assert!(
            provider.seen().is_empty(),
            "a mismatch must not reach the provider"
        );
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_model_with_openai_key_is_a_mismatch_in_openai_shape() {
    bounded(10, async {
        let (provider, _ks, router) = openai_setup().await;
        // An OpenAI SDK asking for a Claude model: the model names the provider; the error keeps the SDK's shape.
        let (code, json, text) = status_json(
            post(
                &router,
                "/v1/chat/completions",
                &chat_body("claude-3-5-haiku-latest"),
            )
            .await,
        )
        .await;
        assert_eq!(code, 400, "{text}");
        assert_eq!(json["error"]["message"], MISMATCH);
        assert_eq!(json["error"]["code"], "provider_mismatch");
        assert!(
            provider.seen().is_empty(),
            "a mismatch must not reach the provider"
        );
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_forwarding_uses_the_real_key_and_keeps_path_and_query() {
    bounded(10, async {
        let (provider, _ks, router) = openai_setup().await;
        let resp = post_with(
            &router,
            "/openai/v1/chat/completions?api-version=2024&x=1",
            chat_body("gpt-4o-mini").to_string(),
            &[
                ("authorization", &format!("Bearer {IC}")),
                ("cookie", "session=s3cret"),
                ("openai-organization", "org-1"),
                ("x-unlisted", "drop-me"),
            ],
        )
        .await;
        assert_eq!(
            resp.headers().get("x-fake-provider").map(|v| v.as_bytes()),
            Some(&b"yes"[..])
        );
        assert!(
            resp.headers().get("set-cookie").is_none(),
            "upstream set-cookie must not reach the client"
        );
        let (code, json, _) = status_json(resp).await;
        assert_eq!(code, 200);
        assert_eq!(json, chat_completion());

        let seen = provider.only();
        assert_eq!(seen.method, "POST");
        assert_eq!(
            seen.path_and_query,
            "/v1/chat/completions?api-version=2024&x=1"
        );
        assert_eq!(seen.header("authorization"), format!("Bearer {OPENAI_KEY}"));
        assert_eq!(seen.header("openai-organization"), "org-1");
        assert!(seen.headers.get("cookie").is_none());
        assert!(seen.headers.get("x-unlisted").is_none());
        assert!(seen.headers.get("x-api-key").is_none());
        for (name, value) in &seen.headers {
            assert!(
                !value
                    .as_bytes()
                    .windows(IC.len())
                    .any(|w| w == IC.as_bytes()),
                "IC token forwarded in {name}"
            );
        }
        assert_eq!(seen.json(), chat_body("gpt-4o-mini"));
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_forwarding_sets_key_and_version_and_collapses_v1() {
    bounded(10, async {
        let (provider, _ks, router) = anthropic_setup().await;
        let resp = post_with(
            &router,
            "/v1/v1/messages?beta=true",
            messages_body("claude-3-5-haiku-latest").to_string(),
            &[
                ("x-api-key", IC),
                ("anthropic-beta", "prompt-caching-2024-07-31"),
            ],
        )
        .await;
        let (code, json, text) = status_json(resp).await;
        assert_eq!(code, 200, "{text}");
        assert_eq!(json["id"], "msg_1");
        let seen = provider.only();
        assert_eq!(seen.path_and_query, "/v1/messages?beta=true");
        assert_eq!(seen.header("x-api-key"), ANTHROPIC_KEY);
        assert_eq!(seen.header("anthropic-version"), "2023-06-01");
        assert_eq!(seen.header("anthropic-beta"), "prompt-caching-2024-07-31");
        assert!(seen.headers.get("authorization").is_none());

        // A client-chosen anthropic-version is kept.
        let resp = post_with(
            &router,
            "/v1/messages",
            messages_body("claude-3-5-haiku-latest").to_string(),
            &[("x-api-key", IC), ("anthropic-version", "2024-01-01")],
        )
        .await;
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(provider.seen()[1].header("anthropic-version"), "2024-01-01");
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_status_and_error_body_are_relayed() {
    bounded(10, async {
        let upstream_err = serde_json::json!({ "error": { "message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded" } });
        let provider = FakeProvider::start(Reply::Json { status: 429, body: upstream_err.to_string() }).await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
        let router = start_router(&ks, serde_json::json!({}));
        let (code, json, _) = status_json(post(&router, "/v1/chat/completions", &chat_body("gpt-4o-mini")).await).await;
        assert_eq!(code, 429);
        assert_eq!(json, upstream_err);
        router.stop().await;
    })
    .await;
}

fn openai_stream_events() -> Vec<String> {
    vec![
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n".into(),
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n".into(),
        "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n".into(),
        "data: [DONE]\n\n".into(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_requested_and_its_chunk_hidden_unless_the_client_asked() {
    bounded(10, async {
        let provider = FakeProvider::start(Reply::Sse {
            events: openai_stream_events(),
            gap: Duration::from_millis(5),
        })
        .await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
        let router = start_router(&ks, serde_json::json!({}));

        let mut body = chat_body("gpt-4o-mini");
        body["stream"] = serde_json::Value::Bool(true);
        let resp = post(&router, "/v1/chat/completions", &body).await;
        assert_eq!(resp.status().as_u16(), 200);
        let text = resp.text().await.expect("stream");
        let sent = provider.seen()[0].json();
        assert_eq!(sent["stream_options"]["include_usage"], true);
        assert_eq!(sent["model"], "gpt-4o-mini");
        assert!(
            !text.contains("\"usage\""),
            "injected usage chunk reached the client: {text}"
        );
        // The response PII filter may re-chunk text (it holds an unfinished word until the next
        // chunk), so what the client relies on is the joined text, not the chunk count.
        assert_eq!(joined_content(&text), "Hello", "{text}");
        assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");

        body["stream_options"] = serde_json::json!({ "include_usage": true });
        let text = post(&router, "/v1/chat/completions", &body)
            .await
            .text()
            .await
            .expect("stream");
        assert_eq!(
            provider.seen()[1].json(),
            body,
            "a body already asking for usage is forwarded unchanged"
        );
        assert_eq!(text.matches("\"usage\"").count(), 1, "{text}");
        assert_eq!(joined_content(&text), "Hello", "{text}");
        router.stop().await;

        // With the response PII policy off, the stream is relayed byte for byte.
        let off =
            serde_json::json!({ "safety": { "response": { "default": "off", "secret": "off" } } });
        let router = start_router(&ks, off);
        let text = post(&router, "/v1/chat/completions", &body)
            .await
            .text()
            .await
            .expect("stream");
        assert_eq!(text, openai_stream_events().concat());
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_chunks_reach_the_client_as_they_arrive() {
    bounded(10, async {
        let events: Vec<String> = (0..10)
            .map(|i| format!("event: content_block_delta\ndata: {{\"i\":{i}}}\n\n"))
            .collect();
        let provider = FakeProvider::start(Reply::Sse {
            events: events.clone(),
            gap: Duration::from_millis(100),
        })
        .await;
        let ks = FakeKeyServer::with_key(ANTHROPIC_KEY, Some("anthropic"), &provider.url()).await;
        let router = start_router(&ks, serde_json::json!({}));
        router.ready().await.expect("key");

        let mut body = messages_body("claude-3-5-haiku-latest");
        body["stream"] = serde_json::Value::Bool(true);
        let started = Instant::now();
        let resp = post(&router, "/v1/messages", &body).await;
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(
            resp.headers().get("content-type").map(|v| v.as_bytes()),
            Some(&b"text/event-stream"[..])
        );
        let mut stream = resp.bytes_stream();
        let mut got = Vec::new();
        let mut first_at = None;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.expect("chunk");
            if first_at.is_none() && !chunk.is_empty() {
                first_at = Some(started.elapsed());
            }
            got.extend_from_slice(&chunk);
        }
        let total = started.elapsed();
        let first = first_at.expect("at least one chunk");
        assert!(
            first < Duration::from_millis(500),
            "first chunk after {first:?}: the router buffers the stream"
        );
        assert!(
            total >= Duration::from_millis(900),
            "stream ended after {total:?}"
        );
        assert_eq!(String::from_utf8_lossy(&got), events.concat());
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_is_413_in_the_provider_shape() {
    bounded(10, async {
        let provider = FakeProvider::json(chat_completion()).await;
        let ks = FakeKeyServer::with_key(ANTHROPIC_KEY, None, &provider.url()).await;
        let router = start_router(&ks, serde_json::json!({ "maxBodyBytes": 2048 }));
        let mut big = messages_body("claude-3-5-haiku-latest");
        big["messages"][0]["content"] = serde_json::Value::String("x".repeat(4096));

        let (code, json, text) = status_json(post(&router, "/v1/messages", &big).await).await;
        assert_eq!(code, 413, "{text}");
        assert_eq!(json["type"], "error");
        assert_eq!(json["error"]["type"], "request_too_large");
        assert!(
            json["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("2048"),
            "{text}"
        );

        let mut big_chat = chat_body("gpt-4o-mini");
        big_chat["messages"][0]["content"] = serde_json::Value::String("x".repeat(4096));
        let (code, json, text) =
            status_json(post(&router, "/v1/chat/completions", &big_chat).await).await;
        assert_eq!(code, 413, "{text}");
        assert_eq!(json["error"]["type"], "invalid_request_error");
        assert!(provider.seen().is_empty());

        // Under the limit it goes through.
        let (code, _, text) = status_json(
            post(
                &router,
                "/v1/messages",
                &messages_body("claude-3-5-haiku-latest"),
            )
            .await,
        )
        .await;
        assert_eq!(code, 200, "{text}");
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_key_mode_and_unreachable_upstream() {
    bounded(15, async {
        let provider = FakeProvider::json(chat_completion()).await;
        let opts = serde_json::json!({ "providerKey": "sk-static-5c1d", "providerBaseUrl": provider.url() });
        let router = Router::start_json(&opts.to_string()).expect("start");
        assert_eq!(router.ready().await, Ok(iron_runtime::Provider::OpenAi));
        let token = router.api_key().to_string();
        assert!(token.starts_with("ic_"), "minted token {token}");
        let bearer = format!("Bearer {token}");
        let (code, json, _) = status_json(post_with(&router, "/v1/chat/completions", chat_body("gpt-4o-mini").to_string(), &[("authorization", &bearer)]).await).await;
        assert_eq!(code, 200);
        assert_eq!(json, chat_completion());
        assert_eq!(provider.only().header("authorization"), "Bearer sk-static-5c1d");
        // Without the minted token the port is closed to callers.
        let (code, _, _) = status_json(post_with(&router, "/v1/chat/completions", chat_body("gpt-4o-mini").to_string(), &[]).await).await;
        assert_eq!(code, 401);
        router.stop().await;

        let dead = closed_port();
        let opts = serde_json::json!({ "providerKey": "sk-ant-static-77", "providerBaseUrl": format!("http://127.0.0.1:{dead}") });
        let router = Router::start_json(&opts.to_string()).expect("start");
        let token = router.api_key().to_string();
        let (code, json, text) = status_json(post_with(&router, "/v1/messages", messages_body("claude-3-5-haiku-latest").to_string(), &[("x-api-key", &token)]).await).await;
        assert_eq!(code, 502, "{text}");
        assert_eq!(json["type"], "error");
        assert_eq!(json["error"]["type"], "api_error");
        assert!(json["error"]["message"].as_str().unwrap_or("").contains("127.0.0.1"), "{text}");
        assert!(!text.contains("sk-ant-static-77"), "{text}");
        router.stop().await;
    })
    .await;
}

/// The concatenated `choices[0].delta.content` of an OpenAI chat SSE body.
fn joined_content(sse: &str) -> String {
    sse.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}
