//! The price catalog: the embedded data file, deliberate corrections, and runtime overrides.

use crate::corrections::apply_corrections;
use crate::model_name::{normalize, strip_snapshot_suffix};
use crate::price::{
    usd_per_mtok_to_pico, InvalidPrice, LongContextTier, ModelPrice, PartialRates, PicoUsd,
    TierPrice, TokenRates, MAX_RATE_PICO,
};
use crate::provider::Provider;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::OnceLock;

/// Largest accepted per-search fee: $1,000 a search.
const MAX_FEE_PICO: PicoUsd = 1_000_000_000_000_000;

/// The generated price data (see `scripts/update-prices.mjs`), embedded at build time.
pub const PRICES_JSON: &str = include_str!("../data/prices.json");

/// A price for a custom or unknown model, in USD per 1M tokens as users write them.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceOverride {
    /// Model name the price applies to (matched case-insensitively, snapshot suffixes ignored).
    pub model: String,
    /// Provider serving the model (decides the defaults for missing cache rates).
    pub provider: Provider,
    /// Uncached input, USD per 1M tokens.
    pub input_per_mtok: f64,
    /// Output, USD per 1M tokens.
    pub output_per_mtok: f64,
    /// Cache read, USD per 1M tokens (default: provider rule, see `PartialRates::resolve`).
    pub cached_input_per_mtok: Option<f64>,
    /// 5-minute cache write, USD per 1M tokens (default: provider rule).
    pub cache_write_5m_per_mtok: Option<f64>,
    /// 1-hour cache write, USD per 1M tokens (default: 2× input).
    pub cache_write_1h_per_mtok: Option<f64>,
    /// Largest output the model accepts, if known.
    pub max_output_tokens: Option<u64>,
}

/// Model prices with name matching; cheap to share behind `&'static` or `Arc`.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    models: Vec<ModelPrice>,
    /// Exact names (ids and aliases) → index into `models`.
    names: HashMap<String, usize>,
    /// Prefix rules, longest first.
    prefixes: Vec<(String, usize)>,
    /// Runtime overrides by normalised name; consulted before everything else.
    overrides: HashMap<String, usize>,
    /// Where the data came from and the date its prices were picked for.
    source: String,
}

impl Catalog {
    /// The catalog built from the embedded data file, parsed once per process.
    pub fn builtin() -> &'static Catalog {
        static BUILTIN: OnceLock<Catalog> = OnceLock::new();
        // The embedded file is checked by a unit test, so the fallback is never expected;
        // it keeps a corrupted build from panicking inside the proxy.
        BUILTIN.get_or_init(|| Catalog::from_json(PRICES_JSON).unwrap_or_default())
    }

    /// Parses a price data file in the `data/prices.json` format and applies the corrections.
    pub fn from_json(text: &str) -> Result<Catalog, String> {
        let doc: Value =
            serde_json::from_str(text).map_err(|e| format!("price data is not JSON: {e}"))?;
        let models = doc
            .get("models")
            .and_then(Value::as_object)
            .ok_or("price data has no \"models\" object")?;
        let mut catalog = Catalog {
            source: format!(
                "{}{} (prices as of {})",
                doc.get("source")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown source"),
                // The second source's name and version: its first word.
                doc.get("second_source")
                    .and_then(Value::as_str)
                    .and_then(|s| s.split_whitespace().next())
                    .map(|s| format!(" and {s}"))
                    .unwrap_or_default(),
                doc.get("prices_as_of")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown date")
            ),
            ..Catalog::default()
        };
        for (id, entry) in models {
            let entry = entry
                .as_object()
                .ok_or_else(|| format!("model {id}: not an object"))?;
            let (price, aliases, prefixes) = parse_model(id, entry)?;
            catalog.insert(price, &aliases, &prefixes);
        }
        apply_corrections(&mut catalog.models);
        catalog
            .prefixes
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        Ok(catalog)
    }

    /// A copy of this catalog in which `overrides` take precedence over the data file.
    pub fn with_overrides(&self, overrides: &[PriceOverride]) -> Result<Catalog, InvalidPrice> {
        let mut out = self.clone();
        for o in overrides {
            let field = |f: &str| format!("{}.{f}", o.model);
            let opt =
                |v: Option<f64>, f: &str| v.map(|v| usd_per_mtok_to_pico(v, &field(f))).transpose();
            let partial = PartialRates {
                input: usd_per_mtok_to_pico(o.input_per_mtok, &field("input"))?,
                output: Some(usd_per_mtok_to_pico(o.output_per_mtok, &field("output"))?),
                cached_input: opt(o.cached_input_per_mtok, "cachedInput")?,
                cache_write_5m: opt(o.cache_write_5m_per_mtok, "cacheWrite5m")?,
                cache_write_1h: opt(o.cache_write_1h_per_mtok, "cacheWrite1h")?,
                ..PartialRates::default()
            };
            let name = normalize(&o.model);
            out.models.push(ModelPrice {
                id: name.clone(),
                provider: o.provider,
                rates: partial.resolve(o.provider),
                long_context: None,
                priority: None,
                flex: None,
                web_search: None,
                max_output_tokens: o.max_output_tokens,
                context_window: None,
                regional_uplift_percent: None,
            });
            out.overrides.insert(name, out.models.len() - 1);
        }
        Ok(out)
    }

    /// The price for `model`: overrides, then exact id/alias, then the longest listed prefix,
    /// then the same again with a snapshot suffix (`-20250929`, `-2024-08-06`, `-latest`) removed.
    pub fn price(&self, model: &str) -> Option<&ModelPrice> {
        let name = normalize(model);
        self.match_name(&name)
            .or_else(|| strip_snapshot_suffix(&name).and_then(|base| self.match_name(base)))
            .and_then(|i| self.models.get(i))
    }

    /// Like [`Catalog::price`], but only if the model is served by `provider` (a model name sent
    /// to the other provider's endpoint is not priced).
    pub fn price_for(&self, provider: Provider, model: &str) -> Option<&ModelPrice> {
        self.price(model).filter(|p| p.provider == provider)
    }

    /// Every priced model (base data, then overrides).
    pub fn models(&self) -> &[ModelPrice] {
        &self.models
    }

    /// Data source and price date, for logs and `iron-cage prices`.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn match_name(&self, name: &str) -> Option<usize> {
        if let Some(&i) = self.overrides.get(name).or_else(|| self.names.get(name)) {
            return Some(i);
        }
        // Prefixes are only those the data lists (e.g. `claude-sonnet-4-5`), never bare model
        // ids, so `gpt-4o-mini` can not fall through to `gpt-4o`.
        self.prefixes
            .iter()
            .find(|(p, _)| name.starts_with(p.as_str()))
            .map(|&(_, i)| i)
    }

    fn insert(&mut self, price: ModelPrice, aliases: &[String], prefixes: &[String]) {
        let index = self.models.len();
        self.names.insert(price.id.to_ascii_lowercase(), index);
        for alias in aliases {
            self.names.insert(alias.to_ascii_lowercase(), index);
        }
        for prefix in prefixes {
            self.prefixes.push((prefix.to_ascii_lowercase(), index));
        }
        self.models.push(price);
    }
}

type ParsedModel = (ModelPrice, Vec<String>, Vec<String>);

fn parse_model(id: &str, e: &Map<String, Value>) -> Result<ParsedModel, String> {
    let provider = e
        .get("provider")
        .and_then(Value::as_str)
        .and_then(Provider::parse)
        .ok_or_else(|| format!("model {id}: missing or unknown provider"))?;
    let base = parse_rates(id, e)?;
    let long_context = match e.get("long_context").and_then(Value::as_object) {
        Some(tier) => {
            let above = tier
                .get("above_input_tokens")
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("model {id}: long_context without above_input_tokens"))?;
            let t = parse_rates(id, tier)?;
            // A rate the tier does not list keeps the base's listed rate; a rate neither lists
            // is derived from the tier's input rate, so tier calls are never under-charged.
            let merged = PartialRates {
                input: t.input,
                cached_input: t.cached_input.or(base.cached_input),
                cache_write_5m: t.cache_write_5m.or(base.cache_write_5m),
                cache_write_1h: t.cache_write_1h.or(base.cache_write_1h),
                output: t.output.or(base.output),
                input_audio: t.input_audio.or(base.input_audio),
                cached_input_audio: t.cached_input_audio.or(base.cached_input_audio),
                output_audio: t.output_audio.or(base.output_audio),
            };
            Some(LongContextTier {
                above_input_tokens: above,
                rates: merged.resolve(provider),
            })
        }
        None => None,
    };
    let rates = base.resolve(provider);
    let priority = parse_service_tier(id, e, "priority", provider, &rates, long_context.as_ref())?;
    let flex = parse_service_tier(id, e, "flex", provider, &rates, long_context.as_ref())?;
    let price = ModelPrice {
        id: id.to_ascii_lowercase(),
        provider,
        rates,
        long_context,
        priority,
        flex,
        web_search: match e.get("web_search") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().filter(|&f| f <= MAX_FEE_PICO).ok_or_else(|| {
                format!(
                    "model {id}: web_search must be an integer pico-USD fee per search, got {v}"
                )
            })?),
        },
        max_output_tokens: e.get("max_output_tokens").and_then(Value::as_u64),
        context_window: e.get("context_window").and_then(Value::as_u64),
        regional_uplift_percent: match e.get("regional_uplift_percent") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .filter(|&p| p <= 100)
                    .map(|p| p as u32)
                    .ok_or_else(|| {
                        format!("model {id}: regional_uplift_percent must be a whole percent from 0 to 100, got {v}")
                    })?,
            ),
        },
    };
    Ok((price, strings(e.get("aliases")), strings(e.get("prefixes"))))
}

/// The `priority` or `flex` member of a model entry: the service tier's rates, with its own
/// `long_context` rates if any (a rate it does not list: see [`PartialRates::resolve_over`]; for
/// its long-context rates, over both the tier's rates and the standard long-context rates).
fn parse_service_tier(
    id: &str,
    e: &Map<String, Value>,
    key: &str,
    provider: Provider,
    base: &TokenRates,
    base_long_context: Option<&LongContextTier>,
) -> Result<Option<TierPrice>, String> {
    let Some(t) = e.get(key).and_then(Value::as_object) else {
        return Ok(None);
    };
    let what = format!("{id} {key}");
    let rates = parse_rates(&what, t)?.resolve_over(provider, base);
    let long_context = match t.get("long_context").and_then(Value::as_object) {
        Some(lc) => {
            let above = lc
                .get("above_input_tokens")
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("model {what}: long_context without above_input_tokens"))?;
            let standard_lc = base_long_context.map_or(base, |b| &b.rates);
            let floor = max_each(&rates, standard_lc);
            Some(LongContextTier {
                above_input_tokens: above,
                rates: parse_rates(&what, lc)?.resolve_over(provider, &floor),
            })
        }
        None => None,
    };
    Ok(Some(TierPrice {
        rates,
        long_context,
    }))
}

/// The larger of two rates for each kind of token.
fn max_each(a: &TokenRates, b: &TokenRates) -> TokenRates {
    TokenRates {
        input: a.input.max(b.input),
        cached_input: a.cached_input.max(b.cached_input),
        cache_write_5m: a.cache_write_5m.max(b.cache_write_5m),
        cache_write_1h: a.cache_write_1h.max(b.cache_write_1h),
        output: a.output.max(b.output),
        input_audio: a.input_audio.max(b.input_audio),
        cached_input_audio: a.cached_input_audio.max(b.cached_input_audio),
        output_audio: a.output_audio.max(b.output_audio),
    }
}

fn parse_rates(id: &str, e: &Map<String, Value>) -> Result<PartialRates, String> {
    let rate = |key: &str| -> Result<Option<PicoUsd>, String> {
        match e.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(r) if r <= MAX_RATE_PICO => Ok(Some(r)),
                _ => Err(format!(
                    "model {id}: {key} must be an integer pico-USD rate, got {v}"
                )),
            },
        }
    };
    Ok(PartialRates {
        input: rate("input")?.ok_or_else(|| format!("model {id}: missing input rate"))?,
        cached_input: rate("cached_input")?,
        cache_write_5m: rate("cache_write_5m")?,
        cache_write_1h: rate("cache_write_1h")?,
        output: rate("output")?,
        input_audio: rate("input_audio")?,
        cached_input_audio: rate("cached_input_audio")?,
        output_audio: rate("output_audio")?,
    })
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "catalog_tests.rs"]
mod tests;
