//! Cost of a call from its usage, and the worst-case cost used for budget reservations.

use crate::price::{ModelPrice, PicoUsd, ServiceTier};
use crate::provider::Provider;
use crate::usage::Usage;

/// Pico-USD in one micro-USD.
const PICO_PER_MICRO: u128 = 1_000_000;

/// Exact cost of `usage` in pico-USD (u128: no overflow for any u64 token counts).
///
/// Usage is already normalised (uncached input, reasoning inside output), so one formula serves
/// both providers: input + cache reads + 5m writes + 1h writes + output, each at its rate, where
/// the audio tokens among input, cache reads and output take the audio rates and the rest the
/// text rates. The rates are those of the service tier the answer reports (standard when the data
/// has none for it: see [`ModelPrice::billed_rates`]); when total input of all kinds exceeds the
/// long-context threshold, the long-context rates price everything. A call Anthropic ran US-only
/// pays 1.1× on every token of the models that bill it (see [`crate::us_only_uplift_applies`]).
/// Each web search the provider ran adds the model's search fee. `provider` names the wire shape `usage` came from; it does not
/// change the sum.
pub fn cost_pico(price: &ModelPrice, _provider: Provider, usage: &Usage) -> u128 {
    let r = price.billed_rates(usage.service_tier, usage.total_input_tokens());
    let term = |tokens: u64, rate: PicoUsd| u128::from(tokens) * u128::from(rate);
    // The audio counts are parts of their totals; clamped so a report can never bill more tokens
    // than its totals say.
    let input_audio = usage.input_audio_tokens.min(usage.input_tokens);
    let read_audio = usage.cache_read_audio_tokens.min(usage.cache_read_tokens);
    let output_audio = usage.output_audio_tokens.min(usage.output_tokens);
    // Saturating: rates are public fields, so a caller-built price may be absurdly large.
    let tokens = term(usage.input_tokens - input_audio, r.input)
        .saturating_add(term(input_audio, r.input_audio))
        .saturating_add(term(usage.cache_read_tokens - read_audio, r.cached_input))
        .saturating_add(term(read_audio, r.cached_input_audio))
        .saturating_add(term(usage.cache_write_5m_tokens, r.cache_write_5m))
        .saturating_add(term(usage.cache_write_1h_tokens, r.cache_write_1h))
        .saturating_add(term(usage.output_tokens - output_audio, r.output))
        .saturating_add(term(output_audio, r.output_audio));
    // US-only inference raises every token rate, not the search fee.
    let tokens = if usage.us_only && crate::geo::us_only_uplift_applies(price) {
        crate::geo::uplift(tokens)
    } else {
        tokens
    };
    tokens.saturating_add(term(
        usage.web_search_requests,
        price.web_search.unwrap_or(0),
    ))
}

/// Cost of `usage` in micro-USD, rounded UP once per call (a call is never free by rounding).
pub fn cost_micros(price: &ModelPrice, provider: Provider, usage: &Usage) -> u64 {
    pico_to_micros_ceil(cost_pico(price, provider, usage))
}

/// Bounds on the tokens one request can bill, for a budget hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HoldTokens {
    /// Input tokens of all kinds, audio included.
    pub input: u64,
    /// How many of `input` may be audio (at most `input`).
    pub input_audio: u64,
    /// Output tokens.
    pub output: u64,
    /// Whether the output may be audio (the request asks for an audio answer).
    pub audio_output: bool,
    /// The service tier whose rates apply.
    pub tier: ServiceTier,
    /// The call may run US-only (see [`crate::may_run_us_only`]): held at that rate on the
    /// models that bill it.
    pub us_only: bool,
}

/// Upper bound for a call at standard rates with at most `input_tokens` input and
/// `max_output_tokens` output, all of it text: see [`max_cost_micros_for`].
pub fn max_cost_micros(
    price: &ModelPrice,
    provider: Provider,
    input_tokens: u64,
    max_output_tokens: u64,
) -> u64 {
    let tokens = HoldTokens {
        input: input_tokens,
        output: max_output_tokens,
        ..HoldTokens::default()
    };
    // Standard rates always exist.
    max_cost_micros_for(price, provider, &tokens).unwrap_or(u64::MAX)
}

/// Upper bound for a call within `tokens`: text input at the highest input-side rate the
/// provider could bill (Anthropic: up to the 1-hour cache-write rate; OpenAI: input or cache
/// write), the tokens that may be audio at the higher of that and the audio input rates, output
/// at the output rate (the higher of the text and audio output rates when the answer may be
/// audio), at the rates of `tokens.tier` (raised to the US-only rate when `tokens.us_only` and
/// the model bills it), using the long-context rates when the input bound is above their threshold. `None` when the data has no rates for that service tier and input size.
pub fn max_cost_micros_for(
    price: &ModelPrice,
    provider: Provider,
    tokens: &HoldTokens,
) -> Option<u64> {
    let r = price.tier_rates_for(tokens.tier, tokens.input)?;
    let input_rate = match provider {
        Provider::OpenAi => r.input.max(r.cache_write_5m),
        Provider::Anthropic => r.input.max(r.cache_write_5m).max(r.cache_write_1h),
    };
    // Audio at the higher of both kinds' rates: any token of the bound may be either, and the
    // more of it is audio the more it costs, so this covers every split of the input.
    let audio_rate = input_rate.max(r.input_audio).max(r.cached_input_audio);
    let output_rate = if tokens.audio_output {
        r.output.max(r.output_audio)
    } else {
        r.output
    };
    let audio = tokens.input_audio.min(tokens.input);
    let pico = (u128::from(tokens.input - audio) * u128::from(input_rate))
        .saturating_add(u128::from(audio) * u128::from(audio_rate))
        .saturating_add(u128::from(tokens.output) * u128::from(output_rate));
    let pico = if tokens.us_only && crate::geo::us_only_uplift_applies(price) {
        crate::geo::uplift(pico)
    } else {
        pico
    };
    Some(pico_to_micros_ceil(pico))
}

/// Pico-USD to micro-USD, rounded up and saturated at `u64::MAX`.
pub fn pico_to_micros_ceil(pico: u128) -> u64 {
    u64::try_from(pico.div_ceil(PICO_PER_MICRO)).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[path = "cost_tests.rs"]
mod tests;
