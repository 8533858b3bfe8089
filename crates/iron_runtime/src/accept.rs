//! Phase 1 of the pipeline (see `pipeline.rs`): which requests the router listens to at all.

use crate::error::RouterError;
use crate::pipeline::Denial;
use crate::provider::Provider;
use crate::server::Shared;
use axum::http::Request;
use hyper::body::Incoming;

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

/// Refusals before the token check (a DNS-rebinding host, a browser page not in `allowedOrigins`)
/// can come from any page in a browser on this machine, in a loop: their `blocked` event and log
/// line come at most once a second per reason, so they cannot crowd real events out of slow
/// listeners or the dashboard's queue. `stats()` counts every one.
#[derive(Default)]
pub struct RefusalGate {
    host: std::sync::atomic::AtomicU64,
    origin: std::sync::atomic::AtomicU64,
}

impl RefusalGate {
    /// Whether a refusal for `reason` at `now_ms` is published.
    pub fn pass(&self, reason: &str, now_ms: u64) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let slot = if reason == "host" {
            &self.host
        } else {
            &self.origin
        };
        let last = slot.load(Relaxed);
        (last == 0 || now_ms.saturating_sub(last) >= 1_000)
            && slot
                .compare_exchange(last, now_ms.max(1), Relaxed, Relaxed)
                .is_ok()
    }
}
