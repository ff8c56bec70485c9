//! The group-commit writer of one process: a tokio task with its own
//! connection, like sled's sequencer.
//!
//! It takes every append waiting (up to [`MAX_GROUP_EVENTS`] events) and
//! commits them in one transaction. If fewer are waiting than the last group
//! held plus those that queued while it committed (callers appending back to
//! back), it waits for more, up to half the last commit's time and at most
//! [`MAX_LINGER`]: without that, groups settle into halves of the callers,
//! each half waiting for the other's commit. A lone caller never waits.
//!
//! The lock on the `log_head` row (which serializes the appends of every
//! node) is held from the head read through `COMMIT`, and the records are
//! encoded with the chain on that head.
//!
//! Fast path, one pipelined round trip: the writer remembers the head it last
//! committed or read and the versions of the streams it wrote or read since.
//! If every stream of the group is known, or pinned by its expectation
//! (`Exact`, `NoStream`), and every append passes on those versions, it
//! encodes the group on that head and sends `BEGIN`, the head update that
//! takes the lock and checks the head is the assumed one, the stream versions
//! checked against the assumed ones, the inserts (`INSERT … SELECT FROM
//! unnest(…)`), the doorbell (`pg_notify`) and `COMMIT` at once. A failed check
//! (another node committed, a command id already appended, a stream version
//! other than assumed) aborts the transaction, and the group is redone on the
//! slow path; after failures in a row (nodes appending at once) the writer
//! skips the fast path for 1, 2, 4… up to [`MAX_FAST_BACKOFF`] groups.
//!
//! Slow path, two pipelined round trips:
//! 1. `BEGIN`, `SELECT … FROM log_head FOR UPDATE`, the dedupe lookup of the
//!    group's command ids and the current versions of its streams;
//! 2. after validating each append against that state plus the group's
//!    earlier appends (a failing one fails alone) and encoding the records
//!    with the chain under the lock: the inserts, the streams' versions, the
//!    head update, the doorbell and `COMMIT`.
//!
//! Unknown outcomes. A `COMMIT` that answers with a warning notice about a
//! cancelled wait for synchronous replication (committed locally, perhaps not
//! on the standby), or a connection lost after the second burst was sent,
//! leaves the outcome unknown. The writer then reconnects and settles it in a
//! transaction that takes the head lock (so the old transaction is over),
//! looks the group's command ids up, and commits a no-op head update: that
//! commit's acknowledgement covers all earlier WAL, so what it saw is
//! durable on the synchronous standby too. Found with the group's positions:
//! success; found elsewhere: the other commit's outcome (deduplicated); not
//! found: nothing was committed ([`AppendError::Storage`]). If it cannot
//! settle it within `resolve_timeout`, the callers get
//! [`AppendError::OutcomeUnknown`] and retry with the same command id. The
//! writer never cancels its own queries.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use backchannel_domain::events::{Event, StreamId};
use backchannel_domain::ids::{CommandId, EventId};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use super::{Conn, Db, bump, command_uuid, stream_key, to_hash};
use crate::codec;
use crate::envelope::{AppendMeta, AppendOutcome, Envelope, ExpectedVersion, Hash, RecordedAt};
use crate::error::{AppendError, Error, StorageError};

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

pub(crate) struct PgAppend {
    pub(crate) expected: Vec<(StreamId, ExpectedVersion)>,
    pub(crate) events: Vec<Event>,
    pub(crate) meta: AppendMeta,
    pub(crate) reply: oneshot::Sender<Result<AppendOutcome, AppendError>>,
}

type Reply = oneshot::Sender<Result<AppendOutcome, AppendError>>;

/// The writer connection with its prepared statements.
struct WriterConn {
    conn: Conn,
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
            conn,
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
        })
    }

    fn client(&self) -> &Client {
        &self.conn.client
    }

    /// Notices received so far that say a synchronous-replication wait was
    /// cancelled (the commit is local only).
    fn replication_warning(&mut self) -> Option<String> {
        let mut warning = None;
        while let Ok(notice) = self.conn.notices.try_recv() {
            if notice.message().contains("synchronous replication") {
                warning = Some(notice.message().to_owned());
            }
        }
        warning
    }
}

/// The writer task: runs until every sender (every clone of the log) is gone.
pub(crate) async fn run(
    db: Db,
    known: Arc<watch::Sender<u64>>,
    mut requests: mpsc::UnboundedReceiver<PgAppend>,
    counters: Arc<Counters>,
) {
    let mut conn: Option<WriterConn> = None;
    let mut assumed = Known::default();
    let mut pending: Vec<PgAppend> = Vec::new();
    // The appends of the last group plus those that queued while it
    // committed: about how many callers are appending back to back.
    let mut callers = 0;
    let mut last_commit = Duration::ZERO;
    while let Some(first) = requests.recv().await {
        let mut events = first.events.len();
        pending.push(first);
        while events < MAX_GROUP_EVENTS {
            match requests.try_recv() {
                Ok(request) => {
                    events += request.events.len();
                    pending.push(request);
                }
                Err(_) => break,
            }
        }
        // Wait a little for the callers the last group answered, so that
        // groups do not settle into halves of the callers (each half waiting
        // for the other's commit). A lone caller never waits.
        if pending.len() < callers {
            let deadline = tokio::time::Instant::now() + (last_commit / 2).min(MAX_LINGER);
            while pending.len() < callers && events < MAX_GROUP_EVENTS {
                tokio::select! {
                    biased;
                    request = requests.recv() => match request {
                        Some(request) => {
                            events += request.events.len();
                            pending.push(request);
                        }
                        None => break,
                    },
                    () = tokio::time::sleep_until(deadline) => break,
                }
            }
        }
        let group = std::mem::take(&mut pending);
        let appends = group.len();
        let started = Instant::now();
        commit_group(&db, &known, &mut conn, &mut assumed, group, &counters).await;
        last_commit = started.elapsed();
        callers = appends + requests.len();
    }
}

/// One append's answer as decided under the lock.
enum Decided {
    /// Final whatever the commit does (a rejection, or a dedupe from the
    /// committed log).
    Final(Result<AppendOutcome, AppendError>),
    /// Holds if and only if the group commits.
    Pending(AppendOutcome),
}

/// The state read under the lock, plus the group's changes so far.
struct Group {
    next_position: u64,
    chain: Hash,
    recorded_at: RecordedAt,
    stored_commands: HashMap<CommandId, AppendOutcome>,
    commands: HashMap<CommandId, AppendOutcome>,
    stored_streams: HashMap<Vec<u8>, u64>,
    stream_heads: HashMap<StreamId, u64>,
    rows: Rows,
    accepted: Vec<(CommandId, AppendOutcome)>,
}

/// Rows for the events table, one array per column.
#[derive(Default)]
pub(crate) struct Rows {
    positions: Vec<i64>,
    streams: Vec<Vec<u8>>,
    versions: Vec<i64>,
    commands: Vec<uuid::Uuid>,
    records: Vec<Vec<u8>>,
}

impl Rows {
    pub(crate) fn push(&mut self, envelope: &Envelope, record: Vec<u8>) -> Result<(), Error> {
        self.positions.push(super::to_i64(envelope.position)?);
        self.streams.push(stream_key(&envelope.stream));
        self.versions.push(super::to_i64(envelope.stream_version)?);
        self.commands.push(command_uuid(envelope.command_id));
        self.records.push(record);
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.positions.len()
    }

    fn truncate(&mut self, len: usize) {
        self.positions.truncate(len);
        self.streams.truncate(len);
        self.versions.truncate(len);
        self.commands.truncate(len);
        self.records.truncate(len);
    }

    /// Inserts the rows and empties them.
    pub(crate) async fn insert(
        &mut self,
        client: &Client,
        statement: &Statement,
    ) -> Result<(), tokio_postgres::Error> {
        if self.positions.is_empty() {
            return Ok(());
        }
        client
            .execute(
                statement,
                &[
                    &self.positions,
                    &self.streams,
                    &self.versions,
                    &self.commands,
                    &self.records,
                ],
            )
            .await?;
        self.truncate(0);
        Ok(())
    }
}

fn storage_error(err: tokio_postgres::Error) -> StorageError {
    StorageError::new(err)
}

fn other(message: String) -> StorageError {
    StorageError::new(std::io::Error::other(message))
}

/// What the writer assumes of the committed state: the head and the versions
/// of the streams it read under the lock or wrote since. Right as long as no
/// other node committed; the fast path checks that under the lock.
#[derive(Default)]
struct Known {
    head: Option<(u64, Hash)>,
    streams: HashMap<StreamId, u64>,
    /// Groups to send on the slow path before trying the fast one again.
    skip: u32,
    /// The next failure's `skip`: doubles with each fast-path failure in a
    /// row (as when other nodes keep committing), up to [`MAX_FAST_BACKOFF`].
    backoff: u32,
}

impl Known {
    fn forget(&mut self) {
        self.head = None;
        self.streams.clear();
    }

    /// The state read under the lock: the head and each stream of `requests`
    /// (absent means version 0).
    fn read(&mut self, head: (u64, Hash), group: &Group, requests: &[PgAppend]) {
        if self.head != Some(head) {
            self.streams.clear();
        }
        self.head = Some(head);
        for request in requests {
            for (stream, _) in &request.expected {
                let version = group
                    .stored_streams
                    .get(&stream_key(stream))
                    .copied()
                    .unwrap_or(0);
                self.streams.insert(*stream, version);
            }
        }
    }

    /// The fast path failed its checks: skip it for a while.
    fn fast_failed(&mut self) {
        self.forget();
        self.skip = self.backoff.max(1);
        self.backoff = (self.skip * 2).min(MAX_FAST_BACKOFF);
    }

    /// `group` committed on top of what is known.
    fn committed(&mut self, group: &Group) {
        if self.streams.len() + group.stream_heads.len() > MAX_KNOWN_STREAMS {
            self.streams.clear();
        }
        self.head = Some((group.next_position - 1, group.chain));
        self.streams
            .extend(group.stream_heads.iter().map(|(s, v)| (*s, *v)));
    }
}

/// The head a group was encoded on without reading it under the lock.
#[derive(Clone, Copy)]
struct Assumed {
    position: u64,
    hash: Hash,
}

/// The group prepared on what the writer knows, for the fast path: `None`
/// unless the head is known, every stream's version is known or pinned by its
/// expectation (`Exact`, `NoStream`), and no append is refused on those
/// versions (a refusal is only decided on versions read under the lock).
fn assume(known: &mut Known, requests: &[PgAppend]) -> Option<(Group, Vec<Decided>, Assumed)> {
    if known.skip > 0 {
        known.skip -= 1;
        return None;
    }
    let (position, hash) = known.head?;
    let mut stored_streams = HashMap::new();
    for request in requests {
        for &(stream, expected) in &request.expected {
            let key = stream_key(&stream);
            if stored_streams.contains_key(&key) {
                continue;
            }
            let version = match (known.streams.get(&stream), expected) {
                (Some(&version), _) => version,
                (None, ExpectedVersion::Exact(version)) => version,
                (None, ExpectedVersion::NoStream) => 0,
                (None, ExpectedVersion::Any) => return None,
            };
            stored_streams.insert(key, version);
        }
    }
    let mut group = Group {
        next_position: position + 1,
        chain: hash,
        recorded_at: RecordedAt::now(),
        stored_commands: HashMap::new(),
        commands: HashMap::new(),
        stored_streams,
        stream_heads: HashMap::new(),
        rows: Rows::default(),
        accepted: Vec::new(),
    };
    let mut decided = Vec::with_capacity(requests.len());
    for request in requests {
        let answer = prepare(&mut group, request);
        if let Decided::Final(Err(AppendError::WrongExpectedVersion { .. })) = answer {
            return None;
        }
        decided.push(answer);
    }
    if group.accepted.is_empty() {
        return None;
    }
    Some((group, decided, Assumed { position, hash }))
}

/// The writer connection, (re)connected if needed.
async fn connection<'a>(
    db: &Db,
    slot: &'a mut Option<WriterConn>,
) -> Result<&'a mut WriterConn, StorageError> {
    if slot.as_ref().is_none_or(|c| c.client().is_closed()) {
        *slot = None;
        *slot = Some(WriterConn::new(db).await?);
    }
    slot.as_mut()
        .ok_or_else(|| other("no writer connection".to_owned()))
}

async fn commit_group(
    db: &Db,
    known_head: &watch::Sender<u64>,
    slot: &mut Option<WriterConn>,
    known: &mut Known,
    requests: Vec<PgAppend>,
    counters: &Counters,
) {
    let conn = match connection(db, slot).await {
        Ok(conn) => conn,
        Err(err) => {
            known.forget();
            fail_all(requests, AppendError::Storage(err));
            return;
        }
    };
    // The fast path: one round trip, on the head and versions assumed.
    if let Some((mut group, mut decided, assumed)) = assume(known, &requests) {
        let settled = match write_and_commit(conn, &mut group, Some(assumed)).await {
            Committed::Yes => {
                committed(known_head, known, &group, counters);
                known.backoff = 0;
                Ok(())
            }
            Committed::No(err) => {
                // Another node committed, or a command id is a retry: redo
                // the group on what the lock shows.
                tracing::debug!(error = %err, "an append group's assumptions failed; reading under the lock");
                known.fast_failed();
                return locked_group(db, known_head, slot, known, requests, counters).await;
            }
            Committed::Unknown(why) => {
                *slot = None;
                known.forget();
                tracing::warn!(reason = %why, "a PostgreSQL commit's outcome is unknown; settling it");
                settle(db, known_head, &group, &why, &mut decided).await
            }
        };
        let replies = requests.into_iter().map(|r| r.reply).collect();
        answer(replies, decided, settled);
        return;
    }
    locked_group(db, known_head, slot, known, requests, counters).await;
}

/// Bookkeeping of a committed group.
fn committed(
    known_head: &watch::Sender<u64>,
    known: &mut Known,
    group: &Group,
    counters: &Counters,
) {
    counters.groups.fetch_add(1, Ordering::Relaxed);
    let events = group
        .accepted
        .iter()
        .map(|(_, o)| o.last_position - o.first_position + 1);
    counters.events.fetch_add(events.sum(), Ordering::Relaxed);
    bump(known_head, group.next_position - 1);
    known.committed(group);
}

/// The slow path: two round trips, deciding every append on the state read
/// under the lock.
async fn locked_group(
    db: &Db,
    known_head: &watch::Sender<u64>,
    slot: &mut Option<WriterConn>,
    known: &mut Known,
    requests: Vec<PgAppend>,
    counters: &Counters,
) {
    let conn = match connection(db, slot).await {
        Ok(conn) => conn,
        Err(err) => {
            fail_all(requests, AppendError::Storage(err));
            return;
        }
    };
    let mut group = match lock_and_read(conn, &requests).await {
        Ok(group) => group,
        Err(err) => {
            // Nothing was sent that could commit.
            let _ = conn.client().batch_execute("ROLLBACK").await;
            if conn.client().is_closed() {
                *slot = None;
            }
            known.forget();
            fail_all(requests, AppendError::Storage(err));
            return;
        }
    };
    known.read((group.next_position - 1, group.chain), &group, &requests);
    let mut decided = Vec::with_capacity(requests.len());
    let mut replies = Vec::with_capacity(requests.len());
    for request in requests {
        decided.push(prepare(&mut group, &request));
        replies.push(request.reply);
    }
    if group.accepted.is_empty() {
        let _ = conn.client().batch_execute("ROLLBACK").await;
        answer(replies, decided, Ok(()));
        return;
    }
    let settled = match write_and_commit(conn, &mut group, None).await {
        Committed::Yes => {
            committed(known_head, known, &group, counters);
            Ok(())
        }
        Committed::No(err) => {
            known.forget();
            Err(AppendError::Storage(err))
        }
        Committed::Unknown(why) => {
            *slot = None;
            known.forget();
            tracing::warn!(reason = %why, "a PostgreSQL commit's outcome is unknown; settling it");
            settle(db, known_head, &group, &why, &mut decided).await
        }
    };
    answer(replies, decided, settled);
}

enum Committed {
    Yes,
    /// Known not committed.
    No(StorageError),
    /// Perhaps committed.
    Unknown(StorageError),
}

/// Round trip 1: `BEGIN`, the head lock, the dedupe and version lookups.
async fn lock_and_read(conn: &WriterConn, requests: &[PgAppend]) -> Result<Group, StorageError> {
    let mut ids: Vec<uuid::Uuid> = requests
        .iter()
        .map(|r| command_uuid(r.meta.command_id))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut streams: Vec<Vec<u8>> = requests
        .iter()
        .flat_map(|r| r.expected.iter().map(|(s, _)| stream_key(s)))
        .collect();
    streams.sort_unstable();
    streams.dedup();
    let client = conn.client();
    let ids_param: [&(dyn ToSql + Sync); 1] = [&ids];
    let streams_param: [&(dyn ToSql + Sync); 1] = [&streams];
    let (begin, head, commands, versions) = tokio::join!(
        client.batch_execute("BEGIN"),
        client.query_one(&conn.lock_head, &[]),
        client.query(&conn.find_commands, &ids_param),
        client.query(&conn.find_streams, &streams_param),
    );
    begin.map_err(storage_error)?;
    let head = head.map_err(storage_error)?;
    let position: i64 = head.try_get(0).map_err(storage_error)?;
    let hash: Vec<u8> = head.try_get(1).map_err(storage_error)?;
    let mut stored_commands = HashMap::new();
    for row in commands.map_err(storage_error)? {
        let id: uuid::Uuid = row.try_get(0).map_err(storage_error)?;
        let outcome = outcome_from(
            row.try_get(1).map_err(storage_error)?,
            row.try_get(2).map_err(storage_error)?,
            row.try_get(3).map_err(storage_error)?,
        )?;
        stored_commands.insert(CommandId::from_bytes(*id.as_bytes()), outcome);
    }
    let mut stored_streams = HashMap::new();
    for row in versions.map_err(storage_error)? {
        let key: Vec<u8> = row.try_get(0).map_err(storage_error)?;
        let version: i64 = row.try_get(1).map_err(storage_error)?;
        stored_streams.insert(key, u64::try_from(version).unwrap_or(0));
    }
    let position = u64::try_from(position).map_err(|_| other("a negative head".to_owned()))?;
    let chain = to_hash(&hash).map_err(|err| other(err.to_string()))?;
    Ok(Group {
        next_position: position + 1,
        chain,
        recorded_at: RecordedAt::now(),
        stored_commands,
        commands: HashMap::new(),
        stored_streams,
        stream_heads: HashMap::new(),
        rows: Rows::default(),
        accepted: Vec::new(),
    })
}

fn outcome_from(first: i64, last: i64, version: i64) -> Result<AppendOutcome, StorageError> {
    let convert = |v: i64| u64::try_from(v).map_err(|_| other(format!("{v} is out of range")));
    Ok(AppendOutcome {
        first_position: convert(first)?,
        last_position: convert(last)?,
        stream_version: convert(version)?,
        deduplicated: true,
    })
}

/// Validates one append against the locked state plus the group so far and
/// adds its rows; a rejection leaves the group untouched.
fn prepare(group: &mut Group, request: &PgAppend) -> Decided {
    let command_id = request.meta.command_id;
    if let Some(first) = group.commands.get(&command_id) {
        return Decided::Pending(AppendOutcome {
            deduplicated: true,
            ..*first
        });
    }
    if let Some(stored) = group.stored_commands.get(&command_id) {
        return Decided::Final(Ok(*stored));
    }
    let mut versions: Vec<(StreamId, u64)> = Vec::with_capacity(request.expected.len());
    for &(stream, expected) in &request.expected {
        let current = match group.stream_heads.get(&stream) {
            Some(&version) => version,
            None => group
                .stored_streams
                .get(&stream_key(&stream))
                .copied()
                .unwrap_or(0),
        };
        if !expected.accepts(current) {
            return Decided::Final(Err(AppendError::WrongExpectedVersion {
                stream,
                expected,
                current,
            }));
        }
        versions.push((stream, current));
    }
    let first_position = group.next_position;
    let mut chain = group.chain;
    let mut last_version = 0;
    let mark = group.rows.len();
    for (index, event) in request.events.iter().enumerate() {
        let stream = event.stream();
        let Some(version) = versions.iter_mut().find(|(s, _)| *s == stream) else {
            group.rows.truncate(mark);
            return Decided::Final(Err(AppendError::WrongStream {
                index,
                expected: request.expected.first().map_or(stream, |(s, _)| *s),
                found: stream,
            }));
        };
        version.1 += 1;
        last_version = version.1;
        let envelope = Envelope {
            position: first_position + index as u64,
            stream,
            stream_version: last_version,
            event_id: EventId::new(),
            event_type: event.event_type(),
            schema_version: event.schema_version(),
            codec_version: codec::CODEC_VERSION,
            recorded_at: group.recorded_at,
            actor: request.meta.actor,
            command_id,
            correlation_id: request.meta.correlation_id,
            prev_hash: chain,
        };
        let mut record = Vec::new();
        if let Err(source) = codec::encode_record(&envelope, event, &mut record) {
            group.rows.truncate(mark);
            return Decided::Final(Err(AppendError::Encode { index, source }));
        }
        chain = codec::record_hash(&record);
        if let Err(err) = group.rows.push(&envelope, record) {
            group.rows.truncate(mark);
            return Decided::Final(Err(AppendError::Storage(other(err.to_string()))));
        }
    }
    let count = request.events.len() as u64;
    let outcome = AppendOutcome {
        first_position,
        last_position: first_position + count - 1,
        stream_version: last_version,
        deduplicated: false,
    };
    group.next_position += count;
    group.chain = chain;
    for (stream, version) in versions {
        group.stream_heads.insert(stream, version);
    }
    group.commands.insert(command_id, outcome);
    group.accepted.push((command_id, outcome));
    Decided::Pending(outcome)
}

/// The writes and `COMMIT`, pipelined in one round trip: after
/// [`lock_and_read`] (`assumed` is `None`), the inserts, the streams'
/// versions, the head, the doorbell; on the fast path (`assumed`), `BEGIN`
/// first, then the head lock that checks the head is the assumed one, and the
/// streams' versions checked against the assumed ones (either check failing
/// aborts the transaction).
async fn write_and_commit(
    conn: &mut WriterConn,
    group: &mut Group,
    assumed: Option<Assumed>,
) -> Committed {
    // Notices from before this commit do not concern it.
    let _ = conn.replication_warning();
    let mut ids = Vec::with_capacity(group.accepted.len());
    let mut firsts = Vec::with_capacity(group.accepted.len());
    let mut lasts = Vec::with_capacity(group.accepted.len());
    let mut command_versions = Vec::with_capacity(group.accepted.len());
    for (command, outcome) in &group.accepted {
        ids.push(command_uuid(*command));
        firsts.push(i64::try_from(outcome.first_position).unwrap_or(i64::MAX));
        lasts.push(i64::try_from(outcome.last_position).unwrap_or(i64::MAX));
        command_versions.push(i64::try_from(outcome.stream_version).unwrap_or(i64::MAX));
    }
    let mut stream_keys: Vec<Vec<u8>> = Vec::with_capacity(group.stream_heads.len());
    let mut stream_versions: Vec<i64> = Vec::with_capacity(group.stream_heads.len());
    let mut old_versions: Vec<i64> = Vec::with_capacity(group.stream_heads.len());
    for (stream, version) in &group.stream_heads {
        let key = stream_key(stream);
        let old = group.stored_streams.get(&key).copied().unwrap_or(0);
        old_versions.push(i64::try_from(old).unwrap_or(i64::MAX));
        stream_versions.push(i64::try_from(*version).unwrap_or(i64::MAX));
        stream_keys.push(key);
    }
    let moved = old_versions.iter().filter(|v| **v > 0).count() as i64;
    let head = group.next_position - 1;
    let head_i64 = i64::try_from(head).unwrap_or(i64::MAX);
    let payload = head.to_string();
    let chain = group.chain;
    let (old_head, old_hash) = match assumed {
        Some(assumed) => (
            i64::try_from(assumed.position).unwrap_or(i64::MAX),
            assumed.hash,
        ),
        None => (0, [0; 32]),
    };
    let mut rows = std::mem::take(&mut group.rows);
    let client = &conn.conn.client;
    let chain = chain.as_slice();
    let old_hash = old_hash.as_slice();
    let fast = assumed.is_some();
    let commands_param: [&(dyn ToSql + Sync); 4] = [&ids, &firsts, &lasts, &command_versions];
    let streams_param: [&(dyn ToSql + Sync); 2] = [&stream_keys, &stream_versions];
    let guard_streams_param: [&(dyn ToSql + Sync); 4] =
        [&stream_keys, &old_versions, &stream_versions, &moved];
    let head_param: [&(dyn ToSql + Sync); 2] = [&head_i64, &chain];
    let guard_head_param: [&(dyn ToSql + Sync); 4] = [&head_i64, &old_head, &old_hash, &chain];
    let notify_param: [&(dyn ToSql + Sync); 1] = [&payload];
    // Polled in this order first, so sent in this order.
    let (begin, guard, events, commands, streams, updated, notified, commit) = tokio::join!(
        biased;
        async {
            match fast {
                true => client.batch_execute("BEGIN").await,
                false => Ok(()),
            }
        },
        async {
            match fast {
                true => client.execute(&conn.guard_head, &guard_head_param).await,
                false => Ok(0),
            }
        },
        rows.insert(client, &conn.insert_events),
        client.execute(&conn.insert_commands, &commands_param),
        async {
            match fast {
                true => client.execute(&conn.guard_streams, &guard_streams_param).await,
                false => client.execute(&conn.upsert_streams, &streams_param).await,
            }
        },
        async {
            match fast {
                true => Ok(0),
                false => client.execute(&conn.update_head, &head_param).await,
            }
        },
        client.execute(&conn.notify, &notify_param),
        client.batch_execute("COMMIT"),
    );
    let before = [
        begin.err(),
        guard.err(),
        events.err(),
        commands.err(),
        streams.err(),
        updated.err(),
        notified.err(),
    ];
    // A statement the server refused aborted the transaction: COMMIT rolled
    // it back, whatever it answered.
    if let Some(err) = before
        .iter()
        .flatten()
        .find(|err| err.as_db_error().is_some())
    {
        return Committed::No(other(format!("the append transaction failed: {err}")));
    }
    match commit {
        Err(err) if err.as_db_error().is_some() => Committed::No(storage_error(err)),
        Err(err) => Committed::Unknown(storage_error(err)),
        Ok(()) => {
            if let Some(err) = before.into_iter().flatten().next() {
                // A transport error before a successful COMMIT cannot
                // happen on one connection; do not trust it either way.
                return Committed::Unknown(storage_error(err));
            }
            match conn.replication_warning() {
                Some(warning) => {
                    Committed::Unknown(other(format!("COMMIT returned with a warning: {warning}")))
                }
                None => Committed::Yes,
            }
        }
    }
}

/// Settles an unknown outcome (see the module docs), rewriting the pending
/// answers; returns how the pending answers end.
async fn settle(
    db: &Db,
    known: &watch::Sender<u64>,
    group: &Group,
    why: &StorageError,
    decided: &mut [Decided],
) -> Result<(), AppendError> {
    let deadline = Instant::now() + db.options.resolve_timeout;
    let ids: Vec<uuid::Uuid> = group
        .accepted
        .iter()
        .map(|(c, _)| command_uuid(*c))
        .collect();
    let mut delay = std::time::Duration::from_millis(50);
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let attempt = match tokio::time::timeout(remaining, settle_once(db, &ids)).await {
            Ok(attempt) => attempt,
            Err(_) => Err(other(
                "the settling transaction did not finish in time".to_owned(),
            )),
        };
        match attempt {
            Ok(found) => {
                let ours = group.accepted.iter().all(|(command, outcome)| {
                    found
                        .get(command)
                        .is_some_and(|f| f.first_position == outcome.first_position)
                });
                if ours {
                    bump(known, group.next_position - 1);
                    return Ok(());
                }
                // Not committed (all or nothing); some commands may have
                // been committed since by another node: answer those.
                for answer in decided.iter_mut() {
                    if let Decided::Pending(outcome) = answer
                        && let Some((command, _)) = group
                            .accepted
                            .iter()
                            .find(|(_, o)| o.first_position == outcome.first_position)
                        && let Some(stored) = found.get(command)
                    {
                        *answer = Decided::Final(Ok(*stored));
                    }
                }
                return Err(AppendError::Storage(other(format!(
                    "the commit did not happen ({why}); nothing was appended"
                ))));
            }
            Err(err) => {
                if Instant::now() + delay > deadline {
                    return Err(AppendError::OutcomeUnknown(other(format!(
                        "{why}; settling it failed: {err}"
                    ))));
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(2));
            }
        }
    }
}

/// One attempt: lock the head (the old transaction is then over), look the
/// commands up, commit a no-op update whose acknowledgement (without a
/// replication warning) makes what was seen durable where commits must be.
async fn settle_once(
    db: &Db,
    ids: &[uuid::Uuid],
) -> Result<HashMap<CommandId, AppendOutcome>, StorageError> {
    let mut conn = db.connect(None).await?;
    let client = &conn.client;
    client.batch_execute("BEGIN").await.map_err(storage_error)?;
    client
        .query_one(LOCK_HEAD, &[])
        .await
        .map_err(storage_error)?;
    let rows = client
        .query(FIND_COMMANDS, &[&ids])
        .await
        .map_err(storage_error)?;
    client
        .execute(TOUCH_HEAD, &[])
        .await
        .map_err(storage_error)?;
    client
        .batch_execute("COMMIT")
        .await
        .map_err(storage_error)?;
    let mut warning = None;
    while let Ok(notice) = conn.notices.try_recv() {
        if notice.message().contains("synchronous replication") {
            warning = Some(notice.message().to_owned());
        }
    }
    if let Some(warning) = warning {
        return Err(other(format!("the settling commit warned: {warning}")));
    }
    let mut found = HashMap::new();
    for row in rows {
        let id: uuid::Uuid = row.try_get(0).map_err(storage_error)?;
        let outcome = outcome_from(
            row.try_get(1).map_err(storage_error)?,
            row.try_get(2).map_err(storage_error)?,
            row.try_get(3).map_err(storage_error)?,
        )?;
        found.insert(CommandId::from_bytes(*id.as_bytes()), outcome);
    }
    Ok(found)
}

fn answer(replies: Vec<Reply>, decided: Vec<Decided>, pending: Result<(), AppendError>) {
    for (reply, decided) in replies.into_iter().zip(decided) {
        let result = match decided {
            Decided::Final(result) => result,
            Decided::Pending(outcome) => pending.clone().map(|()| outcome),
        };
        // A caller that stopped waiting does not matter: its append stands.
        let _ = reply.send(result);
    }
}

fn fail_all(requests: Vec<PgAppend>, err: AppendError) {
    for request in requests {
        let _ = request.reply.send(Err(err.clone()));
    }
}
