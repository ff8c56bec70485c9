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

use backchannel_eventlog::SledEventLog;
use backchannel_eventlog::portable::PortableReader;
use backchannel_projections::ReadModels;
use backchannel_projections::checkpoint::{
    CHECKPOINT_KIND, CHECKPOINT_NAME, Start, open_with_read_models, save_read_models,
};

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

fn open(path: &Path) -> (SledEventLog, ReadModels, Start) {
    open_with_read_models(path).unwrap()
}

/// Saves `models` as the store's checkpoint (the store must not be open).
fn save_checkpoint(path: &Path, models: &ReadModels) {
    let log = SledEventLog::open(path).unwrap();
    save_read_models(&log, models).unwrap().unwrap();
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
    // A log that ends before the checkpoint (its first 20 events; the
    // checkpoint is at the middle of the demo).
    let short = demo_store(&records[..20]);
    std::fs::create_dir_all(short.path().join("checkpoints")).unwrap();

    for (name, store_dir, bytes, expected) in [
        ("a flipped byte", store.path(), &damaged, &rebuilt),
        (
            "models of another position",
            store.path(),
            &disagreeing,
            &rebuilt,
        ),
        (
            "a log that ends before it",
            short.path(),
            &good,
            &models_up_to(&records, 20),
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

/// The committed checkpoint of the whole demo log must resume, and equal a
/// rebuild. If the models' types changed, it no longer decodes (or decodes to
/// something else): change `CHECKPOINT_KIND`, then re-bless.
#[test]
fn the_demo_checkpoint_fixture_still_resumes() {
    let fixture = workspace_file("fixtures/checkpoints/demo-read-models.bin");
    let records = demo_records();
    let head = records.len() as u64;
    let store = demo_store(&records);
    let rebuilt = models_up_to(&records, head);
    if std::env::var_os("BLESS_FIXTURES").is_some_and(|v| v == "1") {
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
