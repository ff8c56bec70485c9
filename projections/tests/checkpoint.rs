#![allow(clippy::unwrap_used)]
//! Read models resumed from a checkpoint equal read models rebuilt from
//! position 1, wherever the checkpoint was taken; an unusable checkpoint
//! falls back to a rebuild; and the demo's checkpoint file pins the format, so
//! a change to the models' types that forgets to change
//! `checkpoint::CHECKPOINT_KIND` fails here.
//!
//! `BLESS_FIXTURES=1 cargo test -p backchannel-projections --test checkpoint`
//! rewrites `fixtures/checkpoints/demo-read-models.bin`; do it only together
//! with a new `CHECKPOINT_KIND`.

use std::path::{Path, PathBuf};

use backchannel_eventlog::portable::PortableReader;
use backchannel_eventlog::{HeadKey, Log, OpenError, SledEventLog, StoreSpec};
use backchannel_projections::ReadModels;
use backchannel_projections::checkpoint::{
    CHECKPOINT_KIND, CHECKPOINT_NAME, CheckpointDir, Start, save_read_models,
};

/// The store's own checkpoint directory (sled: `<store>/checkpoints`).
fn own_dir(path: &Path) -> CheckpointDir {
    CheckpointDir::of_store(&StoreSpec::sled(path)).unwrap()
}

fn open_with_read_models(
    path: &Path,
    key: Option<&HeadKey>,
) -> Result<(Log, ReadModels, Start), OpenError> {
    backchannel_projections::checkpoint::open_with_read_models(
        &StoreSpec::sled(path),
        &own_dir(path),
        key,
        Some(&test_wrap()),
    )
}

fn test_wrap() -> backchannel_eventlog::KeyWrap {
    backchannel_eventlog::KeyWrap::from_secret(b"checkpoint tests' secret")
}

fn workspace_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// The demo log's records, raw and decoded.
fn demo_records() -> Vec<(Vec<u8>, backchannel_eventlog::RecordedEvent)> {
    let file = std::fs::File::open(workspace_file("fixtures/demo/demo.bclog")).unwrap();
    let mut reader = PortableReader::new(std::io::BufReader::new(file)).unwrap();
    let mut records = Vec::new();
    while let Some(recorded) = reader.next_record() {
        let recorded = recorded.unwrap();
        records.push((reader.record_bytes().to_vec(), recorded));
    }
    records
}

/// A store holding the demo log.
fn demo_store(records: &[(Vec<u8>, backchannel_eventlog::RecordedEvent)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let raw = records
        .iter()
        .map(|(bytes, _)| Ok::<_, std::io::Error>(bytes.clone()));
    SledEventLog::import(dir.path(), raw)
        .unwrap()
        .close()
        .unwrap();
    dir
}

fn models_up_to(
    records: &[(Vec<u8>, backchannel_eventlog::RecordedEvent)],
    position: u64,
) -> ReadModels {
    let mut models = ReadModels::new();
    for (_, recorded) in records.iter().take(position as usize) {
        models.apply(recorded).unwrap();
    }
    models
}

fn open(path: &Path) -> (Log, ReadModels, Start) {
    open_with_read_models(path, None).unwrap()
}

/// Saves `models` as the store's checkpoint (the store must not be open).
fn save_checkpoint(path: &Path, models: &ReadModels) {
    let log = Log::open(&StoreSpec::sled(path)).unwrap();
    save_read_models(&log, &own_dir(path), models)
        .unwrap()
        .unwrap();
    log.close().unwrap();
}

fn checkpoint_file(store: &Path) -> PathBuf {
    store.join("checkpoints").join(CHECKPOINT_NAME)
}

#[test]
fn a_start_from_any_checkpoint_equals_a_rebuild_from_position_1() {
    let records = demo_records();
    let head = records.len() as u64;
    assert!(head > 40, "the demo log has {head} events");
    let store = demo_store(&records);
    let rebuilt = models_up_to(&records, head);

    let (log, models, start) = open(store.path());
    assert_eq!(
        start,
        Start::Rebuilt {
            replayed: head,
            why: None
        }
    );
    assert_eq!(models, rebuilt);
    log.close().unwrap();

    for position in [1, 2, head / 3, head / 2, head - 1, head] {
        save_checkpoint(store.path(), &models_up_to(&records, position));
        let (log, resumed, start) = open(store.path());
        assert_eq!(
            start,
            Start::Resumed {
                position,
                replayed: head - position
            }
        );
        assert_eq!(
            resumed, rebuilt,
            "checkpoint at {position} + the rest of the log"
        );
        log.close().unwrap();
    }
}

#[test]
fn an_unusable_checkpoint_means_a_rebuild_not_a_failed_start() {
    let records = demo_records();
    let head = records.len() as u64;
    let store = demo_store(&records);
    let rebuilt = models_up_to(&records, head);
    save_checkpoint(store.path(), &models_up_to(&records, head / 2));
    let good = std::fs::read(checkpoint_file(store.path())).unwrap();

    let mut damaged = good.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    // Models that say another position than the checkpoint was taken at.
    let log = SledEventLog::open(store.path()).unwrap();
    log.save_checkpoint(
        CHECKPOINT_NAME,
        CHECKPOINT_KIND,
        head / 2,
        &models_up_to(&records, head / 3),
    )
    .unwrap();
    log.close().unwrap();
    let disagreeing = std::fs::read(checkpoint_file(store.path())).unwrap();

    for (name, store_dir, bytes, expected) in [
        ("a flipped byte", store.path(), &damaged, &rebuilt),
        (
            "models of another position",
            store.path(),
            &disagreeing,
            &rebuilt,
        ),
    ] {
        std::fs::write(checkpoint_file(store_dir), bytes).unwrap();
        let (log, models, start) = open(store_dir);
        assert!(
            matches!(&start, Start::Rebuilt { why: Some(_), .. }),
            "{name}: {start:?}"
        );
        assert_eq!(&models, expected, "{name}");
        log.close().unwrap();
    }
}

/// A checkpoint taken past the log's end (the log lost acknowledged events:
/// here, a store holding the demo's first 20 events under a checkpoint of its
/// middle) is a fault: the open fails naming both positions, and the read
/// models are not rewound to the shorter log.
#[test]
fn a_checkpoint_ahead_of_the_log_is_refused_not_rewound() {
    let records = demo_records();
    let head = records.len() as u64;
    let store = demo_store(&records);
    save_checkpoint(store.path(), &models_up_to(&records, head / 2));
    let good = std::fs::read(checkpoint_file(store.path())).unwrap();
    let short = demo_store(&records[..20]);
    std::fs::create_dir_all(short.path().join("checkpoints")).unwrap();
    std::fs::write(checkpoint_file(short.path()), &good).unwrap();

    let err = open_with_read_models(short.path(), None)
        .expect_err("a checkpoint ahead of the log was rewound");
    assert!(
        matches!(err, OpenError::CheckpointAhead { checkpoint, log_end: 20, .. } if checkpoint == head / 2),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!("position {}", head / 2)) && text.contains("position 20"),
        "{text}"
    );
    // Nothing was rewritten: the checkpoint is still there, as evidence.
    assert_eq!(std::fs::read(checkpoint_file(short.path())).unwrap(), good);
}

/// A node sharing a log keeps its checkpoint in its own directory, apart from
/// the log, and resumes from there (the record hash it names is checked
/// against the log by `Log::open_resuming`, see eventlog's checkpoint tests).
#[test]
fn a_checkpoint_in_a_directory_of_its_own_resumes_and_is_checked_against_the_log() {
    let records = demo_records();
    let head = records.len() as u64;
    let store = demo_store(&records);
    let spec = StoreSpec::sled(store.path());
    let node = tempfile::tempdir().unwrap();
    let dir = CheckpointDir(node.path().join("checkpoint"));
    let rebuilt = models_up_to(&records, head);

    let log = Log::open(&spec).unwrap();
    save_read_models(&log, &dir, &models_up_to(&records, head / 2))
        .unwrap()
        .unwrap();
    log.close().unwrap();
    assert!(dir.0.join(CHECKPOINT_NAME).is_file());
    assert!(!checkpoint_file(store.path()).exists());

    let open = |dir: &CheckpointDir| {
        backchannel_projections::checkpoint::open_with_read_models(
            &spec,
            dir,
            None,
            Some(&test_wrap()),
        )
        .unwrap()
    };
    let (log, models, start) = open(&dir);
    assert_eq!(
        start,
        Start::Resumed {
            position: head / 2,
            replayed: head - head / 2
        }
    );
    assert_eq!(models, rebuilt);
    log.close().unwrap();
}

/// A checkpoint written with the server's key resumes with that key; one
/// whose MAC another key does not verify (forged, or another server's) is
/// not used: the models are rebuilt from the log.
#[test]
fn a_checkpoint_is_authenticated_with_the_servers_key() {
    let records = demo_records();
    let head = records.len() as u64;
    let store = demo_store(&records);
    let rebuilt = models_up_to(&records, head);
    let key = HeadKey::from_secret(b"the server's secret, 32 bytes or more");
    let other = HeadKey::from_secret(b"another server's secret, 32 bytes or more");
    let log = Log::open(&StoreSpec::sled(store.path())).unwrap();
    log.set_head_key(key.clone()).unwrap();
    save_read_models(
        &log,
        &own_dir(store.path()),
        &models_up_to(&records, head / 2),
    )
    .unwrap()
    .unwrap();
    log.close().unwrap();
    let checkpoint = SledEventLog::load_checkpoint_keyed::<ReadModels>(
        store.path(),
        CHECKPOINT_NAME,
        CHECKPOINT_KIND,
        Some(&key),
    )
    .unwrap()
    .unwrap();
    assert!(checkpoint.authenticated);

    let (log, models, start) = open_with_read_models(store.path(), Some(&other)).unwrap();
    assert!(
        matches!(&start, Start::Rebuilt { why: Some(why), .. } if why.contains("MAC")),
        "{start:?}"
    );
    assert_eq!(models, rebuilt);
    log.close().unwrap();
    // The rebuild did not touch the checkpoint; with the right key it resumes.
    let (log, models, start) = open_with_read_models(store.path(), Some(&key)).unwrap();
    assert!(matches!(start, Start::Resumed { .. }), "{start:?}");
    assert_eq!(models, rebuilt);
    // And the log keeps the key for the next checkpoint.
    assert!(log.head_key().is_some());
    log.close().unwrap();
}

/// The committed checkpoint of the whole demo log (checkpoint format 1,
/// written before checkpoints carried a MAC: it also pins that format 1 is
/// still read) must resume, and equal a rebuild. If the models' types changed, it no longer decodes (or decodes to
/// something else): change `CHECKPOINT_KIND`, then re-bless.
#[test]
fn the_demo_checkpoint_fixture_still_resumes() {
    let fixture = workspace_file("fixtures/checkpoints/demo-read-models.bin");
    let records = demo_records();
    let head = records.len() as u64;
    let store = demo_store(&records);
    let rebuilt = models_up_to(&records, head);
    if blessing() {
        save_checkpoint(store.path(), &rebuilt);
        std::fs::create_dir_all(fixture.parent().unwrap()).unwrap();
        std::fs::copy(checkpoint_file(store.path()), &fixture).unwrap();
    }
    std::fs::create_dir_all(store.path().join("checkpoints")).unwrap();
    std::fs::copy(&fixture, checkpoint_file(store.path())).unwrap_or_else(|err| {
        panic!(
            "{} is missing ({err}); run with BLESS_FIXTURES=1",
            fixture.display()
        )
    });
    let (_log, models, start) = open(store.path());
    assert_eq!(
        start,
        Start::Resumed {
            position: head,
            replayed: 0
        },
        "the committed checkpoint no longer resumes: if the read models' types \
         changed, change CHECKPOINT_KIND and re-bless (BLESS_FIXTURES=1)"
    );
    assert_eq!(
        models, rebuilt,
        "the committed checkpoint decodes to other models: change CHECKPOINT_KIND \
         and re-bless (BLESS_FIXTURES=1)"
    );
}

/// Whether `BLESS_FIXTURES` asks to rewrite the committed files: only `1` does, unset
/// or empty leaves them, and any other value is refused (so `0` cannot bless).
fn blessing() -> bool {
    match std::env::var_os("BLESS_FIXTURES") {
        None => false,
        Some(v) if v.is_empty() => false,
        Some(v) if v == "1" => true,
        Some(v) => panic!(
            "BLESS_FIXTURES must be 1 or unset, got `{}`",
            v.to_string_lossy()
        ),
    }
}
