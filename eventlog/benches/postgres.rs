#![allow(clippy::unwrap_used)]
//! PostgreSQL event log benchmark: reported, not asserted.
//!
//! `cargo bench -p backchannel-eventlog --bench postgres`
//!
//! Starts a throwaway cluster (fsync on; no standby, or with
//! `PG_BENCH_STANDBY=sync` a synchronous standby on the same machine, so
//! every commit also waits for the standby's flush) and measures durable
//! single-event appends through one log opened as a server opens it
//! ([`Log::open`], on the log's own runtime) with 1, 16 and 256
//! concurrent writers (events/s, p50, p99 of an append), and beside each the
//! bare ceiling: the same records inserted with one `INSERT … SELECT FROM
//! unnest(…)` plus `COMMIT` per batch, from one connection, at the batch
//! size the log's writer reached (events per group). In the same run, the
//! same appends (same writers, same record shapes) on a fresh sled store in
//! a temporary directory, so both engines are measured on the same machine
//! at the same moment. Meanwhile node B (a second log, on a runtime of its
//! own as another process would be) tails the log: the lag from a group's
//! start on node A to applied on node B (`PG_BENCH_FOLLOWER=off` leaves node
//! B out, to see what it costs the writer on a small machine). Figures go to
//! BENCHMARKS.md by hand.

use std::time::{Duration, Instant};

use backchannel_domain::events::{Event, MessageAuthor, MessagePosted, StreamId};
use backchannel_domain::ids::{CommandId, ConversationId, CorrelationId, MessageId};
use backchannel_domain::model::Actor;
use backchannel_domain::values::{Content, MessageBody};
use backchannel_eventlog::{AppendMeta, ExpectedVersion, Log, PgEventLog, PgOptions, StoreSpec};
use backchannel_pgtest::PgCluster;
use tokio_postgres::NoTls;

fn message(conversation: ConversationId, n: u64) -> Event {
    let mut id = *conversation.as_bytes();
    id[..8].copy_from_slice(&n.to_be_bytes());
    Event::MessagePosted(MessagePosted {
        conversation,
        message: MessageId::from_bytes(id),
        author: MessageAuthor::Customer,
        body: Content::Legacy(
            MessageBody::parse("a message of about forty-four characters ok").unwrap(),
        ),
    })
}

fn meta() -> AppendMeta {
    AppendMeta {
        command_id: CommandId::new(),
        correlation_id: CorrelationId::new(),
        actor: Actor::System,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Run {
    events: u64,
    seconds: f64,
    p50: Duration,
    p99: Duration,
    batch: f64,
}

async fn appends(url: &str, writers: u64, per_writer: u64) -> (Run, Vec<Vec<u8>>) {
    // Node A is opened as a server opens it: `Log::open`, whose log runs on
    // a runtime of its own (the writer does not queue behind the callers).
    let spec = StoreSpec::Postgres(url.to_owned());
    let log = tokio::task::spawn_blocking(move || Log::open(&spec))
        .await
        .unwrap()
        .unwrap();
    // Node B follows the log while node A appends: how long from the group's
    // start on A (its `recorded_at`, before the commit) to applied on B.
    // Node B is another process: its own runtime, so its tail does not queue
    // behind node A's callers.
    let node_b = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let follower_url = url.to_owned();
    let total = match std::env::var("PG_BENCH_FOLLOWER").as_deref() {
        Ok("off") => 0,
        Ok("on") | Ok("") | Err(_) => writers * per_writer,
        Ok(other) => panic!("PG_BENCH_FOLLOWER={other}: expected `off` or nothing"),
    };
    let lags = node_b.spawn(async move {
        let follower = PgEventLog::connect(&follower_url, PgOptions::default())
            .await
            .unwrap();
        let mut tail = follower.tail(1);
        let mut lags = Vec::with_capacity(total as usize);
        for _ in 0..total {
            let event = tail.next().await.unwrap().unwrap();
            let recorded = event.envelope.recorded_at.to_system_time();
            lags.push(
                std::time::SystemTime::now()
                    .duration_since(recorded)
                    .unwrap_or_default(),
            );
        }
        lags.sort_unstable();
        lags
    });
    let (latencies, seconds) = drive(log.clone(), writers, per_writer).await;
    let lags = lags.await.unwrap();
    node_b.shutdown_background();
    if lags.is_empty() {
        println!("<!-- {writers} writers: no follower (PG_BENCH_FOLLOWER=off) -->");
    } else {
        println!(
            "<!-- {writers} writers: tail lag on node B (group start on A to applied on B): p50 {:.2} ms, p99 {:.2} ms -->",
            ms(percentile(&lags, 0.5)),
            ms(percentile(&lags, 0.99))
        );
    }
    let stats = log.commit_stats();
    tokio::task::spawn_blocking(move || drop(log))
        .await
        .unwrap();
    let reader = PgEventLog::connect(url, PgOptions::default())
        .await
        .unwrap();
    let mut records = Vec::new();
    let mut next = 1;
    loop {
        let page = reader.raw_records(next, 4096).await.unwrap();
        if page.is_empty() {
            break;
        }
        next += page.len() as u64;
        records.extend(page.into_iter().map(|(_, r)| r));
    }
    (
        Run {
            events: writers * per_writer,
            seconds,
            p50: percentile(&latencies, 0.5),
            p99: percentile(&latencies, 0.99),
            batch: stats.events as f64 / stats.groups.max(1) as f64,
        },
        records,
    )
}

/// `writers` tasks, each appending `per_writer` single-event appends to its
/// own conversation through `log`, back to back: the append latencies
/// (sorted) and the wall time in seconds.
async fn drive(log: Log, writers: u64, per_writer: u64) -> (Vec<Duration>, f64) {
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let log = log.clone();
            tokio::spawn(async move {
                let conversation = ConversationId::new();
                let stream = StreamId::Conversation(conversation);
                let mut latencies = Vec::with_capacity(per_writer as usize);
                for n in 0..per_writer {
                    let began = Instant::now();
                    log.append(
                        stream,
                        ExpectedVersion::Exact(n),
                        vec![message(conversation, n + w)],
                        meta(),
                    )
                    .await
                    .unwrap();
                    latencies.push(began.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    (latencies, seconds)
}

/// The same appends on a fresh sled store (fsync on every group, as the
/// log always does), in a temporary directory.
async fn sled_appends(writers: u64, per_writer: u64) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(&StoreSpec::sled(dir.path().join("store"))).unwrap();
    let (latencies, seconds) = drive(log.clone(), writers, per_writer).await;
    let stats = log.commit_stats();
    log.close().unwrap();
    Run {
        events: writers * per_writer,
        seconds,
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        batch: stats.events as f64 / stats.groups.max(1) as f64,
    }
}

/// The same records, `batch` per `INSERT … unnest` + `COMMIT`, one connection.
async fn bare(url: &str, records: &[Vec<u8>], batch: usize) -> Run {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(
            "DROP TABLE IF EXISTS bare; CREATE TABLE bare (position bigint PRIMARY KEY, \
             stream bytea NOT NULL, version bigint NOT NULL, command_id uuid NOT NULL, \
             record bytea NOT NULL, UNIQUE (stream, version))",
        )
        .await
        .unwrap();
    let insert = client
        .prepare(
            "INSERT INTO bare SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bigint[], \
             $4::uuid[], $5::bytea[])",
        )
        .await
        .unwrap();
    let mut latencies = Vec::new();
    let start = Instant::now();
    for (c, chunk) in records.chunks(batch.max(1)).enumerate() {
        let first = (c * batch.max(1)) as i64 + 1;
        let positions: Vec<i64> = (first..first + chunk.len() as i64).collect();
        let streams: Vec<Vec<u8>> = positions.iter().map(|p| p.to_be_bytes().to_vec()).collect();
        let versions: Vec<i64> = vec![1; chunk.len()];
        let commands: Vec<uuid::Uuid> = (0..chunk.len()).map(|_| uuid::Uuid::now_v7()).collect();
        let chunk = chunk.to_vec();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
            [&positions, &streams, &versions, &commands, &chunk];
        let began = Instant::now();
        let (b, i, c) = tokio::join!(
            client.batch_execute("BEGIN"),
            client.execute(&insert, &params),
            client.batch_execute("COMMIT"),
        );
        b.unwrap();
        i.unwrap();
        c.unwrap();
        latencies.push(began.elapsed());
    }
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    Run {
        events: records.len() as u64,
        seconds,
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        batch: batch as f64,
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let cluster = PgCluster::start();
    let standby = match std::env::var("PG_BENCH_STANDBY").as_deref() {
        Ok("sync") => Some(PgCluster::start_standby(&cluster, true)),
        Ok("") | Err(_) => None,
        Ok(other) => panic!("PG_BENCH_STANDBY={other}: expected `sync` or nothing"),
    };
    println!("# PostgreSQL event log benchmark");
    println!();
    println!(
        "PostgreSQL 15, throwaway cluster on loopback, fsync=on, synchronous_commit=on, {}; cpu x {}",
        match standby {
            Some(_) => "a synchronous standby (same machine, same disk)",
            None => "no standby",
        },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!(
        "| writers | events | PostgreSQL log events/s | append p50 ms | append p99 ms | events/group | bare events/s (same batch) | bare commit p50 ms | log/bare | sled events/s | sled p50 ms | sled p99 ms | sled events/group |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    runtime.block_on(async {
        for (writers, per_writer) in [(1u64, 1000u64), (16, 300), (256, 100)] {
            let url = cluster.create_database(&format!("w{writers}"));
            let (run, records) = appends(&url, writers, per_writer).await;
            let batch = run.batch.round().max(1.0) as usize;
            let ceiling = bare(&url, &records, batch).await;
            let sled = sled_appends(writers, per_writer).await;
            let rate = run.events as f64 / run.seconds;
            let bare_rate = ceiling.events as f64 / ceiling.seconds;
            println!(
                "| {writers} | {} | {:.0} | {:.2} | {:.2} | {:.1} | {:.0} | {:.2} | {:.0}% | {:.0} | {:.2} | {:.2} | {:.1} |",
                run.events,
                rate,
                ms(run.p50),
                ms(run.p99),
                run.batch,
                bare_rate,
                ms(ceiling.p50),
                100.0 * rate / bare_rate,
                sled.events as f64 / sled.seconds,
                ms(sled.p50),
                ms(sled.p99),
                sled.batch
            );
        }
        // Catch-up: a fresh node reading the 256-writer run's log from 1.
        let url = cluster.url_for("w256");
        let reader = PgEventLog::connect(&url, PgOptions::default()).await.unwrap();
        let start = Instant::now();
        let mut next = 1;
        loop {
            let page = reader.read_all(next, 1024).await.unwrap();
            if page.is_empty() {
                break;
            }
            next += page.len() as u64;
        }
        let seconds = start.elapsed().as_secs_f64();
        println!();
        println!(
            "catch-up (read_all pages of 1024, decoded): {} events in {:.3} s = {:.0} events/s",
            next - 1,
            seconds,
            (next - 1) as f64 / seconds
        );
        let url = cluster.create_database("b256");
        let (_, records) = appends(&url, 64, 40).await;
        let ceiling = bare(&url, &records, 256).await;
        println!();
        println!(
            "bare ceiling at 256 events per commit: {:.0} events/s, commit p50 {:.2} ms, p99 {:.2} ms",
            ceiling.events as f64 / ceiling.seconds,
            ms(ceiling.p50),
            ms(ceiling.p99)
        );
    });
}
