//! Router-internal endpoints under `/_iron/` (IC token required).

use crate::error::RouterError;
use crate::provider::Provider;
use crate::server::Shared;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;

/// `/_iron/stats` (JSON).
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    _peer: SocketAddr,
) -> Response<Body> {
    if !shared.token.check_headers(req.headers()) {
        shared.stats.on_blocked("auth");
        return RouterError::InvalidApiKey.into_response(Provider::OpenAi);
    }
    match req.uri().path() {
        "/_iron/stats" => {
            let snap = shared.stats.snapshot();
            let body = serde_json::to_vec(&snap).unwrap_or_default();
            let mut r = Response::new(Body::from(body));
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            r
        }
        _ => {
            let mut r = Response::new(Body::from(
                r#"{"error":{"message":"unknown Iron Cage endpoint","type":"invalid_request_error","param":null,"code":"not_found"}}"#,
            ));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            r
        }
    }
}
