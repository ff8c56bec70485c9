//! The in-memory indexes, rebuilt on open.
//!
//! sled holds only chunks of records; everything else the log needs to answer
//! quickly is derived from the records' envelopes and kept in memory:
//!
//! - the **stream index**: stream → the positions of its events, in stream
//!   version order (version `v` is at `positions[v - 1]`), which gives
//!   `read_stream` and the stream heads optimistic concurrency checks against;
//! - the **command index**: command id → the first position of the append it
//!   made, for idempotency. A retry's outcome (last position, stream version) is
//!   recomputed from the stored records, which carry the command id.
//!
//! Only the sequencer thread changes them (under the write lock, after its batch
//! is applied); readers take the read lock briefly and never look past the
//! committed head. On open, [`load`] scans every chunk and decodes each record's
//! envelope fields (not the payload): the cost of opening is linear in the log's
//! length (see BENCHMARKS.md). Persisting a snapshot of the indexes at close and
//! replaying only the records after it is the obvious next step.

use std::collections::HashMap;
use std::path::Path;

use backchannel_domain::events::StreamId;
use backchannel_domain::ids::CommandId;

use crate::chunks::ChunkCursor;
use crate::codec;
use crate::envelope::Hash;
use crate::envelope::RecordedEvent;
use crate::error::{Error, OpenError, ReplayError};
use crate::keys;
use crate::writer::ChainHead;

#[derive(Default)]
pub(crate) struct Indexes {
    streams: HashMap<StreamId, Vec<u64>>,
    commands: HashMap<CommandId, u64>,
}

/// How big the in-memory indexes are (see [`crate::SledEventLog::index_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexStats {
    pub streams: usize,
    pub commands: usize,
    /// Positions held by the stream index (every applied event once).
    pub positions: u64,
    /// An estimate of the heap the indexes use: table slots and vectors at their
    /// capacity, not counting the allocator's own overhead.
    pub approx_bytes: usize,
}

impl Indexes {
    /// The stream's applied version (0: no events).
    pub(crate) fn stream_version(&self, stream: &StreamId) -> u64 {
        self.streams
            .get(stream)
            .map_or(0, |positions| positions.len() as u64)
    }

    /// The positions of `stream` from `from_version` up to `head`.
    pub(crate) fn stream_positions(
        &self,
        stream: &StreamId,
        from_version: u64,
        head: u64,
    ) -> Vec<u64> {
        let Some(positions) = self.streams.get(stream) else {
            return Vec::new();
        };
        let from = usize::try_from(from_version.max(1) - 1).unwrap_or(usize::MAX);
        positions
            .get(from..)
            .unwrap_or_default()
            .iter()
            .copied()
            .take_while(|&p| p <= head)
            .collect()
    }

    /// The position of `stream`'s event at `version`, if applied.
    pub(crate) fn position_of(&self, stream: &StreamId, version: u64) -> Option<u64> {
        let index = usize::try_from(version.checked_sub(1)?).ok()?;
        self.streams.get(stream)?.get(index).copied()
    }

    /// How many of `stream`'s events are at or before `head`.
    pub(crate) fn version_at(&self, stream: &StreamId, head: u64) -> u64 {
        self.streams.get(stream).map_or(0, |positions| {
            positions.partition_point(|&p| p <= head) as u64
        })
    }

    pub(crate) fn streams_at(&self, head: u64) -> usize {
        self.streams
            .values()
            .filter(|positions| positions.first().is_some_and(|&p| p <= head))
            .count()
    }

    /// The first position of the append made by `command`.
    pub(crate) fn command(&self, command: &CommandId) -> Option<u64> {
        self.commands.get(command).copied()
    }

    /// Records an applied append of `count` events from `first_position`.
    pub(crate) fn add_append(
        &mut self,
        stream: StreamId,
        command: CommandId,
        first_position: u64,
        count: u64,
    ) {
        self.streams
            .entry(stream)
            .or_default()
            .extend(first_position..first_position + count);
        self.commands.entry(command).or_insert(first_position);
    }

    pub(crate) fn stats(&self) -> IndexStats {
        use std::mem::size_of;
        // hashbrown: one control byte per slot, slots = capacity / 7 * 8.
        let table = |capacity: usize, entry: usize| capacity / 7 * 8 * (entry + 1);
        let mut positions = 0u64;
        let mut vectors = 0usize;
        for list in self.streams.values() {
            positions += list.len() as u64;
            vectors += list.capacity() * size_of::<u64>();
        }
        IndexStats {
            streams: self.streams.len(),
            commands: self.commands.len(),
            positions,
            approx_bytes: table(self.streams.capacity(), size_of::<(StreamId, Vec<u64>)>())
                + vectors
                + table(self.commands.capacity(), size_of::<(CommandId, u64)>()),
        }
    }
}

/// What opening a store finds: where the log ends and its indexes.
pub(crate) struct Loaded {
    pub(crate) head: ChainHead,
    pub(crate) indexes: Indexes,
}

/// What [`load`] hands every record from a position on, fully decoded (see
/// [`crate::SledEventLog::open_replaying`]).
pub(crate) struct Replay<'a> {
    pub(crate) from: u64,
    pub(crate) visit: &'a mut dyn FnMut(RecordedEvent) -> Result<(), ReplayError>,
}

/// Scans every chunk, checking the framing and that positions and stream
/// versions are contiguous, and builds the indexes from the envelopes; with a
/// [`Replay`], also decodes each record from its position on and hands it over,
/// in the same pass.
pub(crate) fn load(
    path: &Path,
    db: &sled::Db,
    mut replay: Option<Replay<'_>>,
) -> Result<Loaded, OpenError> {
    let corrupt = |err: Error| OpenError::Corrupt {
        path: path.to_owned(),
        reason: err.to_string(),
    };
    let broken = |position, problem: String| corrupt(Error::Broken { position, problem });
    let mut indexes = Indexes::default();
    let mut expected = 1u64;
    let mut last_command: Option<CommandId> = None;
    let mut last_hash: Hash = [0; 32];
    let mut chunks = db.scan_prefix([keys::CHUNK]).peekable();
    while let Some(entry) = chunks.next() {
        let (key, value) = entry.map_err(|err| OpenError::Storage {
            path: path.to_owned(),
            source: err.into(),
        })?;
        let mut cursor = ChunkCursor::open(&key, value).map_err(corrupt)?;
        if cursor.header().first_position != expected {
            return Err(broken(
                expected,
                format!(
                    "the next chunk starts at position {}",
                    cursor.header().first_position
                ),
            ));
        }
        let is_last = chunks.peek().is_none();
        while let Some((position, range)) = cursor.next().map_err(corrupt)? {
            let record = &cursor.bytes()[range];
            let fields = codec::index_fields(record)
                .map_err(|source| corrupt(Error::Corrupt { position, source }))?;
            if fields.position != position {
                return Err(broken(
                    position,
                    format!("the record says it is at position {}", fields.position),
                ));
            }
            let positions = indexes.streams.entry(fields.stream).or_default();
            if fields.stream_version != positions.len() as u64 + 1 {
                return Err(broken(
                    position,
                    format!(
                        "{:?} jumps from version {} to {}",
                        fields.stream,
                        positions.len(),
                        fields.stream_version
                    ),
                ));
            }
            positions.push(position);
            if last_command != Some(fields.command_id) {
                indexes
                    .commands
                    .entry(fields.command_id)
                    .or_insert(position);
                last_command = Some(fields.command_id);
            }
            if let Some(replay) = replay.as_mut().filter(|r| position >= r.from) {
                let recorded = crate::log::decode_at(position, record).map_err(corrupt)?;
                (replay.visit)(recorded).map_err(|source| OpenError::Replay {
                    path: path.to_owned(),
                    position,
                    source,
                })?;
            }
            if is_last && position + 1 == cursor.header().end_position() {
                last_hash = codec::record_hash(record);
            }
            expected = position + 1;
        }
    }
    Ok(Loaded {
        head: ChainHead {
            position: expected - 1,
            hash: last_hash,
        },
        indexes,
    })
}
