use super::*;
use crate::price::{ServiceTier, TokenRates};

fn id_of(model: &str) -> Option<&'static str> {
    Catalog::builtin().price(model).map(|p| p.id.as_str())
}

#[test]
fn embedded_data_parses_and_covers_both_providers() {
    let c = Catalog::from_json(PRICES_JSON).expect("embedded prices.json parses");
    assert!(c.models().len() > 50);
    assert!(c.models().iter().any(|m| m.provider == Provider::Anthropic));
    assert!(c.source().contains("genai-prices"));
}

#[test]
fn dated_and_aliased_names_match_their_model() {
    assert_eq!(id_of("gpt-4o-2024-08-06"), Some("gpt-4o"));
    assert_eq!(
        id_of("claude-sonnet-4-5-20250929"),
        Some("claude-sonnet-4-5")
    );
    assert_eq!(
        id_of("claude-3-5-haiku-latest"),
        Some("claude-3-5-haiku-latest")
    );
    assert_eq!(
        id_of("claude-3-5-haiku-20241022"),
        Some("claude-3-5-haiku-latest")
    );
    assert_eq!(id_of("CLAUDE-Sonnet-4-5"), Some("claude-sonnet-4-5"));
    assert_eq!(
        id_of("anthropic/claude-opus-4-1-20250805"),
        Some("claude-opus-4-1")
    );
    // A snapshot date the data does not list yet still finds its family.
    assert_eq!(id_of("gpt-4.1-mini-2026-01-01"), Some("gpt-4.1-mini"));
    assert_eq!(id_of("o3-2025-04-16"), Some("o3"));
}

#[test]
fn distinct_snapshots_keep_their_own_price() {
    assert_eq!(id_of("gpt-4o-2024-05-13"), Some("gpt-4o-2024-05-13"));
    let old = Catalog::builtin()
        .price("gpt-4o-2024-05-13")
        .expect("priced");
    assert_eq!((old.rates.input, old.rates.output), (5_000_000, 15_000_000));
}

#[test]
fn mini_never_falls_back_to_the_larger_model() {
    assert_eq!(id_of("gpt-4o-mini"), Some("gpt-4o-mini"));
    assert_eq!(id_of("gpt-4o-mini-2099-01-01"), Some("gpt-4o-mini"));
    assert_eq!(id_of("gpt-4o-mini-unknown-variant"), None);
    assert_eq!(id_of("gpt-4o-unknown"), None);
    let mini = Catalog::builtin().price("gpt-4o-mini").expect("priced");
    assert_eq!(
        (mini.rates.input, mini.rates.cached_input, mini.rates.output),
        (150_000, 75_000, 600_000)
    );
}

#[test]
fn unknown_and_hostile_names_are_none() {
    for name in [
        "",
        "   ",
        "-latest",
        "llama-3",
        "gpt",
        &"x".repeat(100_000),
        "claude-\u{0}",
    ] {
        assert_eq!(id_of(name), None, "{name:.20}");
    }
}

#[test]
fn overrides_price_custom_models_and_take_precedence() {
    let base = Catalog::builtin();
    let custom = PriceOverride {
        model: "My-FineTune".into(),
        provider: Provider::Anthropic,
        input_per_mtok: 2.0,
        output_per_mtok: 8.0,
        cached_input_per_mtok: None,
        cache_write_5m_per_mtok: None,
        cache_write_1h_per_mtok: None,
        max_output_tokens: Some(1000),
    };
    let cheaper_4o = PriceOverride {
        model: "gpt-4o".into(),
        provider: Provider::OpenAi,
        input_per_mtok: 1.0,
        ..custom.clone()
    };
    let c = base
        .with_overrides(&[custom, cheaper_4o])
        .expect("valid overrides");
    let m = c
        .price("my-finetune-20250101")
        .expect("override matches with snapshot suffix");
    assert_eq!(
        m.rates,
        TokenRates {
            input: 2_000_000,
            cached_input: 200_000,
            cache_write_5m: 2_500_000,
            cache_write_1h: 4_000_000,
            output: 8_000_000,
            input_audio: 2_000_000,
            cached_input_audio: 200_000,
            output_audio: 8_000_000,
        }
    );
    assert_eq!(c.price("gpt-4o").map(|p| p.rates.input), Some(1_000_000));
    // Aliases of the base entry are unaffected; the builtin catalog is unchanged.
    assert_eq!(
        c.price("gpt-4o-2024-08-06").map(|p| p.rates.input),
        Some(2_500_000)
    );
    assert_eq!(base.price("gpt-4o").map(|p| p.rates.input), Some(2_500_000));
}

#[test]
fn invalid_override_is_rejected_with_its_field() {
    let bad = PriceOverride {
        model: "m".into(),
        provider: Provider::OpenAi,
        input_per_mtok: 1.0,
        output_per_mtok: f64::NAN,
        cached_input_per_mtok: None,
        cache_write_5m_per_mtok: None,
        cache_write_1h_per_mtok: None,
        max_output_tokens: None,
    };
    let err = Catalog::builtin()
        .with_overrides(&[bad])
        .expect_err("NaN rejected");
    assert_eq!(err.what, "m.output");
}

#[test]
fn malformed_data_files_are_errors_not_panics() {
    for text in [
        "",
        "[]",
        "{\"models\":[]}",
        "{\"models\":{\"a\":1}}",
        "{\"models\":{\"a\":{\"provider\":\"x\",\"input\":1}}}",
        "{\"models\":{\"a\":{\"provider\":\"openai\",\"input\":-1}}}",
        "{\"models\":{\"a\":{\"provider\":\"openai\"}}}",
        "{\"models\":{\"a\":{\"provider\":\"openai\",\"input\":1,\"regional_uplift_percent\":150}}}",
        "{\"models\":{\"a\":{\"provider\":\"openai\",\"input\":1,\"regional_uplift_percent\":1.1}}}",
    ] {
        assert!(Catalog::from_json(text).is_err(), "{text}");
    }
}

#[test]
fn long_context_tier_is_loaded_with_base_fallbacks() {
    let gpt54 = Catalog::builtin().price("gpt-5.4").expect("priced");
    let tier = gpt54.long_context.expect("gpt-5.4 has a long-context tier");
    assert_eq!(tier.above_input_tokens, 271_999);
    assert_eq!(
        (tier.rates.input, tier.rates.cached_input, tier.rates.output),
        (5_000_000, 500_000, 22_500_000)
    );
    // No cache-write rate is listed at all, so OpenAI's default (the input rate) uses the tier's input.
    assert_eq!(
        (gpt54.rates.cache_write_5m, tier.rates.cache_write_5m),
        (2_500_000, 5_000_000)
    );
}

#[test]
fn price_for_checks_the_provider() {
    let c = Catalog::builtin();
    assert_eq!(
        c.price_for(Provider::Anthropic, "claude-haiku-4-5")
            .map(|p| p.rates.input),
        Some(1_000_000)
    );
    assert!(c.price_for(Provider::OpenAi, "claude-haiku-4-5").is_none());
}

#[test]
fn service_tier_rates_are_loaded_from_the_second_source() {
    let c = Catalog::builtin();
    assert!(c.source().contains("litellm@"), "{}", c.source());
    let gpt5 = c.price("gpt-5-2025-08-07").expect("priced");
    let priority = gpt5.priority.expect("gpt-5 has priority rates");
    assert_eq!(
        (
            priority.rates.input,
            priority.rates.cached_input,
            priority.rates.output
        ),
        (2_500_000, 250_000, 20_000_000)
    );
    let flex = gpt5.flex.expect("gpt-5 has flex rates");
    assert_eq!(
        (flex.rates.input, flex.rates.cached_input, flex.rates.output),
        (625_000, 62_500, 5_000_000)
    );
    // Anthropic models carry none; gpt-5-nano only flex.
    let sonnet = c.price("claude-sonnet-4-5").expect("priced");
    assert!(sonnet.priority.is_none() && sonnet.flex.is_none());
    let nano = c.price("gpt-5-nano").expect("priced");
    assert!(nano.priority.is_none() && nano.flex.is_some());
}

#[test]
fn a_service_tier_fills_what_it_does_not_list_never_below_standard() {
    let text = r#"{"models":{"m":{"provider":"openai","input":1000000,"cached_input":100000,
        "cache_write_5m":1250000,"output":8000000,"input_audio":30000000,
        "long_context":{"above_input_tokens":272000,"input":2000000,"output":12000000},
        "priority":{"input":2000000,"output":16000000,
          "long_context":{"above_input_tokens":272000,"input":4000000}},
        "flex":{"input":500000,"cached_input":50000,"output":4000000}}}}"#;
    let c = Catalog::from_json(text).expect("parses");
    let m = c.price("m").expect("priced");
    let p = m.priority.expect("priority");
    // Unlisted: the larger of the default from the tier's input (OpenAI: the input rate itself)
    // and the standard rate.
    assert_eq!(p.rates.cached_input, 2_000_000);
    assert_eq!(p.rates.cache_write_5m, 2_000_000);
    assert_eq!(p.rates.input_audio, 30_000_000);
    // Long context: its own input; its output at least both the tier's and standard long context's.
    let lc = p.long_context.expect("priority long context");
    assert_eq!((lc.rates.input, lc.rates.output), (4_000_000, 16_000_000));
    let f = m.flex.expect("flex");
    assert_eq!(
        (f.rates.cached_input, f.rates.cache_write_5m),
        (50_000, 1_250_000)
    );
    // Flex lists no long-context rates while the model has a long-context tier: unknown there.
    assert!(m.tier_rates_for(ServiceTier::Flex, 272_001).is_none());
    assert_eq!(
        m.tier_rates_for(ServiceTier::Flex, 272_000)
            .map(|r| r.input),
        Some(500_000)
    );
    assert_eq!(
        m.tier_rates_for(ServiceTier::Priority, 272_001)
            .map(|r| r.input),
        Some(4_000_000)
    );
    // Billing falls back to standard rates where a tier has none.
    assert_eq!(m.billed_rates(ServiceTier::Flex, 300_000).input, 2_000_000);
}
