//! Reading records through chunks (the framing is in [`crate::codec`]).
//!
//! A chunk is found by its first position: the chunk holding position `p` is the
//! last `e` key at or before `keys::chunk(p)`. Inside it, records are skipped by
//! their length prefixes. Every framing problem is an [`Error::Corrupt`] naming
//! the first position it affects, never a panic.

use std::ops::Range;

use sled::IVec;

use crate::codec::{self, ChunkHeader, CodecError};
use crate::error::Error;
use crate::keys;

/// A position inside one stored chunk.
pub(crate) struct ChunkCursor {
    bytes: IVec,
    header: ChunkHeader,
    /// Offset of the next record's length prefix.
    offset: usize,
    /// Index of the next record in the chunk.
    index: u32,
}

impl ChunkCursor {
    /// Opens the chunk stored under `key`, checking its header against the key.
    pub(crate) fn open(key: &[u8], bytes: IVec) -> Result<Self, Error> {
        let key_position = keys::position_of(key).ok_or_else(|| Error::Broken {
            position: 0,
            problem: format!("a malformed chunk key {key:?}"),
        })?;
        let corrupt = |source| Error::Corrupt {
            position: key_position,
            source,
        };
        let header = codec::decode_chunk(&bytes).map_err(corrupt)?.header();
        if header.first_position != key_position {
            return Err(corrupt(CodecError::BadChunk(
                "the chunk's header names another first position than its key",
            )));
        }
        Ok(ChunkCursor {
            bytes,
            header,
            offset: codec::CHUNK_HEADER_LEN,
            index: 0,
        })
    }

    pub(crate) fn header(&self) -> ChunkHeader {
        self.header
    }

    /// The position of the record [`ChunkCursor::next`] returns.
    pub(crate) fn next_position(&self) -> u64 {
        self.header
            .first_position
            .saturating_add(u64::from(self.index))
    }

    /// Whether `position` is this record or one after it in the chunk.
    pub(crate) fn reaches(&self, position: u64) -> bool {
        position >= self.next_position() && position < self.header.end_position()
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The next record's position and where its bytes are, or `None` at the end
    /// of the chunk (after checking nothing follows its last record).
    pub(crate) fn next(&mut self) -> Result<Option<(u64, Range<usize>)>, Error> {
        let position = self.next_position();
        if self.index == self.header.count {
            if self.offset != self.bytes.len() {
                return Err(Error::Corrupt {
                    position: position.saturating_sub(1),
                    source: CodecError::BadChunk("bytes after the chunk's last record"),
                });
            }
            return Ok(None);
        }
        let range = codec::chunk_record_at(&self.bytes, self.offset)
            .map_err(|source| Error::Corrupt { position, source })?;
        self.offset = range.end;
        self.index += 1;
        Ok(Some((position, range)))
    }

    /// Walks to `position` (which [`ChunkCursor::reaches`]) and returns its range.
    pub(crate) fn seek(&mut self, position: u64) -> Result<Range<usize>, Error> {
        loop {
            match self.next()? {
                Some((at, range)) if at == position => return Ok(range),
                Some(_) => {}
                None => return Err(missing(position)),
            }
        }
    }
}

/// The key of the chunk holding `position`, if any chunk starts at or before it.
pub(crate) fn chunk_key_for(db: &sled::Db, position: u64) -> Result<Option<IVec>, Error> {
    let found = db
        .range(keys::chunk(0)..=keys::chunk(position))
        .next_back()
        .transpose()?;
    Ok(found.map(|(key, _)| key))
}

/// Opens the chunk holding `position`, positioned at it.
pub(crate) fn open_at(db: &sled::Db, position: u64) -> Result<(ChunkCursor, Range<usize>), Error> {
    let found = db
        .range(keys::chunk(0)..=keys::chunk(position))
        .next_back()
        .transpose()?;
    let Some((key, value)) = found else {
        return Err(missing(position));
    };
    let mut cursor = ChunkCursor::open(&key, value)?;
    if !cursor.reaches(position) {
        return Err(missing(position));
    }
    let range = cursor.seek(position)?;
    Ok((cursor, range))
}

/// Stored records (undecoded) from one position to another, in order, checking
/// that positions are gapless. Stops after the first framing error.
pub(crate) struct Records {
    iter: sled::Iter,
    current: Option<ChunkCursor>,
    expected: u64,
    to: u64,
}

impl Records {
    pub(crate) fn new(db: &sled::Db, from: u64, to: u64) -> Self {
        // Start at the chunk holding `from`; on error start at `from` itself and
        // let the iteration report what is wrong.
        let start = match chunk_key_for(db, from) {
            Ok(Some(key)) => keys::position_of(&key).unwrap_or(from),
            _ => from,
        };
        Records {
            iter: db.range(keys::chunk(start)..=keys::chunk(to.max(start))),
            current: None,
            expected: from,
            to,
        }
    }

    fn stop(&mut self) {
        self.expected = self.to.saturating_add(1);
        self.current = None;
    }

    /// Hands the next record's position and bytes to `f`.
    pub(crate) fn next_with<T>(
        &mut self,
        f: impl FnOnce(u64, &[u8]) -> T,
    ) -> Option<Result<T, Error>> {
        loop {
            if self.expected > self.to {
                return None;
            }
            if let Some(cursor) = &mut self.current {
                match cursor.next() {
                    Ok(Some((position, _))) if position < self.expected => continue,
                    Ok(Some((position, range))) => {
                        self.expected = position + 1;
                        return Some(Ok(f(position, &cursor.bytes()[range])));
                    }
                    Ok(None) => self.current = None,
                    Err(err) => {
                        self.stop();
                        return Some(Err(err));
                    }
                }
            }
            let position = self.expected;
            let cursor = match self.iter.next() {
                None => Err(missing(position)),
                Some(Err(err)) => Err(err.into()),
                Some(Ok((key, value))) => ChunkCursor::open(&key, value),
            };
            match cursor {
                Ok(cursor) if cursor.header().first_position > position => {
                    self.stop();
                    return Some(Err(missing(position)));
                }
                Ok(cursor) => self.current = Some(cursor),
                Err(err) => {
                    self.stop();
                    return Some(Err(err));
                }
            }
        }
    }
}

pub(crate) fn missing(position: u64) -> Error {
    Error::Broken {
        position,
        problem: "the record is missing (a gap in the log)".to_owned(),
    }
}
