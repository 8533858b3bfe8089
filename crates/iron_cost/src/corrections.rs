//! Deliberate fixes for known errors in public price maps, applied after the data file loads.
//!
//! Each entry pins one rate of one catalog id to the provider's published price. The current
//! data source may already agree; the entries stay so a regression in the source cannot
//! silently come back.

use crate::price::{LongContextTier, ModelPrice, PicoUsd, TokenRates};

/// Which rate a correction sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateField {
    /// Uncached input.
    Input,
    /// Cache read.
    CachedInput,
    /// 5-minute cache write.
    CacheWrite5m,
    /// 1-hour cache write.
    CacheWrite1h,
    /// Output.
    Output,
}

/// One corrected rate, with the reason it differs from some public maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Correction {
    /// Catalog id the correction applies to.
    pub model: &'static str,
    /// The rate being set.
    pub field: RateField,
    /// The correct rate in pico-USD per token.
    pub pico: PicoUsd,
    /// Why, with the source of the correct figure.
    pub reason: &'static str,
}

const HAIKU_35: &str =
    "Anthropic pricing page lists Claude Haiku 3.5 at $0.80 in / $4 out; LiteLLM's \
                        claude-3-5-haiku-latest entry shows $1 / $5";
const ONE_HOUR: &str =
    "Anthropic pricing page: 1-hour cache writes cost 2x base input; some maps list \
                        the 5-minute figure or another multiple";

/// The corrections, applied in order.
pub const CORRECTIONS: &[Correction] = &[
    Correction {
        model: "claude-3-haiku",
        field: RateField::CacheWrite1h,
        pico: 500_000,
        reason: ONE_HOUR,
    },
    Correction {
        model: "claude-3-opus-latest",
        field: RateField::CacheWrite1h,
        pico: 30_000_000,
        reason: ONE_HOUR,
    },
    Correction {
        model: "claude-3-5-haiku-latest",
        field: RateField::Input,
        pico: 800_000,
        reason: HAIKU_35,
    },
    Correction {
        model: "claude-3-5-haiku-latest",
        field: RateField::Output,
        pico: 4_000_000,
        reason: HAIKU_35,
    },
    Correction {
        model: "claude-3-5-haiku-latest",
        field: RateField::CacheWrite5m,
        pico: 1_000_000,
        reason: HAIKU_35,
    },
    Correction {
        model: "claude-3-5-haiku-latest",
        field: RateField::CacheWrite1h,
        pico: 1_600_000,
        reason: HAIKU_35,
    },
    Correction {
        model: "claude-3-5-haiku-latest",
        field: RateField::CachedInput,
        pico: 80_000,
        reason: HAIKU_35,
    },
];

/// A long-context tier some public maps leave out, pinned like [`Correction`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierCorrection {
    /// Catalog id the tier belongs to.
    pub model: &'static str,
    /// The tier (it replaces whatever tier the data file gives the model).
    pub tier: LongContextTier,
    /// Why, with the source of the figures.
    pub reason: &'static str,
}

/// The long-context tiers, applied after [`CORRECTIONS`].
pub const TIER_CORRECTIONS: &[TierCorrection] = &[TierCorrection {
    model: "claude-sonnet-4-0",
    tier: LongContextTier {
        above_input_tokens: 200_000,
        rates: TokenRates {
            input: 6_000_000,
            cached_input: 600_000,
            cache_write_5m: 7_500_000,
            cache_write_1h: 12_000_000,
            output: 22_500_000,
            // No audio rates of its own: audio at the text rates, as the catalog fills them.
            input_audio: 6_000_000,
            cached_input_audio: 600_000,
            output_audio: 22_500_000,
        },
    },
    reason:
        "Anthropic pricing page: Claude Sonnet 4 and 4.5 with more than 200K input tokens \
             (1M-context beta) cost $6 in / $22.50 out, cache writes $7.50 (5m) / $12 (1h), cache \
             reads $0.60, for the whole request; the data source lists the tier for Sonnet 4.5 only",
}];

/// Context windows some public maps round (the budget hold caps a request's input at its model's
/// window, so a window listed too small holds too little): `(catalog id, tokens, reason)`.
pub const CONTEXT_CORRECTIONS: &[(&str, u64, &str)] = &[
    ("gpt-4.1", 1_047_576, GPT41_WINDOW),
    ("gpt-4.1-mini", 1_047_576, GPT41_WINDOW),
    ("gpt-4.1-nano", 1_047_576, GPT41_WINDOW),
];

const GPT41_WINDOW: &str =
    "OpenAI model pages: the GPT-4.1 family has a 1,047,576-token context window; some maps list 1,000,000";

/// Applies `CORRECTIONS` to the base rates of matching models, then `TIER_CORRECTIONS` and
/// `CONTEXT_CORRECTIONS`.
pub(crate) fn apply_corrections(models: &mut [ModelPrice]) {
    for (model, tokens, _) in CONTEXT_CORRECTIONS {
        for m in models.iter_mut().filter(|m| m.id == *model) {
            m.context_window = Some(*tokens);
        }
    }
    for t in TIER_CORRECTIONS {
        for m in models.iter_mut().filter(|m| m.id == t.model) {
            m.long_context = Some(t.tier);
        }
    }
    for c in CORRECTIONS {
        for m in models.iter_mut().filter(|m| m.id == c.model) {
            let slot = match c.field {
                RateField::Input => &mut m.rates.input,
                RateField::CachedInput => &mut m.rates.cached_input,
                RateField::CacheWrite5m => &mut m.rates.cache_write_5m,
                RateField::CacheWrite1h => &mut m.rates.cache_write_1h,
                RateField::Output => &mut m.rates.output,
            };
            *slot = c.pico;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    /// A data file carrying the wrong figures some public maps publish.
    const WRONG: &str = r#"{"models":{
      "claude-3-haiku":{"provider":"anthropic","input":250000,"output":1250000,"cache_write_1h":300000},
      "claude-3-opus-latest":{"provider":"anthropic","input":15000000,"output":75000000,"cache_write_1h":18750000},
      "claude-3-5-haiku-latest":{"provider":"anthropic","input":1000000,"output":5000000,"cache_write_5m":1250000,
        "cache_write_1h":2000000,"cached_input":100000,"prefixes":["claude-3-5-haiku"]}}}"#;

    #[test]
    fn every_correction_applies_to_wrong_source_data() {
        let catalog = Catalog::from_json(WRONG).expect("test data parses");
        for c in CORRECTIONS {
            let m = catalog.price(c.model).expect(c.model);
            let got = match c.field {
                RateField::Input => m.rates.input,
                RateField::CachedInput => m.rates.cached_input,
                RateField::CacheWrite5m => m.rates.cache_write_5m,
                RateField::CacheWrite1h => m.rates.cache_write_1h,
                RateField::Output => m.rates.output,
            };
            assert_eq!(got, c.pico, "{} {:?}: {}", c.model, c.field, c.reason);
        }
    }

    #[test]
    fn corrected_figures_match_the_published_prices() {
        let c = Catalog::builtin();
        let haiku35 = c
            .price("claude-3-5-haiku-20241022")
            .expect("haiku 3.5 priced");
        assert_eq!(
            (haiku35.rates.input, haiku35.rates.output),
            (800_000, 4_000_000)
        );
        assert_eq!(
            c.price("claude-3-haiku-20240307")
                .map(|m| m.rates.cache_write_1h),
            Some(500_000)
        );
        assert_eq!(
            c.price("claude-3-opus-20240229")
                .map(|m| m.rates.cache_write_1h),
            Some(30_000_000)
        );
        // Sonnet 4 above 200k input tokens: the whole request at the long-context rates, like 4.5.
        let sonnet4 = c
            .price("claude-sonnet-4-20250514")
            .expect("sonnet 4 priced");
        let sonnet45 = c.price("claude-sonnet-4-5").expect("sonnet 4.5 priced");
        assert_eq!(sonnet4.rates_for(200_000).input, 3_000_000);
        assert_eq!(sonnet4.rates_for(200_001).input, 6_000_000);
        assert_eq!(sonnet4.rates_for(200_001).output, 22_500_000);
        assert_eq!(sonnet4.long_context, sonnet45.long_context);
        for t in TIER_CORRECTIONS {
            assert!(c.models().iter().any(|m| m.id == t.model), "{}", t.model);
        }
        for (model, tokens, _) in CONTEXT_CORRECTIONS {
            assert_eq!(
                c.price(model).and_then(|m| m.context_window),
                Some(*tokens),
                "{model}"
            );
        }
        assert_eq!(
            c.price("gpt-4.1-2025-04-14").and_then(|m| m.context_window),
            Some(1_047_576)
        );
        // Every correction names a model the catalog really has, so none is a silent no-op.
        for corr in CORRECTIONS {
            assert!(
                c.models().iter().any(|m| m.id == corr.model),
                "{}",
                corr.model
            );
        }
    }
}
