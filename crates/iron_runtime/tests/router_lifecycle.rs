//! Router lifecycle, provider detection at startup, and the accept filter (Host, Origin).

mod common;

use common::*;
use iron_runtime::{Provider, Router};
use std::collections::HashSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_serve_health_and_stop() {
    bounded(10, async {
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), "http://127.0.0.1:9").await;
        let router = start_router(&ks, serde_json::json!({}));
        assert!(router.is_running());
        let port = router.port();
        assert!((1024..=65535).contains(&port), "port {port}");
        assert_eq!(router.base_url(), format!("http://127.0.0.1:{port}/v1"));
        assert_eq!(
            router.anthropic_base_url(),
            format!("http://127.0.0.1:{port}")
        );
        assert_eq!(router.api_key(), IC);

        let answer = raw(
            port,
            &format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("LlmRouter OK"), "{answer}");
        let resp = client()
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .expect("health");
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(resp.text().await.expect("text"), "LlmRouter OK");

        router.stop().await;
        assert!(!router.is_running());
        let refused = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
        assert!(
            refused.is_err(),
            "port {port} still accepts connections after stop"
        );
        // A second stop is harmless.
        router.stop().await;
        assert!(!router.is_running());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_routers_get_distinct_ports() {
    bounded(10, async {
        let routers: Vec<Router> = (0..12)
            .map(|_| {
                Router::start_json(
                    r#"{"providerKey":"sk-static-x","providerBaseUrl":"http://127.0.0.1:9"}"#,
                )
                .expect("start")
            })
            .collect();
        let ports: HashSet<u16> = routers.iter().map(|r| r.port()).collect();
        assert_eq!(ports.len(), routers.len());
        for r in &routers {
            let body = client()
                .get(format!("{}/", r.anthropic_base_url()))
                .send()
                .await
                .expect("health")
                .text()
                .await
                .expect("text");
            assert_eq!(body, "LlmRouter OK");
        }
        // Minted local tokens differ per router.
        let tokens: HashSet<&str> = routers.iter().map(|r| r.api_key()).collect();
        assert_eq!(tokens.len(), routers.len());
        for r in &routers {
            r.stop().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_detected_from_key_without_provider_field() {
    bounded(10, async {
        let ks = FakeKeyServer::with_key(ANTHROPIC_KEY, None, "http://127.0.0.1:9").await;
        let router = start_router(&ks, serde_json::json!({}));
        assert_eq!(router.ready().await, Ok(Provider::Anthropic));
        assert_eq!(router.provider_now(), Some(Ok(Provider::Anthropic)));
        assert_eq!(ks.auth_seen(), vec![format!("Bearer {IC}")]);
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_field_wins() {
    bounded(10, async {
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), "http://127.0.0.1:9").await;
        let router = start_router(&ks, serde_json::json!({}));
        assert_eq!(router.ready().await, Ok(Provider::OpenAi));
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_server_down_still_serves_health() {
    bounded(20, async {
        let port = closed_port();
        let opts =
            serde_json::json!({ "apiKey": IC, "serverUrl": format!("http://127.0.0.1:{port}") });
        let router = Router::start_json(&opts.to_string()).expect("start");
        let err = router.ready().await.expect_err("no key server");
        assert!(err.contains("could not reach the key server"), "{err}");
        assert!(!err.contains(IC), "error message leaks the IC token: {err}");
        assert!(router.is_running());
        let body = client()
            .get(format!("{}/", router.anthropic_base_url()))
            .send()
            .await
            .expect("health")
            .text()
            .await
            .expect("text");
        assert_eq!(body, "LlmRouter OK");
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_host_and_browser_origin_are_refused() {
    bounded(10, async {
        let router = Router::start_json(r#"{"providerKey":"sk-static-x","providerBaseUrl":"http://127.0.0.1:9"}"#).expect("start");
        let port = router.port();
        for host in ["evil.example:".to_string() + &port.to_string(), "127.0.0.1".into(), format!("127.0.0.1:{}", port.wrapping_add(1))] {
            let answer = raw(port, &format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")).await;
            assert!(answer.starts_with("HTTP/1.1 403"), "host {host}: {answer}");
            assert!(!answer.contains("LlmRouter OK"));
        }
        // localhost with the right port is fine.
        let answer = raw(port, &format!("GET / HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n")).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

        let token = router.api_key().to_string();
        let body = r#"{"model":"gpt-4o","messages":[]}"#;
        let answer = raw(
            port,
            &format!(
                "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: https://attacker.example\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
        assert!(answer.contains("allowedOrigins"), "{answer}");
        router.stop().await;
    })
    .await;
}
