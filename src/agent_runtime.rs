//! `NativeAgentRuntime`: the JS face of `iron_runtime::agent::AgentRuntime`. Values cross as JSON strings.

use crate::errors::{coded, guard};
use iron_runtime::agent::{spec::duration_ms, AgentError, AgentRuntime, AgentSpec, StopSignal};
use napi::bindgen_prelude::within_runtime_if_available;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;
use std::sync::Arc;
use std::time::Duration;

/// Batches of events as a JSON array string; unref'd (never keeps Node alive), bounded queue.
type EventSink = ThreadsafeFunction<String, (), String, Status, false, true, 256>;
/// Log lines, one string per call; unref'd, bounded queue (lines are dropped when JS is busy).
type LogSink = ThreadsafeFunction<String, (), String, Status, false, true, 1024>;

fn to_js(e: AgentError) -> napi::Error<String> {
    coded(e.code(), e.to_string())
}

/// Serialised JSON, or `null` if serialising failed (it cannot for these plain structs).
fn or_null(r: serde_json::Result<String>) -> String {
    r.unwrap_or_else(|_| "null".into())
}

/// The grace as a duration; the TS facade validates it, so an invalid value falls back to the default.
fn grace(ms: Option<f64>) -> Option<Duration> {
    ms.and_then(|g| duration_ms("graceMs", g, 3_600_000.0).ok())
}

#[napi]
pub struct NativeAgentRuntime {
    inner: Arc<AgentRuntime>,
}

#[napi]
impl NativeAgentRuntime {
    /// `{ router: { ...LlmRouter options }, statePath? }`.
    #[napi(constructor)]
    pub fn new(options_json: String) -> napi::Result<Self, String> {
        guard("AgentRuntime constructor", || {
            let rt = AgentRuntime::from_json(&options_json).map_err(to_js)?;
            Ok(NativeAgentRuntime {
                inner: Arc::new(rt),
            })
        })
    }

    /// Send the log lines (redacted) of the agents' routers started from now on to `callback`.
    #[napi(ts_args_type = "callback: (line: string) => void")]
    pub fn attach_logger(&self, callback: LogSink) {
        let cb: iron_telemetry::LineCallback = Arc::new(move |line: &str| {
            let _ = callback.call(line.to_string(), ThreadsafeFunctionCallMode::NonBlocking);
        });
        self.inner.attach_logger(cb);
    }

    /// Start an agent; returns its info as JSON. Spawn errors throw (`SPAWN_FAILED`).
    #[napi]
    pub fn start_agent(&self, spec_json: String) -> napi::Result<String, String> {
        guard("AgentRuntime.startAgent", || {
            let spec = AgentSpec::from_json(&spec_json)
                .map_err(|e| coded("INVALID_OPTIONS", e.to_string()))?;
            let agent =
                within_runtime_if_available(|| self.inner.start_agent(spec)).map_err(to_js)?;
            Ok(or_null(serde_json::to_string(&agent.info())))
        })
    }

    /// The agent's info as JSON, or null for an unknown id.
    #[napi]
    pub fn agent_json(&self, id: String) -> Option<String> {
        self.inner
            .agent(&id)
            .map(|a| or_null(serde_json::to_string(&a.info())))
    }

    /// Requests, spend, last activity as JSON, or null for an unknown id.
    #[napi]
    pub fn metrics_json(&self, id: String) -> Option<String> {
        self.inner
            .agent(&id)
            .map(|a| or_null(serde_json::to_string(&a.metrics())))
    }

    /// The agent router's full counters (by model, blocked by reason) as JSON.
    #[napi]
    pub fn stats_json(&self, id: String) -> Option<String> {
        self.inner
            .agent(&id)
            .map(|a| or_null(serde_json::to_string(&a.stats())))
    }

    /// Every agent's info as a JSON array.
    #[napi]
    pub fn list_json(&self) -> String {
        or_null(serde_json::to_string(&self.inner.list()))
    }

    /// Stop (`signal`, default SIGTERM; then SIGTERM and SIGKILL after the grace) and resolve with
    /// the final info; null for an unknown id. Also ends a wait for calls the ended agent left at
    /// the provider.
    #[napi]
    pub async fn stop_agent(
        &self,
        id: String,
        grace_ms: Option<f64>,
        signal: Option<String>,
    ) -> Option<String> {
        let first = signal
            .as_deref()
            .and_then(StopSignal::from_name)
            .unwrap_or_default();
        let info = self
            .inner
            .stop_agent_with(&id, grace(grace_ms), first)
            .await
            .ok()?;
        Some(or_null(serde_json::to_string(&info)))
    }

    /// Call `callback` once with the final info (JSON) when the agent has finished; false for an
    /// unknown id. A callback, not a promise: a pending promise would keep Node running, and
    /// `AgentRuntime.unref()` must let it exit while agents run (the facade's own timer keeps it
    /// alive otherwise).
    #[napi(ts_args_type = "id: string, callback: (info: string) => void")]
    pub fn on_agent_finished(&self, id: String, callback: EventSink) -> bool {
        let Some(agent) = self.inner.agent(&id) else {
            return false;
        };
        within_runtime_if_available(|| {
            tokio::spawn(async move {
                let info = or_null(serde_json::to_string(&agent.wait_finished().await));
                let _ = callback.call(info, ThreadsafeFunctionCallMode::NonBlocking);
            });
        });
        true
    }

    /// Stop every agent, flush the state store, refuse new agents.
    #[napi]
    pub async fn shutdown(&self, grace_ms: Option<f64>) {
        self.inner.shutdown(grace(grace_ms)).await;
    }

    /// Deliver `agent` events to `callback` in batches (a JSON array string per call).
    #[napi(ts_args_type = "callback: (batch: string) => void")]
    pub fn subscribe(&self, callback: EventSink) {
        let mut sub = self.inner.events().subscribe();
        within_runtime_if_available(|| {
            tokio::spawn(async move {
                while let Some(first) = sub.recv().await {
                    let mut batch = vec![first.json().to_owned()];
                    while let Some(e) = sub.try_recv() {
                        batch.push(e.json().to_owned());
                    }
                    let payload = format!("[{}]", batch.join(","));
                    if callback.call(payload, ThreadsafeFunctionCallMode::NonBlocking)
                        == Status::Closing
                    {
                        break;
                    }
                }
            });
        });
    }
}
