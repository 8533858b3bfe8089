use super::*;
use crate::catalog::Catalog;
use serde_json::json;

#[test]
fn chat_messages_count_text_plus_per_message_overhead() {
    let body = json!({"model":"gpt-4o","temperature":0.2,"messages":[
        {"role":"system","content":"You are terse."},{"role":"user","content":"Hello!"}]});
    // Words and spaces: "system" + "You are terse" + "user" + "Hello" = 28 chars -> 10;
    // punctuation "." and "!" one token each; + 2 × 8 + 16
    assert_eq!(estimate_input_tokens(&body, ApiKind::OpenAiChat), 44);
}

#[test]
fn anthropic_counts_system_content_parts_and_tools_json() {
    let body = json!({"model":"claude-sonnet-4-5","max_tokens":1024,
        "system":[{"type":"text","text":"Be nice"}],
        "tools":[{"name":"t"}],
        "messages":[{"role":"user","content":[{"type":"text","text":"abc"}]}]});
    // system: "text"(4)+"Be nice"(7); tools JSON `[{"name":"t"}]` (14);
    // message: "user"(4)+"text"(4)+"abc"(3) => 36 chars -> 12, + 8 + 16
    assert_eq!(estimate_input_tokens(&body, ApiKind::AnthropicMessages), 36);
}

#[test]
fn responses_string_input_and_instructions() {
    let body = json!({"model":"o3","instructions":"Be brief","input":"What is 2+2?"});
    // "Be brief" + "What is 22" = 18 chars -> 6; "+" and "?" one token each; no message array, + 16
    assert_eq!(estimate_input_tokens(&body, ApiKind::OpenAiResponses), 24);
}

#[test]
fn embedding_token_ids_count_one_each() {
    let body = json!({"model":"text-embedding-3-small","input":[[1,2,3],[4,5]]});
    // 5 ids, 2 array items × 8, + 16
    assert_eq!(estimate_input_tokens(&body, ApiKind::OpenAiEmbeddings), 37);
}

#[test]
fn base64_images_get_a_flat_allowance_not_their_length() {
    let blob = format!("data:image/png;base64,{}", "A".repeat(200_000));
    let body = json!({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":blob}}]}]});
    // "user" + "image_url" = 13 chars -> 5; image: max(4096, 200022 / 400 = 500) = 4096; + 8 + 16
    assert_eq!(estimate_input_tokens(&body, ApiKind::OpenAiChat), 4125);
}

#[test]
fn output_allowance_prefers_request_then_model_then_default() {
    let gpt4o = Catalog::builtin().price("gpt-4o");
    let kind = ApiKind::OpenAiChat;
    assert_eq!(
        max_output_tokens(&json!({"max_tokens":500}), kind, gpt4o),
        500
    );
    assert_eq!(
        max_output_tokens(&json!({"max_completion_tokens":1_000_000}), kind, gpt4o),
        1_000_000,
        "the request's own limit is held even above the catalog's (a beta can raise the model's)"
    );
    assert_eq!(max_output_tokens(&json!({}), kind, gpt4o), 16_384);
    assert_eq!(max_output_tokens(&json!({}), kind, None), 32_768);
    // `null` is no limit: held (and, by the router, capped) as if absent. A whole number written
    // as a float is that number.
    assert_eq!(
        max_output_tokens(&json!({"max_completion_tokens":null}), kind, gpt4o),
        16_384
    );
    assert_eq!(
        max_output_tokens(
            &json!({"max_tokens":null,"max_completion_tokens":1e3}),
            kind,
            gpt4o
        ),
        1_000
    );
    assert_eq!(
        max_output_tokens(&json!({"max_tokens":100,"n":3}), kind, gpt4o),
        300
    );
    // A whole number written as a float is that many answers.
    assert_eq!(
        max_output_tokens(&json!({"max_tokens":100,"n":2.0}), kind, gpt4o),
        200
    );
    assert_eq!(
        max_output_tokens(&json!({"max_tokens":100,"best_of":4e0}), kind, gpt4o),
        400
    );
    assert_eq!(
        max_output_tokens(
            &json!({"max_output_tokens":77}),
            ApiKind::OpenAiResponses,
            None
        ),
        77
    );
    assert_eq!(
        max_output_tokens(&json!({"max_tokens":100}), ApiKind::OpenAiEmbeddings, None),
        0
    );
    // Legacy completions: 16 tokens by default, one answer set per prompt of a list.
    let c = ApiKind::OpenAiCompletions;
    assert_eq!(max_output_tokens(&json!({"prompt":"x"}), c, None), 16);
    assert_eq!(
        max_output_tokens(
            &json!({"prompt":["a","b","c"],"max_tokens":10,"n":2}),
            c,
            None
        ),
        60
    );
    assert_eq!(
        max_output_tokens(&json!({"prompt":[[1,2],[3]],"max_tokens":10}), c, None),
        20
    );
    assert_eq!(
        max_output_tokens(&json!({"prompt":[1,2,3],"max_tokens":10}), c, None),
        10,
        "one prompt of token ids"
    );
}

#[test]
fn worst_case_combines_estimate_and_allowance() {
    let price = Catalog::builtin().price("gpt-4o").expect("priced");
    let body = json!({"messages":[{"role":"user","content":"Hello!"}],"max_tokens":100});
    // input bound: 37 bytes of JSON text + 8 per message + 16 = 61 tokens × $2.50/M = 152.5 µ$;
    // output 100 × $10/M = 1000 µ$; rounded up once.
    assert_eq!(
        worst_case_micros(&body, ApiKind::OpenAiChat, price),
        Ok(1_153)
    );
}

#[test]
fn odd_bodies_do_not_panic() {
    for body in [
        json!(null),
        json!([1, 2]),
        json!("x"),
        json!({"messages":"str","max_tokens":-1}),
    ] {
        assert!(estimate_input_tokens(&body, ApiKind::OpenAiChat) >= 16);
        assert!(max_output_tokens(&body, ApiKind::OpenAiChat, None) >= 1);
    }
}

#[test]
fn cjk_symbols_and_random_runs_are_not_underestimated() {
    use serde_json::json;
    // 300 CJK characters: real tokenizers need up to ~1.5 tokens each; the bound holds 2 each.
    let cjk = json!({ "messages": [{ "role": "user", "content": "漢".repeat(300) }] });
    let est = estimate_input_tokens(&cjk, ApiKind::OpenAiChat);
    assert!(est >= 600, "{est}");
    // Punctuation: one token each.
    let punct = json!({ "messages": [{ "role": "user", "content": "!?".repeat(100) }] });
    assert!(estimate_input_tokens(&punct, ApiKind::OpenAiChat) >= 200);
    // A 64-character hex digest: at least 32 tokens.
    let hex = json!({ "messages": [{ "role": "user", "content": "a3f9".repeat(16) }] });
    assert!(estimate_input_tokens(&hex, ApiKind::OpenAiChat) >= 32);
    // Plain English keeps the 3-characters-a-token rate: "user" + "hello world" = 15 → 5 + 8 + 16.
    let plain = json!({ "messages": [{ "role": "user", "content": "hello world" }] });
    assert_eq!(estimate_input_tokens(&plain, ApiKind::OpenAiChat), 29);
}

/// The byte loop in `add_text` against a plain per-character statement of the same rule.
#[test]
fn text_weight_matches_the_per_character_rule() {
    fn reference(s: &str) -> (u64, u64) {
        let (mut chars, mut tokens, mut run) = (0u64, 0u64, 0u64);
        let close = |run: &mut u64, chars: &mut u64, tokens: &mut u64| {
            if *run > LONG_RUN {
                *tokens += run.div_ceil(2);
            } else {
                *chars += *run;
            }
            *run = 0;
        };
        for c in s.chars() {
            if c.is_ascii_alphanumeric() {
                run += 1;
                continue;
            }
            close(&mut run, &mut chars, &mut tokens);
            if c.is_ascii_whitespace() {
                chars += 1;
            } else if c.is_ascii() {
                tokens += 1;
            } else {
                tokens += (c.len_utf8() as u64 - 1).max(1);
            }
        }
        close(&mut run, &mut chars, &mut tokens);
        (chars, tokens)
    }
    for s in [
        "",
        "plain words and spaces",
        "déjà vu — naïve café",
        "中文提示词，请回答。",
        "emoji 🎉🚀 mixed with text",
        "key sk-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 and a hash 9f86d081884c7d659a2feaa0c55ad015",
        "tabs\tand\nnew\r\nlines\x0c!",
        "ß€𝄞",
        "\x0b\x01\x7f vertical tab and controls",
        "abcdefghijkl abcdefghijklm x",
        "run at the end abcdefghijklmnopq",
    ] {
        let mut size = Size::default();
        size.add_text(s);
        assert_eq!((size.chars, size.tokens), reference(s), "{s:?}");
    }
}

#[test]
fn a_priority_request_is_held_at_priority_rates_or_not_at_all() {
    let c = Catalog::builtin();
    let gpt5 = c.price("gpt-5").expect("priced");
    let ask = |tier: Option<&str>| {
        let mut b = json!({"model":"gpt-5","max_completion_tokens":1000,
            "messages":[{"role":"user","content":"hi"}]});
        if let Some(t) = tier {
            b["service_tier"] = json!(t);
        }
        b
    };
    let standard = worst_case_micros(&ask(None), ApiKind::OpenAiChat, gpt5).expect("held");
    let priority =
        worst_case_micros(&ask(Some("priority")), ApiKind::OpenAiChat, gpt5).expect("held");
    // Output dominates: 1000 × $20 against 1000 × $10.
    assert!(priority >= 2 * standard - 100, "{priority} vs {standard}");
    for tier in ["auto", "default", "flex", "scale"] {
        assert_eq!(
            worst_case_micros(&ask(Some(tier)), ApiKind::OpenAiChat, gpt5),
            Ok(standard),
            "{tier}"
        );
    }
    assert_eq!(
        requested_service_tier(&ask(Some("priority")), ApiKind::OpenAiResponses),
        ServiceTier::Priority
    );
    assert_eq!(
        requested_service_tier(&ask(Some("priority")), ApiKind::AnthropicMessages),
        ServiceTier::Standard
    );
    // No priority rates for the model: not held.
    let nano = c.price("gpt-5-nano").expect("priced");
    assert_eq!(
        worst_case_micros(&ask(Some("priority")), ApiKind::OpenAiChat, nano),
        Err(Unmetered::ServiceTier {
            tier: "priority",
            model: "gpt-5-nano".into()
        })
    );
    // gpt-5.4 has priority rates but none above its long-context threshold: a request whose input
    // bound reaches past it (here: input it only refers to) is not held either; a short one is.
    let gpt54 = c.price("gpt-5.4").expect("priced");
    let short =
        json!({"model":"gpt-5.4","service_tier":"priority","input":"hi","max_output_tokens":10});
    assert!(worst_case_micros(&short, ApiKind::OpenAiResponses, gpt54).is_ok());
    let mut long = short.clone();
    long["previous_response_id"] = json!("resp_1");
    assert!(worst_case_micros(&long, ApiKind::OpenAiResponses, gpt54).is_err());
}

/// A stream cut before its usage is priced from [`estimate_input`]: text as the estimate counts
/// it, images and audio clips as the hold's bound does, at the tier asked for.
#[test]
fn the_input_estimate_counts_media_as_the_bound_does() {
    use crate::{input_bound, GPT_4O_MINI_IMAGE_TOKENS, IMAGE_TOKENS};
    let c = Catalog::builtin();
    let kind = ApiKind::OpenAiChat;
    // Plain text: the estimate of today, at standard rates.
    let text = json!({"model":"gpt-4.1","messages":[{"role":"user","content":"Count to three."}]});
    assert_eq!(
        estimate_input(&text, kind, c.price("gpt-4.1")),
        InputEstimate::text(estimate_input_tokens(&text, kind))
    );
    // Priority asked for: the same tokens at priority rates.
    let mut priority = text.clone();
    priority["service_tier"] = json!("priority");
    let e = estimate_input(&priority, kind, c.price("gpt-4.1"));
    assert_eq!(
        (e.tokens, e.service_tier),
        (
            estimate_input_tokens(&priority, kind),
            ServiceTier::Priority
        )
    );
    // An inline clip: its audio tokens by the bound (400,000 bytes / 32), as audio, not one
    // 4,096-token text blob.
    let clip = "A".repeat(533_336);
    let audio = json!({"model":"gpt-4o-audio-preview","messages":[{"role":"user","content":[
        {"type":"text","text":"transcribe"},
        {"type":"input_audio","input_audio":{"data":clip,"format":"mp3"}}]}]});
    let price = c.price("gpt-4o-audio-preview");
    let e = estimate_input(&audio, kind, price);
    let audio_tokens = input_bound(&audio, kind, price).audio_tokens;
    assert_eq!(audio_tokens, 400_002 / 32 + 1);
    assert_eq!(e.audio_tokens, audio_tokens);
    // The text ("user", "text", "transcribe"): 18 characters -> 6, + 8 + 16.
    assert_eq!(e.tokens, audio_tokens + 30);
    // A gpt-4o-mini image by URL: 48,169 tokens, not its URL's text.
    let image = json!({"model":"gpt-4o-mini","messages":[{"role":"user","content":[
        {"type":"text","text":"describe"},
        {"type":"image_url","image_url":{"url":"https://example.com/big.png","detail":"high"}}]}]});
    let e = estimate_input(&image, kind, c.price("gpt-4o-mini"));
    assert!(e.tokens >= GPT_4O_MINI_IMAGE_TOKENS && e.tokens < GPT_4O_MINI_IMAGE_TOKENS + 40);
    assert_eq!(e.audio_tokens, 0);
    // An inline image is counted once (not also as a base64 blob).
    let blob = format!("data:image/png;base64,{}", "A".repeat(200_000));
    let inline = json!({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":blob}}]}]});
    let e = estimate_input(&inline, kind, c.price("gpt-4o"));
    assert!(
        e.tokens >= IMAGE_TOKENS && e.tokens < IMAGE_TOKENS + 40,
        "{e:?}"
    );
    // Media after input the request only refers to are still counted.
    let referred = json!({"messages":[{"role":"user","content":[
        {"type":"file","file":{"file_id":"file-1"}},
        {"type":"image_url","image_url":{"url":"https://x/i.png"}}]}]});
    assert!(estimate_input(&referred, kind, c.price("gpt-4o")).tokens >= IMAGE_TOKENS);
}

#[test]
fn the_text_estimate_equals_the_full_one_for_bodies_without_media() {
    let gpt = Catalog::builtin().price("gpt-4o-mini");
    let bodies = [
        json!({"model":"gpt-4o-mini","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"mail maria@example.com about the 2024 report"}]}),
        json!({"model":"gpt-4o-mini","service_tier":"priority","messages":[{"role":"user","content":[{"type":"text","text":"hello there"}]}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]}),
    ];
    for b in bodies {
        assert_eq!(
            estimate_input_text(&b, ApiKind::OpenAiChat),
            estimate_input(&b, ApiKind::OpenAiChat, gpt),
            "{b}"
        );
    }
}

/// A request that does not ask for `inference_geo: "global"` may run US-only (its workspace's
/// default can say so, unseen by the router): on the models that bill it, it is held at 1.1×.
#[test]
fn a_request_that_may_run_us_only_is_held_at_the_us_only_rate() {
    let c = Catalog::builtin();
    let held = |model: &str, geo: Option<&str>| {
        let mut b = json!({"model":model,"max_tokens":1000,
            "messages":[{"role":"user","content":"hi"}]});
        if let Some(g) = geo {
            b["inference_geo"] = json!(g);
        }
        worst_case_micros(&b, ApiKind::AnthropicMessages, c.price(model).expect(model))
            .expect("held")
    };
    let global = held("claude-opus-4-6", Some("global"));
    for geo in [None, Some("us")] {
        let h = held("claude-opus-4-6", geo);
        assert!(
            h >= global * 11 / 10 && h <= global * 11 / 10 + 1,
            "{geo:?}: {h} vs {global}"
        );
    }
    // Sonnet 4.5 predates the surcharge: held at the standard rates whatever the request says.
    assert_eq!(
        held("claude-sonnet-4-5", None),
        held("claude-sonnet-4-5", Some("global"))
    );
}

/// OpenAI renamed priority processing Fast mode and accepts `service_tier: "fast"` for it: held
/// at priority rates. `ultrafast` costs more at rates the data does not carry: not held.
#[test]
fn fast_is_priority_and_ultrafast_cannot_be_held() {
    let c = Catalog::builtin();
    let gpt5 = c.price("gpt-5").expect("priced");
    let ask = |tier: &str| {
        json!({"model":"gpt-5","max_completion_tokens":1000,"service_tier":tier,
            "messages":[{"role":"user","content":"hi"}]})
    };
    let priority = worst_case_micros(&ask("priority"), ApiKind::OpenAiChat, gpt5);
    assert_eq!(
        worst_case_micros(&ask("fast"), ApiKind::OpenAiChat, gpt5),
        priority
    );
    assert!(
        priority.expect("held")
            > worst_case_micros(&ask("default"), ApiKind::OpenAiChat, gpt5).expect("held")
    );
    assert_eq!(
        worst_case_micros(&ask("ultrafast"), ApiKind::OpenAiChat, gpt5),
        Err(Unmetered::ServiceTier {
            tier: "ultrafast",
            model: "gpt-5".into()
        })
    );
    // An answer served at ultrafast is charged at least the priority rates.
    let u = crate::Usage {
        input_tokens: 1000,
        output_tokens: 1000,
        service_tier: ServiceTier::Ultrafast,
        ..crate::Usage::default()
    };
    let at_priority = crate::Usage {
        service_tier: ServiceTier::Priority,
        ..u
    };
    assert_eq!(
        crate::cost_micros(gpt5, crate::Provider::OpenAi, &u),
        crate::cost_micros(gpt5, crate::Provider::OpenAi, &at_priority)
    );
}
