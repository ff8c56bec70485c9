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
//! The rest of the system sees the log through one concrete type, [`Log`]
//! (with [`Tail`], opened from a [`StoreSpec`]): an enum over the engines, so
//! another engine (PostgreSQL) is one more variant and its match arms in
//! `engine`, without touching other crates. [`SledEventLog`] stays public for
//! the tests and tools that check sled itself.
//!
//! Layout:
//! - `engine`: [`Log`], [`Tail`], [`StoreSpec`]: the seam every other crate uses.
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
//! - `writer`: the sequencer, syncer and head threads that group-commit
//!   appends, one sled key per chunk of up to 8 KiB of records.
//! - `log`: [`SledEventLog`] and its read paths; `tail`: [`SledTail`], and
//!   the read-ahead both engines' tails keep; `verify`:
//!   [`SledEventLog::verify`].
//! - `chain`: [`ChainCheck`], the invariants checked one record at a time;
//!   [`portable`]: the exported log file (export, reading, checking);
//!   `import`: [`SledEventLog::import`], records written verbatim into a new
//!   store; `snapshot`: [`SledEventLog::open_snapshot`], reading a stopped
//!   server's store through a copy, never writing to it.
//! - `checkpoint`: checkpoint files, a caller's value saved at a position
//!   with the hash of the record there, checksummed and MACed; the log never
//!   reads one itself.
//! - [`crypt`]: a conversation's data key, sealing a value, wrapping keys;
//!   `keystore`: [`KeyStore`], each conversation's wrapped key beside the log,
//!   which seals customer data as it is appended, opens it as it is read and
//!   destroys the key of an erased conversation (SPEC section 12,
//!   `docs/erasure.md`).
//! - `postgres`: [`PgEventLog`], the log on PostgreSQL for several nodes (SPEC
//!   section 11): the same records and chain as sled, its group-commit
//!   `writer`, [`PgTail`], the blocking half of the seam (`seam`) and
//!   [`PgKeyStore`].
//! - `compose`: [`ChainEnd`], the one place an envelope is filled, encoded
//!   and linked into the chain: both engines' writers compose their records
//!   with it, and so do logs built to be imported (`replay-tool`'s recorder).
//!
//! Invariants: positions start at 1 and are gapless in commit order; stream
//! versions start at 1 and are contiguous; record `n` carries the blake3 hash of
//! record `n - 1`'s bytes; nothing is readable before it is durable; an append is
//! all or nothing; the log is never opened shorter or different than the head
//! recorded in `HEAD` (an acknowledged append is always covered by it).

mod chain;
mod checkpoint;
mod chunks;
pub mod codec;
mod compose;
pub mod crypt;
pub use crypt::{DataKey, KeyWrap};
mod engine;
mod envelope;
mod error;
mod head;
mod import;
mod index;
mod keys;
mod keystore;
pub use keystore::{DirKeyStore, KEYS_DIR, KeyState, KeyStore, KeyStoreError};
mod log;
mod mac;
mod postgres;
pub use postgres::{PG_FORMAT, PgEventLog, PgKeyStore, PgOptions, PgTail};
pub mod portable;
mod snapshot;
pub use snapshot::CopyProgress;
mod store;
mod tail;
mod verify;
mod writer;

pub use chain::ChainCheck;
pub use checkpoint::{
    CHECKPOINT_FORMAT, Checkpoint, CheckpointError, ResumePoint, SavedCheckpoint, load_checkpoint,
};
pub use compose::ChainEnd;
pub use engine::{Log, OpenedScan, StoreSpec, Tail};
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
