//! The router's link to the SQLite state store: one ledger row per request (settled or refused
//! by a policy; a request without the router's token costs no row) and one audit row per PII
//! detection, budget threshold, breaker change and key fetch outcome. With `statePath` and
//! `agentId`, the budget held for each call in flight is written too, so a call the router never
//! settled (it was killed) is charged when the agent's ledger is opened again. Writes are queued to
//! the store's own thread; the request path never touches the disk (in strict mode it waits for
//! the commit).

use crate::config::ConfigError;
use crate::events::{now_ms, Published, RouterEvent};
use crate::server::StartError;
use iron_runtime_state::{AuditRow, HoldRow, RequestRow, StateError, Store, StoreConfig};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The store plus this router's identity in it.
pub struct Ledger {
    pub store: Arc<Store>,
    /// The agent these rows belong to (`agentId`, or `router` when none was given).
    pub agent_id: String,
    /// True when `agentId` was given: spent is restored from and kept for that agent.
    pub restores: bool,
    pub strict: bool,
    /// With `statePath` and `agentId`: holds are written, and the next router for the agent
    /// charges those never settled.
    pub persists_holds: bool,
    /// The state file (`None` in memory).
    path: Option<PathBuf>,
    /// With `statePath` and `agentId`: an exclusive lock on the pair while this router runs. Two
    /// routers restoring the same agent's spent would each enforce the whole budget.
    owner: Mutex<Option<AgentLock>>,
}

/// The lock file of one agent in one state file, held (and removed at the end) by its owner.
struct AgentLock {
    file: std::fs::File,
    path: PathBuf,
}

impl AgentLock {
    /// Remove the lock file while still holding the lock, then let the lock go. A router that
    /// opened the file before the removal finds, once it holds the lock, that the path no longer
    /// leads to it, and starts over with a new file (see `lock_agent`).
    fn release(self) {
        #[cfg(unix)]
        let _ = std::fs::remove_file(&self.path);
        drop(self.file);
    }
}

/// `router-` and 8 random hex digits: the agent id of a router started without `agentId`.
fn anonymous_agent_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(crate::events::now_ms());
    h.write_u32(std::process::id());
    format!("router-{:08x}", h.finish() as u32)
}

/// The lock file for `agent_id` next to the state file: a readable prefix of the id, then 128 bits
/// of the SHA-256 of the exact id, so different ids never share a lock (`team/a` and `team_a`, or
/// two long ids with the same beginning).
fn lock_path(path: &str, agent_id: &str) -> PathBuf {
    use sha2::{Digest, Sha256};
    let readable: String = agent_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(32)
        .collect();
    let digest = Sha256::digest(agent_id.as_bytes());
    let hash: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    PathBuf::from(format!("{path}.{readable}-{hash}.lock"))
}

/// True when `path` still names the file `file` is open on (it was not removed or replaced).
#[cfg(unix)]
fn still_at_path(file: &std::fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn still_at_path(_file: &std::fs::File, _path: &Path) -> bool {
    true
}

/// Take the exclusive lock for `agent_id`'s budget in the state file at `path`: a lock file next to
/// it, holding the owner's pid (for the message another router gets), removed when it stops.
fn lock_agent(path: &str, agent_id: &str) -> Result<AgentLock, StartError> {
    use std::io::{Read, Seek, Write};
    let lock_path = lock_path(path, agent_id);
    let shown = lock_path.display();
    // The previous owner may remove the file between our open and our lock: then the lock we got
    // is on a file nobody else will find, and we take it again on the file now at the path.
    for _ in 0..16 {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| StartError::Config(ConfigError {
                field: "statePath".into(),
                message: format!("could not create the lock file {shown}: {e}; statePath must be in a directory this process can write"),
            }))?;
        match file.try_lock() {
            Ok(()) => {
                if !still_at_path(&file, &lock_path) {
                    continue;
                }
                let _ = file.set_len(0);
                let _ = file.rewind();
                let _ = write!(file, "{}", std::process::id());
                return Ok(AgentLock {
                    file,
                    path: lock_path,
                });
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                // A pid; anything else in the file (it is next to the state file, anyone who
                // can write there can write it) is not quoted.
                let mut owner = String::new();
                let _ = (&mut file).take(16).read_to_string(&mut owner);
                let owner = owner.trim();
                let owner = if owner.bytes().all(|b| b.is_ascii_digit()) {
                    owner
                } else {
                    ""
                };
                let by = if owner.is_empty() {
                    String::new()
                } else {
                    format!(" (process {owner})")
                };
                return Err(StartError::AgentInUse(format!("agent '{agent_id}' (agentId) in {path} is in use by another router{by}: two routers would each enforce its whole budget. Stop the other one first, or give this router another agentId")));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(ConfigError {
                    field: "statePath".into(),
                    message: format!("could not lock {shown}: {e}"),
                }
                .into())
            }
        }
    }
    Err(ConfigError {
        field: "statePath".into(),
        message: format!("could not lock {shown}: it was removed and created again by other routers 16 times in a row; try again"),
    }
    .into())
}

/// A state store error as a `statePath` option error (its message names the file and the fix).
fn state_error(path: Option<&Path>, e: StateError) -> ConfigError {
    let e = match path {
        Some(p) => e.about_file(p),
        None => e,
    };
    ConfigError {
        field: "statePath".into(),
        message: e.to_string(),
    }
}

impl Ledger {
    /// Open `statePath` (or an in-memory store), with the given flush interval and strictness.
    pub fn open(
        path: Option<&str>,
        agent_id: Option<&str>,
        flush_ms: Option<f64>,
        strict: bool,
    ) -> Result<Ledger, StartError> {
        let flush_interval_ms = match flush_ms {
            None => 100,
            Some(v) if v.is_finite() && (1.0..=60_000.0).contains(&v) => v as u64,
            Some(v) => {
                return Err(ConfigError {
                    field: "flushIntervalMs".into(),
                    message: format!("must be between 1 and 60000, got {v}"),
                }
                .into())
            }
        };
        if path.is_some_and(|p| p.trim().is_empty()) {
            return Err(ConfigError {
                field: "statePath".into(),
                message: "is empty: give the path of a SQLite file (a missing directory is created), or leave statePath out to keep the state in memory".into(),
            }
            .into());
        }
        let mut cfg = match path {
            Some(p) => StoreConfig::at_path(p),
            None => StoreConfig::in_memory(),
        };
        cfg.flush_interval_ms = flush_interval_ms;
        cfg.strict = strict;
        // The store first: it creates a missing directory, and refuses a file it cannot use
        // before any lock file is made next to it.
        let store = Store::open(cfg).map_err(|e| state_error(path.map(Path::new), e))?;
        let owner = match (path, agent_id) {
            (Some(p), Some(a)) => Some(lock_agent(p, a)?),
            _ => None,
        };
        Ok(Ledger {
            store: Arc::new(store),
            // Without `agentId` the router's rows are its own: one id per router, never shared
            // with another router on the file (nor restored by one that names that id).
            agent_id: agent_id.map_or_else(anonymous_agent_id, str::to_string),
            restores: agent_id.is_some(),
            strict,
            persists_holds: path.is_some() && agent_id.is_some(),
            path: path.map(PathBuf::from),
            owner: Mutex::new(owner),
        })
    }

    /// The first request id this router gives: after the last one the agent has on file (with
    /// `agentId`), so that a request id names one ledger row of the agent; else 1.
    pub fn first_request_id(&self) -> Result<u64, ConfigError> {
        if !self.restores {
            return Ok(1);
        }
        self.store
            .last_request_id(&self.agent_id)
            .map(|last| last.saturating_add(1).max(1))
            .map_err(|e| state_error(self.path.as_deref(), e))
    }

    /// Spent recorded for this agent by earlier runs (0 without `agentId`), after charging the
    /// holds an earlier run left unsettled. A file that cannot be read is an error, never $0: the
    /// budget would start over. Before restoring from a file that has rows for the agent, the file
    /// is checked (`PRAGMA quick_check`, about 0.4 s per million rows).
    pub fn restored_spent(&self) -> Result<u64, ConfigError> {
        if !self.restores {
            return Ok(0);
        }
        let id = &self.agent_id;
        let read = || -> Result<u64, StateError> {
            if !self.store.agent_has_rows(id)? {
                return Ok(0);
            }
            if self.path.is_some() {
                self.store.quick_check()?;
            }
            if self.persists_holds {
                let charged = self.store.charge_unsettled_holds(id)?;
                if !charged.is_empty() {
                    let micros: u64 = charged.iter().map(|h| h.amount_micros).sum();
                    tracing::warn!(target: "iron_cage", agent = %id, calls = charged.len(), held_micros = micros, "calls an earlier router forwarded and never settled (it was killed) are charged at their hold");
                }
            }
            self.store.spent_for_agent(id)
        };
        read().map_err(|e| {
            let e = state_error(self.path.as_deref(), e);
            ConfigError {
                field: e.field,
                message: format!("cannot restore the spent of agent '{id}': {}", e.message),
            }
        })
    }

    /// Write the hold of request `request_id` (with `statePath` and `agentId` only; never blocks).
    /// Its ledger row replaces it. True when the hold was queued.
    pub fn hold(
        &self,
        request_id: u64,
        amount_micros: u64,
        provider: &str,
        model: Option<&str>,
        api: &str,
    ) -> bool {
        if !self.persists_holds {
            return false;
        }
        self.store
            .record_hold(HoldRow {
                ts_ms: now_ms(),
                agent_id: self.agent_id.clone(),
                request_id: request_id.to_string(),
                provider: provider.to_string(),
                model: model.unwrap_or_default().to_string(),
                api: api.to_string(),
                amount_micros,
            })
            .is_ok()
    }

    /// Queue one request row (never blocks; a full queue is counted by the store). With holds on
    /// file, the row replaces the request's hold, if it had one.
    pub fn record(&self, mut row: RequestRow) {
        row.agent_id.clone_from(&self.agent_id);
        let _ = if self.persists_holds {
            self.store.record_request_replacing_hold(row)
        } else {
            self.store.record_request(row)
        };
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

    /// Write everything queued, stop the writer thread and close the file (used by stop). Rows
    /// queued later (a call that ends after the stop) are dropped and counted; its hold, if it had
    /// one, stays on file and is charged by the agent's next router.
    pub async fn close(&self) {
        let store = self.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
    }

    /// After [`Ledger::close`]: charge the holds this agent still has on file (calls the router
    /// stopped waiting for) as the next router would, at once. The store is closed, so a call that
    /// settles meanwhile writes nothing and is not charged twice. Only while the agent's lock is
    /// held (before [`Ledger::release`]). True when some were charged.
    pub async fn charge_left_holds(&self) -> bool {
        let (Some(path), true) = (self.path.clone(), self.persists_holds) else {
            return false;
        };
        let id = self.agent_id.clone();
        let charged = tokio::task::spawn_blocking(move || {
            let store = Store::open(StoreConfig::at_path(&path))?;
            let charged = store.charge_unsettled_holds(&id);
            let _ = store.close();
            charged
        })
        .await;
        match charged {
            Ok(Ok(holds)) if !holds.is_empty() => {
                let micros: u64 = holds.iter().map(|h| h.amount_micros).sum();
                tracing::warn!(target: "iron_cage", agent = %self.agent_id, calls = holds.len(), held_micros = micros, "calls still at the provider when the router stopped waiting are charged at their hold");
                true
            }
            Ok(Ok(_)) => false,
            Ok(Err(e)) => {
                tracing::warn!(target: "iron_cage", agent = %self.agent_id, "could not charge the holds of calls left at the provider: {e}; the next router for the agent charges them");
                false
            }
            Err(_) => false,
        }
    }

    /// Give the agent's budget up to the next router and remove its lock file (after the last
    /// write: used by stop).
    pub fn release(&self) {
        let owner = self.owner.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(lock) = owner {
            lock.release();
        }
    }
}

impl Drop for Ledger {
    /// A router dropped without `stop()`: the same order, the last write before the lock goes.
    fn drop(&mut self) {
        let _ = self.store.close();
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_differ_for_ids_that_read_alike() {
        let long = "x".repeat(64);
        let names = [
            lock_path("/s.db", "team/a"),
            lock_path("/s.db", "team_a"),
            lock_path("/s.db", &format!("{long}-1")),
            lock_path("/s.db", &format!("{long}-2")),
        ];
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                assert_ne!(a, b);
            }
        }
        let shown = lock_path("/s.db", "team/a").display().to_string();
        assert!(shown.starts_with("/s.db.team_a-"), "{shown}");
        assert!(shown.ends_with(".lock"), "{shown}");
    }
}
