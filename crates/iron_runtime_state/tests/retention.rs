//! An in-memory store keeps only the newest rows, so a long-running router cannot grow without bound.

use iron_runtime_state::{AuditRow, RequestRow, Store, StoreConfig};

#[test]
fn in_memory_store_keeps_only_the_newest_rows() {
    let mut cfg = StoreConfig::in_memory();
    cfg.retain_rows = Some(100);
    cfg.flush_interval_ms = 1;
    let store = Store::open(cfg).expect("open");
    for i in 0..1_000u64 {
        store
            .record_request(RequestRow {
                request_id: i.to_string(),
                cost_micros: 1,
                ..Default::default()
            })
            .expect("queued");
        store
            .record_audit(AuditRow {
                ts_ms: i,
                agent_id: String::new(),
                kind: "k".into(),
                detail_json: "{}".into(),
            })
            .expect("queued");
        if i % 100 == 99 {
            store.flush().expect("flush");
        }
    }
    store.flush().expect("flush");
    let (requests, audit) = store.counts().expect("counts");
    assert_eq!((requests, audit), (100, 100));
    let newest = store.requests(1).expect("rows");
    assert_eq!(newest[0].request_id, "999");
}

#[test]
fn file_stores_keep_everything_by_default() {
    assert_eq!(StoreConfig::at_path("/tmp/x.db").retain_rows, None);
    assert_eq!(StoreConfig::in_memory().retain_rows, Some(5_000));
}

#[test]
fn a_large_batch_is_written_and_trimmed_in_pieces_and_nothing_is_lost() {
    // 1,000 rows and a long interval: committed 128 rows at a time (the rest on the flush), each
    // commit followed by a trim of at most 128 rows per statement.
    let mut cfg = StoreConfig::in_memory();
    cfg.retain_rows = Some(100);
    cfg.flush_interval_ms = 60_000;
    let store = Store::open(cfg).expect("open");
    for i in 0..1_000u64 {
        store
            .record_request(RequestRow {
                request_id: i.to_string(),
                cost_micros: 1,
                ..Default::default()
            })
            .expect("queued");
    }
    store.flush().expect("flush");
    let stats = store.stats();
    assert_eq!(
        (stats.committed, stats.failed, stats.pending),
        (1_000, 0, 0)
    );
    assert_eq!(stats.batches, 8, "1,000 rows in commits of at most 128");
    assert_eq!(store.counts().expect("counts"), (100, 0));
    let kept = store.requests(1_000).expect("rows");
    let ids: Vec<u64> = kept.iter().map(|r| r.request_id.parse().unwrap()).collect();
    assert_eq!(ids.len(), 100);
    assert!(ids.iter().all(|id| (900..1_000).contains(id)), "{ids:?}");

    // Without retention every row stays.
    let mut cfg = StoreConfig::in_memory();
    cfg.retain_rows = None;
    let store = Store::open(cfg).expect("open");
    for i in 0..700u64 {
        store
            .record_request(RequestRow {
                request_id: i.to_string(),
                ..Default::default()
            })
            .expect("queued");
    }
    store.flush().expect("flush");
    assert_eq!(store.counts().expect("counts"), (700, 0));
}
