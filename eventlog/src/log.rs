//! [`SledEventLog`]: the event log on sled, and its read paths.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use backchannel_domain::events::{Event, StreamId};
use tokio::sync::{mpsc, oneshot, watch};

use crate::codec;
use crate::envelope::{AppendMeta, AppendOutcome, ExpectedVersion, RecordedEvent};
use crate::error::{AppendError, Error, OpenError, StorageError};
use crate::keys;
use crate::store;
use crate::tail::SledTail;
use crate::writer::{self, AppendRequest, ChainHead, Request};

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
    requests: mpsc::UnboundedSender<Request>,
    /// Taken by whoever stops the writer first (`close` or `Drop`).
    writer: Mutex<Option<JoinHandle<Result<(), StorageError>>>>,
    /// Held for the life of the store; declared last so it is released last.
    _lock: std::fs::File,
}

impl SledEventLog {
    /// Opens the store in `path`, creating it if the directory is missing or
    /// empty, and starts the writer thread.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        let path = path.as_ref().to_owned();
        let opened = store::open(&path)?;
        let head = load_chain_head(&path, &opened.db)?;
        let (committed_tx, committed) = watch::channel(head.position);
        let (requests, receiver) = mpsc::unbounded_channel();
        let handle = writer::spawn(
            opened.db.clone(),
            opened.syncer,
            head,
            committed_tx,
            receiver,
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
                requests,
                writer: Mutex::new(Some(handle)),
                _lock: opened.lock,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Stops the writer after it has committed every append queued before this
    /// call, flushed and fsynced. Later appends (through any clone) fail with
    /// [`AppendError::Closed`]; reads keep working until the last clone is dropped.
    /// Blocks for at most one group commit.
    pub fn close(self) -> Result<(), Error> {
        self.inner.stop()
    }

    /// Appends `events` to `stream` atomically and durably (see the crate docs).
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
        if events.is_empty() {
            return Err(AppendError::NoEvents);
        }
        if events.len() > writer::MAX_EVENTS_PER_APPEND {
            return Err(AppendError::TooManyEvents {
                count: events.len(),
                max: writer::MAX_EVENTS_PER_APPEND,
            });
        }
        if let Some((index, found)) = events
            .iter()
            .map(Event::stream)
            .enumerate()
            .find(|(_, found)| *found != stream)
        {
            return Err(AppendError::WrongStream {
                index,
                expected: stream,
                found,
            });
        }
        let (reply, answer) = oneshot::channel();
        self.inner
            .requests
            .send(Request::Append(AppendRequest {
                stream,
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
        let from = keys::stream_version(&stream, from_version.max(1));
        let to = keys::stream_version(&stream, u64::MAX);
        let mut events = Vec::new();
        for entry in self.inner.db.range(from..=to) {
            let (key, value) = entry?;
            let position = keys::u64_value(&value).ok_or_else(|| Error::Broken {
                position: 0,
                problem: format!(
                    "the index of {stream:?} version {:?} holds no position",
                    keys::version_of(&key)
                ),
            })?;
            if position > head {
                break;
            }
            let record =
                self.inner
                    .db
                    .get(keys::event(position))?
                    .ok_or_else(|| Error::Broken {
                        position,
                        problem: format!("indexed by {stream:?} but missing"),
                    })?;
            events.push(decode_at(position, &record)?);
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

    pub(crate) fn scan_range(&self, from: u64, to: u64) -> Scan {
        Scan {
            iter: self.inner.db.range(keys::event(from)..=keys::event(to)),
            expected: from,
            to,
        }
    }

    /// Follows the log: every event from `from_position`, then each new one as it
    /// is committed, without gaps or duplicates.
    pub fn tail(&self, from_position: u64) -> SledTail {
        SledTail::new(self.clone(), from_position.max(1))
    }
}

/// A synchronous iterator over committed events in position order.
///
/// Checks that positions are gapless as it goes.
pub struct Scan {
    iter: sled::Iter,
    expected: u64,
    to: u64,
}

impl Iterator for Scan {
    type Item = Result<RecordedEvent, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.expected > self.to {
            return None;
        }
        let position = self.expected;
        let (key, value) = match self.iter.next() {
            Some(Ok(entry)) => entry,
            Some(Err(err)) => return Some(Err(err.into())),
            None => {
                self.expected = self.to + 1;
                return Some(Err(missing(position)));
            }
        };
        if keys::position_of(&key) != Some(position) {
            self.expected = self.to + 1;
            return Some(Err(missing(position)));
        }
        self.expected += 1;
        Some(decode_at(position, &value))
    }
}

fn missing(position: u64) -> Error {
    Error::Broken {
        position,
        problem: "the record is missing (a gap in the log)".to_owned(),
    }
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

fn load_chain_head(path: &Path, db: &sled::Db) -> Result<ChainHead, OpenError> {
    let corrupt = |reason: String| OpenError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let last = db
        .scan_prefix([keys::EVENT])
        .next_back()
        .transpose()
        .map_err(|err| OpenError::Storage {
            path: path.to_owned(),
            source: err.into(),
        })?;
    let Some((key, value)) = last else {
        return Ok(ChainHead {
            position: 0,
            hash: [0; 32],
        });
    };
    let position =
        keys::position_of(&key).ok_or_else(|| corrupt("a malformed event key".to_owned()))?;
    let (envelope, _) = codec::decode_envelope(&value).map_err(|err| {
        corrupt(format!(
            "the last record (position {position}) does not decode: {err}"
        ))
    })?;
    if envelope.position != position {
        return Err(corrupt(format!(
            "the last record is stored at position {position} but says {}",
            envelope.position
        )));
    }
    Ok(ChainHead {
        position,
        hash: codec::record_hash(&value),
    })
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
