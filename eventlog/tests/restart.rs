#![allow(clippy::unwrap_used)]
//! The stream and command indexes live in memory and are rebuilt on open: after
//! a restart stream versions continue, retries are still deduplicated with their
//! original positions, and `read_stream` finds every event.

mod support;

use backchannel_domain::ids::CommandId;
use backchannel_eventlog::{AppendError, ExpectedVersion, OpenError, SledEventLog};
use support::{conversation, message, meta_for, opened, stream};

#[tokio::test]
async fn a_restart_rebuilds_the_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let log = SledEventLog::open(dir.path()).unwrap();
    // Interleave three streams, with appends of 1 and of 3 events.
    let mut commands = Vec::new();
    for round in 0..4u64 {
        for n in 0..3u64 {
            let id = conversation(n);
            let events = if round == 0 {
                vec![opened(id)]
            } else {
                (0..1 + 2 * (round % 2))
                    .map(|k| message(id, round * 10 + k))
                    .collect()
            };
            let command = CommandId::new();
            let outcome = log
                .append(stream(n), ExpectedVersion::Any, events, meta_for(command))
                .await
                .unwrap();
            commands.push((n, command, outcome));
        }
    }
    let before: Vec<_> = stream_positions(&log).await;
    let head = log.head();
    let stats = log.index_stats();
    log.close().unwrap();

    let log = SledEventLog::open(dir.path()).unwrap();
    assert_eq!(log.head(), head);
    assert_eq!(log.index_stats().positions, stats.positions);
    assert_eq!(log.index_stats().streams, 3);
    assert_eq!(log.index_stats().commands, commands.len());
    assert_eq!(
        stream_positions(&log).await,
        before,
        "read_stream after the restart"
    );
    log.verify().unwrap();

    // Every retry from before the restart is deduplicated with its original outcome.
    for (n, command, original) in &commands {
        let retried = log
            .append(
                stream(*n),
                ExpectedVersion::NoStream,
                vec![message(conversation(*n), 999)],
                meta_for(*command),
            )
            .await
            .unwrap();
        assert!(retried.deduplicated);
        assert_eq!(retried.first_position, original.first_position);
        assert_eq!(retried.last_position, original.last_position);
        assert_eq!(retried.stream_version, original.stream_version);
    }
    assert_eq!(log.head(), head, "retries appended nothing");

    // Stream versions continue where they were: 1 + 3 + 1 + 3 = 8.
    let current = before[0].len() as u64;
    assert_eq!(current, 8);
    let err = log
        .append(
            stream(0),
            ExpectedVersion::Exact(current - 1),
            vec![message(conversation(0), 100)],
            meta_for(CommandId::new()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppendError::WrongExpectedVersion { current: 8, .. }),
        "{err}"
    );
    let outcome = log
        .append(
            stream(0),
            ExpectedVersion::Exact(current),
            vec![message(conversation(0), 100)],
            meta_for(CommandId::new()),
        )
        .await
        .unwrap();
    assert_eq!(outcome.stream_version, current + 1);
    assert_eq!(outcome.first_position, head + 1);
    let new_stream = log
        .append(
            stream(7),
            ExpectedVersion::NoStream,
            vec![opened(conversation(7))],
            meta_for(CommandId::new()),
        )
        .await
        .unwrap();
    assert_eq!(new_stream.stream_version, 1);
    let read = log.read_stream(stream(0), current + 1).await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].envelope.position, head + 1);
    log.verify().unwrap();
    log.close().unwrap();

    // And once more, with the appends made after the first restart.
    let log = SledEventLog::open(dir.path()).unwrap();
    assert_eq!(log.read_stream(stream(0), 1).await.unwrap().len(), 9);
    assert_eq!(log.read_stream(stream(7), 1).await.unwrap().len(), 1);
    log.verify().unwrap();
}

/// The events of streams 0, 1 and 2 (positions and versions).
async fn stream_positions(log: &SledEventLog) -> Vec<Vec<(u64, u64)>> {
    let mut all = Vec::new();
    for n in 0..3 {
        let events = log.read_stream(stream(n), 1).await.unwrap();
        for (index, event) in events.iter().enumerate() {
            assert_eq!(event.envelope.stream_version, index as u64 + 1);
            assert_eq!(event.envelope.stream, stream(n));
        }
        all.push(
            events
                .iter()
                .map(|e| (e.envelope.position, e.envelope.stream_version))
                .collect(),
        );
    }
    all
}

/// `open_replaying` hands over every event from the given position, in order,
/// fully decoded, in the pass that rebuilds the indexes; then the log works as
/// after `open` (sled has been closed and reopened in between).
#[tokio::test]
async fn open_replaying_hands_over_the_log_then_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let log = SledEventLog::open(dir.path()).unwrap();
    for n in 0..40u64 {
        let id = conversation(n % 4);
        let event = if n < 4 { opened(id) } else { message(id, n) };
        log.append(
            stream(n % 4),
            ExpectedVersion::Any,
            vec![event],
            meta_for(CommandId::new()),
        )
        .await
        .unwrap();
    }
    let expected: Vec<_> = log.scan(15).map(Result::unwrap).collect();
    let retry = CommandId::new();
    let before_retry = log
        .append(
            stream(1),
            ExpectedVersion::Any,
            vec![message(conversation(1), 500)],
            meta_for(retry),
        )
        .await
        .unwrap();
    log.close().unwrap();

    let mut seen = Vec::new();
    let log = SledEventLog::open_replaying(dir.path(), 15, |recorded| {
        seen.push(recorded);
        Ok::<(), std::convert::Infallible>(())
    })
    .unwrap();
    assert_eq!(seen.len(), expected.len() + 1, "positions 15 to 41");
    assert_eq!(seen[..expected.len()], expected[..]);
    assert_eq!(seen.last().unwrap().envelope.position, 41);
    assert_eq!(log.head(), 41);

    // The indexes were built in the same pass: a retry is deduplicated, stream
    // versions continue, and a new append lands after the head.
    let retried = log
        .append(
            stream(1),
            ExpectedVersion::Any,
            vec![message(conversation(1), 500)],
            meta_for(retry),
        )
        .await
        .unwrap();
    assert!(retried.deduplicated);
    assert_eq!(retried.first_position, before_retry.first_position);
    let next = log
        .append(
            stream(2),
            ExpectedVersion::Exact(10),
            vec![message(conversation(2), 600)],
            meta_for(CommandId::new()),
        )
        .await
        .unwrap();
    assert_eq!(next.first_position, 42);
    assert_eq!(next.stream_version, 11);
    log.verify().unwrap();
    log.close().unwrap();

    // A visitor's refusal stops the open and names the position; the store is
    // left as it was and opens again.
    let err = SledEventLog::open_replaying(dir.path(), 1, |recorded| {
        if recorded.envelope.position == 7 {
            Err("refused")
        } else {
            Ok(())
        }
    })
    .err()
    .unwrap();
    assert!(
        matches!(err, OpenError::Replay { position: 7, .. }),
        "{err}"
    );
    let log = SledEventLog::open(dir.path()).unwrap();
    assert_eq!(log.head(), 42);
    log.verify().unwrap();
}
