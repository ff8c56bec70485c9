#![allow(clippy::unwrap_used)]
//! Checkpoints: a value saved at a position of the log is read back as it was,
//! a start resumes after it only when the log holds that very record, and a
//! damaged, foreign or missing checkpoint is an error (or nothing), never a
//! wrong value.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use backchannel_domain::ids::CommandId;
use backchannel_eventlog::{
    CheckpointError, ExpectedVersion, HeadKey, OpenError, RecordedEvent, ResumePoint, SledEventLog,
};
use support::{conversation, message, meta_for, opened, stream};

const NAME: &str = "test-model";
const KIND: &str = "eventlog-tests/positions-per-stream/1";

/// A toy read model: how many events each stream has had, up to a position.
type Model = BTreeMap<String, u64>;

fn apply(model: &mut Model, recorded: &RecordedEvent) {
    *model
        .entry(format!("{:?}", recorded.envelope.stream))
        .or_default() += 1;
}

async fn append_events(log: &SledEventLog, from: u64, count: u64) {
    for n in from..from + count {
        let id = conversation(n % 3);
        let event = if n < 3 { opened(id) } else { message(id, n) };
        log.append(
            stream(n % 3),
            ExpectedVersion::Any,
            vec![event],
            meta_for(CommandId::new()),
        )
        .await
        .unwrap();
    }
}

fn model_up_to(log: &SledEventLog, position: u64) -> Model {
    let mut model = Model::new();
    for recorded in log.scan(1).map(Result::unwrap) {
        if recorded.envelope.position <= position {
            apply(&mut model, &recorded);
        }
    }
    model
}

fn checkpoint_file(store: &Path) -> std::path::PathBuf {
    store.join("checkpoints").join(NAME)
}

#[tokio::test]
async fn a_start_resumes_after_the_checkpoint_and_ends_equal_to_a_full_replay() {
    let dir = tempfile::tempdir().unwrap();
    let log = SledEventLog::open(dir.path()).unwrap();
    append_events(&log, 0, 20).await;
    let at_20 = model_up_to(&log, 20);
    let saved = log.save_checkpoint(NAME, KIND, 20, &at_20).unwrap();
    assert_eq!(saved.after.position, 20);
    assert_eq!(
        saved.bytes,
        std::fs::metadata(&saved.path).unwrap().len(),
        "the size it reports is the file's"
    );
    // The log goes on after the checkpoint (a crash would leave it like this).
    append_events(&log, 20, 15).await;
    let full = model_up_to(&log, 35);
    log.close().unwrap();

    let checkpoint = SledEventLog::load_checkpoint::<Model>(dir.path(), NAME, KIND)
        .unwrap()
        .unwrap();
    assert_eq!(checkpoint.after, saved.after);
    assert_eq!(checkpoint.value, at_20);
    let mut model = checkpoint.value;
    let mut visited = Vec::new();
    let log = SledEventLog::open_resuming(dir.path(), checkpoint.after, |recorded| {
        visited.push(recorded.envelope.position);
        apply(&mut model, &recorded);
        Ok::<(), std::convert::Infallible>(())
    })
    .unwrap();
    assert_eq!(visited, (21..=35).collect::<Vec<_>>(), "only the tail");
    assert_eq!(model, full, "checkpoint + tail = the whole log");
    // The indexes were still built from the whole log: appends continue.
    let next = log
        .append(
            stream(0),
            ExpectedVersion::Exact(12),
            vec![message(conversation(0), 99)],
            meta_for(CommandId::new()),
        )
        .await
        .unwrap();
    assert_eq!(next.first_position, 36);
    log.close().unwrap();
}

#[tokio::test]
async fn a_checkpoint_at_the_head_resumes_with_nothing_to_visit() {
    let dir = tempfile::tempdir().unwrap();
    let log = SledEventLog::open(dir.path()).unwrap();
    append_events(&log, 0, 7).await;
    log.save_checkpoint(NAME, KIND, 7, &model_up_to(&log, 7))
        .unwrap();
    log.close().unwrap();

    let checkpoint = SledEventLog::load_checkpoint::<Model>(dir.path(), NAME, KIND)
        .unwrap()
        .unwrap();
    let mut visited = 0;
    let log = SledEventLog::open_resuming(dir.path(), checkpoint.after, |_| {
        visited += 1;
        Ok::<(), std::convert::Infallible>(())
    })
    .unwrap();
    assert_eq!(visited, 0);
    assert_eq!(log.head(), 7);
}

#[tokio::test]
async fn a_checkpoint_the_log_does_not_continue_is_refused_before_visiting() {
    // Store A's checkpoint at position 5, copied into store B whose log has
    // other records there; and into store C, whose log is shorter (refused
    // as a checkpoint ahead of the log).
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    let log_a = SledEventLog::open(a.path()).unwrap();
    append_events(&log_a, 0, 8).await;
    log_a
        .save_checkpoint(NAME, KIND, 5, &model_up_to(&log_a, 5))
        .unwrap();
    log_a.close().unwrap();
    let log_b = SledEventLog::open(b.path()).unwrap();
    append_events(&log_b, 0, 8).await;
    log_b.close().unwrap();
    let log_c = SledEventLog::open(c.path()).unwrap();
    append_events(&log_c, 0, 3).await;
    log_c.close().unwrap();

    let checkpoint = SledEventLog::load_checkpoint::<Model>(a.path(), NAME, KIND)
        .unwrap()
        .unwrap();
    for (store, name) in [(b.path(), "another log"), (c.path(), "a shorter log")] {
        let mut visited = 0;
        let err = SledEventLog::open_resuming(store, checkpoint.after, |_| {
            visited += 1;
            Ok::<(), std::convert::Infallible>(())
        })
        .err()
        .unwrap();
        // A shorter log is a fault (acknowledged events are missing), not
        // a reason to rebuild: the checkpoint is past its end.
        if store == c.path() {
            assert!(
                matches!(
                    err,
                    OpenError::CheckpointAhead {
                        checkpoint: 5,
                        log_end: 3,
                        ..
                    }
                ),
                "{name}: {err}"
            );
        } else {
            assert!(
                matches!(err, OpenError::DoesNotContinue { position: 5, .. }),
                "{name}: {err}"
            );
        }
        assert_eq!(visited, 0, "{name}: nothing visited");
        // The refusal released the store.
        assert_eq!(
            SledEventLog::open(store).unwrap().head(),
            if store == c.path() { 3 } else { 8 }
        );
    }
    // A made-up hash at the right position is refused too.
    let forged = ResumePoint {
        position: 5,
        hash: [7; 32],
    };
    let err = SledEventLog::open_resuming(a.path(), forged, |_| Ok::<(), &str>(()))
        .err()
        .unwrap();
    assert!(matches!(
        err,
        OpenError::DoesNotContinue { position: 5, .. }
    ));
}

#[tokio::test]
async fn damaged_foreign_and_missing_checkpoints_are_errors_not_values() {
    let dir = tempfile::tempdir().unwrap();
    let log = SledEventLog::open(dir.path()).unwrap();
    append_events(&log, 0, 10).await;
    let load = || SledEventLog::load_checkpoint::<Model>(dir.path(), NAME, KIND);
    assert!(load().unwrap().is_none(), "no checkpoint yet");

    // Positions that are not committed records cannot be checkpointed.
    for position in [0, 11] {
        let err = log
            .save_checkpoint(NAME, KIND, position, &Model::new())
            .unwrap_err();
        assert!(matches!(err, CheckpointError::Position { .. }), "{err}");
    }
    for name in ["", "../escape", "Upper", "a/b", &"x".repeat(65)] {
        let err = log
            .save_checkpoint(name, KIND, 3, &Model::new())
            .unwrap_err();
        assert!(
            matches!(err, CheckpointError::BadName(_)),
            "{name:?}: {err}"
        );
    }
    assert!(!dir.path().join("escape").exists());

    log.save_checkpoint(NAME, KIND, 10, &model_up_to(&log, 10))
        .unwrap();
    let good = std::fs::read(checkpoint_file(dir.path())).unwrap();
    assert!(load().unwrap().is_some());

    // Another kind is not decoded as this one.
    let err =
        SledEventLog::load_checkpoint::<Model>(dir.path(), NAME, "something-else/1").unwrap_err();
    assert!(matches!(err, CheckpointError::OtherKind { .. }), "{err}");

    let write = |bytes: &[u8]| std::fs::write(checkpoint_file(dir.path()), bytes).unwrap();
    // Every single flipped byte is caught: header fields by their checks, the
    // payload by its checksum.
    for at in 0..good.len() {
        let mut bad = good.clone();
        bad[at] ^= 0x20;
        write(&bad);
        match load() {
            Err(_) => {}
            Ok(found) => panic!("a flipped byte at {at} was accepted: {found:?}"),
        }
    }
    // Truncated anywhere, or with bytes appended.
    for len in [0, 10, 30, good.len() / 2, good.len() - 1] {
        write(&good[..len]);
        assert!(load().is_err(), "truncated to {len}");
    }
    let mut longer = good.clone();
    longer.push(0);
    write(&longer);
    assert!(
        matches!(load(), Err(CheckpointError::Damaged { .. })),
        "a byte appended"
    );
    write(b"{\"not\": \"a checkpoint\"}");
    assert!(matches!(
        load(),
        Err(CheckpointError::NotACheckpoint { .. })
    ));

    // The good file reads again; a save replaces it whole.
    write(&good);
    assert_eq!(load().unwrap().unwrap().after.position, 10);
    append_events(&log, 10, 2).await;
    log.save_checkpoint(NAME, KIND, 12, &model_up_to(&log, 12))
        .unwrap();
    let reread = load().unwrap().unwrap();
    assert_eq!(reread.after.position, 12);
    assert_eq!(reread.value, model_up_to(&log, 12));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, [NAME], "no temporary file left behind");
    log.close().unwrap();
}

/// A checkpoint written by a log holding the server's key carries a MAC of
/// its seal: read with that key it is authenticated; with another key it is
/// `Unauthentic`; every flipped byte, the MAC's included, is an error.
#[tokio::test]
async fn a_keyed_checkpoint_is_authenticated_and_every_flip_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let log = SledEventLog::open(dir.path()).unwrap();
    append_events(&log, 0, 6).await;
    let key = HeadKey::from_secret(b"the server's secret, 32 bytes or more");
    log.set_head_key(key.clone()).unwrap();
    log.save_checkpoint(NAME, KIND, 6, &model_up_to(&log, 6))
        .unwrap();
    log.close().unwrap();
    let load = |key: &HeadKey| {
        SledEventLog::load_checkpoint_keyed::<Model>(dir.path(), NAME, KIND, Some(key))
    };
    let found = load(&key).unwrap().unwrap();
    assert!(found.authenticated);
    assert_eq!(found.after.position, 6);
    let other = HeadKey::from_secret(b"another server's secret, 32 bytes long");
    assert!(matches!(
        load(&other),
        Err(CheckpointError::Unauthentic { .. })
    ));
    // Without a key it still reads (as not authenticated).
    let unchecked = SledEventLog::load_checkpoint::<Model>(dir.path(), NAME, KIND)
        .unwrap()
        .unwrap();
    assert!(!unchecked.authenticated);
    let good = std::fs::read(checkpoint_file(dir.path())).unwrap();
    for at in 0..good.len() {
        let mut bad = good.clone();
        bad[at] ^= 0x20;
        std::fs::write(checkpoint_file(dir.path()), &bad).unwrap();
        assert!(load(&key).is_err(), "a flipped byte at {at} was accepted");
    }
}
