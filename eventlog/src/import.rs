//! [`SledEventLog::import`]: writing records verbatim into a fresh store.
//!
//! The records keep everything their envelopes say (positions, stream
//! versions, event ids, times, actors, command and correlation ids) and their
//! hash chain; they are checked one by one with [`ChainCheck`] before they are
//! written. Chunks are built as the writer builds them (at most
//! `CHUNK_TARGET_BYTES`, a bigger record alone) and applied in batches; the
//! in-memory indexes are filled as records are accepted, so the returned log is
//! exactly what reopening the store would give. The store's head record
//! (`HEAD`) names the imported head once the records are durable.

use std::path::Path;

use crate::chain::ChainCheck;
use crate::codec;
use crate::error::{Error, OpenError, StorageError};
use crate::index::Indexes;
use crate::keys;
use crate::log::SledEventLog;
use crate::store;
use crate::writer::{CHUNK_TARGET_BYTES, ChainHead};

/// Chunks per sled batch during an import (~512 KiB).
const CHUNKS_PER_BATCH: usize = 64;

/// Why an import wrote nothing (or, for `Storage`, stopped part way).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(
        "the store at {path} already holds {events} events; import only into an empty or new store"
    )]
    NotEmpty {
        path: std::path::PathBuf,
        events: u64,
    },
    /// A record breaks the invariants; its position is in the error. The store
    /// has been emptied again.
    #[error("refusing the import: {0}")]
    Invalid(Error),
    /// The record source failed. The store has been emptied again.
    #[error("reading the records to import failed: {0}")]
    Source(Box<dyn std::error::Error + Send + Sync>),
    #[error("the import failed writing the store: {0}")]
    Storage(#[from] StorageError),
}

impl SledEventLog {
    /// Creates the store at `path` (a missing or empty directory, or a store
    /// holding no events) and writes `records` into it verbatim, checked, in
    /// chunks, then flushes and fsyncs once. Returns the open log.
    ///
    /// On a bad record or a failing source, everything written so far is
    /// removed again (the store is left empty) and the error names the
    /// position. Callers wanting "nothing written at all" check their input
    /// first (the replay tool reads a file twice).
    pub fn import<I, E>(path: impl AsRef<Path>, records: I) -> Result<SledEventLog, ImportError>
    where
        I: IntoIterator<Item = Result<Vec<u8>, E>>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let path = path.as_ref().to_owned();
        let mut opened = store::open(&path)?;
        if opened.recorded.position > 0 {
            // Its head record says events were acknowledged, whatever sled
            // still holds.
            return Err(ImportError::NotEmpty {
                path,
                events: opened.recorded.position,
            });
        }
        if let Some(entry) = opened.db.scan_prefix([keys::CHUNK]).next_back() {
            let (key, chunk) = entry.map_err(StorageError::from)?;
            // The last chunk's last position: its first plus its count.
            let events = codec::decode_chunk(&chunk).map_or_else(
                |_| keys::position_of(&key).unwrap_or(0),
                |records| {
                    let header = records.header();
                    header.first_position + u64::from(header.count) - 1
                },
            );
            return Err(ImportError::NotEmpty { path, events });
        }
        let mut indexes = Indexes::default();
        let mut check = ChainCheck::new();
        let written = write_all(&opened.db, records, &mut check, &mut indexes);
        if let Err(err) = written {
            // Leave an empty store behind, not half a log.
            let cleared = opened
                .db
                .clear()
                .and_then(|()| opened.db.insert(keys::FORMAT_KEY, keys::FORMAT_MAGIC))
                .and_then(|_| opened.db.flush());
            cleared.map_err(StorageError::from)?;
            opened.syncer.sync()?;
            return Err(err);
        }
        opened.db.flush().map_err(StorageError::from)?;
        opened.syncer.sync()?;
        let head = ChainHead {
            position: check.events(),
            hash: check.head_hash(),
        };
        store::settle_head(&path, &mut opened, head)?;
        Ok(SledEventLog::start(path, opened, head, indexes)?)
    }
}

fn write_all<I, E>(
    db: &sled::Db,
    records: I,
    check: &mut ChainCheck,
    indexes: &mut Indexes,
) -> Result<(), ImportError>
where
    I: IntoIterator<Item = Result<Vec<u8>, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut batch = sled::Batch::default();
    let mut in_batch = 0usize;
    let mut chunk: Vec<u8> = Vec::with_capacity(CHUNK_TARGET_BYTES);
    let mut chunk_first = 0u64;
    let flush_chunk = |chunk: &mut Vec<u8>,
                       first: u64,
                       batch: &mut sled::Batch,
                       in_batch: &mut usize|
     -> Result<(), ImportError> {
        if chunk.is_empty() {
            return Ok(());
        }
        batch.insert(&keys::chunk(first)[..], chunk.as_slice());
        chunk.clear();
        *in_batch += 1;
        if *in_batch >= CHUNKS_PER_BATCH {
            db.apply_batch(std::mem::take(batch))
                .map_err(StorageError::from)?;
            *in_batch = 0;
        }
        Ok(())
    };
    for record in records {
        let record = record.map_err(|err| ImportError::Source(Box::new(err)))?;
        let recorded = check.check(&record).map_err(ImportError::Invalid)?;
        let envelope = &recorded.envelope;
        indexes.add_append(envelope.stream, envelope.command_id, envelope.position, 1);
        if !chunk.is_empty() && chunk.len() + 4 + record.len() > CHUNK_TARGET_BYTES {
            flush_chunk(&mut chunk, chunk_first, &mut batch, &mut in_batch)?;
        }
        if chunk.is_empty() {
            codec::begin_chunk(&mut chunk, envelope.position);
            chunk_first = envelope.position;
        }
        codec::push_chunk_raw(&mut chunk, &record).map_err(|source| {
            ImportError::Invalid(Error::Corrupt {
                position: envelope.position,
                source,
            })
        })?;
    }
    flush_chunk(&mut chunk, chunk_first, &mut batch, &mut in_batch)?;
    db.apply_batch(batch).map_err(StorageError::from)?;
    Ok(())
}
