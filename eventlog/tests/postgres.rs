#![allow(clippy::unwrap_used)]
//! The event log's properties on PostgreSQL: every test starts its own
//! throwaway cluster (`backchannel-pgtest`), and several [`PgEventLog`]
//! instances on one database stand for several nodes.
//!
//! The bodies take the logs they run against (`async fn name(logs: &[PgEventLog])`),
//! so they can move into engine-neutral conformance bodies.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use backchannel_domain::ids::CommandId;
use backchannel_eventlog::portable::PortableReader;
use backchannel_eventlog::{
    AppendError, ChainCheck, ExpectedVersion, MAX_STREAMS_PER_APPEND, OpenError, PgEventLog,
    PgOptions, SledEventLog,
};
use backchannel_pgtest::PgCluster;
use support::{conversation, message, meta, meta_for, opened, stream};
use tokio_postgres::NoTls;

async fn node(cluster: &PgCluster) -> PgEventLog {
    PgEventLog::connect(&cluster.url(), PgOptions::default())
        .await
        .unwrap()
}

/// A plain SQL connection, for what a test does behind the log's back.
async fn sql(cluster: &PgCluster) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&cluster.url(), NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// Every record, checked as an export or import checks them.
async fn check_chain(log: &PgEventLog) -> u64 {
    let mut check = ChainCheck::new();
    let mut next = 1;
    loop {
        let page = log.raw_records(next, 500).await.unwrap();
        if page.is_empty() {
            break;
        }
        for (position, record) in &page {
            assert_eq!(*position, next);
            check.check(record).unwrap();
            next += 1;
        }
    }
    let (head, hash) = log.committed_head().await.unwrap();
    assert_eq!(head, check.events());
    assert_eq!(hash, check.head_hash());
    check.events()
}

/// Concurrent appenders on several nodes: gapless positions, chain verifies,
/// every acknowledged append sits where it was acknowledged.
async fn concurrent_appenders(logs: &[PgEventLog]) {
    const TASKS: u64 = 8;
    const APPENDS: u64 = 25;
    let mut handles = Vec::new();
    for (n, log) in logs.iter().enumerate() {
        for task in 0..TASKS {
            let log = log.clone();
            let id = n as u64 * 100 + task;
            handles.push(tokio::spawn(async move {
                let conversation = conversation(id);
                let mut acknowledged = Vec::new();
                let first = log
                    .append(
                        stream(id),
                        ExpectedVersion::NoStream,
                        vec![opened(conversation)],
                        meta(),
                    )
                    .await
                    .unwrap();
                acknowledged.push((first.first_position, 1));
                for i in 0..APPENDS {
                    let outcome = log
                        .append(
                            stream(id),
                            ExpectedVersion::Exact(i + 1),
                            vec![message(conversation, i)],
                            meta(),
                        )
                        .await
                        .unwrap();
                    assert_eq!(outcome.stream_version, i + 2);
                    acknowledged.push((outcome.first_position, i + 2));
                }
                (id, acknowledged)
            }));
        }
    }
    let mut all = Vec::new();
    for handle in handles {
        all.push(handle.await.unwrap());
    }
    let total = logs.len() as u64 * TASKS * (APPENDS + 1);
    assert_eq!(check_chain(&logs[0]).await, total);
    let events = logs[0].read_all(1, total as usize + 10).await.unwrap();
    assert_eq!(events.len() as u64, total);
    for (id, acknowledged) in all {
        for (position, version) in acknowledged {
            let event = &events[position as usize - 1];
            assert_eq!(event.envelope.stream, stream(id));
            assert_eq!(event.envelope.stream_version, version);
        }
    }
}

async fn optimistic_concurrency(logs: &[PgEventLog]) {
    let (a, b) = (&logs[0], &logs[1]);
    let c = conversation(7);
    a.append(
        stream(7),
        ExpectedVersion::NoStream,
        vec![opened(c)],
        meta(),
    )
    .await
    .unwrap();
    let stale = b
        .append(
            stream(7),
            ExpectedVersion::NoStream,
            vec![message(c, 0)],
            meta(),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        stale,
        AppendError::WrongExpectedVersion { current: 1, .. }
    ));
    // Two nodes race on the same expected version: exactly one wins.
    let (x, y) = tokio::join!(
        a.append(
            stream(7),
            ExpectedVersion::Exact(1),
            vec![message(c, 1)],
            meta()
        ),
        b.append(
            stream(7),
            ExpectedVersion::Exact(1),
            vec![message(c, 2)],
            meta()
        ),
    );
    assert_eq!(u8::from(x.is_ok()) + u8::from(y.is_ok()), 1, "{x:?} {y:?}");
    let loser = x.err().or(y.err()).unwrap();
    assert!(matches!(
        loser,
        AppendError::WrongExpectedVersion { current: 2, .. }
    ));
    assert_eq!(a.read_stream(stream(7), 1).await.unwrap().len(), 2);
    assert_eq!(check_chain(a).await, 2);
}

async fn idempotency(logs: &[PgEventLog]) {
    let (a, b) = (&logs[0], &logs[1]);
    let c = conversation(9);
    let command = CommandId::new();
    let first = a
        .append(
            stream(9),
            ExpectedVersion::NoStream,
            vec![opened(c), message(c, 0)],
            meta_for(command),
        )
        .await
        .unwrap();
    assert!(!first.deduplicated);
    // Again, with a now stale expected version, on the same node and another:
    // the command id wins before the version check.
    for log in [a, b] {
        let again = log
            .append(
                stream(9),
                ExpectedVersion::NoStream,
                vec![opened(c), message(c, 0)],
                meta_for(command),
            )
            .await
            .unwrap();
        assert!(again.deduplicated);
        assert_eq!(again.first_position, first.first_position);
        assert_eq!(again.last_position, first.last_position);
        assert_eq!(again.stream_version, first.stream_version);
        let outcome = log.command_outcome(command).await.unwrap().unwrap();
        assert_eq!(outcome.first_position, first.first_position);
        assert_eq!(outcome.last_position, first.last_position);
    }
    assert_eq!(a.command_outcome(CommandId::new()).await.unwrap(), None);
    // One command sent to two nodes at once is appended once.
    let racing = CommandId::new();
    let (x, y) = tokio::join!(
        a.append(
            stream(9),
            ExpectedVersion::Any,
            vec![message(c, 1)],
            meta_for(racing)
        ),
        b.append(
            stream(9),
            ExpectedVersion::Any,
            vec![message(c, 1)],
            meta_for(racing)
        ),
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.first_position, y.first_position);
    assert_eq!(u8::from(x.deduplicated) + u8::from(y.deduplicated), 1);
    // The same command twice in one group, from one node.
    let twice = CommandId::new();
    let (x, y) = tokio::join!(
        a.append(
            stream(9),
            ExpectedVersion::Any,
            vec![message(c, 2)],
            meta_for(twice)
        ),
        a.append(
            stream(9),
            ExpectedVersion::Any,
            vec![message(c, 2)],
            meta_for(twice)
        ),
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.first_position, y.first_position);
    assert_eq!(u8::from(x.deduplicated) + u8::from(y.deduplicated), 1);
    assert_eq!(check_chain(a).await, 4);
}

async fn multi_stream(logs: &[PgEventLog]) {
    let a = &logs[0];
    let (c1, c2) = (conversation(1), conversation(2));
    let both = a
        .append_to_streams(
            vec![
                (stream(1), ExpectedVersion::NoStream),
                (stream(2), ExpectedVersion::NoStream),
            ],
            vec![opened(c1), opened(c2), message(c1, 0)],
            meta(),
        )
        .await
        .unwrap();
    assert_eq!((both.first_position, both.last_position), (1, 3));
    assert_eq!(both.stream_version, 2);
    // One stale expectation rejects the whole append, on any node.
    let stale = logs[1]
        .append_to_streams(
            vec![
                (stream(1), ExpectedVersion::Exact(2)),
                (stream(2), ExpectedVersion::Exact(7)),
            ],
            vec![message(c1, 1), message(c2, 1)],
            meta(),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        stale,
        AppendError::WrongExpectedVersion { current: 1, .. }
    ));
    // A stream listed only as a condition.
    a.append_to_streams(
        vec![
            (stream(1), ExpectedVersion::Exact(2)),
            (stream(2), ExpectedVersion::Exact(1)),
        ],
        vec![message(c1, 1)],
        meta(),
    )
    .await
    .unwrap();
    let one = a.read_stream(stream(1), 1).await.unwrap();
    let two = a.read_stream(stream(2), 1).await.unwrap();
    assert_eq!(one.len(), 3);
    assert_eq!(two.len(), 1);
    assert_eq!(a.read_stream(stream(1), 3).await.unwrap().len(), 1);
    assert_eq!(check_chain(a).await, 4);
}

/// A tail on node B sees every append made through node A and B, in order,
/// without a gap or a duplicate, including those made while it runs.
async fn tail_across_nodes(logs: &[PgEventLog]) {
    let (a, b) = (logs[0].clone(), logs[1].clone());
    const STREAMS: u64 = 6;
    const PER_STREAM: u64 = 30;
    let total = STREAMS * (PER_STREAM + 1);
    let mut tail = b.tail(1);
    let writers: Vec<_> = (0..STREAMS)
        .map(|id| {
            let log = if id % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                let c = conversation(id);
                log.append(
                    stream(id),
                    ExpectedVersion::NoStream,
                    vec![opened(c)],
                    meta(),
                )
                .await
                .unwrap();
                for i in 0..PER_STREAM {
                    log.append(
                        stream(id),
                        ExpectedVersion::Any,
                        vec![message(c, i)],
                        meta(),
                    )
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    let mut seen = Vec::new();
    while (seen.len() as u64) < total {
        let event = tokio::time::timeout(Duration::from_secs(30), tail.next())
            .await
            .expect("the tail stalled")
            .unwrap()
            .unwrap();
        seen.push(event.envelope.position);
    }
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(seen, (1..=total).collect::<Vec<_>>());
    // Nothing more arrives.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), tail.next())
            .await
            .is_err()
    );
    // A tail from the middle, on the other node.
    let mut middle = a.tail(total - 4);
    for position in total - 4..=total {
        let event = middle.next().await.unwrap().unwrap();
        assert_eq!(event.envelope.position, position);
    }
    assert!(b.head() >= total && a.head() >= total);
}

async fn bad_input(logs: &[PgEventLog]) {
    let a = &logs[0];
    let c = conversation(3);
    let err = a
        .append(stream(3), ExpectedVersion::Any, vec![], meta())
        .await
        .unwrap_err();
    assert!(matches!(err, AppendError::NoEvents));
    let err = a
        .append(
            stream(3),
            ExpectedVersion::Any,
            vec![opened(conversation(4))],
            meta(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AppendError::WrongStream { .. }));
    let many: Vec<_> = (0..=MAX_STREAMS_PER_APPEND as u64)
        .map(|n| (stream(n), ExpectedVersion::Any))
        .collect();
    let err = a
        .append_to_streams(many, vec![opened(conversation(0))], meta())
        .await
        .unwrap_err();
    assert!(matches!(err, AppendError::TooManyStreams { .. }));
    let err = a
        .append_to_streams(
            vec![
                (stream(3), ExpectedVersion::Any),
                (stream(3), ExpectedVersion::Any),
            ],
            vec![opened(c)],
            meta(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AppendError::DuplicateStream { .. }));
    let err = a
        .append_to_streams(
            vec![(stream(3), ExpectedVersion::Any)],
            vec![opened(conversation(5))],
            meta(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AppendError::WrongStream { .. }));
    let err = a
        .append(
            stream(3),
            ExpectedVersion::Any,
            (0..1025).map(|i| message(c, i)).collect(),
            meta(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AppendError::TooManyEvents { .. }));
    assert!(a.read_all(1, 10).await.unwrap().is_empty());
    assert_eq!(a.committed_head().await.unwrap().0, 0);
    // The log still works.
    a.append(
        stream(3),
        ExpectedVersion::NoStream,
        vec![opened(c)],
        meta(),
    )
    .await
    .unwrap();
    assert_eq!(check_chain(a).await, 1);
}

async fn two_nodes(cluster: &PgCluster) -> Vec<PgEventLog> {
    vec![node(cluster).await, node(cluster).await]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appenders_on_three_nodes_are_gapless_and_chained() {
    let cluster = PgCluster::start();
    let logs = vec![
        node(&cluster).await,
        node(&cluster).await,
        node(&cluster).await,
    ];
    concurrent_appenders(&logs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimistic_concurrency_holds_across_nodes() {
    let cluster = PgCluster::start();
    optimistic_concurrency(&two_nodes(&cluster).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_id_appends_once_across_nodes() {
    let cluster = PgCluster::start();
    idempotency(&two_nodes(&cluster).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_stream_appends_are_atomic() {
    let cluster = PgCluster::start();
    multi_stream(&two_nodes(&cluster).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tail_on_one_node_sees_every_append_of_the_others() {
    let cluster = PgCluster::start();
    tail_across_nodes(&two_nodes(&cluster).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_changes_nothing() {
    let cluster = PgCluster::start();
    bad_input(&two_nodes(&cluster).await).await;
}

/// Records written on PostgreSQL export into a portable file that sled
/// imports and verifies, byte for byte; and back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_from_postgres_imports_into_sled_and_back() {
    let cluster = PgCluster::start();
    let pg = node(&cluster).await;
    for id in 0..5 {
        let c = conversation(id);
        pg.append(
            stream(id),
            ExpectedVersion::NoStream,
            vec![opened(c)],
            meta(),
        )
        .await
        .unwrap();
        pg.append(
            stream(id),
            ExpectedVersion::Exact(1),
            (0..4).map(|i| message(c, i)).collect(),
            meta(),
        )
        .await
        .unwrap();
    }
    let mut file = Vec::new();
    let summary = pg.export(&mut file).await.unwrap();
    assert_eq!(summary.events, 25);
    let pg_records = pg.raw_records(1, 100).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut reader = PortableReader::new(file.as_slice()).unwrap();
    let mut records = Vec::new();
    while let Some(next) = reader.next_checked_raw() {
        next.unwrap();
        records.push(reader.record_bytes().to_vec());
    }
    let sled = SledEventLog::import(
        dir.path().join("store"),
        records.into_iter().map(Ok::<_, std::io::Error>),
    )
    .unwrap();
    let report = sled.verify().unwrap();
    assert_eq!(report.events, 25);
    assert_eq!(report.head_hash, pg.committed_head().await.unwrap().1);
    let sled_records: Vec<_> = sled.raw_records(1, 25).map(Result::unwrap).collect();
    assert_eq!(sled_records, pg_records);

    // Back: sled's records into a fresh database, then appends go on.
    let url = cluster.create_database("back");
    let imported = PgEventLog::import(
        &url,
        PgOptions::default(),
        sled_records
            .iter()
            .map(|(_, bytes)| Ok::<_, std::io::Error>(bytes.clone())),
    )
    .await
    .unwrap();
    assert_eq!(imported.raw_records(1, 100).await.unwrap(), pg_records);
    let retried = imported
        .command_outcome(pg.read_all(25, 1).await.unwrap()[0].envelope.command_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((retried.first_position, retried.last_position), (22, 25));
    imported
        .append(
            stream(0),
            ExpectedVersion::Exact(5),
            vec![message(conversation(0), 9)],
            meta(),
        )
        .await
        .unwrap();
    assert_eq!(check_chain(&imported).await, 26);
    // An import into a non-empty log is refused.
    let again = PgEventLog::import(
        &url,
        PgOptions::default(),
        pg_records
            .iter()
            .map(|(_, bytes)| Ok::<_, std::io::Error>(bytes.clone())),
    )
    .await;
    assert!(matches!(
        again,
        Err(backchannel_eventlog::ImportError::NotEmpty { events: 26, .. })
    ));
    // A broken record is refused and leaves the database empty.
    let url = cluster.create_database("broken");
    let mut bad: Vec<Vec<u8>> = pg_records.iter().map(|(_, b)| b.clone()).collect();
    bad[3][40] ^= 1;
    let refused = PgEventLog::import(
        &url,
        PgOptions::default(),
        bad.into_iter().map(Ok::<_, std::io::Error>),
    )
    .await;
    assert!(matches!(
        refused,
        Err(backchannel_eventlog::ImportError::Invalid(_))
    ));
    let empty = PgEventLog::connect(&url, PgOptions::default())
        .await
        .unwrap();
    assert_eq!(empty.committed_head().await.unwrap().0, 0);
    assert!(empty.read_all(1, 10).await.unwrap().is_empty());
}

/// Connecting twice is harmless; a log whose head does not match is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_checks_the_committed_head() {
    let cluster = PgCluster::start();
    let first = node(&cluster).await;
    first
        .append(
            stream(1),
            ExpectedVersion::NoStream,
            vec![opened(conversation(1))],
            meta(),
        )
        .await
        .unwrap();
    let second = node(&cluster).await;
    assert_eq!(second.head(), 1);
    let client = sql(&cluster).await;
    client
        .execute(
            "UPDATE backchannel.log_head SET hash = '\\x00' || substring(hash from 2)",
            &[],
        )
        .await
        .unwrap();
    let refused = PgEventLog::connect(&cluster.url(), PgOptions::default()).await;
    assert!(
        matches!(refused, Err(OpenError::HeadMismatch { head: 1, .. })),
        "{:?}",
        refused.err()
    );
}

/// A node that connects while another node appends sees one consistent
/// head: the committed head and the log's end are read in one snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_connecting_while_another_appends_is_not_refused() {
    let cluster = PgCluster::start();
    let writer = node(&cluster).await;
    let appending = tokio::spawn(async move {
        for n in 1..=400u64 {
            let expected = if n == 1 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exact(n - 1)
            };
            let event = if n == 1 {
                opened(conversation(1))
            } else {
                message(conversation(1), n)
            };
            writer
                .append(stream(1), expected, vec![event], meta())
                .await
                .unwrap();
        }
    });
    let mut connects = 0;
    while !appending.is_finished() {
        let joined = PgEventLog::connect(&cluster.url(), PgOptions::default()).await;
        assert!(joined.is_ok(), "{:?}", joined.err());
        connects += 1;
    }
    appending.await.unwrap();
    assert!(connects > 1, "the appends ended before a second connect");
}

/// If the records a tail applied are gone (a failover lost them), the tail
/// says so and stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_stops_when_the_log_lost_what_it_applied() {
    let cluster = PgCluster::start();
    let log = node(&cluster).await;
    let c = conversation(1);
    log.append(
        stream(1),
        ExpectedVersion::NoStream,
        vec![opened(c)],
        meta(),
    )
    .await
    .unwrap();
    log.append(
        stream(1),
        ExpectedVersion::Exact(1),
        vec![message(c, 0)],
        meta(),
    )
    .await
    .unwrap();
    let mut tail = log.tail(1);
    for _ in 0..2 {
        tail.next().await.unwrap().unwrap();
    }
    // Lose position 2 as a failover to a lagging standby would.
    let client = sql(&cluster).await;
    let row = client
        .query_one(
            "SELECT record FROM backchannel.events WHERE position = 1",
            &[],
        )
        .await
        .unwrap();
    let first: Vec<u8> = row.get(0);
    client
        .batch_execute(
            "DELETE FROM backchannel.events WHERE position = 2; \
             DELETE FROM backchannel.commands WHERE first_position = 2; \
             UPDATE backchannel.streams SET version = 1",
        )
        .await
        .unwrap();
    client
        .execute(
            "UPDATE backchannel.log_head SET position = 1, hash = $1",
            &[&blake3::hash(&first).as_bytes().as_slice()],
        )
        .await
        .unwrap();
    // Another node appends a different position 2.
    let other = node(&cluster).await;
    other
        .append(
            stream(1),
            ExpectedVersion::Exact(1),
            vec![message(c, 5)],
            meta(),
        )
        .await
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), tail.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("lost records"), "{err}");
    assert!(tail.next().await.is_none());
}

async fn wait_for_sync_rep_waiter(client: &tokio_postgres::Client) -> i32 {
    for _ in 0..200 {
        let rows = client
            .query(
                "SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep'",
                &[],
            )
            .await
            .unwrap();
        if let Some(row) = rows.first() {
            return row.get(0);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no commit waited for the synchronous standby");
}

/// A COMMIT that returns with the warning that its wait for the synchronous
/// standby was cancelled is not reported as a success: the writer cannot
/// settle it while no standby acknowledges, so the caller learns the outcome
/// is unknown; a retry with the same command id then gets the original
/// positions, appended once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_wait_for_the_standby_is_an_unknown_outcome() {
    let cluster = PgCluster::start();
    let options = PgOptions {
        resolve_timeout: Duration::from_secs(2),
        ..PgOptions::default()
    };
    let log = PgEventLog::connect(&cluster.url(), options).await.unwrap();
    let c = conversation(1);
    log.append(
        stream(1),
        ExpectedVersion::NoStream,
        vec![opened(c)],
        meta(),
    )
    .await
    .unwrap();
    let admin = sql(&cluster).await;
    admin
        .batch_execute("ALTER SYSTEM SET synchronous_standby_names = 'nobody'")
        .await
        .unwrap();
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let command = CommandId::new();
    let pending = tokio::spawn({
        let log = log.clone();
        async move {
            log.append(
                stream(1),
                ExpectedVersion::Exact(1),
                vec![message(c, 0)],
                meta_for(command),
            )
            .await
        }
    });
    let pid = wait_for_sync_rep_waiter(&admin).await;
    admin
        .execute("SELECT pg_cancel_backend($1)", &[&pid])
        .await
        .unwrap();
    let answer = pending.await.unwrap();
    assert!(
        matches!(answer, Err(AppendError::OutcomeUnknown(_))),
        "{answer:?}"
    );
    admin
        .batch_execute("ALTER SYSTEM RESET synchronous_standby_names")
        .await
        .unwrap();
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
    // Release the settling transaction still waiting, if any.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let retried = log
        .append(
            stream(1),
            ExpectedVersion::Exact(1),
            vec![message(c, 0)],
            meta_for(command),
        )
        .await
        .unwrap();
    assert!(retried.deduplicated);
    assert_eq!(retried.first_position, 2);
    assert_eq!(check_chain(&log).await, 2);
    let ids: HashSet<_> = log
        .read_all(1, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.envelope.command_id)
        .collect();
    assert_eq!(ids.len(), 2);
}

/// The same cancelled wait, but the standby requirement is lifted while the
/// writer settles it: the writer then proves the commit (its settling commit
/// is acknowledged) and answers the append as committed, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_outcome_that_can_be_settled_is_answered() {
    let cluster = PgCluster::start();
    let options = PgOptions {
        resolve_timeout: Duration::from_secs(60),
        ..PgOptions::default()
    };
    let log = PgEventLog::connect(&cluster.url(), options).await.unwrap();
    let c = conversation(1);
    log.append(
        stream(1),
        ExpectedVersion::NoStream,
        vec![opened(c)],
        meta(),
    )
    .await
    .unwrap();
    let admin = sql(&cluster).await;
    admin
        .batch_execute("ALTER SYSTEM SET synchronous_standby_names = 'nobody'")
        .await
        .unwrap();
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let command = CommandId::new();
    let pending = tokio::spawn({
        let log = log.clone();
        async move {
            log.append(
                stream(1),
                ExpectedVersion::Exact(1),
                vec![message(c, 0)],
                meta_for(command),
            )
            .await
        }
    });
    let pid = wait_for_sync_rep_waiter(&admin).await;
    admin
        .execute("SELECT pg_cancel_backend($1)", &[&pid])
        .await
        .unwrap();
    // The settling transaction now waits for the standby in turn.
    let settling = loop {
        let settling = wait_for_sync_rep_waiter(&admin).await;
        if settling != pid {
            break settling;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_ne!(settling, pid);
    assert!(!pending.is_finished());
    admin
        .batch_execute("ALTER SYSTEM RESET synchronous_standby_names")
        .await
        .unwrap();
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
    let answer = pending.await.unwrap().unwrap();
    assert!(!answer.deduplicated);
    assert_eq!(answer.first_position, 2);
    assert_eq!(check_chain(&log).await, 2);
}

/// In one group, a stale append fails alone; a transaction the server
/// refuses appends nothing and leaves no hole in the positions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_leave_no_hole() {
    let cluster = PgCluster::start();
    let log = node(&cluster).await;
    let (c1, c2, c3) = (conversation(1), conversation(2), conversation(3));
    log.append(
        stream(1),
        ExpectedVersion::NoStream,
        vec![opened(c1)],
        meta(),
    )
    .await
    .unwrap();
    let (stale, good, other) = tokio::join!(
        log.append(
            stream(1),
            ExpectedVersion::NoStream,
            vec![message(c1, 0)],
            meta()
        ),
        log.append(
            stream(1),
            ExpectedVersion::Exact(1),
            vec![message(c1, 1)],
            meta()
        ),
        log.append(
            stream(2),
            ExpectedVersion::NoStream,
            vec![opened(c2)],
            meta()
        ),
    );
    assert!(matches!(
        stale,
        Err(AppendError::WrongExpectedVersion { .. })
    ));
    good.unwrap();
    other.unwrap();
    assert_eq!(check_chain(&log).await, 3);

    // The server refuses any insert into stream 3.
    let client = sql(&cluster).await;
    let key = {
        let mut key = vec![1u8];
        key.extend_from_slice(c3.as_bytes());
        key
    };
    client
        .batch_execute(&format!(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF NEW.stream = '\\x{}'::bytea THEN RAISE EXCEPTION 'refused'; END IF; \
             RETURN NEW; END $$; \
             CREATE TRIGGER refuse BEFORE INSERT ON backchannel.events \
             FOR EACH ROW EXECUTE FUNCTION refuse();",
            hex::encode(&key)
        ))
        .await
        .unwrap();
    let refused = log
        .append(
            stream(3),
            ExpectedVersion::NoStream,
            vec![opened(c3)],
            meta(),
        )
        .await;
    assert!(
        matches!(refused, Err(AppendError::Storage(_))),
        "{refused:?}"
    );
    assert_eq!(log.committed_head().await.unwrap().0, 3);
    let next = log
        .append(
            stream(2),
            ExpectedVersion::Exact(1),
            vec![message(c2, 0)],
            meta(),
        )
        .await
        .unwrap();
    assert_eq!(next.first_position, 4);
    assert_eq!(check_chain(&log).await, 4);
}

/// A node's writer encodes a group on the head and stream versions it last
/// saw, and the transaction checks them under the lock: whatever changed
/// behind its back (another node's commits, a stream it never read, a
/// command id it already appended) is decided on what the lock shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_writer_assumes_is_checked_under_the_lock() {
    let cluster = PgCluster::start();
    let (a, b) = (node(&cluster).await, node(&cluster).await);
    let (c1, c2, c3, c5) = (
        conversation(1),
        conversation(2),
        conversation(3),
        conversation(5),
    );
    let append = |log: &PgEventLog, n: u64, expected, event, meta| {
        let log = log.clone();
        async move { log.append(stream(n), expected, vec![event], meta).await }
    };
    let wrong = |result: Result<_, AppendError>, want: u64| match result {
        Err(AppendError::WrongExpectedVersion { current, .. }) => assert_eq!(current, want),
        other => panic!("expected a wrong expected version ({want}), got {other:?}"),
    };
    append(&a, 1, ExpectedVersion::NoStream, opened(c1), meta())
        .await
        .unwrap();
    append(&a, 1, ExpectedVersion::Exact(1), message(c1, 1), meta())
        .await
        .unwrap();

    // A command id retried with an expectation that still holds.
    let command = CommandId::new();
    let first = append(
        &a,
        1,
        ExpectedVersion::Exact(2),
        message(c1, 2),
        meta_for(command),
    )
    .await
    .unwrap();
    let again = append(
        &a,
        1,
        ExpectedVersion::Exact(3),
        message(c1, 2),
        meta_for(command),
    )
    .await
    .unwrap();
    assert!(again.deduplicated);
    assert_eq!(again.first_position, first.first_position);
    assert_eq!(check_chain(&a).await, 3);

    // Another node moved the stream (and the head).
    append(&b, 1, ExpectedVersion::Exact(3), message(c1, 3), meta())
        .await
        .unwrap();
    wrong(
        append(&a, 1, ExpectedVersion::Exact(3), message(c1, 4), meta()).await,
        4,
    );
    let next = append(&a, 1, ExpectedVersion::Exact(4), message(c1, 4), meta())
        .await
        .unwrap();
    assert_eq!(next.first_position, 5);

    // A stream the node never read, on an unchanged head: an expectation
    // pins its version, and a wrong one is refused.
    wrong(
        append(&a, 2, ExpectedVersion::Exact(5), opened(c2), meta()).await,
        0,
    );
    // A stream another node created, which this node never read.
    append(&b, 3, ExpectedVersion::NoStream, opened(c3), meta())
        .await
        .unwrap();
    append(&b, 5, ExpectedVersion::NoStream, opened(c5), meta())
        .await
        .unwrap();
    append(&b, 5, ExpectedVersion::Exact(1), message(c5, 1), meta())
        .await
        .unwrap();
    // (An `Any` append reads under the lock: the node now knows the head.)
    append(&a, 2, ExpectedVersion::Any, opened(c2), meta())
        .await
        .unwrap();
    wrong(
        append(&a, 3, ExpectedVersion::NoStream, message(c3, 1), meta()).await,
        1,
    );
    append(&a, 2, ExpectedVersion::Exact(1), message(c2, 1), meta())
        .await
        .unwrap();
    wrong(
        append(&a, 5, ExpectedVersion::Exact(1), message(c5, 2), meta()).await,
        2,
    );
    let last = append(&a, 5, ExpectedVersion::Exact(2), message(c5, 2), meta())
        .await
        .unwrap();
    assert_eq!(last.first_position, 11);
    assert_eq!(last.stream_version, 3);
    assert_eq!(check_chain(&a).await, 11);
    assert_eq!(a.read_stream(stream(5), 1).await.unwrap().len(), 3);
    assert_eq!(b.read_stream(stream(1), 1).await.unwrap().len(), 5);
    // (After failed checks the writer skips the fast path for a few groups.)
    for version in 2..4 {
        append(
            &a,
            2,
            ExpectedVersion::Exact(version),
            message(c2, version),
            meta(),
        )
        .await
        .unwrap();
    }

    // The log lost its last commit behind the node's back (as a failover to
    // a lagging standby would): the head the node assumes is gone.
    let client = sql(&cluster).await;
    let row = client
        .query_one(
            "SELECT record FROM backchannel.events WHERE position = 12",
            &[],
        )
        .await
        .unwrap();
    let record: Vec<u8> = row.get(0);
    let mut key = vec![1u8];
    key.extend_from_slice(c2.as_bytes());
    client
        .batch_execute(
            "DELETE FROM backchannel.events WHERE position = 13; \
             DELETE FROM backchannel.commands WHERE first_position = 13",
        )
        .await
        .unwrap();
    client
        .execute(
            "UPDATE backchannel.streams SET version = 3 WHERE stream = $1",
            &[&key],
        )
        .await
        .unwrap();
    client
        .execute(
            "UPDATE backchannel.log_head SET position = 12, hash = $1",
            &[&blake3::hash(&record).as_bytes().as_slice()],
        )
        .await
        .unwrap();
    let after = append(&a, 1, ExpectedVersion::Exact(5), message(c1, 5), meta())
        .await
        .unwrap();
    assert_eq!(after.first_position, 13);
    assert_eq!(check_chain(&a).await, 13);
}

/// Many appends at once on a node whose known head another node has moved:
/// the first group fails its head check, and so do the groups the writer
/// sent behind it (encoded on the head the first would have committed).
/// Every append is redone under the lock and lands exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_sent_behind_a_failed_check_are_redone() {
    const ROUNDS: u64 = 5;
    const AT_ONCE: u64 = 64;
    let cluster = PgCluster::start();
    let (a, b) = (node(&cluster).await, node(&cluster).await);
    let mut positions = HashSet::new();
    for round in 0..ROUNDS {
        for (log, id) in [(&a, 1_000 + round), (&b, 2_000 + round)] {
            let outcome = log
                .append(
                    stream(id),
                    ExpectedVersion::NoStream,
                    vec![opened(conversation(id))],
                    meta(),
                )
                .await
                .unwrap();
            assert!(positions.insert(outcome.first_position));
        }
        let appends: Vec<_> = (0..AT_ONCE)
            .map(|i| {
                let a = a.clone();
                let id = 10_000 + round * 100 + i;
                tokio::spawn(async move {
                    a.append(
                        stream(id),
                        ExpectedVersion::NoStream,
                        vec![opened(conversation(id))],
                        meta(),
                    )
                    .await
                })
            })
            .collect();
        for append in appends {
            let outcome = append.await.unwrap().unwrap();
            assert!(!outcome.deduplicated);
            assert!(positions.insert(outcome.first_position));
        }
    }
    let total = ROUNDS * (2 + AT_ONCE);
    assert_eq!(positions.len() as u64, total);
    assert_eq!(check_chain(&a).await, total);
    for round in 0..ROUNDS {
        for i in 0..AT_ONCE {
            let id = 10_000 + round * 100 + i;
            assert_eq!(a.read_stream(stream(id), 1).await.unwrap().len(), 1);
        }
    }
}
