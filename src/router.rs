//! `NativeRouter`: the JS face of `iron_runtime::Router`.

use crate::errors::{coded, guard};
use iron_runtime::Router;
use napi::bindgen_prelude::within_runtime_if_available;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long events gather before one batch is handed to JS (see `subscribe`).
const EVENT_BATCH_WINDOW: Duration = Duration::from_millis(2);

/// Batches of events as a JSON array string; unref'd (never keeps Node alive), bounded queue.
type EventSink = ThreadsafeFunction<String, (), String, Status, false, true, 64>;
/// The first key fetch's outcome, once; unref'd.
type ReadySink = ThreadsafeFunction<String, (), String, Status, false, true, 1>;
/// Log lines, one per call; unref'd and bounded like events.
type LogSink = ThreadsafeFunction<String, (), String, Status, false, true, 1024>;

#[napi]
pub struct NativeRouter {
    inner: Arc<Router>,
    js_dropped: Arc<AtomicU64>,
}

#[napi]
impl NativeRouter {
    /// Bind 127.0.0.1:0 and start serving; the first key fetch runs in the background.
    #[napi(constructor)]
    pub fn new(options_json: String) -> napi::Result<Self, String> {
        guard("LlmRouter constructor", || {
            let router = within_runtime_if_available(|| Router::start_json(&options_json))
                .map_err(|e| coded(e.code(), e.to_string()))?;
            crate::release_freed_memory();
            Ok(NativeRouter {
                inner: Arc::new(router),
                js_dropped: Arc::new(AtomicU64::new(0)),
            })
        })
    }

    #[napi(getter)]
    pub fn port(&self) -> u32 {
        self.inner.port() as u32
    }

    #[napi(getter)]
    pub fn base_url(&self) -> String {
        self.inner.base_url()
    }

    #[napi(getter)]
    pub fn anthropic_base_url(&self) -> String {
        self.inner.anthropic_base_url()
    }

    #[napi(getter)]
    pub fn api_key(&self) -> String {
        self.inner.api_key().to_string()
    }

    #[napi(getter)]
    pub fn is_running(&self) -> bool {
        self.inner.is_running()
    }

    /// `openai`, `anthropic` (the provider of the last key fetched), `unknown` (no key could be
    /// fetched yet) or null (the first fetch is still running).
    #[napi(getter)]
    pub fn provider(&self) -> Option<String> {
        self.inner.provider_now().map(|r| match r {
            Ok(p) => p.as_str().to_string(),
            Err(_) => "unknown".to_string(),
        })
    }

    /// Why the provider is unknown (no key could be fetched yet), else null.
    #[napi(getter)]
    pub fn provider_error(&self) -> Option<String> {
        self.inner.provider_now().and_then(Result::err)
    }

    /// Calls `callback` once the first key fetch ended, or the router stopped before it did,
    /// with `provider + "\n" + reasonIfUnknown`. The callback is unref'd: a pending fetch never
    /// keeps Node alive (the router's own keep-alive handle does, until `stop()` or `unref()`).
    #[napi(ts_args_type = "callback: (outcome: string) => void")]
    pub fn on_ready(&self, callback: ReadySink) {
        let inner = self.inner.clone();
        within_runtime_if_available(|| {
            tokio::spawn(async move {
                let outcome = match inner.ready().await {
                    Ok(p) => format!("{}\n", p.as_str()),
                    Err(e) => format!("unknown\n{e}"),
                };
                let _ = callback.call(outcome, ThreadsafeFunctionCallMode::NonBlocking);
            });
        });
    }

    /// Stop serving (idempotent).
    #[napi]
    pub async fn stop(&self) {
        self.inner.stop().await;
    }

    /// USD spent by this router (from integer micro-USD).
    #[napi]
    pub fn total_spent_micros(&self) -> f64 {
        self.inner.total_spent_micros() as f64
    }

    /// `router.stats()` as JSON.
    #[napi]
    pub fn stats_json(&self) -> String {
        let mut snap = self.inner.shared().stats_snapshot();
        snap.events_dropped += self.js_dropped.load(Ordering::Relaxed);
        serde_json::to_string(&snap).unwrap_or_else(|_| "{}".into())
    }

    /// Budget status as JSON `{spentMicros, reservedMicros, limitMicros}`.
    #[napi]
    pub fn budget_json(&self) -> String {
        serde_json::to_string(&self.inner.budget_status()).unwrap_or_else(|_| "{}".into())
    }

    /// Set (or clear with a negative value) the budget in USD.
    #[napi]
    pub fn set_budget_usd(&self, usd: Option<f64>) -> napi::Result<(), String> {
        self.inner
            .set_budget_usd(usd)
            .map_err(|m| coded("INVALID_OPTIONS", m))
    }

    /// Send this router's log lines (redacted) to `callback`.
    #[napi(ts_args_type = "callback: (line: string) => void")]
    pub fn attach_logger(&self, callback: LogSink) {
        let cb: iron_telemetry::LineCallback = Arc::new(move |line: &str| {
            let _ = callback.call(line.to_string(), ThreadsafeFunctionCallMode::NonBlocking);
        });
        self.inner.shared().policies.logging.attach(cb);
    }

    /// Deliver events to `callback` in batches (a JSON array string per call). Events that cannot be
    /// queued because JS is busy are dropped and counted.
    #[napi(ts_args_type = "callback: (batch: string) => void")]
    pub fn subscribe(&self, callback: EventSink) {
        let mut sub = self.inner.events().subscribe();
        let dropped = self.js_dropped.clone();
        within_runtime_if_available(|| {
            tokio::spawn(async move {
                while let Some(first) = sub.recv().await {
                    // Collect for a short window before waking JS: one call per window instead of
                    // one per event keeps the host's event loop (and the cross-thread wake-ups) cheap
                    // under load, at the cost of at most a few milliseconds of event latency.
                    tokio::time::sleep(EVENT_BATCH_WINDOW).await;
                    let mut buf: Vec<u8> = Vec::with_capacity(8 * 1024);
                    buf.push(b'[');
                    let mut count = 0u64;
                    let mut next = Some(first);
                    while let Some(ev) = next.take() {
                        if count > 0 {
                            buf.push(b',');
                        }
                        // Serialised once per event and shared with the audit trail and
                        // WebSocket clients.
                        buf.extend_from_slice(ev.json().as_bytes());
                        count += 1;
                        if count < 512 {
                            next = sub.try_recv();
                        }
                    }
                    buf.push(b']');
                    let payload = String::from_utf8(buf).unwrap_or_else(|_| "[]".into());
                    match callback.call(payload, ThreadsafeFunctionCallMode::NonBlocking) {
                        Status::Ok => {}
                        Status::Closing => break,
                        _ => {
                            dropped.fetch_add(count, Ordering::Relaxed);
                        }
                    }
                }
            });
        });
    }
}
