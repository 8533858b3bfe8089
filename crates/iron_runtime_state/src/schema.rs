//! Versioned schema migrations, tracked with `PRAGMA user_version`.
//!
//! Migration `i` (0-based) takes a database from version `i` to `i + 1`. Append new migrations; never
//! edit a released one, files in the field were created by it.

use rusqlite::Connection;

use crate::StateError;

/// Ordered migrations; the index + 1 is the version a migration produces.
const MIGRATIONS: &[&str] = &[
    // v1: the three tables.
    "CREATE TABLE agents (
        id TEXT PRIMARY KEY NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT '',
        started_at_ms INTEGER NOT NULL DEFAULT 0,
        ended_at_ms INTEGER,
        budget_micros INTEGER,
        spent_micros INTEGER NOT NULL DEFAULT 0,
        exit_code INTEGER,
        exit_signal TEXT,
        restarts INTEGER NOT NULL DEFAULT 0,
        reason TEXT
    );
    CREATE TABLE requests (
        id INTEGER PRIMARY KEY,
        ts_ms INTEGER NOT NULL,
        agent_id TEXT NOT NULL DEFAULT '',
        request_id TEXT NOT NULL DEFAULT '',
        provider TEXT NOT NULL DEFAULT '',
        model TEXT NOT NULL DEFAULT '',
        api TEXT NOT NULL DEFAULT '',
        status INTEGER NOT NULL DEFAULT 0,
        input_tokens INTEGER NOT NULL DEFAULT 0,
        cache_read_tokens INTEGER NOT NULL DEFAULT 0,
        cache_write_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        reasoning_tokens INTEGER NOT NULL DEFAULT 0,
        cost_micros INTEGER NOT NULL DEFAULT 0,
        estimated INTEGER NOT NULL DEFAULT 0,
        latency_ms INTEGER NOT NULL DEFAULT 0,
        ttft_ms INTEGER
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        ts_ms INTEGER NOT NULL,
        agent_id TEXT NOT NULL DEFAULT '',
        kind TEXT NOT NULL,
        detail_json TEXT NOT NULL DEFAULT '{}'
    );",
    // v2: refusal/error columns, and indexes for per-agent and time-ordered reads.
    "ALTER TABLE requests ADD COLUMN blocked_reason TEXT;
    ALTER TABLE requests ADD COLUMN error_code TEXT;
    CREATE INDEX idx_requests_agent_ts ON requests(agent_id, ts_ms);
    CREATE INDEX idx_requests_ts ON requests(ts_ms);
    CREATE INDEX idx_audit_agent_ts ON audit(agent_id, ts_ms);
    CREATE INDEX idx_audit_ts ON audit(ts_ms);",
    // v3: drop the indexes no read uses. Rows are appended in time order, so `id` already orders
    // them by time; every index costs an insert and a delete per row on the writer's hot path.
    // `idx_requests_agent_ts` stays: spent and the ledger per agent are read through it.
    "DROP INDEX IF EXISTS idx_requests_ts;
    DROP INDEX IF EXISTS idx_audit_ts;
    DROP INDEX IF EXISTS idx_audit_agent_ts;",
    // v4: budget holds of calls in flight, so that a call the router never settled (it was
    // killed while the provider had the call) is charged when the agent's ledger is opened again.
    // A few rows at most (one per call in flight); keyed for the delete that settles each.
    "CREATE TABLE holds (
        agent_id TEXT NOT NULL,
        request_id TEXT NOT NULL,
        ts_ms INTEGER NOT NULL,
        provider TEXT NOT NULL DEFAULT '',
        model TEXT NOT NULL DEFAULT '',
        api TEXT NOT NULL DEFAULT '',
        amount_micros INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (agent_id, request_id)
    ) WITHOUT ROWID;",
    // v5: a call of a model without a price is recorded at $0; this says it was not a real $0.
    "ALTER TABLE requests ADD COLUMN unpriced INTEGER NOT NULL DEFAULT 0;",
];

/// The schema version this build creates and reads.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings `conn` up to [`SCHEMA_VERSION`], one transaction per migration so a crash leaves a valid version.
///
/// Each step reads the version and applies the next migration in one `BEGIN IMMEDIATE`
/// transaction: processes opening a new file at once take turns, and each finds the version the
/// one before left (read outside the transaction, two would both apply migration 1: "table
/// agents already exists").
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StateError> {
    loop {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if found > SCHEMA_VERSION {
            return Err(StateError::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        // A negative user_version can only come from a hand-edited file; treat it as empty.
        let index = usize::try_from(found).unwrap_or(0);
        let Some(sql) = MIGRATIONS.get(index) else {
            tx.commit()?;
            return Ok(());
        };
        tx.execute_batch(sql)?;
        // PRAGMA cannot take a bound parameter; the value is our own integer.
        tx.execute_batch(&format!("PRAGMA user_version = {}", index + 1))?;
        tx.commit()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_database_reaches_latest_version() {
        let mut conn = Connection::open_in_memory().expect("open");
        migrate(&mut conn).expect("migrate");
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(v, 5);
        // Running again is a no-op, not an error.
        migrate(&mut conn).expect("migrate twice");
    }

    #[test]
    fn newer_file_is_refused() {
        let mut conn = Connection::open_in_memory().expect("open");
        conn.execute_batch("PRAGMA user_version = 99").expect("set");
        match migrate(&mut conn) {
            Err(StateError::SchemaTooNew { found, supported }) => {
                assert_eq!((found, supported), (99, 5));
            }
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
    }
}
