//! The opening pass: scanning every chunk to rebuild the indexes (and to
//! hand a replay its events), in slices that let sled's cache be released.

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

use super::{CommandIndex, Indexes};

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

pub(super) fn load_in_slices(
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
