//! AgentRuntime: run any program as an agent under governance. Each agent gets its own LlmRouter (its
//! own budget), the environment its SDKs read (`OPENAI_BASE_URL`, `OPENAI_API_KEY`,
//! `ANTHROPIC_BASE_URL`, `ANTHROPIC_API_KEY`, `IRON_CAGE_ROUTER_URL`, `IRON_CAGE_TOKEN`,
//! `IRON_CAGE_AGENT_ID`), and a supervisor: its own process group, SIGTERM then SIGKILL after the
//! grace, restart on crash with backoff, an optional stop when the budget runs out.
//!
//! Platform limits: process groups and graceful stops are Unix only. On Windows the code builds, a stop
//! terminates the agent process at once, and its child processes are not reached.

mod budget_watch;
pub mod process_group;
mod runtime;
mod spawn;
pub mod spec;
pub mod status;
mod supervised;
mod supervisor;

pub use process_group::StopSignal;
pub use runtime::{AgentError, AgentRuntime};
pub use spawn::{with_router_hosts, RouterEnv, ROUTER_HOSTS};
pub use spec::{AgentSpec, BudgetAction, RestartPolicy, RuntimeOptions, SpecError, StdinMode};
pub use status::{signal_name, signal_number, AgentInfo, AgentMetrics, AgentStatus, Settling};
pub use supervised::{StopRequest, SupervisedAgent};
