//! The sequencer stage of the writer: validating each append against the
//! indexes and the group being built, numbering and encoding it into chunks,
//! and applying the group to sled in one batch.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, RwLock, mpsc as std_mpsc};

use backchannel_domain::events::StreamId;
use backchannel_domain::ids::{CommandId, EventId};
use tokio::sync::mpsc;

use crate::codec;
use crate::compose::ChainEnd;
use crate::envelope::{AppendOutcome, Hash, RecordedAt};
use crate::error::{AppendError, StorageError};
use crate::index::Indexes;
use crate::keys;

use super::{
    AppendRequest, Applied, CHUNK_TARGET_BYTES, ChainHead, Counters, MAX_GROUP_EVENTS, Request,
    fail_all, stored_outcome,
};

/// Validates, sequences and applies groups. Owns the sequencing state.
pub(super) struct Sequencer {
    pub(super) db: sled::Db,
    /// The last applied position and its hash. Only this thread changes them.
    pub(super) head: ChainHead,
    /// Stream and command indexes, shared with readers; only this thread
    /// writes them, after a batch is applied.
    pub(super) indexes: Arc<RwLock<Indexes>>,
    /// The group being built; its buffers are reused from group to group.
    pub(super) group: Group,
    /// Set once by whichever thread first hits a storage error.
    pub(super) failure: Arc<OnceLock<StorageError>>,
    pub(super) counters: Arc<Counters>,
}

/// The state of the group being built: what it would commit if applied.
pub(super) struct Group {
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
    pub(super) fn run(
        mut self,
        mut requests: mpsc::UnboundedReceiver<Request>,
        applied: std_mpsc::SyncSender<Applied>,
        sync_thread: std::thread::JoinHandle<Result<(), StorageError>>,
    ) -> Result<(), StorageError> {
        let result = self.sequence(&mut requests, &applied);
        // Closing the hand-over channel lets the syncer finish and stop.
        drop(applied);
        result.and(super::join(sync_thread, "syncer"))
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
        let mut end = ChainEnd::after(first_position - 1, group.chain);
        let mut last_version = 0;
        group.scratch.clear();
        group.ranges.clear();
        for (index, event) in request.events.iter().enumerate() {
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
            let start = group.scratch.len();
            end.compose(
                &request.meta,
                group.recorded_at,
                last_version,
                EventId::new(),
                event,
                &mut group.scratch,
            )
            .map_err(|source| AppendError::Encode { index, source })?;
            group.ranges.push(start..group.scratch.len());
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

        let outcome = AppendOutcome::appended(first_position, count, last_version);
        group.next_position += count;
        group.chain = end.head_hash();
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
