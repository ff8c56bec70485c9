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
//!   recomputed from the stored records, which carry the command id. Kept as a
//!   sorted vector plus recent commands ([`CommandIndex`]).
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
    commands: CommandIndex,
}

/// Command id → the first position of the append it made.
///
/// A million commands in a hash map take ~52 MB (2^21 slots of 25 bytes, as
/// the table doubles past seven eighths full). Here most of them sit in a
/// vector sorted by id, 24 bytes each with no slack, searched by bisection;
/// the commands appended since the last merge sit in a small hash map, merged
/// into the vector in one linear pass once they number an eighth of it (at 1M
/// commands, a copy of ~27 MB every 125,000 appends, on the writer thread).
#[derive(Default)]
pub(crate) struct CommandIndex {
    sorted: Vec<(CommandId, u64)>,
    recent: HashMap<CommandId, u64>,
}

/// The fewest recent commands worth a merge.
const MIN_MERGE: usize = 4096;

impl CommandIndex {
    /// Builds the index from (command, position) pairs in any order; for a
    /// command given more than once, the smallest position is kept.
    fn from_pairs(mut pairs: Vec<(CommandId, u64)>) -> Self {
        pairs.sort_unstable();
        pairs.dedup_by_key(|(command, _)| *command);
        pairs.shrink_to_fit();
        CommandIndex {
            sorted: pairs,
            recent: HashMap::new(),
        }
    }

    fn get(&self, command: &CommandId) -> Option<u64> {
        if let Some(&position) = self.recent.get(command) {
            return Some(position);
        }
        self.sorted
            .binary_search_by(|(c, _)| c.cmp(command))
            .ok()
            .map(|i| self.sorted[i].1)
    }

    /// Records `command`'s first position; a command already known keeps its own.
    fn insert(&mut self, command: CommandId, position: u64) {
        if self.get(&command).is_some() {
            return;
        }
        self.recent.insert(command, position);
        if self.recent.len() >= MIN_MERGE.max(self.sorted.len() / 8) {
            self.merge();
        }
    }

    fn merge(&mut self) {
        let mut recent: Vec<(CommandId, u64)> = self.recent.drain().collect();
        recent.sort_unstable();
        let old = std::mem::take(&mut self.sorted);
        let mut merged = Vec::with_capacity(old.len() + recent.len());
        let mut old = old.into_iter().peekable();
        let mut recent = recent.into_iter().peekable();
        loop {
            let next = match (old.peek(), recent.peek()) {
                (Some(a), Some(b)) if a.0 <= b.0 => old.next(),
                (Some(_), Some(_)) => recent.next(),
                (Some(_), None) => old.next(),
                (None, _) => recent.next(),
            };
            match next {
                Some(pair) => merged.push(pair),
                None => break,
            }
        }
        self.sorted = merged;
    }

    fn len(&self) -> usize {
        self.sorted.len() + self.recent.len()
    }
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
        self.commands.get(command)
    }

    /// Records `count` applied events of `stream` at consecutive positions
    /// from `first_position` (its next versions).
    pub(crate) fn add_run(&mut self, stream: StreamId, first_position: u64, count: u64) {
        self.streams
            .entry(stream)
            .or_default()
            .extend(first_position..first_position + count);
    }

    /// Records the first position of an applied append by `command`.
    pub(crate) fn add_command(&mut self, command: CommandId, first_position: u64) {
        self.commands.insert(command, first_position);
    }

    /// Records an applied append of `count` events of one stream from
    /// `first_position`.
    pub(crate) fn add_append(
        &mut self,
        stream: StreamId,
        command: CommandId,
        first_position: u64,
        count: u64,
    ) {
        self.add_run(stream, first_position, count);
        self.add_command(command, first_position);
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
                + self.commands.sorted.capacity() * size_of::<(CommandId, u64)>()
                + table(
                    self.commands.recent.capacity(),
                    size_of::<(CommandId, u64)>(),
                ),
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
    /// The hash the record at `from - 1` must have (a checkpoint's): the open
    /// fails with [`OpenError::DoesNotContinue`] before visiting anything
    /// unless the log holds that very record.
    pub(crate) after: Option<Hash>,
    pub(crate) visit: &'a mut dyn FnMut(RecordedEvent) -> Result<(), ReplayError>,
}

/// Scans every chunk, checking the framing and that positions and stream
/// versions are contiguous, and builds the indexes from the envelopes; with a
/// [`Replay`], also decodes each record from its position on and hands it over,
/// in the same pass.
///
/// `recorded` is the committed head the store's `HEAD` names: a log that ends
/// before it, or whose record there hashes otherwise, is refused with
/// [`OpenError::HeadMismatch`] (before a replay's checkpoint is looked at:
/// the log itself is what is wrong).
pub(crate) fn load(
    path: &Path,
    db: &sled::Db,
    recorded: ChainHead,
    mut replay: Option<Replay<'_>>,
) -> Result<Loaded, OpenError> {
    let corrupt = |err: Error| OpenError::Corrupt {
        path: path.to_owned(),
        reason: err.to_string(),
    };
    let broken = |position, problem: String| corrupt(Error::Broken { position, problem });
    let mut streams: HashMap<StreamId, Vec<u64>> = HashMap::new();
    let mut commands: Vec<(CommandId, u64)> = Vec::new();
    let mut expected = 1u64;
    let mut last_command: Option<CommandId> = None;
    let mut last_hash: Hash = [0; 32];
    let mut hash_at_recorded: Option<Hash> = None;
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
            let positions = streams.entry(fields.stream).or_default();
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
                commands.push((fields.command_id, position));
                last_command = Some(fields.command_id);
            }
            if let Some(replay) = replay.as_ref().filter(|r| position + 1 == r.from)
                && let Some(after) = replay.after
                && codec::record_hash(record) != after
            {
                return Err(OpenError::DoesNotContinue {
                    path: path.to_owned(),
                    position,
                });
            }
            if let Some(replay) = replay.as_mut().filter(|r| position >= r.from) {
                let recorded = crate::log::decode_at(position, record).map_err(corrupt)?;
                (replay.visit)(recorded).map_err(|source| OpenError::Replay {
                    path: path.to_owned(),
                    position,
                    source,
                })?;
            }
            if position == recorded.position {
                hash_at_recorded = Some(codec::record_hash(record));
            }
            if is_last && position + 1 == cursor.header().end_position() {
                last_hash = codec::record_hash(record);
            }
            expected = position + 1;
        }
    }
    let log_end = expected - 1;
    if log_end < recorded.position {
        return Err(OpenError::HeadMismatch {
            path: path.to_owned(),
            head: recorded.position,
            log_end,
            problem: "the log ends before the committed head".to_owned(),
        });
    }
    if recorded.position > 0 && hash_at_recorded != Some(recorded.hash) {
        return Err(OpenError::HeadMismatch {
            path: path.to_owned(),
            head: recorded.position,
            log_end,
            problem: format!(
                "the record at position {} does not carry the committed head's hash {}",
                recorded.position,
                crate::mac::hex(&recorded.hash)
            ),
        });
    }
    if let Some(replay) = &replay
        && replay.after.is_some()
        && expected < replay.from
    {
        // The log ends before the record the replay was to resume after:
        // the checkpoint says the log had been acknowledged that far.
        return Err(OpenError::CheckpointAhead {
            path: path.to_owned(),
            checkpoint: replay.from - 1,
            log_end,
        });
    }
    // Vectors grown by doubling hold up to twice what they need; most streams
    // (conversations) are short, and stay so.
    for positions in streams.values_mut() {
        positions.shrink_to_fit();
    }
    Ok(Loaded {
        head: ChainHead {
            position: log_end,
            hash: last_hash,
        },
        indexes: Indexes {
            streams,
            commands: CommandIndex::from_pairs(commands),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Across several merges, every command is found at its first position,
    /// a repeated command keeps the position it had, and unknown ones are not
    /// found.
    #[test]
    fn the_command_index_finds_every_command_across_merges() {
        let commands: Vec<CommandId> = (0..3 * MIN_MERGE + 17).map(|_| CommandId::new()).collect();
        let mut index = CommandIndex::from_pairs(
            commands[..100]
                .iter()
                .enumerate()
                .flat_map(|(i, &c)| [(c, i as u64 + 1), (c, i as u64 + 1000)])
                .collect(),
        );
        assert_eq!(index.len(), 100);
        for (i, &command) in commands.iter().enumerate().skip(100) {
            index.insert(command, i as u64 + 1);
            // A retry of an earlier command changes nothing.
            index.insert(commands[i / 2], 999_999);
        }
        assert!(
            index.sorted.len() > 3 * MIN_MERGE / 2,
            "merged at least once"
        );
        assert_eq!(index.len(), commands.len());
        for (i, command) in commands.iter().enumerate() {
            assert_eq!(index.get(command), Some(i as u64 + 1), "command {i}");
        }
        assert!(index.sorted.is_sorted());
        assert_eq!(index.get(&CommandId::new()), None);
    }
}
