//! A call in flight when the router is killed (SIGKILL) is charged when the agent's ledger is
//! opened again: the provider already has it and bills it. Its budget hold was written to the state
//! file (committed before forwarding with `strictPersistence`, within one flush interval without),
//! and the next router for the agent charges a hold that never settled at its held amount, with an
//! audit note.
//!
//! The test re-runs its own binary as the child (selected by an environment variable): the child
//! starts a router with `statePath` and `agentId`, begins a streamed call to a provider that sends
//! one chunk and then stalls, and prints `INFLIGHT <held micro-USD>` once the first chunk arrived
//! (without strict persistence, once the writer has nothing pending). The parent kills it there.
#![cfg(unix)]

mod common;

use common::*;
use iron_runtime_state::{Store, StoreConfig};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const CHILD_DB: &str = "IRON_CRASH_CHILD_DB";
const CHILD_STRICT: &str = "IRON_CRASH_CHILD_STRICT";
const TEST_NAME: &str = "a_call_in_flight_at_sigkill_is_charged_at_its_hold";
const AGENT: &str = "crashy";

#[test]
fn a_call_in_flight_at_sigkill_is_charged_at_its_hold() {
    match std::env::var_os(CHILD_DB) {
        Some(path) => run_child(path.into(), std::env::var_os(CHILD_STRICT).is_some()),
        None => {
            run_parent(true);
            run_parent(false);
        }
    }
}

/// With strict persistence the writer's own interval is a minute: only the commit the router waits
/// for before forwarding can have put the hold on disk by the time of the kill.
fn options(provider_url: &str, db: &std::path::Path, strict: bool) -> String {
    serde_json::json!({
        "providerKey": OPENAI_KEY, "providerBaseUrl": provider_url,
        "statePath": db.to_string_lossy(), "agentId": AGENT, "budgetUsd": 10,
        "strictPersistence": strict, "flushIntervalMs": if strict { 60_000 } else { 100 },
    })
    .to_string()
}

fn run_child(db: std::path::PathBuf, strict: bool) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        // One chunk, then nothing for far longer than the test: the call stays in flight.
        let chunk = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n";
        let up = FakeProvider::start(Reply::Sse {
            events: vec![chunk.to_string(), "data: [DONE]\n\n".to_string()],
            gap: Duration::from_secs(600),
        })
        .await;
        let router =
            iron_runtime::Router::start_json(&options(&up.url(), &db, strict)).expect("router");
        let body = serde_json::json!({ "model": "gpt-4o", "max_tokens": 1000, "stream": true,
                                       "messages": [{ "role": "user", "content": "long" }] });
        let mut resp = client()
            .post(format!("{}/chat/completions", router.base_url()))
            .bearer_auth(router.api_key())
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("router answers");
        assert_eq!(resp.status().as_u16(), 200);
        let first = resp.chunk().await.expect("first chunk").expect("some bytes");
        assert!(!first.is_empty());
        if !strict {
            // The hold was queued before the call was forwarded; wait for its batch.
            while router.shared().policies.ledger.store.stats().pending > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        println!("INFLIGHT {}", router.budget_status().reserved_micros);
        tokio::time::sleep(Duration::from_secs(600)).await;
    });
}

fn run_parent(strict: bool) {
    let dir = tempfile_dir(strict);
    let db = dir.join("state.db");
    let mut child = Command::new(std::env::current_exe().expect("own test binary"))
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DB, &db)
        .envs(strict.then_some((CHILD_STRICT, "1")))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // The harness's "test <name> ... " may come first on the same line.
            if let Some((_, held)) = line.split_once("INFLIGHT ") {
                let _ = tx.send(held.parse::<u64>().expect("held amount"));
                return;
            }
        }
    });
    let held = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(held) => held,
        Err(e) => {
            let _ = child.kill();
            panic!("the child never reported its call in flight: {e}");
        }
    };
    child.kill().expect("SIGKILL the child");
    let _ = child.wait();
    // gpt-4o: at most 1000 output tokens of $10 per 1M, plus the prompt: ~$0.01.
    assert!(held > 10_000, "held {held} micro-USD");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let up = FakeProvider::json(chat_completion()).await;
        let router = iron_runtime::Router::start_json(&options(&up.url(), &db, strict))
            .expect("the next router for the agent starts (the lock died with the child)");
        assert_eq!(
            router.total_spent_micros(),
            held,
            "strictPersistence {strict}: the call in flight at the kill is charged at its hold"
        );
        router.stop().await;
        // Charged once: a third router restores the same.
        let again = iron_runtime::Router::start_json(&options(&up.url(), &db, strict))
            .expect("starts again");
        assert_eq!(again.total_spent_micros(), held);
        again.stop().await;
    });

    let store = Store::open(StoreConfig::at_path(&db)).expect("reopen");
    assert_eq!(store.holds().expect("holds"), vec![]);
    let rows = store.requests_for_agent(AGENT).expect("rows");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(
        (
            row.request_id.as_str(),
            row.model.as_str(),
            row.cost_micros,
            row.estimated,
            row.error_code.as_deref()
        ),
        ("1", "gpt-4o", held, true, Some("unsettled"))
    );
    let audit = store.audit_events(100).expect("audit");
    let notes: Vec<_> = audit.iter().filter(|a| a.kind == "hold_charged").collect();
    assert_eq!(notes.len(), 1, "{audit:?}");
    assert_eq!(notes[0].agent_id, AGENT);
    assert!(
        notes[0]
            .detail_json
            .contains(&format!("\"held_micros\":{held}")),
        "{}",
        notes[0].detail_json
    );
    drop(store);
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir(strict: bool) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!(
        "iron-crash-{strict}-{}-{}",
        std::process::id(),
        iron_runtime::events::now_ms()
    ));
    std::fs::create_dir_all(&p).expect("temp dir");
    p
}
