#![allow(clippy::unwrap_used)]
//! Event log benchmark: reported, not asserted.
//!
//! `cargo bench -p backchannel-eventlog --bench log`
//!
//! Measures, on the file system of the target directory (or `$TMPDIR` when set,
//! which should not be a tmpfs): the raw write+fsync rate, the bare sled ceiling
//! (the library's keys and values applied in batches of 256 with flush + fsync),
//! durable appends with 1, 16 and 256 concurrent writers, and a full-log scan
//! against raw sled iteration. Figures go to BENCHMARKS.md by hand.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use backchannel_domain::events::{Event, MessageAuthor, MessagePosted, StreamId};
use backchannel_domain::ids::{CommandId, ConversationId, CorrelationId, EventId, MessageId};
use backchannel_domain::model::Actor;
use backchannel_domain::values::MessageBody;
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
            "sled" => drop(bare_sled(&base)),
            "durable" => drop(durable(&base, 256)),
            _ => drop(scan(&base)),
        }
        let _ = std::fs::remove_dir_all(&base);
        return;
    }
    let raw = raw_fsync(&base, sample.len());
    let ceiling = bare_sled(&base);
    let runs: Vec<Durable> = [1, 16, 256]
        .into_iter()
        .map(|w| durable(&base, w))
        .collect();
    let scan = scan(&base);

    println!("| measurement | result |");
    println!("|---|---|");
    println!(
        "| raw write+fsync ({} B, `sync_all`) | {:.0} ops/s, p50 {:.0} µs |",
        sample.len(),
        raw.ops_per_sec,
        raw.p50_us
    );
    println!(
        "| bare sled ceiling (`apply_batch` of 256 + `flush` + fsync) | {:.0} events/s |",
        ceiling
    );
    for run in &runs {
        println!(
            "| durable appends, {} writer(s) | {:.0} events/s, p50 {:.0} µs, p99 {:.0} µs; {:.2}× raw fsync rate, {:.0}% of sled ceiling |",
            run.writers,
            run.events_per_sec,
            run.p50_us,
            run.p99_us,
            run.events_per_sec / raw.ops_per_sec,
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
    println!();

    let w256 = &runs[2];
    let w1 = &runs[0];
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!("Targets:");
    println!(
        "- ≥80,000 durable events/s with 256 writers: {:.0} → {}",
        w256.events_per_sec,
        verdict(w256.events_per_sec >= 80_000.0)
    );
    println!(
        "- 256 writers ≥ half the bare sled ceiling: {:.0}% → {}",
        100.0 * w256.events_per_sec / ceiling,
        verdict(w256.events_per_sec >= ceiling / 2.0)
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
        body: MessageBody::parse(&format!("Hello, my order {n:>12} has not arrived.")).unwrap(),
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

/// The library's key layout (see `eventlog/src/keys.rs`), rebuilt here so the
/// ceiling writes exactly what an append of one event writes. Batches are built
/// before the clock starts: this is sled alone.
fn bare_sled(base: &std::path::Path) -> f64 {
    const BATCHES: usize = 160;
    let path = base.join("bare-sled");
    let db = sled::Config::new()
        .path(&path)
        .flush_every_ms(None)
        .open()
        .unwrap();
    let db_file = File::open(path.join("db")).unwrap();
    let streams: Vec<ConversationId> = (0..256).map(|_| ConversationId::new()).collect();
    let mut position = 0u64;
    let mut prev = [0u8; 32];
    let mut buf = Vec::new();
    let mut batches = Vec::with_capacity(BATCHES);
    for round in 0..BATCHES as u64 {
        let mut batch = sled::Batch::default();
        for id in &streams {
            position += 1;
            let event = message(*id, position);
            buf.clear();
            codec::encode_record(&envelope(position, &event, prev), &event, &mut buf).unwrap();
            prev = codec::record_hash(&buf);
            let mut key = vec![b'e'];
            key.extend_from_slice(&position.to_be_bytes());
            batch.insert(key, buf.as_slice());
            let mut skey = vec![b's', 1];
            skey.extend_from_slice(id.as_bytes());
            skey.extend_from_slice(&(round + 1).to_be_bytes());
            batch.insert(skey, &position.to_be_bytes()[..]);
            let mut ckey = vec![b'c'];
            ckey.extend_from_slice(CommandId::new().as_bytes());
            batch.insert(ckey, &[0u8; 24][..]);
        }
        batches.push(batch);
    }
    let start = Instant::now();
    for batch in batches {
        db.apply_batch(batch).unwrap();
        db.flush().unwrap();
        db_file.sync_data().unwrap();
    }
    let rate = position as f64 / start.elapsed().as_secs_f64();
    eprintln!("bare sled ceiling: {rate:.0} events/s");
    rate
}

struct Durable {
    writers: usize,
    events_per_sec: f64,
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
        Durable {
            writers,
            events_per_sec: latencies.len() as f64 / elapsed,
            p50_us: percentile(&latencies, 0.5),
            p99_us: percentile(&latencies, 0.99),
        }
    });
    log.close().unwrap();
    eprintln!(
        "durable, {writers} writers: {:.0} events/s, p50 {:.0} µs, p99 {:.0} µs",
        result.events_per_sec, result.p50_us, result.p99_us
    );
    result
}

struct ScanRates {
    events: u64,
    raw: f64,
    raw_decode: f64,
    ours: f64,
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
            bytes += value.len();
            n += 1;
        }
        std::hint::black_box(bytes);
        n
    });
    let (_, raw_decode) = best_of(3, || {
        let mut n = 0u64;
        for entry in db.range(&b"e"[..]..&b"f"[..]) {
            let (_, value) = entry.unwrap();
            std::hint::black_box(codec::decode_record(&value).unwrap());
            n += 1;
        }
        n
    });
    drop(db);

    let log = SledEventLog::open(&path).unwrap();
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
    }
}
