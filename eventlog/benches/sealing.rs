#![allow(clippy::unwrap_used)]
//! Sealing benchmark (SPEC section 12): reported, not asserted.
//!
//! `cargo bench -p backchannel-eventlog --bench sealing`
//!
//! In one run, on sled in the target directory (or `$TMPDIR`): durable
//! appends of public messages from 256 concurrent writers (one conversation
//! each), first with the customer data in clear (as before encryption
//! existed: no key store), then sealed under each conversation's data key
//! (the server's way: the log makes each key durable before its first event,
//! then seals and stores); then a rebuild of each log (`Log::open_replaying`,
//! every event decoded, and opened with the key store for the sealed one).
//! Alternating rounds (`SEALING_BENCH_ROUNDS`, default 3) and the median are
//! reported, so the two sides share the machine's noise.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use backchannel_domain::events::{Event, MessageAuthor, MessagePosted, StreamId};
use backchannel_domain::ids::{CommandId, ConversationId, CorrelationId, MessageId};
use backchannel_domain::model::Actor;
use backchannel_domain::values::{Content, MessageBody};
use backchannel_eventlog::{AppendMeta, ExpectedVersion, KeyWrap, Log, StoreSpec};

const WRITERS: usize = 256;
const SECONDS: f64 = 3.0;

fn main() {
    let base = std::env::var_os("TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
        .join(format!("sealing-bench-{}", std::process::id()));
    let rounds: usize = std::env::var("SEALING_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    println!("# Sealing benchmark ({WRITERS} writers, {SECONDS} s per run, {rounds} rounds)\n");
    let mut appends = [Vec::new(), Vec::new()];
    let mut rebuilds = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        for (side, sealed) in [false, true].into_iter().enumerate() {
            let dir = base.join(format!("r{round}-{side}"));
            let (events_per_sec, events) = append(&dir, sealed);
            let rebuild = rebuild(&dir, sealed, events);
            println!(
                "round {round}, {}: {events_per_sec:.0} appends/s; rebuild {rebuild:.0} events/s ({events} events)",
                label(sealed)
            );
            appends[side].push(events_per_sec);
            rebuilds[side].push(rebuild);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    let _ = std::fs::remove_dir_all(&base);
    println!("\n| measure | in clear | sealed | sealed / in clear |");
    println!("|---|---|---|---|");
    for (name, figures) in [
        ("durable appends/s, 256 writers", &appends),
        ("rebuild events/s", &rebuilds),
    ] {
        let (clear, sealed) = (median(&figures[0]), median(&figures[1]));
        println!(
            "| {name} | {clear:.0} | {sealed:.0} | {:.0}% |",
            100.0 * sealed / clear
        );
    }
}

fn label(sealed: bool) -> &'static str {
    if sealed { "sealed" } else { "in clear" }
}

fn wrap() -> KeyWrap {
    KeyWrap::from_secret(b"sealing benchmark secret, at least 32 bytes")
}

fn open(dir: &Path, sealed: bool, visit: &mut dyn FnMut()) -> Log {
    let spec = StoreSpec::sled(dir);
    let keys = sealed.then(wrap);
    Log::open_replaying(&spec, 1, keys.as_ref(), |_| {
        visit();
        Ok::<(), std::convert::Infallible>(())
    })
    .unwrap()
}

fn append(dir: &Path, sealed: bool) -> (f64, u64) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let log = open(dir, sealed, &mut || {});
    let (rate, events) = runtime.block_on(async {
        let start = Instant::now();
        let deadline = Duration::from_secs_f64(SECONDS);
        let tasks: Vec<_> = (0..WRITERS)
            .map(|_| {
                let log = log.clone();
                tokio::spawn(async move {
                    let id = ConversationId::new();
                    let mut version = 0;
                    while start.elapsed() < deadline {
                        version = log
                            .append(
                                StreamId::Conversation(id),
                                ExpectedVersion::Exact(version),
                                vec![message(id, version, sealed)],
                                AppendMeta {
                                    command_id: CommandId::new(),
                                    correlation_id: CorrelationId::new(),
                                    actor: Actor::System,
                                },
                            )
                            .await
                            .unwrap()
                            .stream_version;
                    }
                    version
                })
            })
            .collect();
        let mut events = 0;
        for task in tasks {
            events += task.await.unwrap();
        }
        (events as f64 / start.elapsed().as_secs_f64(), events)
    });
    drop(runtime);
    log.close().unwrap();
    (rate, events)
}

fn rebuild(dir: &Path, sealed: bool, events: u64) -> f64 {
    let start = Instant::now();
    let mut seen = 0u64;
    let log = open(dir, sealed, &mut || seen += 1);
    let rate = seen as f64 / start.elapsed().as_secs_f64();
    assert_eq!(seen, events);
    log.close().unwrap();
    rate
}

fn message(conversation: ConversationId, n: u64, sealed: bool) -> Event {
    let body = MessageBody::parse(&format!("message {n}: where is my order? it is late")).unwrap();
    Event::MessagePosted(MessagePosted {
        conversation,
        message: MessageId::new(),
        author: MessageAuthor::Customer,
        body: if sealed {
            Content::Plain(body)
        } else {
            Content::Legacy(body)
        },
    })
}

fn median(figures: &[f64]) -> f64 {
    let mut sorted = figures.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}
