//! Streamed answers through the router: a fake provider's SSE stream in each API's shape (OpenAI
//! chat, Responses, Anthropic), the router started in front of it, and the answer text as the
//! client assembles it from the events it received.

use super::*;
use iron_runtime::Router;
use serde_json::{json, Value};
use std::time::Duration;

/// The API a streamed answer is in.
#[derive(Clone, Copy, Debug)]
pub enum Api {
    Chat,
    Responses,
    Anthropic,
}

/// One SSE event as a provider writes it.
pub fn sse(event: Option<&str>, data: &Value) -> String {
    match event {
        Some(name) => format!("event: {name}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

/// A provider stream of `api` whose text deltas are `pieces`.
pub fn upstream_events(api: Api, pieces: &[String]) -> Vec<String> {
    let full: String = pieces.concat();
    let mut out = Vec::new();
    match api {
        Api::Chat => {
            let chunk = |delta: Value, finish: Value| {
                json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            };
            out.push(sse(
                None,
                &chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            ));
            for p in pieces {
                out.push(sse(None, &chunk(json!({ "content": p }), Value::Null)));
            }
            out.push(sse(None, &chunk(json!({}), json!("stop"))));
            out.push("data: [DONE]\n\n".to_string());
        }
        Api::Responses => {
            let at = json!({"item_id": "msg_1", "output_index": 0, "content_index": 0});
            let ev = |kind: &str, extra: Value| {
                let mut v = json!({ "type": kind });
                for src in [&at, &extra] {
                    if let (Some(o), Some(e)) = (v.as_object_mut(), src.as_object()) {
                        o.extend(e.clone());
                    }
                }
                sse(Some(kind), &v)
            };
            let item = |text: &str| json!({"type": "message", "id": "msg_1", "role": "assistant", "content": [{"type": "output_text", "text": text}]});
            out.push(sse(
                Some("response.created"),
                &json!({"type": "response.created", "response": {"id": "resp_1", "output": []}}),
            ));
            for p in pieces {
                out.push(ev("response.output_text.delta", json!({ "delta": p })));
            }
            out.push(ev("response.output_text.done", json!({ "text": full })));
            out.push(ev(
                "response.content_part.done",
                json!({"part": {"type": "output_text", "text": full}}),
            ));
            out.push(sse(
                Some("response.output_item.done"),
                &json!({"type": "response.output_item.done", "output_index": 0, "item": item(&full)}),
            ));
            out.push(sse(
                Some("response.completed"),
                &json!({"type": "response.completed", "response": {"id": "resp_1", "status": "completed", "output": [item(&full)],
                        "usage": {"input_tokens": 3, "output_tokens": 9, "total_tokens": 12}}}),
            ));
        }
        Api::Anthropic => {
            out.push(sse(
                Some("message_start"),
                &json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-3-5-haiku-latest",
                        "content": [], "usage": {"input_tokens": 3, "output_tokens": 1}}}),
            ));
            out.push(sse(
                Some("content_block_start"),
                &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ));
            for p in pieces {
                out.push(sse(
                    Some("content_block_delta"),
                    &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}),
                ));
            }
            out.push(sse(
                Some("content_block_stop"),
                &json!({"type": "content_block_stop", "index": 0}),
            ));
            out.push(sse(
                Some("message_delta"),
                &json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}}),
            ));
            out.push(sse(Some("message_stop"), &json!({"type": "message_stop"})));
        }
    }
    out
}

/// The same bytes re-cut every `n` bytes, so that events and JSON strings are split mid-way.
pub fn recut(events: &[String], n: usize) -> Vec<String> {
    let all = events.concat();
    let chars: Vec<char> = all.chars().collect();
    chars
        .chunks(n)
        .map(|c| c.iter().collect::<String>())
        .collect()
}

/// One parsed SSE event the client received.
pub struct Got {
    pub event: Option<String>,
    pub data: String,
}

/// The events of an SSE body as a client reads them.
pub fn parse_sse(body: &str) -> Vec<Got> {
    body.split("\n\n")
        .filter(|raw| !raw.trim().is_empty())
        .map(|raw| {
            let mut event = None;
            let mut data: Vec<&str> = Vec::new();
            for line in raw.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            Got {
                event,
                data: data.join("\n"),
            }
        })
        .collect()
}

/// An event's data as JSON (`Null` when it is not, as for `[DONE]`).
pub fn json_of(g: &Got) -> Value {
    serde_json::from_str(&g.data).unwrap_or(Value::Null)
}

/// The answer text the client assembles from the deltas it received.
pub fn joined_text(api: Api, events: &[Got]) -> String {
    let mut text = String::new();
    for g in events {
        let v = json_of(g);
        let piece = match api {
            Api::Chat => v["choices"][0]["delta"]["content"].as_str(),
            Api::Responses if v["type"] == "response.output_text.delta" => v["delta"].as_str(),
            Api::Anthropic
                if v["type"] == "content_block_delta" && v["delta"]["type"] == "text_delta" =>
            {
                v["delta"]["text"].as_str()
            }
            _ => None,
        };
        text.push_str(piece.unwrap_or(""));
    }
    text
}

/// The path and a streamed request body for `api`.
pub fn path_and_body(api: Api) -> (&'static str, Value) {
    match api {
        Api::Chat => {
            let mut b = chat_body("gpt-4o-mini");
            b["stream"] = json!(true);
            ("/v1/chat/completions", b)
        }
        Api::Responses => (
            "/v1/responses",
            json!({"model": "gpt-4o-mini", "input": "hi", "stream": true}),
        ),
        Api::Anthropic => {
            let mut b = messages_body("claude-3-5-haiku-latest");
            b["stream"] = json!(true);
            ("/v1/messages", b)
        }
    }
}

/// A fake provider sending `events` (`gap_ms` apart), a key server for it and a router in front
/// with `safety` as its PII policy, ready to take calls.
pub async fn start(
    api: Api,
    events: Vec<String>,
    gap_ms: u64,
    safety: Value,
) -> (FakeProvider, FakeKeyServer, Router) {
    let provider = FakeProvider::start(Reply::Sse {
        events,
        gap: Duration::from_millis(gap_ms),
    })
    .await;
    let ks = match api {
        Api::Anthropic => {
            FakeKeyServer::with_key(ANTHROPIC_KEY, Some("anthropic"), &provider.url()).await
        }
        _ => FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await,
    };
    let router = start_router(&ks, json!({ "safety": safety }));
    router.ready().await.expect("key");
    (provider, ks, router)
}
