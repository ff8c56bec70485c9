//! The seam: [`Log`], [`Tail`] and [`StoreSpec`], the engine-neutral event log
//! every crate outside `eventlog` uses.
//!
//! [`Log`] is one concrete, cheaply cloned type over a private `Engine` enum
//! (sled, PostgreSQL); another engine is one more variant and one more arm in
//! each `match` of this module and its submodules (`spec`, `open`, `tail`),
//! and of `Scan`/`RawRecords` (`log/read.rs`).
//! Enum dispatch, not a trait: no boxing, no generic parameter spreading
//! through the desk, the projections and the replay tool, and an append
//! awaits exactly what the engine's append awaits.
//!
//! Which methods are async follows what a network engine needs: appends,
//! reads and command lookups are async; [`Log::head`] is the last committed
//! position this process knows (a watch value, never a query). The bulk reads
//! (`scan`, `raw_records`, `raw_record`, `verify`, `export`) and the openings
//! are blocking: callers run them on a blocking thread, and a network engine
//! pages them (`position > x ORDER BY position LIMIT n`) from there.

use std::fmt;
use std::path::Path;

use backchannel_domain::events::{Event, StreamId};
use backchannel_domain::ids::CommandId;
use backchannel_domain::values::Content;
use serde::Serialize;

use crate::checkpoint::{CheckpointError, ResumePoint, SavedCheckpoint};
use crate::envelope::{AppendMeta, AppendOutcome, ExpectedVersion, Hash, RecordedEvent};
use crate::error::{AppendError, Error, StorageError};
use crate::index::IndexStats;
use crate::keystore::KeyStore;
use crate::log::{RawRecords, Scan, SledEventLog};
use crate::mac::{HeadKey, SignedHead};
use crate::portable::{FileSummary, PortableError};
use crate::postgres::PgEventLog;
use crate::verify::VerifyReport;
use crate::writer::CommitStats;

mod open;
mod scan;
mod spec;
mod tail;

pub use scan::OpenedScan;
use scan::open_recorded;
pub use spec::StoreSpec;
pub use tail::Tail;
use tail::TailEngine;

/// The event log, whatever engine holds it. Cheap to clone; every clone
/// shares one writer.
#[derive(Clone)]
pub struct Log {
    engine: Engine,
    /// The key store beside the log (SPEC section 12): appends seal customer
    /// data under it, reads open it. Without one, appends of customer data in
    /// plain text fail and reads leave it sealed.
    keys: Option<KeyStore>,
}

#[derive(Clone)]
enum Engine {
    Sled(SledEventLog),
    Postgres(PgEventLog),
}

impl From<PgEventLog> for Log {
    fn from(log: PgEventLog) -> Self {
        Log {
            engine: Engine::Postgres(log),
            keys: None,
        }
    }
}

impl From<SledEventLog> for Log {
    fn from(log: SledEventLog) -> Self {
        Log {
            engine: Engine::Sled(log),
            keys: None,
        }
    }
}

impl fmt::Debug for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.engine {
            Engine::Sled(log) => write!(f, "Log(sled {})", log.path().display()),
            Engine::Postgres(log) => write!(f, "Log({})", log.target()),
        }
    }
}

impl Log {
    /// This log with `keys` as its key store: appends seal customer data
    /// under it (making each conversation's key durable before the first
    /// event that needs it) and destroy the key of an erased conversation
    /// before its `ConversationErased` is stored; reads open the data.
    pub fn with_keys(mut self, keys: KeyStore) -> Log {
        self.keys = Some(keys);
        self
    }

    /// This log with its own key store (beside it, on its engine) under
    /// `wrap`, keys read as they are first needed. Blocking. A server opens
    /// its log this way after its catch-up, which applies sealed values
    /// unopened (the read models keep them sealed and the api opens them
    /// when asked), so a start reads no key it does not need.
    pub fn with_key_wrap(
        self,
        wrap: &crate::crypt::KeyWrap,
    ) -> Result<Log, crate::error::OpenError> {
        let failed = |path: std::path::PathBuf| {
            move |err: crate::keystore::KeyStoreError| crate::error::OpenError::Storage {
                path,
                source: StorageError::new(err),
            }
        };
        let keys = match &self.engine {
            Engine::Sled(log) => crate::keystore::DirKeyStore::open(log.path(), wrap.clone())
                .map(KeyStore::from)
                .map_err(failed(log.path().to_owned()))?,
            Engine::Postgres(log) => {
                let path = std::path::PathBuf::from(log.target());
                let opened = log
                    .block(async { log.key_store(wrap.clone()).await.map(KeyStore::from) })
                    .map_err(|e| crate::error::OpenError::Storage {
                        path: path.clone(),
                        source: StorageError::new(e),
                    })?;
                opened.map_err(failed(path))?
            }
        };
        Ok(self.with_keys(keys))
    }

    /// The key store this log seals and opens with, if it has one.
    pub fn keys(&self) -> Option<&KeyStore> {
        self.keys.as_ref()
    }

    /// The sled engine underneath, for sled-only tools and tests.
    pub fn as_sled(&self) -> Option<&SledEventLog> {
        match &self.engine {
            Engine::Sled(log) => Some(log),
            Engine::Postgres(_) => None,
        }
    }

    /// The PostgreSQL engine underneath, for engine-specific tools and tests.
    pub fn as_postgres(&self) -> Option<&PgEventLog> {
        match &self.engine {
            Engine::Postgres(log) => Some(log),
            Engine::Sled(_) => None,
        }
    }

    /// Appends `events` (at least one, all of `stream`) atomically and
    /// durably. A command id seen before appends nothing and returns the first
    /// append's outcome with `deduplicated: true`; a stale `expected` version
    /// appends nothing ([`AppendError::WrongExpectedVersion`]).
    pub async fn append(
        &self,
        stream: StreamId,
        expected: ExpectedVersion,
        events: Vec<Event>,
        meta: AppendMeta,
    ) -> Result<AppendOutcome, AppendError> {
        let mut events = events;
        self.seal(&mut events).await?;
        match &self.engine {
            Engine::Sled(log) => log.append(stream, expected, events, meta).await,
            Engine::Postgres(log) => log.append(stream, expected, events, meta).await,
        }
    }

    /// Appends events of several streams atomically, one expected version per
    /// stream (see [`SledEventLog::append_to_streams`] for the rules).
    pub async fn append_to_streams(
        &self,
        expected: Vec<(StreamId, ExpectedVersion)>,
        events: Vec<Event>,
        meta: AppendMeta,
    ) -> Result<AppendOutcome, AppendError> {
        let mut events = events;
        self.seal(&mut events).await?;
        match &self.engine {
            Engine::Sled(log) => log.append_to_streams(expected, events, meta).await,
            Engine::Postgres(log) => log.append_to_streams(expected, events, meta).await,
        }
    }

    /// The events of `stream` from `from_version` (1 = the beginning) up to
    /// the committed head.
    pub async fn read_stream(
        &self,
        stream: StreamId,
        from_version: u64,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let events = match &self.engine {
            Engine::Sled(log) => log.read_stream(stream, from_version).await,
            Engine::Postgres(log) => log.read_stream(stream, from_version).await,
        }?;
        self.open_all(events).await
    }

    /// Up to `limit` events from `from_position` (1 = the beginning), never
    /// past the committed head.
    pub async fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let events = match &self.engine {
            Engine::Sled(log) => log.read_all(from_position, limit).await,
            Engine::Postgres(log) => log.read_all(from_position, limit).await,
        }?;
        self.open_all(events).await
    }

    /// Seals what `events` hold in plain text, and destroys the keys of the
    /// conversations they erase, before they are stored.
    async fn seal(&self, events: &mut [Event]) -> Result<(), AppendError> {
        let needs_keys = events.iter().any(|event| match event {
            Event::ConversationOpened(e) => matches!(e.customer, Content::Plain(_)),
            Event::MessagePosted(e) => matches!(e.body, Content::Plain(_)),
            Event::PrivateMessagePosted(e) => matches!(e.body, Content::Plain(_)),
            Event::ConversationErased(_) => true,
            _ => false,
        });
        if !needs_keys {
            return Ok(());
        }
        let Some(keys) = &self.keys else {
            return Err(AppendError::NoKeyStore);
        };
        keys.seal(events)
            .await
            .map_err(|err| AppendError::Keys(StorageError::new(err)))
    }

    async fn open_all(&self, mut events: Vec<RecordedEvent>) -> Result<Vec<RecordedEvent>, Error> {
        if let Some(keys) = &self.keys {
            for recorded in &mut events {
                open_recorded(keys, recorded).await?;
            }
        }
        Ok(events)
    }

    /// Every event from `from_position`, then each new one as it is committed,
    /// without gaps or duplicates.
    pub fn tail(&self, from_position: u64) -> Tail {
        let engine = match &self.engine {
            Engine::Sled(log) => TailEngine::Sled(log.tail(from_position)),
            Engine::Postgres(log) => TailEngine::Postgres(log.tail(from_position)),
        };
        Tail {
            engine,
            keys: self.keys.clone(),
        }
    }

    /// The last committed position this process knows (0 for an empty log).
    pub fn head(&self) -> u64 {
        match &self.engine {
            Engine::Sled(log) => log.head(),
            Engine::Postgres(log) => log.head(),
        }
    }

    /// The outcome of an earlier committed append with this command id, if
    /// any (`deduplicated: true`).
    pub async fn command_outcome(
        &self,
        command: CommandId,
    ) -> Result<Option<AppendOutcome>, Error> {
        match &self.engine {
            Engine::Sled(log) => log.command_outcome(command),
            Engine::Postgres(log) => log.command_outcome(command).await,
        }
    }

    /// The positions of `stream`'s events, oldest first, up to `up_to` (never
    /// past the committed head), from the engine's in-memory stream index.
    pub fn stream_positions(&self, stream: &StreamId, up_to: u64) -> Vec<u64> {
        match &self.engine {
            Engine::Sled(log) => log.stream_positions(stream, up_to),
            Engine::Postgres(log) => log.stream_positions(stream, up_to),
        }
    }

    /// The committed chain head: the last position and the hash of its record
    /// (zeros for an empty log). Blocking.
    pub fn chain_head(&self) -> Result<(u64, Hash), Error> {
        let head = self.head();
        Ok((head, self.record_hash(head)?))
    }

    /// The hash of the committed record at `position` (zeros at 0). Blocking.
    pub fn record_hash(&self, position: u64) -> Result<Hash, Error> {
        match position {
            0 => Ok([0; 32]),
            _ => Ok(crate::codec::record_hash(&self.raw_record(position)?)),
        }
    }

    /// The stored bytes of the committed record at `position`. Blocking.
    pub fn raw_record(&self, position: u64) -> Result<Vec<u8>, Error> {
        match &self.engine {
            Engine::Sled(log) => log.raw_record(position),
            Engine::Postgres(log) => log.raw_record(position),
        }
    }

    /// The stored records from `from` to `to` (both included, clipped to the
    /// committed head), undecoded, in position order: what exports copy.
    /// A blocking iterator.
    pub fn raw_records(&self, from: u64, to: u64) -> RawRecords {
        match &self.engine {
            Engine::Sled(log) => log.raw_records(from, to),
            Engine::Postgres(log) => RawRecords::postgres(log.clone(), from, to),
        }
    }

    /// Every event from `from_position` up to the head as of this call,
    /// decoded lazily. A blocking iterator.
    pub fn scan(&self, from_position: u64) -> OpenedScan {
        let scan = match &self.engine {
            Engine::Sled(log) => log.scan(from_position),
            Engine::Postgres(log) => Scan::postgres(log.clone(), from_position),
        };
        OpenedScan {
            scan,
            keys: self.keys.clone(),
        }
    }

    /// Re-reads the whole log and checks every invariant (see
    /// [`SledEventLog::verify`]); `checked` is called with each position
    /// once its record passed. Blocking.
    pub fn verify_with_progress(
        &self,
        checked: &mut dyn FnMut(u64),
    ) -> Result<VerifyReport, Error> {
        match &self.engine {
            Engine::Sled(log) => log.verify_with_progress(checked),
            Engine::Postgres(log) => log.verify_blocking(checked),
        }
    }

    /// [`Log::verify_with_progress`] without progress.
    pub fn verify(&self) -> Result<VerifyReport, Error> {
        self.verify_with_progress(&mut |_| {})
    }

    /// Writes every committed event to `out` as a portable file (see
    /// [`crate::portable`]). Blocking.
    pub fn export<W: std::io::Write>(
        &self,
        out: W,
        progress: impl FnMut(u64),
    ) -> Result<FileSummary, PortableError> {
        match &self.engine {
            Engine::Sled(log) => log.export(out, progress),
            Engine::Postgres(log) => {
                let mut progress = progress;
                log.block(log.export(out))
                    .map_err(PortableError::from)
                    .and_then(|summary| {
                        let summary = summary?;
                        progress(summary.events);
                        Ok(summary)
                    })
            }
        }
    }

    /// Gives the log the key its exports and checkpoints authenticate the head
    /// with (once; a second key is returned).
    pub fn set_head_key(&self, key: HeadKey) -> Result<(), HeadKey> {
        match &self.engine {
            Engine::Sled(log) => log.set_head_key(key),
            Engine::Postgres(log) => log.shared.head_key.set(key),
        }
    }

    pub fn head_key(&self) -> Option<&HeadKey> {
        match &self.engine {
            Engine::Sled(log) => log.head_key(),
            Engine::Postgres(log) => log.shared.head_key.get(),
        }
    }

    /// The head at `position` (committed) with its MAC under `key`. Blocking.
    pub fn signed_head_at(&self, key: &HeadKey, position: u64) -> Result<SignedHead, Error> {
        let hash = self.record_hash(position)?;
        Ok(SignedHead {
            position,
            hash,
            mac: key.mac(position, &hash),
        })
    }

    /// Saves `value`, a read model's state after applying this log up to
    /// `position`, as the checkpoint `name` in the directory `dir` (created if
    /// missing), naming the position and the hash of its record, with the
    /// log's head key's MAC. Blocking.
    pub fn save_checkpoint<T: Serialize>(
        &self,
        dir: &Path,
        name: &str,
        kind: &str,
        position: u64,
        value: &T,
    ) -> Result<SavedCheckpoint, CheckpointError> {
        let hash = self
            .record_hash(position)
            .and_then(|hash| match position {
                0 => Err(crate::chunks::missing(0)),
                _ => Ok(hash),
            })
            .map_err(|source| CheckpointError::Position { position, source })?;
        let after = ResumePoint { position, hash };
        crate::checkpoint::save_in(dir, name, kind, after, value, self.head_key())
    }

    /// How the writer grouped appends and synced since open.
    pub fn commit_stats(&self) -> CommitStats {
        match &self.engine {
            Engine::Sled(log) => log.commit_stats(),
            Engine::Postgres(log) => log.commit_stats(),
        }
    }

    /// The size of the in-memory indexes.
    pub fn index_stats(&self) -> IndexStats {
        match &self.engine {
            Engine::Sled(log) => log.index_stats(),
            Engine::Postgres(log) => log.index_stats(),
        }
    }

    /// Stops the writer after every append queued before this call is
    /// durable; later appends fail with [`AppendError::Closed`]. Blocking.
    pub fn close(self) -> Result<(), Error> {
        match self.engine {
            Engine::Sled(log) => log.close(),
            Engine::Postgres(log) => log.close_blocking(),
        }
    }
}
