//! Settle: when a relay ends, whatever the reason, price the call from its usage, commit or release
//! its budget hold, record the breaker outcome, write the ledger row and publish the `response` event.

use crate::events::{now_ms, RouterEvent, Tokens};
use crate::exchange::Exchange;
use crate::relay::Ending;
use crate::server::Shared;
use crate::stats::ModelStats;
use iron_cost::StreamUsage;
use iron_reliability::Outcome;

/// What the relay saw of the answer, for pricing.
pub(crate) enum Metered {
    Stream(StreamUsage),
    Json(Vec<u8>),
    /// Usage already read from a parsed answer (`None`: it had none).
    Known(Option<iron_cost::Usage>),
    /// A complete answer that is not JSON: billed by the provider, its usage unknowable.
    Unreadable,
    Nothing,
}

/// Token counts above any real context window are a provider bug, not spend.
fn clamp_usage(mut u: iron_cost::Usage) -> iron_cost::Usage {
    const MAX_TOKENS: u64 = 10_000_000;
    for f in [
        &mut u.input_tokens,
        &mut u.cache_read_tokens,
        &mut u.cache_write_5m_tokens,
        &mut u.cache_write_1h_tokens,
        &mut u.output_tokens,
        &mut u.reasoning_tokens,
    ] {
        *f = (*f).min(MAX_TOKENS);
    }
    u
}

pub(crate) fn settle(
    shared: &Shared,
    ex: &mut Exchange,
    status: u16,
    ending: &Ending,
    ttft: Option<u64>,
    saw_error_event: bool,
    metered: Metered,
) -> Option<u64> {
    let success = (200..300).contains(&status);
    let ok = success && *ending == Ending::Complete && !saw_error_event;
    // A stream that ran to its end but carried the provider's error event did not complete, nor
    // did a call the provider answered with an error status (4xx, 5xx).
    let outcome = if (saw_error_event || !success) && *ending == Ending::Complete {
        "upstream_error"
    } else {
        ending.as_str()
    };
    // What the client saw: the provider's status, unless the router answered in its place.
    let shown_status = ex.client_status.unwrap_or(status);
    let kind = crate::cost_policy::api_kind(ex.api);
    // A call the provider bills by its usage: a successful POST of a metered API (a model named).
    let metered_call = success && ex.api.is_billable() && ex.model.is_some();
    // Without a budget, the hold the call would have had (read from its body when first needed).
    let mut body_hold: Option<Option<u64>> = None;
    // Usage: exact when the provider reported it; estimated for a stream cut short, and for a
    // whole answer whose usage is missing or unreadable (the provider billed it all the same).
    let (usage, estimated) = match metered {
        Metered::Stream(su) => {
            if !su.has_final_usage() {
                if let Some(body) = ex.estimate_body.take() {
                    let price = ex.price.as_ref();
                    let read =
                        crate::budget_phase::estimate_from_body(shared, ex.api, price, &body);
                    if let Some((est, _)) = read {
                        ex.estimated_input_tokens = est;
                    }
                    body_hold = Some(read.and_then(|(_, hold)| hold));
                }
            }
            let (u, est) = su.finish_with(&ex.estimated_input_tokens);
            (Some(u), est)
        }
        Metered::Json(copy) => match iron_cost::usage_from_bytes(kind, &copy) {
            Some(u) => (Some(u), false),
            // Cut short, not JSON, or whole with no usage it can read: the provider billed it.
            None => (None, metered_call),
        },
        Metered::Known(Some(u)) => (Some(u), false),
        Metered::Known(None) => (None, metered_call),
        Metered::Unreadable => (None, success),
        Metered::Nothing => (None, false),
    };
    // A broken provider could report absurd usage; no real call is larger than this.
    let usage = usage.map(clamp_usage);
    // A chat search model searches on every call, and chat usage does not count its searches.
    let searches = ex
        .model
        .as_deref()
        .map_or(0, |m| iron_cost::searches_per_call(kind, m));
    let usage = usage.map(|mut u| {
        u.web_search_requests = u.web_search_requests.max(searches);
        u
    });
    // Breaker: 5xx, broken streams, timeouts and in-stream errors are the provider's failures;
    // client aborts, clients that stopped reading, answers over the router's limits and 4xx are not. (A half-open probe that was
    // streamed counted its success at its head; only a failure still counts, see
    // `Permit::record_stream_head`.)
    if let Some(permit) = ex.permit.take() {
        let outcome = match ending {
            // An answer over the router's own size limits, or cut by its stop, is not the
            // provider failing.
            Ending::ClientAborted
            | Ending::ClientTimeout(_)
            | Ending::StreamTooLarge
            | Ending::RouterStopped => Outcome::Ignored,
            Ending::UpstreamBroken(_) | Ending::Timeout(_) => Outcome::Failure,
            _ if saw_error_event => Outcome::Failure,
            _ => iron_reliability::classify_status(status),
        };
        let _ = permit.record(outcome);
    }
    let cost = &shared.policies.cost;
    let reservation = ex.reservation.take();
    // The call's hold, or without a budget the hold it would have had.
    let mut hold = || match &reservation {
        Some(r) => Some(r.amount()),
        None => *body_hold.get_or_insert_with(|| {
            let body = ex.estimate_body.take()?;
            crate::budget_phase::estimate_from_body(shared, ex.api, ex.price.as_ref(), &body)?.1
        }),
    };
    let cost_micros = if !success {
        0
    } else if let Some(flat) = ex.flat_cost_micros {
        flat
    } else {
        match (&usage, &ex.price) {
            (Some(u), Some(p)) => {
                let seen =
                    iron_cost::cost_micros(p, crate::cost_policy::cost_provider(ex.provider), u);
                // Cut short while the model may have been thinking or speaking: the text seen says
                // nothing of the thinking or audio billed, so the hold (the most it could be) is
                // charged. Otherwise an estimate (characters over 4) can run past what the provider
                // may bill (its output stops at the `max_tokens` the hold assumed): never more than
                // the hold. Without a budget, the hold it would have had.
                match estimated.then(&mut hold).flatten() {
                    Some(h) if ex.may_reason => seen.max(h),
                    Some(h) => seen.min(h),
                    None => seen,
                }
            }
            // A whole answer cut short, or whose usage is missing or unreadable: the provider
            // billed it, we cannot see how much; charge the hold (without a budget, the hold it
            // would have had).
            (None, Some(_)) if estimated => hold().unwrap_or(0),
            _ => 0,
        }
    };
    // Usage the provider reported that costs more than the hold: the hold was meant to be a bound
    // the provider cannot bill past (so the budget cannot be overshot). What was spent is
    // recorded, but the bound was wrong: say so.
    if let (false, Some(r)) = (estimated, &reservation) {
        if success && ex.flat_cost_micros.is_none() && cost_micros > r.amount() {
            tracing::warn!(target: "iron_cage", request_id = ex.id, model = ex.model.as_deref().unwrap_or(""), hold_usd = r.amount() as f64 / 1e6, cost_usd = cost_micros as f64 / 1e6, "the provider reported usage that costs more than the call's budget hold: the full cost is recorded, so the budget can be overshot. The hold is meant to be the most the call can bill (its input and output limits at the model's prices): the model's prices may be out of date (set them with the pricing option), the answer may have run at a dearer service tier than was held (see openaiProjectServiceTier), or the provider's usage is wrong");
        }
    }
    // A metered call of a model without a price is recorded at $0: not a real $0, and said so.
    let unpriced = metered_call && ex.price.is_none() && ex.flat_cost_micros.is_none();
    if unpriced {
        let model = ex.model.as_deref().unwrap_or("");
        if cost.first_unpriced(model) {
            tracing::warn!(target: "iron_cage", model, "Iron Cage has no price for model '{model}', so its calls are recorded at $0 (unpriced: true in their response events and ledger rows) and count nothing against spent. Give its price with the pricing option, e.g. pricing: {{ '{model}': {{ input: 1.0, output: 2.0 }} }} (USD per 1M tokens). With a budget set such calls are refused, or charged unknownModel's flat cost");
        }
    }
    match reservation {
        Some(r) if !success => r.cancel(),
        r => cost.settle(r, cost_micros),
    }
    let u = usage.unwrap_or_default();
    tracing::debug!(target: "iron_cage", request_id = ex.id, model = ex.model.as_deref().unwrap_or(""), status = shown_status, cost_micros, estimated, outcome, "request settled");
    shared
        .policies
        .ledger
        .record(iron_runtime_state::RequestRow {
            ts_ms: now_ms(),
            agent_id: String::new(),
            request_id: ex.id.to_string(),
            provider: ex.provider.as_str().to_string(),
            model: ex.model.clone().unwrap_or_default(),
            api: ex.api.as_str().to_string(),
            status: shown_status,
            input_tokens: u.input_tokens,
            cache_read_tokens: u.cache_read_tokens,
            cache_write_tokens: u.cache_write_5m_tokens + u.cache_write_1h_tokens,
            output_tokens: u.output_tokens,
            reasoning_tokens: u.reasoning_tokens,
            cost_micros,
            estimated,
            unpriced,
            latency_ms: ex.started.elapsed().as_millis() as u64,
            ttft_ms: ttft,
            blocked_reason: None,
            error_code: (!ok).then(|| outcome.to_string()),
        });
    let tokens = Tokens {
        input: u.input_tokens,
        cache_read: u.cache_read_tokens,
        cache_write: u.cache_write_5m_tokens + u.cache_write_1h_tokens,
        output: u.output_tokens,
        reasoning: u.reasoning_tokens,
    };
    shared.stats.on_settled(
        ex.model.as_deref(),
        ok,
        &ModelStats {
            requests: 1,
            input_tokens: tokens.input,
            output_tokens: tokens.output,
            cache_read_tokens: tokens.cache_read,
            cache_write_tokens: tokens.cache_write,
            reasoning_tokens: tokens.reasoning,
            cost_micros,
        },
    );
    if shared.events.has_subscribers() {
        shared.events.emit(RouterEvent::Response {
            request_id: ex.id,
            ts_ms: now_ms(),
            provider: ex.provider.as_str().to_string(),
            model: ex.model.clone(),
            status: shown_status,
            tokens,
            cost_usd: cost_micros as f64 / 1e6,
            cost_micros,
            estimated,
            unpriced,
            latency_ms: ex.started.elapsed().as_millis() as u64,
            ttft_ms: ttft,
            outcome: outcome.to_string(),
        });
    }
    // What the call cost, when it is known (a priced model, or a flat cost for unknown ones).
    (ex.price.is_some() || ex.flat_cost_micros.is_some()).then_some(cost_micros)
}
