//! The stored record format: the only module that knows bincode.
//!
//! Stored events are forever (SPEC section 6), so this format is versioned and
//! pinned by `fixtures/events/` and `tests/format.rs`. Every stored record starts
//! with a codec version byte ([`CODEC_VERSION`]) so a future format can be
//! introduced by writing a new codec version and migrating by replay; readers
//! dispatch on that byte.
//!
//! # Codec version 1
//!
//! All integers of the envelope are fixed-width big-endian:
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 1 | codec version (`1`) |
//! | 1 | 8 | global position (u64) |
//! | 9 | 1 | stream kind: `0` company, `1` conversation, `2` a company's read audit |
//! | 10 | 16 | stream id (UUID bytes) |
//! | 26 | 8 | stream version (u64) |
//! | 34 | 16 | event id |
//! | 50 | 8 | recorded at: microseconds since the Unix epoch, UTC (i64) |
//! | 58 | 1 | actor kind: `0` staff, `1` customer, `2` system |
//! | 59 | 16 | actor id: staff id, conversation id of the customer, or zeros |
//! | 75 | 16 | command id |
//! | 91 | 16 | correlation id |
//! | 107 | 32 | previous record's hash (blake3; zeros for position 1) |
//! | 139 | 2 | schema version (u16) |
//! | 141 | 1 | length `n` of the event type name |
//! | 142 | n | event type name, UTF-8 (`EventType::name`) |
//! | 142+n | rest | payload |
//!
//! The payload is the event's own struct (e.g. `ConversationOpened`), encoded
//! with serde and bincode 2.0.1 in its `standard()` configuration (little endian,
//! variable-length integers, enums as a varint variant index, strings as a varint
//! length then UTF-8), with a decode limit of [`MAX_RECORD_BYTES`]. That
//! configuration is part of the format: never change it within codec version 1.
//! The payload runs to the end of the record; bytes left over after decoding are
//! an error. A record's hash is blake3 over all of its bytes, `prev_hash`
//! included, which chains every record to all the ones before it.
//!
//! # Chunks (chunk format version 1)
//!
//! Records are stored in chunks: one sled value holds the records of
//! consecutive positions, so a group commit writes one key per chunk rather than
//! one per event. A chunk is
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 1 | chunk format version (`1`) |
//! | 1 | 8 | position of its first record (u64 BE; also its key) |
//! | 9 | 4 | record count `k` ≥ 1 (u32 BE) |
//! | 13 | … | `k` times: record length (u32 BE), then the record |
//!
//! Each record is byte for byte the codec record above; the hash chain covers
//! records, not chunks, so how records are grouped into chunks changes no hash.
//! `fixtures/events/chunk.v1.3records.bin` pins the framing.
//!
//! # Checkpoint payloads
//!
//! A checkpoint (`crate::checkpoint`) stores a read model's state as one serde
//! value in the same bincode configuration as record payloads, without their
//! size limit; the checkpoint file carries the codec version, and its checksum
//! is verified before the payload is decoded.
//!
//! bincode 2.0.1 is unmaintained upstream (RUSTSEC-2025-0141). It is pinned and
//! confined to this module, so replacing it means writing codec version 2 here
//! and nothing else.

mod checkpoint;
mod chunk;
mod payload;

pub use checkpoint::{decode_checkpoint, encode_checkpoint};
pub(crate) use chunk::chunk_record_at;
pub use chunk::{
    CHUNK_FORMAT_VERSION, CHUNK_HEADER_LEN, ChunkHeader, ChunkRecords, begin_chunk, decode_chunk,
    push_chunk_raw, push_chunk_record,
};
pub use payload::{decode_payload, encode_payload};

use backchannel_domain::events::{Event, EventType, StreamId};
use backchannel_domain::ids::{
    CommandId, CompanyId, ConversationId, CorrelationId, EventId, StaffId,
};
use backchannel_domain::model::Actor;
use bincode::config::{Configuration, Limit};

use crate::envelope::{Envelope, Hash, RecordedAt, RecordedEvent};

/// The codec version new records are written with.
pub const CODEC_VERSION: u8 = 1;

/// Largest stored record. Bounds decode allocations and keeps a single record far
/// below sled's blob threshold (a quarter of its 512 KiB segment). A maximal
/// message body (10,000 characters of up to 4 bytes) fits with room to spare.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// The bincode configuration of codec version 1. Part of the stored format.
const PAYLOAD_CONFIG: Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    Limit<MAX_RECORD_BYTES>,
> = bincode::config::standard().with_limit::<MAX_RECORD_BYTES>();

/// The bincode configuration of checkpoint payloads in codec version 1: the
/// payloads' own, without the per-record limit (a checkpoint holds a whole
/// read model; its bytes are checked against their checksum before decoding).
const CHECKPOINT_CONFIG: Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::NoLimit,
> = bincode::config::standard();

const HEADER_LEN: usize = 142;
const STREAM_COMPANY: u8 = 0;
const STREAM_CONVERSATION: u8 = 1;
/// A company's read audit stream (`ContentOpened`); the id is the company's.
const STREAM_READ_AUDIT: u8 = 2;
const ACTOR_STAFF: u8 = 0;
const ACTOR_CUSTOMER: u8 = 1;
const ACTOR_SYSTEM: u8 = 2;

/// Why bytes could not be turned into an event or an event into bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("the record is empty")]
    Empty,
    #[error("unknown codec version {0} (this build reads version {CODEC_VERSION})")]
    UnknownCodecVersion(u8),
    #[error("the record is truncated: {0}")]
    Truncated(&'static str),
    #[error("unknown stream kind {0}")]
    UnknownStreamKind(u8),
    #[error("unknown actor kind {0}")]
    UnknownActorKind(u8),
    #[error("the event type name is not UTF-8")]
    TypeNameNotUtf8,
    #[error("unknown event type {0:?}")]
    UnknownEventType(String),
    #[error("unknown schema version {version} of event type {event_type}")]
    UnknownSchemaVersion {
        event_type: &'static str,
        version: u16,
    },
    #[error("the payload of {event_type} v{version} does not decode: {reason}")]
    BadPayload {
        event_type: &'static str,
        version: u16,
        reason: String,
    },
    #[error("{extra} unexpected bytes after the payload of {event_type} v{version}")]
    TrailingBytes {
        event_type: &'static str,
        version: u16,
        extra: usize,
    },
    #[error("the payload of {event_type} does not encode: {reason}")]
    Encode {
        event_type: &'static str,
        reason: String,
    },
    #[error("the record is {size} bytes, more than the limit of {MAX_RECORD_BYTES}")]
    TooLarge { size: usize },
    #[error("the checkpoint payload does not encode or decode: {0}")]
    Checkpoint(String),
    #[error("unknown chunk format version {0} (this build reads version {CHUNK_FORMAT_VERSION})")]
    UnknownChunkVersion(u8),
    #[error("the chunk framing is broken: {0}")]
    BadChunk(&'static str),
}

/// Appends the stored form of one event to `out` (which is usually empty).
///
/// The envelope's `event_type`, `schema_version` and `codec_version` are ignored:
/// the record always carries the event's own type, its current schema version and
/// [`CODEC_VERSION`], so a record cannot lie about its payload.
pub fn encode_record(
    envelope: &Envelope,
    event: &Event,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let start = out.len();
    let event_type = event.event_type();
    let name = event_type.name().as_bytes();
    let name_len = u8::try_from(name.len()).map_err(|_| CodecError::Encode {
        event_type: event_type.name(),
        reason: "type name longer than 255 bytes".to_owned(),
    })?;
    out.reserve(HEADER_LEN + name.len() + 64);
    out.push(CODEC_VERSION);
    out.extend_from_slice(&envelope.position.to_be_bytes());
    let (kind, id) = stream_parts(&envelope.stream);
    out.push(kind);
    out.extend_from_slice(id);
    out.extend_from_slice(&envelope.stream_version.to_be_bytes());
    out.extend_from_slice(envelope.event_id.as_bytes());
    out.extend_from_slice(&envelope.recorded_at.as_micros().to_be_bytes());
    let (kind, id) = actor_parts(&envelope.actor);
    out.push(kind);
    out.extend_from_slice(&id);
    out.extend_from_slice(envelope.command_id.as_bytes());
    out.extend_from_slice(envelope.correlation_id.as_bytes());
    out.extend_from_slice(&envelope.prev_hash);
    out.extend_from_slice(&event.schema_version().to_be_bytes());
    out.push(name_len);
    out.extend_from_slice(name);
    encode_payload(event, out)?;
    let size = out.len() - start;
    if size > MAX_RECORD_BYTES {
        out.truncate(start);
        return Err(CodecError::TooLarge { size });
    }
    Ok(())
}

/// Decodes one stored record. Its hash is [`record_hash`] of the same bytes,
/// and the next record's `prev_hash`.
pub fn decode_record(bytes: &[u8]) -> Result<RecordedEvent, CodecError> {
    let (envelope, payload) = decode_envelope(bytes)?;
    let event = decode_payload(envelope.event_type, envelope.schema_version, payload)?;
    Ok(RecordedEvent { envelope, event })
}

/// The chain link of a stored record: blake3 over all of its bytes.
pub fn record_hash(bytes: &[u8]) -> Hash {
    *blake3::hash(bytes).as_bytes()
}

/// Decodes a record's envelope only, returning it with the undecoded payload.
pub fn decode_envelope(bytes: &[u8]) -> Result<(Envelope, &[u8]), CodecError> {
    let header = fixed_header(bytes)?;
    let name_len = usize::from(header[141]);
    let name = bytes
        .get(HEADER_LEN..HEADER_LEN + name_len)
        .ok_or(CodecError::Truncated("the event type name is incomplete"))?;
    let name = std::str::from_utf8(name).map_err(|_| CodecError::TypeNameNotUtf8)?;
    let event_type =
        EventType::from_name(name).ok_or_else(|| CodecError::UnknownEventType(name.to_owned()))?;
    let stream = header_stream(header)?;
    let actor_id = array16(header, 59);
    let actor = match header[58] {
        ACTOR_STAFF => Actor::Staff(StaffId::from_bytes(actor_id)),
        ACTOR_CUSTOMER => Actor::Customer(ConversationId::from_bytes(actor_id)),
        ACTOR_SYSTEM => Actor::System,
        other => return Err(CodecError::UnknownActorKind(other)),
    };
    let mut prev_hash = [0u8; 32];
    prev_hash.copy_from_slice(&header[107..139]);
    let envelope = Envelope {
        position: u64::from_be_bytes(array8(header, 1)),
        stream,
        stream_version: u64::from_be_bytes(array8(header, 26)),
        event_id: EventId::from_bytes(array16(header, 34)),
        event_type,
        schema_version: u16::from_be_bytes([header[139], header[140]]),
        codec_version: CODEC_VERSION,
        recorded_at: RecordedAt::from_micros(i64::from_be_bytes(array8(header, 50))),
        actor,
        command_id: CommandId::from_bytes(array16(header, 75)),
        correlation_id: CorrelationId::from_bytes(array16(header, 91)),
        prev_hash,
    };
    Ok((envelope, &bytes[HEADER_LEN + name_len..]))
}

/// The fixed-size header of a record of this codec version.
fn fixed_header(bytes: &[u8]) -> Result<&[u8; HEADER_LEN], CodecError> {
    let version = *bytes.first().ok_or(CodecError::Empty)?;
    if version != CODEC_VERSION {
        return Err(CodecError::UnknownCodecVersion(version));
    }
    bytes
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(CodecError::Truncated("the envelope is incomplete"))
}

/// The stream a header names (kind byte at 9, id at 10).
fn header_stream(header: &[u8; HEADER_LEN]) -> Result<StreamId, CodecError> {
    let stream_id = array16(header, 10);
    match header[9] {
        STREAM_COMPANY => Ok(StreamId::Company(CompanyId::from_bytes(stream_id))),
        STREAM_CONVERSATION => Ok(StreamId::Conversation(ConversationId::from_bytes(
            stream_id,
        ))),
        STREAM_READ_AUDIT => Ok(StreamId::ReadAudit(CompanyId::from_bytes(stream_id))),
        other => Err(CodecError::UnknownStreamKind(other)),
    }
}

fn array8(header: &[u8; HEADER_LEN], at: usize) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(&header[at..at + 8]);
    out
}

fn array16(header: &[u8; HEADER_LEN], at: usize) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(&header[at..at + 16]);
    out
}

/// The kind byte and id bytes of a stream; also used by the sled key layout.
pub(crate) fn stream_parts(stream: &StreamId) -> (u8, &[u8; 16]) {
    match stream {
        StreamId::Company(id) => (STREAM_COMPANY, id.as_bytes()),
        StreamId::Conversation(id) => (STREAM_CONVERSATION, id.as_bytes()),
        StreamId::ReadAudit(id) => (STREAM_READ_AUDIT, id.as_bytes()),
    }
}

fn actor_parts(actor: &Actor) -> (u8, [u8; 16]) {
    match actor {
        Actor::Staff(id) => (ACTOR_STAFF, *id.as_bytes()),
        Actor::Customer(id) => (ACTOR_CUSTOMER, *id.as_bytes()),
        Actor::System => (ACTOR_SYSTEM, [0u8; 16]),
    }
}

/// The envelope fields the in-memory indexes are built from, read at fixed
/// offsets without decoding the type name or payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexFields {
    pub(crate) position: u64,
    pub(crate) stream: StreamId,
    pub(crate) stream_version: u64,
    pub(crate) command_id: CommandId,
}

pub(crate) fn index_fields(bytes: &[u8]) -> Result<IndexFields, CodecError> {
    let header = fixed_header(bytes)?;
    let stream = header_stream(header)?;
    Ok(IndexFields {
        position: u64::from_be_bytes(array8(header, 1)),
        stream,
        stream_version: u64::from_be_bytes(array8(header, 26)),
        command_id: CommandId::from_bytes(array16(header, 75)),
    })
}

#[cfg(test)]
mod tests;
