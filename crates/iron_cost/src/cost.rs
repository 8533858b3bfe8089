//! Cost of a call from its usage, and the worst-case cost used for budget reservations.

use crate::price::{ModelPrice, PicoUsd};
use crate::provider::Provider;
use crate::usage::Usage;

/// Pico-USD in one micro-USD.
const PICO_PER_MICRO: u128 = 1_000_000;

/// Exact cost of `usage` in pico-USD (u128: no overflow for any u64 token counts).
///
/// Usage is already normalised (uncached input, reasoning inside output), so one formula serves
/// both providers: input + cache reads + 5m writes + 1h writes + output, each at its rate. When
/// total input of all kinds exceeds the long-context threshold, the tier rates price everything.
/// `provider` names the wire shape `usage` came from; it does not change the sum.
pub fn cost_pico(price: &ModelPrice, _provider: Provider, usage: &Usage) -> u128 {
    let r = price.rates_for(usage.total_input_tokens());
    let term = |tokens: u64, rate: PicoUsd| u128::from(tokens) * u128::from(rate);
    // Saturating: rates are public fields, so a caller-built price may be absurdly large.
    term(usage.input_tokens, r.input)
        .saturating_add(term(usage.cache_read_tokens, r.cached_input))
        .saturating_add(term(usage.cache_write_5m_tokens, r.cache_write_5m))
        .saturating_add(term(usage.cache_write_1h_tokens, r.cache_write_1h))
        .saturating_add(term(usage.output_tokens, r.output))
}

/// Cost of `usage` in micro-USD, rounded UP once per call (a call is never free by rounding).
pub fn cost_micros(price: &ModelPrice, provider: Provider, usage: &Usage) -> u64 {
    pico_to_micros_ceil(cost_pico(price, provider, usage))
}

/// Upper bound for a call with at most `input_tokens` input and `max_output_tokens` output:
/// all input at the highest input-side rate the provider could bill (Anthropic: up to the 1-hour
/// cache-write rate; OpenAI: input or cache write), output at the output rate, using the
/// long-context tier when `input_tokens` is above its threshold.
pub fn max_cost_micros(
    price: &ModelPrice,
    provider: Provider,
    input_tokens: u64,
    max_output_tokens: u64,
) -> u64 {
    let r = price.rates_for(input_tokens);
    let input_rate = match provider {
        Provider::OpenAi => r.input.max(r.cache_write_5m),
        Provider::Anthropic => r.input.max(r.cache_write_5m).max(r.cache_write_1h),
    };
    let pico = (u128::from(input_tokens) * u128::from(input_rate))
        .saturating_add(u128::from(max_output_tokens) * u128::from(r.output));
    pico_to_micros_ceil(pico)
}

/// Pico-USD to micro-USD, rounded up and saturated at `u64::MAX`.
pub fn pico_to_micros_ceil(pico: u128) -> u64 {
    u64::try_from(pico.div_ceil(PICO_PER_MICRO)).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[path = "cost_tests.rs"]
mod tests;
