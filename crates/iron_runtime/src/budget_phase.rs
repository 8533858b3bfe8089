//! The budget phases of the request pipeline: refuse what cannot be held, hold the worst-case
//! cost before anything leaves the machine, and cap the answer at what was held.

use crate::error::RouterError;
use crate::exchange::Api;
use crate::inspect::RequestInfo;
use crate::pipeline::Denial;
use crate::provider::Provider;
use crate::server::Shared;
use bytes::Bytes;

/// What the budget phase decided for one request.
pub(crate) struct BudgetHold {
    pub(crate) price: Option<iron_cost::ModelPrice>,
    pub(crate) reservation: Option<iron_cost::Reservation>,
    pub(crate) flat_cost_micros: Option<u64>,
    /// The input the call is expected to bill (see `Exchange::estimated_input_tokens`).
    pub(crate) estimated_input_tokens: iron_cost::InputEstimate,
    /// The hold was queued to the state file (with `statePath` and `agentId`).
    pub(crate) persisted: bool,
    /// The provider bills this kind of call (not a GET, a moderation, a token count, …).
    pub(crate) billable: bool,
    /// `estimated_input_tokens` is the body's length over 4 (the hold does not estimate the
    /// input): good enough for nothing that bills; see [`estimate_from_body`].
    pub(crate) cheap_estimate: bool,
}

/// The input of a call, estimated from its body as a
/// hold would (images and audio as the hold counts them, at most the context window), and the
/// hold it would have had: for the rare call charged without its usage (a stream cut short, no
/// answer before the timeout).
pub(crate) fn estimate_from_body(
    shared: &Shared,
    api: Api,
    price: Option<&iron_cost::ModelPrice>,
    body: &[u8],
) -> Option<(iron_cost::InputEstimate, Option<u64>)> {
    // Read as the policies read it (half surrogate pairs as U+FFFD), else as any JSON reader would.
    let value = crate::unique_json::parse_unique(body)
        .or_else(|_| serde_json::from_slice::<serde_json::Value>(body))
        .ok()?;
    let kind = crate::cost_policy::api_kind(api);
    let mut est = iron_cost::estimate_input(&value, kind, price);
    let bound = iron_cost::input_bound(&value, kind, price);
    est.tokens = est.tokens.min(bound.tokens);
    est.audio_tokens = est.audio_tokens.min(est.tokens);
    let hold = price.and_then(|p| hold_amount(&shared.policies.cost, &value, kind, p).ok());
    Some((est, hold))
}

/// Phase: reserve the worst-case cost atomically (only while a budget is set); refuse with 402 when it
/// does not fit, or refuse an unpriced model unless `unknownModel` allows it. With `statePath` and
/// `agentId` the hold is written to the state file too (request `id`), until its ledger row
/// replaces it: a router killed with the call in flight leaves it there for the next to charge.
#[allow(clippy::too_many_arguments)]
pub(crate) fn reserve_budget(
    shared: &Shared,
    id: u64,
    info: &RequestInfo,
    api: Api,
    provider: Provider,
    doc: Option<&serde_json::Value>,
    body: &Bytes,
    shape: Provider,
    upstream_host: &str,
) -> Result<BudgetHold, Denial> {
    let cost = &shared.policies.cost;
    let price = info
        .model
        .as_deref()
        .and_then(|m| cost.call_price(provider, m, upstream_host));
    let mut hold = BudgetHold {
        price,
        reservation: None,
        flat_cost_micros: None,
        estimated_input_tokens: iron_cost::InputEstimate::text((body.len() as u64).div_ceil(4)),
        persisted: false,
        billable: api.is_billable(),
        cheap_estimate: true,
    };
    if !(api.is_billable() && cost.has_limit()) {
        return Ok(hold);
    }
    let value = match doc {
        Some(v) if info.is_json => v,
        // A body the router cannot read could still be one the provider bills (a repeated
        // `model` key, for one): without a hold it could overshoot the budget, so it stays here.
        _ if !body.is_empty() => {
            return Err(Denial::new(
                RouterError::BadRequestBody("it is not one JSON object with no repeated keys, so Iron Cage cannot hold budget for it and did not forward it. Send valid JSON in which no object repeats a key.".into()),
                shape,
                "invalid_body",
            ));
        }
        _ => return Ok(hold),
    };
    let kind = crate::cost_policy::api_kind(api);
    // The input's token estimate is left for the rare call charged without its usage (see
    // `estimate_from_body`): the hold below is a bound, and a call's answer reports its usage.
    let amount = match &hold.price {
        // The hold is a bound the provider cannot exceed (bytes, images, audio, context window),
        // not the estimate: concurrent calls held at a guess could overshoot together.
        Some(p) => match hold_amount(cost, value, kind, p) {
            Ok(amount) => amount,
            // A priority request for a model without priority rates: refused like other calls
            // that cannot be held; allowed, it is held (and, if the answer says priority,
            // charged) at standard rates. An ultrafast one is charged at least the priority
            // rates: held at them where the data has them.
            Err(reason) => match cost.unmetered_calls {
                crate::cost_policy::UnmeteredCalls::Allow => {
                    let input = iron_cost::input_bound(value, kind, Some(p));
                    let at = |tier| iron_cost::worst_case_micros_at(value, kind, p, input, tier);
                    let ultrafast = iron_cost::requested_service_tier(value, kind)
                        == iron_cost::ServiceTier::Ultrafast;
                    ultrafast
                        .then(|| at(iron_cost::ServiceTier::Priority))
                        .flatten()
                        .or_else(|| at(iron_cost::ServiceTier::Standard))
                        .unwrap_or(u64::MAX)
                }
                crate::cost_policy::UnmeteredCalls::Block => {
                    return Err(unmetered_denial(&reason.to_string(), shape));
                }
            },
        },
        None => match cost.unknown_model {
            crate::cost_policy::UnknownModel::Allow { cost_micros } => {
                hold.flat_cost_micros = Some(cost_micros);
                cost_micros
            }
            crate::cost_policy::UnknownModel::Block => {
                let m = info.model.as_deref().unwrap_or("(no model)");
                return Err(Denial::new(
                    RouterError::UnknownModelPrice {
                        message: format!("Iron Cage cannot price model '{m}' and a budget is set, so the call is refused (unknownModel: 'block'). Give its price with the pricing option, e.g. pricing: {{ \"{m}\": {{ input: 1.0, output: 2.0 }} }} (USD per 1M tokens), or allow it at a flat cost with unknownModel: {{ action: 'allow', costUsd: 0.01 }}."),
                    },
                    shape,
                    "budget",
                ));
            }
        },
    };
    match cost.ledger.reserve(amount) {
        Ok(r) => {
            hold.reservation = Some(r);
            hold.persisted = shared.policies.ledger.hold(
                id,
                amount,
                provider.as_str(),
                info.model.as_deref(),
                api.as_str(),
            );
        }
        Err(denied) => {
            cost.note_refusal(provider, info.model.as_deref());
            return Err(Denial::new(
                RouterError::BudgetExceeded {
                    message: format!("Iron Cage {denied}"),
                },
                shape,
                "budget",
            ));
        }
    }
    Ok(hold)
}

/// POST endpoints that never bill tokens (moderation, token counting, uploads, cancellations).
fn free_post(path: &str) -> bool {
    matches!(
        path,
        "/v1/moderations" | "/v1/responses/input_tokens" | "/v1/files" | "/v1/uploads"
    ) || path.starts_with("/v1/uploads/")
        || path.ends_with("/cancel")
}

/// Phase: while a budget is set, refuse a call whose cost cannot be held before it is sent: a
/// billable-looking endpoint the router does not price (image, audio, batch..., or an odd spelling
/// of a priced one), a provider-run tool (chat web search included), a background response,
/// Anthropic fast mode. `unmeteredCalls: 'allow'` lets them through.
pub(crate) fn refuse_unmetered(
    shared: &Shared,
    method: &axum::http::Method,
    path: &str,
    api: Api,
    doc: Option<&serde_json::Value>,
    shape: Provider,
) -> Result<(), Denial> {
    use axum::http::Method;
    let cost = &shared.policies.cost;
    if !cost.has_limit() || cost.unmetered_calls == crate::cost_policy::UnmeteredCalls::Allow {
        return Ok(());
    }
    let reason = if api.is_billable() {
        doc.and_then(|d| iron_cost::unmetered(d, crate::cost_policy::api_kind(api)))
            .map(|u| u.to_string())
    } else if api == Api::Other
        && !matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::DELETE
        )
        && !free_post(path)
    {
        let shown = crate::keys::sanitize(path);
        Some(format!("Iron Cage does not price {method} {shown} (it prices chat completions, completions, responses and embeddings on OpenAI, and messages on Anthropic, at their usual paths)"))
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(unmetered_denial(&reason, shape)),
    }
}

/// The worst case of `value` on `p`; an OpenAI request that names no tier (or `auto`) runs at the
/// project's default tier, so on a project whose default is priority it is held as priority.
fn hold_amount(
    cost: &crate::cost_policy::CostPolicy,
    value: &serde_json::Value,
    kind: iron_cost::ApiKind,
    p: &iron_cost::ModelPrice,
) -> Result<u64, iron_cost::Unmetered> {
    let openai = matches!(
        kind,
        iron_cost::ApiKind::OpenAiChat
            | iron_cost::ApiKind::OpenAiCompletions
            | iron_cost::ApiKind::OpenAiResponses
    );
    let unnamed = value
        .get("service_tier")
        .and_then(serde_json::Value::as_str)
        .is_none_or(|t| t.trim().eq_ignore_ascii_case("auto"));
    if openai && unnamed && cost.project_tier == iron_cost::ServiceTier::Priority {
        let input = iron_cost::input_bound(value, kind, Some(p));
        return iron_cost::worst_case_micros_at(
            value,
            kind,
            p,
            input,
            iron_cost::ServiceTier::Priority,
        )
        .ok_or(iron_cost::Unmetered::ServiceTier {
            tier: "priority",
            model: p.id.clone(),
        });
    }
    iron_cost::worst_case_micros(value, kind, p)
}

/// The refusal of a call whose cost cannot be held, for `reason`.
fn unmetered_denial(reason: &str, shape: Provider) -> Denial {
    Denial::new(
        RouterError::UnmeteredCall {
            message: format!("Iron Cage cannot hold budget for this call: {reason}. With a budget set such calls are refused (unmeteredCalls: 'block'); set unmeteredCalls: 'allow' to forward them anyway (an unpriced endpoint is then recorded at $0, a provider-run tool is priced from its tokens and its web search fees, without its other per-use fees, a service tier without rates and Anthropic fast mode at standard rates)."),
        },
        shape,
        "budget",
    )
}

/// The keys of an output limit, on any API.
const LIMIT_KEYS: [&str; 3] = ["max_tokens", "max_completion_tokens", "max_output_tokens"];

/// Phase: with a hold in place, a chat or Responses request that sets no output limit gets the one
/// the hold assumed (the model's maximum, else 32,768 tokens), so the answer cannot cost more than
/// was held. Raise it per model with `pricing.<model>.maxOutputTokens`, or set the limit yourself.
/// A limit of `null` is no limit (the hold assumed none): it is replaced.
pub(crate) fn cap_output(
    api: Api,
    doc: Option<&serde_json::Value>,
    hold: &BudgetHold,
    body: Bytes,
) -> Bytes {
    let (Some(_), Some(price), Some(doc)) = (&hold.reservation, &hold.price, doc) else {
        return body;
    };
    let Some(field) = iron_cost::output_limit_field(crate::cost_policy::api_kind(api)) else {
        return body;
    };
    let Some(obj) = doc.as_object() else {
        return body;
    };
    if LIMIT_KEYS
        .iter()
        .any(|k| obj.get(*k).is_some_and(|v| !v.is_null()))
    {
        return body;
    }
    let limit = iron_cost::default_output_tokens(Some(price));
    let nulls: Vec<&str> = LIMIT_KEYS
        .into_iter()
        .filter(|k| obj.contains_key(*k))
        .collect();
    if !nulls.is_empty() {
        // The `null` goes: a key written twice is read as its last copy by most parsers. Members
        // keep their order; a body that cannot be read so (it was read as `doc`) goes as `doc`.
        let value = serde_json::Value::from(limit);
        return crate::unique_json::with_first_member(&body, &nulls, field, value.clone())
            .or_else(|_| {
                let mut obj = obj.clone();
                obj.retain(|k, _| !nulls.contains(&k.as_str()));
                obj.insert(field.to_string(), value);
                serde_json::to_vec(&obj)
            })
            .map_or(body, Bytes::from);
    }
    let Some(pos) = body.iter().position(|b| *b == b'{') else {
        return body;
    };
    let rest = &body[pos + 1..];
    let empty = rest.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
    let mut out = Vec::with_capacity(body.len() + 40);
    out.extend_from_slice(&body[..=pos]);
    out.extend_from_slice(format!("\"{field}\":{limit}").as_bytes());
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(rest);
    Bytes::from(out)
}
