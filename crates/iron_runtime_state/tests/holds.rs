//! Budget holds on file: a call's ledger row replaces its hold in one transaction (and a hold
//! settled within one batch is never written), and a hold left by a router that never settled it
//! is charged at its held amount, with an audit note, when the agent's ledger is opened again.

use iron_runtime_state::{HoldRow, RequestRow, Store, StoreConfig};

fn hold(agent: &str, id: &str, amount: u64) -> HoldRow {
    HoldRow {
        ts_ms: 1_700_000_000_000,
        agent_id: agent.into(),
        request_id: id.into(),
        provider: "openai".into(),
        model: "gpt-4o".into(),
        api: "chat.completions".into(),
        amount_micros: amount,
    }
}

fn settled(agent: &str, id: &str, cost: u64) -> RequestRow {
    RequestRow {
        ts_ms: 1_700_000_000_500,
        agent_id: agent.into(),
        request_id: id.into(),
        status: 200,
        cost_micros: cost,
        ..RequestRow::default()
    }
}

/// A file store that commits only on flush (or every 128 rows), so each test decides the batches.
fn file_store(path: &std::path::Path) -> Store {
    Store::open(StoreConfig {
        flush_interval_ms: 60_000,
        ..StoreConfig::at_path(path)
    })
    .expect("open")
}

#[test]
fn a_hold_settled_in_the_same_batch_is_never_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = file_store(&dir.path().join("s.db"));
    store.record_hold(hold("a", "1", 9_000)).expect("hold");
    store
        .record_request_replacing_hold(settled("a", "1", 450))
        .expect("row");
    store.flush().expect("flush");
    assert_eq!(store.holds().expect("holds"), vec![]);
    assert_eq!(store.spent_for_agent("a").expect("spent"), 450);
    assert_eq!(store.counts().expect("counts"), (1, 0));
    // Both rows count as committed: nothing was lost.
    assert_eq!(store.stats().committed, 2);
}

#[test]
fn a_committed_hold_is_deleted_by_its_ledger_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = file_store(&dir.path().join("s.db"));
    store.record_hold(hold("a", "1", 9_000)).expect("hold");
    store.record_hold(hold("a", "2", 7_000)).expect("hold");
    store.flush().expect("flush");
    assert_eq!(
        store.holds().expect("holds"),
        vec![hold("a", "1", 9_000), hold("a", "2", 7_000)]
    );
    store
        .record_request_replacing_hold(settled("a", "1", 450))
        .expect("row");
    // A refusal with no hold replaces nothing.
    store
        .record_request_replacing_hold(settled("a", "3", 0))
        .expect("row");
    store.flush().expect("flush");
    assert_eq!(store.holds().expect("holds"), vec![hold("a", "2", 7_000)]);
    assert_eq!(store.spent_for_agent("a").expect("spent"), 450);
    // A plain ledger row leaves holds alone.
    store.record_request(settled("a", "2", 1)).expect("row");
    store.flush().expect("flush");
    assert_eq!(store.holds().expect("holds").len(), 1);
}

#[test]
fn holds_left_unsettled_are_charged_once_with_an_audit_note() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.db");
    {
        let store = file_store(&path);
        store
            .record_request_replacing_hold(settled("a", "1", 450))
            .expect("row");
        store.record_hold(hold("a", "2", 9_000)).expect("hold");
        store.record_hold(hold("b", "7", 3_000)).expect("hold");
        store.flush().expect("flush");
        // The process dies here: the holds of calls 2 and 7 never settle.
    }
    let store = file_store(&path);
    assert_eq!(store.spent_for_agent("a").expect("spent"), 450);
    let charged = store.charge_unsettled_holds("a").expect("charge");
    assert_eq!(charged, vec![hold("a", "2", 9_000)]);
    assert_eq!(store.spent_for_agent("a").expect("spent"), 9_450);
    let rows = store.requests_for_agent("a").expect("rows");
    let row = rows.last().expect("charged row");
    assert_eq!(
        (
            row.request_id.as_str(),
            row.status,
            row.cost_micros,
            row.estimated,
            row.error_code.as_deref(),
            row.model.as_str()
        ),
        ("2", 0, 9_000, true, Some("unsettled"), "gpt-4o")
    );
    let audit = store.audit_events(10).expect("audit");
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (audit[0].agent_id.as_str(), audit[0].kind.as_str()),
        ("a", "hold_charged")
    );
    assert!(
        audit[0]
            .detail_json
            .starts_with(r#"{"request_id":"2","held_micros":9000,"held_at_ms":1700000000000,"#),
        "{}",
        audit[0].detail_json
    );
    // Charged once: the hold is gone; the other agent's hold is not this agent's to charge.
    assert_eq!(store.charge_unsettled_holds("a").expect("again"), vec![]);
    assert_eq!(store.spent_for_agent("a").expect("spent"), 9_450);
    assert_eq!(store.holds().expect("holds"), vec![hold("b", "7", 3_000)]);
    assert!(store.agent_has_rows("b").expect("b"));
    assert!(!store.agent_has_rows("c").expect("c"));
}

#[cfg(target_os = "linux")]
fn open_fds_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("fd dir")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

#[cfg(target_os = "linux")]
#[test]
fn close_through_a_shared_handle_releases_the_file_and_the_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = std::sync::Arc::new(file_store(&dir.path().join("s.db")));
    let other = store.clone();
    store.record_request(settled("a", "1", 5)).expect("row");
    assert!(open_fds_under(dir.path()) >= 2, "the file is open");
    store.close().expect("close");
    // The handle still held elsewhere sees a closed store; nothing of the file stays open.
    assert!(other.is_closed());
    assert_eq!(open_fds_under(dir.path()), 0);
    assert!(matches!(
        other.record_request(settled("a", "2", 5)),
        Err(iron_runtime_state::StateError::Closed)
    ));
    assert!(matches!(
        other.spent_for_agent("a"),
        Err(iron_runtime_state::StateError::Closed)
    ));
    assert_eq!(other.stats().dropped, 1);
    // Closing again is harmless; the row queued before the close was committed.
    other.close().expect("second close");
    drop((store, other));
    let reopened = file_store(&dir.path().join("s.db"));
    assert_eq!(reopened.spent_for_agent("a").expect("spent"), 5);
}
