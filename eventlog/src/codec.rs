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

use backchannel_domain::events::{
    ConversationOpened, Event, EventType, MessagePosted, PrivateMessagePosted, StreamId,
};
use backchannel_domain::ids::{
    CommandId, CompanyId, ConversationId, CorrelationId, EventId, StaffId,
};
use backchannel_domain::model::Actor;
use backchannel_domain::values::{Content, SealedValue};
use bincode::config::{Configuration, Limit};
use serde::Serialize;
use serde::de::DeserializeOwned;

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
    let version = *bytes.first().ok_or(CodecError::Empty)?;
    if version != CODEC_VERSION {
        return Err(CodecError::UnknownCodecVersion(version));
    }
    let header: &[u8; HEADER_LEN] = bytes
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(CodecError::Truncated("the envelope is incomplete"))?;
    let name_len = usize::from(header[141]);
    let name = bytes
        .get(HEADER_LEN..HEADER_LEN + name_len)
        .ok_or(CodecError::Truncated("the event type name is incomplete"))?;
    let name = std::str::from_utf8(name).map_err(|_| CodecError::TypeNameNotUtf8)?;
    let event_type =
        EventType::from_name(name).ok_or_else(|| CodecError::UnknownEventType(name.to_owned()))?;
    let stream_id = array16(header, 10);
    let stream = match header[9] {
        STREAM_COMPANY => StreamId::Company(CompanyId::from_bytes(stream_id)),
        STREAM_CONVERSATION => StreamId::Conversation(ConversationId::from_bytes(stream_id)),
        STREAM_READ_AUDIT => StreamId::ReadAudit(CompanyId::from_bytes(stream_id)),
        other => return Err(CodecError::UnknownStreamKind(other)),
    };
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
        codec_version: version,
        recorded_at: RecordedAt::from_micros(i64::from_be_bytes(array8(header, 50))),
        actor,
        command_id: CommandId::from_bytes(array16(header, 75)),
        correlation_id: CorrelationId::from_bytes(array16(header, 91)),
        prev_hash,
    };
    Ok((envelope, &bytes[HEADER_LEN + name_len..]))
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

/// Appends the payload of `event` (its inner struct, bincode) to `out`.
pub fn encode_payload(event: &Event, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let event_type = event.event_type();
    match event {
        Event::CompanyCreated(e) => encode_struct(event_type, e, out),
        Event::PrivacySettingsChanged(e) => encode_struct(event_type, e, out),
        Event::StaffAdded(e) => encode_struct(event_type, e, out),
        Event::StaffRoleChanged(e) => encode_struct(event_type, e, out),
        Event::PermissionGranted(e) => encode_struct(event_type, e, out),
        Event::PermissionRevoked(e) => encode_struct(event_type, e, out),
        Event::StaffDeactivated(e) => encode_struct(event_type, e, out),
        Event::GroupCreated(e) => encode_struct(event_type, e, out),
        Event::GroupRenamed(e) => encode_struct(event_type, e, out),
        Event::GroupRoutingChanged(e) => encode_struct(event_type, e, out),
        Event::GroupMemberAdded(e)
        | Event::GroupMemberRemoved(e)
        | Event::GroupSupervisorAdded(e)
        | Event::GroupSupervisorRemoved(e) => encode_struct(event_type, e, out),
        Event::ConversationOpened(e) => match &e.customer {
            Content::Legacy(customer) => encode_struct(
                event_type,
                &v1::ConversationOpened {
                    company: e.company,
                    conversation: e.conversation,
                    group: e.group,
                    channel: e.channel,
                    customer: customer.clone(),
                    private: e.private,
                },
                out,
            ),
            customer => encode_struct(
                event_type,
                &v2::ConversationOpened {
                    company: e.company,
                    conversation: e.conversation,
                    group: e.group,
                    channel: e.channel,
                    customer: sealed_bytes(event_type, customer)?,
                    private: e.private,
                },
                out,
            ),
        },
        Event::ConversationAssigned(e) => encode_struct(event_type, e, out),
        Event::StaffInvitedToRoom(e) => encode_struct(event_type, e, out),
        Event::ConversationPrivacyChanged(e) => encode_struct(event_type, e, out),
        Event::MessagePosted(e) => match &e.body {
            Content::Legacy(body) => encode_struct(
                event_type,
                &v1::MessagePosted {
                    conversation: e.conversation,
                    message: e.message,
                    author: e.author,
                    body: body.clone(),
                },
                out,
            ),
            body => encode_struct(
                event_type,
                &v2::MessagePosted {
                    conversation: e.conversation,
                    message: e.message,
                    author: e.author,
                    body: sealed_bytes(event_type, body)?,
                },
                out,
            ),
        },
        Event::PrivateMessagePosted(e) => match &e.body {
            Content::Legacy(body) => encode_struct(
                event_type,
                &v1::PrivateMessagePosted {
                    conversation: e.conversation,
                    message: e.message,
                    author: e.author,
                    body: body.clone(),
                },
                out,
            ),
            body => encode_struct(
                event_type,
                &v2::PrivateMessagePosted {
                    conversation: e.conversation,
                    message: e.message,
                    author: e.author,
                    body: sealed_bytes(event_type, body)?,
                },
                out,
            ),
        },
        Event::ConversationClosed(e) => encode_struct(event_type, e, out),
        Event::ConversationReopened(e) => encode_struct(event_type, e, out),
        Event::NotificationsMarkedRead(e) => encode_struct(event_type, e, out),
        Event::RoundRobinTurnTaken(e) => encode_struct(event_type, e, out),
        Event::WidgetOriginsChanged(e) => encode_struct(event_type, e, out),
        Event::ContentOpened(e) => encode_struct(event_type, e, out),
        Event::ConversationErased(e) => encode_struct(event_type, e, out),
    }
}

/// The stored bytes of a sealed value. Plaintext never reaches the log: the
/// log seals [`Content::Plain`] before it encodes (`crate::keystore`), and
/// erased content is never written.
fn sealed_bytes<'a, T>(
    event_type: EventType,
    content: &'a Content<T>,
) -> Result<&'a [u8], CodecError> {
    match content {
        Content::Sealed(sealed) => Ok(sealed.as_bytes()),
        Content::Plain(_) => Err(CodecError::Encode {
            event_type: event_type.name(),
            reason: "customer data must be sealed before it is stored".to_owned(),
        }),
        Content::Erased | Content::Legacy(_) => Err(CodecError::Encode {
            event_type: event_type.name(),
            reason: "erased content cannot be stored".to_owned(),
        }),
    }
}

/// The payloads of schema version 1 whose customer data was in clear (the
/// plaintext era): decoded into [`Content::Legacy`], and written only to
/// re-encode such events exactly.
mod v1 {
    use backchannel_domain::events::MessageAuthor;
    use backchannel_domain::ids::{CompanyId, ConversationId, GroupId, MessageId, StaffId};
    use backchannel_domain::model::Channel;
    use backchannel_domain::values::{MessageBody, Name};
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    pub(super) struct ConversationOpened {
        pub company: CompanyId,
        pub conversation: ConversationId,
        pub group: GroupId,
        pub channel: Channel,
        pub customer: Name,
        pub private: bool,
    }

    #[derive(Serialize, Deserialize)]
    pub(super) struct MessagePosted {
        pub conversation: ConversationId,
        pub message: MessageId,
        pub author: MessageAuthor,
        pub body: MessageBody,
    }

    #[derive(Serialize, Deserialize)]
    pub(super) struct PrivateMessagePosted {
        pub conversation: ConversationId,
        pub message: MessageId,
        pub author: StaffId,
        pub body: MessageBody,
    }
}

/// Schema version 2: the same fields, the customer data sealed
/// (`crate::crypt`'s format, as opaque bytes).
mod v2 {
    use backchannel_domain::events::MessageAuthor;
    use backchannel_domain::ids::{CompanyId, ConversationId, GroupId, MessageId, StaffId};
    use backchannel_domain::model::Channel;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    pub(super) struct ConversationOpened<B> {
        pub company: CompanyId,
        pub conversation: ConversationId,
        pub group: GroupId,
        pub channel: Channel,
        pub customer: B,
        pub private: bool,
    }

    #[derive(Serialize, Deserialize)]
    pub(super) struct MessagePosted<B> {
        pub conversation: ConversationId,
        pub message: MessageId,
        pub author: MessageAuthor,
        pub body: B,
    }

    #[derive(Serialize, Deserialize)]
    pub(super) struct PrivateMessagePosted<B> {
        pub conversation: ConversationId,
        pub message: MessageId,
        pub author: StaffId,
        pub body: B,
    }
}

fn encode_struct<T: Serialize>(
    event_type: EventType,
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    bincode::serde::encode_into_std_write(value, out, PAYLOAD_CONFIG)
        .map(|_| ())
        .map_err(|err| CodecError::Encode {
            event_type: event_type.name(),
            reason: err.to_string(),
        })
}

/// Writes `value` as a checkpoint payload (codec version 1).
pub fn encode_checkpoint<T: Serialize>(
    value: &T,
    out: &mut impl std::io::Write,
) -> Result<(), CodecError> {
    bincode::serde::encode_into_std_write(value, out, CHECKPOINT_CONFIG)
        .map(|_| ())
        .map_err(|err| CodecError::Checkpoint(err.to_string()))
}

/// Reads a checkpoint payload written by [`encode_checkpoint`]. Only for bytes
/// whose checksum has been verified: without a limit, a damaged length could
/// ask for any allocation.
pub fn decode_checkpoint<T: DeserializeOwned>(
    input: &mut impl std::io::Read,
) -> Result<T, CodecError> {
    bincode::serde::decode_from_std_read(input, CHECKPOINT_CONFIG)
        .map_err(|err| CodecError::Checkpoint(err.to_string()))
}

/// Decodes a payload written for `(event_type, schema_version)`.
///
/// Every schema version ever written must keep an arm here, decoding into the
/// struct of that version (and upgrading it if the domain has moved on).
pub fn decode_payload(
    event_type: EventType,
    schema_version: u16,
    bytes: &[u8],
) -> Result<Event, CodecError> {
    use EventType as T;
    let v = schema_version;
    match (event_type, v) {
        (T::CompanyCreated, 1) => decode_struct(event_type, v, bytes).map(Event::CompanyCreated),
        (T::PrivacySettingsChanged, 1) => {
            decode_struct(event_type, v, bytes).map(Event::PrivacySettingsChanged)
        }
        (T::StaffAdded, 1) => decode_struct(event_type, v, bytes).map(Event::StaffAdded),
        (T::StaffRoleChanged, 1) => {
            decode_struct(event_type, v, bytes).map(Event::StaffRoleChanged)
        }
        (T::PermissionGranted, 1) => {
            decode_struct(event_type, v, bytes).map(Event::PermissionGranted)
        }
        (T::PermissionRevoked, 1) => {
            decode_struct(event_type, v, bytes).map(Event::PermissionRevoked)
        }
        (T::StaffDeactivated, 1) => {
            decode_struct(event_type, v, bytes).map(Event::StaffDeactivated)
        }
        (T::GroupCreated, 1) => decode_struct(event_type, v, bytes).map(Event::GroupCreated),
        (T::GroupRenamed, 1) => decode_struct(event_type, v, bytes).map(Event::GroupRenamed),
        (T::GroupRoutingChanged, 1) => {
            decode_struct(event_type, v, bytes).map(Event::GroupRoutingChanged)
        }
        (T::GroupMemberAdded, 1) => {
            decode_struct(event_type, v, bytes).map(Event::GroupMemberAdded)
        }
        (T::GroupMemberRemoved, 1) => {
            decode_struct(event_type, v, bytes).map(Event::GroupMemberRemoved)
        }
        (T::GroupSupervisorAdded, 1) => {
            decode_struct(event_type, v, bytes).map(Event::GroupSupervisorAdded)
        }
        (T::GroupSupervisorRemoved, 1) => {
            decode_struct(event_type, v, bytes).map(Event::GroupSupervisorRemoved)
        }
        (T::ConversationOpened, 1) => {
            decode_struct(event_type, v, bytes).map(|e: v1::ConversationOpened| {
                Event::ConversationOpened(ConversationOpened {
                    company: e.company,
                    conversation: e.conversation,
                    group: e.group,
                    channel: e.channel,
                    customer: Content::Legacy(e.customer),
                    private: e.private,
                })
            })
        }
        (T::ConversationOpened, 2) => {
            decode_struct(event_type, v, bytes).map(|e: v2::ConversationOpened<Vec<u8>>| {
                Event::ConversationOpened(ConversationOpened {
                    company: e.company,
                    conversation: e.conversation,
                    group: e.group,
                    channel: e.channel,
                    customer: Content::Sealed(SealedValue::new(e.customer)),
                    private: e.private,
                })
            })
        }
        (T::ConversationAssigned, 1) => {
            decode_struct(event_type, v, bytes).map(Event::ConversationAssigned)
        }
        (T::StaffInvitedToRoom, 1) => {
            decode_struct(event_type, v, bytes).map(Event::StaffInvitedToRoom)
        }
        (T::ConversationPrivacyChanged, 1) => {
            decode_struct(event_type, v, bytes).map(Event::ConversationPrivacyChanged)
        }
        (T::MessagePosted, 1) => decode_struct(event_type, v, bytes).map(|e: v1::MessagePosted| {
            Event::MessagePosted(MessagePosted {
                conversation: e.conversation,
                message: e.message,
                author: e.author,
                body: Content::Legacy(e.body),
            })
        }),
        (T::MessagePosted, 2) => {
            decode_struct(event_type, v, bytes).map(|e: v2::MessagePosted<Vec<u8>>| {
                Event::MessagePosted(MessagePosted {
                    conversation: e.conversation,
                    message: e.message,
                    author: e.author,
                    body: Content::Sealed(SealedValue::new(e.body)),
                })
            })
        }
        (T::PrivateMessagePosted, 1) => {
            decode_struct(event_type, v, bytes).map(|e: v1::PrivateMessagePosted| {
                Event::PrivateMessagePosted(PrivateMessagePosted {
                    conversation: e.conversation,
                    message: e.message,
                    author: e.author,
                    body: Content::Legacy(e.body),
                })
            })
        }
        (T::PrivateMessagePosted, 2) => {
            decode_struct(event_type, v, bytes).map(|e: v2::PrivateMessagePosted<Vec<u8>>| {
                Event::PrivateMessagePosted(PrivateMessagePosted {
                    conversation: e.conversation,
                    message: e.message,
                    author: e.author,
                    body: Content::Sealed(SealedValue::new(e.body)),
                })
            })
        }
        (T::ConversationClosed, 1) => {
            decode_struct(event_type, v, bytes).map(Event::ConversationClosed)
        }
        (T::ConversationReopened, 1) => {
            decode_struct(event_type, v, bytes).map(Event::ConversationReopened)
        }
        (T::NotificationsMarkedRead, 1) => {
            decode_struct(event_type, v, bytes).map(Event::NotificationsMarkedRead)
        }
        (T::RoundRobinTurnTaken, 1) => {
            decode_struct(event_type, v, bytes).map(Event::RoundRobinTurnTaken)
        }
        (T::WidgetOriginsChanged, 1) => {
            decode_struct(event_type, v, bytes).map(Event::WidgetOriginsChanged)
        }
        (T::ContentOpened, 1) => decode_struct(event_type, v, bytes).map(Event::ContentOpened),
        (T::ConversationErased, 1) => {
            decode_struct(event_type, v, bytes).map(Event::ConversationErased)
        }
        (event_type, version) => Err(CodecError::UnknownSchemaVersion {
            event_type: event_type.name(),
            version,
        }),
    }
}

fn decode_struct<T: DeserializeOwned>(
    event_type: EventType,
    version: u16,
    bytes: &[u8],
) -> Result<T, CodecError> {
    let (value, read) =
        bincode::serde::decode_from_slice::<T, _>(bytes, PAYLOAD_CONFIG).map_err(|err| {
            CodecError::BadPayload {
                event_type: event_type.name(),
                version,
                reason: err.to_string(),
            }
        })?;
    if read != bytes.len() {
        return Err(CodecError::TrailingBytes {
            event_type: event_type.name(),
            version,
            extra: bytes.len() - read,
        });
    }
    Ok(value)
}

// ---------------------------------------------------------------------------
// Chunks

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
/// record for [`decode_record`]). Skipping a record costs only its length
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
    let version = *bytes.first().ok_or(CodecError::Empty)?;
    if version != CODEC_VERSION {
        return Err(CodecError::UnknownCodecVersion(version));
    }
    let header: &[u8; HEADER_LEN] = bytes
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(CodecError::Truncated("the envelope is incomplete"))?;
    let stream_id = array16(header, 10);
    let stream = match header[9] {
        STREAM_COMPANY => StreamId::Company(CompanyId::from_bytes(stream_id)),
        STREAM_CONVERSATION => StreamId::Conversation(ConversationId::from_bytes(stream_id)),
        STREAM_READ_AUDIT => StreamId::ReadAudit(CompanyId::from_bytes(stream_id)),
        other => return Err(CodecError::UnknownStreamKind(other)),
    };
    Ok(IndexFields {
        position: u64::from_be_bytes(array8(header, 1)),
        stream,
        stream_version: u64::from_be_bytes(array8(header, 26)),
        command_id: CommandId::from_bytes(array16(header, 75)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use backchannel_domain::samples::one_of_each;

    fn envelope_for(event: &Event, position: u64) -> Envelope {
        Envelope {
            position,
            stream: event.stream(),
            stream_version: position,
            event_id: EventId::from_bytes([7; 16]),
            event_type: event.event_type(),
            schema_version: event.schema_version(),
            codec_version: CODEC_VERSION,
            recorded_at: RecordedAt::from_micros(-5),
            actor: Actor::Customer(ConversationId::from_bytes([3; 16])),
            command_id: CommandId::from_bytes([1; 16]),
            correlation_id: CorrelationId::from_bytes([2; 16]),
            prev_hash: [9; 32],
        }
    }

    fn encoded(event: &Event) -> Vec<u8> {
        let mut out = Vec::new();
        encode_record(&envelope_for(event, 42), event, &mut out).unwrap();
        out
    }

    #[test]
    fn every_sample_round_trips() {
        for event in one_of_each() {
            let bytes = encoded(&event);
            let decoded = decode_record(&bytes).unwrap();
            assert_eq!(decoded.event, event);
            assert_eq!(decoded.envelope, envelope_for(&event, 42));
        }
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        for event in one_of_each() {
            let bytes = encoded(&event);
            for len in 0..bytes.len() {
                assert!(decode_record(&bytes[..len]).is_err(), "{len} bytes decoded");
            }
        }
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let event = &one_of_each()[0];
        let mut bytes = encoded(event);
        bytes.push(0);
        assert!(matches!(
            decode_record(&bytes),
            Err(CodecError::TrailingBytes { extra: 1, .. })
        ));
    }

    #[test]
    fn unknown_codec_version_type_and_schema_are_named() {
        let event = &one_of_each()[0];
        let mut bytes = encoded(event);
        bytes[0] = 9;
        assert_eq!(
            decode_record(&bytes),
            Err(CodecError::UnknownCodecVersion(9))
        );

        let mut bytes = encoded(event);
        bytes[140] = 7;
        assert_eq!(
            decode_record(&bytes),
            Err(CodecError::UnknownSchemaVersion {
                event_type: "CompanyCreated",
                version: 7
            })
        );

        let mut bytes = encoded(event);
        bytes[142] = b'X';
        assert!(matches!(
            decode_record(&bytes),
            Err(CodecError::UnknownEventType(name)) if name == "XompanyCreated"
        ));
    }

    #[test]
    fn garbage_never_panics() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let template = encoded(&one_of_each()[18]);
        for _ in 0..20_000 {
            let mut bytes = template.clone();
            let flips = rng.random_range(1..8);
            for _ in 0..flips {
                let at = rng.random_range(0..bytes.len());
                bytes[at] = rng.random();
            }
            let _ = decode_record(&bytes);
            let len = rng.random_range(0..300);
            let noise: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let _ = decode_record(&noise);
        }
    }

    #[test]
    fn a_huge_length_prefix_is_refused_without_allocating_it() {
        // A MessagePosted payload whose body length claims far more than the limit.
        let mut payload = vec![0u8; 16 + 16];
        payload.push(1); // MessageAuthor::Customer
        payload.extend_from_slice(&[0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        let err = decode_payload(EventType::MessagePosted, 1, &payload).unwrap_err();
        assert!(matches!(err, CodecError::BadPayload { .. }), "{err}");
    }

    fn chunk_of_samples() -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut chunk = Vec::new();
        begin_chunk(&mut chunk, 42);
        let mut records = Vec::new();
        for (n, event) in one_of_each().iter().enumerate() {
            let envelope = envelope_for(event, 42 + n as u64);
            let range = push_chunk_record(&mut chunk, &envelope, event).unwrap();
            records.push(chunk[range].to_vec());
        }
        (chunk, records)
    }

    #[test]
    fn a_chunk_round_trips_its_records() {
        let (chunk, records) = chunk_of_samples();
        let decoded = decode_chunk(&chunk).unwrap();
        assert_eq!(decoded.header().first_position, 42);
        assert_eq!(decoded.header().count as usize, records.len());
        let read: Vec<&[u8]> = decoded.map(Result::unwrap).collect();
        assert_eq!(read, records.iter().map(Vec::as_slice).collect::<Vec<_>>());
        let mut raw = Vec::new();
        begin_chunk(&mut raw, 42);
        for record in &records {
            push_chunk_raw(&mut raw, record).unwrap();
        }
        assert_eq!(raw, chunk);
    }

    #[test]
    fn every_chunk_truncation_is_an_error_not_a_panic() {
        let (chunk, _) = chunk_of_samples();
        for len in 0..chunk.len() {
            let outcome = decode_chunk(&chunk[..len])
                .and_then(|records| records.collect::<Result<Vec<_>, _>>().map(|_| ()));
            assert!(outcome.is_err(), "{len} bytes read as a whole chunk");
            let mut offset = CHUNK_HEADER_LEN;
            while let Ok(range) = chunk_record_at(&chunk[..len], offset) {
                offset = range.end;
            }
        }
        let mut extra = chunk.clone();
        extra.push(0);
        assert!(decode_chunk(&extra).unwrap().any(|r| r.is_err()));
    }
}
