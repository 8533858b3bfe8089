//! The kinds of row the store keeps, and how each maps to its table.
//!
//! Insert and select SQL live next to each other here so the column lists cannot drift apart.

use rusqlite::{params, Connection, Row};

use crate::sql_int::{from_sql, opt_from_sql, opt_to_sql, to_sql};

/// One agent's lifecycle record (`agents` table); `upsert_agent` replaces the row with the same id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentRow {
    /// Agent id (primary key).
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// Lifecycle status as the runtime names it (e.g. `running`, `stopped`, `failed`).
    pub status: String,
    /// Start time, ms since the Unix epoch.
    pub started_at_ms: u64,
    /// End time, ms since the Unix epoch, once the agent ended.
    pub ended_at_ms: Option<u64>,
    /// Budget limit in micro-USD; `None` = unlimited.
    pub budget_micros: Option<u64>,
    /// Spent so far in micro-USD, as last reported by the runtime.
    pub spent_micros: u64,
    /// Process exit code, if it exited normally.
    pub exit_code: Option<i64>,
    /// Signal name that ended the process (e.g. `SIGTERM`), if any.
    pub exit_signal: Option<String>,
    /// How many times the agent was restarted.
    pub restarts: u32,
    /// Why the agent ended or changed status, in words (never prompt text or keys).
    pub reason: Option<String>,
}

/// One proxied (or refused) LLM request in the ledger (`requests` table).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestRow {
    /// Completion time, ms since the Unix epoch.
    pub ts_ms: u64,
    /// Agent that made the request (empty when not known).
    pub agent_id: String,
    /// Router-assigned request id.
    pub request_id: String,
    /// `openai`, `anthropic`, ...
    pub provider: String,
    /// Model name from the request.
    pub model: String,
    /// API surface, e.g. `chat.completions`, `responses`, `messages`.
    pub api: String,
    /// HTTP status returned to the client.
    pub status: u16,
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Input tokens read from the provider's prompt cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to the provider's prompt cache.
    pub cache_write_tokens: u64,
    /// Output tokens (including reasoning when the provider counts them together).
    pub output_tokens: u64,
    /// Reasoning tokens reported separately.
    pub reasoning_tokens: u64,
    /// Cost in micro-USD.
    pub cost_micros: u64,
    /// True when usage was estimated (e.g. an interrupted stream).
    pub estimated: bool,
    /// True when the model has no price: the call is recorded at $0 whatever it cost (column
    /// added by schema v5; older rows read as false).
    pub unpriced: bool,
    /// Total latency in ms.
    pub latency_ms: u64,
    /// Time to first byte/token in ms, for streams.
    pub ttft_ms: Option<u64>,
    /// Why the router refused the request (e.g. `BUDGET_EXCEEDED`), if it did.
    pub blocked_reason: Option<String>,
    /// Stable error code when the request failed.
    pub error_code: Option<String>,
}

/// One audit event (`audit` table): PII summaries, budget and breaker changes, key fetch outcomes.
///
/// `detail_json` must hold summaries only (types, counts, SHA-256 digests), never key material or
/// prompt text; the store does not inspect it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditRow {
    /// Event time, ms since the Unix epoch.
    pub ts_ms: u64,
    /// Agent concerned (empty for router-wide events).
    pub agent_id: String,
    /// Event kind, e.g. `pii_detected`, `budget_changed`, `breaker_changed`, `key_fetch`.
    pub kind: String,
    /// JSON object with the event's details.
    pub detail_json: String,
}

/// The budget held for a call that was forwarded and has not settled yet (`holds` table).
///
/// Written when the hold is taken and deleted, in the same transaction, by the call's ledger row
/// (see `Store::record_request_replacing_hold`). A hold still on file when its agent's ledger is
/// opened again belongs to a call the router never settled (it was killed): the provider may have
/// billed it, so `Store::charge_unsettled_holds` charges it at the held amount.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HoldRow {
    /// Time the hold was taken, ms since the Unix epoch.
    pub ts_ms: u64,
    /// Agent whose budget holds it.
    pub agent_id: String,
    /// Router-assigned request id (the one its ledger row will carry).
    pub request_id: String,
    /// `openai`, `anthropic`, ...
    pub provider: String,
    /// Model name from the request.
    pub model: String,
    /// API surface, e.g. `chat.completions`.
    pub api: String,
    /// The amount held, micro-USD: the most the call can cost.
    pub amount_micros: u64,
}

/// A row travelling to the writer thread.
#[derive(Debug, Clone)]
pub(crate) enum PendingRow {
    Agent(AgentRow),
    /// A ledger row; `true` when it replaces the hold of the same agent and request, if one is on file.
    Request(RequestRow, bool),
    Audit(AuditRow),
    Hold(HoldRow),
}

impl PendingRow {
    /// Writes this row inside the writer's open transaction.
    pub(crate) fn insert(&self, conn: &Connection) -> rusqlite::Result<()> {
        match self {
            PendingRow::Agent(a) => a.upsert(conn),
            PendingRow::Request(r, _) => r.insert(conn),
            PendingRow::Audit(e) => e.insert(conn),
            PendingRow::Hold(h) => h.insert(conn),
        }
    }
}

impl AgentRow {
    pub(crate) const SELECT: &'static str = "SELECT id, name, status, started_at_ms, ended_at_ms, \
        budget_micros, spent_micros, exit_code, exit_signal, restarts, reason FROM agents";

    fn upsert(&self, conn: &Connection) -> rusqlite::Result<()> {
        let mut stmt = conn.prepare_cached(
            "INSERT INTO agents (id, name, status, started_at_ms, ended_at_ms, budget_micros, \
             spent_micros, exit_code, exit_signal, restarts, reason) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, status = excluded.status, \
             started_at_ms = excluded.started_at_ms, ended_at_ms = excluded.ended_at_ms, \
             budget_micros = excluded.budget_micros, spent_micros = excluded.spent_micros, \
             exit_code = excluded.exit_code, exit_signal = excluded.exit_signal, \
             restarts = excluded.restarts, reason = excluded.reason",
        )?;
        stmt.execute(params![
            self.id,
            self.name,
            self.status,
            to_sql(self.started_at_ms),
            opt_to_sql(self.ended_at_ms),
            opt_to_sql(self.budget_micros),
            to_sql(self.spent_micros),
            self.exit_code,
            self.exit_signal,
            i64::from(self.restarts),
            self.reason,
        ])?;
        Ok(())
    }

    pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            name: row.get(1)?,
            status: row.get(2)?,
            started_at_ms: from_sql(row.get(3)?),
            ended_at_ms: opt_from_sql(row.get(4)?),
            budget_micros: opt_from_sql(row.get(5)?),
            spent_micros: from_sql(row.get(6)?),
            exit_code: row.get(7)?,
            exit_signal: row.get(8)?,
            restarts: u32::try_from(from_sql(row.get(9)?)).unwrap_or(u32::MAX),
            reason: row.get(10)?,
        })
    }
}

impl RequestRow {
    pub(crate) const SELECT: &'static str = "SELECT ts_ms, agent_id, request_id, provider, model, \
        api, status, input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, \
        reasoning_tokens, cost_micros, estimated, latency_ms, ttft_ms, blocked_reason, error_code, \
        unpriced FROM requests";

    pub(crate) fn insert(&self, conn: &Connection) -> rusqlite::Result<()> {
        let mut stmt = conn.prepare_cached(
            "INSERT INTO requests (ts_ms, agent_id, request_id, provider, model, api, status, \
             input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, reasoning_tokens, \
             cost_micros, estimated, latency_ms, ttft_ms, blocked_reason, error_code, unpriced) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
             ?19)",
        )?;
        stmt.execute(params![
            to_sql(self.ts_ms),
            self.agent_id,
            self.request_id,
            self.provider,
            self.model,
            self.api,
            i64::from(self.status),
            to_sql(self.input_tokens),
            to_sql(self.cache_read_tokens),
            to_sql(self.cache_write_tokens),
            to_sql(self.output_tokens),
            to_sql(self.reasoning_tokens),
            to_sql(self.cost_micros),
            self.estimated,
            to_sql(self.latency_ms),
            opt_to_sql(self.ttft_ms),
            self.blocked_reason,
            self.error_code,
            self.unpriced,
        ])?;
        Ok(())
    }

    pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            ts_ms: from_sql(row.get(0)?),
            agent_id: row.get(1)?,
            request_id: row.get(2)?,
            provider: row.get(3)?,
            model: row.get(4)?,
            api: row.get(5)?,
            status: u16::try_from(from_sql(row.get(6)?)).unwrap_or(u16::MAX),
            input_tokens: from_sql(row.get(7)?),
            cache_read_tokens: from_sql(row.get(8)?),
            cache_write_tokens: from_sql(row.get(9)?),
            output_tokens: from_sql(row.get(10)?),
            reasoning_tokens: from_sql(row.get(11)?),
            cost_micros: from_sql(row.get(12)?),
            estimated: row.get::<_, i64>(13)? != 0,
            latency_ms: from_sql(row.get(14)?),
            ttft_ms: opt_from_sql(row.get(15)?),
            blocked_reason: row.get(16)?,
            error_code: row.get(17)?,
            unpriced: row.get::<_, i64>(18)? != 0,
        })
    }
}

impl AuditRow {
    pub(crate) const SELECT: &'static str = "SELECT ts_ms, agent_id, kind, detail_json FROM audit";

    pub(crate) fn insert(&self, conn: &Connection) -> rusqlite::Result<()> {
        let mut stmt = conn.prepare_cached(
            "INSERT INTO audit (ts_ms, agent_id, kind, detail_json) VALUES (?1, ?2, ?3, ?4)",
        )?;
        stmt.execute(params![
            to_sql(self.ts_ms),
            self.agent_id,
            self.kind,
            self.detail_json
        ])?;
        Ok(())
    }

    pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            ts_ms: from_sql(row.get(0)?),
            agent_id: row.get(1)?,
            kind: row.get(2)?,
            detail_json: row.get(3)?,
        })
    }
}

impl HoldRow {
    pub(crate) const SELECT: &'static str =
        "SELECT ts_ms, agent_id, request_id, provider, model, api, amount_micros FROM holds";

    fn insert(&self, conn: &Connection) -> rusqlite::Result<()> {
        // A request id is unique within one run of a router; a hold left by an earlier run was
        // charged (and deleted) before this run took any, so a clash can only be a replay.
        let mut stmt = conn.prepare_cached(
            "INSERT OR REPLACE INTO holds (ts_ms, agent_id, request_id, provider, model, api, \
             amount_micros) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        stmt.execute(params![
            to_sql(self.ts_ms),
            self.agent_id,
            self.request_id,
            self.provider,
            self.model,
            self.api,
            to_sql(self.amount_micros),
        ])?;
        Ok(())
    }

    /// Deletes the hold of `agent_id`'s request `request_id`, if one is on file.
    pub(crate) fn delete(
        conn: &Connection,
        agent_id: &str,
        request_id: &str,
    ) -> rusqlite::Result<()> {
        let mut stmt =
            conn.prepare_cached("DELETE FROM holds WHERE agent_id = ?1 AND request_id = ?2")?;
        stmt.execute(params![agent_id, request_id])?;
        Ok(())
    }

    pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            ts_ms: from_sql(row.get(0)?),
            agent_id: row.get(1)?,
            request_id: row.get(2)?,
            provider: row.get(3)?,
            model: row.get(4)?,
            api: row.get(5)?,
            amount_micros: from_sql(row.get(6)?),
        })
    }
}
