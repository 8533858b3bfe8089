//! The circuit breaker: CLOSED → OPEN → HALF_OPEN → CLOSED, with RAII permits.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::breaker_config::BreakerConfig;
use crate::clock::Clock;
use crate::error::ConfigError;
use crate::outcome::Outcome;
use crate::window::OutcomeWindow;

/// Hint given to callers rejected because all half-open probe slots are taken.
const HALF_OPEN_RETRY_HINT_MS: u64 = 1_000;

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

/// Why a transition happened; turned into text outside the lock.
#[derive(Debug, Clone, Copy)]
enum Cause {
    ConsecutiveFailures(u32),
    FailureRate { rate_pct: f64, calls: u32 },
    OpenElapsed(u64),
    ProbesSucceeded(u32),
    ProbeFailed { open_ms: u64 },
}

impl Cause {
    fn describe(self) -> String {
        match self {
            Cause::ConsecutiveFailures(n) => format!("{n} consecutive failures"),
            Cause::FailureRate { rate_pct, calls } => {
                format!("failure rate {rate_pct:.0}% over {calls} calls")
            }
            Cause::OpenElapsed(ms) => format!("open period of {ms} ms elapsed"),
            Cause::ProbesSucceeded(1) => "probe succeeded".to_string(),
            Cause::ProbesSucceeded(n) => format!("{n} probes succeeded"),
            Cause::ProbeFailed { open_ms } => format!("probe failed; open for {open_ms} ms"),
        }
    }
}

type Change = (BreakerState, BreakerState, Cause);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PermitKind {
    Call,
    Probe,
    Untracked,
}

/// Mutable breaker state, guarded by one short-lived mutex.
#[derive(Debug)]
struct Machine {
    state: BreakerState,
    // Bumped on every transition so late results from an earlier state are ignored.
    epoch: u64,
    window: OutcomeWindow,
    consecutive: u32,
    open_until_ms: u64,
    open_duration_ms: u64,
    // Consecutive failed half-open rounds; reset by a success while closed.
    level: u32,
    probes_in_flight: u32,
    probe_successes: u32,
}

impl Machine {
    fn open(&mut self, cfg: &BreakerConfig, now: u64) -> u64 {
        let d = cfg.open_duration_ms(self.level);
        self.state = BreakerState::Open;
        self.epoch = self.epoch.wrapping_add(1);
        self.open_until_ms = now.saturating_add(d);
        self.open_duration_ms = d;
        self.probes_in_flight = 0;
        self.probe_successes = 0;
        d
    }

    fn close(&mut self) {
        self.state = BreakerState::Closed;
        self.epoch = self.epoch.wrapping_add(1);
        self.window.reset();
        self.consecutive = 0;
        self.probes_in_flight = 0;
        self.probe_successes = 0;
    }

    fn check_trip(&mut self, cfg: &BreakerConfig, now: u64) -> Option<Change> {
        let cause = if self.consecutive >= cfg.consecutive_failures {
            Cause::ConsecutiveFailures(self.consecutive)
        } else if self.window.calls() >= cfg.effective_minimum_calls()
            && self.window.failure_rate() >= cfg.failure_rate_threshold
        {
            Cause::FailureRate {
                rate_pct: self.window.failure_rate(),
                calls: self.window.calls(),
            }
        } else {
            return None;
        };
        self.open(cfg, now);
        Some((BreakerState::Closed, BreakerState::Open, cause))
    }

    fn acquire(
        &mut self,
        cfg: &BreakerConfig,
        now: u64,
    ) -> (Result<PermitKind, Rejected>, Option<Change>) {
        match self.state {
            BreakerState::Closed => (Ok(PermitKind::Call), None),
            BreakerState::Disabled => (Ok(PermitKind::Untracked), None),
            BreakerState::Open if now >= self.open_until_ms => {
                self.state = BreakerState::HalfOpen;
                self.epoch = self.epoch.wrapping_add(1);
                self.probes_in_flight = 1;
                self.probe_successes = 0;
                let cause = Cause::OpenElapsed(self.open_duration_ms);
                let change = (BreakerState::Open, BreakerState::HalfOpen, cause);
                (Ok(PermitKind::Probe), Some(change))
            }
            BreakerState::Open => (
                Err(Rejected {
                    retry_after_ms: self.open_until_ms - now,
                    next_probe_at_ms: self.open_until_ms,
                    state: BreakerState::Open,
                }),
                None,
            ),
            BreakerState::HalfOpen => {
                if self.probes_in_flight.saturating_add(self.probe_successes) < cfg.half_open_probes
                {
                    self.probes_in_flight += 1;
                    (Ok(PermitKind::Probe), None)
                } else {
                    let rejected = Rejected {
                        retry_after_ms: HALF_OPEN_RETRY_HINT_MS,
                        next_probe_at_ms: now.saturating_add(HALF_OPEN_RETRY_HINT_MS),
                        state: BreakerState::HalfOpen,
                    };
                    (Err(rejected), None)
                }
            }
        }
    }

    fn record(
        &mut self,
        cfg: &BreakerConfig,
        now: u64,
        epoch: u64,
        kind: PermitKind,
        outcome: Outcome,
    ) -> Option<Change> {
        if epoch != self.epoch {
            return None;
        }
        match (self.state, kind) {
            (BreakerState::Closed, PermitKind::Call) => match outcome {
                Outcome::Ignored => None,
                Outcome::Success => {
                    self.window.push(false);
                    self.consecutive = 0;
                    self.level = 0;
                    self.check_trip(cfg, now)
                }
                Outcome::Failure => {
                    self.window.push(true);
                    self.consecutive = self.consecutive.saturating_add(1);
                    self.check_trip(cfg, now)
                }
            },
            (BreakerState::HalfOpen, PermitKind::Probe) => {
                self.probes_in_flight = self.probes_in_flight.saturating_sub(1);
                match outcome {
                    Outcome::Ignored => None,
                    Outcome::Success => {
                        self.probe_successes += 1;
                        if self.probe_successes < cfg.half_open_probes {
                            return None;
                        }
                        let n = self.probe_successes;
                        self.close();
                        Some((
                            BreakerState::HalfOpen,
                            BreakerState::Closed,
                            Cause::ProbesSucceeded(n),
                        ))
                    }
                    Outcome::Failure => {
                        self.level = self.level.saturating_add(1);
                        let open_ms = self.open(cfg, now);
                        Some((
                            BreakerState::HalfOpen,
                            BreakerState::Open,
                            Cause::ProbeFailed { open_ms },
                        ))
                    }
                }
            }
            _ => None,
        }
    }
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
        let machine = Machine {
            state: if config.enabled {
                BreakerState::Closed
            } else {
                BreakerState::Disabled
            },
            epoch: 0,
            window: OutcomeWindow::new(config.window_size),
            consecutive: 0,
            open_until_ms: 0,
            open_duration_ms: 0,
            level: 0,
            probes_in_flight: 0,
            probe_successes: 0,
        };
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
            (result.map(|kind| (kind, m.epoch)), change)
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
        let m = self.shared.lock();
        BreakerSnapshot {
            state: m.state,
            failures_in_window: m.window.failures(),
            calls_in_window: m.window.calls(),
            consecutive_failures: m.consecutive,
            open_until_ms: (m.state == BreakerState::Open).then_some(m.open_until_ms),
            probes_in_flight: m.probes_in_flight,
            probe_successes: m.probe_successes,
        }
    }

    /// Current state (see `snapshot` for counters).
    pub fn state(&self) -> BreakerState {
        self.shared.lock().state
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

    /// Whether this permit is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.kind == PermitKind::Probe
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
