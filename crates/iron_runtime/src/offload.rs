//! A call's own CPU work on a large body (its parse, the prompt's scan and redaction) runs on the
//! runtime's blocking pool, not on its connection thread: each connection thread serves many
//! connections (see `conn_workers`), which would all wait while one large prompt is read. Small
//! bodies, nearly all of them, stay on the connection thread, where a hand-off would cost more
//! than the work.

use bytes::Bytes;
use serde_json::Value;

/// Bodies from this size on are read on the blocking pool (about a millisecond of parse and scan).
pub(crate) const LARGE_BODY: usize = 256 * 1024;

/// Runs `work` on the blocking pool; `None` if it panicked.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    tokio::task::spawn_blocking(work).await.ok()
}

/// [`crate::unique_json::parse_unique_masked`], on the blocking pool for a large body.
pub(crate) async fn parse_masked(body: &Bytes) -> Result<(Value, Option<Vec<u8>>), String> {
    if body.len() < LARGE_BODY {
        return crate::unique_json::parse_unique_masked(body).map_err(|e| e.to_string());
    }
    let bytes = body.clone();
    blocking(move || crate::unique_json::parse_unique_masked(&bytes).map_err(|e| e.to_string()))
        .await
        .unwrap_or_else(|| Err("reading the body failed".into()))
}
