//! Deliberate fixes for known errors in public price maps, applied after the data file loads.
//!
//! Each entry pins one rate of one catalog id to the provider's published price. The current
//! data source may already agree; the entries stay so a regression in the source cannot
//! silently come back.

use crate::price::{ModelPrice, PicoUsd};

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

/// Applies `CORRECTIONS` to the base rates of matching models.
pub(crate) fn apply_corrections(models: &mut [ModelPrice]) {
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
