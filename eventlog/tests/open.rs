#![allow(clippy::unwrap_used)]
//! Opening stores: what is refused, and how clearly.

mod support;

use std::process::Command;

use backchannel_eventlog::{ExpectedVersion, Log, OpenError, SledEventLog, StoreSpec};
use support::{conversation, meta, opened, stream};

const CHILD_ENV: &str = "BACKCHANNEL_EVENTLOG_OPEN_CHILD_STORE";

#[test]
fn a_missing_or_empty_directory_becomes_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("a/b/store");
    SledEventLog::open(&missing).unwrap().close().unwrap();
    assert!(missing.join("BACKCHANNEL_STORE").is_file());
    let empty = tempfile::tempdir().unwrap();
    SledEventLog::open(empty.path()).unwrap().close().unwrap();
    // And it opens again.
    SledEventLog::open(empty.path()).unwrap().close().unwrap();
}

#[test]
fn a_foreign_directory_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("thesis.tex"), "precious").unwrap();
    let err = SledEventLog::open(dir.path()).err().unwrap();
    assert!(matches!(err, OpenError::NotAStore { .. }), "{err}");
    assert!(
        err.to_string().contains("is not a Backchannel store"),
        "{err}"
    );
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(
        entries.len(),
        1,
        "nothing was written into the foreign directory"
    );
}

#[test]
fn a_file_is_not_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let err = SledEventLog::open(&file).err().unwrap();
    assert!(matches!(err, OpenError::NotADirectory { .. }), "{err}");
}

#[test]
fn a_store_of_another_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    SledEventLog::open(dir.path()).unwrap().close().unwrap();
    std::fs::write(
        dir.path().join("BACKCHANNEL_STORE"),
        "backchannel-store\nformat 99\n",
    )
    .unwrap();
    let err = SledEventLog::open(dir.path()).err().unwrap();
    assert!(matches!(err, OpenError::UnsupportedFormat { .. }), "{err}");
    assert!(err.to_string().contains("format 99"), "{err}");
}

/// Format 1 (one sled key per event plus index keys) was never deployed; it
/// is refused rather than migrated.
#[test]
fn a_store_of_format_1_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    SledEventLog::open(dir.path()).unwrap().close().unwrap();
    std::fs::write(
        dir.path().join("BACKCHANNEL_STORE"),
        "backchannel-store\nformat 1\n",
    )
    .unwrap();
    let err = SledEventLog::open(dir.path()).err().unwrap();
    assert!(
        matches!(err, OpenError::UnsupportedFormat { supported: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("format 1"), "{err}");
}

#[test]
fn a_store_in_use_in_this_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = SledEventLog::open(dir.path()).unwrap();
    let err = SledEventLog::open(dir.path()).err().unwrap();
    assert!(matches!(err, OpenError::StoreInUse { .. }), "{err}");
    assert!(err.to_string().contains("is in use"), "{err}");
    log.close().unwrap();
    SledEventLog::open(dir.path()).unwrap();
}

#[test]
fn a_store_in_use_by_another_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _log = SledEventLog::open(dir.path()).unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_expects_store_in_use",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "the child process could open a store in use"
    );
}

/// Run by `a_store_in_use_by_another_process_is_refused` in a child process;
/// does nothing when run directly.
#[test]
fn child_expects_store_in_use() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let err = SledEventLog::open(&path).err().unwrap();
    assert!(matches!(err, OpenError::StoreInUse { .. }), "{err}");
}

#[tokio::test]
async fn a_store_with_garbage_sled_files_gives_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let log = SledEventLog::open(dir.path()).unwrap();
    for n in 0..50 {
        log.append(
            stream(n),
            ExpectedVersion::Any,
            vec![opened(conversation(n))],
            meta(),
        )
        .await
        .unwrap();
    }
    assert_eq!(log.head(), 50);
    log.close().unwrap();

    let db = dir.path().join("sled/db");
    let len = std::fs::metadata(&db).unwrap().len() as usize;
    let garbage: Vec<u8> = (0..len).map(|i| (i * 7 + 13) as u8).collect();
    std::fs::write(&db, garbage).unwrap();
    std::fs::write(dir.path().join("sled/conf"), b"garbage").unwrap();
    for entry in std::fs::read_dir(dir.path().join("sled")).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("snap.")
        {
            std::fs::write(path, b"garbage").unwrap();
        }
    }
    let result = std::panic::catch_unwind(|| SledEventLog::open(dir.path()));
    let err = result.expect("open must not panic").err().unwrap();
    assert!(
        matches!(err, OpenError::Corrupt { .. } | OpenError::Storage { .. }),
        "{err}"
    );
    println!("garbage store: {err}");
}

/// A store string names sled by path and PostgreSQL by URL; an empty one is
/// refused, and a PostgreSQL URL is refused clearly (not as a directory)
/// while that engine is not built, creating nothing.
#[test]
fn a_store_spec_names_its_engine_and_hides_url_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let spec: StoreSpec = path.to_str().unwrap().parse().unwrap();
    assert_eq!(spec, StoreSpec::sled(&path));
    assert_eq!(
        spec.default_checkpoint_dir(),
        Some(path.join("checkpoints"))
    );
    let log = Log::open(&spec).unwrap();
    assert_eq!(log.head(), 0);
    log.close().unwrap();

    for url in [
        "postgres://app:hunter2@db.example:5432/backchannel",
        "PostgreSQL://app:hunter2@db.example/backchannel",
        "postgres://db.example/backchannel?user=app&password=hunter2",
        "postgres://db.example/backchannel?password=hun%40ter2@x&user=app",
    ] {
        let spec = StoreSpec::parse(url).unwrap();
        assert!(matches!(spec, StoreSpec::Postgres(_)), "{url}");
        assert_eq!(spec.default_checkpoint_dir(), None);
        let shown = spec.to_string();
        assert!(
            !shown.contains("hunter2") && !shown.contains("hun%40ter2"),
            "{shown}"
        );
        assert!(shown.contains("db.example"), "{shown}");
        let err = Log::open(&spec).unwrap_err();
        // No such server: a storage error naming the target, no password.
        assert!(matches!(err, OpenError::Storage { .. }), "{err}");
        assert!(err.to_string().contains("db.example"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(!err.to_string().contains("hun%40ter2"), "{err}");
    }
    assert!(!std::path::Path::new("postgres:").exists());

    for empty in ["", "  "] {
        let err = StoreSpec::parse(empty).unwrap_err();
        assert!(matches!(err, OpenError::BadStoreSpec { .. }), "{err}");
    }
}
