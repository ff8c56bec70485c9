//! The read paths of [`SledEventLog`]: the committed head, command outcomes,
//! stream positions, reads by stream and by position, and the [`Scan`] and
//! [`RawRecords`] iterators over either engine's records.

use backchannel_domain::events::StreamId;
use backchannel_domain::ids::CommandId;

use crate::chunks::{self, ChunkCursor, Records};
use crate::envelope::{AppendOutcome, RecordedEvent};
use crate::error::{AppendError, Error, StorageError};
use crate::tail::SledTail;
use crate::writer;

use super::{SledEventLog, decode_at};

impl SledEventLog {
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
    /// a blocking thread: the future is ready when first polled.
    pub async fn read_stream(
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

    /// Up to `limit` events from `from_position` (1 = the beginning) in position
    /// order, never past the committed head. An empty page means the caller is
    /// at the head.
    pub async fn read_all(
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
