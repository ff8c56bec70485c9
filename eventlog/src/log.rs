//! [`SledEventLog`]: the event log on sled, and its read paths.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;

use backchannel_domain::events::{Event, StreamId};
use tokio::sync::{mpsc, oneshot, watch};

use crate::checkpoint::ResumePoint;
use crate::envelope::{AppendMeta, AppendOutcome, ExpectedVersion, Hash, RecordedEvent};
use crate::error::{AppendError, Error, OpenError, StorageError};
use crate::index::{self, IndexStats, Indexes};
use crate::store;
use crate::writer::{self, AppendRequest, ChainHead, CommitStats, Counters, Request};

mod checks;
mod read;

pub(crate) use checks::{check_append, check_one_stream, decode_at};
pub use read::{RawRecords, Scan};

/// Most streams one append may name (its events' streams and any it only
/// checks): a decision touches one or two.
pub const MAX_STREAMS_PER_APPEND: usize = 16;

/// The event log stored in a sled database in one directory.
///
/// Cheap to clone; every clone shares one writer thread. The store stays open
/// (and locked) until [`SledEventLog::close`] is called or the last clone and
/// the last [`SledTail`](crate::SledTail) are dropped.
#[derive(Clone)]
pub struct SledEventLog {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    path: PathBuf,
    /// sled is internally synchronised; readers use it directly, only the writer
    /// thread writes to it.
    pub(crate) db: sled::Db,
    /// The last committed (durable) position. Reads never go past it, so nobody
    /// sees an event before it is acknowledged.
    pub(crate) committed: watch::Receiver<u64>,
    /// The stream and command indexes, rebuilt on open; only the writer thread
    /// changes them.
    pub(crate) indexes: Arc<RwLock<Indexes>>,
    requests: mpsc::UnboundedSender<Request>,
    /// The writer's counters: groups, events, syncs.
    counters: Arc<Counters>,
    /// Taken by whoever stops the writer first (`close` or `Drop`).
    writer: Mutex<Option<JoinHandle<Result<(), StorageError>>>>,
    /// The key exports and checkpoints authenticate the head with, once the
    /// owner gave it (see `mac.rs`); set once, read by any thread.
    pub(crate) head_key: OnceLock<crate::mac::HeadKey>,
    /// Held for the life of the store; declared last so it is released last.
    _lock: std::fs::File,
}

impl SledEventLog {
    /// Opens the store in `path`, creating it if the directory is missing or
    /// empty, rebuilds the in-memory indexes by scanning every record's envelope
    /// (linear in the log's length), and starts the writer thread.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        let path = path.as_ref().to_owned();
        let mut opened = store::open(&path)?;
        let loaded = index::load(&path, &opened.db, opened.recorded, None)?;
        store::settle_head(&path, &mut opened, loaded.head)?;
        Self::start(path, opened, loaded.head, loaded.indexes)
    }

    /// Opens the store like [`SledEventLog::open`], and in the same pass over
    /// the log hands every event from `from_position` on to `visit`, in order,
    /// before any append can happen: how a server's read models catch up.
    ///
    /// sled keeps every page a bulk scan reads resident (see `store::reopen`),
    /// so the pass reads the log in slices and closes and opens sled after
    /// each (`index::load_releasing`); only then does the writer start. An error from `visit` stops the
    /// open: [`OpenError::Replay`] names the position.
    pub fn open_replaying<F, E>(
        path: impl AsRef<Path>,
        from_position: u64,
        mut visit: F,
    ) -> Result<Self, OpenError>
    where
        F: FnMut(RecordedEvent) -> Result<(), E>,
        E: Into<crate::error::ReplayError>,
    {
        Self::open_visiting(path.as_ref(), from_position.max(1), None, &mut |recorded| {
            visit(recorded).map_err(Into::into)
        })
    }

    /// [`SledEventLog::open_replaying`] from a checkpoint: hands `visit` every
    /// event after `after.position`, once the pass has checked that the record
    /// there hashes to `after.hash`. If it does not, the open fails with
    /// [`OpenError::DoesNotContinue`] before anything is visited, and the
    /// caller may rebuild from position 1. If the log ends
    /// before `after.position`, the open fails with
    /// [`OpenError::CheckpointAhead`]: acknowledged events are missing.
    pub fn open_resuming<F, E>(
        path: impl AsRef<Path>,
        after: ResumePoint,
        mut visit: F,
    ) -> Result<Self, OpenError>
    where
        F: FnMut(RecordedEvent) -> Result<(), E>,
        E: Into<crate::error::ReplayError>,
    {
        let after_hash = (after.position > 0).then_some(after.hash);
        Self::open_visiting(
            path.as_ref(),
            after.position.saturating_add(1),
            after_hash,
            &mut |recorded| visit(recorded).map_err(Into::into),
        )
    }

    fn open_visiting(
        path: &Path,
        from: u64,
        after: Option<Hash>,
        visit: &mut dyn FnMut(RecordedEvent) -> Result<(), crate::error::ReplayError>,
    ) -> Result<Self, OpenError> {
        let path = path.to_owned();
        let opened = store::open(&path)?;
        let replay = index::Replay { from, after, visit };
        let (loaded, mut opened) = index::load_releasing(&path, opened, Some(replay))?;
        store::settle_head(&path, &mut opened, loaded.head)?;
        Self::start(path, opened, loaded.head, loaded.indexes)
    }

    /// Starts the writer over an opened store whose head and indexes are known.
    pub(crate) fn start(
        path: PathBuf,
        opened: store::OpenedStore,
        head: ChainHead,
        indexes: Indexes,
    ) -> Result<Self, OpenError> {
        let indexes = Arc::new(RwLock::new(indexes));
        let (committed_tx, committed) = watch::channel(head.position);
        let (requests, receiver) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let handle = writer::spawn(
            opened.db.clone(),
            opened.syncer,
            opened.head_file,
            head,
            indexes.clone(),
            committed_tx,
            receiver,
            counters.clone(),
        )
        .map_err(|source| OpenError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(SledEventLog {
            inner: Arc::new(Inner {
                path,
                db: opened.db,
                committed,
                indexes,
                requests,
                counters,
                writer: Mutex::new(Some(handle)),
                head_key: OnceLock::new(),
                _lock: opened.lock,
            }),
        })
    }

    /// The position the store's committed head record (`HEAD`) names, read
    /// without opening the store: how far an open will replay at least
    /// (`None` without a readable record). For progress reports only.
    pub fn committed_head(store: impl AsRef<Path>) -> Option<u64> {
        match crate::head::HeadFile::read(store.as_ref()) {
            Ok(crate::head::ReadHead::Found(_, head)) => Some(head.position),
            _ => None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// How the writer grouped appends and synced since open (for monitoring
    /// and benchmarks: events per group is the batch size the bench's bare-sled
    /// ceiling is measured at).
    pub fn commit_stats(&self) -> CommitStats {
        self.inner.counters.snapshot()
    }

    /// The size of the in-memory indexes (for monitoring and benchmarks).
    pub fn index_stats(&self) -> IndexStats {
        self.indexes().stats()
    }

    pub(crate) fn indexes(&self) -> RwLockReadGuard<'_, Indexes> {
        match self.inner.indexes.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Stops the writer after it has committed every append queued before this
    /// call, flushed and fsynced. Later appends (through any clone) fail with
    /// [`AppendError::Closed`]; reads keep working until the last clone is dropped.
    /// Blocks for at most one group commit.
    pub fn close(self) -> Result<(), Error> {
        self.inner.stop()
    }

    /// Appends `events` to `stream` atomically and durably (see the crate docs).
    /// The one-stream case of [`SledEventLog::append_to_streams`].
    ///
    /// Dropping the returned future does not cancel an append already handed to
    /// the writer; retry with the same command id to learn its outcome.
    pub async fn append(
        &self,
        stream: StreamId,
        expected: ExpectedVersion,
        events: Vec<Event>,
        meta: AppendMeta,
    ) -> Result<AppendOutcome, AppendError> {
        check_one_stream(&stream, &events)?;
        self.append_to_streams(vec![(stream, expected)], events, meta)
            .await
    }

    /// Appends `events`, which may belong to several streams (each event
    /// names its own: `Event::stream`), atomically and durably: with one
    /// expected version per stream in `expected`, all checked by the writer
    /// against the same state, in the same group commit. One stale
    /// expectation rejects the whole append
    /// ([`AppendError::WrongExpectedVersion`] names that stream); a command id
    /// seen before appends nothing and returns the first outcome. Every
    /// event's stream must have an expectation ([`AppendError::WrongStream`]
    /// otherwise); a stream may be listed without events, as a condition on a
    /// stream the caller's decision read; no stream may be listed twice, and
    /// at most [`MAX_STREAMS_PER_APPEND`] may be. The outcome's
    /// `stream_version` is that of the last event's stream.
    ///
    /// Dropping the returned future does not cancel an append already handed to
    /// the writer; retry with the same command id to learn its outcome.
    pub async fn append_to_streams(
        &self,
        expected: Vec<(StreamId, ExpectedVersion)>,
        events: Vec<Event>,
        meta: AppendMeta,
    ) -> Result<AppendOutcome, AppendError> {
        check_append(&expected, &events)?;
        let (reply, answer) = oneshot::channel();
        self.inner
            .requests
            .send(Request::Append(AppendRequest {
                expected,
                events,
                meta,
                reply,
            }))
            .map_err(|_| AppendError::Closed)?;
        answer.await.map_err(|_| AppendError::Closed)?
    }
}

impl Inner {
    fn stop(&self) -> Result<(), Error> {
        let handle = match self.writer.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        let Some(handle) = handle else {
            return Ok(());
        };
        // Fails only if the writer already stopped, which join reports.
        let _ = self.requests.send(Request::Close);
        writer::join(handle, "writer").map_err(Error::Storage)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(err) = self.stop() {
            tracing::error!(error = %err, path = %self.path.display(), "closing the event log failed");
        }
    }
}
