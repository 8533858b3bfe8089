//! The tree-free reading of a whole answer (`SafetyEngine::inspect_response_unchanged`) agrees with
//! the tree walk (`inspect_response`) on every labelled corpus line placed in OpenAI chat,
//! completions and Anthropic answers: where it answers, the verdict is the same and the answer goes
//! out unchanged; where the tree walk leaves an answer unchanged, it answers too; and it leaves the
//! answers it cannot read plainly to the tree walk.

mod corpus_lines;

use iron_safety::{ApiShape, SafetyEngine, SafetyPolicy};
use serde_json::{json, Value};

const POLICIES: [&str; 4] = [
    r#"{"response":{"default":"redact"}}"#,
    r#"{"response":{"default":"log","secret":"redact"}}"#,
    r#"{"response":{"default":"log"}}"#,
    r#"{"response":{"default":"redact","creditCard":"block","usSsn":"block"}}"#,
];

fn engine(policy: &str) -> SafetyEngine {
    SafetyEngine::new(&SafetyPolicy::from_json_str(policy).expect("policy")).expect("engine")
}

/// Answers of each shape the fast reader handles, carrying `text` where answer text goes.
fn answers(text: &str) -> Vec<(ApiShape, Value)> {
    let usage = json!({"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12});
    vec![
        (
            ApiShape::OpenAiChat,
            json!({"id":"c","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":text,"refusal":null},"finish_reason":"stop"}],"usage":usage}),
        ),
        (
            ApiShape::OpenAiChat,
            json!({"choices":[{"index":0,"message":{"role":"assistant","content":"Here you go.","refusal":text}},{"index":1,"message":{"role":"assistant","content":text}}]}),
        ),
        (
            ApiShape::OpenAiCompletions,
            json!({"object":"text_completion","choices":[{"text":text,"index":0},{"text":"plain","index":1}],"usage":usage}),
        ),
        (
            ApiShape::AnthropicMessages,
            json!({"id":"m","type":"message","role":"assistant","content":[{"type":"thinking","thinking":"ok","signature":"s"},{"type":"text","text":text},{"type":"text","text":"and more"}],"usage":{"input_tokens":3,"output_tokens":9}}),
        ),
    ]
}

#[test]
fn the_fast_reading_agrees_with_the_tree_walk_on_the_corpus() {
    let lines = corpus_lines::plain_lines();
    assert!(lines.len() > 100, "corpus too small: {}", lines.len());
    let (mut fast_used, mut tree_only) = (0, 0);
    for policy in POLICIES {
        let engine = engine(policy);
        for line in &lines {
            for (api, answer) in answers(line) {
                let bytes = serde_json::to_vec(&answer).unwrap();
                let mut doc = answer.clone();
                let tree = engine.inspect_response(api, &mut doc);
                let fast = engine.inspect_response_unchanged(api, &bytes);
                let unchanged = !tree.modified && !tree.blocked;
                match fast {
                    Some(v) => {
                        assert!(unchanged, "fast path passed an answer the tree walk changes: {policy} {api:?} {line:?}");
                        assert_eq!(v, tree, "{policy} {api:?} {line:?}");
                        fast_used += 1;
                    }
                    None => {
                        assert!(
                            !unchanged,
                            "fast path gave up on a plain answer: {policy} {api:?} {line:?}"
                        );
                        tree_only += 1;
                    }
                }
            }
        }
    }
    // Both outcomes occur, so both halves of the agreement were checked.
    assert!(
        fast_used > 1000 && tree_only > 1000,
        "fast {fast_used}, tree {tree_only}"
    );
}

#[test]
fn escaped_text_is_read_as_its_characters() {
    // "\u0040" is "@": the address must be found exactly as the tree walk finds it.
    let engine = engine(r#"{"response":{"default":"log"}}"#);
    let body = br#"{"choices":[{"message":{"content":"mail maria.keller\u0040example.com\nor call +1 415 555 0142"}}]}"#;
    let fast = engine
        .inspect_response_unchanged(ApiShape::OpenAiChat, body)
        .expect("plain answer");
    let mut doc: Value = serde_json::from_slice(body).unwrap();
    let tree = engine.inspect_response(ApiShape::OpenAiChat, &mut doc);
    assert_eq!(fast, tree);
    assert_eq!(fast.detections.len(), 2, "{:?}", fast.detections);
}

#[test]
fn answers_it_cannot_read_plainly_go_to_the_tree_walk() {
    let engine = engine(r#"{"response":{"default":"log"}}"#);
    let unsure: [(ApiShape, &str); 9] = [
        (
            ApiShape::OpenAiChat,
            r#"{"choices":[{"message":{"content":null,"tool_calls":[{"function":{"name":"f","arguments":"{}"}}]}}]}"#,
        ),
        (
            ApiShape::OpenAiChat,
            r#"{"choices":[{"message":{"content":null,"function_call":{"name":"f","arguments":"{}"}}}]}"#,
        ),
        (
            ApiShape::OpenAiChat,
            r#"{"choices":[{"message":{"content":[{"type":"text","text":"hi"}]}}]}"#,
        ),
        (
            ApiShape::OpenAiChat,
            r#"{"choices":[{"message":{"content":"a","content":"b"}}]}"#,
        ),
        (
            ApiShape::OpenAiChat,
            r#"{"choices":[{"message":{"content":"a"}}]} trailing"#,
        ),
        (ApiShape::OpenAiChat, r#"{"no_choices":true}"#),
        (
            ApiShape::AnthropicMessages,
            r#"{"content":[{"type":"tool_use","id":"t","name":"f","input":{"q":"x"}}]}"#,
        ),
        (
            ApiShape::AnthropicMessages,
            r#"{"content":"a bare string"}"#,
        ),
        (
            ApiShape::OpenAiResponses,
            r#"{"output":[{"type":"message","content":[{"type":"output_text","text":"hi"}]}]}"#,
        ),
    ];
    for (api, body) in unsure {
        assert!(
            engine
                .inspect_response_unchanged(api, body.as_bytes())
                .is_none(),
            "{api:?} {body}"
        );
    }
    // An embedding holds no answer text: nothing to read, nothing found.
    let v = engine
        .inspect_response_unchanged(
            ApiShape::OpenAiEmbeddings,
            br#"{"data":[{"embedding":[0.1]}]}"#,
        )
        .expect("embeddings");
    assert!(v.detections.is_empty() && !v.modified && !v.blocked);
}

#[test]
fn the_answer_usage_is_read_in_the_same_pass_as_the_tree_has_it() {
    use iron_safety::UsageRead;
    let engine = engine(r#"{"response":{"default":"log"}}"#);
    let mut shapes = answers("plain words");
    // Without usage, with a null one, and with nested details: what the tree's `usage` member holds.
    shapes.push((
        ApiShape::OpenAiChat,
        json!({"choices":[{"message":{"content":"x"}}]}),
    ));
    shapes.push((
        ApiShape::OpenAiChat,
        json!({"choices":[{"message":{"content":"x"}}],"usage":null}),
    ));
    shapes.push((
        ApiShape::OpenAiChat,
        json!({"choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":10,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":6},"completion_tokens_details":{"reasoning_tokens":2}}}),
    ));
    // OpenAI's service tier, beside the usage, decides the rates: read in the same pass.
    shapes.push((
        ApiShape::OpenAiChat,
        json!({"choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":1,"completion_tokens":1},"service_tier":"priority"}),
    ));
    for (api, answer) in shapes {
        let bytes = serde_json::to_vec(&answer).unwrap();
        let read = engine
            .read_response_unchanged(api, &bytes)
            .expect("a plain answer")
            .usage;
        let usage = answer.get("usage").filter(|u| !u.is_null()).cloned();
        let service_tier = answer.get("service_tier").cloned();
        assert_eq!(
            read,
            UsageRead::Read {
                usage,
                service_tier
            },
            "{api:?} {answer}"
        );
    }
    // Shapes the reader does not parse say so: the caller reads the usage from the bytes itself.
    let embedding =
        br#"{"data":[{"embedding":[0.1]}],"usage":{"prompt_tokens":3,"total_tokens":3}}"#;
    let read = engine
        .read_response_unchanged(ApiShape::OpenAiEmbeddings, embedding)
        .expect("nothing to scan");
    assert_eq!(read.usage, UsageRead::NotRead);
}
