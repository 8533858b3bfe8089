//! Build and send the upstream request: the real key, an allowlist of client headers, no redirects.

use crate::keys::ProviderKey;
use crate::policies::Policies;
use crate::provider::Provider;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use bytes::Bytes;

/// The pooled upstream client (see `upstream_h1`).
pub type UpstreamClient = crate::upstream_h1::H1Client;
/// An upstream response whose body is still to be read.
pub type UpstreamResponse = axum::http::Response<crate::upstream_h1::UpstreamBody>;

/// One pooled client per router: rustls with the webpki roots, HTTP/1.1, no redirects (a redirect
/// could carry the key elsewhere), no proxy environment variables (the key must go only to the
/// configured host). Its own HTTP/1.1 client rather than hyper's: a streamed answer is read in
/// large pieces from the socket instead of one connection-task hand-off per chunk.
pub fn build_client(p: &Policies) -> UpstreamClient {
    crate::upstream_h1::H1Client::new(p.timeouts.connect)
}

/// Client headers worth passing on. Everything else (auth, cookies, hop-by-hop, host, length,
/// accept-encoding so that bodies arrive uncompressed for parsing) is dropped.
const FORWARDED: [&str; 12] = [
    "content-type",
    "accept",
    "anthropic-version",
    "anthropic-beta",
    "openai-organization",
    "openai-project",
    "openai-beta",
    "user-agent",
    "idempotency-key",
    "x-stainless-retry-count",
    "x-stainless-timeout",
    "x-request-id",
];

/// Headers for the upstream request.
pub fn upstream_headers(client: &HeaderMap, key: &ProviderKey) -> Result<HeaderMap, String> {
    let mut h = HeaderMap::with_capacity(FORWARDED.len() + 3);
    // One pass over the client's few headers; each kept name is looked up in the short allowlist.
    for (name, v) in client {
        if let Some(&kept) = FORWARDED.iter().find(|f| **f == name.as_str()) {
            h.append(HeaderName::from_static(kept), v.clone());
        }
    }
    if !h.contains_key("content-type") {
        h.insert("content-type", HeaderValue::from_static("application/json"));
    }
    // Without it a provider may compress (RFC 9110: no header means any coding is acceptable), and
    // the router reads answers for usage and PII.
    h.insert("accept-encoding", HeaderValue::from_static("identity"));
    let secret = key
        .auth_header()
        .cloned()
        .ok_or_else(|| "the provider key is not a valid header value".to_string())?;
    match key.provider {
        Provider::OpenAi => {
            h.insert("authorization", secret);
        }
        Provider::Anthropic => {
            h.insert("x-api-key", secret);
            if !h.contains_key("anthropic-version") {
                h.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
            }
        }
    }
    Ok(h)
}

/// `base_url` joined with the client's path and query; a base ending in `/v1` does not double it.
pub fn upstream_url(base_url: &str, path: &str, query: Option<&str>) -> String {
    let base = base_url.trim_end_matches('/');
    // Always a path after the base: glued to a port or host (`host:4000*`) it would name another.
    let slash = if path.starts_with('/') { "" } else { "/" };
    let path = if base.ends_with("/v1") && (path == "/v1" || path.starts_with("/v1/")) {
        &path[3..]
    } else {
        path
    };
    match query {
        Some(q) if !q.is_empty() => format!("{base}{slash}{path}?{q}"),
        _ => format!("{base}{slash}{path}"),
    }
}

/// How a send failed before any response header arrived.
pub enum SendError {
    Connect(String),
    Timeout(&'static str),
    /// The connection failed after the whole request was written and before the answer's head
    /// was read: the provider may have the call (and bill it), so it is not sent again.
    AfterWrite(String),
    Other(String),
}

/// Send and wait for the response head within the first-byte timeout.
pub async fn send(
    client: &UpstreamClient,
    method: Method,
    url: &str,
    headers: HeaderMap,
    body: Bytes,
    first_byte: std::time::Duration,
) -> Result<UpstreamResponse, SendError> {
    let uri: axum::http::Uri = url
        .parse()
        .map_err(|e| SendError::Other(format!("the upstream URL is not valid: {e}")))?;
    use crate::upstream_h1::{H1Error, CONNECTING, SENT};
    use std::sync::atomic::Ordering::Acquire;
    let progress = std::sync::atomic::AtomicU8::new(CONNECTING);
    let sent = client.send(&method, &uri, &headers, &body, &progress);
    match tokio::time::timeout(first_byte, sent).await {
        // Still connecting when the wait ran out (a first-byte timeout shorter than the connect
        // timeout): nothing was sent, as safe to retry as a refused connection, and not billed.
        Err(_) if progress.load(Acquire) == CONNECTING => Err(SendError::Connect(
            "no connection within the first-byte timeout".into(),
        )),
        // Connected, but the provider had not read the whole request: it has no call to bill.
        Err(_) if progress.load(Acquire) != SENT => Err(SendError::Connect(
            "the request was still being sent when the first-byte timeout ran out (the provider read it too slowly)".into(),
        )),
        Err(_) => Err(SendError::Timeout(
            "no response headers within the first-byte timeout",
        )),
        // Nothing was sent: as safe to retry as a refused connection.
        Ok(Err(H1Error::ConnectTimeout)) => Err(SendError::Connect("connect timeout".into())),
        Ok(Err(H1Error::Connect(e))) => Err(SendError::Connect(e)),
        Ok(Err(H1Error::Io(e))) if progress.load(Acquire) == SENT => {
            Err(SendError::AfterWrite(e))
        }
        Ok(Err(H1Error::Io(e))) => Err(SendError::Other(e)),
        Ok(Ok(r)) => Ok(r),
    }
}

/// An error and its causes on one line. Upstream URLs never hold a key (it travels in a header)
/// and these errors do not quote them anyway.
pub fn describe_error(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let text = inner.to_string();
        if !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        src = inner.source();
    }
    s
}

/// The body of an upstream response as a stream of data pieces.
pub fn body_stream(r: UpstreamResponse) -> crate::upstream_h1::UpstreamBody {
    r.into_body()
}

/// Response headers the client may see: hop-by-hop and length/encoding headers are recomputed.
pub fn client_response_headers(upstream: &HeaderMap, keep_length: bool) -> HeaderMap {
    // `content-encoding` stays: the router asks for `identity`, and a provider that compresses
    // anyway has its body passed on as it came (or refused where a policy must read it), so the
    // client needs the header to decode it.
    const DROP: [&str; 10] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-authenticate",
        "set-cookie",
        "alt-svc",
    ];
    let mut out = HeaderMap::with_capacity(upstream.len());
    let secrets = iron_telemetry::Redactor::global();
    for (k, v) in upstream {
        let n = k.as_str();
        // The router's own headers (cost, request id, error code) are the router's to set: an
        // upstream's copy would pass for one.
        if DROP.contains(&n)
            || (!keep_length && n == "content-length")
            || n.starts_with("x-iron-cage-")
        {
            continue;
        }
        // A provider (or a proxy before it) echoing the request's key in a debug header: the
        // header goes, as a key in a body is redacted.
        if secrets.holds_secret(v.as_bytes()) {
            tracing::warn!(target: "iron_cage", header = n, "dropped a provider response header that held a key or token");
            continue;
        }
        out.append(k.clone(), v.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::parse_key_response;

    #[test]
    fn joins_urls() {
        assert_eq!(
            upstream_url("https://api.openai.com", "/v1/chat/completions", None),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            upstream_url("https://h/v1/", "/v1/chat/completions", Some("a=1")),
            "https://h/v1/chat/completions?a=1"
        );
        assert_eq!(
            upstream_url("https://h/base", "/v1/messages", Some("")),
            "https://h/base/v1/messages"
        );
        assert_eq!(upstream_url("http://h:4000", "*", None), "http://h:4000/*");
    }

    #[test]
    fn a_compressed_answer_keeps_its_encoding_for_the_client() {
        let mut up = HeaderMap::new();
        up.insert("content-encoding", "gzip".parse().unwrap());
        up.insert("content-length", "10".parse().unwrap());
        up.insert("set-cookie", "a=b".parse().unwrap());
        // An upstream cannot pass off its own cost or request id for the router's.
        up.insert("x-iron-cage-cost-usd", "0.000001".parse().unwrap());
        up.insert("x-iron-cage-request-id", "7".parse().unwrap());
        let h = client_response_headers(&up, true);
        assert!(
            h.get("x-iron-cage-cost-usd").is_none() && h.get("x-iron-cage-request-id").is_none()
        );
        assert_eq!(h.get("content-encoding").unwrap(), "gzip");
        assert_eq!(h.get("content-length").unwrap(), "10");
        assert!(h.get("set-cookie").is_none());
        assert!(client_response_headers(&up, false)
            .get("content-length")
            .is_none());
    }

    #[test]
    fn headers_allowlist_and_auth() {
        let key = parse_key_response(br#"{"api_key":"sk-ant-real"}"#).unwrap();
        let mut client = HeaderMap::new();
        client.insert("x-api-key", "ic_token".parse().unwrap());
        client.insert("authorization", "Bearer ic_token".parse().unwrap());
        client.insert("cookie", "a=b".parse().unwrap());
        client.insert("anthropic-beta", "tools-2024".parse().unwrap());
        client.insert("connection", "keep-alive".parse().unwrap());
        client.insert("accept-encoding", "gzip, br".parse().unwrap());
        let h = upstream_headers(&client, &key).unwrap();
        assert_eq!(
            h.get("accept-encoding").unwrap(),
            "identity",
            "answers must come readable"
        );
        assert_eq!(h.get("x-api-key").unwrap(), "sk-ant-real");
        assert!(h.get("authorization").is_none());
        assert!(h.get("cookie").is_none());
        assert!(h.get("connection").is_none());
        assert_eq!(h.get("anthropic-version").unwrap(), "2023-06-01");
        assert_eq!(h.get("anthropic-beta").unwrap(), "tools-2024");
        let okey = parse_key_response(br#"{"api_key":"sk-real"}"#).unwrap();
        let h = upstream_headers(&client, &okey).unwrap();
        assert_eq!(h.get("authorization").unwrap(), "Bearer sk-real");
        assert!(h.get("x-api-key").is_none());
        assert!(h.get("anthropic-version").is_none());
    }
}
