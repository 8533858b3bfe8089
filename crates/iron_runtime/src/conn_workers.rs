//! Threads that serve the router's connections, one single-threaded tokio runtime each (the
//! thread-per-core model of nginx's workers). A connection, its calls and the upstream connections
//! those calls use all stay on one thread: no task moves between cores, and a socket's readiness
//! wakes the thread that polls it rather than another worker. On the two-core bench this cut the
//! bare stack's CPU per request by a fifth against a work-stealing runtime (`bench/README.md`).
//!
//! The threads are shared by every router in the process and started with the first one.
//! `IRON_CAGE_WORKER_THREADS` (1–64, default 2) sets their number; `IRON_CAGE_CONN_THREADS=0` turns
//! them off, and connections are then served on the runtime that started the router (as they are
//! when a thread cannot be started). The Node binding reads both once, when the addon loads
//! ([`counts_from_env`], [`configure`]).
//!
//! What it costs: a connection doing heavy work (a large prompt's scan) delays the other
//! connections of its thread, where a work-stealing runtime would have moved them to an idle
//! worker. Inputs are bounded (`maxBodyBytes`), so the delay is too.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use tokio::runtime::Handle;

/// The connection threads.
pub struct ConnWorkers {
    handles: Vec<Handle>,
    next: AtomicUsize,
}

static WORKERS: OnceLock<Option<ConnWorkers>> = OnceLock::new();
/// The number of threads, when set before the first router starts (see [`configure`]).
static CONFIGURED: OnceLock<usize> = OnceLock::new();

thread_local! {
    /// This thread's index among the connection threads; `OTHER` on any other thread.
    static SLOT: Cell<usize> = const { Cell::new(OTHER) };
}

/// The slot of a thread that is not a connection thread.
pub const OTHER: usize = usize::MAX;

/// The index of the connection thread this runs on, or [`OTHER`]. The upstream pool keeps a
/// connection for the thread whose runtime it was registered with.
pub fn slot() -> usize {
    SLOT.with(Cell::get)
}

/// The thread counts the environment asks for: `(runtime workers, connection threads)`, from
/// `IRON_CAGE_WORKER_THREADS` (1–64, default 2; both) and `IRON_CAGE_CONN_THREADS=0` (no
/// connection threads). The Node binding reads them once, when the addon loads.
pub fn counts_from_env() -> (usize, usize) {
    let workers = std::env::var("IRON_CAGE_WORKER_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| (1..=64).contains(n))
        .unwrap_or(2);
    let off = std::env::var("IRON_CAGE_CONN_THREADS").is_ok_and(|v| v.trim() == "0");
    (workers, if off { 0 } else { workers })
}

/// Sets the number of connection threads (0: none) before the first router starts; later calls,
/// and calls after the threads started, change nothing.
pub fn configure(count: usize) {
    let _ = CONFIGURED.set(count.min(64));
}

fn start(count: usize) -> Option<ConnWorkers> {
    let mut handles = Vec::with_capacity(count);
    for i in 0..count {
        // The runtime is built on its own thread, so that nothing here (a tokio worker, when a
        // router starts serving) ever owns and drops one: a thread that fails to start leaves
        // none behind, and the router serves its connections on its own runtime.
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("iron-cage-conn-{i}"))
            .spawn(move || {
                // Sockets and timers only: a connection spawns no process and waits for no signal.
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .enable_time()
                    .build();
                let rt = match rt {
                    Ok(rt) => rt,
                    Err(_) => {
                        let _ = tx.send(None);
                        return;
                    }
                };
                SLOT.with(|s| s.set(i));
                let _ = tx.send(Some(rt.handle().clone()));
                rt.block_on(std::future::pending::<()>());
            });
        // Threads already started park forever on an empty runtime: harmless, and rare.
        let handle = spawned.ok().and_then(|_| rx.recv().ok().flatten())?;
        handles.push(handle);
    }
    (!handles.is_empty()).then(|| ConnWorkers {
        handles,
        next: AtomicUsize::new(0),
    })
}

/// The process's connection threads, started on first use; `None` when turned off or when they
/// could not be started.
pub fn get() -> Option<&'static ConnWorkers> {
    WORKERS
        .get_or_init(|| {
            let count = *CONFIGURED.get_or_init(|| counts_from_env().1);
            start(count)
        })
        .as_ref()
}

impl ConnWorkers {
    /// The runtime of the next connection (round robin).
    pub fn next(&self) -> &Handle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        &self.handles[i]
    }

    /// How many threads serve connections.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Never true: a set of workers has at least one thread.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_go_round_the_threads_and_each_knows_its_slot() {
        let workers = start(2).expect("two threads start");
        assert_eq!(workers.len(), 2);
        assert_eq!(
            slot(),
            OTHER,
            "the test's own thread is no connection thread"
        );
        let mut seen = Vec::new();
        for _ in 0..4 {
            let (tx, rx) = std::sync::mpsc::channel();
            workers.next().spawn(async move {
                let name = std::thread::current().name().map(str::to_string);
                let _ = tx.send((slot(), name));
            });
            seen.push(rx.recv().expect("the task ran"));
        }
        let slots: Vec<usize> = seen.iter().map(|(s, _)| *s).collect();
        assert_eq!(slots, vec![0, 1, 0, 1]);
        assert_eq!(seen[1].1.as_deref(), Some("iron-cage-conn-1"));
    }
}
