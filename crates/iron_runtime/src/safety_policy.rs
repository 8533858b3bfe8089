//! PII and secret policy for one router: the compiled engine plus which directions do anything.

use crate::config::ConfigError;
use crate::events::{now_ms, EventBus, PiiSummary, RouterEvent};
use crate::exchange::Api;
use iron_safety::{
    Action, ApiShape, Detection, Direction, PiiKind, SafetyEngine, SafetyPolicy as Policy,
};

/// The compiled `safety` option.
pub struct SafetyPolicy {
    pub engine: SafetyEngine,
    /// Some request-side type is not `off`: prompts are scanned.
    pub request_active: bool,
    /// Some response-side type is not `off`: answers are scanned.
    pub response_active: bool,
    /// Some response-side type is `redact` or `block`: answers may be changed or stopped.
    pub response_rewrites: bool,
}

/// The shape a request body is read in: a `count_tokens` body is a Messages body (its prompt goes to
/// the provider as well, so it is checked like one).
pub fn request_shape(api: Api) -> ApiShape {
    match api {
        Api::AnthropicCountTokens => ApiShape::AnthropicMessages,
        other => api_shape(other),
    }
}

/// The body shape the safety engine knows for an API.
pub fn api_shape(api: Api) -> ApiShape {
    match api {
        Api::OpenAiChat => ApiShape::OpenAiChat,
        Api::OpenAiCompletions => ApiShape::OpenAiCompletions,
        Api::OpenAiResponses => ApiShape::OpenAiResponses,
        Api::OpenAiEmbeddings => ApiShape::OpenAiEmbeddings,
        Api::AnthropicMessages => ApiShape::AnthropicMessages,
        Api::AnthropicCountTokens | Api::Other => ApiShape::Other,
    }
}

impl SafetyPolicy {
    /// Compile the `safety` option (defaults: requests block secrets and log the rest; responses
    /// redact secrets and log the rest).
    pub fn from_option(v: Option<&serde_json::Value>) -> Result<SafetyPolicy, ConfigError> {
        let policy = match v {
            Some(v) => Policy::from_value(v).map_err(|e| ConfigError {
                field: e.field.clone(),
                message: e.message.clone(),
            })?,
            None => Policy::from_value(&serde_json::json!({})).map_err(|e| ConfigError {
                field: e.field,
                message: e.message,
            })?,
        };
        let any = |d: Direction, wanted: &dyn Fn(Action) -> bool| {
            let customs = policy
                .custom
                .iter()
                .map(|c| PiiKind::Custom(c.name.clone()));
            PiiKind::BUILT_IN
                .iter()
                .cloned()
                .chain(customs)
                .any(|k| wanted(policy.direction(d).action(&k, d)))
        };
        let request_active = any(Direction::Request, &|a| a != Action::Off);
        let response_active = any(Direction::Response, &|a| a != Action::Off);
        let response_rewrites = any(Direction::Response, &|a| {
            matches!(a, Action::Redact | Action::Block)
        });
        let engine = SafetyEngine::new(&policy).map_err(|e| ConfigError {
            field: e.field,
            message: e.message,
        })?;
        Ok(SafetyPolicy {
            engine,
            request_active,
            response_active,
            response_rewrites,
        })
    }
}

/// Publish a `pii` event for one request and direction.
pub fn report(events: &EventBus, request_id: u64, direction: &str, detections: &[Detection]) {
    if detections.is_empty() {
        return;
    }
    let detections = detections
        .iter()
        .map(|d| PiiSummary {
            kind: d.kind.policy_key().to_string(),
            count: u64::from(d.count),
            action: d.action.as_str().to_string(),
            sha256: d.value_sha256.clone(),
        })
        .collect();
    events.emit(RouterEvent::Pii {
        request_id,
        ts_ms: now_ms(),
        direction: direction.into(),
        detections,
    });
}
