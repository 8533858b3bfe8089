//! Breaker state machine edges on a manual clock, through the public API: threshold boundaries, window
//! arithmetic after a close, outcomes that must not count, probe rounds that partly succeed, results
//! arriving late, `retry-after` rounding, and how cheap a rejection is.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iron_reliability::{
    BreakerConfig, BreakerListener, BreakerState, CircuitBreaker, Clock, ManualClock, Outcome,
    Transition,
};
use Outcome::{Failure as F, Ignored as I, Success as S};

struct Rig {
    breaker: CircuitBreaker,
    clock: ManualClock,
    seen: Arc<Mutex<Vec<String>>>,
}

fn rig(config: BreakerConfig) -> Rig {
    let clock = ManualClock::new(0);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let listener: BreakerListener = Arc::new(move |t: &Transition| {
        sink.lock()
            .unwrap()
            .push(format!("{}->{}: {}", t.from, t.to, t.reason))
    });
    let breaker = CircuitBreaker::with_listener(config, Arc::new(clock.clone()), listener)
        .expect("valid config");
    Rig {
        breaker,
        clock,
        seen,
    }
}

impl Rig {
    fn run(&self, outcomes: &[Outcome]) {
        for &o in outcomes {
            let _ = self.breaker.try_acquire().expect("admitted").record(o);
        }
    }

    fn state(&self) -> BreakerState {
        self.breaker.state()
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    fn open_left_ms(&self) -> u64 {
        let until = self.breaker.snapshot().open_until_ms.expect("open");
        until - self.clock.now_ms()
    }
}

/// Rate-only breaker: consecutive failures never trip it.
fn rate_only(threshold: f64, window: u32, minimum: u32) -> BreakerConfig {
    BreakerConfig {
        failure_rate_threshold: threshold,
        window_size: window,
        minimum_calls: minimum,
        consecutive_failures: 1_000,
        ..Default::default()
    }
}

#[test]
fn a_rate_exactly_at_the_threshold_opens_and_just_below_does_not() {
    // 4 failures in 10 calls = 40% < 50%: closed.
    let r = rig(rate_only(50.0, 10, 10));
    r.run(&[F, S, F, S, F, S, F, S, S, S]);
    assert_eq!(r.state(), BreakerState::Closed);
    // Next F evicts the oldest F: still 4/10.
    r.run(&[F]);
    assert_eq!(r.state(), BreakerState::Closed);
    // Next F evicts an S: 5/10 = 50% exactly → open.
    r.run(&[F]);
    assert_eq!(r.state(), BreakerState::Open);
    assert_eq!(r.seen(), ["closed->open: failure rate 50% over 10 calls"]);
}

#[test]
fn minimum_calls_above_the_window_size_is_capped_at_the_window() {
    // A window of 4 can never hold 10 calls; the breaker must still be able to open.
    let r = rig(rate_only(75.0, 4, 10));
    r.run(&[F, F, F]);
    assert_eq!(r.state(), BreakerState::Closed, "100% but only 3 calls");
    // [F F F S] = 75% over 4 calls: the capped minimum is reached.
    r.run(&[S]);
    assert_eq!(r.state(), BreakerState::Open);
    assert_eq!(r.seen(), ["closed->open: failure rate 75% over 4 calls"]);
}

#[test]
fn ignored_outcomes_neither_enter_the_window_nor_break_a_failure_run() {
    let r = rig(BreakerConfig {
        minimum_calls: 100,
        window_size: 100,
        ..Default::default()
    });
    // 429s and client errors between failures: the run of 5 consecutive failures still trips.
    r.run(&[F, F, I, I, F, F]);
    let s = r.breaker.snapshot();
    assert_eq!(
        (
            s.calls_in_window,
            s.failures_in_window,
            s.consecutive_failures
        ),
        (4, 4, 4)
    );
    r.run(&[I, F]);
    assert_eq!(r.seen(), ["closed->open: 5 consecutive failures"]);
}

#[test]
fn after_closing_the_window_starts_empty_so_minimum_calls_applies_again() {
    let r = rig(BreakerConfig {
        consecutive_failures: 1_000,
        half_open_probes: 1,
        ..Default::default()
    });
    r.run(&[F; 10]);
    assert_eq!(r.state(), BreakerState::Open);
    r.clock.advance(30_000);
    r.run(&[S]);
    assert_eq!(r.state(), BreakerState::Closed);
    // 9 failures: 100% but below the 10-call minimum of the fresh window.
    r.run(&[F; 9]);
    assert_eq!(r.state(), BreakerState::Closed);
    r.run(&[F]);
    assert_eq!(r.state(), BreakerState::Open);
}

#[test]
fn one_failed_probe_after_successes_reopens_and_the_next_round_needs_every_probe_again() {
    let r = rig(BreakerConfig {
        half_open_probes: 3,
        ..Default::default()
    });
    r.run(&[F; 5]);
    r.clock.advance(30_000);
    r.run(&[S, S]);
    assert_eq!(r.breaker.snapshot().probe_successes, 2);
    r.run(&[F]);
    assert_eq!(r.state(), BreakerState::Open);
    assert_eq!(r.open_left_ms(), 60_000);
    r.clock.advance(60_000);
    r.run(&[S, S]);
    let s = r.breaker.snapshot();
    assert_eq!(
        (s.state, s.probe_successes),
        (BreakerState::HalfOpen, 2),
        "the successes of the failed round do not carry over"
    );
    r.run(&[S]);
    assert_eq!(r.state(), BreakerState::Closed);
    assert_eq!(
        r.seen(),
        [
            "closed->open: 5 consecutive failures",
            "open->half_open: open period of 30000 ms elapsed",
            "half_open->open: probe failed; open for 60000 ms",
            "open->half_open: open period of 60000 ms elapsed",
            "half_open->closed: 3 probes succeeded",
        ]
    );
}

#[test]
fn ignored_probes_free_their_slot_without_counting_as_success() {
    let r = rig(BreakerConfig {
        half_open_probes: 2,
        ..Default::default()
    });
    r.run(&[F; 5]);
    r.clock.advance(30_000);
    r.run(&[I, I, I, S]);
    let s = r.breaker.snapshot();
    assert_eq!(
        (s.state, s.probe_successes, s.probes_in_flight),
        (BreakerState::HalfOpen, 1, 0)
    );
    r.run(&[S]);
    assert_eq!(r.state(), BreakerState::Closed);
}

#[test]
fn late_failures_of_calls_admitted_before_the_trip_do_not_extend_the_open_period() {
    let r = rig(BreakerConfig::default());
    let stragglers: Vec<_> = (0..3)
        .map(|_| r.breaker.try_acquire().expect("closed"))
        .collect();
    r.run(&[F; 5]);
    assert_eq!(r.open_left_ms(), 30_000);
    r.clock.advance(10_000);
    for p in stragglers {
        assert_eq!(p.record(F), None);
    }
    assert_eq!(r.open_left_ms(), 20_000);
    assert_eq!(r.seen().len(), 1);
}

#[test]
fn open_state_reads_open_until_a_call_arrives_after_the_period() {
    let r = rig(BreakerConfig::default());
    r.run(&[F; 5]);
    r.clock.advance(45_000);
    // Transitions are lazy: nothing happens without a call.
    assert_eq!(r.state(), BreakerState::Open);
    assert_eq!(r.seen().len(), 1);
    let probe = r.breaker.try_acquire().expect("probe");
    assert!(probe.is_probe());
    assert_eq!(r.state(), BreakerState::HalfOpen);
    drop(probe);
}

#[test]
fn retry_after_rounds_up_to_whole_seconds_and_stays_within_one_to_sixty() {
    let r = rig(BreakerConfig {
        open_ms: 600_000,
        max_open_ms: 600_000,
        ..Default::default()
    });
    r.run(&[F; 5]);
    let rej = r.breaker.try_acquire().unwrap_err();
    assert_eq!((rej.retry_after_ms, rej.retry_after_secs()), (600_000, 60));
    r.clock.advance(600_000 - 1_500);
    let rej = r.breaker.try_acquire().unwrap_err();
    assert_eq!((rej.retry_after_ms, rej.retry_after_secs()), (1_500, 2));
    r.clock.advance(1_499);
    let rej = r.breaker.try_acquire().unwrap_err();
    assert_eq!((rej.retry_after_ms, rej.retry_after_secs()), (1, 1));
    assert_eq!(rej.next_probe_at_ms, 600_000);
}

#[test]
fn open_time_grows_from_the_configured_base_to_the_cap() {
    let r = rig(BreakerConfig {
        open_ms: 1_000,
        max_open_ms: 5_000,
        ..Default::default()
    });
    r.run(&[F; 5]);
    let mut lengths = vec![r.open_left_ms()];
    for _ in 0..4 {
        r.clock.advance(r.open_left_ms());
        r.run(&[F]); // the probe fails
        lengths.push(r.open_left_ms());
    }
    assert_eq!(lengths, [1_000, 2_000, 4_000, 5_000, 5_000]);
}

#[test]
fn a_rejection_is_far_below_a_millisecond() {
    let r = rig(BreakerConfig::default());
    r.run(&[F; 5]);
    const N: u32 = 100_000;
    let t0 = Instant::now();
    for _ in 0..N {
        assert!(r.breaker.try_acquire().is_err());
    }
    let per_call = t0.elapsed() / N;
    // Typically well under a microsecond; the bound leaves room for a loaded machine and debug builds.
    assert!(
        per_call < Duration::from_micros(20),
        "{per_call:?} per rejection"
    );
}

/// Opens a breaker (5 consecutive failures) and lets the open period pass.
fn open_then_wait(r: &Rig) {
    r.run(&[F; 5]);
    assert_eq!(r.state(), BreakerState::Open);
    r.clock.advance(r.open_left_ms());
}

#[test]
fn a_streamed_probe_closes_the_breaker_at_its_head_while_its_stream_still_runs() {
    let r = rig(BreakerConfig {
        half_open_probes: 1,
        ..Default::default()
    });
    open_then_wait(&r);
    let mut probe = r.breaker.try_acquire().expect("probe");
    assert_eq!(r.state(), BreakerState::HalfOpen);
    assert!(
        r.breaker.try_acquire().is_err(),
        "the only probe slot is taken"
    );
    let t = probe.record_stream_head().expect("the head closes it");
    assert_eq!(
        (t.from, t.to),
        (BreakerState::HalfOpen, BreakerState::Closed)
    );
    assert!(probe.is_probe());
    // Other calls flow while the probe's stream goes on.
    for _ in 0..3 {
        assert!(!r.breaker.try_acquire().expect("closed").is_probe());
    }
    // A second head of the same permit counts nothing.
    assert_eq!(probe.record_stream_head(), None);
    // The stream completing counts nothing more: the success was counted at the head.
    assert_eq!(probe.record(S), None);
    let s = r.breaker.snapshot();
    assert_eq!(
        (s.state, s.calls_in_window, s.consecutive_failures),
        (BreakerState::Closed, 0, 0)
    );
    assert_eq!(
        r.seen(),
        [
            "closed->open: 5 consecutive failures",
            "open->half_open: open period of 30000 ms elapsed",
            "half_open->closed: probe succeeded",
        ]
    );
}

#[test]
fn a_streamed_probe_failing_after_its_head_counts_as_a_failure_in_the_closed_window() {
    let r = rig(BreakerConfig {
        half_open_probes: 1,
        consecutive_failures: 2,
        ..Default::default()
    });
    r.run(&[F, F]);
    r.clock.advance(r.open_left_ms());
    let mut probe = r.breaker.try_acquire().expect("probe");
    probe.record_stream_head();
    assert_eq!(r.state(), BreakerState::Closed);
    // The stream breaks later: one failure in the closed window, like a stream admitted while closed.
    assert_eq!(probe.record(F), None);
    let s = r.breaker.snapshot();
    assert_eq!(
        (
            s.state,
            s.calls_in_window,
            s.failures_in_window,
            s.consecutive_failures
        ),
        (BreakerState::Closed, 1, 1, 1)
    );
    // It is part of the failure run: one more opens the breaker again.
    r.run(&[F]);
    assert_eq!(r.state(), BreakerState::Open);
    assert_eq!(
        r.seen().last().map(String::as_str),
        Some("closed->open: 2 consecutive failures")
    );
}

#[test]
fn streamed_probes_close_after_enough_heads_and_an_earlier_probes_later_failure_still_counts() {
    let r = rig(BreakerConfig {
        half_open_probes: 3,
        ..Default::default()
    });
    open_then_wait(&r);
    let mut probes: Vec<_> = (0..3)
        .map(|_| r.breaker.try_acquire().expect("probe"))
        .collect();
    assert!(r.breaker.try_acquire().is_err(), "three probes in flight");
    assert_eq!(probes[0].record_stream_head(), None);
    assert_eq!(probes[1].record_stream_head(), None);
    let s = r.breaker.snapshot();
    assert_eq!(
        (s.state, s.probes_in_flight, s.probe_successes),
        (BreakerState::HalfOpen, 1, 2)
    );
    // Successful heads still count towards the round: no fourth probe.
    assert!(r.breaker.try_acquire().is_err());
    assert!(probes[2].record_stream_head().is_some());
    assert_eq!(r.state(), BreakerState::Closed);
    // The first probe's stream (admitted in the round that has closed) breaks: it counts in the
    // new closed window.
    let first = probes.remove(0);
    assert_eq!(first.record(F), None);
    assert_eq!(r.breaker.snapshot().failures_in_window, 1);
    // The others end well or are dropped: nothing more.
    drop(probes);
    let s = r.breaker.snapshot();
    assert_eq!((s.calls_in_window, s.failures_in_window), (1, 1));
}

#[test]
fn a_streamed_probe_failing_while_its_round_is_still_on_reopens_for_longer() {
    let r = rig(BreakerConfig {
        half_open_probes: 2,
        ..Default::default()
    });
    open_then_wait(&r);
    let mut probe = r.breaker.try_acquire().expect("probe");
    assert_eq!(probe.record_stream_head(), None);
    let s = r.breaker.snapshot();
    assert_eq!(
        (s.state, s.probes_in_flight, s.probe_successes),
        (BreakerState::HalfOpen, 0, 1)
    );
    let t = probe.record(F).expect("the round fails");
    assert_eq!((t.from, t.to), (BreakerState::HalfOpen, BreakerState::Open));
    assert_eq!(r.open_left_ms(), 60_000);
}

#[test]
fn a_streamed_probe_from_a_round_that_is_over_counts_nothing() {
    let r = rig(BreakerConfig {
        half_open_probes: 3,
        ..Default::default()
    });
    open_then_wait(&r);
    // A head arriving after its round reopened counts nothing, and neither does its end.
    let mut a = r.breaker.try_acquire().expect("probe");
    let b = r.breaker.try_acquire().expect("probe");
    let _ = b.record(F);
    assert_eq!(r.state(), BreakerState::Open);
    let before = r.seen();
    assert_eq!(a.record_stream_head(), None);
    assert_eq!(a.record(F), None);
    assert_eq!(r.seen(), before);
    assert_eq!(r.open_left_ms(), 60_000, "the open period is not extended");
    // Streamed probes whose round reopened after their heads: a failure does not extend the open
    // period...
    r.clock.advance(60_000);
    let mut c = r.breaker.try_acquire().expect("probe");
    let mut c2 = r.breaker.try_acquire().expect("probe");
    let d = r.breaker.try_acquire().expect("probe");
    assert_eq!(c.record_stream_head(), None);
    assert_eq!(c2.record_stream_head(), None);
    let _ = d.record(F);
    assert_eq!(r.open_left_ms(), 120_000);
    r.clock.advance(1_000);
    assert_eq!(c.record(F), None);
    assert_eq!(r.open_left_ms(), 119_000);
    // ...nor counts in a later closed state.
    r.clock.advance(119_000);
    for _ in 0..3 {
        let mut p = r.breaker.try_acquire().expect("probe");
        p.record_stream_head();
        let _ = p.record(S);
    }
    assert_eq!(r.state(), BreakerState::Closed);
    assert_eq!(c2.record(F), None);
    assert_eq!(r.breaker.snapshot().calls_in_window, 0);
}
