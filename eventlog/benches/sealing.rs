#![allow(clippy::unwrap_used)]
//! Sealing benchmark (SPEC section 12): reported, not asserted.
//!
//! `cargo bench -p backchannel-eventlog --bench sealing`
//!
//! In one run, on sled in the target directory (or `$TMPDIR`), each side
//! twice per round (`SEALING_BENCH_ROUNDS`, default 3; medians reported, so
//! both sides share the machine's noise): customer data in clear (as before
//! encryption existed: no key store) against sealed under each
//! conversation's data key (the server's way: the log makes each key durable
//! before the conversation's first event, then seals and stores).
//!
//! - openings: 256 writers each post the first message of 2 new
//!   conversations (sealed: this makes and fsyncs each conversation's key);
//! - durable appends: the same 256 writers post `SEALING_BENCH_EVENTS`
//!   (default 200) more messages each to their conversations;
//! - rebuild: the whole log (same size on both sides) replayed by
//!   `Log::open_replaying`, every event decoded, and opened with the key
//!   store on the sealed side.

use std::path::{Path, PathBuf};
use std::time::Instant;

use backchannel_domain::events::{Event, MessageAuthor, MessagePosted, StreamId};
use backchannel_domain::ids::{CommandId, ConversationId, CorrelationId, MessageId};
use backchannel_domain::model::Actor;
use backchannel_domain::values::{Content, MessageBody};
use backchannel_eventlog::{AppendMeta, ExpectedVersion, KeyWrap, Log, StoreSpec};

const WRITERS: usize = 256;
const OPENED_PER_WRITER: usize = 2;

fn main() {
    let base = std::env::var_os("TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
        .join(format!("sealing-bench-{}", std::process::id()));
    let rounds: usize = std::env::var("SEALING_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let per_writer: u64 = std::env::var("SEALING_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    println!(
        "# Sealing benchmark ({WRITERS} writers, {OPENED_PER_WRITER} conversations and {per_writer} more messages each, {rounds} rounds)\n"
    );
    let mut openings = [Vec::new(), Vec::new()];
    let mut appends = [Vec::new(), Vec::new()];
    let mut rebuilds = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        for (side, sealed) in [false, true, true, false]
            .into_iter()
            .map(|s| (usize::from(s), s))
        {
            let dir = base.join(format!("r{round}-{side}"));
            let run = append(&dir, sealed, per_writer);
            let rebuild = rebuild(&dir, sealed, run.events);
            println!(
                "round {round}, {}: {:.0} openings/s, {:.0} appends/s; rebuild {rebuild:.0} events/s ({} events)",
                label(sealed),
                run.openings_per_sec,
                run.appends_per_sec,
                run.events
            );
            openings[side].push(run.openings_per_sec);
            appends[side].push(run.appends_per_sec);
            rebuilds[side].push(rebuild);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    let _ = std::fs::remove_dir_all(&base);
    println!("\n| measure (median) | in clear | sealed | sealed / in clear |");
    println!("|---|---|---|---|");
    for (name, figures) in [
        (
            "conversations opened/s (first message), 256 writers",
            &openings,
        ),
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

struct Run {
    openings_per_sec: f64,
    appends_per_sec: f64,
    events: u64,
}

fn append(dir: &Path, sealed: bool, per_writer: u64) -> Run {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let log = open(dir, sealed, &mut || {});
    let meta = || AppendMeta {
        command_id: CommandId::new(),
        correlation_id: CorrelationId::new(),
        actor: Actor::System,
    };
    let run = runtime.block_on(async {
        // Openings: the first message of each writer's conversations.
        let start = Instant::now();
        let tasks: Vec<_> = (0..WRITERS)
            .map(|_| {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut ids = Vec::new();
                    for _ in 0..OPENED_PER_WRITER {
                        let id = ConversationId::new();
                        log.append(
                            StreamId::Conversation(id),
                            ExpectedVersion::NoStream,
                            vec![message(id, 0, sealed)],
                            meta(),
                        )
                        .await
                        .unwrap();
                        ids.push(id);
                    }
                    ids
                })
            })
            .collect();
        let mut conversations = Vec::new();
        for task in tasks {
            conversations.push(task.await.unwrap());
        }
        let opened = (WRITERS * OPENED_PER_WRITER) as f64;
        let openings_per_sec = opened / start.elapsed().as_secs_f64();
        // Steady appends to conversations that have their keys.
        let start = Instant::now();
        let tasks: Vec<_> = conversations
            .into_iter()
            .map(|ids| {
                let log = log.clone();
                tokio::spawn(async move {
                    for n in 0..per_writer {
                        let id = ids[usize::try_from(n).unwrap_or(0) % ids.len()];
                        log.append(
                            StreamId::Conversation(id),
                            ExpectedVersion::Any,
                            vec![message(id, n + 1, sealed)],
                            meta(),
                        )
                        .await
                        .unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let appended = WRITERS as u64 * per_writer;
        Run {
            openings_per_sec,
            appends_per_sec: appended as f64 / start.elapsed().as_secs_f64(),
            events: appended + (WRITERS * OPENED_PER_WRITER) as u64,
        }
    });
    drop(runtime);
    log.close().unwrap();
    run
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
