//! The supervisor task of one agent: wait for the process, stop it on request (SIGTERM, SIGKILL after
//! the grace, whole process group), restart it on crash per the policy, and record every transition.

use super::process_group::{
    escaped_descendants, reap_leftovers, signal_escapees, signal_group, wait_escapees_gone,
    wait_group_gone, StopSignal,
};
use super::spawn::{spawn_agent, RouterEnv};
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
    /// We stopped it.
    Stopped(std::io::Result<ExitStatus>, String),
}

/// Drive the agent until it reaches a final status, then stop its router.
pub(crate) async fn supervise(
    agent: Arc<SupervisedAgent>,
    mut child: Child,
    env: RouterEnv,
    mut stops: mpsc::UnboundedReceiver<StopRequest>,
) {
    loop {
        let pgid = child.id();
        let end = tokio::select! {
            status = child.wait() => RunEnd::OnItsOwn(status),
            Some(req) = stops.recv() => {
                let status = terminate(&agent, &mut child, pgid, &req, &mut stops).await;
                RunEnd::Stopped(status, req.reason)
            }
        };
        let (status, stopped_reason) = match end {
            RunEnd::OnItsOwn(s) => (s, None),
            RunEnd::Stopped(s, r) => (s, Some(r)),
        };
        record_exit(&agent, &status);
        if let Some(pgid) = pgid {
            // The leader is gone; anything it left in its group gets the same SIGTERM-then-SIGKILL.
            reap_leftovers(pgid, Instant::now() + agent.spec.grace).await;
        }
        if let Some(reason) = stopped_reason {
            return finish(&agent, AgentStatus::Stopped, "stopped", Some(reason)).await;
        }
        let clean = matches!(&status, Ok(s) if s.success());
        if clean {
            return finish(&agent, AgentStatus::Exited, "exited", None).await;
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
                return finish(&agent, AgentStatus::Crashed, "crashed", Some(reason)).await;
            }
            None => return finish(&agent, AgentStatus::Crashed, "crashed", Some(why)).await,
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
                return finish(&agent, AgentStatus::Stopped, "stopped", Some(req.reason)).await;
            }
        }
        set_status(&agent, AgentStatus::Starting, None);
        match spawn_agent(&agent.spec, &env) {
            Ok(c) => {
                child = c;
                {
                    let mut s = agent.state();
                    s.restarts += 1;
                    s.pid = child.id();
                    s.exit_code = None;
                    s.signal = None;
                    s.status = AgentStatus::Running;
                }
                agent.persist();
                agent.emit("restarted", None);
            }
            Err(e) => {
                let reason = format!("restart failed: {e}");
                return finish(&agent, AgentStatus::Crashed, "crashed", Some(reason)).await;
            }
        }
    }
}

/// SIGTERM to the group, SIGKILL to the group once the grace is over; then the leader's status.
/// A further stop request with a shorter grace (a second Ctrl-C) brings the SIGKILL forward.
async fn terminate(
    agent: &SupervisedAgent,
    child: &mut Child,
    pgid: Option<u32>,
    req: &StopRequest,
    stops: &mut mpsc::UnboundedReceiver<StopRequest>,
) -> std::io::Result<ExitStatus> {
    set_status(agent, AgentStatus::Stopping, Some(req.reason.clone()));
    agent.state().stop_requested = true;
    let mut deadline = Instant::now() + req.grace;
    let Some(pgid) = pgid.filter(|_| cfg!(unix)) else {
        // No process groups here (Windows): terminate the process itself at once.
        let _ = child.start_kill();
        return child.wait().await;
    };
    // Descendants that left the group (`setsid`) are found while their parents still live.
    let mut escaped = escaped_descendants(pgid, pgid);
    signal_group(pgid, StopSignal::Term);
    signal_escapees(&escaped, StopSignal::Term);
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            _ = tokio::time::sleep_until(deadline.into()) => {
                escaped.extend(escaped_descendants(pgid, pgid));
                signal_group(pgid, StopSignal::Kill);
                signal_escapees(&escaped, StopSignal::Kill);
                break child.wait().await;
            }
            Some(again) = stops.recv() => {
                deadline = deadline.min(Instant::now() + again.grace);
            }
        }
    };
    // Members that ignored SIGTERM get the rest of the grace, then SIGKILL.
    if !wait_group_gone(pgid, deadline).await {
        signal_group(pgid, StopSignal::Kill);
    }
    if !wait_escapees_gone(&escaped, deadline).await {
        signal_escapees(&escaped, StopSignal::Kill);
    }
    status
}

fn record_exit(agent: &SupervisedAgent, status: &std::io::Result<ExitStatus>) {
    let mut s = agent.state();
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
/// record, persist, publish, wake waiters.
async fn finish(
    agent: &Arc<SupervisedAgent>,
    status: AgentStatus,
    action: &str,
    reason: Option<String>,
) {
    agent.stop_router().await;
    {
        let mut s = agent.state();
        s.status = status;
        s.finished = true;
        s.ended_at_ms = Some(now_ms());
        s.reason = reason.clone();
    }
    agent.persist();
    agent.emit(action, reason);
    agent.mark_finished();
}
