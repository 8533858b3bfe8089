use std::sync::{Arc, Mutex};

use super::*;
use crate::clock::ManualClock;
use crate::outcome::classify_status;

use Outcome::{Failure as F, Ignored as I, Success as S};

struct Rig {
    breaker: CircuitBreaker,
    clock: ManualClock,
    seen: Arc<Mutex<Vec<Transition>>>,
}

impl Rig {
    fn new(config: BreakerConfig) -> Self {
        let clock = ManualClock::new(1_000);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let listener: BreakerListener =
            Arc::new(move |t: &Transition| sink.lock().unwrap().push(t.clone()));
        let breaker =
            CircuitBreaker::with_listener(config, Arc::new(clock.clone()), listener).unwrap();
        Self {
            breaker,
            clock,
            seen,
        }
    }

    /// Acquires and records each outcome in turn; returns the last transition caused.
    fn run(&self, outcomes: &[Outcome]) -> Option<Transition> {
        let mut last = None;
        for &o in outcomes {
            let t = self.breaker.try_acquire().expect("admitted").record(o);
            if t.is_some() {
                last = t;
            }
        }
        last
    }

    fn state(&self) -> BreakerState {
        self.breaker.state()
    }

    fn reasons(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|t| format!("{}->{}: {}", t.from, t.to, t.reason))
            .collect()
    }

    /// Trips a default-config breaker with consecutive failures.
    fn trip(&self) {
        self.run(&[F; 5]);
        assert_eq!(self.state(), BreakerState::Open);
    }
}

fn cfg() -> BreakerConfig {
    BreakerConfig::default()
}

#[test]
fn failure_rate_opens_once_minimum_calls_reached() {
    let rig = Rig::new(cfg());
    // 5 failures in 9 calls, never two in a row: below minimum calls, so still closed.
    assert_eq!(rig.run(&[F, S, F, S, F, S, F, S, F]), None);
    assert_eq!(rig.state(), BreakerState::Closed);
    let t = rig.run(&[F]).expect("trips");
    assert_eq!((t.from, t.to), (BreakerState::Closed, BreakerState::Open));
    assert_eq!(t.reason, "failure rate 60% over 10 calls");
    let snap = rig.breaker.snapshot();
    assert_eq!((snap.calls_in_window, snap.failures_in_window), (10, 6));
    assert_eq!(snap.open_until_ms, Some(31_000));
}

#[test]
fn minimum_calls_holds_even_when_everything_fails() {
    let rig = Rig::new(BreakerConfig {
        consecutive_failures: 100,
        ..cfg()
    });
    rig.run(&[F; 9]);
    assert_eq!(rig.state(), BreakerState::Closed);
    assert_eq!(
        rig.run(&[F]).unwrap().reason,
        "failure rate 100% over 10 calls"
    );
}

#[test]
fn consecutive_failures_open_and_a_success_resets_the_count() {
    let rig = Rig::new(BreakerConfig {
        minimum_calls: 20,
        ..cfg()
    });
    rig.run(&[F, F, F, F, S, F, F, F, F]);
    assert_eq!(rig.state(), BreakerState::Closed);
    assert_eq!(rig.breaker.snapshot().consecutive_failures, 4);
    assert_eq!(rig.run(&[F]).unwrap().reason, "5 consecutive failures");
}

#[test]
fn sliding_window_drops_the_oldest_outcome() {
    let c = BreakerConfig {
        window_size: 4,
        minimum_calls: 4,
        failure_rate_threshold: 75.0,
        consecutive_failures: 100,
        ..cfg()
    };
    let rig = Rig::new(c);
    // [F S S F] = 50%: closed. Next F evicts the first F: [S S F F] = 50%, still closed.
    rig.run(&[F, S, S, F, F]);
    assert_eq!(rig.state(), BreakerState::Closed);
    let s = rig.breaker.snapshot();
    assert_eq!((s.calls_in_window, s.failures_in_window), (4, 2));
    // Evicts an S: [S F F F] = 75% → open (cumulative would be 4/6 = 67%, below threshold).
    assert_eq!(
        rig.run(&[F]).unwrap().reason,
        "failure rate 75% over 4 calls"
    );
}

#[test]
fn open_rejects_with_time_left_then_half_opens() {
    let rig = Rig::new(cfg());
    rig.trip();
    rig.clock.advance(10_000);
    let r = rig.breaker.try_acquire().unwrap_err();
    assert_eq!(
        r,
        Rejected {
            retry_after_ms: 20_000,
            next_probe_at_ms: 31_000,
            state: BreakerState::Open
        }
    );
    assert_eq!(r.retry_after_secs(), 20);
    rig.clock.advance(19_999);
    assert_eq!(rig.breaker.try_acquire().unwrap_err().retry_after_ms, 1);
    rig.clock.advance(1);
    let probe = rig.breaker.try_acquire().expect("probe admitted");
    assert!(probe.is_probe());
    assert_eq!(rig.state(), BreakerState::HalfOpen);
    assert_eq!(
        rig.reasons(),
        [
            "closed->open: 5 consecutive failures",
            "open->half_open: open period of 30000 ms elapsed"
        ]
    );
}

#[test]
fn half_open_admits_at_most_the_probe_count_and_closes_when_all_succeed() {
    let rig = Rig::new(cfg());
    rig.trip();
    rig.clock.advance(30_000);
    let p1 = rig.breaker.try_acquire().unwrap();
    let p2 = rig.breaker.try_acquire().unwrap();
    let p3 = rig.breaker.try_acquire().unwrap();
    let r = rig.breaker.try_acquire().unwrap_err();
    assert_eq!(
        r,
        Rejected {
            retry_after_ms: 1_000,
            next_probe_at_ms: 32_000,
            state: BreakerState::HalfOpen
        }
    );
    assert_eq!(p1.record(S), None);
    // One success plus two in flight already fill the three probe slots.
    assert!(rig.breaker.try_acquire().is_err());
    assert_eq!(p2.record(S), None);
    assert_eq!(rig.state(), BreakerState::HalfOpen);
    let t = p3.record(S).expect("closes");
    assert_eq!(
        (t.from, t.to, t.reason.as_str()),
        (
            BreakerState::HalfOpen,
            BreakerState::Closed,
            "3 probes succeeded"
        )
    );
    let s = rig.breaker.snapshot();
    assert_eq!(
        (
            s.calls_in_window,
            s.failures_in_window,
            s.consecutive_failures,
            s.open_until_ms
        ),
        (0, 0, 0, None)
    );
}

#[test]
fn single_probe_reason_reads_singular() {
    let rig = Rig::new(BreakerConfig {
        half_open_probes: 1,
        ..cfg()
    });
    rig.trip();
    rig.clock.advance(30_000);
    assert_eq!(rig.run(&[S]).unwrap().reason, "probe succeeded");
}

#[test]
fn probe_failure_reopens_with_doubled_time_and_late_probes_are_ignored() {
    let rig = Rig::new(cfg());
    rig.trip();
    rig.clock.advance(30_000); // t = 31_000
    let p1 = rig.breaker.try_acquire().unwrap();
    let p2 = rig.breaker.try_acquire().unwrap();
    let t = p1.record(F).unwrap();
    assert_eq!(
        (t.to, t.reason.as_str()),
        (BreakerState::Open, "probe failed; open for 60000 ms")
    );
    // The other probe finishing afterwards belongs to the old round and changes nothing.
    assert_eq!(p2.record(S), None);
    let s = rig.breaker.snapshot();
    assert_eq!(
        (s.state, s.open_until_ms, s.probe_successes),
        (BreakerState::Open, Some(91_000), 0)
    );
}

#[test]
fn open_time_grows_per_failed_round_and_is_capped() {
    let rig = Rig::new(BreakerConfig {
        max_open_ms: 100_000,
        ..cfg()
    });
    rig.trip();
    let mut expected = Vec::new();
    for want in [60_000, 100_000, 100_000] {
        let until = rig.breaker.snapshot().open_until_ms.unwrap();
        rig.clock.set(until);
        let t = rig.run(&[F]).unwrap();
        assert_eq!(t.reason, format!("probe failed; open for {want} ms"));
        expected.push(rig.clock.now_ms() + want);
        assert_eq!(
            rig.breaker.snapshot().open_until_ms,
            expected.last().copied()
        );
    }
}

/// Fails one probe round (level 1), then closes with successful probes.
fn reopen_once_then_close(rig: &Rig) {
    rig.trip();
    rig.clock.advance(30_000);
    rig.run(&[F]);
    rig.clock.advance(60_000);
    assert_eq!(rig.run(&[S, S, S]).unwrap().to, BreakerState::Closed);
}

#[test]
fn growth_resets_after_a_success_while_closed() {
    let rig = Rig::new(cfg());
    reopen_once_then_close(&rig);
    rig.run(&[S]);
    rig.trip();
    let until = rig.breaker.snapshot().open_until_ms.unwrap();
    assert_eq!(until - rig.clock.now_ms(), 30_000);
}

#[test]
fn growth_persists_if_it_fails_again_straight_after_closing() {
    let rig = Rig::new(cfg());
    reopen_once_then_close(&rig);
    rig.trip();
    let until = rig.breaker.snapshot().open_until_ms.unwrap();
    assert_eq!(until - rig.clock.now_ms(), 60_000);
}

#[test]
fn dropped_permit_counts_as_ignored() {
    let rig = Rig::new(BreakerConfig {
        half_open_probes: 1,
        ..cfg()
    });
    drop(rig.breaker.try_acquire().unwrap());
    assert_eq!(rig.breaker.snapshot().calls_in_window, 0);
    rig.trip();
    rig.clock.advance(30_000);
    let probe = rig.breaker.try_acquire().unwrap();
    assert!(rig.breaker.try_acquire().is_err());
    drop(probe); // e.g. the client aborted the request
    assert_eq!(rig.breaker.snapshot().probes_in_flight, 0);
    assert_eq!(rig.run(&[S]).unwrap().to, BreakerState::Closed);
}

#[test]
fn rate_limits_and_client_errors_are_not_counted() {
    let rig = Rig::new(cfg());
    let ignored: Vec<Outcome> = [429, 400, 401, 404, 429, 429, 413, 422, 429, 429, 429, 429]
        .iter()
        .map(|&s| classify_status(s))
        .collect();
    rig.run(&ignored);
    let s = rig.breaker.snapshot();
    assert_eq!(
        (s.state, s.calls_in_window, s.consecutive_failures),
        (BreakerState::Closed, 0, 0)
    );
    // A 429 during half-open frees the probe slot without closing or reopening.
    let rig = Rig::new(BreakerConfig {
        half_open_probes: 1,
        ..cfg()
    });
    rig.trip();
    rig.clock.advance(30_000);
    assert_eq!(rig.run(&[classify_status(429)]), None);
    assert_eq!(rig.state(), BreakerState::HalfOpen);
    assert!(rig.breaker.try_acquire().is_ok());
}

#[test]
fn late_result_from_closed_state_is_not_a_probe() {
    let rig = Rig::new(BreakerConfig {
        half_open_probes: 1,
        ..cfg()
    });
    let slow = rig.breaker.try_acquire().unwrap();
    rig.trip();
    rig.clock.advance(30_000);
    let probe = rig.breaker.try_acquire().unwrap();
    assert_eq!(slow.record(S), None);
    let s = rig.breaker.snapshot();
    assert_eq!(
        (s.state, s.probes_in_flight, s.probe_successes),
        (BreakerState::HalfOpen, 1, 0)
    );
    assert_eq!(probe.record(S).unwrap().to, BreakerState::Closed);
}

#[test]
fn disabled_breaker_admits_everything_and_counts_nothing() {
    let rig = Rig::new(BreakerConfig {
        enabled: false,
        ..cfg()
    });
    rig.run(&[F; 50]);
    let s = rig.breaker.snapshot();
    assert_eq!((s.state, s.calls_in_window), (BreakerState::Disabled, 0));
    assert!(rig.reasons().is_empty());
}

#[test]
fn invalid_config_is_refused() {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(0));
    let err = CircuitBreaker::new(
        BreakerConfig {
            window_size: 0,
            ..cfg()
        },
        clock,
    )
    .unwrap_err();
    assert_eq!(err.field, "reliability.breaker.windowSize");
}

#[test]
fn listener_and_return_values_agree() {
    let rig = Rig::new(cfg());
    let t = rig.run(&[F; 5]).unwrap();
    assert_eq!(rig.seen.lock().unwrap().last(), Some(&t));
    assert_eq!(I, classify_status(404));
}

#[test]
fn permits_can_move_into_spawned_tasks() {
    fn assert_send_static<T: Send + Sync + 'static>() {}
    assert_send_static::<Permit>();
    assert_send_static::<CircuitBreaker>();
    assert_send_static::<Rejected>();
}
