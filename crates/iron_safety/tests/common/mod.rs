//! Helpers shared by the streaming tests: the redact-everything response guard, and a text run
//! through it whole or streamed in pieces.

use iron_safety::{SafetyEngine, SafetyPolicy, StreamRedactor, Tally, TextGuard};
use std::sync::Arc;

/// The response guard of a policy that redacts every kind.
pub fn guard() -> Arc<TextGuard> {
    let policy =
        SafetyPolicy::from_json_str(r#"{"response":{"default":"redact"}}"#).expect("policy");
    SafetyEngine::new(&policy).expect("engine").response_guard()
}

/// `text` pushed `size` characters at a time, then flushed: what the client gets.
pub fn streamed(guard: &Arc<TextGuard>, text: &str, size: usize) -> String {
    let mut r = StreamRedactor::new(guard.clone());
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    for piece in chars.chunks(size) {
        out.push_str(&r.push(&piece.iter().collect::<String>()));
    }
    out.push_str(&r.finish());
    out
}

/// `text` redacted whole.
pub fn whole(guard: &TextGuard, text: &str) -> String {
    guard
        .process(text, &mut Tally::default())
        .unwrap_or_else(|| text.to_string())
}
