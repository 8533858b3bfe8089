//! The `error` event: a dashboard link that is down and state-file rows that could not be written,
//! each reported once (rate-limited), never quoting a token or the URL.

mod common;

use common::*;
use iron_runtime::RouterEvent;
use serde_json::json;
use std::time::Duration;

fn errors(sub: &mut iron_runtime::events::Subscription) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while let Some(e) = sub.try_recv() {
        if let RouterEvent::Error { code, message, .. } = &**e {
            out.push((code.clone(), message.clone()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dashboard_that_is_down_is_reported_once() {
    bounded(20, async {
        let up = FakeProvider::json(chat_completion()).await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &up.url()).await;
        let port = closed_port();
        let url = format!("ws://127.0.0.1:{port}/link?secret=dash-s3cr3t");
        let router = start_router(&ks, json!({ "dashboardUrl": url }));
        let mut sub = router.events().subscribe();
        // Attempts at about 0, 1 and 3 s: one event for the outage.
        tokio::time::sleep(Duration::from_millis(3500)).await;
        let seen = errors(&mut sub);
        assert_eq!(seen.len(), 1, "{seen:?}");
        let (code, message) = &seen[0];
        assert_eq!(code, "DASHBOARD_UNREACHABLE");
        assert!(
            message.contains("dashboardUrl") && message.contains("could not connect"),
            "{message}"
        );
        for secret in ["dash-s3cr3t", IC, OPENAI_KEY, &port.to_string()] {
            assert!(!message.contains(secret), "{message} quotes {secret}");
        }
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_the_state_file_could_not_take_are_reported() {
    bounded(20, async {
        let dir =
            std::env::temp_dir().join(format!("iron-cage-error-events-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("state.db");
        let up = FakeProvider::json(chat_completion()).await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &up.url()).await;
        let router = start_router(&ks, json!({ "statePath": path.to_string_lossy() }));
        router.ready().await.expect("key");
        let mut sub = router.events().subscribe();
        assert_eq!(
            post(&router, "/v1/chat/completions", &chat_body("gpt-4o-mini"))
                .await
                .status()
                .as_u16(),
            200
        );
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert!(errors(&mut sub).is_empty(), "rows written: no error");

        // The writer goes away (as when the file cannot be written): rows are lost.
        let _ = router.shared().policies.ledger.store.close();
        for _ in 0..3 {
            let _ = post(&router, "/v1/chat/completions", &chat_body("gpt-4o-mini")).await;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let seen = errors(&mut sub);
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].0, "STATE_WRITE_FAILED");
        assert!(
            seen[0].1.contains("statePath") && seen[0].1.contains("dropped"),
            "{}",
            seen[0].1
        );
        // More losses within the minute are not repeated (stats().ledger counts them).
        let _ = post(&router, "/v1/chat/completions", &chat_body("gpt-4o-mini")).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(errors(&mut sub).is_empty());
        router.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}
