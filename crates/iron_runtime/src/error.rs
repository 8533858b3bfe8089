//! Errors the router makes itself: one enum with stable codes, mapped once to a provider-shaped HTTP
//! response (so SDKs raise their usual typed errors) and once to the JS boundary (`err.code`).

use crate::provider::Provider;
use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode};

/// The methods forwarded to providers (the `allow` header of a 405): their APIs use no other, and
/// another (TRACE, say) could make something in front of the provider echo the request, key and all.
pub const FORWARDED_METHODS: &str = "GET, POST, DELETE";

/// An error the router answers with itself (never an upstream error passed through).
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("Invalid API key")]
    InvalidApiKey,
    #[error("Provider mismatch: you requested '{requested}' but your Iron Cage token has '{configured}' key configured. Please configure a '{requested}' provider key in your Iron Cage dashboard.")]
    ProviderMismatch {
        requested: Provider,
        configured: Provider,
    },
    #[error(
        "Request body is larger than the router's limit of {limit} bytes; send a smaller request"
    )]
    BodyTooLarge { limit: usize },
    #[error("Could not read the request body: {0}")]
    BadRequestBody(String),
    #[error("The request body stopped arriving ({0}); send the whole body without pauses")]
    BodyTimeout(String),
    #[error("Iron Cage forwards only GET, POST and DELETE to providers (their APIs use no other method); a {method} request was refused")]
    MethodNotAllowed { method: String },
    #[error("{0}")]
    BadRequestTarget(&'static str),
    #[error("Iron Cage key server error: {0}")]
    KeyServer(String),
    /// The key server refused this token's key (revoked token, disabled or missing key).
    #[error("{0}")]
    KeyRefused(String),
    #[error("Provider unreachable at {host}: {reason}")]
    UpstreamUnreachable { host: String, reason: String },
    #[error("Provider at {host} timed out: {what}")]
    UpstreamTimeout { host: String, what: String },
    #[error("{message}")]
    BudgetExceeded { message: String },
    #[error("{message}")]
    UnknownModelPrice { message: String },
    #[error("{message}")]
    UnmeteredCall { message: String },
    #[error("{message}")]
    PiiBlocked { message: String },
    #[error("{message}")]
    CircuitOpen {
        message: String,
        retry_after_secs: u64,
    },
    #[error("{message}")]
    Forbidden { message: String },
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    /// The router stopped (`stop()`) while this call was still running and did not wait for it.
    #[error("Iron Cage router stopped while this call was in flight (the app called router.stop() or is quitting); the call was not completed. Do not retry against this router: it no longer listens")]
    RouterStopped,
    #[error("Iron Cage router internal error: {0}")]
    Internal(String),
}

impl RouterError {
    /// The answer to a wrong token once its source is over the auth-failure limit.
    pub fn too_many_auth_failures(wait_secs: u64) -> RouterError {
        RouterError::TooManyRequests {
            message: format!("Too many requests with a wrong Iron Cage token from this source; wait {wait_secs} s and check the token (router.apiKey)"),
            retry_after_secs: wait_secs,
        }
    }

    /// Stable machine-readable code, shared by HTTP bodies, events and JS errors.
    pub fn code(&self) -> &'static str {
        match self {
            RouterError::InvalidApiKey => "INVALID_API_KEY",
            RouterError::ProviderMismatch { .. } => "PROVIDER_MISMATCH",
            RouterError::BodyTooLarge { .. } => "BODY_TOO_LARGE",
            RouterError::BadRequestBody(_) => "BAD_REQUEST_BODY",
            RouterError::BodyTimeout(_) => "BODY_TIMEOUT",
            RouterError::MethodNotAllowed { .. } => "METHOD_NOT_ALLOWED",
            RouterError::BadRequestTarget(_) => "BAD_REQUEST_TARGET",
            RouterError::KeyServer(_) => "KEY_SERVER_ERROR",
            RouterError::KeyRefused(_) => "KEY_REFUSED",
            RouterError::UpstreamUnreachable { .. } => "UPSTREAM_UNREACHABLE",
            RouterError::UpstreamTimeout { .. } => "UPSTREAM_TIMEOUT",
            RouterError::BudgetExceeded { .. } => "BUDGET_EXCEEDED",
            RouterError::UnknownModelPrice { .. } => "UNKNOWN_MODEL_PRICE",
            RouterError::UnmeteredCall { .. } => "UNMETERED_CALL",
            RouterError::PiiBlocked { .. } => "PII_BLOCKED",
            RouterError::CircuitOpen { .. } => "CIRCUIT_OPEN",
            RouterError::Forbidden { .. } => "FORBIDDEN",
            RouterError::TooManyRequests { .. } => "RATE_LIMITED",
            RouterError::RouterStopped => "ROUTER_STOPPED",
            RouterError::Internal(_) => "INTERNAL",
        }
    }

    /// HTTP status; the open-breaker status depends on the provider (529 is Anthropic's overload).
    pub fn status(&self, shape: Provider) -> StatusCode {
        match self {
            RouterError::InvalidApiKey => StatusCode::UNAUTHORIZED,
            RouterError::ProviderMismatch { .. }
            | RouterError::BadRequestBody(_)
            | RouterError::BadRequestTarget(_)
            | RouterError::PiiBlocked { .. } => StatusCode::BAD_REQUEST,
            RouterError::UnknownModelPrice { .. } | RouterError::UnmeteredCall { .. } => {
                StatusCode::BAD_REQUEST
            }
            RouterError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            RouterError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            RouterError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            RouterError::KeyServer(_) | RouterError::UpstreamUnreachable { .. } => {
                StatusCode::BAD_GATEWAY
            }
            RouterError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            RouterError::BudgetExceeded { .. } => StatusCode::PAYMENT_REQUIRED,
            RouterError::CircuitOpen { .. } => match shape {
                Provider::Anthropic => {
                    StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
                }
                Provider::OpenAi => StatusCode::SERVICE_UNAVAILABLE,
            },
            RouterError::Forbidden { .. } | RouterError::KeyRefused(_) => StatusCode::FORBIDDEN,
            RouterError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            RouterError::RouterStopped => StatusCode::SERVICE_UNAVAILABLE,
            RouterError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `type` field of the provider-shaped body.
    fn error_type(&self, shape: Provider) -> &'static str {
        match (self, shape) {
            (RouterError::InvalidApiKey, Provider::OpenAi) => "invalid_request_error",
            (RouterError::InvalidApiKey, Provider::Anthropic) => "authentication_error",
            (RouterError::BudgetExceeded { .. }, _) => "budget_exceeded",
            (RouterError::PiiBlocked { .. }, _) => "pii_detected",
            (RouterError::CircuitOpen { .. }, Provider::Anthropic) => "overloaded_error",
            (RouterError::CircuitOpen { .. }, Provider::OpenAi) => "server_error",
            (RouterError::UpstreamTimeout { .. }, Provider::Anthropic) => "timeout_error",
            (RouterError::BodyTooLarge { .. }, Provider::Anthropic) => "request_too_large",
            (RouterError::Forbidden { .. } | RouterError::KeyRefused(_), Provider::Anthropic) => {
                "permission_error"
            }
            (RouterError::TooManyRequests { .. }, Provider::Anthropic) => "rate_limit_error",
            (
                RouterError::KeyServer(_)
                | RouterError::UpstreamUnreachable { .. }
                | RouterError::RouterStopped
                | RouterError::Internal(_),
                Provider::Anthropic,
            ) => "api_error",
            (
                RouterError::KeyServer(_)
                | RouterError::UpstreamUnreachable { .. }
                | RouterError::RouterStopped
                | RouterError::Internal(_)
                | RouterError::UpstreamTimeout { .. },
                Provider::OpenAi,
            ) => "server_error",
            (_, Provider::Anthropic) => "invalid_request_error",
            (_, Provider::OpenAi) => "invalid_request_error",
        }
    }

    /// The OpenAI `code` field (lowercase, stable).
    fn openai_code(&self) -> &'static str {
        match self {
            RouterError::InvalidApiKey => "invalid_api_key",
            RouterError::BudgetExceeded { .. } => "budget_exceeded",
            RouterError::PiiBlocked { .. } => "pii_detected",
            RouterError::CircuitOpen { .. } => "circuit_open",
            RouterError::ProviderMismatch { .. } => "provider_mismatch",
            RouterError::UnknownModelPrice { .. } => "unknown_model_price",
            RouterError::UnmeteredCall { .. } => "unmetered_call",
            RouterError::KeyRefused(_) => "key_refused",
            RouterError::RouterStopped => "router_stopped",
            _ => "iron_cage_error",
        }
    }

    /// Denials that a retry cannot fix tell SDKs not to retry.
    fn should_retry(&self) -> Option<bool> {
        match self {
            RouterError::BudgetExceeded { .. }
            | RouterError::PiiBlocked { .. }
            | RouterError::ProviderMismatch { .. }
            | RouterError::UnknownModelPrice { .. }
            | RouterError::UnmeteredCall { .. }
            | RouterError::BodyTooLarge { .. }
            | RouterError::MethodNotAllowed { .. }
            | RouterError::BadRequestTarget(_)
            | RouterError::Forbidden { .. }
            | RouterError::KeyRefused(_)
            // An open breaker is there to fail fast: an SDK waiting out its retry-after (30 s
            // and more) inside one call is what it prevents. The caller may retry after it.
            | RouterError::CircuitOpen { .. }
            // No answer in time: the provider has the request and may still be generating (and
            // billing) it; another attempt would be a second call.
            | RouterError::UpstreamTimeout { .. }
            // The port is closed next: an SDK's retry would fail to connect, and could run the
            // call twice elsewhere.
            | RouterError::RouterStopped
            | RouterError::InvalidApiKey => Some(false),
            _ => None,
        }
    }

    /// The JSON body in the provider's own error shape.
    pub fn body(&self, shape: Provider) -> serde_json::Value {
        let message = self.to_string();
        match shape {
            Provider::OpenAi => serde_json::json!({
                "error": { "message": message, "type": self.error_type(shape), "param": null, "code": self.openai_code() }
            }),
            Provider::Anthropic => serde_json::json!({
                "type": "error",
                "error": { "type": self.error_type(shape), "message": message }
            }),
        }
    }

    /// The complete HTTP response in the provider's shape.
    pub fn into_response(self, shape: Provider) -> Response<Body> {
        let status = self.status(shape);
        let body = serde_json::to_vec(&self.body(shape)).unwrap_or_default();
        let mut resp = Response::new(Body::from(body));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert("x-iron-cage-error", HeaderValue::from_static(self.code()));
        if let Some(retry) = self.should_retry() {
            h.insert(
                "x-should-retry",
                HeaderValue::from_static(if retry { "true" } else { "false" }),
            );
        }
        if let RouterError::MethodNotAllowed { .. } = &self {
            h.insert("allow", HeaderValue::from_static(FORWARDED_METHODS));
        }
        if let RouterError::CircuitOpen {
            retry_after_secs, ..
        }
        | RouterError::TooManyRequests {
            retry_after_secs, ..
        } = &self
        {
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.clamp(&1, &60).to_string()) {
                h.insert("retry-after", v);
            }
        }
        resp
    }

    /// An SSE error event in the provider's shape, used to end a stream cleanly after headers were sent.
    pub fn sse_event(&self, shape: Provider) -> String {
        let body = self.body(shape);
        match shape {
            Provider::Anthropic => format!("event: error\ndata: {body}\n\n"),
            Provider::OpenAi => format!("event: error\ndata: {body}\n\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatch_message_is_exact() {
        let e = RouterError::ProviderMismatch {
            requested: Provider::Anthropic,
            configured: Provider::OpenAi,
        };
        assert_eq!(
            e.to_string(),
            "Provider mismatch: you requested 'anthropic' but your Iron Cage token has 'openai' key configured. Please configure a 'anthropic' provider key in your Iron Cage dashboard."
        );
        assert_eq!(e.status(Provider::OpenAi), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn shapes() {
        let e = RouterError::InvalidApiKey;
        let o = e.body(Provider::OpenAi);
        assert_eq!(o["error"]["message"], "Invalid API key");
        assert_eq!(o["error"]["code"], "invalid_api_key");
        let a = e.body(Provider::Anthropic);
        assert_eq!(a["type"], "error");
        assert_eq!(a["error"]["type"], "authentication_error");
        let c = RouterError::CircuitOpen {
            message: "x".into(),
            retry_after_secs: 5,
        };
        assert_eq!(c.status(Provider::Anthropic).as_u16(), 529);
        assert_eq!(c.status(Provider::OpenAi).as_u16(), 503);
    }
}
