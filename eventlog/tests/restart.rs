#![allow(clippy::unwrap_used)]
//! The stream and command indexes live in memory and are rebuilt on open: after
//! a restart stream versions continue, retries are still deduplicated with their
//! original positions, and `read_stream` finds every event.

mod support;

use backchannel_domain::ids::CommandId;
use backchannel_eventlog::{AppendError, ExpectedVersion, SledEventLog};
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
