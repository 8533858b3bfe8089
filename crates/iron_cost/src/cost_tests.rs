use super::*;
use crate::catalog::Catalog;
use crate::price::{ModelPrice, TokenRates};

fn price(model: &str) -> &'static ModelPrice {
    Catalog::builtin()
        .price(model)
        .unwrap_or_else(|| panic!("{model} is priced"))
}

#[test]
fn gpt_4o_with_cached_tokens() {
    // 86 × $2.50/M + 1920 × $1.25/M + 300 × $10/M = $0.000215 + $0.0024 + $0.003 = $0.005615
    let u = Usage {
        input_tokens: 86,
        cache_read_tokens: 1920,
        output_tokens: 300,
        ..Usage::default()
    };
    assert_eq!(
        cost_micros(price("gpt-4o-2024-08-06"), Provider::OpenAi, &u),
        5_615
    );
}

#[test]
fn o3_reasoning_tokens_are_billed_once_inside_output() {
    // 50 × $2/M + 1200 × $8/M = $0.0001 + $0.0096 = $0.0097 (the 1024 reasoning tokens are inside 1200)
    let u = Usage {
        input_tokens: 50,
        output_tokens: 1200,
        reasoning_tokens: 1024,
        ..Usage::default()
    };
    assert_eq!(cost_micros(price("o3"), Provider::OpenAi, &u), 9_700);
}

#[test]
fn claude_sonnet_4_5_with_cache_read_and_5m_write() {
    // 120 × $3 + 10000 × $0.30 + 1500 × $3.75 + 350 × $15 (per M) = 360 + 3000 + 5625 + 5250 µ$
    let u = Usage {
        input_tokens: 120,
        cache_read_tokens: 10_000,
        cache_write_5m_tokens: 1500,
        output_tokens: 350,
        ..Usage::default()
    };
    assert_eq!(
        cost_micros(price("claude-sonnet-4-5-20250929"), Provider::Anthropic, &u),
        14_235
    );
    // A 1-hour write of 500 tokens adds 500 × $6/M = 3000 µ$.
    let with_1h = Usage {
        cache_write_1h_tokens: 500,
        ..u
    };
    assert_eq!(
        cost_micros(price("claude-sonnet-4-5"), Provider::Anthropic, &with_1h),
        17_235
    );
}

#[test]
fn embedding_call_rounds_up_to_a_whole_micro_dollar() {
    let p = price("text-embedding-3-small");
    // 8 × $0.02/M = $0.00000016 -> 1 µ$ (rounded up, never free)
    assert_eq!(
        cost_micros(
            p,
            Provider::OpenAi,
            &Usage {
                input_tokens: 8,
                ..Usage::default()
            }
        ),
        1
    );
    // 1M tokens = $0.02 exactly
    assert_eq!(
        cost_micros(
            p,
            Provider::OpenAi,
            &Usage {
                input_tokens: 1_000_000,
                ..Usage::default()
            }
        ),
        20_000
    );
}

#[test]
fn long_context_sonnet_call_prices_whole_request_at_tier_rates() {
    let p = price("claude-sonnet-4-5");
    // Total input 210,000 > 200,000: 150000 × $6 + 60000 × $0.60 + 1000 × $22.50 (per M)
    let u = Usage {
        input_tokens: 150_000,
        cache_read_tokens: 60_000,
        output_tokens: 1000,
        ..Usage::default()
    };
    assert_eq!(cost_micros(p, Provider::Anthropic, &u), 958_500);
    // Exactly 200,000 input stays at base rates: 140000 × $3 + 60000 × $0.30 + 1000 × $15
    let at = Usage {
        input_tokens: 140_000,
        ..u
    };
    assert_eq!(cost_micros(p, Provider::Anthropic, &at), 453_000);
}

#[test]
fn zero_usage_costs_nothing_and_huge_usage_saturates() {
    let p = price("gpt-4o");
    assert_eq!(cost_micros(p, Provider::OpenAi, &Usage::default()), 0);
    let huge = Usage {
        input_tokens: u64::MAX,
        output_tokens: u64::MAX,
        ..Usage::default()
    };
    assert_eq!(cost_micros(p, Provider::OpenAi, &huge), u64::MAX);
}

#[test]
fn worst_case_prices_input_at_highest_applicable_rate() {
    let sonnet = price("claude-sonnet-4-5");
    // 1000 in at the 1h write rate $6 + 4000 out at $15 = 6000 + 60000 µ$
    assert_eq!(
        max_cost_micros(sonnet, Provider::Anthropic, 1000, 4000),
        66_000
    );
    // Above 200k input the tier applies: 250000 × $12 + 1000 × $22.50
    assert_eq!(
        max_cost_micros(sonnet, Provider::Anthropic, 250_000, 1000),
        3_022_500
    );
    // OpenAI: 1000 × $2.50 + 100 × $10
    assert_eq!(
        max_cost_micros(price("gpt-4o"), Provider::OpenAi, 1000, 100),
        3_500
    );
}

#[test]
fn rounding_happens_once_per_call_not_per_term() {
    let p = ModelPrice {
        id: "t".into(),
        provider: Provider::OpenAi,
        rates: TokenRates {
            input: 400_000,
            cached_input: 400_000,
            cache_write_5m: 0,
            cache_write_1h: 0,
            output: 400_000,
            ..TokenRates::default()
        },
        long_context: None,
        priority: None,
        flex: None,
        web_search: None,
        max_output_tokens: None,
        context_window: None,
        regional_uplift_percent: None,
    };
    // 1 + 1 + 1 tokens × 0.4 µ$ = 1.2 µ$ -> 2 µ$ (per-term rounding would give 3)
    let u = Usage {
        input_tokens: 1,
        cache_read_tokens: 1,
        output_tokens: 1,
        ..Usage::default()
    };
    assert_eq!(cost_micros(&p, Provider::OpenAi, &u), 2);
}

/// Anthropic bills a call it ran US-only (`usage.inference_geo: "us"`) at 1.1× on every token
/// category of Opus 4.6, Sonnet 4.6 and later; earlier models and a global call at the standard
/// rates. The search fee is not raised.
#[test]
fn us_only_inference_is_billed_a_tenth_more_on_the_models_that_charge_it() {
    let answer = |model: &str, geo: &str| {
        serde_json::json!({"type":"message","model":model,"content":[],"usage":{
            "input_tokens":1000,"cache_read_input_tokens":2000,"cache_creation_input_tokens":400,
            "output_tokens":500,"inference_geo":geo,"server_tool_use":{"web_search_requests":1}}})
    };
    let cost = |model: &str, geo: &str| {
        let u = crate::usage_from_response(crate::ApiKind::AnthropicMessages, &answer(model, geo))
            .expect("usage");
        cost_micros(price(model), Provider::Anthropic, &u)
    };
    // Opus 4.6 at $5 in, $0.50 cache read, $6.25 5m write, $25 out per M, $10 per 1,000
    // searches: 5000 + 1000 + 2500 + 12500 = 21,000 µ$ of tokens, and 10,000 µ$ of search.
    assert_eq!(cost("claude-opus-4-6", "global"), 31_000);
    assert_eq!(cost("claude-opus-4-6", "us"), 21_000 * 11 / 10 + 10_000);
    // Sonnet 4.6 is uplifted too; Sonnet 4.5 predates the surcharge.
    assert_eq!(
        cost("claude-sonnet-4-6", "us") - 10_000,
        (cost("claude-sonnet-4-6", "global") - 10_000) * 11 / 10
    );
    assert_eq!(
        cost("claude-sonnet-4-5", "us"),
        cost("claude-sonnet-4-5", "global")
    );
    // The same usage read without a tree (the relay's path) is priced the same.
    let bytes = serde_json::to_vec(&answer("claude-opus-4-6", "us")).unwrap();
    let u = crate::usage_from_bytes(crate::ApiKind::AnthropicMessages, &bytes).expect("usage");
    assert!(u.us_only);
    assert_eq!(
        cost_micros(price("claude-opus-4-6"), Provider::Anthropic, &u),
        33_100
    );
}

/// On OpenAI's data-residency endpoints the models the data lists a surcharge for cost 10% more
/// at every tier and input size; the search fee does not change.
#[test]
fn a_regional_price_raises_every_tier_by_the_listed_surcharge() {
    let p = price("gpt-5.4");
    assert_eq!(p.regional_uplift_percent, Some(10));
    let r = p.on_regional_endpoint();
    let up = |x: u64| x * 11 / 10;
    assert_eq!(r.rates.input, up(p.rates.input));
    assert_eq!(r.rates.cached_input, up(p.rates.cached_input));
    assert_eq!(r.rates.output, up(p.rates.output));
    let (lc, rlc) = (p.long_context.unwrap(), r.long_context.unwrap());
    assert_eq!(rlc.above_input_tokens, lc.above_input_tokens);
    assert_eq!(rlc.rates.input, up(lc.rates.input));
    assert_eq!(
        r.priority.unwrap().rates.output,
        up(p.priority.unwrap().rates.output)
    );
    assert_eq!(r.flex.unwrap().rates.input, up(p.flex.unwrap().rates.input));
    assert_eq!(r.web_search, p.web_search);
    let u = Usage {
        input_tokens: 1000,
        output_tokens: 1000,
        ..Usage::default()
    };
    // 1000 × $2.50 + 1000 × $15 (per 1M) = 17,500 µ$; 19,250 on a regional endpoint.
    assert_eq!(cost_micros(p, Provider::OpenAi, &u), 17_500);
    assert_eq!(cost_micros(&r, Provider::OpenAi, &u), 19_250);
    // Models without a surcharge are unchanged.
    assert_eq!(price("gpt-4o").on_regional_endpoint(), *price("gpt-4o"));
}
