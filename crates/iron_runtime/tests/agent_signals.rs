//! Stopping an agent with the signal the user sent: SIGINT first (a Ctrl-C passed on), then SIGTERM
//! after the grace, then SIGKILL after another; a second request brings the SIGKILL forward.
#![cfg(unix)]

mod common;

use common::bounded;
use iron_runtime::agent::{AgentRuntime, AgentSpec, AgentStatus, RuntimeOptions, StopSignal};
use std::time::{Duration, Instant};

fn runtime() -> AgentRuntime {
    AgentRuntime::new(RuntimeOptions {
        router: serde_json::from_str(
            r#"{"providerKey":"sk-real-openai-7d1e","providerBaseUrl":"http://127.0.0.1:9"}"#,
        )
        .expect("router json"),
        state_path: None,
    })
    .expect("runtime")
}

/// An agent that runs `script` in `sh`, stopped with a grace of `grace_ms`.
fn shell(script: &str, grace_ms: u64) -> AgentSpec {
    let spec = serde_json::json!({ "command": "sh", "args": ["-c", script], "graceMs": grace_ms });
    AgentSpec::from_json(&spec.to_string()).expect("spec")
}

/// A shell agent that records each signal it gets in `log` and otherwise ignores it.
fn stubborn(log: &std::path::Path, ready: &std::path::Path) -> AgentSpec {
    let script = format!(
        "trap 'echo INT >> {log}' INT; trap 'echo TERM >> {log}' TERM; echo up > {ready}; while :; do sleep 0.05; done",
        log = log.display(),
        ready = ready.display()
    );
    shell(&script, 300)
}

fn scratch(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "iron-signals-{}-{tag}-{}",
        std::process::id(),
        iron_runtime::events::now_ms()
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

async fn wait_for(path: &std::path::Path) {
    for _ in 0..500 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} was never written", path.display());
}

#[tokio::test]
async fn a_sigint_stop_escalates_to_sigterm_then_sigkill() {
    let rt = runtime();
    let dir = scratch("int");
    let (log, ready) = (dir.join("log"), dir.join("ready"));
    let agent = rt.start_agent(stubborn(&log, &ready)).expect("starts");
    wait_for(&ready).await;
    let t = Instant::now();
    let info = bounded(10, rt.stop_agent_with(&agent.id, None, StopSignal::Int))
        .await
        .expect("stops");
    let took = t.elapsed();
    let got = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    // SIGINT at once, SIGTERM after the grace (300 ms), SIGKILL after another.
    assert_eq!(got, "INT\nTERM\n");
    assert_eq!(info.status, AgentStatus::Stopped);
    assert_eq!(info.signal.as_deref(), Some("SIGKILL"));
    assert!(took >= Duration::from_millis(550), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn a_second_request_during_a_sigint_stop_kills_at_once() {
    let rt = runtime();
    let dir = scratch("again");
    let (log, ready) = (dir.join("log"), dir.join("ready"));
    let mut spec = stubborn(&log, &ready);
    spec.grace = Duration::from_secs(30);
    let agent = rt.start_agent(spec).expect("starts");
    wait_for(&ready).await;
    let t = Instant::now();
    let first = {
        let id = agent.id.clone();
        let rt = &rt;
        async move { rt.stop_agent_with(&id, None, StopSignal::Int).await }
    };
    let second = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        rt.stop_agent(&agent.id, Some(Duration::ZERO)).await
    };
    let (a, b) = bounded(10, async { tokio::join!(first, second) }).await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(a.expect("first").signal.as_deref(), Some("SIGKILL"));
    assert_eq!(b.expect("second").status, AgentStatus::Stopped);
}

/// The leader ends at SIGINT, but a member of its group ignores SIGINT (a shell's `&` job): that
/// member still gets SIGTERM when it is due (and can clean up), not only SIGKILL at the end.
#[tokio::test]
async fn group_members_that_ignore_sigint_get_sigterm_after_the_leader_ends() {
    let rt = runtime();
    let dir = scratch("worker");
    let (log, ready) = (dir.join("log"), dir.join("ready"));
    // The worker ignores SIGINT and logs SIGTERM; the leader (the shell) ends at SIGINT.
    let worker = format!(
        "trap '' INT; trap 'echo TERM >> {log}; exit 0' TERM; echo up > {ready}; while :; do sleep 0.05; done",
        log = log.display(),
        ready = ready.display()
    );
    let script = format!("sh -c \"{worker}\" & trap 'exit 0' INT; while :; do sleep 0.05; done");
    // SIGTERM after 1 s, SIGKILL after 2 s: room for the worker's trap on a loaded machine.
    let agent = rt.start_agent(shell(&script, 1000)).expect("starts");
    wait_for(&ready).await;
    bounded(10, rt.stop_agent_with(&agent.id, None, StopSignal::Int))
        .await
        .expect("stops");
    // The worker logs SIGTERM (at the grace) and exits before SIGKILL (at twice the grace).
    let mut got = String::new();
    for _ in 0..100 {
        got = std::fs::read_to_string(&log).unwrap_or_default();
        if !got.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(got, "TERM\n");
}

/// An agent stopped by job control (SIGTTIN when it reads a terminal it was not given) acts on the
/// stop signal at once: it is resumed after the signal, as shells do, not left for SIGKILL.
/// (Linux: the process's state is read from /proc.)
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_stopped_agent_is_resumed_so_that_it_handles_the_stop_signal() {
    let rt = runtime();
    let dir = scratch("stopped");
    let (log, ready) = (dir.join("log"), dir.join("ready"));
    let script = format!(
        "trap 'echo TERM >> {log}; exit 0' TERM; echo up > {ready}; while :; do sleep 0.05; done",
        log = log.display(),
        ready = ready.display()
    );
    // A grace far past the test's bound: only the agent's own exit can end it in time.
    let agent = rt.start_agent(shell(&script, 60_000)).expect("starts");
    wait_for(&ready).await;
    let pid = agent.info().pid.expect("pid");
    let stopped = std::process::Command::new("kill")
        .args(["-STOP", "--", &format!("-{pid}")])
        .status()
        .expect("kill");
    assert!(stopped.success());
    // Stopped indeed: state `T` in /proc.
    let state = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(") ")
                    .and_then(|(_, rest)| rest.chars().next())
            })
    };
    for _ in 0..100 {
        if state() == Some('T') {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(state(), Some('T'));
    let info = bounded(10, rt.stop_agent_with(&agent.id, None, StopSignal::Term))
        .await
        .expect("stops");
    let got = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(got, "TERM\n");
    assert_eq!(info.exit_code, Some(0));
}
