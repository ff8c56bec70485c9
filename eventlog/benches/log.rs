#![allow(clippy::unwrap_used)]
//! Event log benchmark: reported, not asserted.
//!
//! `cargo bench -p backchannel-eventlog --bench log`
//!
//! Measures, on the file system of the target directory (or `$TMPDIR` when set,
//! which should not be a tmpfs): the raw write+fsync rate, the bare sled ceiling
//! (the library's chunk layout applied in batches of 256 events with flush +
//! fsync), durable appends with 1, 16 and 256 concurrent writers, a full-log
//! scan against raw sled iteration, and the time and memory of opening (and so
//! rebuilding the indexes of) a 1,000,000-event log. Figures go to BENCHMARKS.md
//! by hand.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use backchannel_domain::events::{Event, MessageAuthor, MessagePosted, StreamId};
use backchannel_domain::ids::{CommandId, ConversationId, CorrelationId, EventId, MessageId};
use backchannel_domain::model::Actor;
use backchannel_domain::values::{Content, MessageBody};
use backchannel_eventlog::codec::{self, CODEC_VERSION};
use backchannel_eventlog::{AppendMeta, Envelope, ExpectedVersion, RecordedAt, SledEventLog};

const WRITE_SECONDS: f64 = 3.0;
const SCAN_EVENTS: u64 = 1_000_000;

fn main() {
    let base = bench_dir();
    println!("# Event log benchmark");
    println!();
    println!("bench dir: {} ({})", base.display(), fs_of(&base));
    println!(
        "cpu: {} x {}",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let sample = sample_record();
    println!(
        "record size: {} bytes (MessagePosted, 44-character body)",
        sample.len()
    );
    println!();

    // `EVENTLOG_BENCH_ONLY=sled` (or raw, durable, scan) runs one part, for profiling.
    if let Ok(only) = std::env::var("EVENTLOG_BENCH_ONLY") {
        match only.as_str() {
            "raw" => drop(raw_fsync(&base, sample.len())),
            "sled" => {
                for kib in [4, 8, 16, 32, 64] {
                    bare_sled(&base, kib * 1024, 256);
                }
            }
            "open" => drop(open_many_commands(&base)),
            "durable" => drop(durable(&base, 256)),
            _ => drop(scan(&base)),
        }
        let _ = std::fs::remove_dir_all(&base);
        return;
    }
    let raw = raw_fsync(&base, sample.len());
    let ceiling = bare_sled(&base, 8 * 1024, 256);
    // Each run is followed by the bare sled ceiling at the batch size the library
    // actually formed in that run (its mean events per group commit): "the same
    // batch size" as the issue puts it.
    let runs: Vec<(Durable, f64)> = [1, 16, 256]
        .into_iter()
        .map(|w| {
            let run = durable(&base, w);
            let group = run.events_per_group.round().max(1.0) as usize;
            let same_batch = bare_sled(&base, 8 * 1024, group);
            (run, same_batch)
        })
        .collect();
    let scan = scan(&base);
    let open = open_many_commands(&base);

    println!("| measurement | result |");
    println!("|---|---|");
    println!(
        "| raw write+fsync ({} B, `sync_all`) | {:.0} ops/s, p50 {:.0} µs |",
        sample.len(),
        raw.ops_per_sec,
        raw.p50_us
    );
    println!(
        "| bare sled ceiling (`apply_batch` of 256 events in ≤8 KiB chunks + `flush` + fsync) | {:.0} events/s |",
        ceiling
    );
    for (run, same_batch) in &runs {
        println!(
            "| durable appends, {} writer(s) | {:.0} events/s, p50 {:.0} µs, p99 {:.0} µs; {:.2}× raw fsync rate; {:.1} events per group, {:.1} per fsync; bare sled at that batch size {:.0} events/s → {:.0}% of it ({:.0}% of the 256-event ceiling) |",
            run.writers,
            run.events_per_sec,
            run.p50_us,
            run.p99_us,
            run.events_per_sec / raw.ops_per_sec,
            run.events_per_group,
            run.events_per_sync,
            same_batch,
            100.0 * run.events_per_sec / same_batch,
            100.0 * run.events_per_sec / ceiling
        );
    }
    println!(
        "| raw sled iteration ({} events) | {:.0} events/s |",
        scan.events, scan.raw
    );
    println!(
        "| raw sled iteration + decode inline | {:.0} events/s |",
        scan.raw_decode
    );
    println!(
        "| `SledEventLog::scan` (decode + gap check) | {:.0} events/s, {:.0}% of raw+decode |",
        scan.ours,
        100.0 * scan.ours / scan.raw_decode
    );
    for (label, cost) in [
        ("1,000,000 events in appends of 1,000", &scan.open),
        ("1,000,000 one-event appends", &open),
    ] {
        println!(
            "| open (index rebuild), {label} | {:.2} s; {} streams, {} commands; indexes ~{:.1} MiB (estimate), RSS +{:.1} MiB |",
            cost.secs,
            cost.streams,
            cost.commands,
            cost.index_bytes as f64 / 1048576.0,
            cost.rss_delta as f64 / 1048576.0
        );
    }
    println!();

    let (w256, w256_ceiling) = (&runs[2].0, runs[2].1);
    let w1 = &runs[0].0;
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!("Targets:");
    println!(
        "- ≥80,000 durable events/s with 256 writers: {:.0} → {}",
        w256.events_per_sec,
        verdict(w256.events_per_sec >= 80_000.0)
    );
    println!(
        "- 256 writers ≥ half the bare sled ceiling at the same batch size ({:.0} events): {:.0}% → {}",
        w256.events_per_group,
        100.0 * w256.events_per_sec / w256_ceiling,
        verdict(w256.events_per_sec >= w256_ceiling / 2.0)
    );
    println!(
        "  (against the 256-event-batch ceiling: {:.0}%)",
        100.0 * w256.events_per_sec / ceiling
    );
    println!(
        "- single-writer p50 ≤ 3× one raw write+fsync: {:.0} µs vs {:.0} µs ({:.2}×) → {}",
        w1.p50_us,
        raw.p50_us,
        w1.p50_us / raw.p50_us,
        verdict(w1.p50_us <= 3.0 * raw.p50_us)
    );
    println!(
        "- scan+decode ≥1,500,000 events/s: {:.0} → {}",
        scan.ours,
        verdict(scan.ours >= 1_500_000.0)
    );
    println!(
        "- scan ≥70% of raw iteration+decode: {:.0}% → {}",
        100.0 * scan.ours / scan.raw_decode,
        verdict(scan.ours >= 0.7 * scan.raw_decode)
    );
    let _ = std::fs::remove_dir_all(&base);
}

fn bench_dir() -> PathBuf {
    let root = match std::env::var_os("TMPDIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
    };
    let dir = root.join(format!("eventlog-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.canonicalize().unwrap()
}

fn fs_of(path: &std::path::Path) -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut best: Option<(usize, String)> = None;
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.len() > 2 && path.starts_with(fields[1]) {
            let len = fields[1].len();
            if best.as_ref().is_none_or(|(l, _)| len > *l) {
                best = Some((len, format!("{} on {}", fields[2], fields[0])));
            }
        }
    }
    best.map_or_else(|| "unknown fs".to_owned(), |(_, fs)| fs)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

fn message(conversation: ConversationId, n: u64) -> Event {
    Event::MessagePosted(MessagePosted {
        conversation,
        message: MessageId::new(),
        author: MessageAuthor::Customer,
        body: Content::Legacy(
            MessageBody::parse(&format!("Hello, my order {n:>12} has not arrived.")).unwrap(),
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

fn envelope(position: u64, event: &Event, prev_hash: [u8; 32]) -> Envelope {
    Envelope {
        position,
        stream: event.stream(),
        stream_version: position,
        event_id: EventId::new(),
        event_type: event.event_type(),
        schema_version: 1,
        codec_version: CODEC_VERSION,
        recorded_at: RecordedAt::now(),
        actor: Actor::System,
        command_id: CommandId::new(),
        correlation_id: CorrelationId::new(),
        prev_hash,
    }
}

fn sample_record() -> Vec<u8> {
    let event = message(ConversationId::new(), 1);
    let mut out = Vec::new();
    codec::encode_record(&envelope(1, &event, [0; 32]), &event, &mut out).unwrap();
    out
}

fn percentile(sorted_us: &[f64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let index = ((sorted_us.len() as f64 - 1.0) * p).round() as usize;
    sorted_us[index]
}

struct Raw {
    ops_per_sec: f64,
    p50_us: f64,
}

fn raw_fsync(base: &std::path::Path, size: usize) -> Raw {
    let path = base.join("raw-fsync");
    let mut file = File::create(&path).unwrap();
    let buf = vec![0x5au8; size];
    let mut latencies = Vec::new();
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < 2.0 {
        let t = Instant::now();
        file.write_all(&buf).unwrap();
        file.sync_all().unwrap();
        latencies.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let raw = Raw {
        ops_per_sec: latencies.len() as f64 / elapsed,
        p50_us: percentile(&latencies, 0.5),
    };
    eprintln!(
        "raw write+fsync: {:.0} ops/s, p50 {:.0} µs",
        raw.ops_per_sec, raw.p50_us
    );
    raw
}

/// The library's layout (see `eventlog/src/keys.rs`): each batch is one group
/// of 256 one-event appends, its records framed into chunks of at most
/// `chunk_bytes` under `e` + first position. Batches are built before the clock
/// starts: this is sled alone (plus the fdatasync the library adds).
fn bare_sled(base: &std::path::Path, chunk_bytes: usize, group: usize) -> f64 {
    // About 100,000 events, at least 200 and at most 2,000 batches.
    let batches_n = (100_000 / group.max(1)).clamp(200, 2_000);
    let path = base.join(format!("bare-sled-{chunk_bytes}-{group}"));
    let db = sled::Config::new()
        .path(&path)
        .flush_every_ms(None)
        .open()
        .unwrap();
    let db_file = File::open(path.join("db")).unwrap();
    let streams: Vec<ConversationId> = (0..group).map(|_| ConversationId::new()).collect();
    let mut position = 0u64;
    let mut prev = [0u8; 32];
    let mut buf = Vec::new();
    let mut batches = Vec::with_capacity(batches_n);
    let mut chunks = 0usize;
    for _ in 0..batches_n {
        let mut batch = sled::Batch::default();
        let mut chunk: Vec<u8> = Vec::new();
        let mut first = 0;
        for id in &streams {
            position += 1;
            let event = message(*id, position);
            buf.clear();
            codec::encode_record(&envelope(position, &event, prev), &event, &mut buf).unwrap();
            prev = codec::record_hash(&buf);
            if !chunk.is_empty() && chunk.len() + 4 + buf.len() > chunk_bytes {
                batch.insert(&chunk_key(first)[..], std::mem::take(&mut chunk));
                chunks += 1;
            }
            if chunk.is_empty() {
                first = position;
                codec::begin_chunk(&mut chunk, first);
            }
            codec::push_chunk_raw(&mut chunk, &buf).unwrap();
        }
        batch.insert(&chunk_key(first)[..], chunk);
        chunks += 1;
        batches.push(batch);
    }
    let start = Instant::now();
    for batch in batches {
        db.apply_batch(batch).unwrap();
        db.flush().unwrap();
        db_file.sync_data().unwrap();
    }
    let rate = position as f64 / start.elapsed().as_secs_f64();
    let blobs = std::fs::read_dir(path.join("blobs")).map_or(0, |d| d.count());
    eprintln!(
        "bare sled ceiling, batches of {group} events, chunks <= {} KiB: {rate:.0} events/s ({:.1} chunks per batch, {blobs} blob files)",
        chunk_bytes / 1024,
        chunks as f64 / batches_n as f64
    );
    rate
}

fn chunk_key(first: u64) -> [u8; 9] {
    let mut key = [b'e'; 9];
    key[1..].copy_from_slice(&first.to_be_bytes());
    key
}

struct Durable {
    writers: usize,
    events_per_sec: f64,
    /// Mean events per group commit (one `apply_batch`).
    events_per_group: f64,
    /// Mean events per flush + fsync.
    events_per_sync: f64,
    p50_us: f64,
    p99_us: f64,
}

fn durable(base: &std::path::Path, writers: usize) -> Durable {
    let path = base.join(format!("durable-{writers}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let log = SledEventLog::open(&path).unwrap();
    let result = runtime.block_on(async {
        let start = Instant::now();
        let deadline = Duration::from_secs_f64(WRITE_SECONDS);
        let mut tasks = Vec::new();
        for _ in 0..writers {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let id = ConversationId::new();
                let stream = StreamId::Conversation(id);
                let mut version = 0;
                let mut latencies = Vec::new();
                while start.elapsed() < deadline {
                    let t = Instant::now();
                    let outcome = log
                        .append(
                            stream,
                            ExpectedVersion::Exact(version),
                            vec![message(id, version)],
                            meta(),
                        )
                        .await
                        .unwrap();
                    latencies.push(t.elapsed().as_secs_f64() * 1e6);
                    version = outcome.stream_version;
                }
                latencies
            }));
        }
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await.unwrap());
        }
        let elapsed = start.elapsed().as_secs_f64();
        latencies.sort_by(f64::total_cmp);
        let stats = log.commit_stats();
        Durable {
            writers,
            events_per_sec: latencies.len() as f64 / elapsed,
            events_per_group: stats.events as f64 / stats.groups.max(1) as f64,
            events_per_sync: stats.events as f64 / stats.syncs.max(1) as f64,
            p50_us: percentile(&latencies, 0.5),
            p99_us: percentile(&latencies, 0.99),
        }
    });
    log.close().unwrap();
    eprintln!(
        "durable, {writers} writers: {:.0} events/s, p50 {:.0} µs, p99 {:.0} µs, {:.1} events/group, {:.1} events/fsync",
        result.events_per_sec,
        result.p50_us,
        result.p99_us,
        result.events_per_group,
        result.events_per_sync
    );
    result
}

struct ScanRates {
    events: u64,
    raw: f64,
    raw_decode: f64,
    ours: f64,
    open: OpenCost,
}

fn best_of<F: FnMut() -> u64>(runs: usize, mut f: F) -> (u64, f64) {
    let mut best = 0.0f64;
    let mut count = 0;
    for _ in 0..runs {
        let start = Instant::now();
        count = f();
        best = best.max(count as f64 / start.elapsed().as_secs_f64());
    }
    (count, best)
}

fn scan(base: &std::path::Path) -> ScanRates {
    let path = base.join("scan");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let log = SledEventLog::open(&path).unwrap();
    let build = Instant::now();
    runtime.block_on(async {
        let log = log.clone();
        let mut tasks = Vec::new();
        for _ in 0..8u64 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let mut written = 0;
                while written < SCAN_EVENTS / 8 {
                    let id = ConversationId::new();
                    let events: Vec<Event> = (0..1000).map(|n| message(id, n)).collect();
                    log.append(
                        StreamId::Conversation(id),
                        ExpectedVersion::NoStream,
                        events,
                        meta(),
                    )
                    .await
                    .unwrap();
                    written += 1000;
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
    eprintln!(
        "built {} events in {:.1} s",
        log.head(),
        build.elapsed().as_secs_f64()
    );
    log.close().unwrap();

    // Raw sled over the same files: plain iteration, then iteration + decode.
    let db = sled::Config::new()
        .path(path.join("sled"))
        .flush_every_ms(None)
        .open()
        .unwrap();
    let (events, raw) = best_of(3, || {
        let mut n = 0u64;
        let mut bytes = 0usize;
        for entry in db.range(&b"e"[..]..&b"f"[..]) {
            let (_, value) = entry.unwrap();
            for record in codec::decode_chunk(&value).unwrap() {
                bytes += record.unwrap().len();
                n += 1;
            }
        }
        std::hint::black_box(bytes);
        n
    });
    let (_, raw_decode) = best_of(3, || {
        let mut n = 0u64;
        for entry in db.range(&b"e"[..]..&b"f"[..]) {
            let (_, value) = entry.unwrap();
            for record in codec::decode_chunk(&value).unwrap() {
                std::hint::black_box(codec::decode_record(record.unwrap()).unwrap());
                n += 1;
            }
        }
        n
    });
    drop(db);

    let rss_before = rss_bytes();
    let opening = Instant::now();
    let log = SledEventLog::open(&path).unwrap();
    let open_secs = opening.elapsed().as_secs_f64();
    let stats = log.index_stats();
    let rss_delta = rss_bytes().saturating_sub(rss_before);
    eprintln!(
        "open of {} events ({} streams, {} commands): {:.3} s, indexes ~{:.1} MiB (estimate), RSS +{:.1} MiB",
        log.head(),
        stats.streams,
        stats.commands,
        open_secs,
        stats.approx_bytes as f64 / 1048576.0,
        rss_delta as f64 / 1048576.0
    );
    let (_, ours) = best_of(3, || {
        let mut n = 0u64;
        for event in log.scan(1) {
            std::hint::black_box(event.unwrap());
            n += 1;
        }
        n
    });
    log.close().unwrap();
    eprintln!("scan: raw {raw:.0}/s, raw+decode {raw_decode:.0}/s, ours {ours:.0}/s");
    ScanRates {
        events,
        raw,
        raw_decode,
        ours,
        open: OpenCost {
            secs: open_secs,
            streams: stats.streams,
            commands: stats.commands,
            index_bytes: stats.approx_bytes,
            rss_delta,
        },
    }
}

struct OpenCost {
    secs: f64,
    streams: usize,
    commands: usize,
    index_bytes: usize,
    rss_delta: usize,
}

/// Resident set size of this process, from /proc (0 where unavailable).
fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// The worst case for the indexes: 1,000,000 one-event appends (one command id
/// each) over 100,000 streams; then the time and memory of reopening it.
fn open_many_commands(base: &std::path::Path) -> OpenCost {
    const EVENTS: u64 = 1_000_000;
    const WRITERS: u64 = 256;
    let path = base.join("open");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let log = SledEventLog::open(&path).unwrap();
    let build = Instant::now();
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..WRITERS {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let mut id = ConversationId::new();
                for n in 0..EVENTS / WRITERS {
                    if n % 10 == 0 {
                        id = ConversationId::new();
                    }
                    log.append(
                        StreamId::Conversation(id),
                        ExpectedVersion::Any,
                        vec![message(id, n)],
                        meta(),
                    )
                    .await
                    .unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
    eprintln!(
        "built {} one-event appends in {:.1} s",
        log.head(),
        build.elapsed().as_secs_f64()
    );
    log.close().unwrap();
    let rss_before = rss_bytes();
    let opening = Instant::now();
    let log = SledEventLog::open(&path).unwrap();
    let secs = opening.elapsed().as_secs_f64();
    let stats = log.index_stats();
    let rss_delta = rss_bytes().saturating_sub(rss_before);
    eprintln!(
        "open of {} events ({} streams, {} commands): {:.3} s, indexes ~{:.1} MiB (estimate), RSS +{:.1} MiB",
        log.head(),
        stats.streams,
        stats.commands,
        secs,
        stats.approx_bytes as f64 / 1048576.0,
        rss_delta as f64 / 1048576.0
    );
    log.close().unwrap();
    OpenCost {
        secs,
        streams: stats.streams,
        commands: stats.commands,
        index_bytes: stats.approx_bytes,
        rss_delta,
    }
}
