//! Chunks (chunk format version 1): the framing that stores the records of
//! consecutive positions under one key, and reading records back out of it.

use backchannel_domain::events::Event;

use super::{CodecError, encode_record};
use crate::envelope::Envelope;

/// The chunk format version new chunks are written with.
pub const CHUNK_FORMAT_VERSION: u8 = 1;
/// Chunk header: format version (1), first position (8), record count (4).
pub const CHUNK_HEADER_LEN: usize = 13;
/// Each record in a chunk is preceded by its length (u32 BE).
const RECORD_PREFIX_LEN: usize = 4;

/// What a chunk's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader {
    /// The position of the chunk's first record.
    pub first_position: u64,
    /// How many records the chunk holds (at least one in a stored chunk).
    pub count: u32,
}

impl ChunkHeader {
    /// The position after the chunk's last record.
    pub fn end_position(&self) -> u64 {
        self.first_position.saturating_add(u64::from(self.count))
    }
}

/// Starts a chunk in `out` (which should be empty): its header, with no records yet.
pub fn begin_chunk(out: &mut Vec<u8>, first_position: u64) {
    out.push(CHUNK_FORMAT_VERSION);
    out.extend_from_slice(&first_position.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
}

/// Encodes one record (see [`encode_record`]) at the end of the chunk in `out`,
/// length-prefixed, and counts it in the chunk's header. Returns where the
/// record's own bytes are in `out` (for its hash). On error `out` is unchanged.
pub fn push_chunk_record(
    out: &mut Vec<u8>,
    envelope: &Envelope,
    event: &Event,
) -> Result<std::ops::Range<usize>, CodecError> {
    let start = out.len();
    out.extend_from_slice(&[0; RECORD_PREFIX_LEN]);
    if let Err(err) = encode_record(envelope, event, out) {
        out.truncate(start);
        return Err(err);
    }
    finish_push(out, start)
}

/// Appends already encoded record bytes to the chunk in `out`.
pub fn push_chunk_raw(out: &mut Vec<u8>, record: &[u8]) -> Result<(), CodecError> {
    let start = out.len();
    out.extend_from_slice(&[0; RECORD_PREFIX_LEN]);
    out.extend_from_slice(record);
    finish_push(out, start).map(|_| ())
}

fn finish_push(out: &mut Vec<u8>, start: usize) -> Result<std::ops::Range<usize>, CodecError> {
    let record = start + RECORD_PREFIX_LEN..out.len();
    let fail = |out: &mut Vec<u8>, reason| {
        out.truncate(start);
        Err(CodecError::BadChunk(reason))
    };
    let Ok(len) = u32::try_from(record.len()) else {
        return fail(out, "a record longer than 4 GiB");
    };
    let Some(count) = out
        .get(9..CHUNK_HEADER_LEN)
        .and_then(|c| c.try_into().ok())
        .map(u32::from_be_bytes)
    else {
        return fail(out, "no chunk header to append to");
    };
    let Some(count) = count.checked_add(1) else {
        return fail(out, "too many records");
    };
    out[start..start + RECORD_PREFIX_LEN].copy_from_slice(&len.to_be_bytes());
    out[9..CHUNK_HEADER_LEN].copy_from_slice(&count.to_be_bytes());
    Ok(record)
}

/// Reads a chunk's header. Its records follow through [`ChunkRecords`].
pub fn decode_chunk(bytes: &[u8]) -> Result<ChunkRecords<'_>, CodecError> {
    let version = *bytes
        .first()
        .ok_or(CodecError::BadChunk("the chunk is empty"))?;
    if version != CHUNK_FORMAT_VERSION {
        return Err(CodecError::UnknownChunkVersion(version));
    }
    let header = bytes
        .get(1..CHUNK_HEADER_LEN)
        .ok_or(CodecError::BadChunk("the chunk header is incomplete"))?;
    let mut position = [0u8; 8];
    position.copy_from_slice(&header[..8]);
    let mut count = [0u8; 4];
    count.copy_from_slice(&header[8..12]);
    let header = ChunkHeader {
        first_position: u64::from_be_bytes(position),
        count: u32::from_be_bytes(count),
    };
    if header.count == 0 {
        return Err(CodecError::BadChunk("the chunk holds no records"));
    }
    Ok(ChunkRecords {
        header,
        rest: &bytes[CHUNK_HEADER_LEN..],
        read: 0,
        failed: false,
    })
}

/// The records of one chunk, in position order, as stored bytes (each one a
/// record for [`decode_record`](super::decode_record)). Skipping a record costs only its length
/// prefix. A framing problem (a length past the end, a record count that does
/// not match, bytes after the last record) is one [`CodecError::BadChunk`] item,
/// after which the iterator ends.
#[derive(Debug, Clone)]
pub struct ChunkRecords<'a> {
    header: ChunkHeader,
    rest: &'a [u8],
    read: u32,
    failed: bool,
}

impl<'a> ChunkRecords<'a> {
    pub fn header(&self) -> ChunkHeader {
        self.header
    }

    fn fail(&mut self, reason: &'static str) -> Option<Result<&'a [u8], CodecError>> {
        self.failed = true;
        Some(Err(CodecError::BadChunk(reason)))
    }
}

impl<'a> Iterator for ChunkRecords<'a> {
    type Item = Result<&'a [u8], CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.read == self.header.count {
            if !self.rest.is_empty() {
                return self.fail("bytes after the chunk's last record");
            }
            return None;
        }
        let Some((prefix, rest)) = self.rest.split_first_chunk::<RECORD_PREFIX_LEN>() else {
            return self.fail("fewer records than the chunk header counts");
        };
        let len = usize::try_from(u32::from_be_bytes(*prefix)).unwrap_or(usize::MAX);
        if len > rest.len() {
            return self.fail("a record runs past the end of the chunk");
        }
        let (record, rest) = rest.split_at(len);
        self.rest = rest;
        self.read += 1;
        Some(Ok(record))
    }
}

/// Where the record whose length prefix is at `offset` in a chunk lies.
pub(crate) fn chunk_record_at(
    bytes: &[u8],
    offset: usize,
) -> Result<std::ops::Range<usize>, CodecError> {
    let prefix = bytes
        .get(offset..)
        .and_then(|rest| rest.first_chunk::<RECORD_PREFIX_LEN>())
        .ok_or(CodecError::BadChunk(
            "fewer records than the chunk header counts",
        ))?;
    let len = usize::try_from(u32::from_be_bytes(*prefix)).unwrap_or(usize::MAX);
    let start = offset + RECORD_PREFIX_LEN;
    let end = start
        .checked_add(len)
        .filter(|&end| end <= bytes.len())
        .ok_or(CodecError::BadChunk(
            "a record runs past the end of the chunk",
        ))?;
    Ok(start..end)
}
