//! Browser requests: refused unless `allowedOrigins` lists the page's origin. For a listed origin the
//! router answers the CORS preflight and names that one origin (never `*`).

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

/// The request's `Origin` if `allowedOrigins` lists it.
pub fn allowed_origin<'a>(headers: &'a HeaderMap, allowed: &[String]) -> Option<&'a str> {
    let origin = headers.get("origin").and_then(|h| h.to_str().ok())?;
    allowed.iter().any(|a| a == origin).then_some(origin)
}

/// Answer a preflight from an allowed origin.
pub fn preflight(origin: &str) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert("access-control-allow-origin", v);
    }
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("GET, POST, DELETE"),
    );
    h.insert(
        "access-control-allow-headers",
        HeaderValue::from_static(
            "authorization, x-api-key, content-type, anthropic-version, anthropic-beta, anthropic-dangerous-direct-browser-access, openai-organization, openai-project, x-stainless-retry-count, x-stainless-timeout",
        ),
    );
    h.insert("access-control-max-age", HeaderValue::from_static("600"));
    h.insert("vary", HeaderValue::from_static("Origin"));
    r
}

/// Name the allowed origin on a response.
pub fn decorate(resp: &mut Response<Body>, origin: &str) {
    if let Ok(v) = HeaderValue::from_str(origin) {
        resp.headers_mut().insert("access-control-allow-origin", v);
        resp.headers_mut()
            .insert("vary", HeaderValue::from_static("Origin"));
    }
}

/// True for the CORS preflight method.
pub fn is_preflight(method: &Method) -> bool {
    method == Method::OPTIONS
}
