//! Every item and block type of the Responses and Messages APIs is read, whatever its type: tool
//! outputs, shell and MCP calls, code interpreter code and outputs, patches, search results, MCP
//! tool use, and types newer than the reader; long texts without spaces (CJK, minified JSON) are
//! text, not encoded data.

use iron_safety::{ApiShape, FilterOutcome, SafetyEngine, SafetyPolicy, SseEvent};
use serde_json::{json, Value};

const AWS: &str = "AKIAZ7Q3M5R2T8W4X6Y9";
const EMAIL: &str = "jane.doe@example.com";

fn engine(policy: Value) -> SafetyEngine {
    SafetyEngine::new(&SafetyPolicy::from_value(&policy).expect("policy")).expect("engine")
}

/// Requests: a secret anywhere in the item blocks (default policy), and with redaction on the
/// e-mail beside it is redacted in place.
fn assert_request_checked(api: ApiShape, body: Value, what: &str) {
    let mut blocked = body.clone();
    let v = engine(json!({})).inspect_request(api, &mut blocked);
    assert!(v.blocked, "{what}: a secret passed: {blocked}");
    let mut redacted = body;
    let v = engine(json!({"request": {"default": "redact", "secret": "redact"}}))
        .inspect_request(api, &mut redacted);
    assert!(v.modified && !v.blocked, "{what}");
    let text = redacted.to_string();
    assert!(
        !text.contains(EMAIL) && !text.contains(AWS) && text.contains("[EMAIL]"),
        "{what}: {text}"
    );
}

fn leak() -> String {
    format!("mail {EMAIL} key {AWS}")
}

#[test]
fn responses_request_items_of_every_type_are_checked() {
    let l = leak();
    let items = [
        json!({"type": "function_call_output", "call_id": "c1", "output": l}),
        json!({"type": "local_shell_call_output", "id": "o1", "output": l}),
        json!({"type": "shell_call_output", "call_id": "c1", "output": [{"stdout": l, "stderr": "", "outcome": {"type": "exit", "exit_code": 0}}]}),
        json!({"type": "local_shell_call", "id": "s1", "call_id": "c1", "status": "completed",
               "action": {"type": "exec", "command": ["echo", l], "env": {}}}),
        json!({"type": "mcp_call", "id": "m1", "server_label": "crm", "name": "lookup",
               "arguments": json!({"q": "x"}).to_string(), "output": l}),
        json!({"type": "mcp_call", "id": "m1", "server_label": "crm", "name": "lookup",
               "arguments": json!({"q": l}).to_string()}),
        json!({"type": "code_interpreter_call", "id": "ci1", "container_id": "cn1", "code": format!("print('{l}')"),
               "outputs": [{"type": "logs", "logs": l}]}),
        json!({"type": "apply_patch_call", "call_id": "c1", "status": "completed",
               "operation": {"type": "update_file", "path": "a.env", "diff": format!("+{l}")}}),
        json!({"type": "apply_patch_call_output", "call_id": "c1", "output": l}),
        json!({"type": "some_future_call_output", "call_id": "c1", "result_text": l}),
    ];
    for item in items {
        let what = item["type"].as_str().unwrap_or_default().to_string();
        let body = json!({"model": "gpt-5", "input": [{"role": "user", "content": "go"}, item]});
        assert_request_checked(ApiShape::OpenAiResponses, body, &what);
    }
}

#[test]
fn responses_answer_items_of_every_type_are_redacted() {
    let l = leak();
    let items = [
        json!({"type": "mcp_call", "id": "m1", "name": "lookup", "arguments": json!({"q": l}).to_string(), "output": l}),
        json!({"type": "code_interpreter_call", "id": "ci1", "outputs": [{"type": "logs", "logs": l}]}),
        json!({"type": "file_search_call", "id": "f1", "queries": ["x"], "results": [{"file_id": "file-1", "text": l}]}),
        json!({"type": "web_search_call", "id": "w1", "action": {"type": "search", "query": l}}),
        json!({"type": "local_shell_call", "id": "s1", "action": {"type": "exec", "command": ["echo", l]}}),
    ];
    let engine = engine(json!({"response": {"default": "redact"}}));
    for item in items {
        let what = item["type"].as_str().unwrap_or_default().to_string();
        let mut body = json!({"object": "response", "output": [item]});
        let v = engine.inspect_response(ApiShape::OpenAiResponses, &mut body);
        let text = body.to_string();
        assert!(v.modified, "{what}");
        assert!(
            !text.contains(EMAIL) && !text.contains(AWS),
            "{what}: {text}"
        );
        // Ids and types are left as they are.
        assert_eq!(body["output"][0]["type"], what);
    }
}

#[test]
fn anthropic_mcp_tool_use_and_unknown_blocks_are_checked() {
    let l = leak();
    for block in [
        json!({"type": "mcp_tool_use", "id": "mcptoolu_1", "name": "lookup", "server_name": "crm", "input": {"q": l}}),
        json!({"type": "mcp_tool_result", "tool_use_id": "mcptoolu_1", "is_error": false, "content": [{"type": "text", "text": l}]}),
        json!({"type": "some_future_block", "body": l}),
    ] {
        let what = block["type"].as_str().unwrap_or_default().to_string();
        let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 10,
            "messages": [{"role": "user", "content": "go"}, {"role": "assistant", "content": [block.clone()]}]});
        assert_request_checked(ApiShape::AnthropicMessages, body, &what);
        let mut answer = json!({"type": "message", "content": [block]});
        engine(json!({"response": {"default": "redact"}}))
            .inspect_response(ApiShape::AnthropicMessages, &mut answer);
        let text = answer.to_string();
        assert!(
            !text.contains(EMAIL) && !text.contains(AWS),
            "{what}: {text}"
        );
    }
}

/// ≥ 64 KiB of CJK text (no ASCII space) with the values at its end.
fn long_cjk() -> String {
    format!("{}{EMAIL}、{AWS}。", "東京の天気は晴れです。".repeat(2500))
}

fn long_minified_json() -> String {
    let rows: Vec<Value> = (0..6000).map(|i| json!({"id": i, "v": "x"})).collect();
    format!("{}{}", json!(rows), json!({"mail": EMAIL, "key": AWS}))
}

#[test]
fn long_texts_without_spaces_are_text_not_blobs() {
    for (what, text) in [("CJK", long_cjk()), ("minified JSON", long_minified_json())] {
        assert!(text.len() >= 64 * 1024 && !text.bytes().any(|b| b.is_ascii_whitespace()));
        let chat =
            json!({"messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]});
        assert_request_checked(ApiShape::OpenAiChat, chat, what);
        let responses =
            json!({"input": [{"role": "user", "content": [{"type": "input_text", "text": text}]}]});
        assert_request_checked(ApiShape::OpenAiResponses, responses, what);
        let document = json!({"messages": [{"role": "user", "content": [{"type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": text}}]}]});
        assert_request_checked(ApiShape::AnthropicMessages, document, what);
        let mut answer = json!({"output": [{"type": "message", "content": [{"type": "output_text", "text": text}]}]});
        engine(json!({"response": {"default": "redact"}}))
            .inspect_response(ApiShape::OpenAiResponses, &mut answer);
        let out = answer.to_string();
        assert!(!out.contains(EMAIL) && !out.contains(AWS), "{what}");
    }
}

#[test]
fn encoded_media_is_left_as_it_is() {
    // Base64 that happens to spell a key: media data is not read, and is not changed.
    let b64 = format!("{}{AWS}{}", "QUJD".repeat(400), "RA==");
    let mut body = json!({"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64}},
        {"type": "text", "text": "what is this?"}]}]});
    let before = body.clone();
    let v = engine(json!({})).inspect_request(ApiShape::AnthropicMessages, &mut body);
    assert!(!v.blocked && !v.modified);
    assert_eq!(body, before);
    let mut audio = json!({"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "QUJD".repeat(400) + AWS, "format": "wav"}}]}]});
    let v = engine(json!({})).inspect_request(ApiShape::OpenAiChat, &mut audio);
    assert!(!v.blocked);
}

fn emitted(o: FilterOutcome) -> Vec<SseEvent> {
    match o {
        FilterOutcome::Emit(e) => e,
        FilterOutcome::Block { message } => panic!("unexpected block: {message}"),
        FilterOutcome::Unchanged => unreachable!(),
    }
}

#[test]
fn streamed_items_in_done_and_completed_events_are_redacted() {
    let engine = engine(json!({"response": {"default": "redact"}}));
    let l = leak();
    let mcp =
        json!({"type": "mcp_call", "id": "m1", "name": "lookup", "arguments": "{}", "output": l});
    let text = long_cjk();
    let message = json!({"type": "message", "id": "msg1", "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}]});
    let events = [
        json!({"type": "response.output_item.done", "output_index": 0, "item": mcp}),
        json!({"type": "response.output_text.delta", "output_index": 1, "content_index": 0, "item_id": "msg1", "delta": text}),
        json!({"type": "response.output_item.done", "output_index": 1, "item": message}),
        json!({"type": "response.some_future_event", "output_index": 0, "payload": l}),
        json!({"type": "response.completed", "response": {"id": "r1", "output": [mcp, message]}}),
    ];
    let mut f = engine.sse_filter(ApiShape::OpenAiResponses);
    let mut deltas = String::new();
    for e in events {
        for (_, data) in emitted(f.on_event(None, &e.to_string())) {
            let v: Value = serde_json::from_str(&data).expect("json");
            assert!(
                !data.contains(EMAIL) && !data.contains(AWS),
                "{}",
                v["type"]
            );
            if v["type"] == "response.output_text.delta" {
                deltas.push_str(v["delta"].as_str().unwrap_or_default());
            }
            if v["type"] == "response.completed" {
                // The whole text, redacted as the deltas were.
                assert_eq!(v["response"]["output"][1]["content"][0]["text"], deltas);
            }
        }
    }
    // A secret in a tool's output stops the stream when secrets are blocked.
    let engine = self::engine(json!({"response": {"secret": "block"}}));
    let mut f = engine.sse_filter(ApiShape::OpenAiResponses);
    let done = json!({"type": "response.output_item.done", "output_index": 0, "item": mcp});
    assert!(matches!(
        f.on_event(None, &done.to_string()),
        FilterOutcome::Block { .. }
    ));
}

/// Tool-call arguments whose JSON repeats a key: every copy is checked (a tree would hold only
/// the last, while the provider or the client gets the text with both).
#[test]
fn arguments_repeating_a_key_are_checked_in_every_copy() {
    let args = format!(r#"{{"note":"{EMAIL} {AWS}","note":"x"}}"#);
    let chat = json!({"messages": [{"role": "assistant", "content": null,
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": args}}]}]});
    assert_request_checked(ApiShape::OpenAiChat, chat, "chat tool_calls");
    let responses = json!({"input": [{"type": "function_call", "call_id": "c1", "name": "f", "arguments": args}]});
    assert_request_checked(
        ApiShape::OpenAiResponses,
        responses,
        "responses function_call",
    );
    // Answers: redacted in place, still JSON, both copies kept.
    let engine = engine(json!({"response": {"default": "redact"}}));
    let mut answer = json!({"choices": [{"index": 0, "message": {"role": "assistant",
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": args}}]}}]});
    let v = engine.inspect_response(ApiShape::OpenAiChat, &mut answer);
    assert!(v.modified);
    let out = answer["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(out, r#"{"note":"[EMAIL] [SECRET]","note":"x"}"#);
    // Escaped forms are read as what they stand for.
    let escaped = r#"{"a":"jane.doe\u0040example.com","a":1}"#;
    let mut answer = json!({"output": [{"type": "function_call", "arguments": escaped}]});
    engine.inspect_response(ApiShape::OpenAiResponses, &mut answer);
    let out = answer["output"][0]["arguments"]
        .as_str()
        .unwrap_or_default();
    assert!(
        out.contains("[EMAIL]") && !out.contains("example.com"),
        "{out}"
    );
}

#[test]
fn anthropic_stream_blocks_and_events_of_any_type_are_checked() {
    let engine = engine(json!({"response": {"default": "redact"}}));
    let l = leak();
    let events = [
        json!({"type": "content_block_start", "index": 0, "content_block":
            {"type": "mcp_tool_use", "id": "mcptoolu_1", "name": "lookup", "server_name": "crm", "input": {"q": l}}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "some_future_delta", "body": l}}),
        json!({"type": "some_future_event", "body": l}),
    ];
    let mut f = engine.sse_filter(ApiShape::AnthropicMessages);
    for e in events {
        for (_, data) in emitted(f.on_event(None, &e.to_string())) {
            assert!(!data.contains(EMAIL) && !data.contains(AWS), "{data}");
        }
    }
    // Thinking deltas are the provider's signed text: they pass as they are.
    let thinking = json!({"type": "content_block_delta", "index": 2, "delta": {"type": "thinking_delta", "thinking": l}});
    let out = emitted(f.on_event(None, &thinking.to_string()));
    assert_eq!(out[0].1, thinking.to_string());
}

/// With `log`, a value that arrives only in a finished item (a tool's output) is reported once;
/// one in text the deltas carried is not counted again when the item repeats it.
#[test]
fn streamed_items_are_counted_once_under_log() {
    let engine = engine(json!({"response": {"email": "log"}}));
    let mcp = json!({"type": "mcp_call", "id": "m1", "name": "lookup", "arguments": "{}", "output": format!("mail {EMAIL}")});
    let text = format!("write to {EMAIL} today");
    let message = json!({"type": "message", "id": "msg1", "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}]});
    let events = [
        json!({"type": "response.output_item.done", "output_index": 0, "item": mcp}),
        json!({"type": "response.output_text.delta", "output_index": 1, "content_index": 0, "item_id": "msg1", "delta": text}),
        json!({"type": "response.output_text.done", "output_index": 1, "content_index": 0, "item_id": "msg1", "text": text}),
        json!({"type": "response.output_item.done", "output_index": 1, "item": message}),
        json!({"type": "response.completed", "response": {"id": "r1", "output": [mcp, message]}}),
    ];
    let mut f = engine.sse_filter(ApiShape::OpenAiResponses);
    for e in events {
        for (_, data) in emitted(f.on_event(None, &e.to_string())) {
            assert!(
                data.contains(EMAIL) || !data.contains("jane"),
                "log mode changed {data}"
            );
        }
    }
    let found = f.detections();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].count, 2, "{found:?}");
}

#[test]
fn a_presigned_image_url_is_not_a_secret_but_a_key_id_beside_it_is() {
    let url = format!(
        "https://b.s3.amazonaws.com/cat.png?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={AWS}%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=0f1e2d"
    );
    let image = |text: &str| {
        json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": url}},
            {"type": "text", "text": text}
        ]}]})
    };
    // Under the default policy (secrets blocked) the presigned URL goes as it is.
    let mut body = image("What is in this picture?");
    let v = engine(json!({})).inspect_request(ApiShape::AnthropicMessages, &mut body);
    assert!(!v.blocked && !v.modified, "{body}");
    assert_eq!(
        body["messages"][0]["content"][0]["source"]["url"],
        json!(url)
    );
    // The same key id pasted as text is still one.
    let mut body = image(&format!("my key is {AWS}"));
    let v = engine(json!({})).inspect_request(ApiShape::AnthropicMessages, &mut body);
    assert!(v.blocked, "{body}");
}
