//! Errors of the state store.

use std::path::PathBuf;

/// Everything that can go wrong opening, writing or reading the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// SQLite refused an operation.
    #[error("state database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The directory for the database file could not be created.
    #[error("cannot create the state directory {path}: {source}")]
    CreateDir {
        /// Directory that could not be created.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// The file was written by a newer build with a schema this one does not know.
    #[error("state database schema version {found} is newer than this build supports ({supported}); upgrade iron-cage or point statePath at another file")]
    SchemaTooNew {
        /// `PRAGMA user_version` found in the file.
        found: i64,
        /// Newest version this build can migrate to.
        supported: i64,
    },
    /// The write queue was full, so the row was dropped (the drop is counted in `StoreStats::dropped`).
    #[error("state write queue is full ({max_queue} rows waiting for the disk); the row was dropped; raise maxQueue or check the disk")]
    QueueFull {
        /// Configured queue bound.
        max_queue: usize,
    },
    /// The writer thread has stopped (the store was closed or the thread died).
    #[error("state store is closed")]
    Closed,
    /// The writer thread could not commit a batch; the message is SQLite's.
    #[error("state writer could not commit: {0}")]
    Write(String),
    /// The writer thread could not be started.
    #[error("cannot start the state writer thread: {0}")]
    Spawn(std::io::Error),
}
