//! The `error` event: failures a user cannot see in a call's own answer (the state file could not
//! take rows, the dashboard link is down). Each code is emitted at most once per
//! [`REPEAT_AFTER`]; messages are built here from counts and fixed text, never from a key, a
//! token or a URL.

use crate::events::{now_ms, EventBus, RouterEvent};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The same code is emitted again at most this often (what happened meanwhile is summed up in
/// the next one, or counted in `stats()`).
pub const REPEAT_AFTER: Duration = Duration::from_secs(60);

/// Rows of the ledger or audit trail could not be written to the state file.
pub const STATE_WRITE_FAILED: &str = "STATE_WRITE_FAILED";
/// The dashboard link (`dashboardUrl`) could not connect, or dropped.
pub const DASHBOARD_UNREACHABLE: &str = "DASHBOARD_UNREACHABLE";

/// At most once per interval for each key (an event's code or reason).
#[derive(Default)]
pub struct Throttle {
    last: Mutex<HashMap<&'static str, Instant>>,
}

impl Throttle {
    /// True, and counted as the last time, unless `key` passed within `every`.
    pub fn pass(&self, key: &'static str, every: Duration) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.get(key).is_some_and(|at| at.elapsed() < every) {
            return false;
        }
        last.insert(key, Instant::now());
        true
    }

    /// The next `pass` of `key` is true.
    pub fn forget(&self, key: &'static str) {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// Rate-limited `error` events of one router.
#[derive(Default)]
pub struct ErrorEvents {
    last: Throttle,
}

impl ErrorEvents {
    /// Emits `code` with `message` (and logs it) unless the same code was emitted within
    /// [`REPEAT_AFTER`]; whether it was emitted.
    pub fn report(&self, events: &EventBus, code: &'static str, message: String) -> bool {
        if !self.last.pass(code, REPEAT_AFTER) {
            return false;
        }
        tracing::warn!(target: "iron_cage", code, "{message}");
        events.emit(RouterEvent::Error {
            ts_ms: now_ms(),
            code: code.to_string(),
            message,
        });
        true
    }

    /// Forget when `code` was last emitted: the next failure is reported at once (the thing it
    /// reports recovered).
    pub fn clear(&self, code: &'static str) {
        self.last.forget(code);
    }
}

/// Watches the state writer's counters and reports rows it could not write (an `error` event at
/// most once a minute, with what was lost since the last one). Ends with `stop`.
pub(crate) async fn watch_state_file(
    shared: std::sync::Arc<crate::server::Shared>,
    stop: tokio_util::sync::CancellationToken,
) {
    let store = &shared.policies.ledger.store;
    let mut reported = store.stats();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = store.stats();
        let failed = now.failed.saturating_sub(reported.failed);
        let dropped = now.dropped.saturating_sub(reported.dropped);
        if failed == 0 && dropped == 0 {
            continue;
        }
        let message = state_message(failed, dropped);
        if shared
            .errors
            .report(&shared.events, STATE_WRITE_FAILED, message)
        {
            reported = now;
        }
    }
}

fn state_message(failed: u64, dropped: u64) -> String {
    let rows = |n: u64| {
        if n == 1 {
            "1 row".to_string()
        } else {
            format!("{n} rows")
        }
    };
    let mut parts = Vec::new();
    if failed > 0 {
        parts.push(format!(
            "{} rejected by SQLite (check the disk's free space and the file's permissions)",
            rows(failed)
        ));
    }
    if dropped > 0 {
        parts.push(format!(
            "{} dropped because the state writer could not keep up (its queue was full)",
            rows(dropped)
        ));
    }
    format!(
        "the state file (statePath) lost ledger or audit rows: {}; spent restored from it will be low by their cost. stats().ledger counts them",
        parts.join(", ")
    )
}
