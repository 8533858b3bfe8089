//! Millisecond clocks: a monotonic one for production and a manual one for tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// A source of monotonic milliseconds (the origin is arbitrary but fixed).
pub trait Clock: Send + Sync {
    /// Milliseconds since this clock's origin; never goes backwards.
    fn now_ms(&self) -> u64;
}

/// Monotonic clock measured from the `Instant` it was created at.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// A clock moved only by hand; clones share the same time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl ManualClock {
    /// A manual clock reading `start_ms`.
    pub fn new(start_ms: u64) -> Self {
        Self {
            now: Arc::new(AtomicU64::new(start_ms)),
        }
    }

    /// Moves the clock forward by `ms` (saturating).
    pub fn advance(&self, ms: u64) {
        let _ = self
            .now
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(ms))
            });
    }

    /// Sets the clock to `ms`; tests must not move it backwards.
    pub fn set(&self, ms: u64) {
        self.now.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_clones_share_time() {
        let a = ManualClock::new(100);
        let b = a.clone();
        a.advance(50);
        assert_eq!(b.now_ms(), 150);
        b.set(1_000);
        assert_eq!(a.now_ms(), 1_000);
        a.advance(u64::MAX);
        assert_eq!(a.now_ms(), u64::MAX);
    }

    #[test]
    fn system_clock_does_not_go_backwards() {
        let c = SystemClock::new();
        let t1 = c.now_ms();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let t2 = c.now_ms();
        assert!(t2 >= t1 + 4, "t1={t1} t2={t2}");
    }
}
