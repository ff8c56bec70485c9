#![allow(clippy::unwrap_used)]
//! An acknowledged append survives `kill -9` (SPEC section 7).
//!
//! The test re-executes its own binary as a child that appends under load from
//! several writers and prints each append only after it was acknowledged; it kills
//! the child with SIGKILL at a random moment, reopens the store and checks that
//! every acknowledged event is there, unchanged, and that the log verifies.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use backchannel_domain::events::{Event, StreamId};
use backchannel_domain::ids::CommandId;
use backchannel_eventlog::{ExpectedVersion, SledEventLog};
use rand::Rng;
use support::{conversation, message, meta_for};

const CHILD_ENV: &str = "BACKCHANNEL_EVENTLOG_CRASH_CHILD_STORE";
const CHILD_WRITERS: u64 = 8;
const ROUNDS: usize = 5;

/// The events writer `w` appends as its `n`th append: one or two messages.
fn events_for(writer: u64, n: u64) -> Vec<Event> {
    let id = conversation(writer);
    (0..1 + n % 2).map(|k| message(id, n * 10 + k)).collect()
}

struct Ack {
    writer: u64,
    n: u64,
    first: u64,
    last: u64,
    command: CommandId,
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut fields = line.strip_prefix("ack ")?.split(' ');
    Some(Ack {
        writer: fields.next()?.parse().ok()?,
        n: fields.next()?.parse().ok()?,
        first: fields.next()?.parse().ok()?,
        last: fields.next()?.parse().ok()?,
        command: fields.next()?.parse().ok()?,
    })
}

#[tokio::test]
async fn acknowledged_appends_survive_sigkill() {
    let mut rng = rand::rng();
    for round in 0..ROUNDS {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (first_ack, acking) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            // Only complete lines count: a line cut by the kill has no newline.
            let mut lines = Vec::new();
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                if line.ends_with('\n') {
                    if parse_ack(line.trim_end()).is_some() {
                        let _ = first_ack.send(());
                    }
                    lines.push(line.trim_end().to_owned());
                }
                line.clear();
            }
            lines
        });
        // The kill lands at a random moment while the child is appending:
        // counted from its first acknowledgement, not from its start (a
        // loaded machine may take seconds to start it).
        let _ = acking.recv_timeout(Duration::from_secs(60));
        let delay = Duration::from_millis(rng.random_range(50..1200));
        std::thread::sleep(delay);
        child.kill().unwrap();
        child.wait().unwrap();
        let acks: Vec<Ack> = reader
            .join()
            .unwrap()
            .iter()
            .filter_map(|l| parse_ack(l))
            .collect();
        assert!(
            !acks.is_empty(),
            "round {round}: the child acknowledged nothing"
        );

        let log = SledEventLog::open(dir.path()).unwrap();
        let report = log.verify().unwrap();
        let max_acked = acks.iter().map(|a| a.last).max().unwrap();
        assert!(
            report.events >= max_acked,
            "round {round}: head {} < acked {max_acked}",
            report.events
        );
        for ack in &acks {
            let expected = events_for(ack.writer, ack.n);
            let read = log.read_all(ack.first, expected.len()).await.unwrap();
            assert_eq!(read.len() as u64, ack.last - ack.first + 1);
            for (recorded, event) in read.iter().zip(&expected) {
                assert_eq!(
                    &recorded.event, event,
                    "round {round}, position {}",
                    recorded.envelope.position
                );
                assert_eq!(recorded.envelope.command_id, ack.command);
            }
        }
        // The recovered store takes new appends where the old ones ended.
        let id = conversation(0);
        let outcome = log
            .append(
                StreamId::Conversation(id),
                ExpectedVersion::Any,
                vec![message(id, u64::MAX / 20)],
                meta_for(CommandId::new()),
            )
            .await
            .unwrap();
        assert_eq!(outcome.first_position, report.events + 1);
        log.verify().unwrap();
        log.close().unwrap();
        println!(
            "round {round}: killed after {delay:?}, {} acknowledged appends, {} events recovered",
            acks.len(),
            report.events
        );
    }
}

/// The child process of `acknowledged_appends_survive_sigkill`. Does nothing
/// unless started by it.
#[test]
fn crash_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let log = SledEventLog::open(&path).unwrap();
        let started = Instant::now();
        let mut writers = Vec::new();
        for writer in 0..CHILD_WRITERS {
            let log = log.clone();
            writers.push(tokio::spawn(async move {
                let stream = StreamId::Conversation(conversation(writer));
                let mut version = 0;
                let mut n = 0;
                // Bounded in case the parent dies without killing us.
                while started.elapsed() < Duration::from_secs(30) {
                    let command = CommandId::new();
                    let outcome = log
                        .append(
                            stream,
                            ExpectedVersion::Exact(version),
                            events_for(writer, n),
                            meta_for(command),
                        )
                        .await
                        .unwrap();
                    version = outcome.stream_version;
                    let mut out = std::io::stdout().lock();
                    writeln!(
                        out,
                        "ack {writer} {n} {} {} {command}",
                        outcome.first_position, outcome.last_position
                    )
                    .unwrap();
                    out.flush().unwrap();
                    n += 1;
                }
            }));
        }
        for writer in writers {
            writer.await.unwrap();
        }
    });
}
