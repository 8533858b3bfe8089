//! Cost and budget for one router: the price catalog (with the `pricing` overrides), the budget
//! ledger, and the unknown-model rule. Reserve before forwarding, settle after relaying.

use crate::config::ConfigError;
use crate::events::{now_ms, EventBus, RouterEvent};
use crate::exchange::Api;
use crate::provider::Provider;
use iron_cost::{BudgetLedger, BudgetThreshold, Catalog, ModelPrice, PriceOverride, Reservation};
use serde::Deserialize;

/// What to do with a model the catalog cannot price while a budget is set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UnknownModel {
    /// Refuse the call (the default: an unpriced call could spend without limit).
    Block,
    /// Allow it and charge this many micro-USD per call.
    Allow { cost_micros: u64 },
}

/// What to do, while a budget is set, with a call whose cost cannot be held before it is sent
/// (an endpoint the router does not price, a provider-run tool, a background response).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UnmeteredCalls {
    /// Refuse it (the default: it could spend without limit).
    Block,
    /// Forward it: unpriced endpoints are recorded at $0, provider-run tools are held and priced
    /// from their usage, with their web search fees (their other per-use fees are not).
    Allow,
}

/// The budget and prices of one router.
pub struct CostPolicy {
    catalog: Catalog,
    pub ledger: BudgetLedger,
    pub unknown_model: UnknownModel,
    pub unmetered_calls: UnmeteredCalls,
    /// The tier OpenAI runs a request at that asks for none or for `auto`: the project's default
    /// (`openaiProjectServiceTier`), standard unless its owner changed it.
    pub project_tier: iron_cost::ServiceTier,
    events: EventBus,
    /// Models already named in the warning that their calls are recorded unpriced (at most
    /// [`MAX_UNPRICED_WARNED`]; past that, no more are named).
    unpriced_warned: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// How many unpriced models the router remembers having warned about.
const MAX_UNPRICED_WARNED: usize = 1024;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PriceOption {
    input: f64,
    output: f64,
    cached_input: Option<f64>,
    cache_write5m: Option<f64>,
    cache_write1h: Option<f64>,
    max_output_tokens: Option<u64>,
    provider: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UnknownModelOption {
    action: String,
    cost_usd: Option<f64>,
}

fn usd_to_micros(usd: f64) -> u64 {
    (usd * 1_000_000.0).round().max(0.0) as u64
}

fn cfg_err(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        message: message.into(),
    }
}

/// Provider of a `ModelPrice` in this crate's terms.
pub fn price_provider(p: &ModelPrice) -> Provider {
    match p.provider {
        iron_cost::Provider::Anthropic => Provider::Anthropic,
        iron_cost::Provider::OpenAi => Provider::OpenAi,
    }
}

/// Convert the router's provider to iron_cost's.
pub fn cost_provider(p: Provider) -> iron_cost::Provider {
    match p {
        Provider::Anthropic => iron_cost::Provider::Anthropic,
        Provider::OpenAi => iron_cost::Provider::OpenAi,
    }
}

/// Convert the router's API kind to iron_cost's.
pub fn api_kind(api: Api) -> iron_cost::ApiKind {
    use iron_cost::ApiKind as K;
    match api {
        Api::OpenAiChat => K::OpenAiChat,
        Api::OpenAiCompletions => K::OpenAiCompletions,
        Api::OpenAiResponses => K::OpenAiResponses,
        Api::OpenAiEmbeddings => K::OpenAiEmbeddings,
        Api::AnthropicMessages => K::AnthropicMessages,
        Api::AnthropicCountTokens => K::AnthropicCountTokens,
        Api::Other => K::Other,
    }
}

impl CostPolicy {
    /// Build from `budgetUsd`, `budgetWarningPercent`, `pricing`, `unknownModel` and
    /// `unmeteredCalls`.
    pub fn from_options(
        budget_usd: Option<f64>,
        warning_percent: Option<f64>,
        pricing: Option<&serde_json::Value>,
        unknown: Option<&serde_json::Value>,
        unmetered: Option<&str>,
        events: EventBus,
    ) -> Result<CostPolicy, ConfigError> {
        let mut overrides = Vec::new();
        if let Some(p) = pricing {
            let map = p.as_object().ok_or_else(|| cfg_err("pricing", "must be an object of model name → { input, output, cachedInput?, cacheWrite5m?, cacheWrite1h?, maxOutputTokens?, provider? } in USD per 1M tokens"))?;
            for (model, v) in map {
                let field = format!("pricing.{model}");
                let o: PriceOption = serde_json::from_value(v.clone())
                    .map_err(|e| cfg_err(&field, e.to_string()))?;
                let provider = match o.provider.as_deref() {
                    Some(name) => iron_cost::Provider::parse(name).ok_or_else(|| {
                        cfg_err(
                            &format!("{field}.provider"),
                            "must be 'openai' or 'anthropic'",
                        )
                    })?,
                    None => match crate::provider::provider_from_model(model) {
                        Some(p) => cost_provider(p),
                        None => iron_cost::Provider::OpenAi,
                    },
                };
                overrides.push(PriceOverride {
                    model: model.clone(),
                    provider,
                    input_per_mtok: o.input,
                    output_per_mtok: o.output,
                    cached_input_per_mtok: o.cached_input,
                    cache_write_5m_per_mtok: o.cache_write5m,
                    cache_write_1h_per_mtok: o.cache_write1h,
                    max_output_tokens: o.max_output_tokens,
                });
            }
        }
        let catalog = Catalog::builtin()
            .with_overrides(&overrides)
            .map_err(|e| cfg_err("pricing", e.to_string()))?;
        let unknown_model = match unknown {
            None => UnknownModel::Block,
            Some(serde_json::Value::String(s)) if s == "block" => UnknownModel::Block,
            Some(v) if v.is_object() => {
                let o: UnknownModelOption = serde_json::from_value(v.clone())
                    .map_err(|e| cfg_err("unknownModel", e.to_string()))?;
                match (o.action.as_str(), o.cost_usd) {
                    ("block", _) => UnknownModel::Block,
                    ("allow", Some(c)) if c.is_finite() && c >= 0.0 => UnknownModel::Allow { cost_micros: usd_to_micros(c) },
                    ("allow", _) => return Err(cfg_err("unknownModel.costUsd", "is required with action 'allow' (USD charged per call of an unpriced model)")),
                    (a, _) => return Err(cfg_err("unknownModel.action", format!("must be 'block' or 'allow', got '{a}'"))),
                }
            }
            Some(_) => {
                return Err(cfg_err(
                    "unknownModel",
                    "must be 'block' or { action: 'allow', costUsd: number }",
                ))
            }
        };
        let unmetered_calls = match unmetered {
            None | Some("block") => UnmeteredCalls::Block,
            Some("allow") => UnmeteredCalls::Allow,
            Some(other) => {
                return Err(cfg_err(
                    "unmeteredCalls",
                    format!("must be 'block' or 'allow', got '{other}'"),
                ))
            }
        };
        let ledger = BudgetLedger::new(budget_usd.map(usd_to_micros));
        if let Some(w) = warning_percent {
            if !(w.is_finite() && (1.0..=100.0).contains(&w)) {
                return Err(cfg_err(
                    "budgetWarningPercent",
                    format!("must be between 1 and 100, got {w}"),
                ));
            }
            ledger.set_warning_percent(w as u8);
        }
        Ok(CostPolicy {
            catalog,
            ledger,
            unknown_model,
            unmetered_calls,
            project_tier: iron_cost::ServiceTier::Standard,
            events,
            unpriced_warned: Default::default(),
        })
    }

    /// Sets the OpenAI project's default tier from `openaiProjectServiceTier`.
    pub fn set_project_tier(&mut self, tier: Option<&str>) -> Result<(), ConfigError> {
        self.project_tier = match tier {
            None | Some("default") => iron_cost::ServiceTier::Standard,
            // Priority processing was renamed Fast mode; either name is accepted.
            Some("priority" | "fast") => iron_cost::ServiceTier::Priority,
            Some(other) => {
                return Err(cfg_err(
                    "openaiProjectServiceTier",
                    format!("must be 'default', 'priority' or 'fast' (its newer name) (the tier your OpenAI project runs requests at that ask for none or for 'auto'), got '{other}'"),
                ))
            }
        };
        Ok(())
    }

    /// The price of `model` served by `provider`, if known.
    pub fn price(&self, provider: Provider, model: &str) -> Option<&ModelPrice> {
        self.catalog.price_for(cost_provider(provider), model)
    }

    /// The price a call of `model` is held and charged at when sent to `upstream_host`: on one of
    /// OpenAI's data-residency endpoints (`eu.api.openai.com`, …) with the surcharge the data lists
    /// for the model (see [`ModelPrice::on_regional_endpoint`]).
    pub fn call_price(
        &self,
        provider: Provider,
        model: &str,
        upstream_host: &str,
    ) -> Option<ModelPrice> {
        let price = self.price(provider, model)?;
        if provider == Provider::OpenAi && iron_cost::is_openai_data_residency_host(upstream_host) {
            Some(price.on_regional_endpoint())
        } else {
            Some(price.clone())
        }
    }

    /// True the first time `model` is named here: a call of it was recorded at $0 because it has
    /// no price (a budget refuses such calls, or charges them `unknownModel`'s flat cost).
    pub(crate) fn first_unpriced(&self, model: &str) -> bool {
        let Ok(mut warned) = self.unpriced_warned.lock() else {
            return false;
        };
        if warned.len() >= MAX_UNPRICED_WARNED || warned.contains(model) {
            return false;
        }
        warned.insert(model.to_string())
    }

    /// The hold of the smallest call `model` can make (one short user message, `max_tokens: 1`),
    /// in micro-USD; `None` for a model without a price.
    pub fn cheapest_call_micros(&self, provider: Provider, model: &str) -> Option<u64> {
        let price = self.price(provider, model)?;
        let body = serde_json::json!({
            "model": model,
            "max_tokens": 1,
            "messages": [{ "role": "user", "content": "." }],
        });
        let kind = match price.provider {
            iron_cost::Provider::Anthropic => iron_cost::ApiKind::AnthropicMessages,
            _ => iron_cost::ApiKind::OpenAiChat,
        };
        iron_cost::worst_case_micros(&body, kind, price).ok()
    }

    /// A call was refused for the budget: publish `exceeded` when that makes it exhausted (see
    /// [`iron_cost::BudgetLedger::refused`]).
    pub fn note_refusal(&self, provider: Provider, model: Option<&str>) {
        let cheapest = model.and_then(|m| self.cheapest_call_micros(provider, m));
        let t = self.ledger.refused(cheapest);
        if !t.is_empty() {
            self.report(t);
        }
    }

    /// True when a limit is set (only then are calls reserved before forwarding).
    pub fn has_limit(&self) -> bool {
        self.ledger.status().limit.is_some()
    }

    /// Publish threshold crossings as `budget` events.
    pub fn report(&self, thresholds: Vec<BudgetThreshold>) {
        for t in thresholds {
            let (level, spent, limit) = match t {
                BudgetThreshold::Warning { spent, limit } => ("warning", spent, limit),
                BudgetThreshold::Exceeded { spent, limit } => ("exceeded", spent, limit),
            };
            let percent = if limit == 0 {
                100.0
            } else {
                spent as f64 * 100.0 / limit as f64
            };
            self.events.emit(RouterEvent::Budget {
                ts_ms: now_ms(),
                level: level.into(),
                spent_usd: spent as f64 / 1e6,
                limit_usd: limit as f64 / 1e6,
                percent,
            });
        }
    }

    /// Commit `actual` against a reservation, or add it directly when nothing was reserved.
    pub fn settle(&self, reservation: Option<Reservation>, actual: u64) {
        let t = match reservation {
            Some(r) => r.commit(actual),
            None => self.ledger.add_spent(actual),
        };
        if !t.is_empty() {
            self.report(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_residency_endpoint_raises_the_price_of_the_models_that_list_a_surcharge() {
        let cost = CostPolicy::from_options(None, None, None, None, None, EventBus::new(16))
            .expect("policy");
        let at = |model: &str, host: &str| {
            cost.call_price(Provider::OpenAi, model, host)
                .expect(model)
                .rates
        };
        let global = at("gpt-5.4", "api.openai.com");
        let eu = at("gpt-5.4", "eu.api.openai.com");
        // gpt-5.4: $2.50 in, $15 out per 1M tokens; 10% more on a data-residency endpoint.
        assert_eq!((global.input, global.output), (2_500_000, 15_000_000));
        assert_eq!((eu.input, eu.output), (2_750_000, 16_500_000));
        assert_eq!(at("gpt-5.4", "us.api.openai.com:443"), eu);
        // A model without a surcharge, and any other host, keep the standard price.
        assert_eq!(
            at("gpt-4o", "eu.api.openai.com"),
            at("gpt-4o", "api.openai.com")
        );
        assert_eq!(at("gpt-5.4", "127.0.0.1:8080"), global);
    }
}
