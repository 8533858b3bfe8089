//! Router-internal endpoints under `/_iron/`, all behind the IC token (events also accept it as the
//! first WebSocket message): `stats` (JSON), `metrics` (Prometheus text), `events` (WebSocket).

use crate::error::RouterError;
use crate::provider::Provider;
use crate::server::Shared;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Dispatch an internal request.
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    if path == "/_iron/events" {
        return crate::ws_events::upgrade(shared, req.map(Body::new), peer).await;
    }
    if !shared.token.check_headers(req.headers()) {
        shared.stats.on_blocked("auth");
        // Failures here count with those of proxied calls: one budget of guesses per source.
        if let Some(wait) = shared.auth_limit.on_failure(peer.ip()) {
            return RouterError::too_many_auth_failures(wait).into_response(Provider::OpenAi);
        }
        return RouterError::InvalidApiKey.into_response(Provider::OpenAi);
    }
    match path.as_str() {
        "/_iron/stats" => {
            let snap = shared.stats_snapshot();
            let body = serde_json::to_vec(&snap).unwrap_or_default();
            with_type(Response::new(Body::from(body)), "application/json")
        }
        "/_iron/metrics" => with_type(
            Response::new(Body::from(metrics(&shared))),
            "text/plain; version=0.0.4",
        ),
        _ => {
            let mut r = Response::new(Body::from(
                r#"{"error":{"message":"unknown Iron Cage endpoint; try /_iron/stats, /_iron/metrics or /_iron/events","type":"invalid_request_error","param":null,"code":"not_found"}}"#,
            ));
            *r.status_mut() = StatusCode::NOT_FOUND;
            with_type(r, "application/json")
        }
    }
}

fn with_type(mut r: Response<Body>, ct: &'static str) -> Response<Body> {
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static(ct));
    r
}

/// Label values are model names and reasons: escape what the text format requires.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The counters in Prometheus text exposition format.
pub fn metrics(shared: &Shared) -> String {
    let s = shared.stats_snapshot();
    let b = shared.policies.cost.ledger.status();
    let mut out = String::with_capacity(2048);
    let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, v) in lines {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    metric(
        "iron_cage_requests_total",
        "counter",
        "Requests that passed authentication.",
        vec![(String::new(), s.requests as f64)],
    );
    metric(
        "iron_cage_responses_total",
        "counter",
        "Forwarded requests by outcome.",
        vec![
            ("{outcome=\"completed\"}".into(), s.completed as f64),
            ("{outcome=\"failed\"}".into(), s.failed as f64),
        ],
    );
    metric(
        "iron_cage_blocked_total",
        "counter",
        "Requests the router refused, by reason.",
        s.blocked_by_reason
            .iter()
            .map(|(r, n)| (format!("{{reason=\"{}\"}}", label(r)), *n as f64))
            .collect(),
    );
    metric(
        "iron_cage_retries_total",
        "counter",
        "Upstream attempts repeated by the retry policy.",
        vec![(String::new(), s.retries as f64)],
    );
    metric(
        "iron_cage_ledger_rows_total",
        "counter",
        "Ledger and audit rows by outcome: committed to SQLite, refused with a full queue, rejected by SQLite.",
        vec![
            ("{outcome=\"committed\"}".into(), s.ledger.committed as f64),
            ("{outcome=\"dropped\"}".into(), s.ledger.dropped as f64),
            ("{outcome=\"failed\"}".into(), s.ledger.failed as f64),
        ],
    );
    metric(
        "iron_cage_ledger_pending_rows",
        "gauge",
        "Ledger and audit rows waiting for the state writer.",
        vec![(String::new(), s.ledger.pending as f64)],
    );
    let mut tokens = Vec::new();
    let mut cost = Vec::new();
    let mut reqs = Vec::new();
    for (model, m) in &s.by_model {
        let model = label(model);
        for (kind, n) in [
            ("input", m.input_tokens),
            ("output", m.output_tokens),
            ("cache_read", m.cache_read_tokens),
            ("cache_write", m.cache_write_tokens),
            ("reasoning", m.reasoning_tokens),
        ] {
            tokens.push((format!("{{model=\"{model}\",kind=\"{kind}\"}}"), n as f64));
        }
        cost.push((format!("{{model=\"{model}\"}}"), m.cost_micros as f64 / 1e6));
        reqs.push((format!("{{model=\"{model}\"}}"), m.requests as f64));
    }
    metric(
        "iron_cage_model_requests_total",
        "counter",
        "Forwarded requests by model.",
        reqs,
    );
    metric(
        "iron_cage_tokens_total",
        "counter",
        "Tokens by model and kind.",
        tokens,
    );
    metric(
        "iron_cage_cost_usd_total",
        "counter",
        "Cost in USD by model.",
        cost,
    );
    metric(
        "iron_cage_budget_spent_usd",
        "gauge",
        "USD spent against the budget.",
        vec![(String::new(), b.spent as f64 / 1e6)],
    );
    metric(
        "iron_cage_budget_reserved_usd",
        "gauge",
        "USD held by requests in flight.",
        vec![(String::new(), b.reserved as f64 / 1e6)],
    );
    if let Some(l) = b.limit {
        metric(
            "iron_cage_budget_limit_usd",
            "gauge",
            "The budget limit in USD.",
            vec![(String::new(), l as f64 / 1e6)],
        );
    }
    metric(
        "iron_cage_events_dropped_total",
        "counter",
        "Events lost by slow subscribers.",
        vec![(String::new(), shared.events.dropped() as f64)],
    );
    metric(
        "iron_cage_dashboard_connects_total",
        "counter",
        "Connections of the dashboard push link.",
        vec![(
            String::new(),
            shared.stats.dashboard_connects.load(Ordering::Relaxed) as f64,
        )],
    );
    metric(
        "iron_cage_dashboard_dropped_total",
        "counter",
        "Dashboard messages lost while the dashboard was offline (the oldest of more than 1,000 buffered).",
        vec![(
            String::new(),
            shared.stats.dashboard_dropped.load(Ordering::Relaxed) as f64,
        )],
    );
    let breakers = shared.policies.reliability.breakers.snapshots();
    metric(
        "iron_cage_breaker_open",
        "gauge",
        "1 while the circuit breaker of a provider upstream is not closed.",
        breakers
            .iter()
            .map(|(p, h, snap)| {
                (
                    format!("{{provider=\"{}\",host=\"{}\"}}", label(p), label(h)),
                    if snap.state.as_str() == "closed" {
                        0.0
                    } else {
                        1.0
                    },
                )
            })
            .collect(),
    );
    out
}
