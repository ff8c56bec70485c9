//! Appends that touch several streams at once (`append_to_streams`): one
//! expected version per stream, checked and applied atomically, in the same
//! group commit, with the same idempotency by command id.

use backchannel_domain::events::{Event, GroupStaff, StreamId};
use backchannel_domain::ids::{CommandId, CompanyId, GroupId, StaffId};
use backchannel_eventlog::{AppendError, ExpectedVersion, Log, StoreSpec};

use super::{close, open, verify};
use crate::support::{conversation, message, meta, meta_for, opened, stream};

fn company() -> CompanyId {
    CompanyId::from_bytes([1; 16])
}

fn company_stream() -> StreamId {
    StreamId::Company(company())
}

/// A company-stream event (which event does not matter to the log).
fn company_event(n: u8) -> Event {
    Event::GroupMemberAdded(GroupStaff {
        company: company(),
        group: GroupId::from_bytes([2; 16]),
        staff: StaffId::from_bytes([n; 16]),
    })
}

pub async fn an_append_to_two_streams_lands_whole_with_each_streams_versions(spec: StoreSpec) {
    let log = open(&spec).await;
    log.append(
        company_stream(),
        ExpectedVersion::NoStream,
        vec![company_event(1)],
        meta(),
    )
    .await
    .unwrap();
    let c = conversation(1);
    let outcome = log
        .append_to_streams(
            vec![
                (stream(1), ExpectedVersion::NoStream),
                (company_stream(), ExpectedVersion::Exact(1)),
            ],
            vec![opened(c), company_event(2), message(c, 1)],
            meta(),
        )
        .await
        .unwrap();
    assert_eq!((outcome.first_position, outcome.last_position), (2, 4));
    assert!(!outcome.deduplicated);
    // The version of the last event's stream.
    assert_eq!(outcome.stream_version, 2);

    let check = |log: Log| async move {
        let conversation = log.read_stream(stream(1), 1).await.unwrap();
        let versions: Vec<(u64, u64)> = conversation
            .iter()
            .map(|r| (r.envelope.position, r.envelope.stream_version))
            .collect();
        assert_eq!(versions, [(2, 1), (4, 2)]);
        let company = log.read_stream(company_stream(), 1).await.unwrap();
        let versions: Vec<(u64, u64)> = company
            .iter()
            .map(|r| (r.envelope.position, r.envelope.stream_version))
            .collect();
        assert_eq!(versions, [(1, 1), (3, 2)]);
        let all = log.read_all(2, 10).await.unwrap();
        assert!(
            all.iter()
                .all(|r| r.envelope.command_id == all[0].envelope.command_id)
        );
        verify(&log).await;
        log
    };
    let log = check(log).await;
    close(log).await;
    // The indexes rebuilt on open agree.
    let log = check(open(&spec).await).await;
    close(log).await;
}

pub async fn a_stale_expectation_on_either_stream_rejects_the_whole_append(spec: StoreSpec) {
    let log = open(&spec).await;
    log.append(
        company_stream(),
        ExpectedVersion::NoStream,
        vec![company_event(1)],
        meta(),
    )
    .await
    .unwrap();
    let c = conversation(1);
    let cases = [
        // The company moved on since the decision.
        (ExpectedVersion::NoStream, ExpectedVersion::Exact(0)),
        // The conversation exists already.
        (ExpectedVersion::Exact(3), ExpectedVersion::Exact(1)),
    ];
    for (on_conversation, on_company) in cases {
        let refused = log
            .append_to_streams(
                vec![(stream(1), on_conversation), (company_stream(), on_company)],
                vec![opened(c), company_event(2)],
                meta(),
            )
            .await;
        assert!(
            matches!(refused, Err(AppendError::WrongExpectedVersion { .. })),
            "{refused:?}"
        );
        assert_eq!(log.head(), 1, "nothing of it was appended");
        assert!(log.read_stream(stream(1), 1).await.unwrap().is_empty());
    }
    // A stream named only as a condition is checked and left alone.
    let refused = log
        .append_to_streams(
            vec![
                (stream(1), ExpectedVersion::NoStream),
                (company_stream(), ExpectedVersion::Exact(7)),
            ],
            vec![opened(c)],
            meta(),
        )
        .await;
    assert!(
        matches!(refused, Err(AppendError::WrongExpectedVersion { stream, current: 1, .. }) if stream == company_stream())
    );
    log.append_to_streams(
        vec![
            (stream(1), ExpectedVersion::NoStream),
            (company_stream(), ExpectedVersion::Exact(1)),
        ],
        vec![opened(c)],
        meta(),
    )
    .await
    .unwrap();
    assert_eq!(log.read_stream(company_stream(), 1).await.unwrap().len(), 1);
    close(log).await;
}

pub async fn malformed_multi_stream_appends_are_refused_before_the_writer(spec: StoreSpec) {
    let log = open(&spec).await;
    let c = conversation(1);
    let no_expectation = log
        .append_to_streams(
            vec![(stream(1), ExpectedVersion::Any)],
            vec![opened(c), company_event(1)],
            meta(),
        )
        .await;
    assert!(
        matches!(
            no_expectation,
            Err(AppendError::WrongStream { index: 1, .. })
        ),
        "{no_expectation:?}"
    );
    let twice = log
        .append_to_streams(
            vec![
                (stream(1), ExpectedVersion::Any),
                (stream(1), ExpectedVersion::Any),
            ],
            vec![opened(c)],
            meta(),
        )
        .await;
    assert!(
        matches!(twice, Err(AppendError::DuplicateStream { .. })),
        "{twice:?}"
    );
    let empty = log
        .append_to_streams(Vec::new(), vec![opened(c)], meta())
        .await;
    assert!(
        matches!(empty, Err(AppendError::WrongStream { index: 0, .. })),
        "{empty:?}"
    );
    assert_eq!(log.head(), 0);
    close(log).await;
}

pub async fn a_retried_multi_stream_append_is_deduplicated_by_its_command_id(spec: StoreSpec) {
    let log = open(&spec).await;
    let command = CommandId::new();
    let c = conversation(1);
    let append = |log: Log| async move {
        log.append_to_streams(
            vec![
                (stream(1), ExpectedVersion::NoStream),
                (company_stream(), ExpectedVersion::NoStream),
            ],
            vec![opened(c), company_event(1)],
            meta_for(command),
        )
        .await
    };
    // Twice in one group (fired together), then once more after the commit.
    let (first, second) = tokio::join!(append(log.clone()), append(log.clone()));
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.first_position, second.first_position);
    assert!(
        first.deduplicated != second.deduplicated,
        "{first:?} {second:?}"
    );
    let third = append(log.clone()).await.unwrap();
    assert!(third.deduplicated);
    assert_eq!((third.first_position, third.last_position), (1, 2));
    assert_eq!(third.stream_version, 1);
    assert_eq!(log.head(), 2);
    let stored = log.command_outcome(command).await.unwrap().unwrap();
    assert_eq!((stored.first_position, stored.last_position), (1, 2));
    close(log).await;
}

/// Two appends that each open their own conversation and take the same
/// company-stream turn: exactly one wins, whatever the interleaving.
pub async fn appends_sharing_one_stream_conflict_though_their_own_streams_differ(spec: StoreSpec) {
    let log = open(&spec).await;
    for round in 0..20u64 {
        let company_version = log.read_stream(company_stream(), 1).await.unwrap().len() as u64;
        let mut tasks = Vec::new();
        for n in 0..8u64 {
            let log = log.clone();
            let c = conversation(round * 100 + n);
            tasks.push(tokio::spawn(async move {
                log.append_to_streams(
                    vec![
                        (StreamId::Conversation(c), ExpectedVersion::NoStream),
                        (company_stream(), ExpectedVersion::Exact(company_version)),
                    ],
                    vec![opened(c), company_event(n as u8)],
                    meta(),
                )
                .await
            }));
        }
        let mut won = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => won += 1,
                Err(AppendError::WrongExpectedVersion { stream, .. }) => {
                    assert_eq!(stream, company_stream());
                }
                Err(other) => panic!("{other}"),
            }
        }
        assert_eq!(won, 1, "round {round}");
    }
    verify(&log).await;
    close(log).await;
}
