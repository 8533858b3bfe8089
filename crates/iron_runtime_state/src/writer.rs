//! The writer thread: collects rows for up to `flush_interval` or [`COMMIT_ROWS`] rows, whichever
//! comes first, and commits each batch in one transaction.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior};

use crate::rows::{HoldRow, PendingRow};

/// A batch is committed when it holds this many rows, or when `flush_interval` has passed since its
/// first row, whichever comes first; one trim statement deletes at most this many rows too. Small
/// commits, with a yield between the insert and the retention trim, keep each stretch of the
/// writer's work short: a 100 ms batch written in one go held a core for ~2 ms under load, and a
/// request thread the scheduler had queued behind it waited that long even with the other core idle
/// (seen with `perf sched` as the bench's one-connection p99). Fewer rows wait in memory, too.
pub(crate) const COMMIT_ROWS: usize = 128;

/// Outcome sent to flush waiters: `Err` carries SQLite's message (errors are not `Clone`).
pub(crate) type Ack = Result<(), String>;

/// Messages to the writer thread.
pub(crate) enum Command {
    /// A row to write in the next batch (boxed: rows are far larger than the other messages).
    Row(Box<PendingRow>),
    /// Commit now and report the outcome of everything received so far.
    Flush(Sender<Ack>),
    /// Commit, report, and stop the thread.
    Shutdown(Sender<Ack>),
}

// Rows may be large; the store's Debug output only needs to know a channel is there.
impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

/// Counters shared by the store handle and the writer thread.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Rows accepted and not yet committed (or failed); bounded by `max_queue`.
    pub pending: AtomicUsize,
    pub queued: AtomicU64,
    pub committed: AtomicU64,
    pub dropped: AtomicU64,
    pub failed: AtomicU64,
    pub batches: AtomicU64,
}

/// Locks a mutex even if a panicking thread poisoned it: a connection stays usable after a panic elsewhere.
pub(crate) fn lock(conn: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Rows and waiters collected for one commit.
#[derive(Default)]
struct Batch {
    rows: Vec<PendingRow>,
    acks: Vec<Sender<Ack>>,
}

#[derive(PartialEq, Eq)]
enum Next {
    Collect,
    CommitNow,
    Stop,
}

impl Batch {
    fn push(&mut self, cmd: Command) -> Next {
        match cmd {
            Command::Row(row) => {
                self.rows.push(*row);
                if self.rows.len() >= COMMIT_ROWS {
                    Next::CommitNow
                } else {
                    Next::Collect
                }
            }
            Command::Flush(ack) => {
                self.acks.push(ack);
                Next::CommitNow
            }
            Command::Shutdown(ack) => {
                self.acks.push(ack);
                Next::Stop
            }
        }
    }
}

/// Body of the writer thread; returns when told to shut down or when every sender is gone.
pub(crate) fn run(
    conn: Arc<Mutex<Connection>>,
    rx: Receiver<Command>,
    interval: Duration,
    counters: Arc<Counters>,
    retain: Option<u64>,
) {
    let mut batch = Batch::default();
    loop {
        let Ok(first) = rx.recv() else { return };
        let mut next = batch.push(first);
        // An absurd interval would overflow Instant; then we collect until a flush or a full batch.
        let deadline = Instant::now().checked_add(interval);
        while next == Next::Collect {
            match rx.try_recv() {
                Ok(cmd) => {
                    next = batch.push(cmd);
                    continue;
                }
                Err(TryRecvError::Disconnected) => {
                    next = Next::Stop;
                    break;
                }
                Err(TryRecvError::Empty) => {}
            }
            // Sleep instead of blocking on the channel: a receiver blocked in `recv` turns every
            // row into a thread wake-up (a futex call and a context switch per request, measured at
            // ~15% of the router's CPU under load). Flush, shutdown and a full batch unpark us.
            match deadline {
                Some(at) => {
                    let now = Instant::now();
                    if now >= at {
                        break;
                    }
                    std::thread::park_timeout(at - now);
                }
                None => std::thread::park(),
            }
        }
        commit(&conn, &mut batch, &counters, retain);
        if next == Next::Stop {
            return;
        }
    }
}

/// Delete all but the newest `keep` request and audit rows (ids are increasing, so this is a
/// rowid range delete), at most [`COMMIT_ROWS`] rows per statement with a yield in between.
fn trim(conn: &Mutex<Connection>, keep: u64) {
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    let piece = COMMIT_ROWS as i64;
    // Statements stay prepared between batches (this runs after every batch).
    for sql in [
        // A rowid range from the oldest row: no list of ids to build and look up one by one.
        "DELETE FROM requests WHERE id <= MIN((SELECT MAX(id) FROM requests) - ?1, (SELECT MIN(id) FROM requests) + ?2 - 1)",
        "DELETE FROM audit WHERE id <= MIN((SELECT MAX(id) FROM audit) - ?1, (SELECT MIN(id) FROM audit) + ?2 - 1)",
    ] {
        loop {
            let deleted = {
                let guard = lock(conn);
                let n = match guard.prepare_cached(sql) {
                    Ok(mut stmt) => stmt.execute([keep, piece]).unwrap_or(0),
                    Err(_) => 0,
                };
                n
            };
            if deleted < COMMIT_ROWS {
                break;
            }
            std::thread::yield_now();
        }
    }
}

/// Writes the batch, trims to `retain` rows, then answers the flush waiters (so a flush that
/// returns has also applied the retention).
fn commit(conn: &Mutex<Connection>, batch: &mut Batch, counters: &Counters, retain: Option<u64>) {
    let total = batch.rows.len();
    let outcome = if total == 0 {
        Ok(())
    } else {
        let (written, result) = write_rows(conn, &batch.rows);
        counters.committed.fetch_add(written, Ordering::Relaxed);
        counters
            .failed
            .fetch_add(total as u64 - written, Ordering::Relaxed);
        counters.batches.fetch_add(1, Ordering::Relaxed);
        result
    };
    if let Some(keep) = retain {
        // Between the two halves of the work, let a request thread queued on this core run.
        std::thread::yield_now();
        trim(conn, keep);
    }
    counters.pending.fetch_sub(total, Ordering::AcqRel);
    batch.rows.clear();
    for ack in batch.acks.drain(..) {
        // A waiter that gave up is not an error.
        let _ = ack.send(outcome.clone());
    }
}

/// Writes all rows in one transaction; returns how many were committed and the first error, if any.
///
/// A row SQLite rejects is skipped so it cannot take the rest of the batch with it. A ledger row
/// that replaces a hold deletes it in the same transaction; when the hold came in the same batch
/// (a call that settled within one flush interval) neither is written: the row alone says it all.
fn write_rows(conn: &Mutex<Connection>, rows: &[PendingRow]) -> (u64, Ack) {
    let settled = settled_in_batch(rows);
    let mut guard = lock(conn);
    let tx = match guard.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return (0, Err(e.to_string())),
    };
    let mut written = 0u64;
    let mut first_error = None;
    for row in rows {
        let outcome = match row {
            PendingRow::Hold(h)
                if settled.contains(&(h.agent_id.as_str(), h.request_id.as_str())) =>
            {
                Ok(())
            }
            PendingRow::Request(r, true) => r.insert(&tx).and_then(|()| {
                if settled.contains(&(r.agent_id.as_str(), r.request_id.as_str())) {
                    Ok(())
                } else {
                    HoldRow::delete(&tx, &r.agent_id, &r.request_id)
                }
            }),
            other => other.insert(&tx),
        };
        match outcome {
            Ok(()) => written += 1,
            Err(e) => {
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    if let Err(e) = tx.commit() {
        return (0, Err(e.to_string()));
    }
    match first_error {
        None => (written, Ok(())),
        Some(e) => (
            written,
            Err(format!(
                "{} of {} rows rejected: {e}",
                rows.len() as u64 - written,
                rows.len()
            )),
        ),
    }
}

/// `(agent, request)` of the holds in `rows` that a later ledger row of the same batch replaces
/// (empty, without allocating, for a batch with no holds).
fn settled_in_batch(rows: &[PendingRow]) -> HashSet<(&str, &str)> {
    let mut held = HashSet::new();
    let mut settled = HashSet::new();
    for row in rows {
        match row {
            PendingRow::Hold(h) => {
                held.insert((h.agent_id.as_str(), h.request_id.as_str()));
            }
            PendingRow::Request(r, true) if !held.is_empty() => {
                let key = (r.agent_id.as_str(), r.request_id.as_str());
                if held.contains(&key) {
                    settled.insert(key);
                }
            }
            _ => {}
        }
    }
    settled
}
