//! Policy parsing (defaults, errors naming the field) and request/response body inspection.

use iron_safety::{
    sha256_hex, value_digest, Action, ApiShape, Direction, PiiKind, SafetyEngine, SafetyPolicy,
};
use serde_json::json;

const KEY: &str = "sk-proj-Ab3dEf9hIjK1mNoP2rStU7wXyZ0aBcD4eFgH5iJkL6mNoP8qRsT";

#[test]
fn defaults_block_secrets_in_requests_and_redact_them_in_responses() {
    let p = SafetyPolicy::default();
    assert_eq!(
        p.request.action(&PiiKind::Secret, Direction::Request),
        Action::Block
    );
    assert_eq!(
        p.request.action(&PiiKind::Email, Direction::Request),
        Action::Log
    );
    assert_eq!(
        p.response.action(&PiiKind::Secret, Direction::Response),
        Action::Redact
    );
    assert_eq!(
        p.response.action(&PiiKind::Phone, Direction::Response),
        Action::Log
    );
}

#[test]
fn policy_parses_camel_case_keys_custom_patterns_and_serde() {
    let p: SafetyPolicy = serde_json::from_value(json!({
        "request": {"default": "redact", "creditCard": "block", "employeeId": "redact"},
        "response": {"ipAddress": "off"},
        "custom": [{"name": "employeeId", "pattern": "EMP-[0-9]{6}"}]
    }))
    .expect("valid policy");
    assert_eq!(
        p.request.action(&PiiKind::CreditCard, Direction::Request),
        Action::Block
    );
    assert_eq!(
        p.request.action(&PiiKind::Email, Direction::Request),
        Action::Redact
    );
    assert_eq!(
        p.request.action(&PiiKind::Secret, Direction::Request),
        Action::Block
    );
    assert_eq!(
        p.response.action(&PiiKind::IpAddress, Direction::Response),
        Action::Off
    );
    assert_eq!(p.custom[0].name, "employeeId");
    let engine = SafetyEngine::new(&p).expect("engine");
    let mut body =
        json!({"messages":[{"role":"user","content":"I am EMP-123456, card 4111111111111111"}]});
    let v = engine.inspect_request(ApiShape::OpenAiChat, &mut body);
    assert!(v.blocked);
    assert_eq!(
        body["messages"][0]["content"],
        "I am [EMPLOYEEID], card [CREDIT_CARD]"
    );
}

#[test]
fn invalid_values_and_regexes_name_the_field() {
    let e = SafetyPolicy::from_value(&json!({"request": {"email": "x"}})).expect_err("bad");
    assert_eq!(
        e.to_string(),
        r#"safety.request.email: expected one of off|log|redact|block, got "x""#
    );
    let e = SafetyPolicy::from_value(&json!({"response": {"phnoe": "log"}})).expect_err("bad");
    assert!(
        e.to_string()
            .starts_with("safety.response.phnoe: unknown type"),
        "{e}"
    );
    let e = SafetyPolicy::from_value(&json!({"custom": [{"name": "x", "pattern": "(unclosed"}]}))
        .expect_err("bad");
    assert!(
        e.to_string()
            .starts_with("safety.custom[0].pattern: invalid regex"),
        "{e}"
    );
    let e =
        serde_json::from_value::<SafetyPolicy>(json!({"request": {"secret": 3}})).expect_err("bad");
    assert!(e.to_string().contains("safety.request.secret"), "{e}");
}

#[test]
fn openai_chat_request_with_key_is_blocked_with_types_not_values() {
    let policy =
        SafetyPolicy::from_value(&json!({"digestKey": "test-digest-key-0123"})).expect("policy");
    let engine = SafetyEngine::new(&policy).expect("engine");
    let mut body = json!({"model":"gpt-4o","messages":[
        {"role":"system","content":"be nice"},
        {"role":"user","content":[{"type":"text","text":format!("my key {KEY}")}]}]});
    let v = engine.inspect_request(ApiShape::OpenAiChat, &mut body);
    assert!(v.blocked);
    assert_eq!(
        v.message.as_deref(),
        Some("Request blocked by Iron Cage PII policy: secret ×1 (OpenAI key). Remove it or set safety.request.secret to 'redact'.")
    );
    // A keyed digest (HMAC-SHA256 under safety.digestKey), never the value nor its plain SHA-256.
    assert_eq!(
        v.detections[0].value_sha256,
        vec![value_digest("test-digest-key-0123", KEY)]
    );
    assert_ne!(v.detections[0].value_sha256, vec![sha256_hex(KEY)]);
    // Without a digestKey each engine keys its own digests: not comparable across engines.
    let a = SafetyEngine::new(&SafetyPolicy::default()).expect("engine");
    let b = SafetyEngine::new(&SafetyPolicy::default()).expect("engine");
    let digest = |e: &SafetyEngine| {
        let mut body = json!({"messages":[{"role":"user","content":format!("my key {KEY}")}]});
        e.inspect_request(ApiShape::OpenAiChat, &mut body)
            .detections[0]
            .value_sha256
            .clone()
    };
    assert_eq!(digest(&a), digest(&a));
    assert_ne!(digest(&a), digest(&b));
    assert_eq!(body["model"], "gpt-4o");
}

#[test]
fn every_request_shape_redacts_only_its_text_fields() {
    let p =
        SafetyPolicy::from_value(&json!({"request": {"default": "redact", "secret": "redact"}}))
            .expect("policy");
    let engine = SafetyEngine::new(&p).expect("engine");
    let mail = "jane@example.com";
    let cases = vec![
        (
            ApiShape::OpenAiChat,
            json!({"user": mail, "messages":[{"role":"assistant","content":null,
            "tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{\"to\":\"jane@example.com\"}"}}]},
            {"role":"tool","tool_call_id":"t","content":mail}]}),
            json!({"user": mail, "messages":[{"role":"assistant","content":null,
            "tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{\"to\":\"[EMAIL]\"}"}}]},
            {"role":"tool","tool_call_id":"t","content":"[EMAIL]"}]}),
        ),
        (
            ApiShape::OpenAiResponses,
            json!({"instructions": mail, "input":[{"role":"user","content":[{"type":"input_text","text":mail}]}]}),
            json!({"instructions": "[EMAIL]", "input":[{"role":"user","content":[{"type":"input_text","text":"[EMAIL]"}]}]}),
        ),
        (
            ApiShape::OpenAiResponses,
            json!({"input": mail}),
            json!({"input": "[EMAIL]"}),
        ),
        (
            ApiShape::OpenAiCompletions,
            json!({"prompt": [mail, "x"]}),
            json!({"prompt": ["[EMAIL]", "x"]}),
        ),
        (
            ApiShape::OpenAiEmbeddings,
            json!({"input": mail}),
            json!({"input": "[EMAIL]"}),
        ),
        (
            ApiShape::AnthropicMessages,
            json!({"system":[{"type":"text","text":mail}], "metadata":{"user_id":mail}, "messages":[
            {"role":"assistant","content":[{"type":"tool_use","id":"u","name":"send","input":{"to":mail,"n":1}}]},
            {"role":"user","content":[{"type":"tool_result","tool_use_id":"u","content":[{"type":"text","text":mail}]}, {"type":"text","text":mail}]}]}),
            json!({"system":[{"type":"text","text":"[EMAIL]"}], "metadata":{"user_id":mail}, "messages":[
            {"role":"assistant","content":[{"type":"tool_use","id":"u","name":"send","input":{"to":"[EMAIL]","n":1}}]},
            {"role":"user","content":[{"type":"tool_result","tool_use_id":"u","content":[{"type":"text","text":"[EMAIL]"}]}, {"type":"text","text":"[EMAIL]"}]}]}),
        ),
    ];
    for (api, mut body, expected) in cases {
        let v = engine.inspect_request(api, &mut body);
        assert_eq!(body, expected, "{api:?}");
        assert!(v.modified && !v.blocked, "{api:?}");
    }
}

/// Tool definitions go to the provider with every call: descriptions and every string of the
/// parameter schemas are checked; tool names are identifiers and are not.
#[test]
fn tool_definitions_are_checked_in_every_shape_that_has_them() {
    let p = SafetyPolicy::from_value(&json!({"request": {"default": "redact"}})).expect("policy");
    let engine = SafetyEngine::new(&p).expect("engine");
    let mail = "ops@example.com";
    let schema = |m: &str| json!({"type":"object","properties":{"to":{"type":"string","description":format!("defaults to {m}"),"enum":[m,"other"]}}});
    let cases = vec![
        (
            ApiShape::OpenAiChat,
            json!({"messages":[{"role":"user","content":"hi"}],
                "tools":[{"type":"function","function":{"name":"send","description":format!("mail {mail}"),"parameters":schema(mail)}}],
                "functions":[{"name":"old","description":mail}]}),
            json!({"messages":[{"role":"user","content":"hi"}],
                "tools":[{"type":"function","function":{"name":"send","description":"mail [EMAIL]","parameters":schema("[EMAIL]")}}],
                "functions":[{"name":"old","description":"[EMAIL]"}]}),
        ),
        (
            ApiShape::OpenAiResponses,
            json!({"input":"hi","tools":[{"type":"function","name":"send","description":mail,"parameters":schema(mail)}]}),
            json!({"input":"hi","tools":[{"type":"function","name":"send","description":"[EMAIL]","parameters":schema("[EMAIL]")}]}),
        ),
        (
            ApiShape::AnthropicMessages,
            json!({"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"send","description":mail,"input_schema":schema(mail)}]}),
            json!({"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"send","description":"[EMAIL]","input_schema":schema("[EMAIL]")}]}),
        ),
    ];
    for (api, mut body, expected) in cases {
        let v = engine.inspect_request(api, &mut body);
        assert_eq!(body, expected, "{api:?}");
        assert!(v.modified && !v.blocked, "{api:?}");
    }
    // A secret in a tool description is blocked like one in a prompt (the default policy).
    let engine = SafetyEngine::new(&SafetyPolicy::default()).expect("engine");
    let mut body = json!({"messages":[{"role":"user","content":"hi"}],
        "tools":[{"type":"function","function":{"name":"f","description":format!("use key {KEY}")}}]});
    let v = engine.inspect_request(ApiShape::OpenAiChat, &mut body);
    assert!(v.blocked, "{v:?}");
}

#[test]
fn responses_are_redacted_per_shape() {
    let engine = SafetyEngine::new(&SafetyPolicy::default()).expect("engine");
    let mut chat =
        json!({"choices":[{"message":{"role":"assistant","content":format!("use {KEY}")}}]});
    let v = engine.inspect_response(ApiShape::OpenAiChat, &mut chat);
    assert_eq!(chat["choices"][0]["message"]["content"], "use [SECRET]");
    assert!(v.modified && !v.blocked);
    let mut anth = json!({"content":[{"type":"text","text":format!("key {KEY}")}]});
    engine.inspect_response(ApiShape::AnthropicMessages, &mut anth);
    assert_eq!(anth["content"][0]["text"], "key [SECRET]");
    let mut resp =
        json!({"output":[{"type":"message","content":[{"type":"output_text","text":KEY}]}]});
    engine.inspect_response(ApiShape::OpenAiResponses, &mut resp);
    assert_eq!(resp["output"][0]["content"][0]["text"], "[SECRET]");
    let mut clean = json!({"content":[{"type":"text","text":"nothing here"}]});
    let v = engine.inspect_response(ApiShape::AnthropicMessages, &mut clean);
    assert!(!v.modified && v.detections.is_empty());
}

#[test]
fn malformed_bodies_do_not_panic() {
    let engine = SafetyEngine::new(&SafetyPolicy::default()).expect("engine");
    for mut body in [
        json!(null),
        json!([1, 2]),
        json!({"messages": "x"}),
        json!({"messages": [null, 3, {"content": 5}]}),
    ] {
        for api in [
            ApiShape::OpenAiChat,
            ApiShape::AnthropicMessages,
            ApiShape::OpenAiResponses,
        ] {
            let v = engine.inspect_request(api, &mut body);
            assert!(!v.blocked);
        }
    }
}

/// Members outside the messages are text too: a value there reaches the provider like one in a
/// message (a review found secrets passing in each of these).
#[test]
fn every_member_of_a_request_is_checked_not_only_the_messages() {
    let p =
        SafetyPolicy::from_value(&json!({"request": {"default": "redact", "secret": "redact"}}))
            .expect("policy");
    let engine = SafetyEngine::new(&p).expect("engine");
    let mail = "jane.doe@example.com";
    let cases = [
        (
            ApiShape::OpenAiChat,
            json!({"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],
            "prediction":{"type":"content","content":format!("to {mail}")},
            "response_format":{"type":"json_schema","json_schema":{"name":"r","schema":{"type":"object",
                "properties":{"to":{"type":"string","description":format!("e.g. {mail}")}}}}},
            "metadata":{"owner":mail}}),
        ),
        (
            ApiShape::OpenAiCompletions,
            json!({"model":"gpt-3.5-turbo-instruct","prompt":"hi","suffix":format!("cc {mail}")}),
        ),
        (
            ApiShape::OpenAiResponses,
            json!({"model":"gpt-4o","prompt":{"id":"pmpt_1","variables":{"who":mail}},
            "input":[{"type":"custom_tool_call_output","call_id":"c1","output":format!("sent to {mail}")}]}),
        ),
        (
            ApiShape::AnthropicMessages,
            json!({"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":[
            {"type":"document","source":{"type":"text","media_type":"text/plain","data":format!("contact {mail}")},"title":"notes"},
            {"type":"search_result","source":"https://x","title":"t","content":[{"type":"text","text":format!("by {mail}")}]}]}]}),
        ),
    ];
    for (api, mut body) in cases {
        let before = body.to_string();
        let v = engine.inspect_request(api, &mut body);
        let after = body.to_string();
        assert!(v.modified, "{api:?}: {before}");
        assert!(
            !after.contains(mail),
            "{api:?} still holds the value: {after}"
        );
        assert!(after.contains("[EMAIL]"), "{after}");
        // Ids, types and model names are left alone.
        assert!(after.contains("\"model\""), "{after}");
    }
    // The provider's own signed items coming back (thinking, reasoning) are left as they are: a
    // changed one is refused.
    for (api, mut body) in [
        (
            ApiShape::AnthropicMessages,
            json!({"messages":[{"role":"assistant","content":[
            {"type":"thinking","thinking":format!("the user is {mail}"),"signature":"sig"}]}]}),
        ),
        (
            ApiShape::OpenAiResponses,
            json!({"input":[{"type":"reasoning","id":"rs_1",
            "summary":[{"type":"summary_text","text":format!("ask {mail}")}]}]}),
        ),
    ] {
        let before = body.clone();
        engine.inspect_request(api, &mut body);
        assert_eq!(body, before, "{api:?}");
    }
}

/// Tool arguments are arbitrary JSON: a card number written as a JSON number is found too.
#[test]
fn numbers_in_tool_arguments_are_checked() {
    let p = SafetyPolicy::from_value(
        &json!({"request": {"default": "redact"}, "response": {"default": "redact"}}),
    )
    .expect("policy");
    let engine = SafetyEngine::new(&p).expect("engine");
    let mut answer = json!({"content":[{"type":"tool_use","id":"u","name":"pay","input":{"card_number":4111111111111111u64,"amount":42}}]});
    let v = engine.inspect_response(ApiShape::AnthropicMessages, &mut answer);
    assert!(v.modified);
    assert_eq!(
        answer["content"][0]["input"]["card_number"],
        "[CREDIT_CARD]"
    );
    assert_eq!(
        answer["content"][0]["input"]["amount"], 42,
        "small numbers are left alone"
    );
    // A negative number is the same digits.
    let mut answer = json!({"content":[{"type":"tool_use","id":"u","name":"pay","input":{"card_number":-4111111111111111i64}}]});
    engine.inspect_response(ApiShape::AnthropicMessages, &mut answer);
    assert_eq!(
        answer["content"][0]["input"]["card_number"],
        "[CREDIT_CARD]"
    );
    let mut chat = json!({"choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function",
        "function":{"name":"pay","arguments":"{\"card_number\":4111111111111111}"}}]}}]});
    let v = engine.inspect_response(ApiShape::OpenAiChat, &mut chat);
    assert!(v.modified);
    let args = chat["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
        .as_str()
        .unwrap();
    assert_eq!(args, r#"{"card_number":"[CREDIT_CARD]"}"#);
}

/// Tool arguments may use a value as a member name (`{"jane@x.io": {...}}`): it is found and
/// the member renamed; a request that must block such a key is refused.
#[test]
fn member_names_in_tool_arguments_are_checked() {
    let p = SafetyPolicy::from_value(
        &json!({"request": {"email": "block"}, "response": {"default": "redact"}}),
    )
    .expect("policy");
    let engine = SafetyEngine::new(&p).expect("engine");
    let mut answer = json!({"content":[{"type":"tool_use","id":"u","name":"notify","input":{
        "recipients":{"jane.doe@example.com":true,"john@example.org":false,"[EMAIL]":1},"id":7}}]});
    let v = engine.inspect_response(ApiShape::AnthropicMessages, &mut answer);
    assert!(v.modified);
    assert_eq!(
        answer["content"][0]["input"],
        json!({"recipients":{"[EMAIL]":1,"[EMAIL]#2":true,"[EMAIL]#3":false},"id":7}),
        "every member kept, none overwritten"
    );
    let mut request = json!({"model":"gpt-4o","messages":[
        {"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function",
            "function":{"name":"notify","arguments":"{\"jane.doe@example.com\":true}"}}]},
        {"role":"tool","tool_call_id":"c","content":"ok"}]});
    let v = engine.inspect_request(ApiShape::OpenAiChat, &mut request);
    assert!(v.blocked, "an e-mail used as a key is still an e-mail");
}

/// A text file sent inline (`data:text/plain;base64,…`: a `.env`, a CSV, JSON) is text the model
/// reads: decoded and checked; redacted, it is encoded again. Images and PDFs pass as they are.
#[test]
fn inline_text_files_are_decoded_and_checked() {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let unb64 = |s: &str| {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .expect("base64"),
        )
        .expect("utf-8")
    };
    let env = "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\nOWNER=jane.doe@example.com\n";
    let body = |url: String| {
        json!({"model":"gpt-4o","messages":[{"role":"user","content":[
            {"type":"text","text":"what is in this file?"},
            {"type":"file","file":{"filename":"prod.env","file_data":url}}]}]})
    };
    // Default policy: a secret in the file blocks the request.
    let engine = SafetyEngine::new(&SafetyPolicy::default()).expect("engine");
    let mut req = body(format!("data:text/plain;base64,{}", b64(env)));
    assert!(
        engine
            .inspect_request(ApiShape::OpenAiChat, &mut req)
            .blocked
    );
    // Redacted: the file goes on, encoded again, without the values.
    let p =
        SafetyPolicy::from_value(&json!({"request": {"default": "redact", "secret": "redact"}}))
            .expect("policy");
    let engine = SafetyEngine::new(&p).expect("engine");
    let mut req = body(format!("data:text/plain;base64,{}", b64(env)));
    let v = engine.inspect_request(ApiShape::OpenAiChat, &mut req);
    assert!(v.modified && !v.blocked);
    let url = req["messages"][0]["content"][1]["file"]["file_data"]
        .as_str()
        .expect("url")
        .to_string();
    let data = url
        .strip_prefix("data:text/plain;base64,")
        .expect("same media type");
    assert_eq!(unb64(data), "AWS_ACCESS_KEY_ID=[SECRET]\nOWNER=[EMAIL]\n");
    // Percent-encoded (no base64) too; an image or a PDF is left alone.
    let mut req = body("data:text/csv,name%2Cmail%0AJane%2Cjane.doe%40example.com".to_string());
    engine.inspect_request(ApiShape::OpenAiChat, &mut req);
    let url = req["messages"][0]["content"][1]["file"]["file_data"]
        .as_str()
        .expect("url")
        .to_string();
    assert!(
        !url.contains("jane") && url.contains("%5BEMAIL%5D"),
        "{url}"
    );
    // Spelled as a lenient reader still reads it: any case, no type, wrapped or URL-safe base64,
    // bytes that are not UTF-8, the type a `.env` usually gets.
    let key = "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE";
    let wrapped: String = b64(&format!("{key}\n# {}\n", "x".repeat(80)))
        .as_bytes()
        .chunks(76)
        .map(|c| format!("{}\r\n", String::from_utf8_lossy(c)))
        .collect();
    let latin1 = {
        use base64::Engine as _;
        let mut bytes = b"caf".to_vec();
        bytes.push(0xE9);
        bytes.extend_from_slice(format!(" {key}").as_bytes());
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    let urlsafe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{key}??>>"));
    let engine_block = SafetyEngine::new(&SafetyPolicy::default()).expect("engine");
    for url in [
        format!("DATA:TEXT/PLAIN;BASE64,{}", b64(key)),
        format!("data:;base64,{}", b64(key)),
        format!("data:text/plain;base64,{wrapped}"),
        format!("data:text/plain;base64,{urlsafe}"),
        format!("data:text/plain;base64,{latin1}"),
        format!("data:application/octet-stream;base64,{}", b64(key)),
        format!("data:application/toml;charset=utf-8;base64,{}", b64(key)),
    ] {
        let mut req = body(url.clone());
        assert!(
            engine_block
                .inspect_request(ApiShape::OpenAiChat, &mut req)
                .blocked,
            "{url}"
        );
    }
    for media in ["image/png", "application/pdf"] {
        let url = format!("data:{media};base64,{}", b64(env));
        let mut req = body(url.clone());
        let v = engine.inspect_request(ApiShape::OpenAiChat, &mut req);
        assert!(!v.modified, "{media}");
        assert_eq!(
            req["messages"][0]["content"][1]["file"]["file_data"],
            url.as_str()
        );
    }
}

/// Answer fields beside the main text carry text too: audio transcripts, citations, refusal
/// parts, provider-run tool inputs and results.
#[test]
fn answer_fields_beside_the_text_are_checked() {
    let p = SafetyPolicy::from_value(
        &json!({"request": {"default": "redact"}, "response": {"default": "redact"}}),
    )
    .expect("policy");
    let engine = SafetyEngine::new(&p).expect("engine");
    let mail = "jane.doe@example.com";
    let cases = [
        (
            ApiShape::OpenAiChat,
            json!({"choices":[{"index":0,"message":{"role":"assistant","content":null,
            "audio":{"id":"audio_1","data":"UklGRg==","transcript":format!("write to {mail}")},
            "annotations":[{"type":"url_citation","url_citation":{"title":format!("page of {mail}"),"url":"https://x"}}]}}]}),
        ),
        (
            ApiShape::OpenAiResponses,
            json!({"output":[{"type":"message","id":"m","role":"assistant","content":[
            {"type":"refusal","refusal":format!("I won't mail {mail}")}]},
            {"type":"reasoning","id":"rs","summary":[{"type":"summary_text","text":format!("user is {mail}")}]}]}),
        ),
        (
            ApiShape::AnthropicMessages,
            json!({"content":[
            {"type":"text","text":"See the source.","citations":[{"type":"char_location","cited_text":format!("contact {mail}"),"document_index":0}]},
            {"type":"server_tool_use","id":"s","name":"web_search","input":{"query":format!("who is {mail}")}},
            {"type":"web_search_tool_result","tool_use_id":"s","content":[{"type":"web_search_result","title":format!("{mail} profile"),"url":"https://x"}]}]}),
        ),
    ];
    for (api, mut body) in cases {
        // The tree-free reader must not pass such an answer as unchanged.
        let bytes = body.to_string();
        assert!(
            engine
                .inspect_response_unchanged(api, bytes.as_bytes())
                .is_none(),
            "{api:?}: the fast reader vouched for {bytes}"
        );
        let v = engine.inspect_response(api, &mut body);
        let after = body.to_string();
        assert!(v.modified, "{api:?}");
        assert!(
            !after.contains(mail),
            "{api:?} still holds the value: {after}"
        );
    }
    // In a request, a secret in an image URL's query reaches the provider too.
    let mut req = json!({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":format!("https://img.example/a.png?owner={mail}")}}]}]});
    let v = engine.inspect_request(ApiShape::OpenAiChat, &mut req);
    assert!(v.modified, "{req}");
}

#[test]
fn phone_numbers_in_tel_links_are_redacted() {
    let policy = SafetyPolicy::from_value(&json!({"response": {"phone": "redact"}})).expect("p");
    let engine = SafetyEngine::new(&policy).expect("engine");
    let mut body = json!({"choices": [{"message": {"content": "[Call us](tel:+14155552671) or <a href=\"tel:+44 20 7946 0958\">"}}]});
    engine.inspect_response(ApiShape::OpenAiChat, &mut body);
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "[Call us](tel:[PHONE]) or <a href=\"tel:[PHONE]\">"
    );
}
