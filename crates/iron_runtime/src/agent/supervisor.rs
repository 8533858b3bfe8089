//! The supervisor task of one agent: wait for the process, stop it on request (the requested signal,
//! then SIGTERM and SIGKILL after the grace, whole process group), restart it on crash per the policy,
//! and record every transition.

use super::process_group::{
    escaped_descendants, escapees_gone, group_alive, reap_leftovers, reclaim_terminal,
    resume_if_stopped, signal_escapees, signal_group, StopSignal,
};
use super::spawn::{spawn_agent, RouterEnv, Spawned};
use super::status::{signal_name, AgentStatus};
use super::supervised::{StopRequest, SupervisedAgent};
use crate::events::now_ms;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Instant;
use tokio::process::Child;
use tokio::sync::mpsc;

/// How one run of the process ended.
enum RunEnd {
    /// It ended by itself.
    OnItsOwn(std::io::Result<ExitStatus>),
    /// We stopped it; whether a later request asked not to wait for its calls.
    Stopped(std::io::Result<ExitStatus>, String, bool),
}

type Stops = mpsc::UnboundedReceiver<StopRequest>;

/// How often an agent that has the terminal is checked for a job-control stop (Ctrl-Z).
const STOPPED_POLL: std::time::Duration = std::time::Duration::from_millis(150);

/// Drive the agent until it reaches a final status, then stop its router.
pub(crate) async fn supervise(
    agent: Arc<SupervisedAgent>,
    spawned: Spawned,
    env: RouterEnv,
    mut stops: Stops,
) {
    let mut child = spawned.child;
    agent.state().has_terminal = spawned.has_terminal;
    loop {
        let pgid = child.id();
        // With the terminal, a Ctrl-Z (SIGTSTP) that stopped a process of the group is undone at
        // once: the agent's group is the terminal's foreground job and nobody else would resume it.
        let watch_stops = agent.state().has_terminal;
        let mut tick = tokio::time::interval(STOPPED_POLL);
        let end = loop {
            tokio::select! {
                status = child.wait() => break RunEnd::OnItsOwn(status),
                Some(req) = stops.recv() => {
                    let (status, ends_wait) = terminate(&agent, &mut child, pgid, &req, &mut stops).await;
                    break RunEnd::Stopped(status, req.reason, ends_wait);
                }
                _ = tick.tick(), if watch_stops => {
                    if let Some(pgid) = pgid {
                        resume_if_stopped(pgid);
                    }
                }
            }
        };
        let (status, stopped) = match end {
            RunEnd::OnItsOwn(s) => (s, None),
            RunEnd::Stopped(s, r, w) => (s, Some((r, w))),
        };
        record_exit(&agent, &status);
        let had_terminal = std::mem::take(&mut agent.state().has_terminal);
        if let Some(pgid) = pgid {
            if had_terminal {
                reclaim_terminal(pgid);
            }
            // The leader is gone; anything it left in its group gets the same SIGTERM-then-SIGKILL.
            reap_leftovers(pgid, Instant::now() + agent.spec.grace).await;
        }
        if let Some((reason, ends_wait)) = stopped {
            let wait = Wait {
                stops: &mut stops,
                ended: ends_wait,
            };
            return finish(&agent, AgentStatus::Stopped, "stopped", Some(reason), wait).await;
        }
        let wait = Wait {
            stops: &mut stops,
            ended: false,
        };
        // Ctrl-C at the terminal reached the agent directly: the user's stop, not a crash.
        if had_terminal && interrupted(&status) {
            let reason = "interrupted at the terminal (Ctrl-C)".to_string();
            return finish(&agent, AgentStatus::Stopped, "stopped", Some(reason), wait).await;
        }
        let clean = matches!(&status, Ok(s) if s.success());
        if clean {
            return finish(&agent, AgentStatus::Exited, "exited", None, wait).await;
        }
        let why = crash_reason(&status);
        let restarts = agent.state().restarts;
        let policy = match agent.spec.restart {
            Some(p) if restarts < p.max_restarts => p,
            Some(p) => {
                let reason = format!(
                    "{why}; not restarted: maxRestarts ({}) reached",
                    p.max_restarts
                );
                return finish(&agent, AgentStatus::Crashed, "crashed", Some(reason), wait).await;
            }
            None => return finish(&agent, AgentStatus::Crashed, "crashed", Some(why), wait).await,
        };
        let delay = policy.delay(restarts + 1);
        set_status(&agent, AgentStatus::Crashed, Some(why.clone()));
        agent.emit(
            "crashed",
            Some(format!(
                "{why}; restarting in {} ms (restart {} of {})",
                delay.as_millis(),
                restarts + 1,
                policy.max_restarts
            )),
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            Some(req) = stops.recv() => {
                let wait = Wait { stops: &mut stops, ended: req.ends_wait };
                return finish(&agent, AgentStatus::Stopped, "stopped", Some(req.reason), wait).await;
            }
        }
        set_status(&agent, AgentStatus::Starting, None);
        match spawn_agent(&agent.spec, &env) {
            Ok(c) => {
                child = c.child;
                {
                    let mut s = agent.state();
                    s.restarts += 1;
                    s.pid = child.id();
                    s.exit_code = None;
                    s.signal = None;
                    s.exited_at_ms = None;
                    s.has_terminal = c.has_terminal;
                    s.status = AgentStatus::Running;
                }
                agent.persist();
                agent.emit("restarted", None);
            }
            Err(e) => {
                let reason = format!("restart failed: {e}");
                let wait = Wait {
                    stops: &mut stops,
                    ended: false,
                };
                return finish(&agent, AgentStatus::Crashed, "crashed", Some(reason), wait).await;
            }
        }
    }
}

/// Ended by the terminal's Ctrl-C or Ctrl-\ (or exit code 130, how shells and many programs
/// report an interrupt).
fn interrupted(status: &std::io::Result<ExitStatus>) -> bool {
    let Ok(st) = status else {
        return false;
    };
    st.code() == Some(130) || matches!(exit_signal(st).as_deref(), Some("SIGINT" | "SIGQUIT"))
}

/// The stop requests, while the agent's calls settle after its process ended: a request that
/// `ends_wait` (or one made earlier, `ended`) ends the wait.
struct Wait<'a> {
    stops: &'a mut Stops,
    ended: bool,
}

impl Wait<'_> {
    async fn ended(self) {
        if self.ended {
            return;
        }
        loop {
            match self.stops.recv().await {
                Some(req) if req.ends_wait => return,
                Some(_) => continue,
                None => std::future::pending::<()>().await,
            }
        }
    }
}

/// The requested signal to the group (SIGTERM by default), SIGTERM after the grace if that was
/// another, SIGKILL after the grace that follows SIGTERM; then the leader's status. A further
/// stop request with a shorter grace (a second Ctrl-C) brings the SIGKILL forward; whether one
/// asked not to wait for the agent's calls is returned with the status.
async fn terminate(
    agent: &SupervisedAgent,
    child: &mut Child,
    pgid: Option<u32>,
    req: &StopRequest,
    stops: &mut Stops,
) -> (std::io::Result<ExitStatus>, bool) {
    set_status(agent, AgentStatus::Stopping, Some(req.reason.clone()));
    agent.state().stop_requested = true;
    let mut ends_wait = false;
    let Some(pgid) = pgid.filter(|_| cfg!(unix)) else {
        // No process groups here (Windows): terminate the process itself at once.
        let _ = child.start_kill();
        return (child.wait().await, ends_wait);
    };
    let now = Instant::now();
    let (mut term_at, mut kill_at) = match req.first {
        StopSignal::Term => (None, now + req.grace),
        StopSignal::Kill => (None, now),
        StopSignal::Int | StopSignal::Hup | StopSignal::Quit => {
            (Some(now + req.grace), now + req.grace * 2)
        }
    };
    // Descendants that left the group (`setsid`) are found while their parents still live.
    let mut escaped = escaped_descendants(pgid, pgid);
    signal_group(pgid, req.first);
    signal_escapees(&escaped, req.first);
    // A stopped process (SIGTTIN: it read a terminal it does not own) only acts on a signal once
    // it runs again: resume it, as shells do.
    resume_if_stopped(pgid);
    let status = loop {
        let next = term_at.map_or(kill_at, |t| t.min(kill_at));
        tokio::select! {
            status = child.wait() => break status,
            _ = tokio::time::sleep_until(next.into()) => {
                escaped.extend(escaped_descendants(pgid, pgid));
                if term_at.is_some_and(|t| t < kill_at) {
                    term_at = None;
                    signal_group(pgid, StopSignal::Term);
                    signal_escapees(&escaped, StopSignal::Term);
                    resume_if_stopped(pgid);
                    continue;
                }
                signal_group(pgid, StopSignal::Kill);
                signal_escapees(&escaped, StopSignal::Kill);
                break child.wait().await;
            }
            Some(again) = stops.recv() => {
                ends_wait |= again.ends_wait;
                kill_at = kill_at.min(Instant::now() + again.grace);
            }
        }
    };
    // Members that ignored the first signal (the `&` jobs of a shell ignore SIGINT) follow the
    // same escalation after the leader's end: SIGTERM when it is due, then SIGKILL; a further stop
    // request (a second Ctrl-C) still brings the SIGKILL forward.
    loop {
        if !group_alive(pgid) && escapees_gone(&escaped) {
            break;
        }
        let now = Instant::now();
        if term_at.is_some_and(|t| now >= t && t < kill_at) {
            term_at = None;
            signal_group(pgid, StopSignal::Term);
            signal_escapees(&escaped, StopSignal::Term);
            resume_if_stopped(pgid);
        }
        if now >= kill_at {
            signal_group(pgid, StopSignal::Kill);
            signal_escapees(&escaped, StopSignal::Kill);
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
            Some(again) = stops.recv() => {
                ends_wait |= again.ends_wait;
                kill_at = kill_at.min(Instant::now() + again.grace);
            }
        }
    }
    (status, ends_wait)
}

fn record_exit(agent: &SupervisedAgent, status: &std::io::Result<ExitStatus>) {
    let mut s = agent.state();
    s.exited_at_ms = Some(now_ms());
    match status {
        Ok(st) => {
            s.exit_code = st.code();
            s.signal = exit_signal(st);
        }
        Err(_) => {
            s.exit_code = None;
            s.signal = None;
        }
    }
}

#[cfg(unix)]
fn exit_signal(st: &ExitStatus) -> Option<String> {
    use std::os::unix::process::ExitStatusExt;
    st.signal().map(signal_name)
}

#[cfg(not(unix))]
fn exit_signal(_st: &ExitStatus) -> Option<String> {
    None
}

fn crash_reason(status: &std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(st) => match (st.code(), exit_signal(st)) {
            (Some(code), _) => format!("exited with code {code}"),
            (None, Some(sig)) => format!("killed by {sig}"),
            (None, None) => "ended without an exit code".to_string(),
        },
        Err(e) => format!("could not wait for the process: {e}"),
    }
}

fn set_status(agent: &SupervisedAgent, status: AgentStatus, reason: Option<String>) {
    {
        let mut s = agent.state();
        s.status = status;
        if reason.is_some() {
            s.reason = reason;
        }
    }
    agent.persist();
}

/// Final transition: stop the router (its state store closed; only its final figures stay),
/// record, persist, publish, wake waiters. The agent ended when its process did; the router may
/// take longer (calls still at the provider, see `SupervisedAgent::stop_router`).
async fn finish(
    agent: &Arc<SupervisedAgent>,
    status: AgentStatus,
    action: &str,
    reason: Option<String>,
    wait: Wait<'_>,
) {
    {
        // The process is gone: its final status shows during a wait for its calls at the provider
        // (`finished` stays false until that wait ends and the event is out).
        let mut s = agent.state();
        s.status = status;
        s.reason = reason.clone();
    }
    agent.stop_router(wait.ended()).await;
    {
        let mut s = agent.state();
        s.finished = true;
        s.ended_at_ms = Some(s.exited_at_ms.unwrap_or_else(now_ms));
    }
    agent.persist();
    agent.emit(action, reason);
    agent.mark_finished();
}
