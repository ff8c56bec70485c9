#![allow(clippy::unwrap_used)]
//! The replay tool on a PostgreSQL log (`--store postgres://…`, `import
//! --into postgres://…`): the sled → PostgreSQL migration round trip, and
//! that reading a PostgreSQL log never writes to it.

mod support;

use backchannel_domain::events::StreamId;
use backchannel_eventlog::{AppendError, ExpectedVersion, Log, StoreSpec};
use backchannel_pgtest::PgCluster;
use support::{s, scenario, stderr, tool};

fn chain_head(spec: &StoreSpec) -> (u64, [u8; 32]) {
    let spec = spec.clone();
    std::thread::spawn(move || {
        let log = Log::open(&spec).unwrap();
        let head = log.chain_head().unwrap();
        log.close().unwrap();
        head
    })
    .join()
    .unwrap()
}

#[test]
fn a_sled_store_migrates_to_postgres_and_reads_back_the_same() {
    let scenario = scenario();
    let sled_head = chain_head(&StoreSpec::sled(&scenario.store));
    assert!(sled_head.0 > 0);
    let cluster = PgCluster::start();
    let url = cluster.create_database("migrated");

    let out = tool(&["import", "--file", s(&scenario.file), "--into", &url]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = tool(&["verify", "--store", &url]);
    assert!(out.status.success(), "{}", stderr(&out));

    let again = scenario.dir.path().join("from-postgres.bclog");
    let out = tool(&["export", "--store", &url, "--out", s(&again)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(&again).unwrap(),
        std::fs::read(&scenario.file).unwrap(),
        "an export from PostgreSQL is byte-identical to sled's"
    );
    assert_eq!(chain_head(&StoreSpec::parse(&url).unwrap()), sled_head);

    // A second import into the now non-empty log is refused.
    let out = tool(&["import", "--file", s(&scenario.file), "--into", &url]);
    assert!(!out.status.success());
}

#[test]
fn reading_a_postgres_log_never_writes() {
    let cluster = PgCluster::start();
    // A database without the log's schema: a reader must not create it.
    let empty = cluster.create_database("empty");
    let out = tool(&["verify", "--store", &empty]);
    assert!(!out.status.success());
    assert_eq!(
        cluster
            .psql("SELECT count(*) FROM pg_namespace WHERE nspname = 'backchannel'")
            .trim(),
        "0"
    );

    let scenario = scenario();
    let url = cluster.create_database("log");
    let out = tool(&["import", "--file", s(&scenario.file), "--into", &url]);
    assert!(out.status.success(), "{}", stderr(&out));
    let spec = StoreSpec::parse(&url).unwrap();
    let before = chain_head(&spec);
    let scratch = tempfile::tempdir().unwrap();
    let log = Log::open_read_only(&spec, scratch.path(), &mut |_| {}).unwrap();
    assert_eq!(log.verify().unwrap().events, before.0);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let first = log.scan(1).next().unwrap().unwrap();
    let stream: StreamId = first.envelope.stream;
    let err = runtime
        .block_on(log.append(
            stream,
            ExpectedVersion::Any,
            vec![first.event.clone()],
            backchannel_eventlog::AppendMeta {
                command_id: backchannel_domain::ids::CommandId::new(),
                correlation_id: backchannel_domain::ids::CorrelationId::new(),
                actor: backchannel_domain::model::Actor::System,
            },
        ))
        .unwrap_err();
    assert!(matches!(err, AppendError::Closed), "{err}");
    drop(log);
    assert_eq!(chain_head(&spec), before);
}
