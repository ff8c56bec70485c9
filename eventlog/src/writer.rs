//! The single writer: two threads that group-commit appends.
//!
//! Appends arrive over an unbounded channel (each caller awaits its own reply, so
//! the queue is bounded by the number of callers). The *sequencer* thread takes
//! every request waiting, up to [`MAX_GROUP_EVENTS`] events, validates them one by
//! one against the stream heads plus the earlier requests of the same group,
//! encodes the accepted ones into one sled batch with gapless positions and the
//! hash chain, and applies it. It then hands the group to the *syncer* thread,
//! which flushes sled, fsyncs its files, publishes the new committed head and only
//! then answers the group's callers. While the syncer waits for the disk, the
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
use std::sync::{Arc, OnceLock, mpsc as std_mpsc};

use backchannel_domain::events::{Event, StreamId};
use backchannel_domain::ids::{CommandId, EventId};
use sled::IVec;
use tokio::sync::{mpsc, oneshot, watch};

use crate::codec;
use crate::envelope::{AppendMeta, AppendOutcome, Envelope, ExpectedVersion, Hash, RecordedAt};
use crate::error::{AppendError, StorageError};
use crate::keys;
use crate::store::Syncer;

/// Upper bound of one group commit, in events. Bigger groups amortise the fsync
/// better but delay the first waiter; 4096 small records are about 1 MiB.
const MAX_GROUP_EVENTS: usize = 4096;
/// Upper bound of one append, so one request always fits in a group.
pub(crate) const MAX_EVENTS_PER_APPEND: usize = 1024;
/// Stream heads cached in memory before the cache is dropped and refilled
/// lazily from sled (each entry is about 40 bytes).
const MAX_CACHED_HEADS: usize = 1 << 20;
/// Applied groups the syncer may lag behind before the sequencer waits for it.
const MAX_GROUPS_IN_FLIGHT: usize = 4;

pub(crate) enum Request {
    Append(AppendRequest),
    /// Finish the requests queued before this one, flush, and stop.
    Close,
}

pub(crate) struct AppendRequest {
    pub(crate) stream: StreamId,
    pub(crate) expected: ExpectedVersion,
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

/// Starts the writer threads; the returned thread is the sequencer, which joins
/// the syncer before it returns.
pub(crate) fn spawn(
    db: sled::Db,
    syncer: Syncer,
    head: ChainHead,
    committed: watch::Sender<u64>,
    requests: mpsc::UnboundedReceiver<Request>,
) -> std::io::Result<std::thread::JoinHandle<Result<(), StorageError>>> {
    let failure = Arc::new(OnceLock::new());
    let (applied_tx, applied_rx) = std_mpsc::sync_channel(MAX_GROUPS_IN_FLIGHT);
    let sync_stage = SyncStage {
        db: db.clone(),
        syncer,
        committed,
        failure: failure.clone(),
    };
    let sync_thread = std::thread::Builder::new()
        .name("eventlog-syncer".to_owned())
        .spawn(move || sync_stage.run(applied_rx))?;
    let sequencer = Sequencer {
        db,
        head,
        stream_heads: HashMap::new(),
        scratch: Vec::with_capacity(512),
        failure,
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
    /// Applied stream versions. Only this thread reads or writes them.
    stream_heads: HashMap<StreamId, u64>,
    /// Reused encoding buffer.
    scratch: Vec<u8>,
    /// Set once by whichever thread first hits a storage error.
    failure: Arc<OnceLock<StorageError>>,
}

/// The state of the group being built: what it would commit if applied.
struct Group {
    batch: sled::Batch,
    next_position: u64,
    chain: Hash,
    stream_heads: HashMap<StreamId, u64>,
    commands: HashMap<CommandId, AppendOutcome>,
    recorded_at: RecordedAt,
    records: usize,
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
        let mut group = Group {
            batch: sled::Batch::default(),
            next_position: self.head.position + 1,
            chain: self.head.hash,
            stream_heads: HashMap::new(),
            commands: HashMap::new(),
            recorded_at: RecordedAt::now(),
            records: 0,
        };
        let mut answers = Vec::with_capacity(requests.len());
        for request in requests.drain(..) {
            let answer = self.prepare(&request, &mut group);
            answers.push((request.reply, answer));
        }
        let wrote = group.records > 0;
        if wrote {
            if let Err(err) = self.db.apply_batch(group.batch) {
                let err = StorageError::from(err);
                let err = self.failure.get_or_init(|| err).clone();
                tracing::error!(error = %err, "event log apply_batch failed; the writer stops");
                fail_all(answers, &err);
                return Err(err);
            }
            self.head = ChainHead {
                position: group.next_position - 1,
                hash: group.chain,
            };
            if self.stream_heads.len() + group.stream_heads.len() > MAX_CACHED_HEADS {
                self.stream_heads.clear();
            }
            self.stream_heads.extend(group.stream_heads);
        }
        Ok(Applied {
            head: self.head,
            wrote,
            answers,
        })
    }

    /// Validates one request against the committed state plus the group so far,
    /// and adds its records to the group. A rejection leaves the group untouched.
    fn prepare(
        &mut self,
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
        let stored = self
            .db
            .get(keys::command(&command_id))
            .map_err(|err| AppendError::Storage(err.into()))?;
        if let Some(stored) = stored {
            return keys::command_outcome(&stored).ok_or_else(|| {
                AppendError::Storage(StorageError::new(std::io::Error::other(format!(
                    "the stored outcome of command {command_id} is malformed"
                ))))
            });
        }

        let stream = request.stream;
        let current = match group.stream_heads.get(&stream) {
            Some(&version) => version,
            None => self.applied_stream_head(&stream)?,
        };
        if !request.expected.accepts(current) {
            return Err(AppendError::WrongExpectedVersion {
                stream,
                expected: request.expected,
                current,
            });
        }

        let first_position = group.next_position;
        let mut records: Vec<IVec> = Vec::with_capacity(request.events.len());
        let mut chain = group.chain;
        for (index, event) in request.events.iter().enumerate() {
            let offset = index as u64;
            let envelope = Envelope {
                position: first_position + offset,
                stream,
                stream_version: current + 1 + offset,
                event_id: EventId::new(),
                event_type: event.event_type(),
                schema_version: event.event_type().current_schema_version(),
                codec_version: codec::CODEC_VERSION,
                recorded_at: group.recorded_at,
                actor: request.meta.actor,
                command_id,
                correlation_id: request.meta.correlation_id,
                prev_hash: chain,
            };
            self.scratch.clear();
            codec::encode_record(&envelope, event, &mut self.scratch)
                .map_err(|source| AppendError::Encode { index, source })?;
            chain = codec::record_hash(&self.scratch);
            records.push(IVec::from(self.scratch.as_slice()));
        }

        let count = records.len() as u64;
        let outcome = AppendOutcome {
            first_position,
            last_position: first_position + count - 1,
            stream_version: current + count,
            deduplicated: false,
        };
        for (offset, record) in records.into_iter().enumerate() {
            let offset = offset as u64;
            let position = first_position + offset;
            group.batch.insert(&keys::event(position)[..], record);
            group.batch.insert(
                &keys::stream_version(&stream, current + 1 + offset)[..],
                &position.to_be_bytes()[..],
            );
        }
        group.batch.insert(
            &keys::command(&command_id)[..],
            &keys::command_value(&outcome)[..],
        );
        group.next_position += count;
        group.chain = chain;
        group.records += records_len(count);
        group.stream_heads.insert(stream, outcome.stream_version);
        group.commands.insert(command_id, outcome);
        Ok(outcome)
    }

    fn applied_stream_head(&mut self, stream: &StreamId) -> Result<u64, AppendError> {
        if let Some(&version) = self.stream_heads.get(stream) {
            return Ok(version);
        }
        let last = self
            .db
            .scan_prefix(keys::stream_prefix(stream))
            .next_back()
            .transpose()
            .map_err(|err| AppendError::Storage(err.into()))?;
        let version = match last {
            Some((key, _)) => keys::version_of(&key).ok_or_else(|| {
                AppendError::Storage(StorageError::new(std::io::Error::other(format!(
                    "malformed stream index key for {stream:?}"
                ))))
            })?,
            None => 0,
        };
        self.stream_heads.insert(*stream, version);
        Ok(version)
    }
}

fn records_len(count: u64) -> usize {
    usize::try_from(count).unwrap_or(usize::MAX)
}

fn fail_all(answers: Vec<(Reply, Result<AppendOutcome, AppendError>)>, err: &StorageError) {
    for (reply, _) in answers {
        let _ = reply.send(Err(AppendError::Storage(err.clone())));
    }
}

/// Makes applied groups durable, publishes the committed head, answers callers.
struct SyncStage {
    db: sled::Db,
    syncer: Syncer,
    /// Tells readers and tails the last committed position.
    committed: watch::Sender<u64>,
    failure: Arc<OnceLock<StorageError>>,
}

impl SyncStage {
    fn run(mut self, applied: std_mpsc::Receiver<Applied>) -> Result<(), StorageError> {
        let mut groups = Vec::new();
        while let Ok(first) = applied.recv() {
            groups.push(first);
            groups.extend(applied.try_iter());
            if groups.iter().any(|g| g.wrote) {
                let synced = self
                    .db
                    .flush()
                    .map(|_| ())
                    .map_err(StorageError::from)
                    .and_then(|()| self.syncer.sync());
                if let Err(err) = synced {
                    let err = self.failure.get_or_init(|| err).clone();
                    tracing::error!(error = %err, "event log fsync failed; the writer stops");
                    for group in groups.drain(..).chain(applied.try_iter()) {
                        fail_all(group.answers, &err);
                    }
                    return Err(err);
                }
            }
            if let Some(last) = groups.last() {
                // Publish before answering, so a caller that sees its append
                // return also sees it in reads (read-your-writes).
                self.committed.send_replace(last.head.position);
            }
            for group in groups.drain(..) {
                for (reply, answer) in group.answers {
                    // A caller that stopped waiting does not matter: its append stands.
                    let _ = reply.send(answer);
                }
            }
        }
        self.db.flush()?;
        self.syncer.sync()
    }
}
