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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock, mpsc as std_mpsc};

use backchannel_domain::events::{Event, StreamId};
use backchannel_domain::ids::CommandId;
use tokio::sync::{mpsc, oneshot, watch};

use crate::chunks::Records;
use crate::codec;
use crate::envelope::{AppendMeta, AppendOutcome, ExpectedVersion, Hash};
use crate::error::{AppendError, Error, StorageError};
use crate::head::HeadFile;
use crate::index::Indexes;
use crate::store::Syncer;

mod sequencer;
mod stages;

use sequencer::{Group, Sequencer};
use stages::{HeadStage, SyncStage};

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
    pub(crate) reply: Reply,
}

/// Where an append's outcome goes (both engines' writers answer through it).
pub(crate) type Reply = oneshot::Sender<Result<AppendOutcome, AppendError>>;

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

/// Waits for the writer's thread `thread` to end; a panic there becomes a
/// storage error naming it (`name`: "writer", "syncer" or "head-record").
pub(crate) fn join(
    thread: std::thread::JoinHandle<Result<(), StorageError>>,
    name: &str,
) -> Result<(), StorageError> {
    thread.join().unwrap_or_else(|_| {
        Err(StorageError::new(std::io::Error::other(format!(
            "the event log {name} thread panicked"
        ))))
    })
}

fn fail_all(answers: Vec<(Reply, Result<AppendOutcome, AppendError>)>, err: &StorageError) {
    for (reply, _) in answers {
        let _ = reply.send(Err(AppendError::Storage(err.clone())));
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
