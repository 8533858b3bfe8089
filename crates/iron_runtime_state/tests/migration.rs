//! A file created by schema version 1 is migrated in place and keeps its data.

use iron_runtime_state::{RequestRow, Store, StoreConfig, SCHEMA_VERSION};

/// The v1 schema exactly as version 1 shipped it, written out by hand so an edit to the
/// migration list cannot silently change what this test starts from.
const V1_SCHEMA: &str = "
CREATE TABLE agents (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL DEFAULT '', started_at_ms INTEGER NOT NULL DEFAULT 0, ended_at_ms INTEGER,
  budget_micros INTEGER, spent_micros INTEGER NOT NULL DEFAULT 0, exit_code INTEGER,
  exit_signal TEXT, restarts INTEGER NOT NULL DEFAULT 0, reason TEXT);
CREATE TABLE requests (id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL,
  agent_id TEXT NOT NULL DEFAULT '', request_id TEXT NOT NULL DEFAULT '',
  provider TEXT NOT NULL DEFAULT '', model TEXT NOT NULL DEFAULT '', api TEXT NOT NULL DEFAULT '',
  status INTEGER NOT NULL DEFAULT 0, input_tokens INTEGER NOT NULL DEFAULT 0,
  cache_read_tokens INTEGER NOT NULL DEFAULT 0, cache_write_tokens INTEGER NOT NULL DEFAULT 0,
  output_tokens INTEGER NOT NULL DEFAULT 0, reasoning_tokens INTEGER NOT NULL DEFAULT 0,
  cost_micros INTEGER NOT NULL DEFAULT 0, estimated INTEGER NOT NULL DEFAULT 0,
  latency_ms INTEGER NOT NULL DEFAULT 0, ttft_ms INTEGER);
CREATE TABLE audit (id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL,
  agent_id TEXT NOT NULL DEFAULT '', kind TEXT NOT NULL, detail_json TEXT NOT NULL DEFAULT '{}');
PRAGMA user_version = 1;
";

#[test]
fn version_1_file_is_migrated_and_keeps_its_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("old.db");
    {
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        conn.execute_batch(V1_SCHEMA).expect("v1 schema");
        conn.execute_batch(
            "INSERT INTO requests (ts_ms, agent_id, request_id, model, status, input_tokens,
               output_tokens, cost_micros) VALUES (1000, 'a1', 'old-1', 'gpt-4o', 200, 11, 7, 2500);
             INSERT INTO agents (id, name, status, started_at_ms) VALUES ('a1', 'legacy', 'stopped', 900);
             INSERT INTO audit (ts_ms, agent_id, kind, detail_json) VALUES (1001, 'a1', 'key_fetch', '{\"ok\":true}');",
        )
        .expect("v1 rows");
    }

    let store = Store::open(StoreConfig::at_path(&path)).expect("open migrates");
    assert_eq!(SCHEMA_VERSION, 5);
    // Old rows are intact and the columns added by v2 read as absent.
    let old = store.requests_for_agent("a1").expect("rows");
    assert_eq!(old.len(), 1);
    assert_eq!(
        (
            old[0].request_id.as_str(),
            old[0].input_tokens,
            old[0].output_tokens,
            old[0].cost_micros
        ),
        ("old-1", 11, 7, 2500)
    );
    assert_eq!(old[0].blocked_reason, None);
    // v5: rows from before it were priced (or not) without saying so: read as priced.
    assert!(!old[0].unpriced);
    assert_eq!(
        store.agent("a1").expect("agent").map(|a| a.name),
        Some("legacy".into())
    );
    assert_eq!(store.counts().expect("counts"), (1, 1));

    // The v2 columns work for new rows.
    store
        .record_request(RequestRow {
            agent_id: "a1".into(),
            cost_micros: 500,
            status: 402,
            blocked_reason: Some("BUDGET_EXCEEDED".into()),
            ..RequestRow::default()
        })
        .expect("queue");
    store.flush().expect("flush");
    assert_eq!(store.spent_for_agent("a1").expect("spent"), 3_000);
    assert_eq!(
        store.requests(1).expect("newest")[0]
            .blocked_reason
            .as_deref(),
        Some("BUDGET_EXCEEDED")
    );
    store.close().expect("close");

    let conn = rusqlite::Connection::open(&path).expect("raw reopen");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, 5);
    // v4 adds the table of budget holds, empty.
    let holds: i64 = conn
        .query_row("SELECT COUNT(*) FROM holds", [], |r| r.get(0))
        .expect("holds table");
    assert_eq!(holds, 0);
    // v3 keeps only the index a read uses; the per-agent reads still search it, not the table.
    let mut names = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'idx_%'")
        .expect("prepare");
    let indexes: Vec<String> = names
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("names");
    assert_eq!(indexes, vec!["idx_requests_agent_ts".to_string()]);
    let plan: String = conn
        .query_row(
            "EXPLAIN QUERY PLAN SELECT COALESCE(SUM(cost_micros), 0) FROM requests WHERE agent_id = 'a1'",
            [],
            |r| r.get(3),
        )
        .expect("plan");
    assert!(plan.contains("idx_requests_agent_ts"), "{plan}");
}

#[test]
fn newer_schema_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("future.db");
    rusqlite::Connection::open(&path)
        .expect("raw open")
        .execute_batch("PRAGMA user_version = 7")
        .expect("set version");
    let err = Store::open(StoreConfig::at_path(&path)).expect_err("must refuse");
    assert!(
        err.to_string().contains("schema version 7 is newer"),
        "{err}"
    );
}

/// Several processes opening a new file at once (parallel `iron-cage run --state x.db`) take
/// turns migrating it: each reads the version inside its own write transaction. Read outside
/// it, two found version 0 and both created the tables ("table agents already exists").
#[test]
fn openers_racing_on_a_new_file_all_succeed() {
    for round in 0..20 {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(format!("race-{round}.db"));
        let start = std::sync::Arc::new(std::sync::Barrier::new(6));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let path = path.clone();
                let start = start.clone();
                std::thread::spawn(move || {
                    start.wait();
                    Store::open(StoreConfig::at_path(&path)).map(|s| s.close())
                })
            })
            .collect();
        for t in threads {
            match t.join().expect("thread") {
                Ok(_) => {}
                Err(e) => panic!("round {round}: an opener failed: {e}"),
            }
        }
        let conn = rusqlite::Connection::open(&path).expect("open");
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(v, SCHEMA_VERSION);
    }
}
