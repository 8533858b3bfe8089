//! iron_cost: model prices, cost from provider usage, and the budget ledger.
//!
//! Money is integer: rates in pico-USD per token, costs and budgets in micro-USD.
//! Flow per call: [`ApiKind::from_path`] → [`Catalog::price`] → [`worst_case_micros`] →
//! [`BudgetLedger::reserve`] → forward → [`usage_from_response`] or [`StreamUsage`] →
//! [`cost_micros`] → [`Reservation::commit`].
//!
//! A price ([`ModelPrice`]) has text and audio rates ([`TokenRates`]), an optional long-context
//! tier, optional OpenAI priority and flex rates ([`TierPrice`]) and an optional web search fee.
//! [`Usage`] says which tokens were audio, which service tier served the call and how many web
//! searches ran, and whether Anthropic ran the call US-only ([`us_only_uplift_applies`]: 1.1× on
//! Opus 4.6 and later); [`cost_micros`] prices each at its own rate. The hold prices the bound of
//! [`input_bound`] (audio clips by their bytes, PCM WAV clips by their duration) at the tier the
//! request asks for, and refuses ([`Unmetered`]) what it cannot bound: a priority request the data
//! has no priority rates for, provider-run tools (chat web search included), Anthropic fast mode.
//! A stream cut before its usage is priced from [`estimate_input`] ([`StreamUsage::finish_with`]).

mod api_kind;
mod bound;
mod budget;
mod catalog;
mod corrections;
mod cost;
mod estimate;
mod geo;
mod model_name;
mod price;
mod provider;
mod unmetered;
pub mod usage;

pub use api_kind::ApiKind;
pub use bound::{
    audio_output, extra_output_bound, input_bound, input_token_bound, is_chat_search_model,
    searches_per_call, unmetered, InputBound, Unmetered, AUDIO_BYTES_PER_TOKEN,
    FALLBACK_CONTEXT_TOKENS, GPT_4O_MINI_IMAGE_TOKENS, HIGH_RES_IMAGE_TOKENS, IMAGE_TOKENS,
    ORIGINAL_DETAIL_IMAGE_TOKENS, WAV_AUDIO_TOKENS_PER_SECOND,
};
pub use budget::{
    format_usd, BudgetDenied, BudgetLedger, BudgetStatus, BudgetThreshold, Reservation,
    DEFAULT_WARNING_PERCENT, REFUSALS_IN_A_ROW,
};
pub use catalog::{Catalog, PriceOverride, PRICES_JSON};
pub use corrections::{
    Correction, RateField, TierCorrection, CONTEXT_CORRECTIONS, CORRECTIONS, TIER_CORRECTIONS,
};
pub use cost::{
    cost_micros, cost_pico, max_cost_micros, max_cost_micros_for, pico_to_micros_ceil, HoldTokens,
};
pub use estimate::{
    default_output_tokens, estimate_input, estimate_input_text, estimate_input_tokens,
    max_output_tokens, output_limit_field, requested_output_tokens, requested_service_tier,
    worst_case_micros, worst_case_micros_at, worst_case_micros_for, InputEstimate,
    DEFAULT_MAX_OUTPUT_TOKENS, MEDIA_BLOB_TOKENS,
};
pub use geo::{
    claude_version, is_openai_data_residency_host, may_run_us_only, us_only_uplift_applies,
};
pub use model_name::{normalize as normalize_model_name, strip_snapshot_suffix};
pub use price::{
    usd_per_mtok_to_pico, InvalidPrice, LongContextTier, ModelPrice, PartialRates, PicoUsd,
    ServiceTier, TierPrice, TokenRates, MAX_RATE_PICO,
};
pub use provider::Provider;
pub use usage::stream::StreamUsage;
pub use usage::{
    usage_from_bytes, usage_from_member, usage_from_member_with_tier, usage_from_response, Usage,
};
