//! Sinks that collect what they receive, for assertions.

use std::sync::{Arc, Mutex};

use iron_telemetry::{
    init, LevelFilter, LogFormat, LogRecord, Sink, TelemetryConfig, TelemetryHandle,
};

/// Records collected by a `Sink::Records` callback.
pub type Records = Arc<Mutex<Vec<LogRecord>>>;
/// Lines collected by a `Sink::Lines` callback.
pub type Lines = Arc<Mutex<Vec<String>>>;

/// Registers a record-collecting sink.
pub fn record_sink(level: LevelFilter) -> (TelemetryHandle, Records) {
    let store: Records = Arc::default();
    let sink_store = store.clone();
    let handle = init(TelemetryConfig {
        level,
        format: LogFormat::Text,
        sink: Sink::Records(Arc::new(move |r| {
            sink_store.lock().unwrap_or_else(|p| p.into_inner()).push(r)
        })),
    });
    (handle, store)
}

/// Registers a line-collecting sink in `format`.
pub fn line_sink(level: LevelFilter, format: LogFormat) -> (TelemetryHandle, Lines) {
    let store: Lines = Arc::default();
    let sink_store = store.clone();
    let handle = init(TelemetryConfig {
        level,
        format,
        sink: Sink::Lines(Arc::new(move |l| {
            sink_store
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(l.to_string())
        })),
    });
    (handle, store)
}

/// Records whose target is `target` (tests share one process-wide subscriber).
pub fn for_target(records: &Records, target: &str) -> Vec<LogRecord> {
    records
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|r| r.target == target)
        .cloned()
        .collect()
}
