//! Property tests (fuzzing) of what iron_cost reads from the outside: usage in any response body or
//! stream event never panics, and the worst-case reservation for any request covers the cost of any
//! usage within its input estimate and output allowance. `PROPTEST_CASES` raises the case count
//! (scripts/fuzz-long.sh).

use iron_cost::{
    cost_micros, estimate_input_tokens, max_output_tokens, usage_from_bytes, worst_case_micros,
    ApiKind, Catalog, StreamUsage, Usage,
};
use proptest::prelude::*;
use serde_json::{json, Value};

fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const KINDS: [ApiKind; 7] = [
    ApiKind::OpenAiChat,
    ApiKind::OpenAiCompletions,
    ApiKind::OpenAiResponses,
    ApiKind::OpenAiEmbeddings,
    ApiKind::AnthropicMessages,
    ApiKind::AnthropicCountTokens,
    ApiKind::Other,
];

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        (0u64..100_000).prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        Just(json!("12")),
        Just(Value::Null),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        number(),
        any::<bool>().prop_map(Value::Bool),
        ".{0,16}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "usage",
                    "prompt_tokens",
                    "completion_tokens",
                    "input_tokens",
                    "output_tokens",
                    "cached_tokens",
                    "prompt_tokens_details",
                    "completion_tokens_details",
                    "reasoning_tokens",
                    "cache_read_input_tokens",
                    "cache_creation_input_tokens",
                    "cache_creation",
                    "ephemeral_5m_input_tokens",
                    "ephemeral_1h_input_tokens",
                    "type",
                    "message",
                    "delta",
                    "choices",
                    "content",
                    "text",
                    "messages",
                    "role",
                    "max_tokens",
                    "n",
                    "input",
                    "system",
                    "tools",
                    "response",
                ]),
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn usage_from_any_body_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        v in value(),
    ) {
        let json_bytes = serde_json::to_vec(&json!({"usage": v})).unwrap_or_default();
        for kind in KINDS {
            let _ = usage_from_bytes(kind, &bytes);
            let _ = usage_from_bytes(kind, &json_bytes);
        }
    }

    #[test]
    fn stream_usage_from_any_events_never_panics(
        events in prop::collection::vec(
            (prop::option::of(prop::sample::select(vec![
                "message_start", "message_delta", "content_block_delta", "response.completed", "message", "",
            ])), value()),
            0..8,
        ),
        raw in ".{0,40}",
        estimate in any::<u64>(),
    ) {
        let mut s = StreamUsage::new();
        s.observe(None, &raw);
        for (name, data) in &events {
            s.observe(*name, &data.to_string());
        }
        let (usage, _estimated) = s.finish(estimate);
        let _ = usage.total_input_tokens();
    }

    #[test]
    fn the_reservation_covers_any_usage_within_its_estimate(
        body in value(),
        model in any::<prop::sample::Index>(),
        kind in prop::sample::select(KINDS.to_vec()),
        fractions in (0u64..=100, 0u64..=100, 0u64..=100, 0u64..=100),
    ) {
        let models = Catalog::builtin().models();
        let price = &models[model.index(models.len())];
        let body = json!({"model": price.id, "messages": [{"role": "user", "content": body.clone()}], "max_tokens": body.get("max_tokens")});
        let reserved = worst_case_micros(&body, kind, price).expect("standard rates");
        let input = estimate_input_tokens(&body, kind);
        let output = max_output_tokens(&body, kind, Some(price));
        // Split the estimated input across uncached, cache read and cache writes in any way.
        let (a, b, c, d) = fractions;
        let share = |f: u64| input / 100 * f / 4;
        let usage = Usage {
            input_tokens: share(a),
            cache_read_tokens: share(b),
            cache_write_5m_tokens: share(c),
            cache_write_1h_tokens: share(d),
            output_tokens: output / 100 * a,
            reasoning_tokens: 0,
            ..Usage::default()
        };
        prop_assert!(usage.total_input_tokens() <= input);
        let cost = cost_micros(price, price.provider, &usage);
        prop_assert!(cost <= reserved, "{} cost {cost} > reserved {reserved} for {usage:?}", price.id);
    }
}
