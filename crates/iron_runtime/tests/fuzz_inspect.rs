//! Property tests (fuzzing) of the request inspector on what an agent may send: arbitrary bytes and
//! arbitrary JSON never panic, and asking a stream for usage always yields valid JSON with
//! `stream_options.include_usage == true` when the body is a JSON object.
//! `PROPTEST_CASES` raises the case count (scripts/fuzz-long.sh).

mod fuzz_config;

use bytes::Bytes;
use fuzz_config::config;
use iron_runtime::inspect::{inject_include_usage, inspect};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A request-like object: the fields the inspector reads, with any value type, plus noise.
fn request() -> impl Strategy<Value = Value> {
    let field = |name: &'static str| prop::option::of(value()).prop_map(move |v| (name, v));
    (
        field("model"),
        prop::option::of(prop_oneof![Just(json!(true)), value()]),
        field("max_tokens"),
        prop::option::of(prop_oneof![
            Just(Value::Null),
            Just(json!({})),
            Just(json!({"include_usage": false})),
            Just(json!({"include_usage": true, "x": 1})),
            value(),
        ]),
        prop::collection::btree_map("[a-z_]{1,8}", value(), 0..4),
    )
        .prop_map(|(model, stream, max, opts, extra)| {
            let mut m: Map<String, Value> = extra.into_iter().collect();
            for (name, v) in [model, max] {
                if let Some(v) = v {
                    m.insert(name.into(), v);
                }
            }
            if let Some(s) = stream {
                m.insert("stream".into(), s);
            }
            if let Some(o) = opts {
                m.insert("stream_options".into(), o);
            }
            Value::Object(m)
        })
}

/// Serialised compactly or pretty, with leading whitespace sometimes.
fn encode(v: &Value, pretty: bool, lead: &str) -> Bytes {
    let text = if pretty {
        serde_json::to_string_pretty(v)
    } else {
        serde_json::to_string(v)
    }
    .expect("serialise");
    Bytes::from(format!("{lead}{text}"))
}

/// What the upstream sees: JSON parsed the usual way (a repeated key keeps its last value).
fn check_injected(body: &Bytes, original: &Value) -> Result<(), TestCaseError> {
    let info = inspect(body);
    prop_assert!(info.is_json);
    let out = inject_include_usage(body, &info);
    prop_assert!(out.is_some(), "no usage injected into {:?}", body);
    let out = out.unwrap_or_default();
    let parsed: Value = serde_json::from_slice(&out)
        .map_err(|e| TestCaseError::fail(format!("invalid JSON {e}: {out:?}")))?;
    prop_assert_eq!(
        &parsed["stream_options"]["include_usage"],
        &json!(true),
        "{:?}",
        out
    );
    // Every other top-level field is untouched.
    let (Some(a), Some(b)) = (parsed.as_object(), original.as_object()) else {
        return Err(TestCaseError::fail("not objects"));
    };
    for (k, v) in b {
        if k != "stream_options" {
            prop_assert_eq!(a.get(k), Some(v));
        }
    }
    prop_assert_eq!(
        a.len(),
        b.len() + usize::from(!b.contains_key("stream_options"))
    );
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let body = Bytes::from(bytes);
        let info = inspect(&body);
        let _ = inject_include_usage(&body, &info);
        if let Some(m) = &info.model {
            prop_assert!(m.chars().count() <= 256);
        }
    }

    #[test]
    fn arbitrary_json_never_panics(v in value(), pretty in any::<bool>()) {
        let body = encode(&v, pretty, "");
        let info = inspect(&body);
        prop_assert_eq!(info.is_json, v.is_object());
        let _ = inject_include_usage(&body, &info);
    }

    #[test]
    fn usage_is_requested_in_valid_json_for_any_object(
        req in request(),
        pretty in any::<bool>(),
        lead in prop::sample::select(vec!["", " ", "\n\t ", "\r\n"]),
    ) {
        let body = encode(&req, pretty, lead);
        // Compare with the body as parsed (serde_json may round the last digit of huge floats).
        let sent: Value = serde_json::from_slice(&body).map_err(|e| TestCaseError::fail(e.to_string()))?;
        check_injected(&body, &sent)?;
        // The fields the pipeline relies on are read as sent.
        let info = inspect(&body);
        prop_assert_eq!(info.stream, req.get("stream") == Some(&json!(true)));
        prop_assert_eq!(info.model.as_deref(), req.get("model").and_then(Value::as_str).filter(|s| s.chars().count() <= 256));
    }
}

/// `"stream_options": null` once made the injector add a second `stream_options` key before it;
/// JSON parsers keep the last one, so the provider saw `null` and sent no usage.
#[test]
fn null_stream_options_gets_include_usage() {
    let body = Bytes::from_static(br#"{"model":"gpt-4o","stream":true,"stream_options":null}"#);
    let info = inspect(&body);
    let out = inject_include_usage(&body, &info).expect("injected");
    let v: Value = serde_json::from_slice(&out).expect("json");
    assert_eq!(v["stream_options"], json!({"include_usage": true}));
    assert_eq!(v["model"], "gpt-4o");
}
