//! The request pipeline as named phases, top to bottom:
//! accept → auth → route → read body → key → mismatch → (input safety → budget → breaker) → forward → relay.
//! The accept phase lives in `accept.rs`, the budget phases in `budget_phase.rs`, relay and settle in
//! `relay.rs`.

use crate::budget_phase::{cap_output, refuse_unmetered, reserve_budget};
use crate::error::RouterError;
use crate::events::{now_ms, RouterEvent};
use crate::exchange::{Api, Exchange};
use crate::forward;
use crate::inspect::{inject_include_usage, inspect, RequestInfo};
use crate::provider::{
    normalise_path, provider_from_model, provider_from_path, strip_provider_prefix, Provider,
};
use crate::relay;
use crate::request_body::read_body;
use crate::server::Shared;
use crate::unanswered::{answer_unanswered, charge_unanswered, Charged};
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use bytes::Bytes;
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::accept::host_is_local;

/// A request the router refuses itself, with the reason category used in events and stats.
pub struct Denial {
    pub error: RouterError,
    pub shape: Provider,
    pub reason: &'static str,
    /// The router already retried this call: the SDK is told not to retry it again on top.
    pub retried: bool,
    /// The provider got the call and never answered in time: it may be billing it.
    pub unanswered: bool,
}

impl Denial {
    pub(crate) fn new(error: RouterError, shape: Provider, reason: &'static str) -> Self {
        Denial {
            error,
            shape,
            reason,
            retried: false,
            unanswered: false,
        }
    }
}

/// Entry point for every HTTP request.
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    if let Err(d) = crate::accept::accept_filter(&shared, &req) {
        return crate::accept::refuse(&shared, d);
    }
    let origin = crate::browser::allowed_origin(req.headers(), &shared.cfg.allowed_origins)
        .map(str::to_string);
    if let Some(o) = &origin {
        if crate::browser::is_preflight(req.method()) {
            return crate::browser::preflight(o);
        }
    }
    let mut resp = route(shared, req, peer).await;
    if let Some(o) = &origin {
        crate::browser::decorate(&mut resp, o);
    }
    resp
}

async fn route(shared: Arc<Shared>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let path = req.uri().path();
    if path == "/" {
        return text(StatusCode::OK, "LlmRouter OK");
    }
    if path.starts_with("/_iron/") {
        return crate::internal::handle(shared, req, peer).await;
    }
    let id = shared.next_request_id.fetch_add(1, Ordering::Relaxed);
    // A client that leaves before the answer must not cancel the call half-way: see `run_to_end`.
    let call = crate::run_to_end::RunToEnd::new(async move {
        let _in_flight = shared.calls.enter();
        proxy_and_account(shared.clone(), req, peer, id).await
    });
    call.await.unwrap_or_else(|_| {
        RouterError::Internal("the request task failed".into()).into_response(Provider::OpenAi)
    })
}

async fn proxy_and_account(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    peer: SocketAddr,
    id: u64,
) -> Response<Body> {
    let started = Instant::now();
    let mut seen = Seen::default();
    match proxy(&shared, req, id, &mut seen).await {
        Ok(resp) => resp,
        Err(d) if seen.charged.is_some() => answer_unanswered(&shared, id, &seen, d, started),
        // A request without the token costs no disk (anyone on the machine can send them);
        // `stats().blockedByReason.auth` and the metrics count them. Their log line and `blocked`
        // event come at most once a second, so a loop of them cannot crowd real events out.
        Err(mut d) if d.reason == "auth" => {
            if let Some(wait) = shared.auth_limit.on_failure(peer.ip()) {
                d = Denial::new(RouterError::too_many_auth_failures(wait), d.shape, "auth");
            }
            crate::accept::refuse_untrusted(&shared, id, d, || {
                tracing::warn!(target: "iron_cage", peer = %peer.ip(), "request with a wrong or missing Iron Cage token");
            })
        }
        Err(d) => {
            record_denial(&shared, id, &seen, &d, started);
            deny(&shared, id, d)
        }
    }
}

/// What the pipeline had learnt about a request when it was refused (for the ledger).
#[derive(Default)]
pub(crate) struct Seen {
    provider: Option<Provider>,
    pub(crate) model: Option<String>,
    api: Option<Api>,
    /// Charged although refused (a call the provider got but never answered in time).
    pub(crate) charged: Option<Charged>,
}

impl Seen {
    /// A ledger row for this request as far as the pipeline knew it.
    pub(crate) fn row(
        &self,
        id: u64,
        status: u16,
        latency_ms: u64,
    ) -> iron_runtime_state::RequestRow {
        iron_runtime_state::RequestRow {
            ts_ms: now_ms(),
            agent_id: String::new(),
            request_id: id.to_string(),
            provider: self
                .provider
                .map(|p| p.as_str().to_string())
                .unwrap_or_default(),
            model: self.model.clone().unwrap_or_default(),
            api: self.api.map(|a| a.as_str().to_string()).unwrap_or_default(),
            status,
            latency_ms,
            ..Default::default()
        }
    }
}

fn record_denial(shared: &Shared, id: u64, seen: &Seen, d: &Denial, started: Instant) {
    let row = seen.row(
        id,
        d.error.status(d.shape).as_u16(),
        started.elapsed().as_millis() as u64,
    );
    shared
        .policies
        .ledger
        .record(iron_runtime_state::RequestRow {
            blocked_reason: Some(d.reason.to_string()),
            error_code: Some(d.error.code().to_string()),
            ..row
        });
}

/// Answer a denial in the provider's shape and tell the world.
pub fn deny(shared: &Shared, id: u64, d: Denial) -> Response<Body> {
    shared.stats.on_blocked(d.reason);
    tracing::info!(target: "iron_cage", request_id = id, reason = d.reason, code = d.error.code(), message = %d.error, "request refused");
    if shared.events.has_subscribers() {
        shared.events.emit(RouterEvent::Blocked {
            request_id: id,
            ts_ms: now_ms(),
            reason: d.reason.to_string(),
            code: d.error.code().to_string(),
            message: d.error.to_string(),
        });
    }
    let mut resp = d.error.into_response(d.shape);
    // The id of the `blocked` event and ledger row of this refusal.
    resp.headers_mut().insert(
        crate::relay::REQUEST_ID_HEADER,
        axum::http::HeaderValue::from(id),
    );
    if d.retried {
        resp.headers_mut().insert(
            "x-should-retry",
            axum::http::HeaderValue::from_static("false"),
        );
    }
    resp
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        axum::http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn proxy(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    id: u64,
    seen: &mut Seen,
) -> Result<Response<Body>, Denial> {
    let started = Instant::now();
    let stop = crate::server::CallStop::of(shared, &req);
    let (parts, body) = req.into_parts();

    // Route.
    let (stripped, prefix_provider) = strip_provider_prefix(parts.uri.path());
    let path = normalise_path(stripped);
    let api = Api::from_path(&path);
    seen.api = Some(api);
    let path_provider = prefix_provider.or_else(|| provider_from_path(&path));
    let mut shape = path_provider.unwrap_or(Provider::OpenAi);

    // Auth.
    if !shared.token.check_headers(&parts.headers) {
        return Err(Denial::new(RouterError::InvalidApiKey, shape, "auth"));
    }
    shared.stats.on_request();
    crate::request_target::check_method_and_target(&parts)
        .map_err(|e| Denial::new(e, shape, "limit"))?;

    // Body.
    let body = read_body(
        &parts.headers,
        body,
        shared.cfg.max_body_bytes,
        Duration::from_millis(shared.cfg.header_read_timeout_ms),
    )
    .await
    .map_err(|e| Denial::new(e, shape, "limit"))?;
    // A policy that reads the body whole parses it here, once: the light read's fields come from
    // the tree (unless half surrogate pairs were masked: then from the bytes, as before).
    let policy_reads_tree = shared.policies.safety.request_active
        || (shared.policies.cost.has_limit() && api.is_billable());
    let mut early_tree = None;
    let info = if policy_reads_tree && crate::inspect::opens_object(&body) {
        let parsed = crate::offload::parse_masked(&body, shape).await?;
        let info = match &parsed {
            Ok((doc, None)) => crate::inspect::inspect_tree(doc),
            _ => inspect(&body),
        };
        early_tree = Some(parsed);
        info
    } else {
        inspect(&body)
    };
    seen.model.clone_from(&info.model);
    let model_provider = info.model.as_deref().and_then(provider_from_model);
    // The explicit prefix wins, then the model; the path alone (e.g. /v1/messages) comes last.
    let requested = prefix_provider.or(model_provider).or(path_provider);
    // Errors take the shape of the SDK that called: the path tells that best.
    if path_provider.is_none() {
        if let Some(p) = model_provider {
            shape = p;
        }
    }
    if shared.events.has_subscribers() {
        shared.events.emit(RouterEvent::Request {
            request_id: id,
            ts_ms: now_ms(),
            method: parts.method.to_string(),
            path: path.clone(),
            provider: requested.map(|p| p.as_str().to_string()),
            model: info.model.clone(),
            stream: info.stream,
        });
    }

    // Key.
    let key = shared
        .keys
        .get()
        .await
        .map_err(|e| Denial::new(e.into_router_error(), shape, "key"))?;
    seen.provider = Some(key.provider);
    if path_provider.is_none() && model_provider.is_none() {
        shape = key.provider;
    }
    if let Some(req_p) = requested {
        if req_p != key.provider {
            return Err(Denial::new(
                RouterError::ProviderMismatch {
                    requested: req_p,
                    configured: key.provider,
                },
                shape,
                "mismatch",
            ));
        }
    }

    // Log probabilities repeat the answer token by token, where the response policy cannot
    // redact: a value it hides in the text would reach the client there.
    if info.wants_logprobs
        && shared.policies.safety.response_rewrites
        && matches!(
            api,
            Api::OpenAiChat | Api::OpenAiCompletions | Api::OpenAiResponses
        )
    {
        return Err(Denial::new(
            RouterError::PiiBlocked {
                message: "Iron Cage's response PII policy cannot check log probabilities: they repeat the answer token by token, so a value it redacts or blocks in the text would reach you there. Send the request without logprobs / top_logprobs, or set every response-side type of the safety option to 'log' or 'off'.".into(),
            },
            shape,
            "pii",
        ));
    }

    // Parse the body once, only when a policy needs the tree. A body with a repeated key is read
    // as unreadable: the policies would see the last copy, a provider might use the first.
    // A body of an endpoint without a reader is read as JSON whenever a provider could: sent as
    // JSON, or opening an object or an array (the light read above takes objects only).
    let json_like = info.is_json
        || (crate::safety_policy::request_shape(api) == iron_safety::ApiShape::Other
            && looks_like_json(&parts.headers, &body));
    let needs_tree = (json_like && shared.policies.safety.request_active)
        || (info.is_json && api.is_billable() && shared.policies.cost.has_limit());
    let (mut doc, masked) = if needs_tree {
        let parsed = match early_tree {
            Some(parsed) => parsed,
            None => crate::offload::parse_masked(&body, shape).await?,
        };
        match parsed {
            Ok((doc, masked)) => (Some(doc), masked),
            Err(_) => (None, None),
        }
    } else {
        (None, None)
    };
    // Half surrogate pairs were read as U+FFFD: with a request policy on, that text (the one it
    // checked) is what goes on, not bytes a provider might read as a value the policy never saw.
    let body = match masked {
        Some(m) if shared.policies.safety.request_active => Bytes::from(m),
        _ => body,
    };

    // Input safety: scan the prompt; redact before forwarding or refuse.
    // Its `pii` event (and audit rows) wait until the request is on its way: see `while_waiting`.
    let (body, prompt_findings) = if body.len() >= crate::offload::LARGE_BODY
        && shared.policies.safety.request_active
        && doc.is_some()
    {
        let (sh, mut tree) = (shared.clone(), doc.take());
        let (tree, checked) = crate::offload::blocking(move || {
            let checked = input_safety(&sh, id, api, tree.as_mut(), json_like, body, shape);
            (tree, checked)
        })
        .await
        .ok_or_else(|| crate::offload::failed("the prompt's PII check failed", shape))?;
        doc = tree;
        checked?
    } else {
        input_safety(shared, id, api, doc.as_mut(), json_like, body, shape)?
    };
    // Published at the latest when this returns, also when a later phase refuses the call.
    let mut prompt_report = crate::meanwhile::Deferred(Some(|| {
        crate::safety_policy::report(&shared.events, id, "request", &prompt_findings);
    }));

    // Budget: refuse what cannot be held, hold the worst-case cost before anything leaves the
    // machine, and cap the answer at what was held.
    refuse_unmetered(shared, &parts.method, &path, api, doc.as_ref(), shape)?;
    let hold = reserve_budget(
        shared,
        id,
        &info,
        api,
        key.provider,
        doc.as_ref(),
        &body,
        shape,
        &key.host,
    )?;
    if hold.persisted {
        // Strict persistence: the hold is on disk before the provider gets the call, as durably as
        // spent is (a crash from here on charges it).
        shared.policies.ledger.commit_if_strict().await;
    }
    let body = cap_output(api, doc.as_ref(), &hold, body);
    drop(doc);

    // Usage on OpenAI chat streams: ask for it when the client did not.
    let (body, strip_usage_chunk) = maybe_inject_usage(body, &info, api, key.provider);

    let url = forward::upstream_url(&key.base_url, &path, parts.uri.query());
    // Breakers are per upstream: host and port.
    let host = key.host.to_string();
    let headers = forward::upstream_headers(&parts.headers, &key)
        .map_err(|m| Denial::new(RouterError::KeyServer(m), shape, "key"))?;
    // The hold phase does not estimate the input: the body is kept (shared, not copied) for the
    // rare call charged without its usage.
    let estimate_body =
        (hold.cheap_estimate && hold.billable && info.is_json).then(|| body.clone());
    // Breaker and forward, with retries where safe; a stop that does not wait for the answer
    // ends the wait (the provider may have the call: it is charged as unanswered).
    let call = crate::upstream_call::call_upstream(
        shared,
        crate::upstream_call::Call {
            method: parts.method.clone(),
            url: &url,
            headers,
            body,
            provider: key.provider,
            host: &host,
            model: info.model.as_deref().unwrap_or(""),
            shape,
            started,
            key: &key,
        },
    );
    let call = crate::meanwhile::while_waiting(call, &mut prompt_report);
    let called = tokio::select! {
        called = call => called,
        _ = stop.cancelled() => Err(Denial {
            error: RouterError::RouterStopped,
            shape,
            reason: "upstream",
            retried: false,
            unanswered: true,
        }),
    };
    let answer = match called {
        Ok(answer) => answer,
        Err(d) => {
            // No answer within the first-byte or total timeout: the provider has the request.
            if d.unanswered {
                let body = estimate_body.as_deref();
                if let Some(charged) =
                    charge_unanswered(shared, hold, info.stream, key.provider, api, body)
                {
                    seen.charged = Some(charged);
                }
            }
            return Err(d);
        }
    };
    let ex = Exchange {
        id,
        started,
        provider: key.provider,
        shape,
        model: info.model.clone(),
        api,
        answer_api: match api {
            Api::Other if parts.method == axum::http::Method::GET => {
                Api::retrieved(&path).unwrap_or(api)
            }
            _ => api,
        },
        stream: info.stream,
        strip_usage_chunk,
        host,
        estimated_input_tokens: hold.estimated_input_tokens,
        // A stream cut short before its usage is charged an estimate of its input, a whole answer
        // cut short the hold it would have had.
        estimate_body,
        price: hold.price,
        reservation: hold.reservation,
        flat_cost_micros: hold.flat_cost_micros,
        permit: answer.permit,
        client_status: None,
        may_reason: info.may_reason,
        guard: crate::key_guard::KeyGuard::new(
            std::iter::once(key.guard_forms())
                .chain(answer.rekeyed_to.as_ref().map(|k| k.guard_forms())),
        ),
        stop,
    };

    // Relay.
    Ok(relay::relay(shared.clone(), ex, answer.response).await)
}

/// Phase: scan the prompt text; redact it in place (and re-serialise only then) or refuse with 400.
/// Returns the body to forward and what was found in it, for the `pii` event that the caller
/// publishes (a refusal's is published here).
fn input_safety(
    shared: &Shared,
    id: u64,
    api: Api,
    doc: Option<&mut serde_json::Value>,
    json_like: bool,
    body: Bytes,
    shape: Provider,
) -> Result<(Bytes, Vec<iron_safety::Detection>), Denial> {
    let safety = &shared.policies.safety;
    if !safety.request_active {
        return Ok((body, Vec::new()));
    }
    let Some(doc) = doc else {
        // A body the policy cannot read must not leave the machine unchecked (fail closed): any
        // body of an API with a reader, and a JSON body (or one that looks like JSON) of any other
        // endpoint. Bodies that are not JSON at all (multipart file uploads, audio) pass.
        if (json_like || crate::safety_policy::request_shape(api) != iron_safety::ApiShape::Other)
            && !body.is_empty()
        {
            // A client bug, not a PII finding: its own code and reason, so PII alerts stay PII.
            return Err(Denial::new(
                RouterError::BadRequestBody("it is not JSON with no repeated keys, so Iron Cage's PII policy could not check it and did not forward it. Send valid JSON in which no object repeats a key (a provider might read the copy the policy did not).".into()),
                shape,
                "invalid_body",
            ));
        }
        return Ok((body, Vec::new()));
    };
    let verdict = safety
        .engine
        .inspect_request(crate::safety_policy::request_shape(api), doc);
    if verdict.blocked {
        crate::safety_policy::report(&shared.events, id, "request", &verdict.detections);
        let message = verdict
            .message
            .unwrap_or_else(|| "Request blocked by Iron Cage PII policy".into());
        return Err(Denial::new(
            RouterError::PiiBlocked { message },
            shape,
            "pii",
        ));
    }
    if verdict.modified {
        // Schemas are rendered into the prompt in their members' order (a structured answer's
        // fields come in that order): with any, the original bytes get the redacted strings
        // written in, keeping the order; otherwise the tree is written as it is (its keys sorted,
        // which the provider reads the same) without a second parse.
        let schemas = ["tools", "functions", "response_format", "text"]
            .iter()
            .any(|k| doc.get(k).is_some_and(|v| !v.is_null()));
        let encoded = if schemas {
            crate::unique_json::reencode_in_order(&body, doc)
        } else {
            let mut out = Vec::with_capacity(body.len() + 256);
            serde_json::to_writer(&mut out, &*doc).map(|()| out)
        };
        return match encoded {
            Ok(b) => Ok((Bytes::from(b), verdict.detections)),
            Err(e) => {
                crate::safety_policy::report(&shared.events, id, "request", &verdict.detections);
                let msg = format!("could not re-encode the redacted body: {e}");
                Err(Denial::new(RouterError::Internal(msg), shape, "internal"))
            }
        };
    }
    Ok((body, verdict.detections))
}

/// A body sent as JSON (`application/json`, `…+json`) or whose first byte after whitespace opens
/// a JSON object or array.
fn looks_like_json(headers: &axum::http::HeaderMap, body: &[u8]) -> bool {
    let sent_as_json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            let t = t.trim().to_ascii_lowercase();
            t == "application/json" || t.ends_with("+json")
        });
    sent_as_json
        || matches!(
            body.iter().find(|b| !b.is_ascii_whitespace()),
            Some(b'{' | b'[')
        )
}

fn maybe_inject_usage(
    body: Bytes,
    info: &RequestInfo,
    api: Api,
    provider: Provider,
) -> (Bytes, bool) {
    if provider != Provider::OpenAi || !info.stream || info.include_usage == Some(true) {
        return (body, false);
    }
    if !matches!(api, Api::OpenAiChat | Api::OpenAiCompletions) {
        return (body, false);
    }
    match inject_include_usage(&body, info) {
        Some(b) => (b, true),
        None => (body, false),
    }
}
