//! A writer killed with SIGKILL leaves a clean database that lost at most one flush interval.
//!
//! The test re-runs its own binary as the child (selected by an environment variable): the child
//! records rows as fast as it can and prints `queued <seq> <ts_ms>` for each accepted row and
//! `committed <rows> <ts_ms>` whenever the committed watermark moves. The parent kills it after ~1 s.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use iron_runtime_state::{now_ms, RequestRow, Store, StoreConfig};

const CHILD_ENV: &str = "IRON_STATE_CRASH_CHILD_DB";
const TEST_NAME: &str = "sigkill_loses_at_most_one_flush_interval";
const FLUSH_INTERVAL_MS: u64 = 100;
/// Slack for the commit itself and scheduling, on top of the flush interval.
const SLACK_MS: u64 = 50;

#[test]
fn sigkill_loses_at_most_one_flush_interval() {
    match std::env::var_os(CHILD_ENV) {
        Some(path) => run_child(path.into()),
        None => run_parent(),
    }
}

fn run_child(path: std::path::PathBuf) {
    let cfg = StoreConfig {
        flush_interval_ms: FLUSH_INTERVAL_MS,
        ..StoreConfig::at_path(path)
    };
    let store = Store::open(cfg).expect("child opens store");
    let mut out = std::io::stdout().lock();
    let mut last_committed = 0;
    for seq in 1u64.. {
        let ts = now_ms();
        let row = RequestRow {
            ts_ms: ts,
            agent_id: "crash".into(),
            request_id: seq.to_string(),
            cost_micros: 1,
            ..RequestRow::default()
        };
        if store.record_request(row).is_ok() {
            let _ = writeln!(out, "queued {seq} {ts}");
        }
        let committed = store.stats().committed;
        if committed != last_committed {
            last_committed = committed;
            let _ = writeln!(out, "committed {committed} {}", now_ms());
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn run_parent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("crash.db");
    let exe = std::env::current_exe().expect("own test binary");
    let mut child = Command::new(exe)
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let (line_tx, line_rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });

    // Start the clock once the child is really writing, so it writes for about a second.
    let mut lines = Vec::new();
    loop {
        let line = line_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("child started writing");
        let started = line.starts_with("committed ");
        lines.push(line);
        if started {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(1_000));
    let kill_ms = now_ms();
    child.kill().expect("SIGKILL child");
    let _ = child.wait();
    reader.join().expect("reader thread");
    lines.extend(line_rx.try_iter());

    let mut queued: HashMap<u64, u64> = HashMap::new();
    let mut watermarks = 0;
    for line in &lines {
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some("queued"), Some(seq), Some(ts)) => {
                if let (Ok(seq), Ok(ts)) = (seq.parse(), ts.parse()) {
                    queued.insert(seq, ts);
                }
            }
            (Some("committed"), Some(_), Some(_)) => watermarks += 1,
            _ => {}
        }
    }
    assert!(
        queued.len() > 100,
        "child queued only {} rows",
        queued.len()
    );

    let conn = rusqlite::Connection::open(&path).expect("open after crash");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    drop(conn);

    let store = Store::open(StoreConfig::at_path(&path)).expect("store opens after crash");
    let present: HashMap<u64, u64> = store
        .requests_for_agent("crash")
        .expect("rows")
        .into_iter()
        .filter_map(|r| r.request_id.parse().ok().map(|seq| (seq, r.ts_ms)))
        .collect();
    let lost: Vec<(u64, u64)> = queued
        .iter()
        .filter(|(seq, _)| !present.contains_key(seq))
        .map(|(&seq, &ts)| (seq, ts))
        .collect();
    let oldest_lost_age = lost.iter().map(|&(_, ts)| kill_ms.saturating_sub(ts)).max();
    let newest_kept_age = present.values().map(|&ts| kill_ms.saturating_sub(ts)).min();
    println!(
        "crash test: {} queued, {} committed ({watermarks} watermarks), {} lost; \
         loss window {} ms (oldest lost row queued that long before SIGKILL), newest kept row {} ms old",
        queued.len(),
        present.len(),
        lost.len(),
        oldest_lost_age.unwrap_or(0),
        newest_kept_age.unwrap_or(0),
    );
    assert!(
        oldest_lost_age.unwrap_or(0) <= FLUSH_INTERVAL_MS + SLACK_MS,
        "a row queued {} ms before the kill was lost (bound {} ms)",
        oldest_lost_age.unwrap_or(0),
        FLUSH_INTERVAL_MS + SLACK_MS
    );
    // Everything committed was something the child had queued, not garbage.
    assert!(present.keys().all(|seq| *seq >= 1));
    assert_eq!(
        store.spent_for_agent("crash").expect("spent"),
        present.len() as u64
    );
}
