//! Errors of the state store.

use std::path::{Path, PathBuf};

use rusqlite::ErrorCode;

/// What to do about a state file that is damaged or is not a state file at all.
const MOVE_AWAY: &str = "restore it from a backup, or move it away (with its -wal and -shm files, \
    if any) to start a new state file; a new file starts spent again at $0";

/// Everything that can go wrong opening, writing or reading the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// SQLite refused an operation.
    #[error("state database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The directory for the database file could not be created.
    #[error("cannot create the directory {path} for the state file: {source}; create it, or choose a path in a directory this process can write")]
    CreateDir {
        /// Directory that could not be created.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// The file exists but is not a SQLite database (another kind of file, or its header is gone).
    #[error("{} is not a SQLite state file (SQLite: {detail}); point statePath at another file, or if this was the state file, {MOVE_AWAY}", path.display())]
    NotADatabase {
        /// The file.
        path: PathBuf,
        /// SQLite's message.
        detail: String,
    },
    /// The file is a SQLite database with damaged pages (`PRAGMA quick_check` or a read failed).
    #[error("the state file {} is damaged (SQLite: {detail}), so the spent it records cannot be read; {MOVE_AWAY}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What SQLite reported (the first problem `quick_check` found, or the read error).
        detail: String,
    },
    /// The file (or its directory) cannot be written by this process.
    #[error("the state file {} is read-only for this process (SQLite: {detail}); the router writes its ledger there: make the file and its directory writable (SQLite creates its -wal and -shm files next to it), or point statePath at another file", path.display())]
    ReadOnly {
        /// The file.
        path: PathBuf,
        /// SQLite's message.
        detail: String,
    },
    /// The file could not be opened or created.
    #[error("cannot open or create the state file {} ({detail}); statePath must name a file (not a directory) in a directory this process can write, where SQLite also creates its -wal and -shm files", path.display())]
    CannotOpen {
        /// The file.
        path: PathBuf,
        /// Why, in SQLite's or the system's words.
        detail: String,
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

impl StateError {
    /// An SQLite error met on the file at `path`, told in terms of the file: not a database,
    /// damaged, read-only or unopenable get their own variant (with the fix); others stay `Sqlite`.
    pub(crate) fn on_file(path: &Path, e: rusqlite::Error) -> StateError {
        let (code, detail) = match &e {
            rusqlite::Error::SqliteFailure(f, msg) => {
                (Some(f.code), msg.clone().unwrap_or_else(|| f.to_string()))
            }
            _ => (None, e.to_string()),
        };
        let path = path.to_path_buf();
        match code {
            Some(ErrorCode::NotADatabase) => StateError::NotADatabase { path, detail },
            Some(ErrorCode::DatabaseCorrupt) => StateError::Damaged { path, detail },
            Some(ErrorCode::ReadOnly) => StateError::ReadOnly { path, detail },
            Some(ErrorCode::CannotOpen) | Some(ErrorCode::PermissionDenied) => {
                let detail = if path.is_dir() {
                    "it is a directory".to_string()
                } else {
                    detail
                };
                StateError::CannotOpen { path, detail }
            }
            _ => StateError::Sqlite(e),
        }
    }

    /// An error met on the file at `path`, told in terms of the file: SQLite's "not a database",
    /// "malformed", "read-only" and "cannot open" become their own variants (each with the fix);
    /// other errors are returned as they are.
    pub fn about_file(self, path: &Path) -> StateError {
        match self {
            StateError::Sqlite(e) => StateError::on_file(path, e),
            other => other,
        }
    }
}
