//! Remembers provider 429 `retry-after` deadlines per (provider, host, model).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::clock::Clock;
use crate::retry_after::MAX_HONOURED_RETRY_AFTER;

/// Per (provider, host, model) "throttled until" deadlines, kept apart from the breaker (429s are
/// not failures). Providers limit each model on its own (requests and tokens per minute), so a 429
/// for one model does not hold calls to another. A wait is honoured up to
/// [`MAX_HONOURED_RETRY_AFTER`]: a provider (or anything in between) asking for an hour or a day
/// must not stop every call of the agent for that long; a call after the cap that is still
/// limited gets a fresh 429 from the provider, which the client sees.
pub struct ThrottleTracker {
    clock: Arc<dyn Clock>,
    // Few entries at a time (one per limited model), dropped once past: a list scanned without
    // allocating a key.
    until_ms: Mutex<Vec<Entry>>,
}

struct Entry {
    provider: String,
    host: String,
    model: String,
    until_ms: u64,
}

impl Entry {
    fn is(&self, provider: &str, host: &str, model: &str) -> bool {
        self.provider == provider && self.host == host && self.model == model
    }
}

// More limited models than this at once is not a real provider: the oldest deadlines go.
const MAX_ENTRIES: usize = 256;

impl std::fmt::Debug for ThrottleTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThrottleTracker").finish_non_exhaustive()
    }
}

impl ThrottleTracker {
    /// An empty tracker reading time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            until_ms: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        self.until_ms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes a 429 for `model` asking to wait `retry_after` (capped at
    /// [`MAX_HONOURED_RETRY_AFTER`]); an existing later deadline is kept.
    pub fn record_throttle(&self, provider: &str, host: &str, model: &str, retry_after: Duration) {
        let wait = retry_after.min(MAX_HONOURED_RETRY_AFTER).as_millis() as u64;
        let now = self.clock.now_ms();
        let deadline = now.saturating_add(wait);
        let mut list = self.lock();
        list.retain(|e| e.until_ms > now);
        if let Some(e) = list.iter_mut().find(|e| e.is(provider, host, model)) {
            e.until_ms = e.until_ms.max(deadline);
            return;
        }
        if list.len() >= MAX_ENTRIES {
            list.remove(0);
        }
        list.push(Entry {
            provider: provider.to_string(),
            host: host.to_string(),
            model: model.to_string(),
            until_ms: deadline,
        });
    }

    /// Time left before `model` at (provider, host) may be called again, or `None` if not
    /// throttled.
    pub fn remaining(&self, provider: &str, host: &str, model: &str) -> Option<Duration> {
        let mut list = self.lock();
        if list.is_empty() {
            return None;
        }
        let now = self.clock.now_ms();
        let i = list.iter().position(|e| e.is(provider, host, model))?;
        let until = list[i].until_ms;
        if until > now {
            return Some(Duration::from_millis(until - now));
        }
        list.swap_remove(i);
        None
    }

    /// Forgets the deadline for `model` at (provider, host), e.g. after a successful call.
    pub fn clear(&self, provider: &str, host: &str, model: &str) {
        self.lock().retain(|e| !e.is(provider, host, model));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn deadline_counts_down_and_expires() {
        let clock = ManualClock::new(5_000);
        let t = ThrottleTracker::new(Arc::new(clock.clone()));
        let host = "api.openai.com";
        assert_eq!(t.remaining("openai", host, "gpt-4o"), None);
        t.record_throttle("openai", host, "gpt-4o", Duration::from_secs(20));
        clock.advance(5_000);
        assert_eq!(
            t.remaining("openai", host, "gpt-4o"),
            Some(Duration::from_secs(15))
        );
        // Other models, hosts and providers are unaffected.
        assert_eq!(t.remaining("openai", host, "gpt-4o-mini"), None);
        assert_eq!(t.remaining("openai", "eu.api.openai.com", "gpt-4o"), None);
        assert_eq!(t.remaining("anthropic", host, "gpt-4o"), None);
        clock.advance(15_000);
        assert_eq!(t.remaining("openai", host, "gpt-4o"), None);
    }

    #[test]
    fn later_deadline_wins_and_clear_forgets() {
        let clock = ManualClock::new(0);
        let t = ThrottleTracker::new(Arc::new(clock));
        t.record_throttle("anthropic", "h", "m", Duration::from_secs(30));
        t.record_throttle("anthropic", "h", "m", Duration::from_secs(2));
        assert_eq!(
            t.remaining("anthropic", "h", "m"),
            Some(Duration::from_secs(30))
        );
        t.clear("anthropic", "h", "m");
        assert_eq!(t.remaining("anthropic", "h", "m"), None);
    }

    #[test]
    fn a_wait_longer_than_the_cap_is_held_for_the_cap_only() {
        let clock = ManualClock::new(0);
        let t = ThrottleTracker::new(Arc::new(clock.clone()));
        t.record_throttle("openai", "h", "m", Duration::from_secs(86_400));
        assert_eq!(
            t.remaining("openai", "h", "m"),
            Some(MAX_HONOURED_RETRY_AFTER)
        );
        t.record_throttle("openai", "h", "n", Duration::MAX);
        assert_eq!(
            t.remaining("openai", "h", "n"),
            Some(MAX_HONOURED_RETRY_AFTER)
        );
        clock.advance(MAX_HONOURED_RETRY_AFTER.as_millis() as u64);
        assert_eq!(t.remaining("openai", "h", "m"), None);
        assert_eq!(t.remaining("openai", "h", "n"), None);
    }
}
