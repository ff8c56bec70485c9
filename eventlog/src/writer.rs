//! The single writer: three threads (sequencer, syncer, head) that
//! group-commit appends.
//!
//! Appends arrive over an unbounded channel (each caller awaits its own reply, so
//! the queue is bounded by the number of callers). The *sequencer* thread takes
//! every request waiting, up to [`MAX_GROUP_EVENTS`] events, validates them one by
//! one against the in-memory indexes plus the earlier requests of the same group,
//! encodes the accepted ones with gapless positions and the hash chain into
//! chunks of at most [`CHUNK_TARGET_BYTES`], applies the chunks in one sled batch
//! (O(1) keys per group, not per event) and adds the appends to the indexes. It then hands the group to the *syncer* thread,
//! which flushes sled and fsyncs its files, then to the *head* thread, which
//! records the new committed head in the store's `HEAD` (fdatasync), publishes
//! it and only then answers the group's callers. While the syncer waits for the disk, the
//! sequencer already builds and applies the next group, so the CPU work of one
//! group overlaps the fsync of the previous one; the syncer covers every group
//! handed over meanwhile with one flush + fsync.
//!
//! Nothing applied but not yet synced is visible: readers stop at the committed
//! head, and every answer of a group (a deduplicated retry or a conflict too) is
//! sent by the syncer after that group, and so all earlier ones, are durable.
//!
//! On a storage error the waiters of every group not yet synced get
//! [`AppendError::Storage`] and both threads stop: after a failed `apply_batch`,
//! `flush` or fsync we cannot know what sled holds in memory or on disk, so
//! carrying on with in-memory heads would risk gaps or a forked chain. Later
//! appends get [`AppendError::Closed`]; reopening the store recovers from what is
//! on disk.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock, mpsc as std_mpsc};

use backchannel_domain::events::{Event, StreamId};
use backchannel_domain::ids::{CommandId, EventId};
use tokio::sync::{mpsc, oneshot, watch};

use crate::chunks::Records;
use crate::codec;
use crate::envelope::{AppendMeta, AppendOutcome, Envelope, ExpectedVersion, Hash, RecordedAt};
use crate::error::{AppendError, Error, StorageError};
use crate::head::HeadFile;
use crate::index::Indexes;
use crate::keys;
use crate::store::Syncer;

/// Upper bound of one group commit, in events. Bigger groups amortise the fsync
/// better but delay the first waiter; 4096 small records are about 1 MiB.
const MAX_GROUP_EVENTS: usize = 4096;
/// Upper bound of one append, so one request always fits in a group.
pub(crate) const MAX_EVENTS_PER_APPEND: usize = 1024;
/// A chunk is closed once the next record would take it past this size (a
/// record larger than this gets a chunk of its own). Well below sled's blob
/// threshold (a quarter of its 512 KiB segment), see BENCHMARKS.md.
pub(crate) const CHUNK_TARGET_BYTES: usize = 8 * 1024;
/// Applied groups the syncer may lag behind before the sequencer waits for it.
const MAX_GROUPS_IN_FLIGHT: usize = 4;

pub(crate) enum Request {
    Append(AppendRequest),
    /// Finish the requests queued before this one, flush, and stop.
    Close,
}

pub(crate) struct AppendRequest {
    /// Every stream the append touches (and any it only reads), once, with
    /// the version the caller decided against; each event names its own
    /// stream (`Event::stream`), which must be among them.
    pub(crate) expected: Vec<(StreamId, ExpectedVersion)>,
    pub(crate) events: Vec<Event>,
    pub(crate) meta: AppendMeta,
    pub(crate) reply: oneshot::Sender<Result<AppendOutcome, AppendError>>,
}

type Reply = oneshot::Sender<Result<AppendOutcome, AppendError>>;

/// Where the log ends.
#[derive(Clone, Copy)]
pub(crate) struct ChainHead {
    /// The last position (0: empty log).
    pub(crate) position: u64,
    /// The hash of the record at `position` (zeros for an empty log).
    pub(crate) hash: Hash,
}

/// What the writer has done since the store was opened: how appends were
/// grouped and how often the disk was synced (see [`crate::SledEventLog::commit_stats`]).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    groups: AtomicU64,
    events: AtomicU64,
    syncs: AtomicU64,
}

/// A snapshot of the writer's counters since the store was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitStats {
    /// Groups applied to sled, each one atomic `apply_batch`.
    pub groups: u64,
    /// Events appended (deduplicated retries and rejected appends excluded).
    pub events: u64,
    /// sled `flush` + fsync rounds; one can cover several groups.
    pub syncs: u64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> CommitStats {
        CommitStats {
            groups: self.groups.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            syncs: self.syncs.load(Ordering::Relaxed),
        }
    }
}

/// Starts the writer threads; the returned thread is the sequencer, which joins
/// the syncer (which joins the head stage) before it returns.
#[allow(clippy::too_many_arguments)]
pub(crate) fn spawn(
    db: sled::Db,
    syncer: Syncer,
    head_file: HeadFile,
    head: ChainHead,
    indexes: Arc<RwLock<Indexes>>,
    committed: watch::Sender<u64>,
    requests: mpsc::UnboundedReceiver<Request>,
    counters: Arc<Counters>,
) -> std::io::Result<std::thread::JoinHandle<Result<(), StorageError>>> {
    let failure = Arc::new(OnceLock::new());
    let (applied_tx, applied_rx) = std_mpsc::sync_channel(MAX_GROUPS_IN_FLIGHT);
    let (synced_tx, synced_rx) = std_mpsc::sync_channel(MAX_GROUPS_IN_FLIGHT);
    let head_stage = HeadStage {
        head_file,
        committed,
        failure: failure.clone(),
    };
    let head_thread = std::thread::Builder::new()
        .name("eventlog-head".to_owned())
        .spawn(move || head_stage.run(synced_rx))?;
    let sync_stage = SyncStage {
        db: db.clone(),
        syncer,
        failure: failure.clone(),
        counters: counters.clone(),
    };
    let sync_thread = std::thread::Builder::new()
        .name("eventlog-syncer".to_owned())
        .spawn(move || sync_stage.run(applied_rx, synced_tx, head_thread))?;
    let sequencer = Sequencer {
        db,
        head,
        indexes,
        group: Group::default(),
        failure,
        counters,
    };
    std::thread::Builder::new()
        .name("eventlog-writer".to_owned())
        .spawn(move || sequencer.run(requests, applied_tx, sync_thread))
}

/// A group applied to sled, waiting to be made durable and answered.
struct Applied {
    /// The head after this group.
    head: ChainHead,
    /// Whether the group wrote anything (else it only carries answers).
    wrote: bool,
    answers: Vec<(Reply, Result<AppendOutcome, AppendError>)>,
}

/// Validates, sequences and applies groups. Owns the sequencing state.
struct Sequencer {
    db: sled::Db,
    /// The last applied position and its hash. Only this thread changes them.
    head: ChainHead,
    /// Stream and command indexes, shared with readers; only this thread
    /// writes them, after a batch is applied.
    indexes: Arc<RwLock<Indexes>>,
    /// The group being built; its buffers are reused from group to group.
    group: Group,
    /// Set once by whichever thread first hits a storage error.
    failure: Arc<OnceLock<StorageError>>,
    counters: Arc<Counters>,
}

/// The state of the group being built: what it would commit if applied.
struct Group {
    /// Chunk buffers; `chunks[..used]` hold this group's chunks, in order.
    chunks: Vec<Vec<u8>>,
    used: usize,
    next_position: u64,
    chain: Hash,
    /// Stream versions after this group's accepted appends.
    stream_heads: HashMap<StreamId, u64>,
    /// Outcomes of this group's accepted appends.
    commands: HashMap<CommandId, AppendOutcome>,
    /// Accepted appends (command, first position), to add to the command
    /// index once applied.
    accepted: Vec<(CommandId, u64)>,
    /// Runs of consecutive positions of one stream (stream, first position,
    /// count), to add to the stream index once applied: one run per
    /// single-stream append.
    runs: Vec<(StreamId, u64, u64)>,
    /// One request's streams with their versions as its events are numbered.
    versions: Vec<(StreamId, u64)>,
    recorded_at: RecordedAt,
    /// One request's records, encoded before any of them joins a chunk, so a
    /// rejected request leaves the group untouched.
    scratch: Vec<u8>,
    ranges: Vec<Range<usize>>,
    /// Set if a record could not join a chunk (which no record under
    /// `MAX_RECORD_BYTES` can cause): the group is then not applied at all.
    broken: Option<StorageError>,
}

impl Default for Group {
    fn default() -> Self {
        Group {
            chunks: Vec::new(),
            used: 0,
            next_position: 1,
            chain: [0; 32],
            stream_heads: HashMap::new(),
            commands: HashMap::new(),
            accepted: Vec::new(),
            runs: Vec::new(),
            versions: Vec::new(),
            recorded_at: RecordedAt::from_micros(0),
            scratch: Vec::new(),
            ranges: Vec::new(),
            broken: None,
        }
    }
}

impl Group {
    fn reset(&mut self, head: ChainHead) {
        self.used = 0;
        self.next_position = head.position + 1;
        self.chain = head.hash;
        self.stream_heads.clear();
        self.commands.clear();
        self.accepted.clear();
        self.runs.clear();
        self.broken = None;
        self.recorded_at = RecordedAt::now();
    }

    /// Appends one encoded record at `position` to the group's chunks.
    fn push(&mut self, position: u64, record: &[u8]) -> Result<(), codec::CodecError> {
        let start_new = match self.used.checked_sub(1).and_then(|i| self.chunks.get(i)) {
            None => true,
            Some(chunk) => chunk.len() + 4 + record.len() > CHUNK_TARGET_BYTES,
        };
        if start_new {
            if self.chunks.len() == self.used {
                self.chunks.push(Vec::with_capacity(CHUNK_TARGET_BYTES));
            }
            let chunk = &mut self.chunks[self.used];
            chunk.clear();
            codec::begin_chunk(chunk, position);
            self.used += 1;
        }
        let chunk = &mut self.chunks[self.used - 1];
        codec::push_chunk_raw(chunk, record)
    }
}

impl Sequencer {
    /// The sequencer thread's body. Returns when closed, when every sender is
    /// gone, or after a storage error (which every affected waiter has seen).
    fn run(
        mut self,
        mut requests: mpsc::UnboundedReceiver<Request>,
        applied: std_mpsc::SyncSender<Applied>,
        sync_thread: std::thread::JoinHandle<Result<(), StorageError>>,
    ) -> Result<(), StorageError> {
        let result = self.sequence(&mut requests, &applied);
        // Closing the hand-over channel lets the syncer finish and stop.
        drop(applied);
        let synced = match sync_thread.join() {
            Ok(result) => result,
            Err(_) => Err(StorageError::new(std::io::Error::other(
                "the event log syncer thread panicked",
            ))),
        };
        result.and(synced)
    }

    fn sequence(
        &mut self,
        requests: &mut mpsc::UnboundedReceiver<Request>,
        applied: &std_mpsc::SyncSender<Applied>,
    ) -> Result<(), StorageError> {
        let mut pending: Vec<AppendRequest> = Vec::new();
        loop {
            let mut closing = false;
            let mut events = 0;
            match requests.blocking_recv() {
                Some(Request::Append(request)) => {
                    events += request.events.len();
                    pending.push(request);
                }
                Some(Request::Close) | None => closing = true,
            }
            while !closing && events < MAX_GROUP_EVENTS {
                match requests.try_recv() {
                    Ok(Request::Append(request)) => {
                        events += request.events.len();
                        pending.push(request);
                    }
                    Ok(Request::Close) => closing = true,
                    Err(_) => break,
                }
            }
            if !pending.is_empty() {
                let group = self.apply_group(&mut pending)?;
                if let Err(std_mpsc::SendError(group)) = applied.send(group) {
                    // The syncer stopped after a storage error.
                    let err = self.failure().clone();
                    fail_all(group.answers, &err);
                    return Err(err);
                }
            }
            if closing {
                return Ok(());
            }
        }
    }

    fn failure(&self) -> &StorageError {
        self.failure.get_or_init(|| {
            StorageError::new(std::io::Error::other("the event log syncer stopped"))
        })
    }

    fn apply_group(&mut self, requests: &mut Vec<AppendRequest>) -> Result<Applied, StorageError> {
        let mut group = std::mem::take(&mut self.group);
        group.reset(self.head);
        let mut answers = Vec::with_capacity(requests.len());
        {
            let indexes = match self.indexes.read() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            for request in requests.drain(..) {
                let answer = self.prepare(&indexes, &request, &mut group);
                answers.push((request.reply, answer));
            }
        }
        let wrote = group.used > 0;
        let result = match group.broken.take() {
            Some(err) => {
                let err = self.failure.get_or_init(|| err).clone();
                tracing::error!(error = %err, "event log group is malformed; the writer stops");
                Err(err)
            }
            None if wrote => self.apply(&group),
            None => Ok(()),
        };
        self.group = group;
        if let Err(err) = result {
            fail_all(answers, &err);
            return Err(err);
        }
        Ok(Applied {
            head: self.head,
            wrote,
            answers,
        })
    }

    /// Applies the group's chunks in one atomic batch, then publishes its
    /// appends to the indexes.
    fn apply(&mut self, group: &Group) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for chunk in &group.chunks[..group.used] {
            let first = codec::decode_chunk(chunk)
                .map(|records| records.header().first_position)
                .map_err(|err| StorageError::new(std::io::Error::other(err)))?;
            batch.insert(&keys::chunk(first)[..], chunk.as_slice());
        }
        if let Err(err) = self.db.apply_batch(batch) {
            let err = StorageError::from(err);
            let err = self.failure.get_or_init(|| err).clone();
            tracing::error!(error = %err, "event log apply_batch failed; the writer stops");
            return Err(err);
        }
        let events = group.next_position - 1 - self.head.position;
        self.counters.groups.fetch_add(1, Ordering::Relaxed);
        self.counters.events.fetch_add(events, Ordering::Relaxed);
        self.head = ChainHead {
            position: group.next_position - 1,
            hash: group.chain,
        };
        let mut indexes = match self.indexes.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        for &(stream, first, count) in &group.runs {
            indexes.add_run(stream, first, count);
        }
        for &(command, first) in &group.accepted {
            indexes.add_command(command, first);
        }
        Ok(())
    }

    /// Validates one request against the applied state plus the group so far,
    /// and adds its records to the group. A rejection leaves the group untouched.
    fn prepare(
        &self,
        indexes: &Indexes,
        request: &AppendRequest,
        group: &mut Group,
    ) -> Result<AppendOutcome, AppendError> {
        let command_id = request.meta.command_id;
        if let Some(first) = group.commands.get(&command_id) {
            return Ok(AppendOutcome {
                deduplicated: true,
                ..*first
            });
        }
        if let Some(first) = indexes.command(&command_id) {
            return self.stored_outcome(command_id, first);
        }

        // Every expectation against the applied state plus the group so far;
        // one stale stream rejects the whole request.
        group.versions.clear();
        for &(stream, expected) in &request.expected {
            let current = match group.stream_heads.get(&stream) {
                Some(&version) => version,
                None => indexes.stream_version(&stream),
            };
            if !expected.accepts(current) {
                return Err(AppendError::WrongExpectedVersion {
                    stream,
                    expected,
                    current,
                });
            }
            group.versions.push((stream, current));
        }

        let first_position = group.next_position;
        let mut chain = group.chain;
        let mut last_version = 0;
        group.scratch.clear();
        group.ranges.clear();
        for (index, event) in request.events.iter().enumerate() {
            let offset = index as u64;
            let stream = event.stream();
            // `SledEventLog::append_to_streams` checked that every event's
            // stream has an expectation; a request without one is refused.
            let Some(version) = group.versions.iter_mut().find(|(s, _)| *s == stream) else {
                return Err(AppendError::WrongStream {
                    index,
                    expected: request.expected.first().map_or(stream, |(s, _)| *s),
                    found: stream,
                });
            };
            version.1 += 1;
            last_version = version.1;
            let envelope = Envelope {
                position: first_position + offset,
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
            let start = group.scratch.len();
            codec::encode_record(&envelope, event, &mut group.scratch)
                .map_err(|source| AppendError::Encode { index, source })?;
            let record = start..group.scratch.len();
            chain = codec::record_hash(&group.scratch[record.clone()]);
            group.ranges.push(record);
        }

        let count = group.ranges.len() as u64;
        let scratch = std::mem::take(&mut group.scratch);
        let ranges = std::mem::take(&mut group.ranges);
        let mut pushed = Ok(());
        for (offset, range) in ranges.iter().enumerate() {
            pushed = group.push(first_position + offset as u64, &scratch[range.clone()]);
            if pushed.is_err() {
                break;
            }
        }
        group.scratch = scratch;
        group.ranges = ranges;
        if let Err(err) = pushed {
            let err = StorageError::new(std::io::Error::other(err));
            group.broken = Some(err.clone());
            return Err(AppendError::Storage(err));
        }

        let outcome = AppendOutcome {
            first_position,
            last_position: first_position + count - 1,
            stream_version: last_version,
            deduplicated: false,
        };
        group.next_position += count;
        group.chain = chain;
        for &(stream, version) in &group.versions {
            group.stream_heads.insert(stream, version);
        }
        group.commands.insert(command_id, outcome);
        group.accepted.push((command_id, first_position));
        for (offset, event) in request.events.iter().enumerate() {
            let position = first_position + offset as u64;
            let stream = event.stream();
            match group.runs.last_mut() {
                Some((last, first, count)) if *last == stream && *first + *count == position => {
                    *count += 1;
                }
                _ => group.runs.push((stream, position, 1)),
            }
        }
        Ok(outcome)
    }

    /// The outcome of the applied append of `command` starting at `first`.
    fn stored_outcome(&self, command: CommandId, first: u64) -> Result<AppendOutcome, AppendError> {
        stored_outcome(&self.db, command, first, self.head.position)
    }
}

fn fail_all(answers: Vec<(Reply, Result<AppendOutcome, AppendError>)>, err: &StorageError) {
    for (reply, _) in answers {
        let _ = reply.send(Err(AppendError::Storage(err.clone())));
    }
}

/// Makes applied groups durable in sled and hands them to the head stage.
struct SyncStage {
    db: sled::Db,
    syncer: Syncer,
    failure: Arc<OnceLock<StorageError>>,
    counters: Arc<Counters>,
}

/// A sync round: groups whose records are durable in sled (or that wrote
/// nothing), waiting for the head record.
struct Synced {
    wrote: bool,
    groups: Vec<Applied>,
}

/// Records the committed head (`HEAD`, see `head.rs`) after sled's sync,
/// then publishes it and answers the callers. A thread of its own, so the
/// head record's fdatasync of one round overlaps sled's flush + fsync of the
/// next; one head write covers every round synced meanwhile.
struct HeadStage {
    head_file: HeadFile,
    /// Tells readers and tails the last committed position.
    committed: watch::Sender<u64>,
    failure: Arc<OnceLock<StorageError>>,
}

impl SyncStage {
    fn run(
        mut self,
        applied: std_mpsc::Receiver<Applied>,
        synced: std_mpsc::SyncSender<Synced>,
        head_thread: std::thread::JoinHandle<Result<(), StorageError>>,
    ) -> Result<(), StorageError> {
        let result = self.sync_rounds(&applied, &synced);
        // Closing the hand-over lets the head stage finish and stop.
        drop(synced);
        let recorded = match head_thread.join() {
            Ok(result) => result,
            Err(_) => Err(StorageError::new(std::io::Error::other(
                "the event log head-record thread panicked",
            ))),
        };
        result.and(recorded)
    }

    fn sync_rounds(
        &mut self,
        applied: &std_mpsc::Receiver<Applied>,
        synced: &std_mpsc::SyncSender<Synced>,
    ) -> Result<(), StorageError> {
        while let Ok(first) = applied.recv() {
            let mut groups = vec![first];
            groups.extend(applied.try_iter());
            let wrote = groups.iter().any(|g| g.wrote);
            if wrote {
                let result = self
                    .db
                    .flush()
                    .map(|_| ())
                    .map_err(StorageError::from)
                    .and_then(|()| self.syncer.sync());
                if let Err(err) = result {
                    let err = self.failure.get_or_init(|| err).clone();
                    tracing::error!(error = %err, "event log fsync failed; the writer stops");
                    for group in groups.into_iter().chain(applied.try_iter()) {
                        fail_all(group.answers, &err);
                    }
                    return Err(err);
                }
                self.counters.syncs.fetch_add(1, Ordering::Relaxed);
            }
            if let Err(std_mpsc::SendError(round)) = synced.send(Synced { wrote, groups }) {
                // The head stage stopped after a storage error.
                let err = self
                    .failure
                    .get_or_init(|| {
                        StorageError::new(std::io::Error::other("the head-record stage stopped"))
                    })
                    .clone();
                for group in round.groups.into_iter().chain(applied.try_iter()) {
                    fail_all(group.answers, &err);
                }
                return Err(err);
            }
        }
        self.db.flush()?;
        self.syncer.sync()
    }
}

impl HeadStage {
    fn run(mut self, synced: std_mpsc::Receiver<Synced>) -> Result<(), StorageError> {
        let mut rounds = Vec::new();
        while let Ok(first) = synced.recv() {
            rounds.push(first);
            rounds.extend(synced.try_iter());
            let last = rounds
                .last()
                .and_then(|round| round.groups.last())
                .map(|group| group.head);
            if let Some(head) = last {
                // sled's records first (the sync stage), then the head record
                // naming them, then the answers: an acknowledged append is
                // always covered by `HEAD`, and `HEAD` never names what is
                // not durable.
                if rounds.iter().any(|round| round.wrote)
                    && let Err(err) = self.head_file.record(head)
                {
                    let err = self.failure.get_or_init(|| err.into()).clone();
                    tracing::error!(error = %err, "writing the event log's head record failed; the writer stops");
                    for round in rounds.drain(..).chain(synced.try_iter()) {
                        for group in round.groups {
                            fail_all(group.answers, &err);
                        }
                    }
                    return Err(err);
                }
                // Publish before answering, so a caller that sees its append
                // return also sees it in reads (read-your-writes).
                self.committed.send_replace(head.position);
            }
            for round in rounds.drain(..) {
                for group in round.groups {
                    for (reply, answer) in group.answers {
                        // A caller that stopped waiting does not matter: its append stands.
                        let _ = reply.send(answer);
                    }
                }
            }
        }
        Ok(())
    }
}

/// The outcome of the append of `command` starting at `first`, recomputed from
/// its records up to `head` (they all carry the command id).
pub(crate) fn stored_outcome(
    db: &sled::Db,
    command: CommandId,
    first: u64,
    head: u64,
) -> Result<AppendOutcome, AppendError> {
    let malformed = |problem: String| {
        AppendError::Storage(StorageError::new(std::io::Error::other(format!(
            "the stored append of command {command} at position {first} {problem}"
        ))))
    };
    let last_possible = head.min(first.saturating_add(MAX_EVENTS_PER_APPEND as u64 - 1));
    let mut records = Records::new(db, first, last_possible);
    let mut outcome: Option<AppendOutcome> = None;
    while let Some(fields) = records.next_with(|_, bytes| codec::index_fields(bytes)) {
        let fields = fields
            .map_err(|err: Error| malformed(err.to_string()))?
            .map_err(|err| malformed(err.to_string()))?;
        if fields.command_id != command {
            break;
        }
        let next = match outcome {
            None => AppendOutcome {
                first_position: fields.position,
                last_position: fields.position,
                stream_version: fields.stream_version,
                deduplicated: true,
            },
            Some(so_far) => AppendOutcome {
                last_position: fields.position,
                stream_version: fields.stream_version,
                ..so_far
            },
        };
        outcome = Some(next);
    }
    outcome.ok_or_else(|| malformed("is not there".to_owned()))
}
