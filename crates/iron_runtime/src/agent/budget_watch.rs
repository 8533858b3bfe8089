//! Watches one agent's router events: records last activity, notices an exhausted budget, and with
//! `onBudgetExhausted: 'stop'` asks the supervisor to stop the agent, saying why.
//!
//! A refused call alone is not exhaustion: a call without `max_tokens` can be refused with nearly
//! all the budget left, and the agent may go on with a cheaper one. The budget is exhausted when
//! - spent reaches it, or
//! - a call is refused for it, nothing else holds budget, and what is left is less than the
//!   cheapest call the refused call's model can make (one short message, one output token), or
//! - [`REFUSALS_IN_A_ROW`] calls in a row are refused for it (no call let through in between,
//!   nothing else holding budget): the agent is not getting anywhere with what is left.

use super::spec::BudgetAction;
use super::supervised::{StopRequest, SupervisedAgent};
use crate::events::{RouterEvent, Subscription};
use crate::provider::Provider;
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Budget refusals in a row, with nothing else holding budget, that count as exhaustion (the
/// router's `exceeded` event uses the same count).
pub const REFUSALS_IN_A_ROW: u32 = iron_cost::REFUSALS_IN_A_ROW;

/// Requests remembered for their model until they are answered or refused (bounded: an agent
/// with more calls in flight than this loses the cheapest-call rule for the excess, nothing else).
const MAX_TRACKED: usize = 4096;

/// Why the budget counts as exhausted.
enum Exhausted {
    /// Spent reached the budget.
    Spent,
    /// What is left is less than the cheapest call of `model` (`min` micro-USD).
    BelowCheapest { model: String, min: u64 },
    /// Calls in a row were refused for the budget.
    Refusals(u32),
}

/// Run until `cancel` fires (the agent finished).
pub(crate) async fn watch_router(
    agent: Arc<SupervisedAgent>,
    mut events: Subscription,
    cancel: CancellationToken,
) {
    let mut models: HashMap<u64, (Option<String>, Option<String>)> = HashMap::new();
    let mut refused_in_a_row = 0u32;
    // A budget spent in earlier runs (restored from the state file) is exhausted from the start:
    // its `exceeded` event came while the router was built, before this watched.
    let b = agent.budget_status();
    if b.limit_micros.is_some_and(|limit| b.spent_micros >= limit) {
        on_exhausted(&agent, Exhausted::Spent);
    }
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            e = events.recv() => match e {
                Some(e) => e,
                None => return,
            },
        };
        match &**event {
            RouterEvent::Request {
                request_id,
                ts_ms,
                provider,
                model,
                ..
            } => {
                agent.state().last_activity_ms = Some(*ts_ms);
                if models.len() >= MAX_TRACKED {
                    models.clear();
                }
                models.insert(*request_id, (provider.clone(), model.clone()));
            }
            RouterEvent::Response {
                request_id, ts_ms, ..
            } => {
                agent.state().last_activity_ms = Some(*ts_ms);
                models.remove(request_id);
                refused_in_a_row = 0;
            }
            // The router's `exceeded` follows the same rules as below; only the spent case is taken
            // from it, the refusal that follows it says which other rule applied.
            RouterEvent::Budget {
                level,
                spent_usd,
                limit_usd,
                ..
            } if level == "exceeded" && spent_usd >= limit_usd => {
                on_exhausted(&agent, Exhausted::Spent)
            }
            RouterEvent::Blocked {
                request_id,
                ts_ms,
                reason,
                code,
                ..
            } => {
                let seen = models.remove(request_id);
                if reason != "budget" {
                    continue;
                }
                agent.state().last_activity_ms = Some(*ts_ms);
                // Only a call that did not fit what is left (not an unpriced model, an unreadable body).
                if code != "BUDGET_EXCEEDED" {
                    continue;
                }
                if let Some(why) = after_refusal(&agent, seen, &mut refused_in_a_row) {
                    on_exhausted(&agent, why);
                }
            }
            _ => {}
        }
    }
}

/// Whether a budget refusal leaves the budget exhausted.
fn after_refusal(
    agent: &SupervisedAgent,
    seen: Option<(Option<String>, Option<String>)>,
    refused_in_a_row: &mut u32,
) -> Option<Exhausted> {
    let b = agent.budget_status();
    let limit = b.limit_micros?;
    if b.spent_micros >= limit {
        return Some(Exhausted::Spent);
    }
    // Calls in flight hold budget they may give back: a refusal now says little.
    if b.reserved_micros > 0 {
        *refused_in_a_row = 0;
        return None;
    }
    *refused_in_a_row += 1;
    let left = limit - b.spent_micros;
    if let Some((provider, Some(model))) = seen {
        if let Some(min) = cheapest_call(agent, provider.as_deref(), &model) {
            if left < min {
                return Some(Exhausted::BelowCheapest { model, min });
            }
        }
    }
    (*refused_in_a_row >= REFUSALS_IN_A_ROW).then_some(Exhausted::Refusals(*refused_in_a_row))
}

/// The hold of the smallest call `model` can make (one short user message, `max_tokens: 1`), in
/// micro-USD; `None` for a model the router cannot price.
fn cheapest_call(agent: &SupervisedAgent, provider: Option<&str>, model: &str) -> Option<u64> {
    let router = agent.router()?;
    let provider = provider
        .and_then(Provider::parse)
        .or_else(|| crate::provider::provider_from_model(model))
        .unwrap_or(Provider::OpenAi);
    router
        .shared()
        .policies
        .cost
        .cheapest_call_micros(provider, model)
}

fn usd(micros: u64) -> String {
    format!("${:.6}", micros as f64 / 1e6)
}

fn on_exhausted(agent: &SupervisedAgent, why: Exhausted) {
    let first = {
        let mut s = agent.state();
        let first = !s.budget_exhausted;
        s.budget_exhausted = true;
        first && !s.stop_requested
    };
    if !first || agent.spec.on_budget_exhausted != BudgetAction::Stop {
        return;
    }
    let b = agent.budget_status();
    let limit = b.limit_micros.unwrap_or(0);
    let left = usd(limit.saturating_sub(b.spent_micros));
    let detail = match why {
        Exhausted::Spent => String::new(),
        Exhausted::BelowCheapest { model, min } => format!(
            "; the {left} left is less than the cheapest call to {model} ({})",
            usd(min)
        ),
        Exhausted::Refusals(n) => {
            format!("; {n} calls in a row were refused: each could cost more than the {left} left")
        }
    };
    let reason = format!(
        "budget exhausted: {} spent of {}{detail} (onBudgetExhausted: 'stop'); raise budgetUsd to let it run longer",
        usd(b.spent_micros),
        usd(limit)
    );
    agent.request_stop(StopRequest::new(agent.spec.grace, reason));
}
