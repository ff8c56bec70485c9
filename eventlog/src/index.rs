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
use crate::store::OpenedStore;
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

/// How many bytes of chunks one slice of [`load_releasing`] reads before
/// sled is reopened: what sled caches during the opening pass stays about
/// this big, and the allocator reuses it for the next slice instead of
/// holding a copy of the whole log (see [`load_releasing`]).
const SLICE_BYTES: usize = 16 * 1024 * 1024;

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
    let mut pass = Pass::default();
    pass.scan(path, db, recorded, replay.as_mut(), usize::MAX)?;
    pass.finish(path, recorded, replay.as_ref())
}

/// [`load`] in slices of [`SLICE_BYTES`], closing and reopening sled after
/// each (`store::reopen`, our lock held throughout, nothing written): sled
/// 0.34 keeps every page a bulk scan reads resident whatever its cache
/// capacity (spacejam/sled#1410), ~240 bytes per event, and an allocator
/// returns freed memory to the system only lazily, so one pass over the
/// whole log left a copy of it resident after the open (BENCHMARKS.md,
/// server section). Slice by slice, the next slice's pages reuse the memory
/// the last one freed. Returns the store reopened after the last slice.
pub(crate) fn load_releasing(
    path: &Path,
    opened: OpenedStore,
    replay: Option<Replay<'_>>,
) -> Result<(Loaded, OpenedStore), OpenError> {
    load_in_slices(path, opened, replay, SLICE_BYTES)
}

fn load_in_slices(
    path: &Path,
    mut opened: OpenedStore,
    mut replay: Option<Replay<'_>>,
    slice_bytes: usize,
) -> Result<(Loaded, OpenedStore), OpenError> {
    let recorded = opened.recorded;
    let mut pass = Pass::default();
    loop {
        let more = pass.scan(path, &opened.db, recorded, replay.as_mut(), slice_bytes)?;
        opened = crate::store::reopen(path, opened)?;
        if !more {
            break;
        }
    }
    let loaded = pass.finish(path, recorded, replay.as_ref())?;
    Ok((loaded, opened))
}

/// The opening pass's state between slices.
#[derive(Default)]
struct Pass {
    streams: HashMap<StreamId, Vec<u64>>,
    commands: Vec<(CommandId, u64)>,
    /// The next position (0 before the first chunk: 1 is expected then).
    next: u64,
    /// The key of the last chunk read: the next slice starts after it.
    last_key: Option<Vec<u8>>,
    last_command: Option<CommandId>,
    last_hash: Hash,
    hash_at_recorded: Option<Hash>,
}

impl Pass {
    /// Reads whole chunks after the last one read until `budget` bytes of
    /// chunks are read or the log ends; returns whether chunks may follow.
    fn scan(
        &mut self,
        path: &Path,
        db: &sled::Db,
        recorded: ChainHead,
        mut replay: Option<&mut Replay<'_>>,
        budget: usize,
    ) -> Result<bool, OpenError> {
        use std::ops::Bound;
        let corrupt = |err: Error| OpenError::Corrupt {
            path: path.to_owned(),
            reason: err.to_string(),
        };
        let broken = |position, problem: String| corrupt(Error::Broken { position, problem });
        let mut expected = self.next.max(1);
        let from = match self.last_key.take() {
            Some(key) => Bound::Excluded(key),
            None => Bound::Included(vec![keys::CHUNK]),
        };
        let mut chunks = db
            .range::<Vec<u8>, _>((from, Bound::Excluded(vec![keys::CHUNK + 1])))
            .peekable();
        let mut read = 0usize;
        while let Some(entry) = chunks.next() {
            let (key, value) = entry.map_err(|err| OpenError::Storage {
                path: path.to_owned(),
                source: err.into(),
            })?;
            read = read.saturating_add(value.len());
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
            let stop = read >= budget;
            // The last chunk of the log, or of this slice (whose last record
            // is then hashed in case it is the log's last).
            let is_last = stop || chunks.peek().is_none();
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
                let positions = self.streams.entry(fields.stream).or_default();
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
                if self.last_command != Some(fields.command_id) {
                    self.commands.push((fields.command_id, position));
                    self.last_command = Some(fields.command_id);
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
                    self.hash_at_recorded = Some(codec::record_hash(record));
                }
                if is_last && position + 1 == cursor.header().end_position() {
                    self.last_hash = codec::record_hash(record);
                }
                expected = position + 1;
            }
            self.next = expected;
            if stop {
                self.last_key = Some(key.to_vec());
                return Ok(true);
            }
        }
        self.next = expected;
        Ok(false)
    }

    /// Checks the log against the recorded head (and a replay's checkpoint)
    /// once every chunk is read, and hands over the indexes.
    fn finish(
        self,
        path: &Path,
        recorded: ChainHead,
        replay: Option<&Replay<'_>>,
    ) -> Result<Loaded, OpenError> {
        let Pass {
            mut streams,
            commands,
            next,
            last_hash,
            hash_at_recorded,
            ..
        } = self;
        let expected = next.max(1);
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
        if let Some(replay) = replay
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use backchannel_domain::values::Content;

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

    /// The opening pass in slices (sled reopened after every chunk here)
    /// finds the same head and indexes as one pass, and visits every event
    /// once, in order.
    #[test]
    fn a_pass_in_slices_equals_one_pass() {
        use crate::envelope::{AppendMeta, ExpectedVersion};
        use backchannel_domain::events::{Event, MessageAuthor, MessagePosted};
        use backchannel_domain::ids::{ConversationId, CorrelationId, MessageId};
        use backchannel_domain::model::Actor;
        use backchannel_domain::values::MessageBody;

        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let conversations: Vec<ConversationId> = (0..3).map(|_| ConversationId::new()).collect();
        let log = crate::SledEventLog::open(dir.path()).unwrap();
        // One append (so at least one chunk) per round and conversation,
        // of one or three events.
        for round in 0..6u64 {
            for &conversation in &conversations {
                let events = (0..1 + 2 * (round % 2))
                    .map(|k| {
                        Event::MessagePosted(MessagePosted {
                            conversation,
                            message: MessageId::new(),
                            author: MessageAuthor::Customer,
                            body: Content::Legacy(
                                MessageBody::parse(&format!("message {round}.{k}")).unwrap(),
                            ),
                        })
                    })
                    .collect();
                let meta = AppendMeta {
                    command_id: CommandId::new(),
                    correlation_id: CorrelationId::new(),
                    actor: Actor::System,
                };
                runtime
                    .block_on(log.append(
                        StreamId::Conversation(conversation),
                        ExpectedVersion::Any,
                        events,
                        meta,
                    ))
                    .unwrap();
            }
        }
        let head = log.head();
        log.close().unwrap();

        let opened = crate::store::open(dir.path()).unwrap();
        let whole = load(dir.path(), &opened.db, opened.recorded, None).unwrap();
        let mut visited = Vec::new();
        let mut visit = |recorded: RecordedEvent| {
            visited.push(recorded.envelope.position);
            Ok::<(), ReplayError>(())
        };
        let replay = Replay {
            from: 1,
            after: None,
            visit: &mut visit,
        };
        let (sliced, opened) = load_in_slices(dir.path(), opened, Some(replay), 1).unwrap();
        drop(opened);

        assert_eq!(sliced.head.position, head);
        assert_eq!(sliced.head.position, whole.head.position);
        assert_eq!(sliced.head.hash, whole.head.hash);
        assert_eq!(visited, (1..=head).collect::<Vec<_>>());
        assert_eq!(sliced.indexes.stats(), whole.indexes.stats());
        assert_eq!(sliced.indexes.streams, whole.indexes.streams);
        assert_eq!(
            sliced.indexes.commands.sorted,
            whole.indexes.commands.sorted
        );
    }
}
