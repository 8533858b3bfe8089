//! The circuit breaker: CLOSED → OPEN → HALF_OPEN → CLOSED, with RAII permits.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::breaker_config::BreakerConfig;
use crate::breaker_machine::{Change, Machine, PermitKind};
use crate::clock::Clock;
use crate::error::ConfigError;
use crate::outcome::Outcome;

/// Called after every state change, outside the breaker's lock; must be quick and must not panic.
pub type BreakerListener = Arc<dyn Fn(&Transition) + Send + Sync>;

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls flow and are counted.
    Closed,
    /// Calls are rejected until the open period ends.
    Open,
    /// A few probe calls are admitted to test recovery.
    HalfOpen,
    /// The breaker is turned off by config; every call flows, nothing is counted.
    Disabled,
}

impl BreakerState {
    /// Stable lower-case name for logs and events (`closed`, `open`, `half_open`, `disabled`).
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Disabled => "disabled",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One state change and why it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// State before the change.
    pub from: BreakerState,
    /// State after the change.
    pub to: BreakerState,
    /// Human-readable cause, e.g. "5 consecutive failures" or "failure rate 60% over 10 calls".
    pub reason: String,
}

/// A call refused by the breaker; `Copy` so rejecting never allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// Milliseconds until a call may be admitted again (a short hint while half-open is full).
    pub retry_after_ms: u64,
    /// Clock time (ms) at which the next probe may be admitted.
    pub next_probe_at_ms: u64,
    /// State that caused the rejection (`Open` or `HalfOpen`).
    pub state: BreakerState,
}

impl Rejected {
    /// `retry_after_ms` rounded up to whole seconds and clamped to 1..=60, for a `retry-after` header.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after_ms.div_ceil(1_000).clamp(1, 60)
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.state {
            BreakerState::HalfOpen => write!(
                f,
                "circuit breaker is half-open and all probe slots are busy; retry in {} ms",
                self.retry_after_ms
            ),
            _ => write!(
                f,
                "circuit breaker is open after repeated upstream failures; retry in {} ms",
                self.retry_after_ms
            ),
        }
    }
}

impl std::error::Error for Rejected {}

/// Point-in-time view of a breaker for status endpoints and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSnapshot {
    /// Current state (an expired open period still reads `Open` until the next acquire).
    pub state: BreakerState,
    /// Failures among the calls in the sliding window.
    pub failures_in_window: u32,
    /// Calls in the sliding window.
    pub calls_in_window: u32,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// When the open period ends (clock ms), if open.
    pub open_until_ms: Option<u64>,
    /// Probe permits currently held, if half-open.
    pub probes_in_flight: u32,
    /// Probes that succeeded in the current half-open round.
    pub probe_successes: u32,
}

struct Shared {
    config: BreakerConfig,
    clock: Arc<dyn Clock>,
    listener: Option<BreakerListener>,
    machine: Mutex<Machine>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Machine> {
        // A poisoned lock only means a listener-free section panicked; the counters stay usable.
        self.machine.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn report(&self, change: Option<Change>) -> Option<Transition> {
        let (from, to, cause) = change?;
        let t = Transition {
            from,
            to,
            reason: cause.describe(),
        };
        if let Some(listener) = &self.listener {
            listener(&t);
        }
        Some(t)
    }

    fn settle(&self, epoch: u64, kind: PermitKind, outcome: Outcome) -> Option<Transition> {
        if kind == PermitKind::Untracked {
            return None;
        }
        let now = self.clock.now_ms();
        let change = self.lock().record(&self.config, now, epoch, kind, outcome);
        self.report(change)
    }
}

/// A thread-safe circuit breaker; clones share state.
#[derive(Clone)]
pub struct CircuitBreaker {
    shared: Arc<Shared>,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("snapshot", &self.snapshot())
            .finish()
    }
}

impl CircuitBreaker {
    /// A closed breaker (or a disabled one if `config.enabled` is false); fails on an invalid config.
    pub fn new(config: BreakerConfig, clock: Arc<dyn Clock>) -> Result<Self, ConfigError> {
        Self::build(config, clock, None)
    }

    /// Like `new`, and calls `listener` after every transition (outside the lock).
    pub fn with_listener(
        config: BreakerConfig,
        clock: Arc<dyn Clock>,
        listener: BreakerListener,
    ) -> Result<Self, ConfigError> {
        Self::build(config, clock, Some(listener))
    }

    fn build(
        config: BreakerConfig,
        clock: Arc<dyn Clock>,
        listener: Option<BreakerListener>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::from_valid(config, clock, listener))
    }

    /// Builds from an already validated config (the registry validates once).
    pub(crate) fn from_valid(
        config: BreakerConfig,
        clock: Arc<dyn Clock>,
        listener: Option<BreakerListener>,
    ) -> Self {
        let machine = Machine::new(&config);
        let shared = Shared {
            config,
            clock,
            listener,
            machine: Mutex::new(machine),
        };
        Self {
            shared: Arc::new(shared),
        }
    }

    /// Admits a call (returning a permit to record its outcome on) or rejects it in O(1) without allocating.
    pub fn try_acquire(&self) -> Result<Permit, Rejected> {
        let now = self.shared.clock.now_ms();
        let (result, change) = {
            let mut m = self.shared.lock();
            let (result, change) = m.acquire(&self.shared.config, now);
            (result.map(|kind| (kind, m.epoch())), change)
        };
        self.shared.report(change);
        let (kind, epoch) = result?;
        Ok(Permit {
            shared: Arc::clone(&self.shared),
            epoch,
            kind,
            settled: false,
        })
    }

    /// Current counters and state.
    pub fn snapshot(&self) -> BreakerSnapshot {
        self.shared.lock().snapshot()
    }

    /// Current state (see `snapshot` for counters).
    pub fn state(&self) -> BreakerState {
        self.shared.lock().state()
    }

    /// The configuration this breaker was built with.
    pub fn config(&self) -> &BreakerConfig {
        &self.shared.config
    }
}

/// Admission to make one call; record its outcome, or drop it to count as `Ignored`.
#[must_use = "record the call's outcome on the permit; dropping it counts as Outcome::Ignored"]
pub struct Permit {
    shared: Arc<Shared>,
    epoch: u64,
    kind: PermitKind,
    settled: bool,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("probe", &self.is_probe())
            .finish()
    }
}

impl Permit {
    /// Records the call's outcome; returns the transition it caused, if any (also sent to the listener).
    pub fn record(mut self, outcome: Outcome) -> Option<Transition> {
        self.settled = true;
        self.shared.settle(self.epoch, self.kind, outcome)
    }

    /// The 2xx head of a streamed answer arrived. For a half-open probe this is the probe's
    /// success: it is counted now and frees the probe's slot, so enough probe heads close the
    /// breaker while their streams still run. Returns the transition it caused, if any. For any
    /// other permit (or a probe whose round is already over) it does nothing.
    ///
    /// Why streams differ from whole answers: a whole answer's outcome is known within moments of
    /// its head, but a stream may run for minutes (up to the total timeout) after the provider has
    /// shown it is serving again. Holding the probe until the stream ends would keep the breaker
    /// half-open, refusing every other call, for that long. A failure later in the stream still
    /// counts: `record(Outcome::Failure)` on this permit reopens the breaker while the same
    /// half-open round is on, and counts one failure in the closed window once that round has
    /// closed it (as for a stream admitted while closed). Its success or `Ignored` counts nothing
    /// more.
    pub fn record_stream_head(&mut self) -> Option<Transition> {
        if self.kind != PermitKind::Probe || self.settled {
            return None;
        }
        let now = self.shared.clock.now_ms();
        let (change, epoch) =
            self.shared
                .lock()
                .record_stream_head(&self.shared.config, now, self.epoch)?;
        self.kind = PermitKind::StreamedProbe;
        self.epoch = epoch;
        self.shared.report(change)
    }

    /// Whether this permit is a half-open probe (its stream's head may already have counted).
    pub fn is_probe(&self) -> bool {
        matches!(self.kind, PermitKind::Probe | PermitKind::StreamedProbe)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        // An aborted request must free its half-open slot, or the breaker would wedge.
        if !self.settled {
            self.settled = true;
            self.shared.settle(self.epoch, self.kind, Outcome::Ignored);
        }
    }
}

#[cfg(test)]
#[path = "breaker_tests.rs"]
mod tests;
