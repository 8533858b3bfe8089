//! Counters behind `router.stats()` and `/_iron/stats`. Updated once per request at settle time.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Per-model totals.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelStats {
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    pub cost_micros: u64,
}

/// A snapshot of the router's counters.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsSnapshot {
    pub requests: u64,
    pub completed: u64,
    pub failed: u64,
    pub blocked: u64,
    pub blocked_by_reason: BTreeMap<String, u64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    pub cost_micros: u64,
    pub by_model: BTreeMap<String, ModelStats>,
    pub last_model: Option<String>,
    pub events_dropped: u64,
    /// Dashboard messages lost while the dashboard was offline (the oldest of more than 1,000).
    pub dashboard_dropped: u64,
    /// Upstream attempts repeated by the router's retry policy.
    pub retries: u64,
    /// The state store's writer (filled in by `Shared::stats_snapshot`).
    pub ledger: LedgerStats,
}

/// Rows of the ledger and audit trail: committed to SQLite, waiting for the writer, refused because
/// the queue was full (or the store closed), lost because SQLite rejected them.
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerStats {
    pub committed: u64,
    pub pending: u64,
    pub dropped: u64,
    pub failed: u64,
}

/// Most models `by_model` lists; calls of further models add up under [`OTHER_MODELS`].
pub const MAX_MODELS: usize = 1_024;
/// Longest model name `by_model` keeps (real ones are under 100 bytes).
pub const MAX_MODEL_NAME_BYTES: usize = 256;
/// The `by_model` entry of the models past [`MAX_MODELS`] and of names over
/// [`MAX_MODEL_NAME_BYTES`].
pub const OTHER_MODELS: &str = "(other)";

/// Thread-safe counters; the lock is held only for a few additions.
#[derive(Default)]
pub struct Stats {
    inner: Mutex<StatsSnapshot>,
    /// Successful connections of the dashboard push link.
    pub dashboard_connects: std::sync::atomic::AtomicU64,
    /// Dashboard messages dropped while offline (the buffer is bounded).
    pub dashboard_dropped: std::sync::atomic::AtomicU64,
}

impl Stats {
    /// A request arrived.
    pub fn on_request(&self) {
        if let Ok(mut s) = self.inner.lock() {
            s.requests = s.requests.saturating_add(1);
        }
    }

    /// The router retried an upstream call.
    pub fn on_retry(&self) {
        if let Ok(mut s) = self.inner.lock() {
            s.retries = s.retries.saturating_add(1);
        }
    }

    /// The router refused a request itself.
    pub fn on_blocked(&self, reason: &str) {
        if let Ok(mut s) = self.inner.lock() {
            s.blocked = s.blocked.saturating_add(1);
            *s.blocked_by_reason.entry(reason.to_string()).or_default() += 1;
        }
    }

    /// A forwarded request finished.
    pub fn on_settled(&self, model: Option<&str>, ok: bool, m: &ModelStats) {
        if let Ok(mut s) = self.inner.lock() {
            if ok {
                s.completed = s.completed.saturating_add(1);
            } else {
                s.failed = s.failed.saturating_add(1);
            }
            s.input_tokens = s.input_tokens.saturating_add(m.input_tokens);
            s.output_tokens = s.output_tokens.saturating_add(m.output_tokens);
            s.cache_read_tokens = s.cache_read_tokens.saturating_add(m.cache_read_tokens);
            s.cache_write_tokens = s.cache_write_tokens.saturating_add(m.cache_write_tokens);
            s.reasoning_tokens = s.reasoning_tokens.saturating_add(m.reasoning_tokens);
            s.cost_micros = s.cost_micros.saturating_add(m.cost_micros);
            if let Some(mut model) = model {
                // The name is the request's: past the bound on entries, and for names longer than
                // any model's, calls add up under one entry, so an agent naming models at random
                // cannot grow this.
                if model.len() > MAX_MODEL_NAME_BYTES
                    || (!s.by_model.contains_key(model) && s.by_model.len() >= MAX_MODELS - 1)
                {
                    model = OTHER_MODELS;
                }
                // The model's name is copied only the first time it is seen (once per call cost
                // two allocations under the lock).
                if !s.by_model.contains_key(model) {
                    s.by_model.insert(model.to_string(), ModelStats::default());
                }
                let Some(e) = s.by_model.get_mut(model) else {
                    return;
                };
                e.requests = e.requests.saturating_add(1);
                e.input_tokens = e.input_tokens.saturating_add(m.input_tokens);
                e.output_tokens = e.output_tokens.saturating_add(m.output_tokens);
                e.cache_read_tokens = e.cache_read_tokens.saturating_add(m.cache_read_tokens);
                e.cache_write_tokens = e.cache_write_tokens.saturating_add(m.cache_write_tokens);
                e.reasoning_tokens = e.reasoning_tokens.saturating_add(m.reasoning_tokens);
                e.cost_micros = e.cost_micros.saturating_add(m.cost_micros);
                if s.last_model.as_deref() != Some(model) {
                    s.last_model = Some(model.to_string());
                }
            }
        }
    }

    /// Requests so far, without copying the rest.
    pub fn requests(&self) -> u64 {
        self.inner.lock().map(|s| s.requests).unwrap_or_default()
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        self.inner.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settled_calls_add_up_per_model_and_the_last_model_follows() {
        let stats = Stats::default();
        let call = |cost| ModelStats {
            input_tokens: 10,
            output_tokens: 2,
            cost_micros: cost,
            ..Default::default()
        };
        stats.on_settled(Some("gpt-4o-mini"), true, &call(5));
        stats.on_settled(Some("gpt-4o"), false, &call(50));
        stats.on_settled(Some("gpt-4o-mini"), true, &call(7));
        let s = stats.snapshot();
        assert_eq!((s.completed, s.failed, s.cost_micros), (2, 1, 62));
        let mini = &s.by_model["gpt-4o-mini"];
        assert_eq!(
            (mini.requests, mini.input_tokens, mini.cost_micros),
            (2, 20, 12)
        );
        assert_eq!(s.by_model["gpt-4o"].requests, 1);
        assert_eq!(s.last_model.as_deref(), Some("gpt-4o-mini"));
        stats.on_settled(Some("gpt-4o"), true, &call(1));
        assert_eq!(stats.snapshot().last_model.as_deref(), Some("gpt-4o"));
    }

    #[test]
    fn model_names_past_the_bound_add_up_under_one_entry() {
        let stats = Stats::default();
        let call = ModelStats {
            cost_micros: 1,
            ..Default::default()
        };
        for i in 0..3 * MAX_MODELS {
            stats.on_settled(Some(&format!("random-model-{i}")), false, &call);
        }
        stats.on_settled(Some(&"x".repeat(MAX_MODEL_NAME_BYTES + 1)), false, &call);
        // A model seen before the bound keeps its own entry.
        stats.on_settled(Some("random-model-0"), false, &call);
        let s = stats.snapshot();
        assert_eq!(s.by_model.len(), MAX_MODELS);
        assert_eq!(s.by_model["random-model-0"].requests, 2);
        assert_eq!(
            s.by_model[OTHER_MODELS].requests,
            (3 * MAX_MODELS - (MAX_MODELS - 1) + 1) as u64
        );
        assert_eq!(
            s.by_model.values().map(|m| m.cost_micros).sum::<u64>(),
            s.cost_micros
        );
        assert_eq!(stats.requests(), 0);
    }
}
