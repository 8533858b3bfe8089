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
use crate::{schema, AgentRow, AuditRow, HoldRow, RequestRow, StateError, StoreConfig};

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

/// The connections a store holds until it is closed.
#[derive(Debug)]
struct Conns {
    /// Reads on the caller's thread (the writer's own connection for an in-memory store).
    reader: Arc<Mutex<Connection>>,
    /// The writer thread's connection, for the few writes made on the caller's thread
    /// (`charge_unsettled_holds`); the writer thread holds its own reference.
    writer: Arc<Mutex<Connection>>,
}

/// The state store: one writer thread plus a read connection.
///
/// [`Store::close`] (or dropping the last handle) commits what is queued, stops the writer thread
/// and closes the file; a closed store refuses writes (`Closed`, counted as dropped) and reads.
#[derive(Debug)]
pub struct Store {
    tx: mpsc::Sender<Command>,
    conns: Mutex<Option<Conns>>,
    counters: Arc<Counters>,
    thread: Mutex<Option<JoinHandle<()>>>,
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
                schema::migrate(&mut conn).map_err(|e| e.about_file(path))?;
                let reader = open_file(path)?;
                reader
                    .execute_batch("PRAGMA query_only = ON")
                    .map_err(|e| StateError::on_file(path, e))?;
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
        let thread_conn = writer_conn.clone();
        let thread = std::thread::Builder::new()
            .name("iron-state-writer".into())
            .spawn(move || writer::run(thread_conn, rx, interval, thread_counters, retain))
            .map_err(StateError::Spawn)?;
        Ok(Store {
            tx,
            conns: Mutex::new(Some(Conns {
                reader,
                writer: writer_conn,
            })),
            counters,
            waker: thread.thread().clone(),
            thread: Mutex::new(Some(thread)),
            cfg,
        })
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    /// Queues a ledger row; never blocks. `Err(QueueFull)` means it was dropped (and counted).
    pub fn record_request(&self, row: RequestRow) -> Result<(), StateError> {
        self.enqueue(PendingRow::Request(row, false))
    }

    /// Queues a ledger row that replaces the hold of the same agent and request id, if one is on
    /// file: the row is written and the hold deleted in one transaction, so a crash leaves one or
    /// the other, never both. Never blocks.
    pub fn record_request_replacing_hold(&self, row: RequestRow) -> Result<(), StateError> {
        self.enqueue(PendingRow::Request(row, true))
    }

    /// Queues the budget hold of a call about to be forwarded; never blocks. Its ledger row,
    /// queued with [`Store::record_request_replacing_hold`], deletes it.
    pub fn record_hold(&self, row: HoldRow) -> Result<(), StateError> {
        self.enqueue(PendingRow::Hold(row))
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

    /// Commits what is queued, stops the writer thread, waits for it and closes the file (every
    /// handle sharing this store sees it closed). Idempotent: a second call returns `Ok`.
    pub fn close(&self) -> Result<(), StateError> {
        let outcome = self.shutdown();
        // The connections go last, after the writer's final commit.
        let conns = self.conns.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(conns);
        outcome
    }

    /// True once [`Store::close`] ran.
    pub fn is_closed(&self) -> bool {
        self.conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    /// Runs `f` on the read connection; `Err(Closed)` once the store is closed.
    pub(crate) fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        let reader = match &*self.conns.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(c) => c.reader.clone(),
            None => return Err(StateError::Closed),
        };
        let conn = writer::lock(&reader);
        f(&conn)
    }

    /// Runs `f` on the writer's connection, on the caller's thread; `Err(Closed)` once closed.
    fn with_writer<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        let writer = match &*self.conns.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(c) => c.writer.clone(),
            None => return Err(StateError::Closed),
        };
        let mut conn = writer::lock(&writer);
        f(&mut conn)
    }

    /// `PRAGMA quick_check` of the whole file (every page, the b-trees and their order, not the
    /// index contents). `Err(Damaged)` with the first problem found. Reads the whole file: about
    /// 0.4 s per million ledger rows.
    pub fn quick_check(&self) -> Result<(), StateError> {
        let outcome = self.with_reader(|conn| {
            let first: String = conn.query_row("PRAGMA quick_check(1)", [], |r| r.get(0))?;
            Ok(first)
        });
        let path = self.cfg.path.clone().unwrap_or_default();
        match outcome {
            Ok(first) if first == "ok" => Ok(()),
            Ok(first) => Err(StateError::Damaged {
                path,
                detail: first,
            }),
            Err(e) => Err(e.about_file(&path)),
        }
    }

    /// Charges every hold `agent_id` left on file: calls forwarded by an earlier run that never
    /// settled (it was killed). Each becomes a ledger row at its held amount (`estimated`, status
    /// 0, error code `unsettled`) and an audit row (`hold_charged`), and the hold is deleted, in
    /// one transaction. Only the agent's sole owner may call this (its live holds would be charged
    /// too). Returns the holds charged.
    pub fn charge_unsettled_holds(&self, agent_id: &str) -> Result<Vec<HoldRow>, StateError> {
        // Whatever this handle queued is on file first, so a hold its ledger row replaced is gone.
        self.flush()?;
        let path = self.cfg.path.clone().unwrap_or_default();
        self.with_writer(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let holds: Vec<HoldRow> = {
                let mut stmt = tx.prepare_cached(&format!(
                    "{} WHERE agent_id = ?1 ORDER BY ts_ms, request_id",
                    HoldRow::SELECT
                ))?;
                let rows = stmt.query_map([agent_id], HoldRow::from_row)?;
                rows.collect::<Result<_, _>>()?
            };
            let now = now_ms();
            for h in &holds {
                RequestRow {
                    ts_ms: now,
                    agent_id: h.agent_id.clone(),
                    request_id: h.request_id.clone(),
                    provider: h.provider.clone(),
                    model: h.model.clone(),
                    api: h.api.clone(),
                    status: 0,
                    cost_micros: h.amount_micros,
                    estimated: true,
                    error_code: Some("unsettled".into()),
                    ..RequestRow::default()
                }
                .insert(&tx)?;
                AuditRow {
                    ts_ms: now,
                    agent_id: h.agent_id.clone(),
                    kind: "hold_charged".into(),
                    detail_json: format!(
                        "{{\"request_id\":{},\"held_micros\":{},\"held_at_ms\":{},\"reason\":\"the router that forwarded this call stopped (killed or crashed) before it settled; the provider may have billed it, so it is charged at its hold\"}}",
                        json_string(&h.request_id),
                        h.amount_micros,
                        h.ts_ms
                    ),
                }
                .insert(&tx)?;
            }
            tx.execute("DELETE FROM holds WHERE agent_id = ?1", [agent_id])?;
            tx.commit()?;
            Ok(holds)
        })
        .map_err(|e| e.about_file(&path))
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

    fn shutdown(&self) -> Result<(), StateError> {
        let Some(handle) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() else {
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
        let _ = self.close();
    }
}

/// A JSON string literal for `s`.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Creates the directory `path` is in, if it is missing.
pub(crate) fn create_parent(path: &Path) -> Result<(), StateError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StateError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

/// Opens a file connection with WAL, NORMAL sync (durable across process crashes) and a busy timeout.
/// A file that cannot be used (not a database, damaged, read-only, not openable) is reported as such.
fn open_file(path: &Path) -> Result<Connection, StateError> {
    if path.as_os_str().is_empty() {
        return Err(StateError::CannotOpen {
            path: path.to_path_buf(),
            detail: "the path is empty".into(),
        });
    }
    create_parent(path)?;
    let on_file = |e| StateError::on_file(path, e);
    let conn = Connection::open(path).map_err(on_file)?;
    // SQLite opens a file it may not write read-only, without an error: the first write would fail.
    if conn.is_readonly(rusqlite::MAIN_DB).map_err(on_file)? {
        return Err(StateError::ReadOnly {
            path: path.to_path_buf(),
            detail: "the file could only be opened read-only".into(),
        });
    }
    conn.busy_timeout(BUSY_TIMEOUT).map_err(on_file)?;
    // journal_mode answers with the resulting mode, so it must be read as a query. Switching a
    // new file to WAL while another process opens it can answer SQLITE_BUSY without calling the
    // busy handler: it is asked again, within the same timeout.
    let since = std::time::Instant::now();
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)) {
            Ok(_mode) => break,
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && since.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(on_file(e)),
        }
    }
    conn.execute_batch("PRAGMA synchronous = NORMAL")
        .map_err(on_file)?;
    Ok(conn)
}
