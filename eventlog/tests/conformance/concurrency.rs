//! Many writers at once: ordering, optimistic concurrency, idempotency, tails.

use std::collections::HashMap;

use backchannel_domain::events::{Event, StreamId};
use backchannel_domain::ids::CommandId;
use backchannel_eventlog::{AppendError, ExpectedVersion, StoreSpec};

use super::{close, open, verify};
use crate::support::{conversation, message, meta, meta_for, opened, stream};

const TASKS: u64 = 64;
const APPENDS_PER_TASK: u64 = 20;
const SHARED_STREAMS: u64 = 4;

pub async fn concurrent_appends_are_gapless_contiguous_and_chained(spec: StoreSpec) {
    let log = open(&spec).await;
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let own = conversation(1000 + task);
            let mut own_version = 0;
            for i in 0..APPENDS_PER_TASK {
                if i % 2 == 0 {
                    // Its own stream, with an exact expected version.
                    let events = if own_version == 0 {
                        vec![opened(own), message(own, i)]
                    } else {
                        vec![message(own, i)]
                    };
                    let outcome = log
                        .append(
                            StreamId::Conversation(own),
                            ExpectedVersion::Exact(own_version),
                            events,
                            meta(),
                        )
                        .await
                        .unwrap();
                    own_version = outcome.stream_version;
                } else {
                    // A stream shared with other tasks, no concurrency check.
                    let shared = conversation(task % SHARED_STREAMS);
                    log.append(
                        StreamId::Conversation(shared),
                        ExpectedVersion::Any,
                        vec![message(shared, task * 1000 + i)],
                        meta(),
                    )
                    .await
                    .unwrap();
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }

    let expected_events = TASKS * (APPENDS_PER_TASK + 1);
    assert_eq!(log.head(), expected_events);
    let all = log.read_all(1, usize::MAX).await.unwrap();
    let positions: Vec<u64> = all.iter().map(|e| e.envelope.position).collect();
    assert_eq!(positions, (1..=expected_events).collect::<Vec<_>>());
    let mut versions: HashMap<StreamId, Vec<u64>> = HashMap::new();
    for event in &all {
        versions
            .entry(event.envelope.stream)
            .or_default()
            .push(event.envelope.stream_version);
    }
    assert_eq!(versions.len() as u64, TASKS + SHARED_STREAMS);
    for (stream, versions) in &versions {
        let expected: Vec<u64> = (1..=versions.len() as u64).collect();
        assert_eq!(versions, &expected, "{stream:?}");
        let read = log.read_stream(*stream, 1).await.unwrap();
        assert_eq!(read.len(), versions.len());
    }
    verify(&log).await;
    close(log).await;

    let reopened = open(&spec).await;
    assert_eq!(reopened.head(), expected_events);
    let report = verify(&reopened).await;
    assert_eq!(report.events, expected_events);
    assert_eq!(reopened.read_all(1, usize::MAX).await.unwrap(), all);
}

pub async fn of_two_racing_appends_with_the_same_expected_version_exactly_one_wins(
    spec: StoreSpec,
) {
    let log = open(&spec).await;
    for round in 0..50 {
        let id = conversation(round);
        let s = StreamId::Conversation(id);
        log.append(s, ExpectedVersion::NoStream, vec![opened(id)], meta())
            .await
            .unwrap();
        let first = log.append(s, ExpectedVersion::Exact(1), vec![message(id, 1)], meta());
        let second = log.append(s, ExpectedVersion::Exact(1), vec![message(id, 2)], meta());
        let (first, second) = tokio::join!(first, second);
        let (winner, loser) = match (first, second) {
            (Ok(winner), Err(loser)) | (Err(loser), Ok(winner)) => (winner, loser),
            other => panic!("expected exactly one winner, got {other:?}"),
        };
        assert_eq!(winner.stream_version, 2);
        assert!(
            matches!(
                loser,
                AppendError::WrongExpectedVersion {
                    expected: ExpectedVersion::Exact(1),
                    current: 2,
                    ..
                }
            ),
            "{loser}"
        );
        assert_eq!(log.read_stream(s, 1).await.unwrap().len(), 2);
    }
    verify(&log).await;
}

pub async fn a_stale_expected_version_appends_nothing(spec: StoreSpec) {
    let log = open(&spec).await;
    let id = conversation(1);
    let s = StreamId::Conversation(id);
    log.append(s, ExpectedVersion::NoStream, vec![opened(id)], meta())
        .await
        .unwrap();
    let err = log
        .append(s, ExpectedVersion::NoStream, vec![opened(id)], meta())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        AppendError::WrongExpectedVersion { current: 1, .. }
    ));
    assert_eq!(
        err.to_string(),
        format!("{s:?} is at version 1, the command expected no stream")
    );
    let err = log
        .append(s, ExpectedVersion::Exact(5), vec![message(id, 1)], meta())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        AppendError::WrongExpectedVersion { current: 1, .. }
    ));
    assert_eq!(log.head(), 1);
}

pub async fn a_retried_command_returns_the_original_positions_and_appends_nothing(spec: StoreSpec) {
    let log = open(&spec).await;
    let id = conversation(1);
    let s = StreamId::Conversation(id);
    let command = CommandId::new();
    let events = vec![opened(id), message(id, 1)];
    let first = log
        .append(
            s,
            ExpectedVersion::NoStream,
            events.clone(),
            meta_for(command),
        )
        .await
        .unwrap();
    assert!(!first.deduplicated);
    log.append(s, ExpectedVersion::Any, vec![message(id, 2)], meta())
        .await
        .unwrap();
    // The retry's expected version is stale by now; it must still get the
    // original outcome rather than a conflict.
    let retry = log
        .append(s, ExpectedVersion::NoStream, events, meta_for(command))
        .await
        .unwrap();
    assert!(retry.deduplicated);
    assert_eq!(
        (
            retry.first_position,
            retry.last_position,
            retry.stream_version
        ),
        (1, 2, 2)
    );
    assert_eq!(log.head(), 3);

    // Also after a restart.
    close(log).await;
    let log = open(&spec).await;
    let retry = log
        .append(
            s,
            ExpectedVersion::NoStream,
            vec![opened(id)],
            meta_for(command),
        )
        .await
        .unwrap();
    assert_eq!((retry.first_position, retry.deduplicated), (1, true));
    assert_eq!(log.head(), 3);
}

pub async fn a_retry_racing_its_original_appends_once(spec: StoreSpec) {
    let log = open(&spec).await;
    for round in 0..50 {
        let id = conversation(round);
        let s = StreamId::Conversation(id);
        let command = CommandId::new();
        let a = log.append(
            s,
            ExpectedVersion::NoStream,
            vec![opened(id)],
            meta_for(command),
        );
        let b = log.append(
            s,
            ExpectedVersion::NoStream,
            vec![opened(id)],
            meta_for(command),
        );
        let (a, b) = tokio::join!(a, b);
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.first_position, b.first_position);
        assert_eq!(a.stream_version, 1);
        assert!(a.deduplicated != b.deduplicated, "{a:?} {b:?}");
        assert_eq!(log.head(), round + 1);
    }
}

pub async fn malformed_appends_are_refused_with_clear_errors(spec: StoreSpec) {
    let log = open(&spec).await;
    let err = log
        .append(stream(1), ExpectedVersion::Any, vec![], meta())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "an append needs at least one event");
    let err = log
        .append(
            stream(1),
            ExpectedVersion::Any,
            vec![opened(conversation(1)), message(conversation(2), 1)],
            meta(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppendError::WrongStream { index: 1, .. }),
        "{err}"
    );
    assert_eq!(log.head(), 0);
}

pub async fn a_tail_yields_history_then_follows_commits_without_gaps_or_duplicates(
    spec: StoreSpec,
) {
    let log = open(&spec).await;
    for n in 0..10 {
        log.append(
            stream(n),
            ExpectedVersion::Any,
            vec![opened(conversation(n))],
            meta(),
        )
        .await
        .unwrap();
    }
    let mut tail = log.tail(3);
    let writer = {
        let log = log.clone();
        tokio::spawn(async move {
            for n in 0..200 {
                let id = conversation(n % 10);
                log.append(
                    StreamId::Conversation(id),
                    ExpectedVersion::Any,
                    vec![message(id, n)],
                    meta(),
                )
                .await
                .unwrap();
            }
        })
    };
    let mut seen = Vec::new();
    while seen.len() < 208 {
        let event = tail.next().await.unwrap().unwrap();
        seen.push(event.envelope.position);
    }
    writer.await.unwrap();
    assert_eq!(seen, (3..=210).collect::<Vec<_>>());

    // Closing the log ends the tail once it has caught up.
    close(log.clone()).await;
    assert!(tail.next().await.is_none());
}

pub async fn reads_see_an_append_as_soon_as_it_returns(spec: StoreSpec) {
    let log = open(&spec).await;
    let id = conversation(7);
    for n in 0..20 {
        let event: Event = message(id, n);
        let outcome = log
            .append(
                StreamId::Conversation(id),
                ExpectedVersion::Any,
                vec![event.clone()],
                meta(),
            )
            .await
            .unwrap();
        assert_eq!(log.head(), outcome.last_position);
        let read = log
            .read_stream(StreamId::Conversation(id), outcome.stream_version)
            .await
            .unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].event, event);
        assert_eq!(read[0].envelope.position, outcome.last_position);
    }
}

pub async fn a_committed_command_outcome_can_be_looked_up(spec: StoreSpec) {
    let log = open(&spec).await;
    let id = conversation(9);
    let command = CommandId::new();
    assert_eq!(log.command_outcome(command).await.unwrap(), None);
    let first = log
        .append(
            StreamId::Conversation(id),
            ExpectedVersion::NoStream,
            vec![opened(id), message(id, 1)],
            meta_for(command),
        )
        .await
        .unwrap();
    let found = log.command_outcome(command).await.unwrap().unwrap();
    assert_eq!(found.first_position, first.first_position);
    assert_eq!(found.last_position, first.last_position);
    assert_eq!(found.stream_version, first.stream_version);
    assert!(found.deduplicated);
    assert_eq!(log.command_outcome(CommandId::new()).await.unwrap(), None);
}

pub async fn a_closed_log_refuses_appends(spec: StoreSpec) {
    let log = open(&spec).await;
    let other_handle = log.clone();
    close(log).await;
    let err = other_handle
        .append(
            stream(1),
            ExpectedVersion::Any,
            vec![opened(conversation(1))],
            meta(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AppendError::Closed), "{err}");
}
