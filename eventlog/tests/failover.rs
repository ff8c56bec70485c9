#![allow(clippy::unwrap_used)]
//! Failover of the PostgreSQL log (SPEC section 11): an acknowledged append
//! survives the loss of the primary when a synchronous standby is promoted.
//!
//! Each round starts a primary and a standby (`backchannel-pgtest`), and
//! connects two log instances (two nodes) through a multi-host URL that
//! follows the promotion: one carries the load, the other runs a tail from
//! position 1. Load: [`WRITERS`] tasks, each appending one event at a time
//! with a fresh command id, to its own stream (exact expected version) or to
//! one of [`SHARED_STREAMS`] shared streams (any version), journaling every
//! acknowledged append (command id, position, event) and every unknown
//! outcome. Fault: the primary's processes are SIGKILLed at a random moment
//! (the seed is printed; `BACKCHANNEL_FAILOVER_SEED` replays it), then the
//! standby is promoted. A writer whose append failed or whose outcome is
//! unknown retries it with its original command id until it gets a definite
//! answer, which is how a client must behave. Then the checker (on a third,
//! fresh instance) reports: acknowledged events missing from their position,
//! holes, a chain or head that does not verify, command ids appearing twice,
//! and a pre-failover tail that disagrees with a fresh one without saying it
//! lost records.
//!
//! `BACKCHANNEL_FAILOVER_ROUNDS` sets the rounds of the synchronous test (2 by
//! default). The negative control runs the same load and checker with an
//! asynchronous standby whose WAL receiver is suspended before the kill: the
//! checker must report acknowledged events lost, which shows it can fail.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use backchannel_domain::events::Event;
use backchannel_domain::ids::CommandId;
use backchannel_eventlog::{
    AppendError, ChainCheck, Error, ExpectedVersion, PgEventLog, PgOptions, RecordedEvent,
};
use backchannel_pgtest::PgCluster;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use support::{conversation, message, meta_for, opened, stream};
use tokio::sync::watch;

/// Concurrent writer tasks of the load.
const WRITERS: u64 = 32;
/// Streams every writer also appends to (every fourth append).
const SHARED_STREAMS: u64 = 4;
/// How long a writer keeps retrying one append before giving up (a finding).
const DECIDE_WITHIN: Duration = Duration::from_secs(60);

/// The log's tuning for a round: the time the writer takes to settle an
/// unknown commit outcome is drawn, so that some rounds settle on the
/// promoted standby and others answer [`AppendError::OutcomeUnknown`] first.
fn options(resolve_timeout: Duration) -> PgOptions {
    PgOptions {
        resolve_timeout,
        poll_interval: Duration::from_millis(50),
        ..PgOptions::default()
    }
}

/// One acknowledged append (one event).
struct Ack {
    command: CommandId,
    position: u64,
    event: Event,
}

/// What one writer saw.
#[derive(Default)]
struct Journal {
    acknowledged: Vec<Ack>,
    /// Answers [`AppendError::OutcomeUnknown`].
    unknown: u64,
    /// Answers "nothing was committed" ([`AppendError::Storage`]).
    failed: u64,
    /// Acknowledgements that came as a duplicate of an earlier attempt.
    deduplicated: u64,
    /// Appends refused for their expected version (a lost acknowledged
    /// append of the writer's own stream shows up so).
    rejected: Vec<String>,
    /// Appends still without a definite answer after [`DECIDE_WITHIN`].
    undecided: Vec<CommandId>,
}

/// Appends until `stop`, retrying each append with its command id until it
/// gets a definite answer.
async fn writer(log: PgEventLog, id: u64, stop: Arc<AtomicBool>, acks: Arc<AtomicU64>) -> Journal {
    let mut journal = Journal::default();
    let own = conversation(id + 1);
    let mut version = 0;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let shared = version > 0 && n.is_multiple_of(4);
        let (target, expected, event) = if shared {
            let s = 1000 + id % SHARED_STREAMS;
            (
                stream(s),
                ExpectedVersion::Any,
                message(conversation(s), id * 1_000_000 + n),
            )
        } else if version == 0 {
            (stream(id + 1), ExpectedVersion::NoStream, opened(own))
        } else {
            (
                stream(id + 1),
                ExpectedVersion::Exact(version),
                message(own, n),
            )
        };
        let command = CommandId::new();
        let give_up = Instant::now() + DECIDE_WITHIN;
        let outcome = loop {
            match log
                .append(target, expected, vec![event.clone()], meta_for(command))
                .await
            {
                Ok(outcome) => break outcome,
                Err(AppendError::OutcomeUnknown(_)) => journal.unknown += 1,
                Err(AppendError::Storage(_)) => journal.failed += 1,
                Err(err @ AppendError::WrongExpectedVersion { .. }) => {
                    journal.rejected.push(err.to_string());
                    return journal;
                }
                Err(err) => panic!("writer {id}: unexpected answer {err}"),
            }
            if Instant::now() > give_up {
                journal.undecided.push(command);
                return journal;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        if outcome.deduplicated {
            journal.deduplicated += 1;
        }
        if !shared {
            version = outcome.stream_version;
        }
        assert_eq!(outcome.first_position, outcome.last_position);
        journal.acknowledged.push(Ack {
            command,
            position: outcome.first_position,
            event,
        });
        acks.fetch_add(1, Ordering::Relaxed);
    }
    journal
}

/// What a tail running through the failover yielded.
struct Followed {
    events: Vec<RecordedEvent>,
    /// The tail's own report that the log lost records it had applied.
    lost: Option<String>,
    /// Read errors while no primary answered (retried).
    errors: u64,
}

/// Follows `log` from position 1 until it has yielded `until` events (set
/// once the load is over), or it reports lost records, or a minute passes.
async fn follow(log: PgEventLog, until: watch::Receiver<u64>) -> Followed {
    let mut tail = log.tail(1);
    let mut followed = Followed {
        events: Vec::new(),
        lost: None,
        errors: 0,
    };
    let mut last_progress = Instant::now();
    while (followed.events.len() as u64) < *until.borrow() {
        if last_progress.elapsed() > Duration::from_secs(60) {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(200), tail.next()).await {
            Err(_) => {}
            Ok(None) => break,
            Ok(Some(Ok(event))) => {
                followed.events.push(event);
                last_progress = Instant::now();
            }
            Ok(Some(Err(err @ Error::Broken { .. }))) => {
                followed.lost = Some(err.to_string());
                break;
            }
            Ok(Some(Err(_))) => {
                followed.errors += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    followed
}

/// The checker's report; [`Findings::is_clean`] when the failover lost
/// nothing.
#[derive(Debug, Default)]
struct Findings {
    head: u64,
    /// Acknowledged appends not found at their position with their event.
    lost: Vec<(CommandId, u64)>,
    /// Holes, a chain that does not verify, a head that does not match.
    broken: Vec<String>,
    /// Command ids stored more than once.
    duplicated: Vec<CommandId>,
    /// The pre-failover tail's disagreement with a fresh one.
    tail: Vec<String>,
    /// The pre-failover tail's own report of lost records.
    tail_reported_loss: Option<String>,
    /// Writers refused or left undecided.
    writers: Vec<String>,
}

impl Findings {
    fn is_clean(&self) -> bool {
        self.lost.is_empty()
            && self.broken.is_empty()
            && self.duplicated.is_empty()
            && self.tail.is_empty()
            && self.tail_reported_loss.is_none()
            && self.writers.is_empty()
    }
}

/// Reads the whole log through `log` (a fresh instance) and checks it
/// against the writers' journals and the tail that ran through the failover.
async fn check(log: &PgEventLog, journals: &[Journal], followed: &Followed) -> Findings {
    let mut findings = Findings::default();
    let (head, head_hash) = log.committed_head().await.unwrap();
    findings.head = head;
    // Positions 1..=head, each record chained to the previous one.
    let mut chain = ChainCheck::new();
    let mut events = Vec::new();
    let mut next = 1;
    'read: loop {
        let page = match log.raw_records(next, 1000).await {
            Ok(page) => page,
            Err(err) => {
                findings.broken.push(format!("reading from {next}: {err}"));
                break;
            }
        };
        if page.is_empty() {
            break;
        }
        for (position, record) in page {
            if position != next {
                findings.broken.push(format!("hole: {next} is missing"));
                break 'read;
            }
            match chain.check(&record) {
                Ok(event) => events.push(event),
                Err(err) => {
                    findings
                        .broken
                        .push(format!("the chain breaks at {next}: {err}"));
                    break 'read;
                }
            }
            next += 1;
        }
    }
    if chain.events() != head || chain.head_hash() != head_hash {
        findings.broken.push(format!(
            "the records end at {} but the committed head is {head} (or its hash differs)",
            chain.events()
        ));
    }
    // A fresh tail from 1 yields the same events.
    let mut fresh = Vec::new();
    let mut tail = log.tail(1);
    while (fresh.len() as u64) < head {
        match tokio::time::timeout(Duration::from_secs(10), tail.next()).await {
            Ok(Some(Ok(event))) => fresh.push(event),
            other => {
                findings.broken.push(format!(
                    "a fresh tail stopped at {}: {other:?}",
                    fresh.len()
                ));
                break;
            }
        }
    }
    if fresh != events {
        findings
            .broken
            .push("a fresh tail disagrees with a plain read".to_owned());
    }
    // No command twice.
    let mut seen: HashMap<CommandId, u64> = HashMap::new();
    for event in &events {
        *seen.entry(event.envelope.command_id).or_default() += 1;
    }
    findings.duplicated = seen
        .into_iter()
        .filter(|(_, count)| *count > 1)
        .map(|(command, _)| command)
        .collect();
    // Every acknowledged event at its position.
    for journal in journals {
        for ack in &journal.acknowledged {
            let held = ack
                .position
                .checked_sub(1)
                .and_then(|index| events.get(index as usize))
                .is_some_and(|e| e.envelope.command_id == ack.command && e.event == ack.event);
            if !held {
                findings.lost.push((ack.command, ack.position));
            }
        }
        findings.writers.extend(journal.rejected.iter().cloned());
        findings.writers.extend(
            journal
                .undecided
                .iter()
                .map(|c| format!("{c:?} got no definite answer")),
        );
    }
    findings.lost.sort_by_key(|(_, position)| *position);
    // The tail that ran through the failover agrees with the fresh one, or
    // said it lost records.
    findings.tail_reported_loss = followed.lost.clone();
    if let Some(at) = followed
        .events
        .iter()
        .zip(&events)
        .position(|(old, new)| old != new)
    {
        if followed.lost.is_none() {
            findings.tail.push(format!(
                "the tail yielded a different event at {} and did not report it",
                at + 1
            ));
        }
    } else if followed.events.len() > events.len() && followed.lost.is_none() {
        findings.tail.push(format!(
            "the tail yielded {} events, the log holds {}",
            followed.events.len(),
            events.len()
        ));
    } else if followed.events.len() < events.len() && followed.lost.is_none() {
        findings.tail.push(format!(
            "the tail stopped at {} of {}",
            followed.events.len(),
            events.len()
        ));
    }
    findings
}

/// A round's figures, printed.
struct Figures {
    seed: u64,
    acknowledged: usize,
    unknown: u64,
    failed: u64,
    deduplicated: u64,
    tail_errors: u64,
    kill_after_ms: u64,
    /// Acknowledged by the promoted standby (the same log instances).
    after_promotion: u64,
    resolve_ms: u128,
    seconds: f64,
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {}, resolve_timeout {} ms, killed after {} ms: {} acknowledged ({} after the promotion), {} unknown outcomes, {} failed \
             attempts (retried), {} acknowledged as duplicates of an earlier attempt, {} tail \
             read errors, {:.1} s",
            self.seed,
            self.resolve_ms,
            self.kill_after_ms,
            self.acknowledged,
            self.after_promotion,
            self.unknown,
            self.failed,
            self.deduplicated,
            self.tail_errors,
            self.seconds
        )
    }
}

/// One round: start the clusters, load, kill, promote, settle, check.
async fn round(synchronous: bool, seed: u64) -> (Findings, Figures) {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut primary = tokio::task::block_in_place(PgCluster::start);
    let standby = tokio::task::block_in_place(|| PgCluster::start_standby(&primary, synchronous));
    let url = PgCluster::failover_url(&primary, &standby, "postgres");
    let resolve_timeout = Duration::from_millis(*[200, 3000].choose(&mut rng).unwrap());
    let log = PgEventLog::connect(&url, options(resolve_timeout))
        .await
        .unwrap();
    let other_node = PgEventLog::connect(&url, options(resolve_timeout))
        .await
        .unwrap();
    let (until_tx, until) = watch::channel(u64::MAX);
    let follower = tokio::spawn(follow(other_node, until));
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|id| tokio::spawn(writer(log.clone(), id, stop.clone(), acks.clone())))
        .collect();

    let kill_after = rng.random_range(300..1500);
    tokio::time::sleep(Duration::from_millis(kill_after)).await;
    if !synchronous {
        // Make the kill land while the standby lags: the primary sends it
        // nothing more (the kill ends the suspended senders too).
        tokio::task::block_in_place(|| primary.suspend_wal_senders(true));
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..600))).await;
    }
    tokio::task::block_in_place(|| primary.kill());
    tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
    tokio::task::block_in_place(|| standby.promote());
    // Load on the promoted standby for a while, then stop.
    let at_promotion = acks.load(Ordering::Relaxed);
    let promoted = Instant::now();
    while acks.load(Ordering::Relaxed) < at_promotion + 500
        && promoted.elapsed() < Duration::from_secs(3)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let after_promotion = acks.load(Ordering::Relaxed) - at_promotion;
    let mut journals = Vec::new();
    for writer in writers {
        journals.push(writer.await.unwrap());
    }
    let checker = PgEventLog::connect(&url, options(resolve_timeout))
        .await
        .unwrap();
    let (head, _) = checker.committed_head().await.unwrap();
    // The follower may have stopped already (it reported lost records).
    until_tx.send_replace(head);
    let followed = follower.await.unwrap();
    let findings = check(&checker, &journals, &followed).await;
    let figures = Figures {
        seed,
        acknowledged: journals.iter().map(|j| j.acknowledged.len()).sum(),
        unknown: journals.iter().map(|j| j.unknown).sum(),
        failed: journals.iter().map(|j| j.failed).sum(),
        deduplicated: journals.iter().map(|j| j.deduplicated).sum(),
        tail_errors: followed.errors,
        kill_after_ms: kill_after,
        after_promotion,
        resolve_ms: resolve_timeout.as_millis(),
        seconds: started.elapsed().as_secs_f64(),
    };
    (findings, figures)
}

fn base_seed() -> u64 {
    std::env::var("BACKCHANNEL_FAILOVER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random)
}

/// Kill-and-promote rounds with a synchronous standby: no acknowledged event
/// lost, no hole, the chain verifies, no command twice, the tails agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_appends_survive_the_primary_killed_under_load() {
    let rounds: u64 = std::env::var("BACKCHANNEL_FAILOVER_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2);
    let seed = base_seed();
    eprintln!("failover: {rounds} rounds, BACKCHANNEL_FAILOVER_SEED={seed}");
    for n in 0..rounds {
        let (findings, figures) = round(true, seed.wrapping_add(n)).await;
        eprintln!("failover round {n}: {figures}, head {}", findings.head);
        assert!(figures.acknowledged > 0, "no append was acknowledged");
        // The log instances followed the promotion by themselves.
        assert!(
            figures.after_promotion > 0,
            "nothing was acknowledged after the promotion"
        );
        assert!(
            findings.is_clean(),
            "round {n} (seed {}): {findings:#?}",
            figures.seed
        );
    }
}

/// The negative control: the same load and checker with an asynchronous
/// standby that lags when the primary dies. The checker must report
/// acknowledged events lost (in at least one of three rounds).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_checker_reports_losses_after_failover_to_an_asynchronous_standby() {
    let seed = base_seed();
    eprintln!("negative control: BACKCHANNEL_FAILOVER_SEED={seed}");
    let mut reported = None;
    for n in 0..3 {
        let (findings, figures) = round(false, seed.wrapping_add(n)).await;
        eprintln!(
            "negative control round {n}: {figures}, head {}, lost {}, tail: {:?} {:?}",
            findings.head,
            findings.lost.len(),
            findings.tail_reported_loss,
            findings.tail,
        );
        if !findings.lost.is_empty() {
            reported = Some(findings);
            break;
        }
    }
    let findings = reported.expect("the checker reported no loss in three rounds");
    assert!(!findings.is_clean());
}
