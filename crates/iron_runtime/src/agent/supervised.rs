//! One supervised agent: its spec, its own router, its mutable state, and the ways to read and stop it.

use super::process_group::StopSignal;
use super::spec::AgentSpec;
use super::status::{AgentInfo, AgentMetrics, AgentStatus, Settling};
use crate::events::{now_ms, EventBus, RouterEvent};
use crate::server::{BudgetStatusView, Unsettled};
use crate::stats::StatsSnapshot;
use crate::Router;
use iron_runtime_state::{AgentRow, Store};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// A request to stop: the signal to send first, how long each signal gets before the next
/// (`first`, then SIGTERM if `first` was another, then SIGKILL), and why (recorded).
#[derive(Debug, Clone)]
pub struct StopRequest {
    pub grace: Duration,
    pub reason: String,
    /// SIGTERM unless asked otherwise (SIGINT: the user's Ctrl-C, passed on).
    pub first: StopSignal,
    /// A request made while the agent's calls settle (its process is gone) ends that wait; so
    /// does a later request while it is being stopped (a second Ctrl-C). Stops the runtime
    /// decides itself (budget, shutdown) leave the calls their time.
    pub ends_wait: bool,
}

impl StopRequest {
    /// SIGTERM, then SIGKILL after `grace`; leaves calls in flight their time to settle.
    pub fn new(grace: Duration, reason: impl Into<String>) -> StopRequest {
        StopRequest {
            grace,
            reason: reason.into(),
            first: StopSignal::Term,
            ends_wait: false,
        }
    }
}

/// What changes over an agent's life.
#[derive(Debug, Clone)]
pub(crate) struct AgentState {
    pub status: AgentStatus,
    pub finished: bool,
    pub pid: Option<u32>,
    pub exit_code: Option<i32>,
    pub signal: Option<String>,
    pub reason: Option<String>,
    pub restarts: u32,
    pub started_at_ms: u64,
    pub ended_at_ms: Option<u64>,
    /// When the current process ended (before a restart or the final status).
    pub exited_at_ms: Option<u64>,
    pub last_activity_ms: Option<u64>,
    pub budget_exhausted: bool,
    pub stop_requested: bool,
    /// The current process was given the terminal (see `StdinMode::Terminal`).
    pub has_terminal: bool,
    /// While calls the ended process left at the provider settle: until when, at most.
    pub settle_until_ms: Option<u64>,
    /// Calls that were not waited for when the router stopped.
    pub unsettled: Option<Unsettled>,
}

/// Where an agent reports: the runtime's event bus and, optionally, the state store.
#[derive(Clone)]
pub(crate) struct Reporting {
    pub events: EventBus,
    pub store: Option<Arc<Store>>,
}

/// What a finished agent keeps of its router: the figures its info and metrics show.
#[derive(Clone)]
struct FinalFigures {
    stats: StatsSnapshot,
    budget: BudgetStatusView,
}

/// The agent's router while it runs; once the agent finished, only its final figures (the router,
/// with its state store, HTTP client and tasks, is stopped and let go).
enum RouterSlot {
    Running(Arc<Router>),
    Finished(Box<FinalFigures>),
}

/// One agent under supervision. Cheap to share (`Arc`); the supervisor task owns the process.
pub struct SupervisedAgent {
    pub id: String,
    pub name: String,
    pub(crate) spec: AgentSpec,
    router: Mutex<RouterSlot>,
    base_url: String,
    anthropic_base_url: String,
    state: Mutex<AgentState>,
    finished_tx: watch::Sender<bool>,
    stop_tx: mpsc::UnboundedSender<StopRequest>,
    pub(crate) reporting: Reporting,
}

impl SupervisedAgent {
    pub(crate) fn new(
        id: String,
        name: String,
        spec: AgentSpec,
        router: Router,
        reporting: Reporting,
    ) -> (Arc<SupervisedAgent>, mpsc::UnboundedReceiver<StopRequest>) {
        let (stop_tx, stop_rx) = mpsc::unbounded_channel();
        let (finished_tx, _) = watch::channel(false);
        let agent = SupervisedAgent {
            id,
            name,
            spec,
            base_url: router.base_url(),
            anthropic_base_url: router.anthropic_base_url(),
            router: Mutex::new(RouterSlot::Running(Arc::new(router))),
            state: Mutex::new(AgentState {
                status: AgentStatus::Starting,
                finished: false,
                pid: None,
                exit_code: None,
                signal: None,
                reason: None,
                restarts: 0,
                started_at_ms: now_ms(),
                ended_at_ms: None,
                exited_at_ms: None,
                last_activity_ms: None,
                budget_exhausted: false,
                stop_requested: false,
                has_terminal: false,
                settle_until_ms: None,
                unsettled: None,
            }),
            finished_tx,
            stop_tx,
            reporting,
        };
        (Arc::new(agent), stop_rx)
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, AgentState> {
        // A poisoned lock only means a panic elsewhere mid-update; the fields are still plain values.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The agent's own router (its budget, stats and base URLs) while the agent has not finished;
    /// `None` once it has (its final figures stay in `info`, `metrics` and `stats`).
    pub fn router(&self) -> Option<Arc<Router>> {
        match &*self.slot() {
            RouterSlot::Running(r) => Some(r.clone()),
            RouterSlot::Finished(_) => None,
        }
    }

    fn slot(&self) -> MutexGuard<'_, RouterSlot> {
        self.router.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Spent, reserved and limit: live from the router, or as they were when it stopped.
    pub(crate) fn budget_status(&self) -> BudgetStatusView {
        match &*self.slot() {
            RouterSlot::Running(r) => r.budget_status(),
            RouterSlot::Finished(f) => f.budget.clone(),
        }
    }

    /// Stop the router and keep only its final figures: the state store is closed, and the rest
    /// goes once the router's last tasks end. Calls the agent left at the provider settle first
    /// (at most the total timeout, announced by an `agent` event `settling`): they are billed, so
    /// charged and recorded. `cut` ends that wait early; calls still at the provider are then
    /// recorded in `info().unsettled` (and charged at their hold in the state file, if any).
    /// Idempotent.
    pub(crate) async fn stop_router(&self, cut: impl std::future::Future<Output = ()>) {
        let Some(router) = self.router() else {
            return;
        };
        let total = router.shared().policies.timeouts.total;
        let calls = router.shared().calls.now();
        if calls > 0 {
            self.state().settle_until_ms = Some(now_ms() + total.as_millis() as u64);
            let s = if calls == 1 { "" } else { "s" };
            self.emit(
                "settling",
                Some(format!(
                    "waiting up to {} s for {calls} call{s} still at the provider to settle, so that {} charged",
                    total.as_secs(),
                    if calls == 1 { "it is" } else { "they are" }
                )),
            );
        }
        let unsettled = router.stop_settling(total, cut).await;
        let figures = FinalFigures {
            stats: router.shared().stats_snapshot(),
            budget: router.budget_status(),
        };
        {
            let mut s = self.state();
            s.settle_until_ms = None;
            if unsettled.calls > 0 {
                s.unsettled = Some(unsettled);
            }
        }
        *self.slot() = RouterSlot::Finished(Box::new(figures));
    }

    /// Calls in flight while the ended process's calls settle.
    fn settling(&self, until_ms: Option<u64>) -> Option<Settling> {
        let until_ms = until_ms?;
        let calls = self.router()?.shared().calls.now();
        Some(Settling { calls, until_ms })
    }

    /// A snapshot for `list()` and the bindings.
    pub fn info(&self) -> AgentInfo {
        let s = self.state().clone();
        AgentInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            command: self.spec.command.clone(),
            args: self.spec.args.clone(),
            status: s.status,
            finished: s.finished,
            pid: s.pid,
            exit_code: s.exit_code,
            signal: s.signal,
            reason: s.reason,
            restarts: s.restarts,
            started_at_ms: s.started_at_ms,
            ended_at_ms: s.ended_at_ms,
            base_url: self.base_url.clone(),
            anthropic_base_url: self.anthropic_base_url.clone(),
            settling: self.settling(s.settle_until_ms),
            unsettled: s.unsettled,
        }
    }

    /// Requests, spend and last activity, from the agent's router.
    pub fn metrics(&self) -> AgentMetrics {
        let stats = self.stats();
        let budget = self.budget_status();
        let s = self.state();
        AgentMetrics {
            requests: stats.requests,
            completed: stats.completed,
            failed: stats.failed,
            blocked: stats.blocked,
            spent_micros: budget.spent_micros,
            budget_micros: budget.limit_micros,
            last_activity_ms: s.last_activity_ms,
            last_model: stats.last_model,
            budget_exhausted: s.budget_exhausted,
        }
    }

    /// The router's full counters (by model, blocked by reason), for summaries.
    pub fn stats(&self) -> StatsSnapshot {
        match &*self.slot() {
            RouterSlot::Running(r) => r.shared().stats_snapshot(),
            RouterSlot::Finished(f) => f.stats.clone(),
        }
    }

    /// Ask the supervisor to stop the agent. Returns false when it already finished.
    pub fn request_stop(&self, req: StopRequest) -> bool {
        if self.state().finished {
            return false;
        }
        self.stop_tx.send(req).is_ok()
    }

    /// Resolve once the agent reached a final status.
    pub async fn wait_finished(&self) -> AgentInfo {
        let mut rx = self.finished_tx.subscribe();
        // `wait_for` checks the current value first, so a finish before subscribing is seen.
        let _ = rx.wait_for(|done| *done).await;
        self.info()
    }

    /// Mark the agent finished and wake every waiter.
    pub(crate) fn mark_finished(&self) {
        self.finished_tx.send_replace(true);
    }

    /// Publish an `agent` event with the current pid, exit code and signal.
    pub(crate) fn emit(&self, action: &str, reason: Option<String>) {
        let s = self.state().clone();
        self.reporting.events.emit(RouterEvent::Agent {
            ts_ms: now_ms(),
            agent_id: self.id.clone(),
            name: self.name.clone(),
            action: action.to_string(),
            pid: s.pid,
            exit_code: s.exit_code,
            signal: s.signal,
            reason,
        });
    }

    /// Write the agent's row to the state store, when there is one (never blocks).
    pub(crate) fn persist(&self) {
        let Some(store) = &self.reporting.store else {
            return;
        };
        let s = self.state().clone();
        // Holds of calls the stop did not wait for are charged in memory as in this file's
        // ledger (see `Router::stop_settling`): spent already agrees with it.
        let budget = self.budget_status();
        let row = AgentRow {
            id: self.id.clone(),
            name: self.name.clone(),
            status: s.status.as_str().to_string(),
            started_at_ms: s.started_at_ms,
            ended_at_ms: s.ended_at_ms,
            budget_micros: budget.limit_micros,
            spent_micros: budget.spent_micros,
            exit_code: s.exit_code.map(i64::from),
            exit_signal: s.signal,
            restarts: s.restarts,
            reason: s.reason,
        };
        if let Err(e) = store.upsert_agent(row) {
            tracing::warn!(agent = %self.id, "could not queue the agent row: {e}");
        }
    }
}
