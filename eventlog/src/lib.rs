//! # backchannel-eventlog
//!
//! The durable, gapless, hash-chained event log of Backchannel (SPEC sections 6
//! and 7), and the only crate that knows sled.
//!
//! It owns how events are stored: the envelope around every event, the record
//! format and its versioning, the sled layout, group commit, durability (an
//! append returns only after the data is fsynced), optimistic concurrency per
//! stream and idempotency by command id. It knows nothing about business rules
//! (those are `domain`'s), read models, HTTP or GraphQL: it takes `domain` events
//! and gives them back in order.
//!
//! The rest of the system sees the log through the [`EventLog`] trait, so another
//! engine (say PostgreSQL) could back it without touching other crates.
//!
//! Layout:
//! - [`codec`]: the stored record format; the only module that knows bincode.
//! - `envelope`: the envelope and the values of the public API.
//! - `keys`: the sled key layout (chunks of records under their first position,
//!   nothing else); `chunks`: reading records through chunks; `index`: the
//!   in-memory stream and command indexes, rebuilt on open by scanning every
//!   record's envelope (so opening costs time linear in the log's length);
//!   `store`: the store directory, its lock, and the fsyncs that make sled's
//!   writes durable; `head`: the committed head record (`HEAD`) every open
//!   checks the log against; `mac`: [`HeadKey`], the head authenticated with
//!   the server's key (exports, checkpoints, `GET /log/head`).
//! - `writer`: the sequencer and syncer threads that group-commit appends, one
//!   sled key per chunk of up to 8 KiB of records.
//! - `log`: [`SledEventLog`] and its read paths; `tail`: [`SledTail`];
//!   `verify`: [`SledEventLog::verify`].
//! - `chain`: [`ChainCheck`], the invariants checked one record at a time;
//!   [`portable`]: the exported log file (export, reading, checking);
//!   `import`: [`SledEventLog::import`], records written verbatim into a new
//!   store; `snapshot`: [`SledEventLog::open_snapshot`], reading a stopped
//!   server's store through a copy, never writing to it.
//!
//! Invariants: positions start at 1 and are gapless in commit order; stream
//! versions start at 1 and are contiguous; record `n` carries the blake3 hash of
//! record `n - 1`'s bytes; nothing is readable before it is durable; an append is
//! all or nothing; the log is never opened shorter or different than the head
//! recorded in `HEAD` (an acknowledged append is always covered by it).

use std::future::Future;

use backchannel_domain::events::{Event, StreamId};
use backchannel_domain::ids::CommandId;

mod chain;
mod checkpoint;
mod chunks;
pub mod codec;
mod envelope;
mod error;
mod head;
mod import;
mod index;
mod keys;
mod log;
mod mac;
mod postgres;
pub use postgres::{PG_FORMAT, PgEventLog, PgOptions, PgTail};
pub mod portable;
mod snapshot;
pub use snapshot::CopyProgress;
mod store;
mod tail;
mod verify;
mod writer;

pub use chain::ChainCheck;
pub use checkpoint::{
    CHECKPOINT_FORMAT, Checkpoint, CheckpointError, ResumePoint, SavedCheckpoint,
};
pub use envelope::{
    AppendMeta, AppendOutcome, Envelope, ExpectedVersion, Hash, RecordedAt, RecordedEvent,
};
pub use error::{AppendError, Error, OpenError, ReplayError, StorageError};
pub use import::ImportError;
pub use index::IndexStats;
pub use log::{MAX_STREAMS_PER_APPEND, RawRecords, Scan, SledEventLog};
pub use mac::{HEAD_MAC_CONTEXT, HeadKey, SignedHead, hex, parse_hash};
pub use tail::SledTail;
pub use verify::VerifyReport;
pub use writer::CommitStats;

/// The event log as the rest of the system sees it.
pub trait EventLog: Send + Sync {
    type Tail: EventTail;

    /// Appends `events` (at least one, all of `stream`) atomically. Returns once
    /// they are durable. A command id seen before appends nothing and returns the
    /// first append's outcome with `deduplicated: true` (matched by command id
    /// alone, before the version check); a stale `expected` version appends
    /// nothing and returns [`AppendError::WrongExpectedVersion`].
    fn append(
        &self,
        stream: StreamId,
        expected: ExpectedVersion,
        events: Vec<Event>,
        meta: AppendMeta,
    ) -> impl Future<Output = Result<AppendOutcome, AppendError>> + Send;

    /// Appends `events` of several streams atomically, with one expected
    /// version per stream (see [`SledEventLog::append_to_streams`]): every
    /// expectation is checked against the same state and one stale one
    /// rejects the whole append; idempotency as for `append`.
    fn append_to_streams(
        &self,
        expected: Vec<(StreamId, ExpectedVersion)>,
        events: Vec<Event>,
        meta: AppendMeta,
    ) -> impl Future<Output = Result<AppendOutcome, AppendError>> + Send;

    /// The events of `stream` from `from_version` (1 = the beginning).
    fn read_stream(
        &self,
        stream: StreamId,
        from_version: u64,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, Error>> + Send;

    /// Up to `limit` events from `from_position` (1 = the beginning).
    fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, Error>> + Send;

    /// Every event from `from_position`, then new ones as they are committed.
    fn tail(&self, from_position: u64) -> Self::Tail;

    /// The last committed position (0 for an empty log).
    fn head(&self) -> u64;

    /// The outcome of an earlier committed append with this command id, if
    /// any, so a retried command can be answered without deciding it again.
    fn command_outcome(&self, command: CommandId) -> Result<Option<AppendOutcome>, Error>;
}

/// A follower of the log; see [`EventLog::tail`].
pub trait EventTail: Send {
    /// The next event, waiting for it if needed; `None` once the log is closed.
    fn next(&mut self) -> impl Future<Output = Option<Result<RecordedEvent, Error>>> + Send;
}

impl EventLog for SledEventLog {
    type Tail = SledTail;

    fn append(
        &self,
        stream: StreamId,
        expected: ExpectedVersion,
        events: Vec<Event>,
        meta: AppendMeta,
    ) -> impl Future<Output = Result<AppendOutcome, AppendError>> + Send {
        SledEventLog::append(self, stream, expected, events, meta)
    }

    fn append_to_streams(
        &self,
        expected: Vec<(StreamId, ExpectedVersion)>,
        events: Vec<Event>,
        meta: AppendMeta,
    ) -> impl Future<Output = Result<AppendOutcome, AppendError>> + Send {
        SledEventLog::append_to_streams(self, expected, events, meta)
    }

    fn read_stream(
        &self,
        stream: StreamId,
        from_version: u64,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, Error>> + Send {
        SledEventLog::read_stream(self, stream, from_version)
    }

    fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, Error>> + Send {
        SledEventLog::read_all(self, from_position, limit)
    }

    fn tail(&self, from_position: u64) -> SledTail {
        SledEventLog::tail(self, from_position)
    }

    fn head(&self) -> u64 {
        SledEventLog::head(self)
    }

    fn command_outcome(&self, command: CommandId) -> Result<Option<AppendOutcome>, Error> {
        SledEventLog::command_outcome(self, command)
    }
}

impl EventTail for SledTail {
    fn next(&mut self) -> impl Future<Output = Option<Result<RecordedEvent, Error>>> + Send {
        SledTail::next(self)
    }
}
