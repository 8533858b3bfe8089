use super::*;
use crate::catalog::Catalog;
use serde_json::json;

fn chat(content: serde_json::Value) -> Value {
    json!({"model":"gpt-4o","messages":[{"role":"user","content":content}]})
}

#[test]
fn text_is_bounded_by_its_bytes_where_the_estimate_undercounts() {
    let gpt4o = Catalog::builtin().price("gpt-4o");
    // Texts a tokenizer splits into about one token per one or two bytes (a review measured the
    // best-guess estimate 2-3× under the real count on these).
    let spaced_digits: String = (0..4000).map(|i| format!("{} ", i % 10)).collect();
    let mixed: String = (0..2000)
        .map(|i| format!("a{}b{} ", i % 10, i % 7))
        .collect();
    let hex: String = (0..3000).map(|i| format!("{:02x} ", i % 256)).collect();
    for text in [spaced_digits, mixed, hex] {
        let body = chat(json!(text));
        let bound = input_token_bound(&body, ApiKind::OpenAiChat, gpt4o);
        assert!(bound >= text.len() as u64, "{bound} < {} bytes", text.len());
        assert!(bound >= crate::estimate_input_tokens(&body, ApiKind::OpenAiChat));
    }
}

#[test]
fn the_bound_never_exceeds_the_context_window() {
    let gpt4o = Catalog::builtin().price("gpt-4o");
    let body = chat(json!("x".repeat(2_000_000)));
    assert_eq!(
        input_token_bound(&body, ApiKind::OpenAiChat, gpt4o),
        128_000
    );
    // Unknown window, or a long-context tier a beta header unlocks: the largest window listed.
    assert_eq!(
        input_token_bound(&body, ApiKind::OpenAiChat, None),
        FALLBACK_CONTEXT_TOKENS
    );
    let sonnet = Catalog::builtin().price("claude-sonnet-4-5");
    assert!(sonnet.is_some_and(|p| p.long_context.is_some()));
    let body = json!({"messages":[{"role":"user","content":"x".repeat(2_000_000)}]});
    assert_eq!(
        input_token_bound(&body, ApiKind::AnthropicMessages, sonnet),
        FALLBACK_CONTEXT_TOKENS
    );
}

#[test]
fn input_the_request_only_refers_to_is_held_at_the_context_window() {
    let gpt4o = Catalog::builtin().price("gpt-4o");
    let r = ApiKind::OpenAiResponses;
    for body in [
        json!({"input":"next","previous_response_id":"resp_1"}),
        json!({"input":"next","conversation":"conv_1"}),
        json!({"prompt":{"id":"pmpt_1"}}),
        json!({"input":[{"type":"item_reference","id":"msg_1"}]}),
        json!({"input":[{"role":"user","content":[{"type":"input_file","file_id":"file-1"}]}]}),
        json!({"input":[{"role":"user","content":[{"type":"input_file","file_url":"https://x/a.pdf"}]}]}),
    ] {
        assert_eq!(input_token_bound(&body, r, gpt4o), 128_000, "{body}");
    }
    let doc = json!({"type":"document","source":{"type":"url","url":"https://x/a.pdf"}});
    let pdf = json!({"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0="}});
    let chat_file =
        json!({"type":"file","file":{"file_data":"data:application/pdf;base64,JVBERi0="}});
    assert_eq!(
        input_token_bound(&chat(json!([chat_file])), ApiKind::OpenAiChat, gpt4o),
        128_000
    );
    for part in [doc, pdf] {
        let body = json!({"messages":[{"role":"user","content":[part]}]});
        assert_eq!(
            input_token_bound(&body, ApiKind::AnthropicMessages, None),
            FALLBACK_CONTEXT_TOKENS
        );
    }
    // A plain-text document is text.
    let text_doc = json!({"messages":[{"role":"user","content":[
        {"type":"document","source":{"type":"text","media_type":"text/plain","data":"hello"}}]}]});
    assert!(input_token_bound(&text_doc, ApiKind::AnthropicMessages, None) < 200);
    // Without a reference the same Responses body is bounded by its bytes.
    assert!(input_token_bound(&json!({"input":"next"}), r, gpt4o) < 100);
}

#[test]
fn images_count_their_maximum_whatever_their_size_or_source() {
    let gpt4o = Catalog::builtin().price("gpt-4o");
    let by_url = chat(json!([{"type":"image_url","image_url":{"url":"https://x/i.png"}}]));
    let tiny_inline =
        chat(json!([{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBO"}}]));
    for body in [by_url, tiny_inline] {
        let b = input_token_bound(&body, ApiKind::OpenAiChat, gpt4o);
        assert!((IMAGE_TOKENS..IMAGE_TOKENS + 100).contains(&b), "{b}");
    }
    let two = json!({"messages":[{"role":"user","content":[
        {"type":"image","source":{"type":"url","url":"https://x/a.png"}},
        {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBO"}}]}]});
    assert!(input_token_bound(&two, ApiKind::AnthropicMessages, None) >= 2 * IMAGE_TOKENS);
}

#[test]
fn tool_schemas_are_text_even_when_a_property_looks_like_a_part() {
    let gpt4o = Catalog::builtin().price("gpt-4o");
    let body = json!({"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{
        "name":"read","parameters":{"type":"object","properties":{"file_id":{"type":"string"},"image":{"type":"image"}}}}}]});
    let b = input_token_bound(&body, ApiKind::OpenAiChat, gpt4o);
    assert!((100..1000).contains(&b), "{b}");
}

#[test]
fn token_id_prompts_count_one_token_per_id() {
    let body = json!({"prompt":[[1,2,3],[4,5]]});
    let b = input_token_bound(&body, ApiKind::OpenAiCompletions, None);
    assert!((5..40).contains(&b), "{b}");
}

#[test]
fn provider_run_tools_and_background_calls_cannot_be_held() {
    let r = ApiKind::OpenAiResponses;
    assert_eq!(
        unmetered(&json!({"input":"x","background":true}), r),
        Some(Unmetered::Background)
    );
    assert_eq!(
        unmetered(
            &json!({"tools":[{"type":"function","name":"f"},{"type":"web_search"}]}),
            r
        ),
        Some(Unmetered::ServerTool("web_search".into()))
    );
    assert_eq!(
        unmetered(&json!({"tools":[{"type":"function","name":"f"}]}), r),
        None
    );
    let a = ApiKind::AnthropicMessages;
    assert_eq!(
        unmetered(
            &json!({"tools":[{"type":"web_fetch_20250910","name":"web_fetch"}]}),
            a
        ),
        Some(Unmetered::ServerTool("web_fetch_20250910".into()))
    );
    assert_eq!(
        unmetered(
            &json!({"mcp_servers":[{"type":"url","url":"https://m"}]}),
            a
        ),
        Some(Unmetered::ServerTool("mcp_servers".into()))
    );
    // Client tools: plain ones, and Anthropic's computer / bash / editor tools (run by the caller).
    assert_eq!(
        unmetered(
            &json!({"tools":[{"name":"f","input_schema":{}},{"type":"bash_20250124","name":"bash"}]}),
            a
        ),
        None
    );
    // Chat completions have no provider-run tools; background is a Responses option.
    assert_eq!(
        unmetered(
            &json!({"background":true,"tools":[{"type":"web_search"}]}),
            ApiKind::OpenAiChat
        ),
        None
    );
}

#[test]
fn predicted_output_adds_to_the_output_bound() {
    let body = json!({"prediction":{"type":"content","content":"x".repeat(1000)}});
    assert!(extra_output_bound(&body, ApiKind::OpenAiChat) >= 1000);
    assert_eq!(extra_output_bound(&body, ApiKind::OpenAiResponses), 0);
}
