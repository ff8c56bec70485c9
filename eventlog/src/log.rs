//! [`SledEventLog`]: the event log on sled, and its read paths.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;

use backchannel_domain::events::{Event, StreamId};
use backchannel_domain::ids::CommandId;
use tokio::sync::{mpsc, oneshot, watch};

use crate::checkpoint::ResumePoint;
use crate::chunks::{self, ChunkCursor, Records};
use crate::codec;
use crate::envelope::{AppendMeta, AppendOutcome, ExpectedVersion, Hash, RecordedEvent};
use crate::error::{AppendError, Error, OpenError, StorageError};
use crate::index::{self, IndexStats, Indexes};
use crate::store;
use crate::tail::SledTail;
use crate::writer::{self, AppendRequest, ChainHead, CommitStats, Counters, Request};

/// Most streams one append may name (its events' streams and any it only
/// checks): a decision touches one or two.
pub const MAX_STREAMS_PER_APPEND: usize = 16;

/// The event log stored in a sled database in one directory.
///
/// Cheap to clone; every clone shares one writer thread. The store stays open
/// (and locked) until [`SledEventLog::close`] is called or the last clone and
/// the last [`SledTail`] are dropped.
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

    /// The last committed position (0 for an empty log).
    pub fn head(&self) -> u64 {
        *self.inner.committed.borrow()
    }

    /// The outcome of an earlier, committed append with this command id, if
    /// any (`deduplicated: true`): lets a caller answer a retried command
    /// without deciding it again.
    pub fn command_outcome(&self, command: CommandId) -> Result<Option<AppendOutcome>, Error> {
        let head = self.head();
        let first = self.indexes().command(&command);
        match first {
            Some(first) if first <= head => {
                writer::stored_outcome(&self.inner.db, command, first, head)
                    .map(Some)
                    .map_err(|err| match err {
                        AppendError::Storage(err) => Error::Storage(err),
                        other => Error::Storage(StorageError::new(std::io::Error::other(
                            other.to_string(),
                        ))),
                    })
            }
            _ => Ok(None),
        }
    }

    /// The positions of `stream`'s events, oldest first, up to `up_to` (and
    /// never past the committed head): what a conversation's timeline pages
    /// through, from the in-memory stream index, without reading the log.
    pub fn stream_positions(&self, stream: &StreamId, up_to: u64) -> Vec<u64> {
        self.indexes()
            .stream_positions(stream, 1, up_to.min(self.head()))
    }

    /// The events of `stream` from `from_version` (1 = the beginning) up to the
    /// committed head.
    ///
    /// sled serves reads from its page cache, so reads run inline rather than on
    /// a blocking thread.
    pub async fn read_stream(
        &self,
        stream: StreamId,
        from_version: u64,
    ) -> Result<Vec<RecordedEvent>, Error> {
        self.read_stream_now(stream, from_version)
    }

    /// Up to `limit` events from `from_position` (1 = the beginning) in position
    /// order, never past the committed head. An empty page means the caller is
    /// at the head.
    pub async fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        self.read_all_now(from_position, limit)
    }

    pub(crate) fn read_stream_now(
        &self,
        stream: StreamId,
        from_version: u64,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let head = self.head();
        let positions = self.indexes().stream_positions(&stream, from_version, head);
        let mut events = Vec::with_capacity(positions.len());
        // Consecutive events of a stream often share a chunk: walk it forward
        // instead of looking the chunk up again.
        let mut cursor: Option<ChunkCursor> = None;
        for position in positions {
            let range = match cursor.as_mut().filter(|c| c.reaches(position)) {
                Some(current) => current.seek(position)?,
                None => {
                    let (opened, range) = chunks::open_at(&self.inner.db, position)?;
                    cursor = Some(opened);
                    range
                }
            };
            let Some(current) = cursor.as_ref() else {
                return Err(chunks::missing(position));
            };
            let event = decode_at(position, &current.bytes()[range])?;
            if event.envelope.stream != stream {
                return Err(Error::Broken {
                    position,
                    problem: format!("indexed for {stream:?} but belongs to another stream"),
                });
            }
            events.push(event);
        }
        Ok(events)
    }

    pub(crate) fn read_all_now(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let from = from_position.max(1);
        let head = self.head();
        if from > head || limit == 0 {
            return Ok(Vec::new());
        }
        let to = head.min(from.saturating_add(limit as u64 - 1));
        let mut events = Vec::with_capacity(usize::try_from(to - from + 1).unwrap_or(0));
        for record in self.scan_range(from, to) {
            events.push(record?);
        }
        Ok(events)
    }

    /// Every event from `from_position` up to the head as of this call, decoded
    /// lazily: the fast path for replaying the whole log.
    pub fn scan(&self, from_position: u64) -> Scan {
        self.scan_range(from_position.max(1), self.head())
    }

    /// The stored bytes of the records from `from` to `to` (both included, and
    /// clipped to the committed head), undecoded: what an export copies.
    pub fn raw_records(&self, from: u64, to: u64) -> RawRecords {
        RawRecords {
            records: Pages::Sled(Records::new(
                &self.inner.db,
                from.max(1),
                to.min(self.head()),
            )),
        }
    }

    /// The stored bytes of the committed record at `position`.
    pub fn raw_record(&self, position: u64) -> Result<Vec<u8>, Error> {
        if position == 0 || position > self.head() {
            return Err(chunks::missing(position));
        }
        let (cursor, range) = chunks::open_at(&self.inner.db, position)?;
        Ok(cursor.bytes()[range].to_vec())
    }

    pub(crate) fn scan_range(&self, from: u64, to: u64) -> Scan {
        Scan {
            records: Pages::Sled(Records::new(&self.inner.db, from, to)),
        }
    }

    /// Follows the log: every event from `from_position`, then each new one as it
    /// is committed, without gaps or duplicates.
    pub fn tail(&self, from_position: u64) -> SledTail {
        SledTail::new(self.clone(), from_position.max(1))
    }
}

/// Where [`Scan`] and [`RawRecords`] read records from: one variant per
/// engine (a network engine pages `position > x ORDER BY position LIMIT n`).
#[allow(clippy::large_enum_variant)] // one per scan; boxing the sled side would cost every sled read
enum Pages {
    Sled(Records),
    Postgres(PgPages),
}

/// PostgreSQL records from `next` to `to`, a page of
/// `position >= next ORDER BY position LIMIT n` at a time (blocking).
struct PgPages {
    log: crate::PgEventLog,
    next: u64,
    to: u64,
    buffered: std::collections::VecDeque<(u64, Vec<u8>)>,
    done: bool,
}

impl PgPages {
    fn new(log: crate::PgEventLog, from: u64, to: u64) -> PgPages {
        let to = to.min(log.head());
        PgPages {
            log,
            next: from.max(1),
            to,
            buffered: std::collections::VecDeque::new(),
            done: false,
        }
    }

    fn next_record(&mut self) -> Option<Result<(u64, Vec<u8>), Error>> {
        if let Some(record) = self.buffered.pop_front() {
            return Some(Ok(record));
        }
        if self.done || self.next > self.to {
            return None;
        }
        let want = usize::try_from((self.to - self.next + 1).min(1024)).unwrap_or(1);
        match self.log.page(self.next, want) {
            Ok(page) if page.is_empty() => {
                self.done = true;
                Some(Err(chunks::missing(self.next)))
            }
            Ok(page) => {
                self.next += page.len() as u64;
                self.buffered.extend(page);
                self.buffered.pop_front().map(Ok)
            }
            Err(err) => {
                self.done = true;
                Some(Err(err))
            }
        }
    }
}

impl Scan {
    pub(crate) fn postgres(log: crate::PgEventLog, from_position: u64) -> Scan {
        let head = log.head();
        Scan {
            records: Pages::Postgres(PgPages::new(log, from_position, head)),
        }
    }
}

impl RawRecords {
    pub(crate) fn postgres(log: crate::PgEventLog, from: u64, to: u64) -> RawRecords {
        RawRecords {
            records: Pages::Postgres(PgPages::new(log, from, to)),
        }
    }
}

/// A synchronous iterator over committed events in position order, from any
/// engine ([`crate::Log::scan`]).
///
/// Checks that positions are gapless and chunks well framed as it goes; a record
/// that does not decode is an error item and the scan goes on, a framing error
/// or gap is the last item.
pub struct Scan {
    records: Pages,
}

impl Iterator for Scan {
    type Item = Result<RecordedEvent, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.records {
            Pages::Sled(records) => records
                .next_with(decode_at)
                .map(|decoded| decoded.and_then(|event| event)),
            Pages::Postgres(pages) => pages
                .next_record()
                .map(|record| record.and_then(|(position, bytes)| decode_at(position, &bytes))),
        }
    }
}

/// A synchronous iterator over committed records as stored: (position, bytes).
/// Checks positions and chunk framing like [`Scan`]; decodes nothing.
pub struct RawRecords {
    records: Pages,
}

impl Iterator for RawRecords {
    type Item = Result<(u64, Vec<u8>), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.records {
            Pages::Sled(records) => records.next_with(|position, bytes| (position, bytes.to_vec())),
            Pages::Postgres(pages) => pages.next_record(),
        }
    }
}

/// Every event of a single-stream append belongs to `stream`
/// ([`AppendError::WrongStream`] names the first that does not); both
/// engines' `append` check this before `check_append`.
pub(crate) fn check_one_stream(stream: &StreamId, events: &[Event]) -> Result<(), AppendError> {
    match events
        .iter()
        .map(Event::stream)
        .enumerate()
        .find(|(_, found)| found != stream)
    {
        Some((index, found)) => Err(AppendError::WrongStream {
            index,
            expected: *stream,
            found,
        }),
        None => Ok(()),
    }
}

/// The checks of an append that need no state: at least one event, at most
/// `MAX_EVENTS_PER_APPEND` events and [`MAX_STREAMS_PER_APPEND`] streams, no
/// stream listed twice, every event's stream listed. Shared by both engines.
pub(crate) fn check_append(
    expected: &[(StreamId, ExpectedVersion)],
    events: &[Event],
) -> Result<(), AppendError> {
    if events.is_empty() {
        return Err(AppendError::NoEvents);
    }
    if events.len() > writer::MAX_EVENTS_PER_APPEND {
        return Err(AppendError::TooManyEvents {
            count: events.len(),
            max: writer::MAX_EVENTS_PER_APPEND,
        });
    }
    if expected.len() > MAX_STREAMS_PER_APPEND {
        return Err(AppendError::TooManyStreams {
            count: expected.len(),
            max: MAX_STREAMS_PER_APPEND,
        });
    }
    for (i, (stream, _)) in expected.iter().enumerate() {
        if expected[..i].iter().any(|(earlier, _)| earlier == stream) {
            return Err(AppendError::DuplicateStream { stream: *stream });
        }
    }
    if let Some((index, found)) = events
        .iter()
        .map(Event::stream)
        .enumerate()
        .find(|(_, found)| !expected.iter().any(|(stream, _)| stream == found))
    {
        return Err(AppendError::WrongStream {
            index,
            expected: expected.first().map_or(found, |(stream, _)| *stream),
            found,
        });
    }
    Ok(())
}

pub(crate) fn decode_at(position: u64, bytes: &[u8]) -> Result<RecordedEvent, Error> {
    let event =
        codec::decode_record(bytes).map_err(|source| Error::Corrupt { position, source })?;
    if event.envelope.position != position {
        return Err(Error::Broken {
            position,
            problem: format!(
                "the record says it is at position {}",
                event.envelope.position
            ),
        });
    }
    Ok(event)
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
        match handle.join() {
            Ok(result) => result.map_err(Error::Storage),
            Err(_) => Err(Error::Storage(StorageError::new(std::io::Error::other(
                "the event log writer thread panicked",
            )))),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(err) = self.stop() {
            tracing::error!(error = %err, path = %self.path.display(), "closing the event log failed");
        }
    }
}
