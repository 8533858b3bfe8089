//! AgentRuntime supervision with real processes (`sh`): environment, exit codes, SIGTERM, SIGKILL after
//! the grace, process groups (grandchildren), restart policy, and the `agent` events.
#![cfg(unix)]

mod common;

use common::bounded;
use iron_runtime::agent::{AgentRuntime, AgentSpec, AgentStatus, RuntimeOptions};
use iron_runtime::RouterEvent;
use std::path::PathBuf;
use std::sync::Arc;
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

fn sh(script: &str, extra: serde_json::Value) -> AgentSpec {
    let mut spec = serde_json::json!({ "command": "sh", "args": ["-c", script] });
    if let (Some(o), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    AgentSpec::from_json(&spec.to_string()).expect("spec")
}

/// A fresh directory under the temp dir for files the agents write, removed when the test ends.
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(tag: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!(
        "iron-agent-{}-{tag}-{}",
        std::process::id(),
        iron_runtime::events::now_ms()
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    Scratch(dir)
}

/// True while `pid` is a live (not zombie) process.
#[cfg(target_os = "linux")]
fn alive(pid: u32) -> bool {
    matches!(
        iron_runtime::agent::process_group::proc_state_and_pgrp(pid),
        Some((s, _)) if s != 'Z' && s != 'X'
    )
}

/// True while `pid` exists (elsewhere the system reaps orphans promptly, so zombies do not linger).
#[cfg(not(target_os = "linux"))]
fn alive(pid: u32) -> bool {
    std::process::Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

async fn wait_for_file(path: &std::path::Path) -> String {
    for _ in 0..500 {
        if let Ok(s) = std::fs::read_to_string(path) {
            if s.ends_with('\n') {
                return s;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} was never written", path.display());
}

fn agent_actions(sub: &mut iron_runtime::events::Subscription) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(e) = sub.try_recv() {
        if let RouterEvent::Agent { action, .. } = &**e {
            out.push(action.clone());
        }
    }
    out
}

#[tokio::test]
async fn wires_the_environment_and_reports_the_exit_code() {
    let rt = runtime();
    let mut sub = rt.events().subscribe();
    let dir = scratch("env");
    let out = dir.join("env.txt");
    let script = format!(
        "echo \"$OPENAI_BASE_URL|$OPENAI_API_KEY|$ANTHROPIC_BASE_URL|$ANTHROPIC_API_KEY|$IRON_CAGE_ROUTER_URL|$IRON_CAGE_TOKEN|$IRON_CAGE_AGENT_ID|$MINE\" > {}; exit 3",
        out.display()
    );
    let agent = rt
        .start_agent(sh(
            &script,
            serde_json::json!({ "name": "env-check", "env": { "MINE": "v1", "OPENAI_API_KEY": "sk-leak" } }),
        ))
        .expect("starts");
    // The test's runtime runs one task at a time: the agent cannot finish before the first await.
    let router = agent.router().expect("runs while the agent runs");
    let router_url = router.anthropic_base_url();
    let token = router.api_key().to_string();
    let info = bounded(10, agent.wait_finished()).await;
    assert_eq!(info.status, AgentStatus::Crashed);
    assert_eq!(info.exit_code, Some(3));
    assert_eq!(info.signal, None);
    assert_eq!(info.reason.as_deref(), Some("exited with code 3"));
    let line = std::fs::read_to_string(&out).expect("env written");
    let parts: Vec<&str> = line.trim_end().split('|').collect();
    // The router's token wins over a provider key passed in `env`: the agent never sees a real key.
    assert_eq!(
        parts,
        vec![
            format!("{router_url}/v1").as_str(),
            token.as_str(),
            router_url.as_str(),
            token.as_str(),
            router_url.as_str(),
            token.as_str(),
            agent.id.as_str(),
            "v1"
        ]
    );
    assert!(token.starts_with("ic_"));
    assert_eq!(info.name, "env-check");
    assert_eq!(agent_actions(&mut sub), vec!["started", "crashed"]);
    // The agent's router stops with it, and the agent lets it go.
    assert!(!router.is_running());
    assert!(agent.router().is_none());
    assert_eq!(info.anthropic_base_url, router_url);

    let ok = rt
        .start_agent(sh("exit 0", serde_json::json!({})))
        .expect("starts");
    let info = bounded(10, ok.wait_finished()).await;
    assert_eq!(
        (info.status, info.exit_code),
        (AgentStatus::Exited, Some(0))
    );
    assert_eq!(rt.list().len(), 2);
}

#[tokio::test]
async fn stop_sends_sigterm_which_the_agent_handles() {
    let rt = runtime();
    let dir = scratch("term");
    let ready = dir.join("ready");
    let got = dir.join("got");
    let script = format!(
        "trap 'echo TERM > {}; exit 0' TERM; echo up > {}; while :; do sleep 0.05; done",
        got.display(),
        ready.display()
    );
    let agent = rt
        .start_agent(sh(&script, serde_json::json!({})))
        .expect("starts");
    assert_eq!(agent.info().status, AgentStatus::Running);
    assert!(agent.info().pid.is_some());
    wait_for_file(&ready).await;
    let t = Instant::now();
    let info = bounded(10, rt.stop_agent(&agent.id, Some(Duration::from_secs(5))))
        .await
        .expect("stops");
    assert!(t.elapsed() < Duration::from_secs(3), "SIGTERM was enough");
    assert_eq!(std::fs::read_to_string(&got).expect("trap ran"), "TERM\n");
    assert_eq!(info.status, AgentStatus::Stopped);
    assert_eq!(info.exit_code, Some(0));
    assert_eq!(info.reason.as_deref(), Some("stopped by request"));
    assert!(info.ended_at_ms.is_some());
}

#[tokio::test]
async fn sigkill_follows_the_grace_and_grandchildren_go_too() {
    let rt = runtime();
    let mut sub = rt.events().subscribe();
    let dir = scratch("kill");
    let pids = dir.join("pids");
    // The leader and a grandchild both ignore SIGTERM; the grandchild runs in a nested shell.
    let script = format!(
        "trap '' TERM; sh -c 'trap \"\" TERM; while :; do sleep 0.05; done' & echo $! > {}; while :; do sleep 0.05; done",
        pids.display()
    );
    let agent = rt
        .start_agent(sh(&script, serde_json::json!({})))
        .expect("starts");
    let grandchild: u32 = wait_for_file(&pids).await.trim().parse().expect("pid");
    let leader = agent.info().pid.expect("pid");
    assert!(alive(grandchild) && alive(leader));
    let t = Instant::now();
    let info = bounded(
        10,
        rt.stop_agent(&agent.id, Some(Duration::from_millis(400))),
    )
    .await
    .expect("stops");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(400),
        "waited the grace: {took:?}"
    );
    assert!(took < Duration::from_secs(3), "then killed: {took:?}");
    assert_eq!(info.status, AgentStatus::Stopped);
    assert_eq!(info.signal.as_deref(), Some("SIGKILL"));
    assert_eq!(info.exit_code, None);
    assert!(!alive(leader), "leader {leader} gone");
    assert!(!alive(grandchild), "grandchild {grandchild} gone");
    assert_eq!(agent_actions(&mut sub), vec!["started", "stopped"]);
}

#[tokio::test]
async fn grandchildren_left_behind_by_an_exiting_leader_are_reaped() {
    let rt = runtime();
    let dir = scratch("orphan");
    let pids = dir.join("pids");
    let script = format!("sleep 30 & echo $! > {}; exit 0", pids.display());
    let agent = rt
        .start_agent(sh(&script, serde_json::json!({ "graceMs": 300 })))
        .expect("starts");
    let info = bounded(10, agent.wait_finished()).await;
    let orphan: u32 = wait_for_file(&pids).await.trim().parse().expect("pid");
    assert_eq!(info.status, AgentStatus::Exited);
    assert!(
        !alive(orphan),
        "orphan {orphan} gone once the agent is reported finished"
    );
}

#[tokio::test]
async fn crash_restarts_per_policy_with_backoff_and_counts() {
    let rt = runtime();
    let mut sub = rt.events().subscribe();
    let dir = scratch("crash");
    let runs = dir.join("runs");
    let script = format!("echo run >> {}; exit 7", runs.display());
    let t = Instant::now();
    let agent = rt
        .start_agent(sh(
            &script,
            serde_json::json!({ "restart": { "maxRestarts": 2, "backoffMs": 100 } }),
        ))
        .expect("starts");
    let info = bounded(10, agent.wait_finished()).await;
    // Backoff doubles: 100 ms then 200 ms.
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(
        std::fs::read_to_string(&runs)
            .expect("runs")
            .lines()
            .count(),
        3
    );
    assert_eq!(info.status, AgentStatus::Crashed);
    assert_eq!(info.restarts, 2);
    assert_eq!(info.exit_code, Some(7));
    assert_eq!(
        info.reason.as_deref(),
        Some("exited with code 7; not restarted: maxRestarts (2) reached")
    );
    assert_eq!(
        agent_actions(&mut sub),
        vec![
            "started",
            "crashed",
            "restarted",
            "crashed",
            "restarted",
            "crashed"
        ]
    );
}

#[tokio::test]
async fn a_stop_during_the_backoff_ends_the_agent_stopped() {
    let rt = Arc::new(runtime());
    let agent = rt
        .start_agent(sh(
            "exit 1",
            serde_json::json!({ "restart": { "maxRestarts": 5, "backoffMs": 5000 } }),
        ))
        .expect("starts");
    for _ in 0..300 {
        if agent.info().status == AgentStatus::Crashed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(agent.info().status, AgentStatus::Crashed);
    assert!(!agent.info().finished);
    let info = bounded(5, rt.stop_agent(&agent.id, None))
        .await
        .expect("stops");
    assert_eq!(info.status, AgentStatus::Stopped);
    assert_eq!(info.restarts, 0);
}

#[tokio::test]
async fn shutdown_stops_everything_and_refuses_new_agents() {
    let rt = runtime();
    let a = rt
        .start_agent(sh("while :; do sleep 0.05; done", serde_json::json!({})))
        .expect("a");
    let b = rt
        .start_agent(sh("while :; do sleep 0.05; done", serde_json::json!({})))
        .expect("b");
    bounded(10, rt.shutdown(Some(Duration::from_secs(2)))).await;
    for agent in [&a, &b] {
        let info = agent.info();
        assert_eq!(info.status, AgentStatus::Stopped);
        assert_eq!(info.signal.as_deref(), Some("SIGTERM"));
        assert_eq!(info.reason.as_deref(), Some("runtime shut down"));
    }
    let err = rt
        .start_agent(sh("exit 0", serde_json::json!({})))
        .err()
        .expect("refused");
    assert_eq!(err.code(), "RUNTIME_SHUT_DOWN");
    assert!(err.to_string().contains("create a new AgentRuntime"));
}

#[tokio::test]
async fn spawn_errors_name_the_fix_and_unknown_ids_are_reported() {
    let rt = runtime();
    let err = rt
        .start_agent(AgentSpec::from_json(r#"{"command":"iron-cage-missing-cmd"}"#).expect("spec"))
        .err()
        .expect("fails");
    assert_eq!(err.code(), "SPAWN_FAILED");
    assert!(err.to_string().contains("PATH"), "{err}");
    assert!(rt.list().is_empty());
    let err = rt.stop_agent("agt_nope", None).await.expect_err("unknown");
    assert_eq!(err.code(), "AGENT_NOT_FOUND");
}

#[tokio::test]
async fn a_second_stop_with_a_shorter_grace_kills_sooner() {
    let rt = runtime();
    let dir = scratch("again");
    let ready = dir.join("ready");
    let script = format!(
        "trap '' TERM; echo up > {}; while :; do sleep 0.05; done",
        ready.display()
    );
    let agent = rt
        .start_agent(sh(&script, serde_json::json!({})))
        .expect("starts");
    wait_for_file(&ready).await;
    let t = Instant::now();
    assert!(agent.request_stop(iron_runtime::agent::StopRequest::new(
        Duration::from_secs(30),
        "first Ctrl-C"
    )));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(agent.info().status, AgentStatus::Stopping);
    let info = bounded(5, rt.stop_agent(&agent.id, Some(Duration::ZERO)))
        .await
        .expect("stops");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(info.status, AgentStatus::Stopped);
    assert_eq!(info.signal.as_deref(), Some("SIGKILL"));
    assert_eq!(info.reason.as_deref(), Some("first Ctrl-C"));
}

/// An agent gets neither the provider key nor the Iron Cage token (which could fetch the key from the
/// key server itself): its router takes a token minted for it, and variables holding either secret
/// (given in the spec here; inherited ones go the same way) or named for them are removed.
#[tokio::test]
async fn the_agent_never_gets_the_key_or_the_iron_cage_token() {
    const IC: &str = "ic_agent_runtime_canary_token_31f0";
    const KEY: &str = "sk-real-openai-7d1e";
    let rt = AgentRuntime::new(RuntimeOptions {
        router: serde_json::from_value(
            serde_json::json!({ "apiKey": IC, "serverUrl": "http://127.0.0.1:9" }),
        )
        .expect("router json"),
        state_path: None,
    })
    .expect("runtime");
    let dir = scratch("secrets");
    let out = dir.join("env.txt");
    let agent = rt
        .start_agent(sh(
            &format!(
                // Stays up (its router stops with it) until stopped.
                "env > {}.tmp; mv {}.tmp {}; while :; do sleep 0.05; done",
                out.display(),
                out.display(),
                out.display()
            ),
            serde_json::json!({ "env": {
                "COPY_OF_TOKEN": IC,
                "IRON_CAGE_SERVER_TOKEN": IC,
                "IRON_CAGE_PROVIDER_KEY": "anything",
                "KEEP": "kept"
            } }),
        ))
        .expect("starts");
    let router = agent.router().expect("runs until stopped");
    let token = router.api_key().to_string();
    assert_ne!(
        token, IC,
        "the agent's router must not take the Iron Cage token from it"
    );
    assert!(token.starts_with("ic_") && token.len() >= 32, "{token}");
    // The router takes the minted token and refuses the Iron Cage token.
    let url = format!("{}/v1/chat/completions", router.anthropic_base_url());
    let client = reqwest::Client::new();
    let with = |t: &str| {
        client
            .post(&url)
            .bearer_auth(t)
            .header("content-type", "application/json")
            .body(r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#)
            .send()
    };
    assert_eq!(with(IC).await.expect("send").status(), 401);
    assert_ne!(with(&token).await.expect("send").status(), 401);
    let env = wait_for_file(&out).await;
    bounded(
        10,
        rt.stop_agent(&agent.id, Some(Duration::from_millis(200))),
    )
    .await
    .expect("stops");
    assert!(
        !env.contains(IC),
        "the Iron Cage token reached the agent:\n{env}"
    );
    assert!(!env.contains(KEY));
    assert!(!env.contains("IRON_CAGE_PROVIDER_KEY=") && !env.contains("IRON_CAGE_SERVER_TOKEN="));
    assert!(!env.contains("COPY_OF_TOKEN="));
    assert!(env.contains("KEEP=kept\n"));
    assert!(env.contains(&format!("IRON_CAGE_TOKEN={token}\n")));
    assert!(env.contains(&format!("OPENAI_API_KEY={token}\n")));
}

/// The agent's standard streams are blocking even when ours are not (Node makes piped stdout
/// non-blocking; a program that does not expect it loses output on EAGAIN). The agent is python,
/// not `sh`: dash clears the flag itself and would hide the defect.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_agent_gets_blocking_standard_streams() {
    let dir = scratch("nonblock");
    let (r, w) = {
        let mut fds = [0; 2];
        // SAFETY: pipe writes two descriptors into the array it is given.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        (fds[0], fds[1])
    };
    // SAFETY: fcntl on a descriptor this test owns.
    unsafe {
        let flags = libc::fcntl(w, libc::F_GETFL);
        assert_eq!(libc::fcntl(w, libc::F_SETFL, flags | libc::O_NONBLOCK), 0);
    }
    // The agent's stdout is this process's stdout: point it at the non-blocking pipe for the test.
    // SAFETY: dup/dup2 on descriptors of this process; stdout is restored below.
    let saved = unsafe { libc::dup(1) };
    assert!(saved >= 0);
    assert_eq!(unsafe { libc::dup2(w, 1) }, 1);
    let out = dir.join("flags");
    let rt = runtime();
    let started = rt.start_agent(
        AgentSpec::from_json(
            &serde_json::json!({ "command": "python3", "args": ["-c",
                format!("import fcntl; open({:?}, 'w').write('flags: %o' % fcntl.fcntl(1, fcntl.F_GETFL))", out.display().to_string())] })
            .to_string(),
        )
        .expect("spec"),
    );
    // SAFETY: as above.
    unsafe {
        libc::dup2(saved, 1);
        libc::close(saved);
        libc::close(w);
        libc::close(r);
    }
    let agent = started.expect("starts");
    let info = bounded(10, agent.wait_finished()).await;
    assert_eq!(info.exit_code, Some(0), "{:?}", info.reason);
    let line = std::fs::read_to_string(&out).expect("flags written");
    let octal = line.trim().trim_start_matches("flags:").trim();
    let flags = u32::from_str_radix(octal, 8).expect("octal flags");
    assert_eq!(
        flags & libc::O_NONBLOCK as u32,
        0,
        "agent's stdout is non-blocking: {line}"
    );
}

/// The child side of `agents_do_not_outlive_a_host_that_dies`: starts an agent, records its pid
/// and exits at once without stopping it (as `process.exit` or an uncaught exception would).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn host_dies_child_entry() {
    let Some(pid_file) = std::env::var_os("IRON_HOST_DIES_PID_FILE") else {
        return;
    };
    let rt = runtime();
    let agent = rt
        .start_agent(sh("sleep 30", serde_json::json!({})))
        .expect("starts");
    std::fs::write(&pid_file, agent.info().pid.expect("pid").to_string()).expect("pid file");
    std::process::exit(0);
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn agents_do_not_outlive_a_host_that_dies() {
    let dir = scratch("orphan");
    let pid_file = dir.join("pid");
    let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["host_dies_child_entry", "--exact", "--test-threads=1"])
        .env("IRON_HOST_DIES_PID_FILE", &pid_file)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("host runs");
    assert!(status.success());
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .expect("agent started")
        .parse()
        .expect("pid");
    let t = Instant::now();
    while alive(pid) && t.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(pid), "agent {pid} outlived its host");
}

/// A descendant that left the agent's process group (`setsid`, as daemons and some launchers do)
/// is still stopped with it: SIGTERM with the group, SIGKILL when it ignores that.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn descendants_that_left_the_group_are_stopped_too() {
    let rt = runtime();
    let dir = scratch("setsid");
    let (polite, stubborn) = (dir.join("polite"), dir.join("stubborn"));
    let script = format!(
        "setsid sh -c 'echo $$ > {}; while :; do sleep 0.05; done' & \
         setsid sh -c 'trap \"\" TERM; echo $$ > {}; while :; do sleep 0.05; done' & \
         while :; do sleep 0.05; done",
        polite.display(),
        stubborn.display()
    );
    let agent = rt
        .start_agent(sh(&script, serde_json::json!({})))
        .expect("starts");
    let polite: u32 = wait_for_file(&polite).await.trim().parse().expect("pid");
    let stubborn: u32 = wait_for_file(&stubborn).await.trim().parse().expect("pid");
    let leader = agent.info().pid.expect("pid");
    let group = |pid| iron_runtime::agent::process_group::proc_state_and_pgrp(pid).map(|(_, g)| g);
    assert_ne!(group(polite), Some(leader), "left the agent's group");
    assert!(alive(polite) && alive(stubborn));
    bounded(
        10,
        rt.stop_agent(&agent.id, Some(Duration::from_millis(400))),
    )
    .await
    .expect("stops");
    for _ in 0..100 {
        if !alive(polite) && !alive(stubborn) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(polite), "setsid descendant {polite} stopped");
    assert!(
        !alive(stubborn),
        "setsid descendant {stubborn} ignoring SIGTERM killed"
    );
}
