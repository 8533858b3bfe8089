//! The process-wide list of sinks, swapped as a whole so dispatch never holds a lock.

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, LazyLock, RwLock};

use tracing::level_filters::LevelFilter;
use tracing::Level;

use crate::record::{LogFormat, LogRecord, Rendered};

/// Callback receiving each record as a structured value.
pub type RecordCallback = Arc<dyn Fn(LogRecord) + Send + Sync>;
/// Callback receiving each record already rendered as one line (no trailing newline).
pub type LineCallback = Arc<dyn Fn(&str) + Send + Sync>;

/// Where records go.
#[derive(Clone)]
pub enum Sink {
    /// Rendered lines on the process's stderr.
    Stderr,
    /// Structured records (the napi layer forwards these to JS).
    Records(RecordCallback),
    /// Rendered lines, in the configured format.
    Lines(LineCallback),
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Sink::Stderr => "Sink::Stderr",
            Sink::Records(_) => "Sink::Records",
            Sink::Lines(_) => "Sink::Lines",
        })
    }
}

#[derive(Debug)]
struct Entry {
    id: u64,
    level: LevelFilter,
    format: LogFormat,
    sink: Sink,
}

type SinkList = Arc<Vec<Arc<Entry>>>;

static SINKS: LazyLock<RwLock<SinkList>> = LazyLock::new(|| RwLock::new(Arc::new(Vec::new())));
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Most verbose level any sink wants, encoded by `encode`; OFF when there are no sinks.
static MAX_LEVEL: AtomicU8 = AtomicU8::new(0);

fn encode(level: LevelFilter) -> u8 {
    match level.into_level() {
        None => 0,
        Some(Level::ERROR) => 1,
        Some(Level::WARN) => 2,
        Some(Level::INFO) => 3,
        Some(Level::DEBUG) => 4,
        Some(_) => 5,
    }
}

fn decode(code: u8) -> LevelFilter {
    match code {
        0 => LevelFilter::OFF,
        1 => LevelFilter::ERROR,
        2 => LevelFilter::WARN,
        3 => LevelFilter::INFO,
        4 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    }
}

/// The most verbose level any registered sink accepts.
pub(crate) fn max_level() -> LevelFilter {
    decode(MAX_LEVEL.load(Ordering::Acquire))
}

fn snapshot() -> SinkList {
    SINKS.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Applies `change` to a copy of the list, publishes it, and re-tells tracing which levels matter.
fn update(change: impl FnOnce(&mut Vec<Arc<Entry>>)) {
    {
        let mut guard = SINKS.write().unwrap_or_else(|p| p.into_inner());
        let mut list: Vec<Arc<Entry>> = guard.as_ref().clone();
        change(&mut list);
        let max = list.iter().map(|e| encode(e.level)).max().unwrap_or(0);
        MAX_LEVEL.store(max, Ordering::Release);
        *guard = Arc::new(list);
    }
    // Outside the lock: this calls back into every subscriber's callsite registration.
    tracing::callsite::rebuild_interest_cache();
}

/// Adds a sink and returns its id.
pub(crate) fn add(sink: Sink, level: LevelFilter, format: LogFormat) -> u64 {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    update(|list| {
        list.push(Arc::new(Entry {
            id,
            level,
            format,
            sink,
        }))
    });
    id
}

/// Removes a sink (no-op if already gone).
pub(crate) fn remove(id: u64) {
    update(|list| list.retain(|e| e.id != id));
}

/// Changes one sink's level and/or format.
pub(crate) fn reconfigure(id: u64, level: Option<LevelFilter>, format: Option<LogFormat>) {
    update(|list| {
        for entry in list.iter_mut().filter(|e| e.id == id) {
            *entry = Arc::new(Entry {
                id,
                level: level.unwrap_or(entry.level),
                format: format.unwrap_or(entry.format),
                sink: entry.sink.clone(),
            });
        }
    });
}

/// Number of registered sinks.
pub(crate) fn count() -> usize {
    snapshot().len()
}

/// Sends a redacted record to every sink whose level admits it.
pub(crate) fn dispatch(rendered: &Rendered) {
    let level = rendered.record.level;
    let mut text: Option<String> = None;
    let mut json: Option<String> = None;
    for entry in snapshot().iter().filter(|e| level <= e.level) {
        let mut line = |format: LogFormat| -> String {
            let slot = match format {
                LogFormat::Text => &mut text,
                LogFormat::Json => &mut json,
            };
            slot.get_or_insert_with(|| rendered.line(format)).clone()
        };
        // A panicking callback (e.g. a closed JS bridge) must not take the logging thread down.
        let _ = catch_unwind(AssertUnwindSafe(|| match &entry.sink {
            Sink::Stderr => {
                let mut out = line(entry.format);
                out.push('\n');
                let _ = std::io::stderr().lock().write_all(out.as_bytes());
            }
            Sink::Lines(callback) => callback(&line(entry.format)),
            Sink::Records(callback) => callback(rendered.record.clone()),
        }));
    }
}
