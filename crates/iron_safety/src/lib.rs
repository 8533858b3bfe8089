//! iron_safety: PII and secret detection for the Iron Cage proxy.
//!
//! Recognizers (one per file behind [`Recognizer`]) are combined into one [`Scanner`] that finds
//! every kind in a single pass. A [`SafetyPolicy`] says per kind and direction whether to ignore,
//! log, redact or block. [`SafetyEngine`] applies it to request and response bodies of the known
//! provider APIs; [`StreamRedactor`] and [`SseOutputFilter`] do the same for streamed answers.

mod audit;
mod b64;
mod guard;
mod inspect;
mod json_text;
mod kind;
pub mod naive;
mod policy;
mod recognizer;
pub mod recognizers;
mod scanner;
mod sse;
mod stream;
mod text_delta;
pub mod unique;
mod whole_fast;

pub use audit::{sha256_hex, value_digest, Detection, DigestKey, Tally};
pub use guard::{TextGuard, SCAN_ORDER};
pub use inspect::{ApiShape, RequestVerdict, ResponseVerdict, Verdict};
pub use kind::{Action, Direction, PiiKind};
pub use policy::{CustomPattern, DirectionPolicy, PolicyError, SafetyPolicy};
pub use recognizer::{Confirmed, Recognizer};
pub use scanner::{Finding, Scanner};
pub use sse::{splice_text, FilterOutcome, RunOutcome, SseEvent, SseOutputFilter};
pub use stream::{StreamRedactor, RUN_CAP_BYTES, WINDOW_BYTES};
pub use text_delta::{DeltaTemplate, TextDelta};
pub use whole_fast::{UnchangedAnswer, UsageRead};

use serde_json::Value;
use std::sync::Arc;

/// A compiled policy: scanners for both directions, ready to inspect bodies and streams.
pub struct SafetyEngine {
    request: Arc<TextGuard>,
    response: Arc<TextGuard>,
}

impl SafetyEngine {
    /// Compiles `policy`; fails only on a custom regex the combined scanner cannot hold.
    pub fn new(policy: &SafetyPolicy) -> Result<SafetyEngine, PolicyError> {
        let key = match &policy.digest_key {
            Some(secret) => DigestKey::from_secret(secret),
            None => DigestKey::random(),
        };
        let compile = |d: Direction| {
            TextGuard::with_digest_key(policy, d, key.clone())
                .map(Arc::new)
                .map_err(|e| PolicyError {
                    field: "safety.custom".to_string(),
                    message: format!("patterns cannot be combined: {e}"),
                })
        };
        Ok(SafetyEngine {
            request: compile(Direction::Request)?,
            response: compile(Direction::Response)?,
        })
    }

    /// Scans and redacts the prompt text of a request body in place.
    pub fn inspect_request(&self, api: ApiShape, body: &mut Value) -> RequestVerdict {
        inspect::inspect_request(&self.request, api, body)
    }

    /// Scans and redacts the answer text of a non-streamed response body in place.
    pub fn inspect_response(&self, api: ApiShape, body: &mut Value) -> ResponseVerdict {
        inspect::inspect_response(&self.response, api, body)
    }

    /// The verdict on a non-streamed response body when it can be sent exactly as it came, found
    /// from its bytes without building a tree; `None` means: parse it and use
    /// [`SafetyEngine::inspect_response`] (an answer shape this reader is unsure of, or a value to
    /// redact or block). Where both answer, their verdicts are equal.
    pub fn inspect_response_unchanged(
        &self,
        api: ApiShape,
        body: &[u8],
    ) -> Option<ResponseVerdict> {
        whole_fast::inspect_response_unchanged(&self.response, api, body).map(|a| a.verdict)
    }

    /// [`SafetyEngine::inspect_response_unchanged`], also handing back the answer's top-level
    /// `usage` member read in the same pass (the caller meters the call without parsing again).
    pub fn read_response_unchanged(&self, api: ApiShape, body: &[u8]) -> Option<UnchangedAnswer> {
        whole_fast::inspect_response_unchanged(&self.response, api, body)
    }

    /// The request-direction guard (scanner plus actions).
    pub fn request_guard(&self) -> Arc<TextGuard> {
        self.request.clone()
    }

    /// The response-direction guard, as taken by [`SseOutputFilter::new`] and [`StreamRedactor::new`].
    pub fn response_guard(&self) -> Arc<TextGuard> {
        self.response.clone()
    }

    /// A filter for one streamed response of `api`.
    pub fn sse_filter(&self, api: ApiShape) -> SseOutputFilter {
        SseOutputFilter::new(api, self.response.clone())
    }
}
