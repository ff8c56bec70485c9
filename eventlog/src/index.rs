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

use backchannel_domain::events::StreamId;
use backchannel_domain::ids::CommandId;

mod load;

pub(crate) use load::{Replay, load, load_releasing};

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

#[cfg(test)]
mod tests;
