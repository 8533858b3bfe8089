//! The PII policy on whole bodies the router has no particular reader for, through the real router:
//! endpoints without a reader (string by string, both ways), error answers, and a redacted request's
//! key order.

mod common;

use common::*;
use serde_json::json;

const CARD: &str = "4111 1111 1111 1111";
const EMAIL: &str = "jane.doe@example.com";

/// Endpoints the router has no reader for are checked whole: every string of a JSON body
/// (Anthropic batches carry whole prompts), every string of a JSON answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_and_answers_of_other_endpoints_are_checked_string_by_string() {
    const AWS: &str = "AKIAIOSFODNN7EXAMPLE";
    let answer = json!({ "object": "list", "data": [{ "id": "file-1", "note": format!("mail {EMAIL}, key {AWS}") }] });
    let provider = FakeProvider::json(answer).await;
    let ks = FakeKeyServer::with_key(ANTHROPIC_KEY, Some("anthropic"), &provider.url()).await;
    let router = start_router(
        &ks,
        json!({ "safety": { "response": { "default": "redact" } } }),
    );
    let batch = json!({ "requests": [{ "custom_id": "a", "params": { "model": "claude-sonnet-4-5", "max_tokens": 10,
        "messages": [{ "role": "user", "content": format!("my key is {AWS}") }] } }] });
    let (code, v, text) = status_json(post(&router, "/v1/messages/batches", &batch).await).await;
    assert_eq!(code, 400, "{text}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("PII"),
        "{text}"
    );
    assert_eq!(provider.seen().len(), 0, "the secret reached the provider");
    // A list answer (here for a POST the router does not know) comes back redacted.
    let (code, v, text) =
        status_json(post(&router, "/v1/messages/batches/x/results", &json!({})).await).await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(v["data"][0]["id"], "file-1");
    assert!(!text.contains(EMAIL) && !text.contains(AWS), "{text}");
    router.stop().await;
}

/// Providers quote the input in their error answers: those are checked too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_answers_are_checked() {
    let body = json!({ "error": { "message": format!("invalid value '{CARD}' for field 'x'"), "type": "invalid_request_error" } });
    let provider = FakeProvider::start(Reply::Json {
        status: 422,
        body: body.to_string(),
    })
    .await;
    let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
    let router = start_router(
        &ks,
        json!({ "safety": { "response": { "default": "redact" } } }),
    );
    let req = json!({ "model": "gpt-4o-mini", "messages": [{ "role": "user", "content": "hi" }] });
    let (code, v, text) = status_json(post(&router, "/v1/chat/completions", &req).await).await;
    assert_eq!(code, 422, "{text}");
    assert!(!text.contains(CARD), "{text}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("[CREDIT_CARD]"),
        "{text}"
    );
    router.stop().await;
}

/// A prompt the request policy redacts is re-encoded with its keys in their order: the order of a
/// JSON schema's properties is the order of the structured answer's fields (and prompt caching
/// compares bytes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redacted_request_keeps_its_key_order() {
    let provider = FakeProvider::json(json!({ "choices": [] })).await;
    let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
    let router = start_router(
        &ks,
        json!({ "safety": { "request": { "default": "redact" } } }),
    );
    // Written by hand: the order is the point.
    let sent = format!(
        r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":"mail {EMAIL}"}}],"response_format":{{"type":"json_schema","json_schema":{{"name":"a","schema":{{"type":"object","properties":{{"zip":{{"type":"string"}},"city":{{"type":"string"}},"amount":{{"type":"number"}}}}}}}}}},"seed":12345678901234567}}"#
    );
    let resp = post_with(
        &router,
        "/v1/chat/completions",
        sent,
        &[("authorization", &format!("Bearer {IC}"))],
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200);
    let seen = provider.seen().pop().expect("forwarded");
    let forwarded = String::from_utf8_lossy(&seen.body).into_owned();
    assert!(!forwarded.contains(EMAIL), "{forwarded}");
    let at = |k: &str| forwarded.find(&format!("\"{k}\"")).expect(k);
    assert!(
        at("zip") < at("city") && at("city") < at("amount"),
        "{forwarded}"
    );
    assert!(at("model") < at("messages"), "{forwarded}");
    assert!(
        forwarded.contains(r#""seed":12345678901234567"#),
        "{forwarded}"
    );
    router.stop().await;
}

/// A body with tools is written back in its own order; what redaction changed that is not a
/// string (a card sent as a JSON number, an e-mail used as a member name in a tool's input) must
/// be written back too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redacted_request_with_tools_carries_every_redaction() {
    let provider = FakeProvider::json(
        json!({ "content": [], "usage": { "input_tokens": 1, "output_tokens": 1 } }),
    )
    .await;
    let ks = FakeKeyServer::with_key(ANTHROPIC_KEY, Some("anthropic"), &provider.url()).await;
    let router = start_router(
        &ks,
        json!({ "safety": { "request": { "default": "redact" } } }),
    );
    let body = json!({ "model": "claude-sonnet-4-5", "max_tokens": 10,
        "tools": [{ "name": "pay", "description": "pay", "input_schema": { "type": "object" } }],
        "messages": [
            { "role": "user", "content": "pay it" },
            { "role": "assistant", "content": [{ "type": "tool_use", "id": "toolu_1", "name": "pay",
                "input": { "card": 4111111111111111u64, "cc": { EMAIL: true } } }] },
            { "role": "user", "content": [{ "type": "tool_result", "tool_use_id": "toolu_1", "content": "done" }] }
        ] });
    let (code, _, text) = status_json(post(&router, "/v1/messages", &body).await).await;
    assert_eq!(code, 200, "{text}");
    let seen = provider.seen().pop().expect("forwarded");
    let forwarded = String::from_utf8_lossy(&seen.body).into_owned();
    assert!(
        !forwarded.contains("4111111111111111") && !forwarded.contains(EMAIL),
        "{forwarded}"
    );
    let v: serde_json::Value = serde_json::from_str(&forwarded).expect("JSON");
    assert_eq!(
        v["messages"][1]["content"][0]["input"],
        json!({ "card": "[CREDIT_CARD]", "cc": { "[EMAIL]": true } })
    );
    router.stop().await;
}

/// A prompt cut inside an emoji (`JSON.stringify` writes half a surrogate pair as `\ud83d`) is
/// read, not refused, with U+FFFD in place of the half; that text, the one the policy checked, is
/// what goes on (a half inside a value must not hide it from the policy and reach the provider).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_with_half_an_emoji_is_checked_and_forwarded_as_checked() {
    let provider = FakeProvider::json(json!({ "choices": [] })).await;
    let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
    let router = start_router(
        &ks,
        json!({ "safety": { "request": { "email": "redact" } } }),
    );
    let auth = format!("Bearer {IC}");
    let clean =
        r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Summary: great trip \ud83d"}]}"#;
    let resp = post_with(
        &router,
        "/v1/chat/completions",
        clean.to_string(),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200);
    let seen = provider.seen().pop().expect("forwarded");
    assert_eq!(
        String::from_utf8_lossy(&seen.body),
        clean.replace("\\ud83d", "\\ufffd"),
        "the text the policy read"
    );
    // With the value around it, in a body with a schema (written back in its own order).
    let with_mail = format!(
        r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":"mail {EMAIL} \ud83d and jane\ud83d@example.org"}}],"response_format":{{"type":"json_schema","json_schema":{{"name":"a","schema":{{"type":"object"}}}}}}}}"#
    );
    let resp = post_with(
        &router,
        "/v1/chat/completions",
        with_mail,
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200);
    let seen = provider.seen().pop().expect("forwarded");
    let body = String::from_utf8_lossy(&seen.body).into_owned();
    assert!(!body.contains("\\ud83d"), "{body}");
    let v: serde_json::Value = serde_json::from_slice(&seen.body).expect("JSON");
    assert_eq!(
        v["messages"][0]["content"],
        "mail [EMAIL] \u{fffd} and jane\u{fffd}@example.org"
    );
    router.stop().await;
}

/// An endpoint without a reader gets the fail-closed rule too: a body that is (or looks like) JSON
/// but cannot be read whole (a repeated key, invalid JSON) is refused, not forwarded unchecked; a
/// JSON array is checked string by string. Bodies that are not JSON (multipart uploads) pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_json_bodies_of_other_endpoints_are_refused() {
    const AWS: &str = "AKIAZ7Q3M5R2T8W4X6Y9";
    let provider = FakeProvider::json(json!({ "id": "x" })).await;
    let ks = FakeKeyServer::with_key(ANTHROPIC_KEY, Some("anthropic"), &provider.url()).await;
    let router = start_router(&ks, json!({}));
    let auth = format!("Bearer {IC}");
    let prompt = format!(r#""messages":[{{"role":"user","content":"key {AWS}"}}]"#);
    for (path, body) in [
        (
            "/v1/messages/batches",
            format!(
                r#"{{"requests":[{{"custom_id":"a","params":{{"model":"claude-sonnet-4-5","max_tokens":10,"temperature":1,"temperature":1,{prompt}}}}}]}}"#
            ),
        ),
        (
            "/v1/messages/batches",
            format!(
                r#"{{"requests":[{{"custom_id":"a","params":{{"model":"claude-sonnet-4-5","max_tokens":10,{prompt},}}}}]}}"#
            ),
        ),
        (
            "/v1/conversations",
            format!(
                r#"{{"metadata":{{}},"metadata":{{}},"items":[{{"type":"message","role":"user","content":"key {AWS}"}}]}}"#
            ),
        ),
        (
            "/v1/conversations/c1/items",
            format!(r#"[{{"content":"key {AWS}"}}]"#),
        ),
    ] {
        let resp = post_with(&router, path, body.clone(), &[("authorization", &auth)]).await;
        let error = resp
            .headers()
            .get("x-iron-cage-error")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let (code, _, text) = status_json(resp).await;
        assert_eq!(code, 400, "{path} {body}: {text}");
        // A body it cannot read is a client error, not a PII finding; one it can read is checked.
        if body.starts_with('[') {
            assert_eq!(error, "PII_BLOCKED", "{text}");
        } else {
            assert_eq!(error, "BAD_REQUEST_BODY", "{text}");
            assert!(text.contains("PII policy could not check it"), "{text}");
        }
    }
    assert_eq!(provider.seen().len(), 0, "a body reached the provider");
    // Counted as what they are: PII alerts are not raised by client bugs.
    let snap = router.shared().stats.snapshot();
    assert_eq!(snap.blocked_by_reason.get("invalid_body"), Some(&3));
    assert_eq!(snap.blocked_by_reason.get("pii"), Some(&1));
    // Not JSON: a multipart upload passes as it is (file uploads are not read).
    let resp = client()
        .post(format!("http://127.0.0.1:{}/v1/files", router.port()))
        .header("authorization", &auth)
        .header("content-type", "multipart/form-data; boundary=b")
        .body("--b\r\ncontent-disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--b--\r\n")
        .send()
        .await
        .expect("router answers");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(provider.seen().len(), 1);
    router.stop().await;
}

/// An e-mail an error answer quotes gets the policy's placeholder, as in any answer (the log
/// redactor's `[REDACTED]` took it first); keys and tokens are still replaced whatever the policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_answers_get_the_policys_placeholders() {
    let message =
        format!("Invalid value for 'user': {EMAIL}, card {CARD}, Bearer abcdefghijklmnop");
    let body = json!({ "error": { "message": message, "type": "invalid_request_error" } });
    let provider = FakeProvider::start(Reply::Json {
        status: 400,
        body: body.to_string(),
    })
    .await;
    let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
    let router = start_router(
        &ks,
        json!({ "safety": { "response": { "default": "redact" } } }),
    );
    let req = json!({ "model": "gpt-4o-mini", "messages": [{ "role": "user", "content": "hi" }] });
    let (code, v, text) = status_json(post(&router, "/v1/chat/completions", &req).await).await;
    assert_eq!(code, 400, "{text}");
    assert_eq!(
        v["error"]["message"],
        "Invalid value for 'user': [EMAIL], card [CREDIT_CARD], Bearer [REDACTED]",
        "{text}"
    );
    router.stop().await;
}

/// A prompt's `pii` event is published once whether the call goes on or a later phase refuses
/// it: published while the provider works on a forwarded call, and before the `blocked` event of
/// a call the budget refuses after the scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompts_pii_event_comes_once_for_a_forwarded_call_and_for_one_the_budget_refuses() {
    bounded(20, async {
        let provider = FakeProvider::json(chat_completion()).await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
        let router = start_router(
            &ks,
            json!({ "budgetUsd": 0.05, "safety": { "request": { "default": "redact" } } }),
        );
        router.ready().await.expect("key");
        let mut sub = router.events().subscribe();
        let prompt = json!({ "role": "user", "content": format!("write to {EMAIL}") });
        let cheap = json!({ "model": "gpt-4o-mini", "max_tokens": 10, "messages": [prompt] });
        // Held at more than the whole budget: refused after the scan.
        let dear = json!({ "model": "gpt-4o", "max_tokens": 100000, "messages": [prompt] });
        let (code, _, text) =
            status_json(post(&router, "/v1/chat/completions", &cheap).await).await;
        assert_eq!(code, 200, "{text}");
        let (code, _, text) = status_json(post(&router, "/v1/chat/completions", &dear).await).await;
        assert_eq!(code, 402, "{text}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let mut seen = Vec::new();
        while let Some(e) = sub.try_recv() {
            match &**e {
                iron_runtime::RouterEvent::Pii {
                    request_id,
                    direction,
                    detections,
                    ..
                } => seen.push(format!(
                    "pii {request_id} {direction} {}",
                    detections[0].kind
                )),
                iron_runtime::RouterEvent::Blocked { request_id, .. } => {
                    seen.push(format!("blocked {request_id}"))
                }
                iron_runtime::RouterEvent::Response { request_id, .. } => {
                    seen.push(format!("response {request_id}"))
                }
                _ => {}
            }
        }
        let ids: Vec<&str> = seen
            .iter()
            .filter_map(|s| s.split(' ').nth(1))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(ids.len(), 2, "{seen:?}");
        let (a, b) = (ids[0], ids[1]);
        assert_eq!(
            seen,
            vec![
                format!("pii {a} request email"),
                format!("response {a}"),
                format!("pii {b} request email"),
                format!("blocked {b}"),
            ]
        );
        assert_eq!(provider.seen().len(), 1);
    })
    .await;
}

/// A prompt large enough to be read off its connection thread (over 256 KiB) gets the same
/// policy as a small one: redacted where it says redact, refused where it says block, its `pii`
/// event published, and its budget held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_prompt_is_redacted_or_refused_like_a_small_one() {
    bounded(30, async {
        const AWS: &str = "AKIAIOSFODNN7EXAMPLE";
        let provider = FakeProvider::json(chat_completion()).await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
        let router = start_router(
            &ks,
            json!({ "budgetUsd": 10.0, "safety": { "request": { "default": "redact", "secret": "block" } } }),
        );
        router.ready().await.expect("key");
        let mut sub = router.events().subscribe();
        let filler = "lorem ipsum dolor sit amet ".repeat(12_000);
        let large = |tail: &str| {
            json!({ "model": "gpt-4o-mini", "max_tokens": 10,
                    "messages": [{ "role": "user", "content": format!("{filler} write to {tail}") }] })
        };
        let body = large(EMAIL);
        assert!(body.to_string().len() > 300 * 1024);
        let (code, _, text) = status_json(post(&router, "/v1/chat/completions", &body).await).await;
        assert_eq!(code, 200, "{text}");
        let forwarded = provider.seen().pop().expect("forwarded").body;
        let forwarded = String::from_utf8_lossy(&forwarded).into_owned();
        assert!(!forwarded.contains(EMAIL));
        assert!(forwarded.contains("write to [EMAIL]"));
        assert!(forwarded.len() > 300 * 1024);
        let (code, _, text) =
            status_json(post(&router, "/v1/chat/completions", &large(AWS)).await).await;
        assert_eq!(code, 400, "{text}");
        assert_eq!(provider.seen().len(), 1, "the secret did not leave");
        let b = router.budget_status();
        assert!(b.spent_micros > 0 && b.reserved_micros == 0, "{b:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let mut kinds = Vec::new();
        while let Some(e) = sub.try_recv() {
            if let iron_runtime::RouterEvent::Pii { detections, .. } = &**e {
                kinds.push(detections[0].kind.clone());
            }
        }
        assert_eq!(kinds.len(), 2, "{kinds:?}");
    })
    .await;
}
