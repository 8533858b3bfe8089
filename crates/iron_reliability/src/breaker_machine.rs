//! The breaker's state machine: pure counters and transitions, no locking or clocks.

use crate::breaker::{BreakerSnapshot, BreakerState, Rejected};
use crate::breaker_config::BreakerConfig;
use crate::outcome::Outcome;
use crate::window::OutcomeWindow;

/// Hint given to callers rejected because all half-open probe slots are taken.
const HALF_OPEN_RETRY_HINT_MS: u64 = 1_000;

/// Why a transition happened; turned into text outside the lock.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cause {
    ConsecutiveFailures(u32),
    FailureRate { rate_pct: f64, calls: u32 },
    OpenElapsed(u64),
    ProbesSucceeded(u32),
    ProbeFailed { open_ms: u64 },
}

impl Cause {
    pub(crate) fn describe(self) -> String {
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

/// (from, to, cause) of one transition.
pub(crate) type Change = (BreakerState, BreakerState, Cause);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PermitKind {
    Call,
    Probe,
    /// A probe whose streamed answer's head already counted as its success (see
    /// `Permit::record_stream_head`): only a failure later in the stream is still to count.
    StreamedProbe,
    Untracked,
}

/// Mutable breaker state, guarded by one short-lived mutex.
#[derive(Debug)]
pub(crate) struct Machine {
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
    pub(crate) fn new(config: &BreakerConfig) -> Self {
        Self {
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
        }
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    pub(crate) fn state(&self) -> BreakerState {
        self.state
    }

    pub(crate) fn snapshot(&self) -> BreakerSnapshot {
        BreakerSnapshot {
            state: self.state,
            failures_in_window: self.window.failures(),
            calls_in_window: self.window.calls(),
            consecutive_failures: self.consecutive,
            open_until_ms: (self.state == BreakerState::Open).then_some(self.open_until_ms),
            probes_in_flight: self.probes_in_flight,
            probe_successes: self.probe_successes,
        }
    }

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

    pub(crate) fn acquire(
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

    pub(crate) fn record(
        &mut self,
        cfg: &BreakerConfig,
        now: u64,
        epoch: u64,
        kind: PermitKind,
        outcome: Outcome,
    ) -> Option<Change> {
        if kind == PermitKind::StreamedProbe {
            return self.record_stream_end(cfg, now, epoch, outcome);
        }
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
                    Outcome::Failure => Some(self.probe_failed(cfg, now)),
                }
            }
            _ => None,
        }
    }

    /// A probe failed: the round fails and the breaker opens for longer than last time.
    fn probe_failed(&mut self, cfg: &BreakerConfig, now: u64) -> Change {
        self.level = self.level.saturating_add(1);
        let open_ms = self.open(cfg, now);
        (
            BreakerState::HalfOpen,
            BreakerState::Open,
            Cause::ProbeFailed { open_ms },
        )
    }

    /// The 2xx head of a half-open probe's streamed answer arrived: the probe counts as a success
    /// now, freeing its slot. Returns the transition, if any, and the epoch the rest of the stream
    /// is recorded against; `None` when the probe's round is over (nothing was counted).
    pub(crate) fn record_stream_head(
        &mut self,
        cfg: &BreakerConfig,
        now: u64,
        epoch: u64,
    ) -> Option<(Option<Change>, u64)> {
        if epoch != self.epoch || self.state != BreakerState::HalfOpen {
            return None;
        }
        let change = self.record(cfg, now, epoch, PermitKind::Probe, Outcome::Success);
        Some((change, self.epoch))
    }

    /// The end of a probe's stream whose head already counted as its success: only a failure
    /// counts, against the state that success was part of. Still the same half-open round: the
    /// round fails, as for any failed probe. The closed state that round closed into (`epoch` is
    /// the round's, one before the closed state's, or the closed state's own when this probe's
    /// head closed it): one failure in the new window, as for a call admitted while closed.
    /// Anything later (open again, a new round) has moved on without it.
    fn record_stream_end(
        &mut self,
        cfg: &BreakerConfig,
        now: u64,
        epoch: u64,
        outcome: Outcome,
    ) -> Option<Change> {
        if outcome != Outcome::Failure {
            return None;
        }
        match self.state {
            BreakerState::HalfOpen if epoch == self.epoch => Some(self.probe_failed(cfg, now)),
            BreakerState::Closed if epoch == self.epoch || epoch.wrapping_add(1) == self.epoch => {
                self.window.push(true);
                self.consecutive = self.consecutive.saturating_add(1);
                self.check_trip(cfg, now)
            }
            _ => None,
        }
    }
}
