//! An agent's lifecycle status and the snapshots the bindings read (`AgentInfo`, `AgentMetrics`).

use serde::Serialize;

/// Where an agent is in its life. `Stopped`, `Exited` and a final `Crashed` are terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentStatus {
    /// Being spawned (first start or a restart after the backoff).
    Starting,
    /// The process runs.
    Running,
    /// A stop was requested: SIGTERM sent, SIGKILL follows after the grace.
    Stopping,
    /// Ended because it was asked to (user stop, budget stop, shutdown).
    Stopped,
    /// Ended on its own with exit code 0.
    Exited,
    /// Ended on its own with a non-zero code or a signal; may be restarted by the policy.
    Crashed,
}

impl AgentStatus {
    /// The lowercase name used in JSON, events and the state store.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Starting => "starting",
            AgentStatus::Running => "running",
            AgentStatus::Stopping => "stopping",
            AgentStatus::Stopped => "stopped",
            AgentStatus::Exited => "exited",
            AgentStatus::Crashed => "crashed",
        }
    }
}

/// A snapshot of one agent, as `runtime.list()` and `agent.status` show it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentInfo {
    pub id: String,
    pub name: String,
    pub command: String,
    pub args: Vec<String>,
    pub status: AgentStatus,
    /// True once the status will not change any more.
    pub finished: bool,
    pub pid: Option<u32>,
    pub exit_code: Option<i32>,
    pub signal: Option<String>,
    /// Why it stopped or crashed, in words (e.g. the budget that ran out).
    pub reason: Option<String>,
    pub restarts: u32,
    pub started_at_ms: u64,
    pub ended_at_ms: Option<u64>,
    /// The agent router's OpenAI base URL (`…/v1`).
    pub base_url: String,
    /// The agent router's root URL (Anthropic SDK base URL).
    pub anthropic_base_url: String,
    /// While calls the ended process left at the provider settle (before `finished`).
    pub settling: Option<Settling>,
    /// Calls still at the provider when the agent's router stopped waiting for them.
    pub unsettled: Option<crate::server::Unsettled>,
}

/// Calls an ended agent left at the provider, being waited for.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Settling {
    /// Still in flight.
    pub calls: usize,
    /// The wait ends by then at the latest (ms since the Unix epoch).
    pub until_ms: u64,
}

/// Live figures from the agent's own router.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AgentMetrics {
    pub requests: u64,
    pub completed: u64,
    pub failed: u64,
    pub blocked: u64,
    pub spent_micros: u64,
    pub budget_micros: Option<u64>,
    /// Last request or response seen, ms since the Unix epoch.
    pub last_activity_ms: Option<u64>,
    pub last_model: Option<String>,
    /// True once a call was refused for budget or the budget was reached.
    pub budget_exhausted: bool,
}

/// The conventional name of signal `n` (`SIGTERM`, …), or `SIG<n>` for others.
pub fn signal_name(n: i32) -> String {
    SIGNALS
        .iter()
        .find(|(num, _)| *num == n)
        .map(|(_, name)| name.to_string())
        .unwrap_or_else(|| format!("SIG{n}"))
}

/// Signal numbers differ between platforms (SIGUSR1 is 10 on Linux, 30 on macOS): the names come
/// from the platform's own constants.
#[cfg(unix)]
const SIGNALS: &[(i32, &str)] = &[
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGINT, "SIGINT"),
    (libc::SIGQUIT, "SIGQUIT"),
    (libc::SIGILL, "SIGILL"),
    (libc::SIGTRAP, "SIGTRAP"),
    (libc::SIGABRT, "SIGABRT"),
    (libc::SIGBUS, "SIGBUS"),
    (libc::SIGFPE, "SIGFPE"),
    (libc::SIGKILL, "SIGKILL"),
    (libc::SIGUSR1, "SIGUSR1"),
    (libc::SIGSEGV, "SIGSEGV"),
    (libc::SIGUSR2, "SIGUSR2"),
    (libc::SIGPIPE, "SIGPIPE"),
    (libc::SIGALRM, "SIGALRM"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGCHLD, "SIGCHLD"),
    (libc::SIGCONT, "SIGCONT"),
    (libc::SIGSTOP, "SIGSTOP"),
    (libc::SIGTSTP, "SIGTSTP"),
    (libc::SIGTTIN, "SIGTTIN"),
    (libc::SIGTTOU, "SIGTTOU"),
    (libc::SIGURG, "SIGURG"),
    (libc::SIGXCPU, "SIGXCPU"),
    (libc::SIGXFSZ, "SIGXFSZ"),
    (libc::SIGVTALRM, "SIGVTALRM"),
    (libc::SIGPROF, "SIGPROF"),
    (libc::SIGWINCH, "SIGWINCH"),
    (libc::SIGIO, "SIGIO"),
    (libc::SIGSYS, "SIGSYS"),
];

/// No POSIX signals off Unix: an exit is never reported as one there.
#[cfg(not(unix))]
const SIGNALS: &[(i32, &str)] = &[];

/// The number of a signal name from `signal_name` (for the shell's 128+n exit code).
pub fn signal_number(name: &str) -> Option<i32> {
    (1..=64).find(|n| signal_name(*n) == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_serialises_lowercase() {
        assert_eq!(
            serde_json::to_string(&AgentStatus::Stopping).unwrap(),
            "\"stopping\""
        );
        assert_eq!(AgentStatus::Crashed.as_str(), "crashed");
    }

    #[cfg(unix)]
    #[test]
    fn signal_names_round_trip() {
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(40), "SIG40");
        assert_eq!(signal_number("SIGINT"), Some(2));
        assert_eq!(signal_number("SIG40"), Some(40));
        assert_eq!(signal_number("nope"), None);
    }

    #[cfg(unix)]
    #[test]
    fn names_come_from_the_platform() {
        assert_eq!(signal_name(libc::SIGUSR1), "SIGUSR1");
        assert_eq!(signal_name(libc::SIGBUS), "SIGBUS");
        assert_eq!(signal_number("SIGUSR1"), Some(libc::SIGUSR1));
        assert_eq!(signal_name(40), "SIG40");
    }
}
