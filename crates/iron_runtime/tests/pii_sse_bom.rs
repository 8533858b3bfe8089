//! A byte order mark in a filtered SSE stream, through the real router: the JavaScript SDKs drop a
//! BOM at the start of every line and read the field after it, so a `data:` line behind one is data
//! to them. Opening the stream it is read as the SSE spec reads it (dropped); anywhere else clients
//! disagree on it, and the stream stops rather than pass text the policy did not check.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

const EMAIL: &str = "jane.doe@example.com";
const AWS: &str = "AKIAZ7Q3M5R2T8W4X6Y9";

fn chunk(text: &str) -> String {
    json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
           "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
    .to_string()
}

async fn stream(events: Vec<String>) -> String {
    let provider = FakeProvider::start(Reply::Sse {
        events,
        gap: Duration::from_millis(0),
    })
    .await;
    let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
    let router = start_router(
        &ks,
        json!({ "safety": { "response": { "secret": "block" } } }),
    );
    router.ready().await.expect("key");
    let mut body = chat_body("gpt-4o");
    body["stream"] = json!(true);
    let resp = post(&router, "/v1/chat/completions", &body).await;
    assert_eq!(resp.status().as_u16(), 200);
    let raw = resp.text().await.expect("stream");
    router.stop().await;
    raw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_line_behind_a_bom_stops_a_filtered_stream() {
    bounded(60, async {
        let hidden = chunk(&format!(" mail {EMAIL} key {AWS}"));
        let raw = stream(vec![
            format!("data: {}\n\n", chunk("Hello there")),
            format!("\u{FEFF}data: {hidden}\n\n"),
            "data: [DONE]\n\n".to_string(),
        ])
        .await;
        assert!(!raw.contains(AWS) && !raw.contains(EMAIL), "{raw}");
        assert!(raw.contains("byte order mark"), "{raw}");
        assert!(raw.contains("Hello"), "{raw}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bom_opening_the_stream_is_read_as_sse_clients_read_it() {
    bounded(60, async {
        let raw = stream(vec![
            format!("\u{FEFF}data: {}\n\n", chunk(&format!("key {AWS}"))),
            "data: [DONE]\n\n".to_string(),
        ])
        .await;
        // Read as data, so checked: the secret is blocked.
        assert!(!raw.contains(AWS), "{raw}");
        assert!(raw.contains("secret"), "{raw}");
        let raw = stream(vec![
            format!("\u{FEFF}data: {}\n\n", chunk("Hello")),
            "data: [DONE]\n\n".to_string(),
        ])
        .await;
        assert!(raw.contains("Hello") && !raw.contains("\"error\""), "{raw}");
    })
    .await;
}
