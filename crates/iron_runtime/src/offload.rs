//! A call's own CPU work on a large body (its parse, the prompt's scan and redaction) runs on the
//! runtime's blocking pool, not on its connection thread: each connection thread serves many
//! connections (see `conn_workers`), which would all wait while one large prompt is read. Small
//! bodies, nearly all of them, stay on the connection thread, where a hand-off would cost more
//! than the work.

use bytes::Bytes;
use serde_json::Value;

/// Bodies from this size on are read on the blocking pool (about a millisecond of parse and scan).
pub(crate) const LARGE_BODY: usize = 256 * 1024;

/// At most this many large bodies are worked on at once (the rest wait their turn): the blocking
/// pool would otherwise start a thread for each.
static RUNNING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// Runs `work` on the blocking pool; `None` if it panicked.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let _turn = RUNNING.acquire().await.ok()?;
    tokio::task::spawn_blocking(work).await.ok()
}

/// [`crate::unique_json::parse_unique_masked`] (its error as text), on the blocking pool for a
/// large body. The outer error is the parse failing to run (a panic: the router's fault, a 500,
/// not the body's).
pub(crate) async fn parse_masked(
    body: &Bytes,
    shape: crate::Provider,
) -> Result<Result<(Value, Option<Vec<u8>>), String>, crate::pipeline::Denial> {
    let parse = |b: &[u8]| crate::unique_json::parse_unique_masked(b).map_err(|e| e.to_string());
    if body.len() < LARGE_BODY {
        return Ok(parse(body));
    }
    let bytes = body.clone();
    blocking(move || parse(&bytes))
        .await
        .ok_or_else(|| failed("reading the request body failed", shape))
}

/// The router's own failure (work moved off the connection thread panicked): a 500 whose reason
/// is `internal`, never the request's.
pub(crate) fn failed(what: &str, shape: crate::Provider) -> crate::pipeline::Denial {
    crate::pipeline::Denial::new(crate::RouterError::Internal(what.into()), shape, "internal")
}
