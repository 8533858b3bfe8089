//! Store configuration.

use std::path::PathBuf;

/// How and where the state store keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Database file; `None` keeps everything in memory for the life of the store.
    pub path: Option<PathBuf>,
    /// How long the writer collects rows before committing them (it commits sooner when 128 rows are waiting).
    pub flush_interval_ms: u64,
    /// When true the router waits for the commit ack (see `Store::strict_ack`) before completing a response.
    pub strict: bool,
    /// Rows accepted but not yet committed, at most; further rows are dropped and counted.
    pub max_queue: usize,
    /// Keep at most this many of the newest request rows and audit rows (older ones are deleted).
    /// In-memory stores keep 5,000 by default so that a long-running router does not grow
    /// without bound (each request and audit row costs ~350 bytes there, indexes included); file
    /// stores keep everything unless set.
    pub retain_rows: Option<u64>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: None,
            flush_interval_ms: 100,
            strict: false,
            max_queue: 100_000,
            retain_rows: Some(5_000),
        }
    }
}

impl StoreConfig {
    /// An in-memory store with default settings.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// A file-backed store at `path` with default settings.
    pub fn at_path(path: impl Into<PathBuf>) -> Self {
        Self {
            path: Some(path.into()),
            retain_rows: None,
            ..Self::default()
        }
    }
}
