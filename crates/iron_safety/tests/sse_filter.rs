//! SseOutputFilter over each provider's stream shape.

use iron_safety::{
    Action, ApiShape, FilterOutcome, PiiKind, SafetyEngine, SafetyPolicy, SseEvent, SseOutputFilter,
};
use serde_json::{json, Value};

fn filter(api: ApiShape, policy: &str) -> SseOutputFilter {
    let policy = SafetyPolicy::from_json_str(policy).expect("policy");
    SafetyEngine::new(&policy).expect("engine").sse_filter(api)
}

fn emitted(o: FilterOutcome) -> Vec<SseEvent> {
    match o {
        FilterOutcome::Emit(e) => e,
        FilterOutcome::Block { message } => panic!("unexpected block: {message}"),
        FilterOutcome::Unchanged => unreachable!("on_event always says what to send"),
    }
}

fn chat_chunk(content: Option<&str>, finish: Option<&str>) -> String {
    let delta = match content {
        Some(c) => json!({"content": c}),
        None => json!({}),
    };
    json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o",
           "choices":[{"index":0,"delta":delta,"finish_reason":finish}]})
    .to_string()
}

fn chat_text(events: &[SseEvent]) -> String {
    events
        .iter()
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

const REDACT: &str = r#"{"response":{"default":"redact"}}"#;

#[test]
fn openai_chat_redacts_across_chunks_and_flushes_before_finish() {
    let mut f = filter(ApiShape::OpenAiChat, REDACT);
    let mut out = Vec::new();
    for piece in ["Sure. Write to jane.", "doe@example.com", " today"] {
        out.extend(emitted(f.on_event(None, &chat_chunk(Some(piece), None))));
    }
    let finish = chat_chunk(None, Some("stop"));
    let last = emitted(f.on_event(None, &finish));
    // the synthesized chunk carries the held text and comes before the untouched finishing chunk
    assert_eq!(last.len(), 2);
    assert_eq!(last[1].1, finish);
    let synth: Value = serde_json::from_str(&last[0].1).expect("json");
    assert_eq!(synth["id"], "c1");
    assert_eq!(synth["model"], "gpt-4o");
    assert_eq!(synth["object"], "chat.completion.chunk");
    out.extend(last);
    out.extend(emitted(f.on_event(None, "[DONE]")));
    assert_eq!(out.last().map(|e| e.1.as_str()), Some("[DONE]"));
    assert_eq!(chat_text(&out), "Sure. Write to [EMAIL] today");
    let d = f.detections();
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].kind.clone(), d[0].count, d[0].action),
        (PiiKind::Email, 1, Action::Redact)
    );
}

#[test]
fn unchanged_and_unknown_events_pass_through_byte_for_byte() {
    let mut f = filter(ApiShape::OpenAiChat, REDACT);
    let usage = r#"{"id":"c1","choices":[],"usage":{"prompt_tokens":3}}"#;
    assert_eq!(
        emitted(f.on_event(None, usage)),
        vec![(None, usage.to_string())]
    );
    let mut a = filter(ApiShape::AnthropicMessages, REDACT);
    let ping = r#"{"type": "ping"}"#;
    assert_eq!(
        emitted(a.on_event(Some("ping"), ping)),
        vec![(Some("ping".to_string()), ping.to_string())]
    );
}

#[test]
fn anthropic_text_deltas_are_redacted_and_flushed_at_block_stop() {
    let mut f = filter(ApiShape::AnthropicMessages, REDACT);
    let delta = |t: &str| {
        json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":t}})
            .to_string()
    };
    let mut out = Vec::new();
    for piece in ["Call +44 20 79", "46 0958 now"] {
        out.extend(emitted(
            f.on_event(Some("content_block_delta"), &delta(piece)),
        ));
    }
    let stop = r#"{"type":"content_block_stop","index":0}"#;
    let tail = emitted(f.on_event(Some("content_block_stop"), stop));
    assert_eq!(
        tail.last(),
        Some(&(Some("content_block_stop".to_string()), stop.to_string()))
    );
    out.extend(tail);
    let text: String = out
        .iter()
        .filter(|(e, _)| e.as_deref() == Some("content_block_delta"))
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["delta"]["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(text, "Call [PHONE] now");
}

#[test]
fn responses_deltas_done_text_and_completed_output_are_redacted() {
    let mut f = filter(ApiShape::OpenAiResponses, REDACT);
    let delta = |t: &str| {
        json!({"type":"response.output_text.delta","item_id":"m1","output_index":0,"content_index":0,"delta":t,"sequence_number":4}).to_string()
    };
    let mut out = Vec::new();
    out.extend(emitted(f.on_event(
        Some("response.output_text.delta"),
        &delta("IBAN DE89 3704 0044 "),
    )));
    out.extend(emitted(f.on_event(
        Some("response.output_text.delta"),
        &delta("0532 0130 00 ok"),
    )));
    let done = json!({"type":"response.output_text.done","item_id":"m1","output_index":0,"content_index":0,
        "text":"IBAN DE89 3704 0044 0532 0130 00 ok","sequence_number":5}).to_string();
    let done_out = emitted(f.on_event(Some("response.output_text.done"), &done));
    let done_v: Value = serde_json::from_str(&done_out.last().expect("done").1).expect("json");
    assert_eq!(done_v["text"], "IBAN [IBAN] ok");
    out.extend(done_out);
    let text: String = out
        .iter()
        .filter(|(e, _)| e.as_deref() == Some("response.output_text.delta"))
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["delta"].as_str().map(str::to_string))
        .collect();
    assert_eq!(text, "IBAN [IBAN] ok");
    let completed =
        json!({"type":"response.completed","response":{"output":[{"type":"message","content":[
        {"type":"output_text","text":"IBAN DE89 3704 0044 0532 0130 00 ok"}]}]}})
        .to_string();
    let c = emitted(f.on_event(Some("response.completed"), &completed));
    let v: Value = serde_json::from_str(&c[0].1).expect("json");
    assert_eq!(
        v["response"]["output"][0]["content"][0]["text"],
        "IBAN [IBAN] ok"
    );
    assert_eq!(
        f.detections()[0].count,
        1,
        "the done/completed copies are not counted twice"
    );
}

#[test]
fn block_action_stops_the_stream_without_naming_the_value() {
    let mut f = filter(
        ApiShape::OpenAiChat,
        r#"{"response":{"creditCard":"block"}}"#,
    );
    let o = f.on_event(
        None,
        &chat_chunk(
            Some("card 4111 1111 1111 1111 is yours, enjoy the rest"),
            None,
        ),
    );
    let FilterOutcome::Block { message } = o else {
        panic!("expected block")
    };
    assert!(message.contains("creditCard ×1"), "{message}");
    assert!(!message.contains("4111"));
    assert!(matches!(
        f.on_event(None, "[DONE]"),
        FilterOutcome::Block { .. }
    ));
}

#[test]
fn unparseable_event_fails_closed() {
    let mut f = filter(ApiShape::AnthropicMessages, REDACT);
    let o = f.on_event(Some("content_block_delta"), "{not json");
    let FilterOutcome::Block { message } = o else {
        panic!("expected block")
    };
    assert!(message.contains("failed closed"), "{message}");
}

/// What a client gets from every event's data: the concatenated strings of every member named
/// `text`, `delta`, `content`, `partial_json` or `data` (wherever they are), so text an SDK would keep is
/// seen wherever an upstream put it.
fn all_text(events: &[SseEvent]) -> String {
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    match x {
                        Value::String(s)
                            if ["text", "delta", "content", "partial_json", "data"]
                                .contains(&k.as_str()) =>
                        {
                            out.push_str(s)
                        }
                        _ => walk(x, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = String::new();
    for (_, d) in events {
        if let Ok(v) = serde_json::from_str::<Value>(d) {
            walk(&v, &mut out);
        }
    }
    out
}

/// Framing a hostile or broken upstream could use to slip text past the filter, each read the
/// way the SDKs read it: the data's `type` decides (not the `event:` name), a chunk whose
/// `error` is null/false/empty is a normal chunk, text in start events counts, `1e0` is index 1.
#[test]
fn text_in_unusual_framing_is_filtered_as_the_sdks_would_read_it() {
    let mail = "jane.doe@example.com";
    let block = r#"{"response":{"email":"block"}}"#;
    let blocked = |f: &mut SseOutputFilter, event: Option<&str>, data: &str| {
        matches!(f.on_event(event, data), FilterOutcome::Block { .. })
            || matches!(f.finish(), FilterOutcome::Block { .. })
    };
    // Anthropic: a text delta under another event name.
    let mut f = filter(ApiShape::AnthropicMessages, block);
    let d = json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":format!("mail {mail} ok")}});
    assert!(blocked(&mut f, Some("message_delta"), &d.to_string()));
    // Responses: a text delta named as a progress event.
    let mut f = filter(ApiShape::OpenAiResponses, block);
    let d = json!({"type":"response.output_text.delta","output_index":0,"content_index":0,"delta":format!("mail {mail} ok")});
    assert!(blocked(
        &mut f,
        Some("response.in_progress"),
        &d.to_string()
    ));
    // Chat: `"error": null` (and false, "", 0) is a normal chunk to the SDK.
    for err in [json!(null), json!(false), json!(""), json!(0)] {
        let mut f = filter(ApiShape::OpenAiChat, block);
        let mut c: Value =
            serde_json::from_str(&chat_chunk(Some(&format!("mail {mail} ok")), None))
                .expect("chunk");
        c["error"] = err.clone();
        assert!(blocked(&mut f, None, &c.to_string()), "error: {err}");
    }
    // Text carried whole in start events.
    let starts = [
        (
            ApiShape::AnthropicMessages,
            "message_start",
            json!({"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"claude","content":[{"type":"text","text":format!("hi {mail}")}]}}),
        ),
        (
            ApiShape::AnthropicMessages,
            "content_block_start",
            json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":format!("hi {mail}")}}),
        ),
        (
            ApiShape::AnthropicMessages,
            "content_block_start",
            json!({"type":"content_block_start","index":1,"content_block":{"type":"web_fetch_tool_result","tool_use_id":"srvtoolu_1","content":{"type":"web_fetch_result","url":"https://x.test","content":{"type":"document","source":{"type":"text","media_type":"text/plain","data":format!("contact {mail}")}}}}}),
        ),
        (
            ApiShape::OpenAiResponses,
            "response.output_item.added",
            json!({"type":"response.output_item.added","output_index":0,"item":{"type":"message","id":"msg_1","role":"assistant","content":[{"type":"output_text","text":format!("hi {mail}"),"annotations":[]}]}}),
        ),
        (
            ApiShape::OpenAiResponses,
            "response.content_part.added",
            json!({"type":"response.content_part.added","output_index":0,"content_index":0,"item_id":"msg_1","part":{"type":"output_text","text":format!("hi {mail}"),"annotations":[]}}),
        ),
    ];
    for (api, name, data) in &starts {
        let mut f = filter(*api, block);
        assert!(
            blocked(&mut f, Some(name), &data.to_string()),
            "{name}: {data}"
        );
        let mut f = filter(*api, REDACT);
        let out = emitted(f.on_event(Some(name), &data.to_string()));
        let text = all_text(&out);
        assert!(
            !text.contains("jane.doe") && text.contains("[EMAIL]"),
            "{name}: {text}"
        );
    }
    // `index: 1e0` is choice 1 to a JavaScript reader: one stream with `index: 1`.
    let mut f = filter(ApiShape::OpenAiChat, REDACT);
    let chunk = |index: Value, text: &str| {
        json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o",
               "choices":[{"index":index,"delta":{"content":text},"finish_reason":null}]})
        .to_string()
    };
    let mut out = Vec::new();
    let one: Value = serde_json::from_str("1e0").expect("number");
    out.extend(emitted(f.on_event(None, &chunk(one, "write jane.doe@exa"))));
    out.extend(emitted(f.on_event(None, &chunk(json!(1), "mple.com now"))));
    if let FilterOutcome::Emit(e) = f.finish() {
        out.extend(e);
    }
    let text = all_text(&out);
    assert!(!text.contains("jane.doe@exa"), "{text}");
}

/// Streamed texts beside the main text are filtered like it, split values included: chat
/// refusals, audio transcripts and legacy `function_call` arguments; Responses refusals,
/// reasoning summaries and text, audio transcripts and custom tool input.
#[test]
fn side_texts_of_streamed_answers_are_redacted_across_events() {
    let pieces = ["Write to jane.doe@exa", "mple.com soon"];
    let expect = |joined: &str, what: &str| {
        assert!(
            joined.contains("[EMAIL]") && !joined.contains("jane") && joined.ends_with("soon"),
            "{what}: {joined:?}"
        );
    };
    let chat = |delta: Value, finish: Value| {
        json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-audio-preview",
               "choices":[{"index":0,"delta":delta,"finish_reason":finish}]})
        .to_string()
    };
    type Make = fn(&str) -> Value;
    let chat_cases: [(&str, Make, &[&str]); 3] = [
        ("refusal", |t| json!({ "refusal": t }), &["refusal"]),
        (
            "audio",
            |t| json!({ "audio": { "id": "a1", "transcript": t } }),
            &["audio", "transcript"],
        ),
        (
            "function_call",
            |t| json!({ "function_call": { "arguments": t } }),
            &["function_call", "arguments"],
        ),
    ];
    for (what, make, path) in chat_cases {
        let mut f = filter(ApiShape::OpenAiChat, REDACT);
        let mut out = Vec::new();
        for p in pieces {
            out.extend(emitted(f.on_event(None, &chat(make(p), Value::Null))));
        }
        out.extend(emitted(f.on_event(None, &chat(json!({}), json!("stop")))));
        let joined: String = out
            .iter()
            .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
            .filter_map(|v| {
                path.iter()
                    .try_fold(&v["choices"][0]["delta"], |v, k| v.get(k))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .collect();
        expect(&joined, what);
    }
    let responses: [(&str, Value); 5] = [
        (
            "response.refusal.delta",
            json!({"output_index":0,"content_index":0,"item_id":"msg_1"}),
        ),
        (
            "response.reasoning_summary_text.delta",
            json!({"output_index":0,"summary_index":0,"item_id":"rs_1"}),
        ),
        (
            "response.reasoning_text.delta",
            json!({"output_index":0,"content_index":0,"item_id":"rs_1"}),
        ),
        ("response.audio.transcript.delta", json!({})),
        (
            "response.custom_tool_call_input.delta",
            json!({"output_index":1,"item_id":"ctc_1"}),
        ),
    ];
    for (kind, fields) in responses {
        let mut f = filter(ApiShape::OpenAiResponses, REDACT);
        let mut out = Vec::new();
        for p in pieces {
            let mut e = fields.clone();
            e["type"] = json!(kind);
            e["delta"] = json!(p);
            out.extend(emitted(f.on_event(Some(kind), &e.to_string())));
        }
        let done = json!({"type":"response.completed","response":{"id":"r1","output":[]}});
        out.extend(emitted(
            f.on_event(Some("response.completed"), &done.to_string()),
        ));
        let joined: String = out
            .iter()
            .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
            .filter(|v| v["type"] == kind)
            .filter_map(|v| v["delta"].as_str().map(str::to_string))
            .collect();
        expect(&joined, kind);
    }
}

/// Text for a choice or block after it finished would be a second stream to the redactor but
/// one text to the client (a value split across the end passes in halves): the stream stops.
#[test]
fn text_after_a_choice_or_block_finished_stops_the_stream() {
    let stopped = |o: FilterOutcome| matches!(o, FilterOutcome::Block { message } if message.contains("already finished"));
    // Chat: finish, then more text for the same choice (also as `1e0` after `1`).
    let mut f = filter(ApiShape::OpenAiChat, REDACT);
    emitted(f.on_event(None, &chat_chunk(Some("Mail jane.doe@exa"), None)));
    emitted(f.on_event(None, &chat_chunk(None, Some("stop"))));
    assert!(stopped(
        f.on_event(None, &chat_chunk(Some("mple.com now"), None))
    ));
    let mut f = filter(ApiShape::OpenAiChat, REDACT);
    let first = r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":1,"delta":{"content":"Mail jane.doe@exa"},"finish_reason":"stop"}]}"#;
    let again = r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":1e0,"delta":{"content":"mple.com now"},"finish_reason":null}]}"#;
    emitted(f.on_event(None, first));
    assert!(stopped(f.on_event(None, again)));
    // `"1"` is choice 1 to a JavaScript reader too.
    let mut f = filter(ApiShape::OpenAiChat, REDACT);
    emitted(f.on_event(None, first));
    assert!(stopped(f.on_event(None, &again.replace("1e0", "\"1\""))));
    // An index the filter cannot follow as the client will (negative, fractional, padded) stops it.
    for odd in ["-1", "0.5", "\"01\"", "null", "true", "99999999999"] {
        let mut f = filter(ApiShape::OpenAiChat, REDACT);
        let o = f.on_event(None, &again.replace("1e0", odd));
        assert!(
            matches!(o, FilterOutcome::Block { ref message } if message.contains("index")),
            "{odd}: {o:?}"
        );
        let mut f = filter(ApiShape::AnthropicMessages, REDACT);
        let d = format!(
            r#"{{"type":"content_block_delta","index":{odd},"delta":{{"type":"text_delta","text":"hi"}}}}"#
        );
        assert!(
            matches!(
                f.on_event(Some("content_block_delta"), &d),
                FilterOutcome::Block { .. }
            ),
            "{odd}"
        );
    }
    // Other choices go on; an empty delta after the finish is fine.
    let mut f = filter(ApiShape::OpenAiChat, REDACT);
    emitted(f.on_event(None, &chat_chunk(None, Some("stop"))));
    emitted(f.on_event(None, &chat_chunk(Some(""), None)));
    let other = chat_chunk(Some("hello"), None).replace("\"index\":0", "\"index\":1");
    emitted(f.on_event(None, &other));
    // Anthropic: a delta for a block after its stop.
    let mut f = filter(ApiShape::AnthropicMessages, REDACT);
    let d = |t: &str| {
        json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":t}})
            .to_string()
    };
    emitted(f.on_event(Some("content_block_delta"), &d("Mail jane.doe@exa")));
    emitted(f.on_event(
        Some("content_block_stop"),
        r#"{"type":"content_block_stop","index":0}"#,
    ));
    assert!(stopped(
        f.on_event(Some("content_block_delta"), &d("mple.com now"))
    ));
}

/// Stream events that carry text whole or beside the text, and error events whose message the
/// SDK raises: citations, annotations, code interpreter code, MCP call arguments, errors.
#[test]
fn citations_annotations_code_mcp_arguments_and_errors_in_streams_are_checked() {
    let mail = "jane.doe@example.com";
    let block = r#"{"response":{"email":"block"}}"#;
    let blocked = |api: ApiShape, events: &[(Option<&str>, String)]| {
        let mut f = filter(api, block);
        events
            .iter()
            .any(|(e, d)| matches!(f.on_event(*e, d), FilterOutcome::Block { .. }))
            || matches!(f.finish(), FilterOutcome::Block { .. })
    };
    let anthropic = [
        json!({"type":"content_block_delta","index":0,"delta":{"type":"citations_delta","citation":{"type":"char_location","cited_text":format!("write to {mail}"),"document_index":0,"start_char_index":0,"end_char_index":10}}}),
        json!({"type":"error","error":{"type":"invalid_request_error","message":format!("bad value {mail}")}}),
    ];
    for e in anthropic {
        let name = e["type"].as_str().unwrap_or_default().to_string();
        assert!(
            blocked(ApiShape::AnthropicMessages, &[(Some(&name), e.to_string())]),
            "{e}"
        );
    }
    let half = |kind: &str, field: &str, i: usize| {
        let text = ["write to jane.doe@exa", "mple.com soon"][i];
        json!({"type":kind,"output_index":0,"item_id":"x",field:text}).to_string()
    };
    let responses: Vec<Vec<(Option<&str>, String)>> = vec![
        vec![(None, json!({"type":"response.output_text.annotation.added","output_index":0,"content_index":0,"annotation_index":0,"annotation":{"type":"url_citation","title":format!("by {mail}"),"url":"https://x.test"}}).to_string())],
        vec![(None, json!({"type":"error","code":"server_error","message":format!("failed for {mail}")}).to_string())],
        vec![(None, json!({"type":"response.failed","response":{"id":"r","output":[],"error":{"code":"server_error","message":format!("failed for {mail}")}}}).to_string())],
        vec![
            (None, half("response.code_interpreter_call_code.delta", "delta", 0)),
            (None, half("response.code_interpreter_call_code.delta", "delta", 1)),
        ],
        vec![
            (None, half("response.mcp_call_arguments.delta", "delta", 0)),
            (None, half("response.mcp_call_arguments.delta", "delta", 1)),
        ],
    ];
    for events in &responses {
        assert!(blocked(ApiShape::OpenAiResponses, events), "{events:?}");
    }
    // A chat chunk the SDK raises as an error (a truthy `error`): its message is checked too.
    let chunk = json!({"id":"c","object":"chat.completion.chunk","choices":[],"error":{"message":format!("quota for {mail}")}});
    assert!(blocked(ApiShape::OpenAiChat, &[(None, chunk.to_string())]));
    // Redacted, not blocked: the citation goes on without the value.
    let mut f = filter(ApiShape::AnthropicMessages, REDACT);
    let c = json!({"type":"content_block_delta","index":0,"delta":{"type":"citations_delta","citation":{"type":"char_location","cited_text":format!("write to {mail}")}}});
    let out = emitted(f.on_event(Some("content_block_delta"), &c.to_string()));
    assert!(
        !out[0].1.contains("jane.doe") && out[0].1.contains("[EMAIL]"),
        "{}",
        out[0].1
    );
}
