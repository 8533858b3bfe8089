//! Reads on the caller's thread, through the store's read connection.

use rusqlite::params;

use crate::sql_int::from_sql;
use crate::{AgentRow, AuditRow, HoldRow, RequestRow, StateError, Store};

/// A row limit as SQLite wants it.
fn limit_sql(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl Store {
    /// Sum of `cost_micros` over the agent's committed requests (0 when it has none).
    pub fn spent_for_agent(&self, agent_id: &str) -> Result<u64, StateError> {
        self.with_reader(|conn| {
            let sum: i64 = conn.query_row(
                "SELECT COALESCE(SUM(cost_micros), 0) FROM requests WHERE agent_id = ?1",
                params![agent_id],
                |r| r.get(0),
            )?;
            Ok(from_sql(sum))
        })
    }

    /// The largest numeric request id the agent has on file (ledger rows and holds), 0 if none.
    pub fn last_request_id(&self, agent_id: &str) -> Result<u64, StateError> {
        self.with_reader(|conn| {
            let last: i64 = conn.query_row(
                "SELECT MAX(COALESCE((SELECT MAX(CAST(request_id AS INTEGER)) FROM requests WHERE agent_id = ?1), 0), \
                            COALESCE((SELECT MAX(CAST(request_id AS INTEGER)) FROM holds WHERE agent_id = ?1), 0))",
                params![agent_id],
                |r| r.get(0),
            )?;
            Ok(from_sql(last))
        })
    }

    /// True when the agent has a ledger row or a hold on file (an index lookup, not a scan).
    pub fn agent_has_rows(&self, agent_id: &str) -> Result<bool, StateError> {
        self.with_reader(|conn| {
            let any: bool = conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM requests WHERE agent_id = ?1) \
                 OR EXISTS (SELECT 1 FROM holds WHERE agent_id = ?1)",
                params![agent_id],
                |r| r.get(0),
            )?;
            Ok(any)
        })
    }

    /// Sum of `cost_micros` over all committed requests.
    pub fn spent_total(&self) -> Result<u64, StateError> {
        self.with_reader(|conn| {
            let sum: i64 = conn.query_row(
                "SELECT COALESCE(SUM(cost_micros), 0) FROM requests",
                [],
                |r| r.get(0),
            )?;
            Ok(from_sql(sum))
        })
    }

    /// The agent with this id, if one was committed.
    pub fn agent(&self, id: &str) -> Result<Option<AgentRow>, StateError> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(&format!("{} WHERE id = ?1", AgentRow::SELECT))?;
            let mut rows = stmt.query_map(params![id], AgentRow::from_row)?;
            Ok(rows.next().transpose()?)
        })
    }

    /// All agents, oldest start first.
    pub fn list_agents(&self) -> Result<Vec<AgentRow>, StateError> {
        self.with_reader(|conn| {
            let mut stmt =
                conn.prepare_cached(&format!("{} ORDER BY started_at_ms, id", AgentRow::SELECT))?;
            let rows = stmt.query_map([], AgentRow::from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// The `limit` most recent ledger rows, newest first.
    pub fn requests(&self, limit: usize) -> Result<Vec<RequestRow>, StateError> {
        self.with_reader(|conn| {
            let mut stmt =
                conn.prepare_cached(&format!("{} ORDER BY id DESC LIMIT ?1", RequestRow::SELECT))?;
            let rows = stmt.query_map(params![limit_sql(limit)], RequestRow::from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// All ledger rows of one agent, in the order they were recorded.
    pub fn requests_for_agent(&self, agent_id: &str) -> Result<Vec<RequestRow>, StateError> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "{} WHERE agent_id = ?1 ORDER BY id",
                RequestRow::SELECT
            ))?;
            let rows = stmt.query_map(params![agent_id], RequestRow::from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// The `limit` most recent audit events, newest first.
    pub fn audit_events(&self, limit: usize) -> Result<Vec<AuditRow>, StateError> {
        self.with_reader(|conn| {
            let mut stmt =
                conn.prepare_cached(&format!("{} ORDER BY id DESC LIMIT ?1", AuditRow::SELECT))?;
            let rows = stmt.query_map(params![limit_sql(limit)], AuditRow::from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Committed row counts: `(requests, audit)`.
    pub fn counts(&self) -> Result<(u64, u64), StateError> {
        self.with_reader(|conn| {
            let (requests, audit): (i64, i64) = conn.query_row(
                "SELECT (SELECT COUNT(*) FROM requests), (SELECT COUNT(*) FROM audit)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok((from_sql(requests), from_sql(audit)))
        })
    }

    /// Holds on file (calls in flight, or left by a router that never settled them), oldest first.
    pub fn holds(&self) -> Result<Vec<HoldRow>, StateError> {
        self.with_reader(|conn| {
            let mut stmt =
                conn.prepare_cached(&format!("{} ORDER BY ts_ms, request_id", HoldRow::SELECT))?;
            let rows = stmt.query_map([], HoldRow::from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }
}
