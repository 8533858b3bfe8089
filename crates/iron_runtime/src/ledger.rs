//! The router's link to the SQLite state store: one ledger row per request (settled or refused) and
//! one audit row per PII detection, budget threshold, breaker change and key fetch outcome. Writes
//! are queued to the store's own thread; the request path never touches the disk.

use crate::config::ConfigError;
use crate::events::{now_ms, Published, RouterEvent};
use iron_runtime_state::{AuditRow, RequestRow, Store, StoreConfig};
use std::sync::{Arc, Mutex};

/// The store plus this router's identity in it.
pub struct Ledger {
    pub store: Arc<Store>,
    /// The agent these rows belong to (`agentId`, or `router` when none was given).
    pub agent_id: String,
    /// True when `agentId` was given: spent is restored from and kept for that agent.
    pub restores: bool,
    pub strict: bool,
    /// With `statePath` and `agentId`: an exclusive lock on the pair while this router runs. Two
    /// routers restoring the same agent's spent would each enforce the whole budget.
    owner: Mutex<Option<std::fs::File>>,
}

/// Take the exclusive lock for `agent_id`'s budget in the state file at `path`: a lock file next to
/// it, holding the owner's pid (for the message another router gets).
fn lock_agent(path: &str, agent_id: &str) -> Result<std::fs::File, ConfigError> {
    use std::io::{Read, Seek, Write};
    let safe: String = agent_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    let lock_path = format!("{path}.{safe}.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| ConfigError {
            field: "statePath".into(),
            message: format!("could not create the lock file {lock_path}: {e}"),
        })?;
    match file.try_lock() {
        Ok(()) => {
            let _ = file.set_len(0);
            let _ = file.rewind();
            let _ = write!(file, "{}", std::process::id());
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut owner = String::new();
            let _ = file.read_to_string(&mut owner);
            let owner = owner.trim();
            let by = if owner.is_empty() {
                String::new()
            } else {
                format!(" (process {owner})")
            };
            Err(ConfigError {
                field: "agentId".into(),
                message: format!("agent '{agent_id}' in {path} is in use by another router{by}: two routers would each enforce its whole budget. Stop the other one first, or give this router another agentId"),
            })
        }
        Err(std::fs::TryLockError::Error(e)) => Err(ConfigError {
            field: "statePath".into(),
            message: format!("could not lock {lock_path}: {e}"),
        }),
    }
}

impl Ledger {
    /// Open `statePath` (or an in-memory store), with the given flush interval and strictness.
    pub fn open(
        path: Option<&str>,
        agent_id: Option<&str>,
        flush_ms: Option<f64>,
        strict: bool,
    ) -> Result<Ledger, ConfigError> {
        let flush_interval_ms = match flush_ms {
            None => 100,
            Some(v) if v.is_finite() && (1.0..=60_000.0).contains(&v) => v as u64,
            Some(v) => {
                return Err(ConfigError {
                    field: "flushIntervalMs".into(),
                    message: format!("must be between 1 and 60000, got {v}"),
                })
            }
        };
        let mut cfg = match path {
            Some(p) => StoreConfig::at_path(p),
            None => StoreConfig::in_memory(),
        };
        cfg.flush_interval_ms = flush_interval_ms;
        cfg.strict = strict;
        let owner = match (path, agent_id) {
            (Some(p), Some(a)) => Some(lock_agent(p, a)?),
            _ => None,
        };
        let store = Store::open(cfg).map_err(|e| ConfigError {
            field: "statePath".into(),
            message: format!("could not open the state database: {e}"),
        })?;
        Ok(Ledger {
            store: Arc::new(store),
            agent_id: agent_id.unwrap_or("router").to_string(),
            restores: agent_id.is_some(),
            strict,
            owner: Mutex::new(owner),
        })
    }

    /// Spent recorded for this agent by earlier runs (0 without `agentId`).
    pub fn restored_spent(&self) -> u64 {
        if !self.restores {
            return 0;
        }
        self.store.spent_for_agent(&self.agent_id).unwrap_or(0)
    }

    /// Queue one request row (never blocks; a full queue is counted by the store).
    pub fn record(&self, mut row: RequestRow) {
        row.agent_id.clone_from(&self.agent_id);
        let _ = self.store.record_request(row);
    }

    /// In strict mode, wait until everything queued so far is committed.
    pub async fn commit_if_strict(&self) {
        if let Some(ack) = self.store.strict_ack() {
            let _ = tokio::task::spawn_blocking(move || ack.wait()).await;
        }
    }

    /// Audit rows for the events that belong in the audit trail (never key material or text).
    pub fn audit(&self, event: &Published) {
        let kind = match **event {
            RouterEvent::Pii { .. } => "pii_detected",
            RouterEvent::Budget { .. } => "budget_threshold",
            RouterEvent::Circuit { .. } => "breaker_changed",
            RouterEvent::Key { .. } => "key_fetch",
            RouterEvent::Agent { .. } => "agent",
            _ => return,
        };
        // The JSON is kept with the event: listeners and WebSocket clients reuse it.
        let json = event.json();
        // PII and budget events are built from fixed names, numbers and hashes only; the others
        // may carry text from outside (error reasons, key-server messages, agent output).
        let detail_json = match **event {
            RouterEvent::Pii { .. } | RouterEvent::Budget { .. } => json.to_string(),
            _ => crate::logging::redact(json),
        };
        let _ = self.store.record_audit(AuditRow {
            ts_ms: now_ms(),
            agent_id: self.agent_id.clone(),
            kind: kind.into(),
            detail_json,
        });
    }

    /// Write everything queued (used by stop).
    pub async fn flush(&self) {
        let store = self.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.flush()).await;
    }

    /// Give the agent's budget up to the next router (after the last write: used by stop).
    pub fn release(&self) {
        if let Ok(mut owner) = self.owner.lock() {
            owner.take();
        }
    }
}
