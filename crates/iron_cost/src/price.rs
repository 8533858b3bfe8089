//! Per-token prices in integer pico-USD, and the rules that fill rates a source leaves out.

use crate::provider::Provider;
use std::fmt;

/// Pico-USD (1e-12 USD) per token; equals USD per 1M tokens × 1e6.
pub type PicoUsd = u64;

/// Largest accepted rate: $1,000,000 per 1M tokens, far above any real model, small enough that
/// `tokens × rate` cannot overflow u128 for any u64 token count.
pub const MAX_RATE_PICO: PicoUsd = 1_000_000_000_000;

/// The per-token rates of one pricing tier: five for text (and any token the provider does not
/// break down), three for audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenRates {
    /// Uncached input tokens.
    pub input: PicoUsd,
    /// Cache reads (OpenAI "cached input", Anthropic cache hits).
    pub cached_input: PicoUsd,
    /// Cache writes with the default 5-minute lifetime.
    pub cache_write_5m: PicoUsd,
    /// Cache writes with a 1-hour lifetime.
    pub cache_write_1h: PicoUsd,
    /// Output tokens (reasoning / thinking tokens included).
    pub output: PicoUsd,
    /// Uncached audio input tokens (OpenAI audio and realtime models).
    pub input_audio: PicoUsd,
    /// Audio input tokens read from the prompt cache.
    pub cached_input_audio: PicoUsd,
    /// Audio output tokens.
    pub output_audio: PicoUsd,
}

/// Rates as a data source gives them: any cache rate may be missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PartialRates {
    /// Uncached input rate (required).
    pub input: PicoUsd,
    /// Cache read rate, if the source has one.
    pub cached_input: Option<PicoUsd>,
    /// 5-minute cache write rate, if the source has one.
    pub cache_write_5m: Option<PicoUsd>,
    /// 1-hour cache write rate, if the source has one.
    pub cache_write_1h: Option<PicoUsd>,
    /// Output rate (missing means free, as for embeddings).
    pub output: Option<PicoUsd>,
    /// Audio input rate, if the source has one.
    pub input_audio: Option<PicoUsd>,
    /// Cached audio input rate, if the source has one.
    pub cached_input_audio: Option<PicoUsd>,
    /// Audio output rate, if the source has one.
    pub output_audio: Option<PicoUsd>,
}

impl PartialRates {
    /// Fills missing rates with the provider's published multipliers of the input rate.
    ///
    /// Anthropic: 5m write 1.25×, 1h write 2×, cache read 0.1× (pricing page). OpenAI has no
    /// cache-write surcharge and no discount unless the source lists one, so writes and reads
    /// default to the input rate (never under-charging); a 1h write defaults to 2× for both.
    ///
    /// Audio: a model the source lists no audio rates for prices audio tokens as text (its input,
    /// cached input and output rates). A listed audio input rate without a cached one is also the
    /// cached audio rate (no discount the source does not list).
    pub fn resolve(self, provider: Provider) -> TokenRates {
        let input = self.input;
        let (write_5m, read) = match provider {
            Provider::Anthropic => (input.saturating_mul(5) / 4, input / 10),
            Provider::OpenAi => (input, input),
        };
        let cached_input = self.cached_input.unwrap_or(read);
        let output = self.output.unwrap_or(0);
        TokenRates {
            input,
            cached_input,
            cache_write_5m: self.cache_write_5m.unwrap_or(write_5m),
            cache_write_1h: self.cache_write_1h.unwrap_or(input.saturating_mul(2)),
            output,
            input_audio: self.input_audio.unwrap_or(input),
            cached_input_audio: self
                .cached_input_audio
                .or(self.input_audio)
                .unwrap_or(cached_input),
            output_audio: self.output_audio.unwrap_or(output),
        }
    }

    /// Resolves the rates of a service tier: a rate the tier lists is its own; one it does not is
    /// the larger of the provider default derived from the tier's own rates ([`Self::resolve`])
    /// and `floor`'s (the standard rate for the same tokens), so no tier is priced below what the
    /// data gives and a priority tier never below standard.
    pub fn resolve_over(self, provider: Provider, floor: &TokenRates) -> TokenRates {
        let d = self.resolve(provider);
        let pick = |listed: Option<PicoUsd>, derived: PicoUsd, floor: PicoUsd| {
            listed.unwrap_or(derived.max(floor))
        };
        TokenRates {
            input: self.input,
            cached_input: pick(self.cached_input, d.cached_input, floor.cached_input),
            cache_write_5m: pick(self.cache_write_5m, d.cache_write_5m, floor.cache_write_5m),
            cache_write_1h: pick(self.cache_write_1h, d.cache_write_1h, floor.cache_write_1h),
            output: pick(self.output, d.output, floor.output),
            input_audio: pick(self.input_audio, d.input_audio, floor.input_audio),
            cached_input_audio: pick(
                self.cached_input_audio,
                d.cached_input_audio,
                floor.cached_input_audio,
            ),
            output_audio: pick(self.output_audio, d.output_audio, floor.output_audio),
        }
    }
}

/// OpenAI's processing tiers, as an answer's `service_tier` reports them. `auto`, `default`,
/// `scale` and anything else bill at the standard rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServiceTier {
    /// Standard rates (`default`).
    #[default]
    Standard,
    /// Priority processing: about 1.7-2× standard.
    Priority,
    /// Flex processing: about half of standard, slower.
    Flex,
    /// Ultrafast mode (GPT-6 Astra, GPT-6.1 Sol): above priority, at rates the price data does
    /// not carry.
    Ultrafast,
}

impl ServiceTier {
    /// The tier a `service_tier` value names (`priority` or its newer name `fast`, `flex`,
    /// `ultrafast`, in any case and with spaces around; anything else is standard).
    pub fn parse(name: &str) -> ServiceTier {
        let name = name.trim();
        if name.eq_ignore_ascii_case("priority") || name.eq_ignore_ascii_case("fast") {
            ServiceTier::Priority
        } else if name.eq_ignore_ascii_case("flex") {
            ServiceTier::Flex
        } else if name.eq_ignore_ascii_case("ultrafast") {
            ServiceTier::Ultrafast
        } else {
            ServiceTier::Standard
        }
    }

    /// The tier's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceTier::Standard => "default",
            ServiceTier::Priority => "priority",
            ServiceTier::Flex => "flex",
            ServiceTier::Ultrafast => "ultrafast",
        }
    }
}

/// The rates of one service tier (priority or flex) of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierPrice {
    /// The tier's rates.
    pub rates: TokenRates,
    /// The tier's long-context rates. When the model has a long-context tier and this is `None`,
    /// the service tier's price above the threshold is unknown.
    pub long_context: Option<LongContextTier>,
}

/// Rates that replace the base rates for a whole request once its input is large enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongContextTier {
    /// The tier applies when total input tokens (all kinds) are strictly above this.
    pub above_input_tokens: u64,
    /// The tier's rates.
    pub rates: TokenRates,
}

/// Everything needed to price one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPrice {
    /// Canonical catalog id (e.g. `claude-sonnet-4-5`).
    pub id: String,
    /// Which provider serves the model.
    pub provider: Provider,
    /// Base rates.
    pub rates: TokenRates,
    /// Optional long-context tier.
    pub long_context: Option<LongContextTier>,
    /// Priority-processing rates (OpenAI), if the data has them.
    pub priority: Option<TierPrice>,
    /// Flex-processing rates (OpenAI), if the data has them.
    pub flex: Option<TierPrice>,
    /// Fee per web search the provider runs for the call (its web search tool), in pico-USD, if
    /// the data has one.
    pub web_search: Option<PicoUsd>,
    /// Largest `max_tokens` the model accepts, if known.
    pub max_output_tokens: Option<u64>,
    /// Context window in tokens, if known.
    pub context_window: Option<u64>,
    /// Surcharge in percent on every token rate when the call goes to one of OpenAI's
    /// data-residency endpoints (`eu.api.openai.com`, …), if the data lists one.
    pub regional_uplift_percent: Option<u32>,
}

impl TokenRates {
    /// Every rate raised by `percent`, rounded up to a whole pico-USD.
    fn raised(&self, percent: u32) -> TokenRates {
        let up = |r: PicoUsd| {
            let scaled = u128::from(r) * u128::from(100 + percent);
            PicoUsd::try_from(scaled.div_ceil(100)).unwrap_or(PicoUsd::MAX)
        };
        TokenRates {
            input: up(self.input),
            cached_input: up(self.cached_input),
            cache_write_5m: up(self.cache_write_5m),
            cache_write_1h: up(self.cache_write_1h),
            output: up(self.output),
            input_audio: up(self.input_audio),
            cached_input_audio: up(self.cached_input_audio),
            output_audio: up(self.output_audio),
        }
    }
}

impl ModelPrice {
    /// The price of a call sent to one of OpenAI's data-residency endpoints: every token rate (of
    /// every tier) raised by the model's [`ModelPrice::regional_uplift_percent`]; the same price
    /// when it lists none. Search fees are unchanged.
    pub fn on_regional_endpoint(&self) -> ModelPrice {
        let Some(percent) = self.regional_uplift_percent.filter(|&p| p > 0) else {
            return self.clone();
        };
        let long = |t: &Option<LongContextTier>| {
            t.map(|t| LongContextTier {
                above_input_tokens: t.above_input_tokens,
                rates: t.rates.raised(percent),
            })
        };
        let tier = |t: &Option<TierPrice>| {
            t.map(|t| TierPrice {
                rates: t.rates.raised(percent),
                long_context: long(&t.long_context),
            })
        };
        ModelPrice {
            rates: self.rates.raised(percent),
            long_context: long(&self.long_context),
            priority: tier(&self.priority),
            flex: tier(&self.flex),
            ..self.clone()
        }
    }

    /// The rates that apply to a request with `total_input_tokens` input tokens of all kinds.
    pub fn rates_for(&self, total_input_tokens: u64) -> &TokenRates {
        match &self.long_context {
            Some(tier) if total_input_tokens > tier.above_input_tokens => &tier.rates,
            _ => &self.rates,
        }
    }

    /// The rates of service tier `tier` for a request with `total_input_tokens` input tokens of
    /// all kinds: `None` when the data has no rates for that tier, or none for that input size
    /// (above the long-context threshold, where the tier lists no long-context rates).
    pub fn tier_rates_for(
        &self,
        tier: ServiceTier,
        total_input_tokens: u64,
    ) -> Option<&TokenRates> {
        let t = match tier {
            ServiceTier::Standard => return Some(self.rates_for(total_input_tokens)),
            ServiceTier::Priority => self.priority.as_ref()?,
            ServiceTier::Flex => self.flex.as_ref()?,
            ServiceTier::Ultrafast => return None,
        };
        if let Some(lc) = &t.long_context {
            if total_input_tokens > lc.above_input_tokens {
                return Some(&lc.rates);
            }
        }
        match &self.long_context {
            Some(lc) if total_input_tokens > lc.above_input_tokens => None,
            _ => Some(&t.rates),
        }
    }

    /// The rates an answer served at `tier` is billed at: the tier's, or the standard rates when
    /// the data has none for it (a flex call is then charged more than it cost, a priority call
    /// less: see the budget hold, which refuses to hold priority calls it has no rates for).
    pub fn billed_rates(&self, tier: ServiceTier, total_input_tokens: u64) -> &TokenRates {
        self.tier_rates_for(tier, total_input_tokens)
            // Ultrafast costs more than priority: at least the priority rates where known.
            .or_else(|| {
                (tier == ServiceTier::Ultrafast)
                    .then(|| self.tier_rates_for(ServiceTier::Priority, total_input_tokens))
                    .flatten()
            })
            .unwrap_or_else(|| self.rates_for(total_input_tokens))
    }
}

/// A price given in USD per 1M tokens could not be accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidPrice {
    /// Which model and field the value was for.
    pub what: String,
    /// The rejected value.
    pub value: f64,
}

impl fmt::Display for InvalidPrice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid price {} for {}: expected a finite USD-per-1M-tokens value between 0 and 1000000",
            self.value, self.what
        )
    }
}

impl std::error::Error for InvalidPrice {}

/// Converts USD per 1M tokens to pico-USD per token, once, at the API boundary.
pub fn usd_per_mtok_to_pico(usd_per_mtok: f64, what: &str) -> Result<PicoUsd, InvalidPrice> {
    let pico = usd_per_mtok * 1e6;
    if !pico.is_finite() || pico < 0.0 || pico > MAX_RATE_PICO as f64 {
        return Err(InvalidPrice {
            what: what.to_string(),
            value: usd_per_mtok,
        });
    }
    // Rounded to the nearest pico-USD: every published price is a whole number of them.
    Ok(pico.round() as PicoUsd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_defaults_follow_published_multipliers() {
        let r = PartialRates {
            input: 3_000_000,
            output: Some(15_000_000),
            ..Default::default()
        }
        .resolve(Provider::Anthropic);
        assert_eq!(r.cache_write_5m, 3_750_000);
        assert_eq!(r.cache_write_1h, 6_000_000);
        assert_eq!(r.cached_input, 300_000);
        assert_eq!(r.output, 15_000_000);
    }

    #[test]
    fn openai_defaults_never_discount_and_missing_output_is_free() {
        let r = PartialRates {
            input: 20_000,
            ..Default::default()
        }
        .resolve(Provider::OpenAi);
        assert_eq!(
            (r.cached_input, r.cache_write_5m, r.cache_write_1h, r.output),
            (20_000, 20_000, 40_000, 0)
        );
    }

    #[test]
    fn audio_rates_default_to_text_rates_unless_listed() {
        let text_only = PartialRates {
            input: 2_500_000,
            cached_input: Some(1_250_000),
            output: Some(10_000_000),
            ..Default::default()
        }
        .resolve(Provider::OpenAi);
        assert_eq!(
            (
                text_only.input_audio,
                text_only.cached_input_audio,
                text_only.output_audio
            ),
            (2_500_000, 1_250_000, 10_000_000)
        );
        // A listed audio input rate without a cached one: no discount the source does not list.
        let audio = PartialRates {
            input: 2_500_000,
            cached_input: Some(1_250_000),
            output: Some(10_000_000),
            input_audio: Some(32_000_000),
            output_audio: Some(64_000_000),
            ..Default::default()
        }
        .resolve(Provider::OpenAi);
        assert_eq!(
            (
                audio.input_audio,
                audio.cached_input_audio,
                audio.output_audio
            ),
            (32_000_000, 32_000_000, 64_000_000)
        );
    }

    #[test]
    fn a_tier_name_is_read_in_any_case() {
        for (name, tier) in [
            ("priority", ServiceTier::Priority),
            ("Priority", ServiceTier::Priority),
            (" PRIORITY ", ServiceTier::Priority),
            ("Flex", ServiceTier::Flex),
            ("auto", ServiceTier::Standard),
            ("scale", ServiceTier::Standard),
            ("priority-ish", ServiceTier::Standard),
            // Priority processing was renamed Fast mode; both names are accepted.
            ("fast", ServiceTier::Priority),
            ("Fast", ServiceTier::Priority),
            ("ultrafast", ServiceTier::Ultrafast),
        ] {
            assert_eq!(ServiceTier::parse(name), tier, "{name:?}");
        }
    }

    #[test]
    fn usd_conversion_is_exact_and_rejects_nonsense() {
        assert_eq!(usd_per_mtok_to_pico(2.5, "x"), Ok(2_500_000));
        assert_eq!(usd_per_mtok_to_pico(0.075, "x"), Ok(75_000));
        assert_eq!(usd_per_mtok_to_pico(0.0, "x"), Ok(0));
        for bad in [-1.0, f64::NAN, f64::INFINITY, 2e6] {
            assert!(usd_per_mtok_to_pico(bad, "m.input").is_err(), "{bad}");
        }
    }

    #[test]
    fn long_context_tier_applies_strictly_above_threshold() {
        let tier_rates = TokenRates {
            input: 2,
            ..Default::default()
        };
        let p = ModelPrice {
            id: "m".into(),
            provider: Provider::Anthropic,
            rates: TokenRates {
                input: 1,
                ..Default::default()
            },
            long_context: Some(LongContextTier {
                above_input_tokens: 200_000,
                rates: tier_rates,
            }),
            priority: None,
            flex: None,
            web_search: None,
            max_output_tokens: None,
            context_window: None,
            regional_uplift_percent: None,
        };
        assert_eq!(p.rates_for(200_000).input, 1);
        assert_eq!(p.rates_for(200_001).input, 2);
    }
}
