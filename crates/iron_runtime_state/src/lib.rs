//! iron_runtime_state: a SQLite (WAL) store for agents, the request ledger, budget holds of calls in
//! flight, and audit events.
//!
//! Writes never touch the disk on the caller's thread: `record_*` / `upsert_agent` hand the row to one
//! writer thread, which commits what it received every `flush_interval_ms` or every 128 rows, whichever
//! comes first, one transaction per batch. (`charge_unsettled_holds`, run once when an agent's ledger
//! is opened, writes on the caller's thread.) Reads use a separate connection on the caller's thread.
//! `close` commits what is queued, joins the writer thread and closes the file.
//!
//! A file that cannot serve as the store (not a database, damaged, read-only, not openable) is
//! reported as such, naming the file and the fix (see `StateError`).
//!
//! The `audit` table holds summaries only (PII types, counts and SHA-256 digests, budget and breaker
//! changes, key fetch outcomes). Callers must never put key material or prompt/answer text in a row:
//! this crate stores what it is given and does not inspect it.

mod config;
mod error;
mod read;
mod rows;
mod schema;
mod sql_int;
mod store;
mod writer;

pub use config::StoreConfig;
pub use error::StateError;
pub use rows::{AgentRow, AuditRow, HoldRow, RequestRow};
pub use schema::SCHEMA_VERSION;
pub use store::{now_ms, FlushAck, Store, StoreStats};
