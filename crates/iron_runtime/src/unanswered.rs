//! A call the provider received but did not answer (within the first-byte timeout, or its
//! connection failed after the request was written): it may still be generating (and billing) it,
//! so it is charged, and reported as a failed call with its cost.

use crate::events::{now_ms, RouterEvent};
use crate::exchange::Api;
use crate::pipeline::{Denial, Seen};
use crate::provider::Provider;
use crate::server::Shared;
use axum::body::Body;
use axum::http::Response;
use std::time::Instant;

/// What a call that got no answer was charged, and the input tokens that charge assumes.
#[derive(Clone, Copy)]
pub(crate) struct Charged {
    pub(crate) cost_micros: u64,
    pub(crate) input_tokens: u64,
    /// The model has no price (and no flat cost): charged nothing whatever it cost.
    pub(crate) unpriced: bool,
}

/// Charges a call the provider received but did not answer within the timeout: it may still be
/// working on it, and bills it (a whole answer is generated before its head is sent, whether
/// anyone waits for it). A whole answer is charged its hold, as a whole answer cut short is
/// (without a budget, the hold it would have had); a stream, whose head comes before the first
/// token, its estimated input. A call the provider does not bill (a token count, a moderation)
/// and a model without a price are charged nothing.
pub(crate) fn charge_unanswered(
    shared: &Shared,
    hold: crate::budget_phase::BudgetHold,
    stream: bool,
    provider: Provider,
    api: Api,
    body: Option<&[u8]>,
) -> Option<Charged> {
    if !hold.billable {
        return None;
    }
    // A body no JSON reader takes is estimated from its length (its hold, if any, still settles).
    let (est, would_hold) = match body {
        Some(b) if hold.cheap_estimate => {
            crate::budget_phase::estimate_from_body(shared, api, hold.price.as_ref(), b)
                .unwrap_or((hold.estimated_input_tokens, None))
        }
        _ => (hold.estimated_input_tokens, None),
    };
    let reservation = hold.reservation;
    let input_cost = hold.price.as_ref().map_or(0, |p| {
        let usage = iron_cost::Usage {
            input_tokens: est.tokens,
            input_audio_tokens: est.audio_tokens.min(est.tokens),
            service_tier: est.service_tier,
            us_only: est.us_only,
            ..iron_cost::Usage::default()
        };
        iron_cost::cost_micros(p, crate::cost_policy::cost_provider(provider), &usage)
    });
    let cost_micros = if let Some(flat) = hold.flat_cost_micros {
        flat
    } else if !stream {
        match &reservation {
            Some(r) => r.amount(),
            None => would_hold.unwrap_or(input_cost),
        }
    } else {
        input_cost
    };
    shared.policies.cost.settle(reservation, cost_micros);
    Some(Charged {
        cost_micros,
        input_tokens: est.tokens,
        unpriced: hold.price.is_none() && hold.flat_cost_micros.is_none(),
    })
}

/// The answer to a call the provider got but did not answer in time, which was charged
/// (`charge_unanswered`): not a refusal by the router but a failed call, reported as one (a
/// `response` event with outcome `timeout`, a ledger row with its charge, `stats().failed`), with
/// the timeout's 504 and what it cost.
pub(crate) fn answer_unanswered(
    shared: &Shared,
    id: u64,
    seen: &Seen,
    d: Denial,
    started: Instant,
) -> Response<Body> {
    let charged = seen.charged.unwrap_or(Charged {
        cost_micros: 0,
        input_tokens: 0,
        unpriced: false,
    });
    let status = d.error.status(d.shape).as_u16();
    let latency_ms = started.elapsed().as_millis() as u64;
    // No answer within the first-byte timeout, a connection that failed after the request was
    // written, or a stop that did not wait for the answer: the provider may have the call.
    let outcome = match d.error {
        crate::error::RouterError::RouterStopped => "router_stopped",
        crate::error::RouterError::UpstreamTimeout { .. } => "timeout",
        _ => "upstream_error",
    };
    tracing::info!(target: "iron_cage", request_id = id, cost_micros = charged.cost_micros, outcome, message = %d.error, "no answer; the provider may have the call, so it is charged");
    shared.stats.on_settled(
        seen.model.as_deref(),
        false,
        &crate::stats::ModelStats {
            requests: 1,
            input_tokens: charged.input_tokens,
            cost_micros: charged.cost_micros,
            ..Default::default()
        },
    );
    let row = seen.row(id, status, latency_ms);
    let provider = row.provider.clone();
    shared
        .policies
        .ledger
        .record(iron_runtime_state::RequestRow {
            input_tokens: charged.input_tokens,
            cost_micros: charged.cost_micros,
            estimated: true,
            unpriced: charged.unpriced,
            error_code: Some(outcome.to_string()),
            ..row
        });
    if shared.events.has_subscribers() {
        shared.events.emit(RouterEvent::Response {
            request_id: id,
            ts_ms: now_ms(),
            provider,
            model: seen.model.clone(),
            status,
            tokens: crate::events::Tokens {
                input: charged.input_tokens,
                ..Default::default()
            },
            cost_usd: charged.cost_micros as f64 / 1e6,
            cost_micros: charged.cost_micros,
            estimated: true,
            unpriced: charged.unpriced,
            latency_ms,
            ttft_ms: None,
            outcome: outcome.to_string(),
        });
    }
    let mut resp = d.error.into_response(d.shape);
    let h = resp.headers_mut();
    h.insert(
        crate::relay::REQUEST_ID_HEADER,
        axum::http::HeaderValue::from(id),
    );
    crate::relay::set_cost_header(h, charged.cost_micros);
    // Another attempt would be a second call the provider bills.
    h.insert(
        "x-should-retry",
        axum::http::HeaderValue::from_static("false"),
    );
    resp
}
