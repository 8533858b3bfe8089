//! What the router records is what it reads back, in memory and across reopen.

use std::time::Duration;

use iron_runtime_state::{AgentRow, AuditRow, RequestRow, StateError, Store, StoreConfig};

fn request(agent: &str, n: u64, cost: u64) -> RequestRow {
    RequestRow {
        ts_ms: 1_700_000_000_000 + n,
        agent_id: agent.into(),
        request_id: format!("req-{n}"),
        provider: "openai".into(),
        model: "gpt-4o-mini".into(),
        api: "chat.completions".into(),
        status: 200,
        input_tokens: 100 + n,
        cache_read_tokens: 10,
        cache_write_tokens: 5,
        output_tokens: 20 + n,
        reasoning_tokens: 3,
        cost_micros: cost,
        estimated: n % 2 == 1,
        unpriced: n.is_multiple_of(3),
        latency_ms: 250,
        ttft_ms: Some(40),
        blocked_reason: None,
        error_code: None,
    }
}

fn agent(id: &str, status: &str) -> AgentRow {
    AgentRow {
        id: id.into(),
        name: format!("{id}-name"),
        status: status.into(),
        started_at_ms: 1_700_000_000_000,
        budget_micros: Some(5_000_000),
        ..AgentRow::default()
    }
}

#[test]
fn recorded_rows_read_back_exactly() {
    let store = Store::open(StoreConfig::in_memory()).expect("open");
    let first = request("a1", 1, 1_500);
    let refused = RequestRow {
        status: 402,
        blocked_reason: Some("BUDGET_EXCEEDED".into()),
        error_code: Some("BUDGET_EXCEEDED".into()),
        ttft_ms: None,
        ..request("a1", 2, 0)
    };
    store.record_request(first.clone()).expect("queue");
    store.record_request(refused.clone()).expect("queue");
    store.record_request(request("a2", 3, 700)).expect("queue");
    store
        .record_audit(AuditRow {
            ts_ms: 5,
            agent_id: "a1".into(),
            kind: "pii_detected".into(),
            detail_json: r#"{"types":{"email":2}}"#.into(),
        })
        .expect("queue");
    store.upsert_agent(agent("a1", "running")).expect("queue");
    store.flush().expect("flush");

    assert_eq!(store.counts().expect("counts"), (3, 1));
    assert_eq!(
        store.requests_for_agent("a1").expect("rows"),
        vec![first, refused]
    );
    assert_eq!(store.spent_for_agent("a1").expect("spent"), 1_500);
    assert_eq!(store.spent_for_agent("a2").expect("spent"), 700);
    assert_eq!(store.spent_for_agent("nobody").expect("spent"), 0);
    assert_eq!(store.spent_total().expect("total"), 2_200);
    let newest = store.requests(2).expect("recent");
    assert_eq!(
        newest
            .iter()
            .map(|r| r.request_id.as_str())
            .collect::<Vec<_>>(),
        ["req-3", "req-2"]
    );
    let audit = store.audit_events(10).expect("audit");
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].detail_json, r#"{"types":{"email":2}}"#);
    assert_eq!(
        store.agent("a1").expect("agent"),
        Some(agent("a1", "running"))
    );
    assert_eq!(store.agent("zz").expect("agent"), None);

    let stats = store.stats();
    assert_eq!(
        (stats.queued, stats.committed, stats.dropped, stats.pending),
        (5, 5, 0, 0)
    );
    store.close().expect("close");
}

#[test]
fn upsert_replaces_the_agent_row() {
    let store = Store::open(StoreConfig::in_memory()).expect("open");
    store.upsert_agent(agent("a1", "running")).expect("queue");
    let stopped = AgentRow {
        ended_at_ms: Some(1_700_000_009_000),
        spent_micros: 42,
        exit_code: Some(0),
        restarts: 2,
        reason: Some("stopped by user".into()),
        ..agent("a1", "stopped")
    };
    store.upsert_agent(stopped.clone()).expect("queue");
    store.upsert_agent(agent("a0", "running")).expect("queue");
    store.flush().expect("flush");
    let all = store.list_agents().expect("list");
    assert_eq!(all.len(), 2);
    assert_eq!(all[1], stopped);
    assert_eq!(all[0].id, "a0");
}

#[test]
fn spent_is_restored_after_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested/state.db");
    {
        let store = Store::open(StoreConfig::at_path(&path)).expect("open");
        for n in 0..50 {
            store
                .record_request(request("a1", n, 1_000 + n))
                .expect("queue");
        }
        store.record_request(request("a2", 99, 5)).expect("queue");
        // Dropping without close must still commit (best-effort flush in Drop).
    }
    let store = Store::open(StoreConfig::at_path(&path)).expect("reopen");
    // 50 * 1000 + (0 + 1 + ... + 49) = 50_000 + 1_225
    assert_eq!(store.spent_for_agent("a1").expect("spent"), 51_225);
    assert_eq!(store.spent_for_agent("a2").expect("spent"), 5);
    assert_eq!(store.counts().expect("counts"), (51, 0));
}

#[test]
fn file_database_uses_wal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let store = Store::open(StoreConfig::at_path(&path)).expect("open");
    store.close().expect("close");
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("mode");
    assert_eq!(mode, "wal");
}

#[test]
fn strict_ack_makes_the_row_visible_to_a_new_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let cfg = StoreConfig {
        strict: true,
        // Long enough that only the ack, not the timer, can have committed the row.
        flush_interval_ms: 60_000,
        ..StoreConfig::at_path(&path)
    };
    let store = Store::open(cfg).expect("open");
    store.record_request(request("a1", 1, 900)).expect("queue");
    let ack = store.strict_ack().expect("strict mode gives an ack");
    ack.wait_timeout(Duration::from_secs(10))
        .expect("ack within 10 s")
        .expect("committed");
    let other = Store::open(StoreConfig::at_path(&path)).expect("second store");
    assert_eq!(other.spent_for_agent("a1").expect("spent"), 900);
    assert!(Store::open(StoreConfig::in_memory())
        .expect("open")
        .strict_ack()
        .is_none());
}

#[test]
fn full_queue_drops_and_counts_without_blocking() {
    let cfg = StoreConfig {
        flush_interval_ms: 60_000,
        max_queue: 3,
        ..StoreConfig::in_memory()
    };
    let store = Store::open(cfg).expect("open");
    for n in 0..3 {
        store.record_request(request("a1", n, 1)).expect("fits");
    }
    match store.record_request(request("a1", 3, 1)) {
        Err(StateError::QueueFull { max_queue }) => assert_eq!(max_queue, 3),
        other => panic!("expected QueueFull, got {other:?}"),
    }
    assert_eq!(store.stats().dropped, 1);
    store.flush().expect("flush");
    // Committing freed the queue.
    store
        .record_request(request("a1", 4, 1))
        .expect("fits again");
    store.flush().expect("flush");
    assert_eq!(store.counts().expect("counts"), (4, 0));
    assert_eq!(store.stats().pending, 0);
}

#[test]
fn rows_commit_on_the_timer_without_a_flush() {
    let cfg = StoreConfig {
        flush_interval_ms: 20,
        ..StoreConfig::in_memory()
    };
    let store = Store::open(cfg).expect("open");
    store.record_request(request("a1", 1, 10)).expect("queue");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    // The batch counter moves just after the commit that makes the row visible.
    while store.counts().expect("counts").0 == 0 || store.stats().batches == 0 {
        assert!(std::time::Instant::now() < deadline, "row never committed");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(store.stats().batches, 1);
}

#[test]
fn huge_values_saturate_instead_of_failing() {
    let store = Store::open(StoreConfig::in_memory()).expect("open");
    let row = RequestRow {
        cost_micros: u64::MAX,
        input_tokens: u64::MAX,
        request_id: "x".repeat(1 << 20),
        agent_id: "nul\0inside".into(),
        ..request("a1", 1, 0)
    };
    store.record_request(row).expect("queue");
    store.flush().expect("flush");
    let back = store.requests(1).expect("read");
    assert_eq!(back[0].cost_micros, i64::MAX as u64);
    assert_eq!(back[0].request_id.len(), 1 << 20);
    assert_eq!(back[0].agent_id, "nul\0inside");
}

#[test]
fn a_path_that_is_a_directory_fails_to_open_without_panicking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err =
        Store::open(StoreConfig::at_path(dir.path())).expect_err("a directory is no database");
    assert!(matches!(err, StateError::CannotOpen { .. }), "{err:?}");
    assert!(err.to_string().contains("it is a directory"), "{err}");
}

#[test]
fn store_and_ack_can_be_shared_with_async_tasks() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send + 'static>() {}
    send_sync::<Store>();
    send::<iron_runtime_state::FlushAck>();
    let store = std::sync::Arc::new(Store::open(StoreConfig::in_memory()).expect("open"));
    let worker = {
        let store = store.clone();
        std::thread::spawn(move || store.record_request(request("t", 1, 3)))
    };
    worker.join().expect("join").expect("queue");
    store.flush().expect("flush");
    assert_eq!(store.spent_for_agent("t").expect("spent"), 3);
}
