//! `AgentRuntime`: starts agents (each with its own router and budget), lists, stops and shuts them
//! down, publishes `agent` events on its own bus, and persists agent rows when given a state path.

use super::budget_watch::watch_router;
use super::process_group::StopSignal;
use super::spawn::{spawn_agent, RouterEnv};
use super::spec::{AgentSpec, RuntimeOptions, SpecError};
use super::status::{AgentInfo, AgentStatus};
use super::supervised::{Reporting, StopRequest, SupervisedAgent};
use super::supervisor::supervise;
use crate::events::EventBus;
use crate::{Router, StartError};
use iron_runtime_state::{Store, StoreConfig};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Why an agent operation failed; `code()` is what JS sees as `err.code`.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Options(#[from] SpecError),
    #[error("agent router: {0}")]
    Router(#[from] StartError),
    #[error("{0}")]
    Spawn(String),
    #[error("no agent with id '{0}': list() shows the agents of this runtime")]
    NotFound(String),
    #[error("invalid option statePath: {0}")]
    State(String),
    #[error("the agent runtime was shut down: create a new AgentRuntime to start agents")]
    ShutDown,
    #[error("an agent with id '{0}' is running in this runtime: stop it first, or give this one another id")]
    IdInUse(String),
}

impl AgentError {
    /// Stable code for JS.
    pub fn code(&self) -> &'static str {
        match self {
            AgentError::Options(_) => "INVALID_OPTIONS",
            AgentError::Router(e) => e.code(),
            AgentError::Spawn(_) => "SPAWN_FAILED",
            AgentError::NotFound(_) => "AGENT_NOT_FOUND",
            AgentError::State(_) => "INVALID_OPTIONS",
            AgentError::ShutDown => "RUNTIME_SHUT_DOWN",
            AgentError::IdInUse(_) => "AGENT_ID_IN_USE",
        }
    }
}

struct Entry {
    agent: Arc<SupervisedAgent>,
    watch_cancel: CancellationToken,
}

/// Supervises agents. Must be used inside a tokio runtime.
pub struct AgentRuntime {
    opts: RuntimeOptions,
    events: EventBus,
    store: Option<Arc<Store>>,
    agents: Mutex<Vec<Entry>>,
    /// Fixed ids whose agents are being started (between the check and the push).
    starting: Mutex<Vec<String>>,
    /// Where every agent router's log lines go (`logger` in JS), when set.
    logger: Mutex<Option<iron_telemetry::LineCallback>>,
    next: AtomicU64,
    closed: AtomicBool,
}

impl AgentRuntime {
    /// A runtime; opens the state store when `state_path` is set.
    pub fn new(opts: RuntimeOptions) -> Result<AgentRuntime, AgentError> {
        let store = match &opts.state_path {
            Some(p) => Some(Arc::new(
                Store::open(StoreConfig::at_path(p))
                    .map_err(|e| AgentError::State(e.to_string()))?,
            )),
            None => None,
        };
        Ok(AgentRuntime {
            opts,
            events: EventBus::new(1024),
            store,
            agents: Mutex::new(Vec::new()),
            starting: Mutex::new(Vec::new()),
            logger: Mutex::new(None),
            next: AtomicU64::new(1),
            closed: AtomicBool::new(false),
        })
    }

    /// Parse `{ router, statePath? }` and create the runtime.
    pub fn from_json(json: &str) -> Result<AgentRuntime, AgentError> {
        AgentRuntime::new(RuntimeOptions::from_json(json)?)
    }

    /// The bus carrying `agent` events.
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// Send the log lines of every agent router started from now on to `callback` (the routers
    /// were configured with `logSink: 'callback'`, so without it their lines would go nowhere).
    pub fn attach_logger(&self, callback: iron_telemetry::LineCallback) {
        *self.logger.lock().unwrap_or_else(|p| p.into_inner()) = Some(callback);
    }

    /// The state store, when the runtime has one.
    pub fn store(&self) -> Option<&Arc<Store>> {
        self.store.as_ref()
    }

    /// Start an agent: its own router (budget `spec.budget_usd`), its process with the router's
    /// environment, and its supervisor. Spawn errors are returned, not deferred.
    pub fn start_agent(&self, spec: AgentSpec) -> Result<Arc<SupervisedAgent>, AgentError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(AgentError::ShutDown);
        }
        let Some(id) = spec.id.clone() else {
            let id = self.new_id();
            return self.start_agent_as(id, spec);
        };
        // A fixed id: one agent at a time has it here (with a state file, the file's lock also
        // keeps other processes from running it); a finished agent of that id gives way.
        {
            let mut starting = self.starting.lock().unwrap_or_else(|p| p.into_inner());
            let running = self
                .lock()
                .iter()
                .any(|e| e.agent.id == id && !e.agent.state().finished);
            if running || starting.contains(&id) {
                return Err(AgentError::IdInUse(id));
            }
            starting.push(id.clone());
        }
        let started = self.start_agent_as(id.clone(), spec);
        self.starting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|s| s != &id);
        started
    }

    fn start_agent_as(
        &self,
        id: String,
        spec: AgentSpec,
    ) -> Result<Arc<SupervisedAgent>, AgentError> {
        let router = Router::start_json(&self.router_options(&id, &spec))?;
        if let Some(cb) = self
            .logger
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            router.shared().policies.logging.attach(cb);
        }
        let env = RouterEnv {
            openai_base_url: router.base_url(),
            anthropic_base_url: router.anthropic_base_url(),
            token: router.api_key().to_string(),
            agent_id: id.clone(),
            secrets: self.secrets(),
        };
        let name = spec
            .name
            .clone()
            .unwrap_or_else(|| default_name(&spec.command));
        let spawned = match spawn_agent(&spec, &env) {
            Ok(c) => c,
            Err(e) => {
                drop(router);
                return Err(AgentError::Spawn(e));
            }
        };
        let reporting = Reporting {
            events: self.events.clone(),
            store: self.store.clone(),
        };
        let sub = router.events().subscribe();
        let (agent, stops) = SupervisedAgent::new(id, name, spec, router, reporting);
        {
            let mut s = agent.state();
            s.pid = spawned.child.id();
            s.status = AgentStatus::Running;
        }
        agent.persist();
        agent.emit("started", None);
        let watch_cancel = CancellationToken::new();
        tokio::spawn(watch_router(agent.clone(), sub, watch_cancel.clone()));
        let sup = agent.clone();
        let done = watch_cancel.clone();
        tokio::spawn(async move {
            supervise(sup, spawned, env, stops).await;
            done.cancel();
        });
        {
            let mut agents = self.lock();
            // A finished agent with the same (fixed) id is replaced: ids stay unique in `list()`.
            agents.retain(|e| e.agent.id != agent.id);
            agents.push(Entry {
                agent: agent.clone(),
                watch_cancel,
            });
        }
        Ok(agent)
    }

    /// The agent with this id.
    pub fn agent(&self, id: &str) -> Option<Arc<SupervisedAgent>> {
        self.lock()
            .iter()
            .find(|e| e.agent.id == id)
            .map(|e| e.agent.clone())
    }

    /// Every agent started by this runtime, oldest first.
    pub fn list(&self) -> Vec<AgentInfo> {
        self.all().iter().map(|a| a.info()).collect()
    }

    /// Stop one agent (SIGTERM, SIGKILL after `grace`, default the agent's `graceMs`) and wait for it.
    pub async fn stop_agent(
        &self,
        id: &str,
        grace: Option<Duration>,
    ) -> Result<AgentInfo, AgentError> {
        self.stop_agent_with(id, grace, StopSignal::Term).await
    }

    /// Stop one agent starting with `first` (SIGINT for a Ctrl-C passed on: then SIGTERM after
    /// the grace, SIGKILL after another), and wait for it. Made while the agent's calls settle
    /// (its process ended), or while it is being stopped, the request also ends that wait.
    pub async fn stop_agent_with(
        &self,
        id: &str,
        grace: Option<Duration>,
        first: StopSignal,
    ) -> Result<AgentInfo, AgentError> {
        let agent = self
            .agent(id)
            .ok_or_else(|| AgentError::NotFound(id.to_string()))?;
        agent.request_stop(StopRequest {
            grace: grace.unwrap_or(agent.spec.grace),
            reason: "stopped by request".to_string(),
            first,
            ends_wait: true,
        });
        Ok(agent.wait_finished().await)
    }

    /// Stop every agent and refuse new ones; commits and closes the state store (its writer thread
    /// joined, the file closed). Idempotent.
    pub async fn shutdown(&self, grace: Option<Duration>) {
        self.closed.store(true, Ordering::SeqCst);
        let agents = self.all();
        for a in &agents {
            a.request_stop(StopRequest::new(
                grace.unwrap_or(a.spec.grace),
                "runtime shut down",
            ));
        }
        for a in &agents {
            a.wait_finished().await;
        }
        for e in self.lock().iter() {
            e.watch_cancel.cancel();
        }
        if let Some(store) = self.store.clone() {
            let _ = tokio::task::spawn_blocking(move || store.close()).await;
        }
    }

    fn all(&self) -> Vec<Arc<SupervisedAgent>> {
        self.lock().iter().map(|e| e.agent.clone()).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.agents.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn new_id(&self) -> String {
        use std::collections::hash_map::RandomState;
        use std::hash::{BuildHasher, Hasher};
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut h = RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_u64(crate::events::now_ms());
        h.write_u32(std::process::id());
        format!("agt_{:016x}", h.finish())
    }

    /// What the routers hold that an agent must never get: the provider key (static mode) and the
    /// Iron Cage token (which could fetch the key from the key server itself).
    fn secrets(&self) -> Vec<String> {
        ["providerKey", "apiKey"]
            .iter()
            .filter_map(|k| self.opts.router.get(*k).and_then(|v| v.as_str()))
            .filter(|v| !v.trim().is_empty())
            .map(str::to_string)
            .collect()
    }

    fn router_options(&self, id: &str, spec: &AgentSpec) -> String {
        let mut o = self.opts.router.clone();
        o.insert("agentId".into(), id.into());
        // The agent presents a token of its own router, never the Iron Cage token.
        o.insert("mintClientToken".into(), true.into());
        if let Some(b) = spec.budget_usd {
            o.insert("budgetUsd".into(), b.into());
        }
        if let Some(p) = &self.opts.state_path {
            o.entry("statePath")
                .or_insert_with(|| p.to_string_lossy().into_owned().into());
        }
        serde_json::Value::Object(o).to_string()
    }
}

/// The command's file name (`/usr/bin/python3` → `python3`).
fn default_name(command: &str) -> String {
    std::path::Path::new(command)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(command)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_default_to_the_program() {
        assert_eq!(default_name("/usr/bin/python3"), "python3");
        assert_eq!(default_name("node"), "node");
    }

    #[test]
    fn per_agent_router_options_carry_budget_id_and_state() {
        let rt = AgentRuntime::new(RuntimeOptions {
            router: serde_json::from_str(r#"{"providerKey":"sk-x"}"#).unwrap(),
            state_path: None,
        })
        .unwrap();
        let spec = AgentSpec::from_json(r#"{"command":"x","budgetUsd":0.25}"#).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&rt.router_options("agt_1", &spec)).unwrap();
        assert_eq!(v["agentId"], "agt_1");
        assert_eq!(v["budgetUsd"], 0.25);
        assert_eq!(v["providerKey"], "sk-x");
        assert!(v.get("statePath").is_none());
        assert_ne!(rt.new_id(), rt.new_id());
    }
}
