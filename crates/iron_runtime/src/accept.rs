//! Phase 1 of the pipeline (see `pipeline.rs`): which requests the router listens to at all.

use crate::error::RouterError;
use crate::pipeline::Denial;
use crate::provider::Provider;
use crate::server::Shared;
use axum::body::Body;
use axum::http::{Request, Response};
use hyper::body::Incoming;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Phase 1: only loopback `Host` names for this port (DNS rebinding) and no browser requests unless
/// their origin is allowed.
pub(crate) fn accept_filter(shared: &Shared, req: &Request<Incoming>) -> Result<(), Denial> {
    let shape = Provider::OpenAi;
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !host_is_local(host, shared.port) {
        return Err(Denial::new(
            RouterError::Forbidden { message: format!("Host '{}' is not this router (expected 127.0.0.1:{}, localhost:{} or [::1]:{}); requests through other host names are refused to stop DNS rebinding", crate::keys::sanitize(host), shared.port, shared.port, shared.port) },
            shape,
            "host",
        ));
    }
    let origin = req.headers().get("origin").and_then(|h| h.to_str().ok());
    // `anthropic-dangerous-direct-browser-access` alone is not a browser: server-side SDKs such as
    // LangChain's set it too. Browsers always send `Origin` (or `Sec-Fetch-Site`) on such requests.
    let cross_site = req
        .headers()
        .get("sec-fetch-site")
        .and_then(|h| h.to_str().ok())
        .is_some_and(|v| v != "same-origin" && v != "none");
    let allowed = origin.is_some_and(|o| shared.cfg.allowed_origins.iter().any(|a| a == o));
    if (origin.is_some() || cross_site || req.method() == axum::http::Method::OPTIONS) && !allowed {
        return Err(Denial::new(
            RouterError::Forbidden { message: "Browser requests are refused by the Iron Cage router; list the page's origin in the allowedOrigins option to allow it".into() },
            shape,
            "origin",
        ));
    }
    Ok(())
}

/// `127.0.0.1:<port>`, `localhost:<port>` or `[::1]:<port>`.
pub fn host_is_local(host: &str, port: u16) -> bool {
    let Some((name, p)) = host.rsplit_once(':') else {
        return false;
    };
    if p.parse::<u16>().ok() != Some(port) {
        return false;
    }
    matches!(
        name.to_ascii_lowercase().as_str(),
        "127.0.0.1" | "localhost" | "[::1]"
    )
}

/// Answers a refusal of [`accept_filter`]. These come before the token check (a DNS-rebinding
/// host, a browser page not in `allowedOrigins`), so any page in a browser on this machine can
/// send them in a loop: no ledger row, and their `blocked` event and log line at most once a
/// second per reason, so they cannot crowd real events out of slow listeners or the dashboard's
/// queue. `stats()` counts every one; each carries a request id as any refusal.
pub fn refuse(shared: &Shared, d: Denial) -> Response<Body> {
    let id = shared.next_request_id.fetch_add(1, Ordering::Relaxed);
    refuse_untrusted(shared, id, d, || {})
}

/// [`refuse`] for request `id`, running `log` with the event: also for a request with a wrong or
/// missing token, which anyone on the machine can send as fast.
pub fn refuse_untrusted(shared: &Shared, id: u64, d: Denial, log: impl FnOnce()) -> Response<Body> {
    if shared.refusals.pass(d.reason, Duration::from_secs(1)) {
        log();
        return crate::pipeline::deny(shared, id, d);
    }
    shared.stats.on_blocked(d.reason);
    let mut resp = d.error.into_response(d.shape);
    resp.headers_mut().insert(
        crate::relay::REQUEST_ID_HEADER,
        axum::http::HeaderValue::from(id),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_hosts() {
        assert!(host_is_local("127.0.0.1:8080", 8080));
        assert!(host_is_local("localhost:8080", 8080));
        assert!(host_is_local("[::1]:8080", 8080));
        assert!(!host_is_local("127.0.0.1:8081", 8080));
        assert!(!host_is_local("evil.com:8080", 8080));
        assert!(!host_is_local("127.0.0.1", 8080));
        assert!(!host_is_local("", 8080));
    }
}
