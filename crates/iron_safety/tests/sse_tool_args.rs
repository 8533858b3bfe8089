//! SseOutputFilter on streamed tool-call arguments: OpenAI chat `delta.tool_calls[].function.arguments`,
//! Responses `function_call_arguments` events and Anthropic `input_json_delta.partial_json`. Values split
//! down to one character per event are redacted, the joined arguments stay valid JSON (escapes such as
//! `\n` right before a value included), and a stream that ends without its closing events is flushed.

use iron_safety::{ApiShape, FilterOutcome, SafetyEngine, SafetyPolicy, SseEvent, SseOutputFilter};
use serde_json::{json, Value};

// Raw JSON text as a model streams it: `\n` is an escape right before the card number.
const ARGS: &str = r#"{"to":"jane.doe@example.com","body":"Card:\n4111 1111 1111 1111\nthanks"}"#;

fn redacted_args() -> Value {
    json!({"to": "[EMAIL]", "body": "Card:\n[CREDIT_CARD]\nthanks"})
}

fn filter(api: ApiShape, policy: &str) -> SseOutputFilter {
    let policy = SafetyPolicy::from_json_str(policy).expect("policy");
    SafetyEngine::new(&policy).expect("engine").sse_filter(api)
}

const REDACT: &str = r#"{"response":{"default":"redact"}}"#;

fn emitted(o: FilterOutcome) -> Vec<SseEvent> {
    match o {
        FilterOutcome::Emit(e) => e,
        FilterOutcome::Block { message } => panic!("unexpected block: {message}"),
        FilterOutcome::Unchanged => unreachable!("on_event always says what to send"),
    }
}

fn per_char(s: &str) -> Vec<String> {
    s.chars().map(String::from).collect()
}

fn json_of(data: &str) -> Value {
    serde_json::from_str(data).unwrap_or(Value::Null)
}

fn chat_events(pieces: &[String]) -> Vec<String> {
    let chunk = |delta: Value, finish: Value| {
        json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o",
               "choices":[{"index":0,"delta":delta,"finish_reason":finish}]})
        .to_string()
    };
    let mut out = vec![chunk(
        json!({"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"send","arguments":""}}]}),
        Value::Null,
    )];
    for p in pieces {
        out.push(chunk(
            json!({"tool_calls":[{"index":0,"function":{"arguments":p}}]}),
            Value::Null,
        ));
    }
    out.push(chunk(json!({}), json!("tool_calls")));
    out.push("[DONE]".to_string());
    out
}

fn chat_args(events: &[SseEvent]) -> String {
    events
        .iter()
        .map(|(_, d)| json_of(d))
        .filter_map(|v| {
            v["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

#[test]
fn openai_chat_tool_arguments_are_redacted_in_any_split() {
    let cut = ARGS.find("1111 1111").expect("card") + 2;
    let splits = [
        vec![ARGS[..cut].to_string(), ARGS[cut..].to_string()],
        vec![
            ARGS[..20].to_string(),
            ARGS[20..cut].to_string(),
            ARGS[cut..].to_string(),
        ],
        per_char(ARGS),
    ];
    for pieces in splits {
        let mut f = filter(ApiShape::OpenAiChat, REDACT);
        let mut out = Vec::new();
        for e in chat_events(&pieces) {
            out.extend(emitted(f.on_event(None, &e)));
        }
        let args = chat_args(&out);
        assert_eq!(json_of(&args), redacted_args(), "{args}");
        assert!(!args.contains("jane") && !args.contains("4111"), "{args}");
        // Held arguments are flushed before the chunk that finishes the choice.
        let finish = out
            .iter()
            .position(|(_, d)| json_of(d)["choices"][0]["finish_reason"] == "tool_calls")
            .expect("finish chunk");
        assert_eq!(chat_args(&out[finish..]), "");
        assert_eq!(out.last().map(|e| e.1.as_str()), Some("[DONE]"));
        let kinds: Vec<String> = f.detections().iter().map(|d| d.kind.to_string()).collect();
        assert_eq!(kinds, ["email", "creditCard"]);
    }
}

#[test]
fn anthropic_input_json_deltas_are_redacted_and_flushed_at_block_stop() {
    let mut f = filter(ApiShape::AnthropicMessages, REDACT);
    let mut out = Vec::new();
    let start = json!({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"send","input":{}}});
    out.extend(emitted(
        f.on_event(Some("content_block_start"), &start.to_string()),
    ));
    for p in per_char(ARGS) {
        let d = json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":p}});
        out.extend(emitted(
            f.on_event(Some("content_block_delta"), &d.to_string()),
        ));
    }
    let stop = json!({"type":"content_block_stop","index":1}).to_string();
    out.extend(emitted(f.on_event(Some("content_block_stop"), &stop)));
    let joined: String = out
        .iter()
        .map(|(_, d)| json_of(d))
        .filter(|v| v["delta"]["type"] == "input_json_delta")
        .filter_map(|v| v["delta"]["partial_json"].as_str().map(str::to_string))
        .collect();
    assert_eq!(json_of(&joined), redacted_args(), "{joined}");
    let last = out.last().expect("events");
    assert_eq!(last.0.as_deref(), Some("content_block_stop"));
    assert_eq!(last.1, stop, "the stop event passes byte for byte");
}

#[test]
fn responses_function_call_arguments_deltas_done_and_items_are_redacted() {
    let mut f = filter(ApiShape::OpenAiResponses, REDACT);
    let mut out = Vec::new();
    for p in per_char(ARGS) {
        let d = json!({"type":"response.function_call_arguments.delta","item_id":"fc_1","output_index":0,"delta":p});
        out.extend(emitted(f.on_event(
            Some("response.function_call_arguments.delta"),
            &d.to_string(),
        )));
    }
    let done = json!({"type":"response.function_call_arguments.done","item_id":"fc_1","output_index":0,"arguments":ARGS});
    out.extend(emitted(f.on_event(
        Some("response.function_call_arguments.done"),
        &done.to_string(),
    )));
    let item = json!({"type":"function_call","id":"fc_1","call_id":"call_1","name":"send","arguments":ARGS});
    let item_done = json!({"type":"response.output_item.done","output_index":0,"item":item});
    out.extend(emitted(f.on_event(
        Some("response.output_item.done"),
        &item_done.to_string(),
    )));
    let completed = json!({"type":"response.completed","response":{"id":"r1","output":[item]}});
    out.extend(emitted(
        f.on_event(Some("response.completed"), &completed.to_string()),
    ));

    let values: Vec<Value> = out.iter().map(|(_, d)| json_of(d)).collect();
    let deltas: String = values
        .iter()
        .filter(|v| v["type"] == "response.function_call_arguments.delta")
        .filter_map(|v| v["delta"].as_str().map(str::to_string))
        .collect();
    assert_eq!(json_of(&deltas), redacted_args(), "{deltas}");
    let find = |t: &str| values.iter().find(|v| v["type"] == t).cloned().expect(t);
    let whole = [
        find("response.function_call_arguments.done")["arguments"].clone(),
        find("response.output_item.done")["item"]["arguments"].clone(),
        find("response.completed")["response"]["output"][0]["arguments"].clone(),
    ];
    for args in whole {
        assert_eq!(
            json_of(args.as_str().unwrap_or("")),
            redacted_args(),
            "{args}"
        );
    }
    // Each value is counted once, from the deltas.
    let counts: Vec<(String, u32)> = f
        .detections()
        .iter()
        .map(|d| (d.kind.to_string(), d.count))
        .collect();
    assert_eq!(
        counts,
        [("email".to_string(), 1), ("creditCard".to_string(), 1)]
    );
}

#[test]
fn a_card_in_tool_arguments_can_block_the_stream() {
    let mut f = filter(
        ApiShape::OpenAiChat,
        r#"{"response":{"creditCard":"block"}}"#,
    );
    let mut blocked = None;
    let mut sent = String::new();
    for e in chat_events(&per_char(ARGS)) {
        match f.on_event(None, &e) {
            FilterOutcome::Emit(events) => sent.push_str(&chat_args(&events)),
            FilterOutcome::Block { message } => {
                blocked = Some(message);
                break;
            }
            FilterOutcome::Unchanged => unreachable!("on_event always says what to send"),
        }
    }
    let message = blocked.expect("the stream was blocked");
    assert!(sent.starts_with(r#"{"to":"#), "{sent}");
    assert!(
        !sent.contains("4111"),
        "no part of the card was sent: {sent}"
    );
    assert!(message.contains("creditCard ×1"), "{message}");
    assert!(!message.contains("4111"), "{message}");
}

#[test]
fn finish_flushes_a_stream_that_ended_without_closing_events() {
    let mut f = filter(ApiShape::AnthropicMessages, REDACT);
    let mut text = String::new();
    for p in per_char("Write to jane.doe@example.com") {
        let d =
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":p}});
        for (_, data) in emitted(f.on_event(Some("content_block_delta"), &d.to_string())) {
            text.push_str(json_of(&data)["delta"]["text"].as_str().unwrap_or(""));
        }
    }
    assert_eq!(text, "Write to ");
    let rest = emitted(f.finish());
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].0.as_deref(), Some("content_block_delta"));
    assert_eq!(json_of(&rest[0].1)["delta"]["text"], "[EMAIL]");
    assert_eq!(
        emitted(f.finish()),
        Vec::<SseEvent>::new(),
        "nothing is flushed twice"
    );

    let mut chat = filter(ApiShape::OpenAiChat, REDACT);
    for e in chat_events(&per_char(ARGS)).iter().take(ARGS.len()) {
        emitted(chat.on_event(None, e));
    }
    let rest = emitted(chat.finish());
    assert!(!chat_args(&rest).is_empty(), "held arguments are flushed");
    assert!(!chat_args(&rest).contains("1111"));
}

#[test]
fn a_card_sent_as_a_json_number_is_redacted_to_a_string_and_the_arguments_stay_json() {
    // Models write numbers unquoted: the placeholder must become a JSON string, in every split,
    // and in the whole copies (`.done`, output items) too.
    let args = r#"{"card_number":4111111111111111,"amount":12,"note":"card 4111111111111111","n":[5555555555554444]}"#;
    let expected = json!({"card_number":"[CREDIT_CARD]","amount":12,"note":"card [CREDIT_CARD]","n":["[CREDIT_CARD]"]});
    let splits = [
        vec![args.to_string()],
        vec![args[..20].to_string(), args[20..].to_string()],
        per_char(args),
    ];
    for pieces in splits {
        let mut f = filter(ApiShape::OpenAiChat, REDACT);
        let mut out = Vec::new();
        for e in chat_events(&pieces) {
            out.extend(emitted(f.on_event(None, &e)));
        }
        let joined = chat_args(&out);
        assert_eq!(json_of(&joined), expected, "{joined}");
    }
    let mut f = filter(ApiShape::OpenAiResponses, REDACT);
    let done = json!({"type":"response.function_call_arguments.done","item_id":"fc_1","output_index":0,"arguments":args});
    let out = emitted(f.on_event(
        Some("response.function_call_arguments.done"),
        &done.to_string(),
    ));
    let whole = json_of(&out[0].1)["arguments"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert_eq!(json_of(&whole), expected, "{whole}");
}

#[test]
fn escaped_line_breaks_and_tabs_in_arguments_are_whitespace_to_custom_patterns() {
    // `\n` and `\t` in JSON text are a line break and a tab to the reader of the arguments: a
    // custom pattern spanning whitespace must see them so, in every split and in the whole copies.
    let policy = r#"{"response":{"name":"block","address":"redact"},"custom":[{"name":"name","pattern":"Jane\\s+Doe"},{"name":"address","pattern":"\\d+ [A-Z][a-z]+\\s+Street"}]}"#;
    let args = r#"{"note":"Jane\nDoe","to":"221 Baker\tStreet"}"#;
    for pieces in [vec![args.to_string()], per_char(args)] {
        let mut f = filter(ApiShape::OpenAiChat, policy);
        let blocked = chat_events(&pieces)
            .iter()
            .any(|e| matches!(f.on_event(None, e), FilterOutcome::Block { .. }));
        assert!(blocked, "Jane\\nDoe blocks");
    }
    let redact = policy.replace(r#""name":"block""#, r#""name":"redact""#);
    let mut f = filter(ApiShape::OpenAiChat, &redact);
    let mut out = Vec::new();
    for e in chat_events(&per_char(args)) {
        out.extend(emitted(f.on_event(None, &e)));
    }
    let joined = chat_args(&out);
    assert_eq!(
        json_of(&joined),
        json!({"note":"[NAME]","to":"[ADDRESS]"}),
        "{joined}"
    );
    let mut f = filter(ApiShape::OpenAiResponses, &redact);
    let done = json!({"type":"response.function_call_arguments.done","item_id":"fc_1","output_index":0,"arguments":args});
    let out = emitted(f.on_event(
        Some("response.function_call_arguments.done"),
        &done.to_string(),
    ));
    let whole = json_of(&out[0].1)["arguments"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert_eq!(
        json_of(&whole),
        json!({"note":"[NAME]","to":"[ADDRESS]"}),
        "{whole}"
    );
}

#[test]
fn redacted_arguments_stay_json_for_signed_numbers_and_values_that_cross_strings() {
    // A card as a negative number, and custom values matched across JSON's own punctuation
    // (`"Jane":"Doe"`, `"a":"Jane" ,"b":1`): the client must still parse what it gets, in every
    // split, with no part of the value in it.
    let policy = r#"{"response":{"default":"redact"},"custom":[{"name":"v","pattern":"Jane\\W+Doe"},{"name":"w","pattern":"Smith\\W+\\d+"}]}"#;
    let cases = [
        r#"{"n":-4111111111111111,"m":1}"#,
        r#"{"Jane":"Doe","k":2}"#,
        r#"{"who":["Smith",12345],"z":true}"#,
    ];
    for args in cases {
        for pieces in [vec![args.to_string()], per_char(args)] {
            let mut f = filter(ApiShape::OpenAiChat, policy);
            let mut out = Vec::new();
            for e in chat_events(&pieces) {
                out.extend(emitted(f.on_event(None, &e)));
            }
            let joined = chat_args(&out);
            let parsed: Value =
                serde_json::from_str(&joined).unwrap_or_else(|e| panic!("{args} -> {joined}: {e}"));
            assert!(
                !joined.contains("4111") && !joined.contains("Doe") && !joined.contains("12345"),
                "{args} -> {joined}"
            );
            assert!(parsed.is_object(), "{joined}");
        }
    }
}
