//! The store handle: opening, non-blocking writes, flushing and closing.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;

use crate::rows::PendingRow;
use crate::writer::{self, Ack, Command, Counters};
use crate::{schema, AgentRow, AuditRow, RequestRow, StateError, StoreConfig};

/// How long a connection waits for another connection's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Counters describing the writer's progress since the store was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Rows accepted by `record_*` / `upsert_agent`.
    pub queued: u64,
    /// Rows committed to the database.
    pub committed: u64,
    /// Rows refused because the queue was full or the store closed.
    pub dropped: u64,
    /// Rows accepted but lost because SQLite rejected them or their batch.
    pub failed: u64,
    /// Transactions committed (or attempted) by the writer.
    pub batches: u64,
    /// Rows accepted and not yet committed or failed.
    pub pending: u64,
}

/// A promise that everything queued before it was created is committed.
///
/// `wait` blocks; from async code call it inside `tokio::task::spawn_blocking`.
#[derive(Debug)]
pub struct FlushAck {
    rx: Option<Receiver<Ack>>,
}

impl FlushAck {
    /// Blocks until the commit finished; `Err` if it failed or the store is closed.
    pub fn wait(self) -> Result<(), StateError> {
        let rx = self.rx.ok_or(StateError::Closed)?;
        match rx.recv() {
            Ok(result) => result.map_err(StateError::Write),
            Err(_) => Err(StateError::Closed),
        }
    }

    /// Like `wait` but gives up after `timeout`, returning `None` (the commit may still happen).
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Result<(), StateError>> {
        let Some(rx) = &self.rx else {
            return Some(Err(StateError::Closed));
        };
        match rx.recv_timeout(timeout) {
            Ok(result) => Some(result.map_err(StateError::Write)),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => Some(Err(StateError::Closed)),
        }
    }
}

/// The state store: one writer thread plus a read connection.
#[derive(Debug)]
pub struct Store {
    tx: mpsc::Sender<Command>,
    reader: Arc<Mutex<Connection>>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<()>>,
    /// The writer thread, to wake it early (it sleeps between batches; see `writer::run`).
    waker: std::thread::Thread,
    cfg: StoreConfig,
}

impl Store {
    /// Opens or creates the database, migrates it, and starts the writer thread.
    pub fn open(mut cfg: StoreConfig) -> Result<Store, StateError> {
        // A zero bound would refuse every row; one is the smallest useful queue.
        cfg.max_queue = cfg.max_queue.max(1);
        let (writer_conn, reader) = match &cfg.path {
            Some(path) => {
                let mut conn = open_file(path)?;
                schema::migrate(&mut conn)?;
                let reader = open_file(path)?;
                reader.execute_batch("PRAGMA query_only = ON")?;
                (Arc::new(Mutex::new(conn)), Arc::new(Mutex::new(reader)))
            }
            None => {
                // A second in-memory connection would be a different database, so both sides share one.
                let mut conn = Connection::open_in_memory()?;
                schema::migrate(&mut conn)?;
                let shared = Arc::new(Mutex::new(conn));
                (shared.clone(), shared)
            }
        };
        let counters = Arc::new(Counters::default());
        let (tx, rx) = mpsc::channel();
        let interval = Duration::from_millis(cfg.flush_interval_ms);
        let thread_counters = counters.clone();
        let retain = cfg.retain_rows;
        let thread = std::thread::Builder::new()
            .name("iron-state-writer".into())
            .spawn(move || writer::run(writer_conn, rx, interval, thread_counters, retain))
            .map_err(StateError::Spawn)?;
        Ok(Store {
            tx,
            reader,
            counters,
            waker: thread.thread().clone(),
            thread: Some(thread),
            cfg,
        })
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    /// Queues a ledger row; never blocks. `Err(QueueFull)` means it was dropped (and counted).
    pub fn record_request(&self, row: RequestRow) -> Result<(), StateError> {
        self.enqueue(PendingRow::Request(row))
    }

    /// Queues an audit event; never blocks. The caller guarantees it holds no secrets or prompt text.
    pub fn record_audit(&self, row: AuditRow) -> Result<(), StateError> {
        self.enqueue(PendingRow::Audit(row))
    }

    /// Queues an insert-or-replace of an agent row; never blocks.
    pub fn upsert_agent(&self, row: AgentRow) -> Result<(), StateError> {
        self.enqueue(PendingRow::Agent(row))
    }

    /// Asks the writer to commit everything queued so far; never blocks. Wait on the returned ack.
    pub fn flush_handle(&self) -> FlushAck {
        let (ack_tx, ack_rx) = mpsc::channel();
        let rx = self.tx.send(Command::Flush(ack_tx)).ok().map(|()| ack_rx);
        self.waker.unpark();
        FlushAck { rx }
    }

    /// In strict mode, a flush ack the caller must await before answering; `None` otherwise.
    pub fn strict_ack(&self) -> Option<FlushAck> {
        self.cfg.strict.then(|| self.flush_handle())
    }

    /// Blocks until everything queued before this call is committed.
    pub fn flush(&self) -> Result<(), StateError> {
        self.flush_handle().wait()
    }

    /// Progress counters (queued, committed, dropped, ...).
    pub fn stats(&self) -> StoreStats {
        let c = &self.counters;
        StoreStats {
            queued: c.queued.load(Ordering::Relaxed),
            committed: c.committed.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            pending: c.pending.load(Ordering::Relaxed) as u64,
        }
    }

    /// Flushes, stops the writer thread and waits for it.
    pub fn close(mut self) -> Result<(), StateError> {
        self.shutdown()
    }

    pub(crate) fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        writer::lock(&self.reader)
    }

    fn enqueue(&self, row: PendingRow) -> Result<(), StateError> {
        let c = &self.counters;
        // Reserve a slot first so concurrent callers cannot overshoot the bound together.
        let before = c.pending.fetch_add(1, Ordering::AcqRel);
        if before >= self.cfg.max_queue {
            c.pending.fetch_sub(1, Ordering::AcqRel);
            c.dropped.fetch_add(1, Ordering::Relaxed);
            return Err(StateError::QueueFull {
                max_queue: self.cfg.max_queue,
            });
        }
        if self.tx.send(Command::Row(Box::new(row))).is_err() {
            c.pending.fetch_sub(1, Ordering::AcqRel);
            c.dropped.fetch_add(1, Ordering::Relaxed);
            return Err(StateError::Closed);
        }
        c.queued.fetch_add(1, Ordering::Relaxed);
        if (before + 1).is_multiple_of(writer::COMMIT_ROWS) {
            // A full batch is committed now rather than at the end of the interval (one wake-up
            // per batch, also while the writer is behind).
            self.waker.unpark();
        }
        Ok(())
    }

    fn shutdown(&mut self) -> Result<(), StateError> {
        let Some(handle) = self.thread.take() else {
            return Ok(());
        };
        let (ack_tx, ack_rx) = mpsc::channel();
        let sent = self.tx.send(Command::Shutdown(ack_tx));
        self.waker.unpark();
        let outcome = match sent {
            Ok(()) => match ack_rx.recv() {
                Ok(result) => result.map_err(StateError::Write),
                Err(_) => Err(StateError::Closed),
            },
            Err(_) => Err(StateError::Closed),
        };
        // A writer that panicked has nothing left to commit; its panic is not ours to re-raise.
        let _ = handle.join();
        outcome
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // Best effort: commit what is queued; errors have nowhere to go from Drop.
        let _ = self.shutdown();
    }
}

/// Opens a file connection with WAL, NORMAL sync (durable across process crashes) and a busy timeout.
fn open_file(path: &Path) -> Result<Connection, StateError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StateError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // journal_mode answers with the resulting mode, so it must be read as a query.
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    conn.execute_batch("PRAGMA synchronous = NORMAL")?;
    Ok(conn)
}
