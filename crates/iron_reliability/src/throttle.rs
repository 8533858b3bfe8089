//! Remembers provider 429 `retry-after` deadlines per (provider, host).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::clock::Clock;

/// Per (provider, host) "throttled until" deadlines, kept apart from the breaker (429s are not failures).
pub struct ThrottleTracker {
    clock: Arc<dyn Clock>,
    // Nested maps so lookups by `&str` need no key allocation.
    until_ms: Mutex<HashMap<String, HashMap<String, u64>>>,
}

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
            until_ms: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, HashMap<String, u64>>> {
        self.until_ms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes a 429 asking to wait `retry_after`; an existing later deadline is kept.
    pub fn record_throttle(&self, provider: &str, host: &str, retry_after: Duration) {
        let wait = u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX);
        let deadline = self.clock.now_ms().saturating_add(wait);
        let mut map = self.lock();
        let hosts = match map.get_mut(provider) {
            Some(hosts) => hosts,
            None => map.entry(provider.to_string()).or_default(),
        };
        match hosts.get_mut(host) {
            Some(existing) => *existing = (*existing).max(deadline),
            None => {
                hosts.insert(host.to_string(), deadline);
            }
        }
    }

    /// Time left before (provider, host) may be called again, or `None` if not throttled.
    pub fn remaining(&self, provider: &str, host: &str) -> Option<Duration> {
        let now = self.clock.now_ms();
        let mut map = self.lock();
        let hosts = map.get_mut(provider)?;
        let until = *hosts.get(host)?;
        if until > now {
            return Some(Duration::from_millis(until - now));
        }
        hosts.remove(host);
        None
    }

    /// Forgets the deadline for (provider, host), e.g. after a successful call.
    pub fn clear(&self, provider: &str, host: &str) {
        if let Some(hosts) = self.lock().get_mut(provider) {
            hosts.remove(host);
        }
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
        assert_eq!(t.remaining("openai", "api.openai.com"), None);
        t.record_throttle("openai", "api.openai.com", Duration::from_secs(20));
        clock.advance(5_000);
        assert_eq!(
            t.remaining("openai", "api.openai.com"),
            Some(Duration::from_secs(15))
        );
        // Other hosts and providers are unaffected.
        assert_eq!(t.remaining("openai", "eu.api.openai.com"), None);
        assert_eq!(t.remaining("anthropic", "api.openai.com"), None);
        clock.advance(15_000);
        assert_eq!(t.remaining("openai", "api.openai.com"), None);
    }

    #[test]
    fn later_deadline_wins_and_clear_forgets() {
        let clock = ManualClock::new(0);
        let t = ThrottleTracker::new(Arc::new(clock));
        t.record_throttle("anthropic", "h", Duration::from_secs(30));
        t.record_throttle("anthropic", "h", Duration::from_secs(2));
        assert_eq!(t.remaining("anthropic", "h"), Some(Duration::from_secs(30)));
        t.record_throttle("anthropic", "h", Duration::MAX);
        assert_eq!(
            t.remaining("anthropic", "h"),
            Some(Duration::from_millis(u64::MAX))
        );
        t.clear("anthropic", "h");
        assert_eq!(t.remaining("anthropic", "h"), None);
    }
}
