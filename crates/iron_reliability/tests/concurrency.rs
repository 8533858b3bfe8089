//! Many threads hammering one breaker: probe limits hold and nothing wedges.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use iron_reliability::{
    BreakerConfig, BreakerListener, BreakerState, CircuitBreaker, Clock, ManualClock, Outcome,
    Transition,
};

const THREADS: u64 = 8;
const ITERATIONS: u64 = 20_000;

/// Deterministic per-thread pseudo-random numbers (xorshift64).
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn hammering_one_breaker_keeps_its_invariants() {
    let clock = ManualClock::new(0);
    let config = BreakerConfig {
        open_ms: 20,
        max_open_ms: 200,
        half_open_probes: 3,
        ..Default::default()
    };
    let transitions = Arc::new(Mutex::new(Vec::<Transition>::new()));
    let sink = Arc::clone(&transitions);
    let listener: BreakerListener =
        Arc::new(move |t: &Transition| sink.lock().unwrap().push(t.clone()));
    let breaker = CircuitBreaker::with_listener(config, Arc::new(clock.clone()), listener).unwrap();

    let probes_held = Arc::new(AtomicU32::new(0));
    let max_probes_held = Arc::new(AtomicU32::new(0));
    let rejected = Arc::new(AtomicUsize::new(0));

    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let (breaker, clock) = (breaker.clone(), clock.clone());
            let (held, max_held, rejected) = (
                Arc::clone(&probes_held),
                Arc::clone(&max_probes_held),
                Arc::clone(&rejected),
            );
            thread::spawn(move || {
                let mut seed = 0x9E37_79B9_7F4A_7C15 ^ (i + 1);
                for _ in 0..ITERATIONS {
                    let r = xorshift(&mut seed);
                    if r.is_multiple_of(4) {
                        clock.advance(1);
                    }
                    let Ok(permit) = breaker.try_acquire() else {
                        rejected.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    if permit.is_probe() {
                        held.fetch_add(1, Ordering::SeqCst);
                        // Hold the probe a moment so others contend for the slots.
                        thread::yield_now();
                        held.fetch_sub(1, Ordering::SeqCst);
                    }
                    let s = breaker.snapshot();
                    max_held.fetch_max(s.probes_in_flight + s.probe_successes, Ordering::SeqCst);
                    // 40% failures, 10% dropped without a record, the rest successes.
                    match (r >> 8) % 10 {
                        0..=3 => {
                            permit.record(Outcome::Failure);
                        }
                        4 => drop(permit),
                        _ => {
                            permit.record(Outcome::Success);
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("no thread panicked");
    }

    // Probes in flight plus probes already succeeded never exceed the configured limit.
    assert!(max_probes_held.load(Ordering::SeqCst) <= 3);
    assert_eq!(probes_held.load(Ordering::SeqCst), 0);
    assert!(
        rejected.load(Ordering::Relaxed) > 0,
        "the breaker never opened"
    );
    let seen = transitions.lock().unwrap();
    assert!(seen.iter().any(|t| t.to == BreakerState::Open));
    // Whether it also closed again during the hammering depends on how the threads were scheduled
    // (three probe successes in a row against 40% failures): the recovery is checked below, alone.
    for t in seen.iter() {
        let edge = (t.from, t.to);
        assert!(
            matches!(
                edge,
                (BreakerState::Closed, BreakerState::Open)
                    | (BreakerState::Open, BreakerState::HalfOpen)
                    | (BreakerState::HalfOpen, BreakerState::Open)
                    | (BreakerState::HalfOpen, BreakerState::Closed)
            ),
            "impossible transition {edge:?}"
        );
    }
    drop(seen);

    // Every permit is gone, so no probe slot may still be held, and the breaker must recover.
    let snap = breaker.snapshot();
    assert_eq!(snap.probes_in_flight, 0);
    clock.advance(200);
    for _ in 0..3 {
        if breaker.state() == BreakerState::Closed {
            break;
        }
        breaker
            .try_acquire()
            .expect("admitted after the open period")
            .record(Outcome::Success);
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    let seen = transitions.lock().unwrap();
    assert!(
        seen.last()
            .is_some_and(|t| (t.from, t.to) == (BreakerState::HalfOpen, BreakerState::Closed)),
        "the recovery was not reported to the listener"
    );
    assert!(clock.now_ms() > 0);
}
