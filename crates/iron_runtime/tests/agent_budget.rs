//! Agents calling a fake provider through their own router (python3, standard library only): metrics,
//! spend, the budget-exhausted policy (keep running with 402s, or stop and record why), persistence.
#![cfg(unix)]

mod common;

use common::{bounded, FakeProvider};
use iron_runtime::agent::{AgentRuntime, AgentSpec, AgentStatus, RuntimeOptions};
use iron_runtime_state::{Store, StoreConfig};

/// Calls `chat/completions` `$CALLS` times (or forever when 0), printing each HTTP status; exits 0.
const PY_AGENT: &str = r#"
import json, os, sys, time, urllib.request, urllib.error
base, key = os.environ["OPENAI_BASE_URL"], os.environ["OPENAI_API_KEY"]
calls = int(os.environ.get("CALLS", "0"))
n = 0
while calls == 0 or n < calls:
    n += 1
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()
    req = urllib.request.Request(base + "/chat/completions", data=body, method="POST",
        headers={"authorization": "Bearer " + key, "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            print(r.status, flush=True)
    except urllib.error.HTTPError as e:
        print(e.code, flush=True)
    time.sleep(0.02)
"#;

/// 1000 input + 1000 output tokens of gpt-4o-mini ($0.15 and $0.60 per 1M) = 750 micro-USD per call.
const COST_PER_CALL: u64 = 750;

async fn provider() -> FakeProvider {
    FakeProvider::json(serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": "ok" }, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": 1000, "completion_tokens": 1000, "total_tokens": 2000 }
    }))
    .await
}

fn runtime(provider: &FakeProvider, state: Option<std::path::PathBuf>) -> AgentRuntime {
    AgentRuntime::new(RuntimeOptions {
        router: serde_json::from_value(serde_json::json!({
            "providerKey": common::OPENAI_KEY,
            "providerBaseUrl": provider.url(),
        }))
        .expect("router options"),
        state_path: state,
    })
    .expect("runtime")
}

fn py(extra: serde_json::Value) -> AgentSpec {
    let mut spec = serde_json::json!({ "command": "python3", "args": ["-c", PY_AGENT] });
    if let (Some(o), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    AgentSpec::from_json(&spec.to_string()).expect("spec")
}

#[tokio::test]
async fn calls_are_counted_and_charged_to_the_agent() {
    let up = provider().await;
    let rt = runtime(&up, None);
    let agent = rt
        .start_agent(py(
            serde_json::json!({ "env": { "CALLS": "3" }, "budgetUsd": 1.0 }),
        ))
        .expect("starts");
    let before = iron_runtime::events::now_ms();
    let info = bounded(20, agent.wait_finished()).await;
    assert_eq!(
        (info.status, info.exit_code),
        (AgentStatus::Exited, Some(0))
    );
    let m = agent.metrics();
    assert_eq!((m.requests, m.completed, m.blocked), (3, 3, 0));
    assert_eq!(m.spent_micros, 3 * COST_PER_CALL);
    assert_eq!(m.budget_micros, Some(1_000_000));
    assert_eq!(m.last_model.as_deref(), Some("gpt-4o-mini"));
    assert!(m.last_activity_ms.is_some_and(|t| t + 30_000 >= before));
    assert!(!m.budget_exhausted);
    let stats = agent.stats();
    assert_eq!(stats.by_model["gpt-4o-mini"].requests, 3);
    assert_eq!(stats.by_model["gpt-4o-mini"].input_tokens, 3000);
    // The provider saw the real key, never the agent's router token.
    let seen = up.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen
        .iter()
        .all(|s| s.header("authorization") == format!("Bearer {}", common::OPENAI_KEY)));
}

#[tokio::test]
async fn budget_exhausted_with_stop_ends_the_agent_and_records_why() {
    let up = provider().await;
    let dir = std::env::temp_dir().join(format!(
        "iron-agent-budget-{}-{}",
        std::process::id(),
        iron_runtime::events::now_ms()
    ));
    let db = dir.join("state.db");
    let rt = runtime(&up, Some(db.clone()));
    // Each call reserves its worst case (gpt-4o-mini's 16384 output tokens ≈ $0.0099) before it is
    // settled at $0.00075, so a $0.012 budget lets a few calls through and then refuses with 402.
    let agent = rt
        .start_agent(py(serde_json::json!({
            "name": "spender", "budgetUsd": 0.012, "onBudgetExhausted": "stop", "graceMs": 2000
        })))
        .expect("starts");
    let info = bounded(20, agent.wait_finished()).await;
    assert_eq!(info.status, AgentStatus::Stopped);
    let reason = info.reason.clone().expect("reason");
    assert!(reason.starts_with("budget exhausted: $"), "{reason}");
    assert!(reason.contains("of $0.012000"), "{reason}");
    let m = agent.metrics();
    assert!(m.budget_exhausted);
    assert!(m.blocked >= 1, "{m:?}");
    assert!(m.completed >= 1, "{m:?}");
    assert_eq!(m.spent_micros, m.completed * COST_PER_CALL);
    assert!(m.spent_micros <= 12_000);
    rt.shutdown(None).await;

    let store = Store::open(StoreConfig::at_path(&db)).expect("store");
    let row = store.agent(&agent.id).expect("read").expect("row");
    assert_eq!(row.name, "spender");
    assert_eq!(row.status, "stopped");
    assert_eq!(row.reason.as_deref(), Some(reason.as_str()));
    assert_eq!(row.budget_micros, Some(12_000));
    assert_eq!(row.spent_micros, m.spent_micros);
    assert!(row.ended_at_ms.is_some());
    // The agent's router wrote its ledger to the same file, under the agent's id.
    assert_eq!(
        store.spent_for_agent(&agent.id).expect("sum"),
        m.spent_micros
    );
    let ledger = store.requests_for_agent(&agent.id).expect("ledger");
    assert_eq!(
        ledger.iter().filter(|r| r.cost_micros > 0).count() as u64,
        m.completed
    );
    drop(store);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn budget_exhausted_with_keep_running_lets_the_agent_finish() {
    let up = provider().await;
    let rt = runtime(&up, None);
    let agent = rt
        .start_agent(py(
            serde_json::json!({ "env": { "CALLS": "6" }, "budgetUsd": 0.012 }),
        ))
        .expect("starts");
    let info = bounded(20, agent.wait_finished()).await;
    assert_eq!(
        (info.status, info.exit_code),
        (AgentStatus::Exited, Some(0))
    );
    assert_eq!(info.reason, None);
    let m = agent.metrics();
    assert_eq!(m.requests, 6);
    assert!(m.budget_exhausted);
    assert_eq!(m.completed + m.blocked, 6);
    assert!(m.blocked >= 1);
    assert_eq!(m.spent_micros, m.completed * COST_PER_CALL);
    assert_eq!(up.seen().len() as u64, m.completed);
}

#[cfg(target_os = "linux")]
fn open_fds_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("fd dir")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

/// A finished agent used to keep its router, and with it the router's state store (a writer thread
/// and its files) until the runtime went away, also after `shutdown()`. Its router is stopped and
/// let go when it finishes (the store closed), keeping only the figures its info and metrics
/// show; `shutdown()` closes the runtime's own store.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn finished_agents_and_shutdown_release_the_state_file() {
    let up = provider().await;
    let dir = std::env::temp_dir().join(format!(
        "iron-agent-release-{}-{}",
        std::process::id(),
        iron_runtime::events::now_ms()
    ));
    let rt = runtime(&up, Some(dir.join("state.db")));
    // The runtime's own store (agent rows).
    let baseline = open_fds_under(&dir);
    assert!(baseline > 0);
    let mut agents = Vec::new();
    for _ in 0..6 {
        let agent = rt
            .start_agent(py(
                serde_json::json!({ "env": { "CALLS": "1" }, "budgetUsd": 1.0 }),
            ))
            .expect("starts");
        assert!(agent.router().is_some());
        let info = bounded(20, agent.wait_finished()).await;
        assert_eq!(info.status, AgentStatus::Exited);
        assert!(
            agent.router().is_none(),
            "a finished agent lets its router go"
        );
        // SQLite keeps the descriptors of a closed connection to a file that another connection
        // of the process (here the runtime's) still has open, and reuses them for the next
        // connection to it: at most those of the last agent's two connections stay.
        let open = open_fds_under(&dir);
        assert!(
            open <= baseline + 2,
            "{open} open, {baseline} for the runtime's store"
        );
        agents.push(agent);
    }
    for agent in &agents {
        // What its info and metrics show stays.
        let m = agent.metrics();
        assert_eq!((m.requests, m.completed), (1, 1));
        assert_eq!(m.spent_micros, COST_PER_CALL);
        assert_eq!(m.budget_micros, Some(1_000_000));
        assert_eq!(agent.stats().by_model["gpt-4o-mini"].requests, 1);
        assert!(agent.info().base_url.starts_with("http://127.0.0.1:"));
    }
    rt.shutdown(None).await;
    assert_eq!(
        open_fds_under(&dir),
        0,
        "shutdown closes the runtime's store"
    );
    // Everything was written before the files closed.
    let store = Store::open(StoreConfig::at_path(dir.join("state.db"))).expect("store");
    for agent in &agents {
        let row = store.agent(&agent.id).expect("read").expect("row");
        assert_eq!(
            (row.status.as_str(), row.spent_micros),
            ("exited", COST_PER_CALL)
        );
        assert_eq!(
            store.spent_for_agent(&agent.id).expect("sum"),
            COST_PER_CALL
        );
    }
    drop(store);
    let _ = std::fs::remove_dir_all(dir);
}

/// Sends one call with a 0.3 s client timeout and exits without waiting for the answer.
const PY_IMPATIENT: &str = r#"
import json, os, urllib.request
base, key = os.environ["OPENAI_BASE_URL"], os.environ["OPENAI_API_KEY"]
body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).encode()
req = urllib.request.Request(base + "/chat/completions", data=body, method="POST",
    headers={"authorization": "Bearer " + key, "content-type": "application/json"})
try:
    urllib.request.urlopen(req, timeout=0.3)
except Exception as e:
    print("gave up:", type(e).__name__, flush=True)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_left_at_the_provider_when_the_agent_ends_is_still_charged() {
    bounded(30, async {
        // The provider answers after a second: the agent is gone by then.
        let (port, count, _t) = common::raw::raw_upstream(|_, mut s| async move {
            use tokio::io::AsyncWriteExt;
            if common::raw::read_request(&mut s).await {
                tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
                let _ = s.write_all(common::raw::ok_response().as_bytes()).await;
            }
        })
        .await;
        let rt = AgentRuntime::new(RuntimeOptions {
            router: serde_json::from_value(serde_json::json!({
                "providerKey": common::OPENAI_KEY,
                "providerBaseUrl": format!("http://127.0.0.1:{port}"),
            }))
            .expect("router options"),
            state_path: None,
        })
        .expect("runtime");
        let spec = serde_json::json!({ "command": "python3", "args": ["-c", PY_IMPATIENT], "budgetUsd": 1.0 });
        let agent = rt
            .start_agent(AgentSpec::from_json(&spec.to_string()).expect("spec"))
            .expect("starts");
        let info = agent.wait_finished().await;
        assert_eq!(info.exit_code, Some(0));
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
        // The call the provider answered (and bills) after the agent left is in its figures.
        let m = agent.metrics();
        assert_eq!(m.requests, 1);
        assert!(m.spent_micros > 0, "charged: {m:?}");
        assert_eq!(m.completed + m.failed, 1);
        // And the figures of a finished agent include its ledger counters.
        assert!(agent.stats().ledger.committed >= 1, "{:?}", agent.stats().ledger);
    })
    .await;
}

/// A budget already spent in earlier runs (restored from the state file under the agent's id)
/// stops an agent with `onBudgetExhausted: 'stop'` at its start, not at its first refused call:
/// an agent that makes none would otherwise run on.
#[tokio::test]
async fn a_budget_spent_in_an_earlier_run_stops_the_agent_at_its_start() {
    let up = provider().await;
    let dir = std::env::temp_dir().join(format!(
        "iron-agent-spent-{}-{}",
        std::process::id(),
        iron_runtime::events::now_ms()
    ));
    let db = dir.join("state.db");
    let rt = runtime(&up, Some(db.clone()));
    let first = rt
        .start_agent(py(serde_json::json!({
            "id": "returning", "env": { "CALLS": "2" }, "budgetUsd": 1.0
        })))
        .expect("starts");
    let info = bounded(20, first.wait_finished()).await;
    assert_eq!(info.exit_code, Some(0));
    assert_eq!(first.metrics().spent_micros, 2 * COST_PER_CALL);
    // The same agent again, with less budget than it has spent, doing no LLM work at all.
    let spec = AgentSpec::from_json(
        &serde_json::json!({
            "id": "returning", "command": "python3", "args": ["-c", "import time; time.sleep(60)"],
            "budgetUsd": 0.001, "onBudgetExhausted": "stop", "graceMs": 2000
        })
        .to_string(),
    )
    .expect("spec");
    let again = rt.start_agent(spec).expect("starts");
    let info = bounded(20, again.wait_finished()).await;
    assert_eq!(info.status, AgentStatus::Stopped);
    let reason = info.reason.expect("reason");
    assert!(
        reason.starts_with("budget exhausted: $0.001500 spent of $0.001000"),
        "{reason}"
    );
    assert!(again.metrics().budget_exhausted);
    rt.shutdown(None).await;
    let _ = std::fs::remove_dir_all(dir);
}
