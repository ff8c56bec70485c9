//! The group-commit writer of one process: a tokio task with its own
//! connection, like sled's sequencer.
//!
//! It takes every append waiting (up to [`MAX_GROUP_EVENTS`] events) and
//! commits them in one transaction. The lock on the `log_head` row (which
//! serializes the appends of every node) is held from the head read through
//! `COMMIT`, and the records are encoded with the chain on that head.
//!
//! Fast path, one pipelined burst ([`burst`]): the writer remembers the head
//! it last committed or read and the versions of the streams it wrote or read
//! since. If every stream of the group is known, or pinned by its expectation
//! (`Exact`, `NoStream`), and every append passes on those versions
//! ([`group::assume`]), it encodes the group on that head and sends `BEGIN`,
//! the head update that takes the lock and checks the head is the assumed
//! one, the inserts (`INSERT … SELECT FROM unnest(…)`), the stream versions
//! checked against the assumed ones, the doorbell (`pg_notify`) and `COMMIT`
//! at once. A failed check (another node committed, a command id already
//! appended, a stream version other than assumed) aborts the transaction, and
//! the group is redone on the slow path; after failures in a row (nodes
//! appending at once) the writer skips the fast path for 1, 2, 4… up to
//! [`MAX_FAST_BACKOFF`] groups.
//!
//! Pipelining. While a fast-path group commits, the writer gathers the next
//! and sends it behind it on the same connection, encoded on the head the
//! one before will commit ([`MAX_IN_FLIGHT`] groups at most): the server
//! starts each as soon as the commit before it is done, and the writer's own
//! work (gathering, encoding, answering) overlaps the commits instead of
//! adding to them. If a group fails, those behind it fail their head check
//! too, and all are redone on the slow path. With nothing in flight a group
//! is sent at once (a lone caller never waits); otherwise the next is sent
//! once it holds its share of the callers appending back to back (one in
//! [`MAX_IN_FLIGHT`]), or after a short wait (half the last commit, at most
//! [`MAX_LINGER`]). Groups so settle into equal shares of the callers, each
//! committing while the others are gathered or queued behind it. Three in
//! flight measured best without a standby (more throughput than two with
//! 256 callers; with a synchronous standby two gave about 10% more), and
//! four made groups too small with 16 (BENCHMARKS.md).
//!
//! Slow path ([`locked`]), two pipelined round trips, with nothing in flight:
//! 1. `BEGIN`, `SELECT … FROM log_head FOR UPDATE`, the dedupe lookup of the
//!    group's command ids and the current versions of its streams;
//! 2. after validating each append against that state plus the group's
//!    earlier appends (a failing one fails alone) and encoding the records
//!    with the chain under the lock: the inserts, the streams' versions, the
//!    head update, the doorbell and `COMMIT`.
//!
//! Unknown outcomes are settled by [`settle`]. The writer never cancels its
//! own queries.

mod burst;
mod group;
mod locked;
mod settle;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_postgres::{Client, Statement};

use super::{Db, bump, command_uuid, stream_key, to_hash};
use crate::error::{AppendError, StorageError};
pub(crate) use crate::writer::{AppendRequest, Reply};
use burst::{Answers, Committed};
pub(crate) use group::Rows;
use group::{Decided, Group, Known};
use settle::{Notices, Unknown, answer, fail_all, settle};

/// Upper bound of one group, in events (as sled's).
const MAX_GROUP_EVENTS: usize = 4096;

pub(crate) const INSERT_EVENTS: &str = "INSERT INTO backchannel.events (position, stream, version, \
     command_id, record) SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bigint[], \
     $4::uuid[], $5::bytea[])";
pub(crate) const UPSERT_STREAMS: &str = "INSERT INTO backchannel.streams (stream, version) \
     SELECT * FROM unnest($1::bytea[], $2::bigint[]) ON CONFLICT (stream) DO UPDATE SET \
     version = EXCLUDED.version";
const LOCK_HEAD: &str = "SELECT position, hash FROM backchannel.log_head WHERE id = 1 FOR UPDATE";
const FIND_COMMANDS: &str = "SELECT command_id, first_position, last_position, stream_version \
     FROM backchannel.commands WHERE command_id = ANY($1::uuid[])";
const FIND_STREAMS: &str =
    "SELECT stream, version FROM backchannel.streams WHERE stream = ANY($1::bytea[])";
const INSERT_COMMANDS: &str = "INSERT INTO backchannel.commands (command_id, first_position, \
     last_position, stream_version) SELECT * FROM unnest($1::uuid[], $2::bigint[], \
     $3::bigint[], $4::bigint[])";
const UPDATE_HEAD: &str = "UPDATE backchannel.log_head SET position = $1, hash = $2 WHERE id = 1";
const NOTIFY: &str = "SELECT pg_notify('backchannel_log', $1)";
/// The fast path's first statement: takes the head lock and sets the new
/// head, but only if the head is the one the group was encoded on (else the
/// hash would be NULL: a NOT NULL violation aborts the transaction).
const GUARD_HEAD: &str = "UPDATE backchannel.log_head SET position = $1, hash = CASE WHEN \
     position = $2 AND hash = $3 THEN $4::bytea END WHERE id = 1";
/// The fast path's stream versions: creates the streams assumed absent (a
/// unique violation if one exists), moves the others from the assumed version
/// to the new one, and aborts the transaction (NOT NULL violation on the
/// head's hash) unless every assumed version matched.
const GUARD_STREAMS: &str = "WITH i AS (SELECT * FROM unnest($1::bytea[], $2::bigint[], \
     $3::bigint[]) AS t(stream, old, new)), \
     created AS (INSERT INTO backchannel.streams (stream, version) SELECT stream, new FROM i \
     WHERE old = 0 RETURNING 1), \
     moved AS (UPDATE backchannel.streams s SET version = i.new FROM i WHERE s.stream = i.stream \
     AND i.old > 0 AND s.version = i.old RETURNING 1) \
     UPDATE backchannel.log_head SET hash = CASE WHEN (SELECT count(*) FROM moved) = $4 THEN \
     hash END WHERE id = 1";
/// The longest the writer waits for more appends before starting a group.
const MAX_LINGER: Duration = Duration::from_millis(1);
/// The most groups the writer sends on the slow path after fast-path failures
/// in a row before trying the fast path again.
const MAX_FAST_BACKOFF: u32 = 64;
/// Stream versions the writer remembers at most (then it forgets them all).
const MAX_KNOWN_STREAMS: usize = 10_000;
const TOUCH_HEAD: &str = "UPDATE backchannel.log_head SET position = position WHERE id = 1";

/// Groups sent and not yet answered, at most.
const MAX_IN_FLIGHT: usize = 3;

/// Groups and events this process's writer committed.
#[derive(Default)]
pub(crate) struct Counters {
    groups: AtomicU64,
    events: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> crate::CommitStats {
        let groups = self.groups.load(Ordering::Relaxed);
        crate::CommitStats {
            groups,
            events: self.events.load(Ordering::Relaxed),
            syncs: groups,
        }
    }
}

/// The writer connection with its prepared statements.
struct WriterConn {
    client: Arc<Client>,
    notices: Notices,
    statements: Statements,
}

struct Statements {
    lock_head: Statement,
    find_commands: Statement,
    find_streams: Statement,
    insert_events: Statement,
    insert_commands: Statement,
    upsert_streams: Statement,
    update_head: Statement,
    notify: Statement,
    guard_head: Statement,
    guard_streams: Statement,
}

impl WriterConn {
    async fn new(db: &Db) -> Result<WriterConn, StorageError> {
        let conn = db.connect(None).await?;
        let client = &conn.client;
        let prepare =
            |sql: &'static str| async move { client.prepare(sql).await.map_err(StorageError::new) };
        let (lock_head, find_commands, find_streams, insert_events) = tokio::try_join!(
            prepare(LOCK_HEAD),
            prepare(FIND_COMMANDS),
            prepare(FIND_STREAMS),
            prepare(INSERT_EVENTS)
        )?;
        let (insert_commands, upsert_streams, update_head, notify) = tokio::try_join!(
            prepare(INSERT_COMMANDS),
            prepare(UPSERT_STREAMS),
            prepare(UPDATE_HEAD),
            prepare(NOTIFY)
        )?;
        let (guard_head, guard_streams) =
            tokio::try_join!(prepare(GUARD_HEAD), prepare(GUARD_STREAMS))?;
        Ok(WriterConn {
            client: Arc::new(conn.client),
            notices: Notices(Arc::new(Mutex::new(conn.notices))),
            statements: Statements {
                lock_head,
                find_commands,
                find_streams,
                insert_events,
                insert_commands,
                upsert_streams,
                update_head,
                notify,
                guard_head,
                guard_streams,
            },
        })
    }
}

/// A fast-path group sent, its answers still to come.
struct InFlight {
    requests: Vec<AppendRequest>,
    group: Group,
    decided: Vec<Decided>,
    notices: Notices,
    /// A replication warning arrived while this group was in flight: it may
    /// have been this group's.
    suspect: bool,
    sent: Instant,
    answers: Pin<Box<dyn Future<Output = Answers> + Send>>,
}

/// The writer task's state.
struct Writer {
    db: Db,
    known_head: Arc<watch::Sender<u64>>,
    counters: Arc<Counters>,
    slot: Option<WriterConn>,
    known: Known,
    in_flight: VecDeque<InFlight>,
    /// The appends of fast-path groups that failed their checks, redone on
    /// the slow path once nothing is in flight.
    redo: Vec<AppendRequest>,
    /// Groups whose commit outcome is unknown, settled together once nothing
    /// is in flight.
    unknown: Vec<Unknown>,
}

/// The writer task: runs until every sender (every clone of the log) is gone
/// and every append it took is answered.
pub(crate) async fn run(
    db: Db,
    known_head: Arc<watch::Sender<u64>>,
    mut requests: mpsc::UnboundedReceiver<AppendRequest>,
    counters: Arc<Counters>,
) {
    let mut writer = Writer {
        db,
        known_head,
        counters,
        slot: None,
        known: Known::default(),
        in_flight: VecDeque::new(),
        redo: Vec::new(),
        unknown: Vec::new(),
    };
    let mut pending: Vec<AppendRequest> = Vec::new();
    let mut events = 0;
    let mut open = true;
    // About how many callers append back to back: those the last answered
    // group held, plus those in flight, gathered or queued then.
    let mut callers: usize = 0;
    let mut last_commit = Duration::ZERO;
    let mut linger: Option<tokio::time::Instant> = None;
    loop {
        while events < MAX_GROUP_EVENTS {
            match requests.try_recv() {
                Ok(request) => {
                    events += request.events.len();
                    pending.push(request);
                }
                Err(_) => break,
            }
        }
        if writer.in_flight.is_empty() && !writer.redo.is_empty() {
            let redo = std::mem::take(&mut writer.redo);
            writer.locked_group(redo).await;
            continue;
        }
        if pending.is_empty() && writer.in_flight.is_empty() {
            match requests.recv().await {
                Some(request) => {
                    events += request.events.len();
                    pending.push(request);
                    continue;
                }
                None => break,
            }
        }
        let share = callers.div_ceil(MAX_IN_FLIGHT);
        let ready = writer.in_flight.is_empty()
            || !open
            || events >= MAX_GROUP_EVENTS
            || pending.len() >= share
            || linger.is_some_and(|at| tokio::time::Instant::now() >= at);
        if !pending.is_empty() && ready && writer.in_flight.len() < MAX_IN_FLIGHT {
            events = 0;
            linger = None;
            writer.start(std::mem::take(&mut pending)).await;
            continue;
        }
        if !pending.is_empty() && linger.is_none() {
            linger = Some(tokio::time::Instant::now() + (last_commit / 2).min(MAX_LINGER));
        }
        tokio::select! {
            biased;
            answers = next_answers(&mut writer.in_flight), if !writer.in_flight.is_empty() => {
                if let Some(done) = writer.in_flight.pop_front() {
                    last_commit = done.sent.elapsed();
                    callers = done.requests.len()
                        + writer.in_flight.iter().map(|f| f.requests.len()).sum::<usize>()
                        + pending.len()
                        + requests.len();
                    writer.finish(done, answers).await;
                }
            }
            request = requests.recv(), if open && events < MAX_GROUP_EVENTS => match request {
                Some(request) => {
                    events += request.events.len();
                    pending.push(request);
                }
                None => open = false,
            },
            // Only while the next group could be sent (else the loop would
            // spin on a passed deadline).
            () = sleep_until(linger), if linger.is_some() && writer.in_flight.len() < MAX_IN_FLIGHT => {}
            else => {}
        }
    }
}

/// The answers of the oldest group in flight.
async fn next_answers(in_flight: &mut VecDeque<InFlight>) -> Answers {
    match in_flight.front_mut() {
        Some(flight) => flight.answers.as_mut().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Writer {
    /// Sends a group on the fast path, behind those in flight; or, if it
    /// cannot take the fast path, waits for those in flight and commits it on
    /// the slow path.
    async fn start(&mut self, requests: Vec<AppendRequest>) {
        let Some((mut group, decided, assumed)) = group::assume(&mut self.known, &requests) else {
            self.drain().await;
            return self.locked_group(requests).await;
        };
        let nothing_in_flight = self.in_flight.is_empty();
        let conn = match connect(&self.db, &mut self.slot, &mut self.known).await {
            Ok(conn) => conn,
            Err(err) => return fail_all(requests, err),
        };
        if nothing_in_flight {
            // Notices from before this commit do not concern it.
            let _ = conn.notices.replication_warning();
        }
        let notices = conn.notices.clone();
        let burst = burst::send(conn, &mut group, Some(assumed)).await;
        // What the next group is encoded on, if this one commits.
        self.known.committed(&group);
        self.in_flight.push_back(InFlight {
            requests,
            group,
            decided,
            notices,
            suspect: false,
            sent: Instant::now(),
            answers: Box::pin(burst.answers()),
        });
    }

    /// Answers every group in flight.
    async fn drain(&mut self) {
        while let Some(mut flight) = self.in_flight.pop_front() {
            let answers = flight.answers.as_mut().await;
            self.finish(flight, answers).await;
        }
    }

    /// Ends a fast-path group with its answers.
    async fn finish(&mut self, flight: InFlight, answers: Answers) {
        let InFlight {
            requests,
            group,
            decided,
            notices,
            suspect,
            ..
        } = flight;
        let mut warning = notices.replication_warning();
        if warning.is_some() {
            // The warning may be any in-flight group's.
            for later in &mut self.in_flight {
                later.suspect = true;
            }
        } else if suspect {
            warning = Some("a cancelled wait for the synchronous standby".to_owned());
        }
        let settled = match answers.outcome(warning) {
            Committed::Yes => {
                self.record(&group);
                self.known.backoff = 0;
                Ok(())
            }
            Committed::No(err) => {
                // Another node committed, or a command id is a retry: redo
                // the group on what the lock shows (the groups behind it fail
                // their head check and are redone too: one failure, one step
                // of the backoff).
                tracing::debug!(error = %err, "an append group's assumptions failed; reading under the lock");
                if self.redo.is_empty() {
                    self.known.fast_failed();
                }
                self.redo.extend(requests);
                return self.settle_unknown().await;
            }
            Committed::Unknown(why) => {
                self.slot = None;
                self.known.forget();
                tracing::warn!(reason = %why, "a PostgreSQL commit's outcome is unknown; settling it");
                self.unknown.push(Unknown {
                    requests,
                    group,
                    decided,
                    why,
                });
                return self.settle_unknown().await;
            }
        };
        let replies = requests.into_iter().map(|r| r.reply).collect();
        answer(replies, decided, settled);
        self.settle_unknown().await;
    }

    /// Bookkeeping of a committed group.
    fn record(&self, group: &Group) {
        self.counters.groups.fetch_add(1, Ordering::Relaxed);
        let events = group
            .accepted
            .iter()
            .map(|(_, o)| o.last_position - o.first_position + 1);
        self.counters
            .events
            .fetch_add(events.sum(), Ordering::Relaxed);
        bump(&self.known_head, group.next_position - 1);
    }
}

/// The writer connection in `slot`, (re)connected if needed. On failure the
/// writer forgets what it knew, and the caller fails its appends with the
/// error.
async fn connect<'a>(
    db: &Db,
    slot: &'a mut Option<WriterConn>,
    known: &mut Known,
) -> Result<&'a WriterConn, AppendError> {
    if slot.as_ref().is_none_or(|c| c.client.is_closed()) {
        *slot = None;
        match WriterConn::new(db).await {
            Ok(conn) => *slot = Some(conn),
            Err(err) => {
                known.forget();
                return Err(AppendError::Storage(err));
            }
        }
    }
    slot.as_ref()
        .ok_or_else(|| AppendError::Storage(other("no writer connection".to_owned())))
}

fn storage_error(err: tokio_postgres::Error) -> StorageError {
    StorageError::new(err)
}

fn other(message: String) -> StorageError {
    StorageError::new(std::io::Error::other(message))
}
