#![allow(clippy::unwrap_used)]
//! Store integrity (SPEC section 7, "Integrity"): the log is never served
//! shorter or different than what was acknowledged. The store records its
//! committed head apart from sled's data; a log that ends before it, or that
//! differs at it, is refused at open, naming both positions.
//!
//! The bit-flip test flips bytes in copies of a stopped store's sled files:
//! every flip is either harmless (the same log, record for record) or refused.
//! It runs `BACKCHANNEL_BITFLIP_FLIPS` flips per store (default 40) from the
//! seed `BACKCHANNEL_BITFLIP_SEED` (default: a fixed one); for a longer run:
//!
//! ```sh
//! BACKCHANNEL_BITFLIP_FLIPS=2000 cargo test -p backchannel-eventlog --test integrity -- --nocapture
//! ```

mod support;

use std::path::Path;

use backchannel_domain::events::Event;
use backchannel_eventlog::{ExpectedVersion, OpenError, SledEventLog};
use rand::{Rng, SeedableRng};
use support::{conversation, message, meta, opened, stream};

/// Appends `appends` appends over a few conversations (some of two events),
/// so the log has several streams and chunks.
async fn append_some(log: &SledEventLog, appends: u64, offset: u64) {
    for n in offset..offset + appends {
        let id = conversation(n % 5);
        let version = log.read_stream(stream(n % 5), 1).await.unwrap().len() as u64;
        let events: Vec<Event> = if version == 0 {
            vec![opened(id)]
        } else {
            (0..1 + n % 2).map(|k| message(id, n * 10 + k)).collect()
        };
        log.append(
            stream(n % 5),
            ExpectedVersion::Exact(version),
            events,
            meta(),
        )
        .await
        .unwrap();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every stored record, in order.
fn records(log: &SledEventLog) -> Vec<Vec<u8>> {
    log.raw_records(1, log.head())
        .map(|r| r.unwrap().1)
        .collect()
}

/// A store whose sled files were replaced by an older copy of themselves
/// (a restored backup, a lost write): its log ends before the acknowledged
/// head, and opening it is refused, naming both positions.
#[tokio::test]
async fn a_store_whose_sled_files_went_back_in_time_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let log = SledEventLog::open(&store).unwrap();
    append_some(&log, 10, 0).await;
    let old_head = log.head();
    log.close().unwrap();
    let old_sled = dir.path().join("old-sled");
    copy_dir(&store.join("sled"), &old_sled);

    let log = SledEventLog::open(&store).unwrap();
    append_some(&log, 10, 10).await;
    let new_head = log.head();
    log.close().unwrap();
    assert!(new_head > old_head);

    std::fs::remove_dir_all(store.join("sled")).unwrap();
    copy_dir(&old_sled, &store.join("sled"));
    let err = SledEventLog::open(&store)
        .err()
        .expect("the shortened log was opened");
    let text = err.to_string();
    assert!(
        matches!(err, OpenError::HeadMismatch { head, log_end, .. } if head == new_head && log_end == old_head),
        "{err}"
    );
    assert!(
        text.contains(&format!("position {new_head}"))
            && text.contains(&format!("position {old_head}")),
        "the error names both positions: {text}"
    );
    // The replaying opens (the server's) refuse it the same way, before
    // anything could be served.
    let err = SledEventLog::open_replaying(&store, 1, |_| Ok::<(), std::io::Error>(()))
        .err()
        .expect("open_replaying served a shortened log");
    assert!(matches!(err, OpenError::HeadMismatch { .. }), "{err}");
    // And so does the replay tool's snapshot open.
    let scratch = tempfile::tempdir().unwrap();
    let err = SledEventLog::open_snapshot(&store, scratch.path().join("copy"))
        .err()
        .expect("the snapshot served a shortened log");
    assert!(matches!(err, OpenError::HeadMismatch { .. }), "{err}");
}

/// The record at the recorded head is not the one acknowledged (a log of the
/// same length but different content): refused too.
#[tokio::test]
async fn a_store_whose_record_at_the_head_differs_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    for store in [&a, &b] {
        let log = SledEventLog::open(store).unwrap();
        append_some(&log, 8, 0).await;
        log.close().unwrap();
    }
    // b's sled files under a's head record: same length, other records.
    std::fs::remove_dir_all(a.join("sled")).unwrap();
    copy_dir(&b.join("sled"), &a.join("sled"));
    let err = SledEventLog::open(&a)
        .err()
        .expect("a different log was opened");
    assert!(matches!(err, OpenError::HeadMismatch { .. }), "{err}");
    assert!(err.to_string().contains("hash"), "{err}");
}

/// A crash after sled's fsync and before the head record's write leaves a log
/// longer than its head record: those records were durable, only never
/// acknowledged. The store opens, with every record, and the head record
/// catches up.
#[tokio::test]
async fn a_log_longer_than_its_head_record_opens_and_the_head_record_advances() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let log = SledEventLog::open(&store).unwrap();
    append_some(&log, 6, 0).await;
    log.close().unwrap();
    let old_head_file = std::fs::read(store.join("HEAD")).unwrap();

    let log = SledEventLog::open(&store).unwrap();
    append_some(&log, 6, 6).await;
    let expected = records(&log);
    log.close().unwrap();
    std::fs::write(store.join("HEAD"), &old_head_file).unwrap();

    let log = SledEventLog::open(&store).unwrap();
    assert_eq!(records(&log), expected);
    log.close().unwrap();
    // The head record now names the log's end: going back is refused.
    assert_ne!(std::fs::read(store.join("HEAD")).unwrap(), old_head_file);
}

/// A store written before the head record existed (format 2, no `HEAD`) still
/// opens; its first open records the head, and from then on it is checked.
#[tokio::test]
async fn a_store_without_a_head_record_gets_one_at_its_first_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let log = SledEventLog::open(&store).unwrap();
    append_some(&log, 6, 0).await;
    let expected = records(&log);
    log.close().unwrap();
    let old_sled = dir.path().join("old-sled");
    copy_dir(&store.join("sled"), &old_sled);
    std::fs::remove_file(store.join("HEAD")).unwrap();
    std::fs::write(
        store.join("BACKCHANNEL_STORE"),
        "backchannel-store\nformat 2\n",
    )
    .unwrap();

    let log = SledEventLog::open(&store).unwrap();
    assert_eq!(records(&log), expected);
    append_some(&log, 4, 6).await;
    log.close().unwrap();
    assert!(store.join("HEAD").is_file());
    assert_eq!(
        std::fs::read_to_string(store.join("BACKCHANNEL_STORE")).unwrap(),
        "backchannel-store\nformat 3\n"
    );
    std::fs::remove_dir_all(store.join("sled")).unwrap();
    copy_dir(&old_sled, &store.join("sled"));
    let err = SledEventLog::open(&store).err().unwrap();
    assert!(matches!(err, OpenError::HeadMismatch { .. }), "{err}");
}

/// A format-3 store that lost its head record is refused, not trusted.
#[tokio::test]
async fn a_store_that_lost_its_head_record_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = SledEventLog::open(dir.path()).unwrap();
    append_some(&log, 3, 0).await;
    log.close().unwrap();
    std::fs::remove_file(dir.path().join("HEAD")).unwrap();
    let err = SledEventLog::open(dir.path()).err().unwrap();
    assert!(matches!(err, OpenError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("HEAD"), "{err}");
}

/// One damaged slot of the head record (a torn write) leaves the other one,
/// and the store opens; both damaged is refused.
#[tokio::test]
async fn a_torn_head_record_falls_back_to_its_other_slot() {
    let dir = tempfile::tempdir().unwrap();
    let log = SledEventLog::open(dir.path()).unwrap();
    append_some(&log, 5, 0).await;
    let expected = records(&log);
    log.close().unwrap();
    let path = dir.path().join("HEAD");
    let good = std::fs::read(&path).unwrap();
    for slot in 0..2 {
        let mut torn = good.clone();
        let half = torn.len() / 2;
        torn[slot * half + 20] ^= 0x40;
        std::fs::write(&path, &torn).unwrap();
        let log = SledEventLog::open(dir.path()).unwrap();
        assert_eq!(records(&log), expected, "slot {slot} torn");
        log.close().unwrap();
    }
    let mut both = good.clone();
    let half = both.len() / 2;
    both[20] ^= 0x40;
    both[half + 20] ^= 0x40;
    std::fs::write(&path, &both).unwrap();
    let err = SledEventLog::open(dir.path()).err().unwrap();
    assert!(err.to_string().contains("HEAD"), "{err}");
}

fn flips() -> usize {
    std::env::var("BACKCHANNEL_BITFLIP_FLIPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40)
}

fn seed() -> u64 {
    std::env::var("BACKCHANNEL_BITFLIP_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x0b17_f11b)
}

/// The non-empty files under `sled/`, with the offsets of their written
/// (non-zero) bytes.
fn sled_files(store: &Path) -> Vec<(std::path::PathBuf, Vec<usize>)> {
    let mut out = Vec::new();
    let mut dirs = vec![store.join("sled")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                dirs.push(entry.path());
                continue;
            }
            let bytes = std::fs::read(entry.path()).unwrap();
            let written: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] != 0).collect();
            if !written.is_empty() {
                let relative = entry.path().strip_prefix(store).unwrap().to_owned();
                out.push((relative, written));
            }
        }
    }
    out.sort();
    out
}

/// Flips bytes in copies of the stopped store at `store` and checks each copy
/// is either refused or serves exactly `expected`.
fn flip_and_check(store: &Path, expected: &[Vec<u8>], label: &str) {
    let files = sled_files(store);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed() ^ label.len() as u64);
    let (mut harmless, mut refused) = (0, 0);
    for flip in 0..flips() {
        // Mostly the `db` file (the log of records), sometimes another one.
        let (file, written) = match files.iter().find(|(f, _)| f.ends_with("db")) {
            Some(db) if rng.random_bool(0.8) => db,
            _ => &files[rng.random_range(0..files.len())],
        };
        let offset = written[rng.random_range(0..written.len())];
        let mask: u8 = 1 << rng.random_range(0..8);
        let scratch = tempfile::tempdir().unwrap();
        let copy = scratch.path().join("store");
        copy_dir(store, &copy);
        let target = copy.join(file);
        let mut bytes = std::fs::read(&target).unwrap();
        bytes[offset] ^= mask;
        std::fs::write(&target, &bytes).unwrap();
        let what = format!(
            "{label}: flip {flip}: byte {offset} of {} ^ {mask:#04x}",
            file.display()
        );
        match SledEventLog::open(&copy) {
            Err(err) => {
                refused += 1;
                // Refused clearly, naming the store.
                assert!(!err.to_string().is_empty(), "{what}");
            }
            Ok(log) => {
                let served = records(&log);
                assert_eq!(
                    served.len(),
                    expected.len(),
                    "{what}: the log was served with {} records instead of {}",
                    served.len(),
                    expected.len()
                );
                assert!(served == expected, "{what}: a record was served changed");
                log.verify().unwrap();
                log.close().unwrap();
                harmless += 1;
            }
        }
    }
    eprintln!("{label}: {harmless} harmless flips, {refused} refused");
}

#[tokio::test]
async fn flipped_bytes_in_a_stopped_store_are_harmless_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let log = SledEventLog::open(&store).unwrap();
    append_some(&log, 40, 0).await;
    let expected = records(&log);
    log.close().unwrap();
    flip_and_check(&store, &expected, "written");

    // An imported store: records written in bulk, not group by group.
    let imported = dir.path().join("imported");
    let log = SledEventLog::import(
        &imported,
        expected.iter().cloned().map(Ok::<_, std::io::Error>),
    )
    .unwrap();
    assert_eq!(records(&log), expected);
    log.close().unwrap();
    flip_and_check(&imported, &expected, "imported store");
}
