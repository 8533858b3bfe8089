//! A file that cannot serve as the state store is refused with an error that names the file, what
//! is wrong with it and what to do, not SQLite's bare message.

use iron_runtime_state::{RequestRow, StateError, Store, StoreConfig};

#[test]
fn a_file_that_is_not_a_database_is_named_with_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notes.db");
    std::fs::write(
        &path,
        "this is not a sqlite database, just text ".repeat(100),
    )
    .expect("write");
    let err = Store::open(StoreConfig::at_path(&path)).expect_err("refused");
    assert!(matches!(err, StateError::NotADatabase { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("is not a SQLite state file"), "{text}");
    assert!(text.contains("point statePath at another file"), "{text}");
    assert!(text.contains("spent again at $0"), "{text}");
}

/// Overwrites pages 5 to 8 (of 4 KiB) with garbage, leaving the header and the schema intact.
fn damage_pages(path: &std::path::Path) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open for damage");
    f.seek(SeekFrom::Start(4 * 4096)).expect("seek");
    f.write_all(&[0xa5; 4 * 4096]).expect("damage");
}

#[test]
fn damaged_pages_fail_the_quick_check_and_the_spent_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.db");
    {
        let store = Store::open(StoreConfig::at_path(&path)).expect("open");
        for n in 0..300u64 {
            store
                .record_request(RequestRow {
                    agent_id: "victim".into(),
                    request_id: n.to_string(),
                    model: "gpt-4o".into(),
                    cost_micros: 230,
                    ..RequestRow::default()
                })
                .expect("row");
        }
        store.close().expect("close");
    }
    // Fold the WAL into the file, as a checkpoint would, then damage it.
    rusqlite::Connection::open(&path)
        .expect("raw")
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
    assert!(std::fs::metadata(&path).expect("size").len() > 8 * 4096);
    damage_pages(&path);

    let store = Store::open(StoreConfig::at_path(&path)).expect("the schema page still reads");
    let err = store.quick_check().expect_err("damage found");
    assert!(matches!(err, StateError::Damaged { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("is damaged"), "{text}");
    assert!(text.contains("restore it from a backup"), "{text}");
    // The spent read fails too: it is an error, never a sum of what could be read.
    assert!(store.spent_for_agent("victim").is_err());
}

#[test]
fn an_empty_path_is_refused() {
    let err = Store::open(StoreConfig::at_path("")).expect_err("refused");
    assert!(matches!(err, StateError::CannotOpen { .. }), "{err:?}");
    assert!(err.to_string().contains("the path is empty"), "{err}");
}

#[test]
fn a_missing_directory_is_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("new").join("sub").join("s.db");
    let store = Store::open(StoreConfig::at_path(&path)).expect("opens");
    store.close().expect("close");
    assert!(path.is_file());
}

#[cfg(unix)]
fn running_as_root() -> bool {
    // Permissions do not stop root: the read-only cases cannot happen there.
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

#[cfg(unix)]
#[test]
fn a_read_only_file_or_directory_is_named_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    if running_as_root() {
        eprintln!("skipped: permissions do not apply to root");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // An existing database the process may not write.
    let file = dir.path().join("ro.db");
    Store::open(StoreConfig::at_path(&file))
        .expect("create")
        .close()
        .expect("close");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o444)).expect("chmod");
    let err = Store::open(StoreConfig::at_path(&file)).expect_err("read-only file");
    assert!(matches!(err, StateError::ReadOnly { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&file.display().to_string()), "{text}");
    assert!(
        text.contains("make the file and its directory writable"),
        "{text}"
    );
    // A new file in a directory the process may not write.
    let ro_dir = dir.path().join("ro");
    std::fs::create_dir(&ro_dir).expect("mkdir");
    std::fs::set_permissions(&ro_dir, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    let err = Store::open(StoreConfig::at_path(ro_dir.join("s.db"))).expect_err("read-only dir");
    assert!(
        matches!(
            err,
            StateError::CannotOpen { .. } | StateError::ReadOnly { .. }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("s.db"), "{err}");
    std::fs::set_permissions(&ro_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod back");
}
