//! The sled key layout. Everything lives in sled's default tree, so one
//! `apply_batch` covers the records and both indexes atomically.
//!
//! | key | value |
//! |-----|-------|
//! | `e` + position (u64 BE) | the stored record (see [`crate::codec`]) |
//! | `s` + stream kind (1) + stream id (16) + stream version (u64 BE) | position (u64 BE) |
//! | `c` + command id (16) | first position, last position, stream version (3 × u64 BE) |
//! | `m` + `format` | [`FORMAT_MAGIC`] |
//!
//! Big-endian integers make sled's byte order equal to numeric order, so a range
//! scan over `e` keys is a scan in position order.

use backchannel_domain::events::StreamId;
use backchannel_domain::ids::CommandId;

use crate::codec::stream_parts;
use crate::envelope::AppendOutcome;

pub(crate) const EVENT: u8 = b'e';
pub(crate) const STREAM: u8 = b's';
pub(crate) const COMMAND: u8 = b'c';

/// The meta key and value that mark a sled database as an event log of this format.
pub(crate) const FORMAT_KEY: &[u8] = b"mformat";
pub(crate) const FORMAT_MAGIC: &[u8] = b"backchannel-eventlog/1";

pub(crate) fn event(position: u64) -> [u8; 9] {
    let mut key = [EVENT; 9];
    key[1..].copy_from_slice(&position.to_be_bytes());
    key
}

/// The position encoded in an `e` key, if it is one.
pub(crate) fn position_of(key: &[u8]) -> Option<u64> {
    match key {
        [EVENT, rest @ ..] => rest.try_into().ok().map(u64::from_be_bytes),
        _ => None,
    }
}

pub(crate) fn stream_prefix(stream: &StreamId) -> [u8; 18] {
    let (kind, id) = stream_parts(stream);
    let mut key = [STREAM; 18];
    key[1] = kind;
    key[2..].copy_from_slice(id);
    key
}

pub(crate) fn stream_version(stream: &StreamId, version: u64) -> [u8; 26] {
    let mut key = [0u8; 26];
    key[..18].copy_from_slice(&stream_prefix(stream));
    key[18..].copy_from_slice(&version.to_be_bytes());
    key
}

/// The stream version encoded in an `s` key.
pub(crate) fn version_of(key: &[u8]) -> Option<u64> {
    key.get(18..26)
        .and_then(|v| v.try_into().ok())
        .map(u64::from_be_bytes)
}

pub(crate) fn command(id: &CommandId) -> [u8; 17] {
    let mut key = [COMMAND; 17];
    key[1..].copy_from_slice(id.as_bytes());
    key
}

pub(crate) fn u64_value(bytes: &[u8]) -> Option<u64> {
    bytes.try_into().ok().map(u64::from_be_bytes)
}

pub(crate) fn command_value(outcome: &AppendOutcome) -> [u8; 24] {
    let mut value = [0u8; 24];
    value[..8].copy_from_slice(&outcome.first_position.to_be_bytes());
    value[8..16].copy_from_slice(&outcome.last_position.to_be_bytes());
    value[16..].copy_from_slice(&outcome.stream_version.to_be_bytes());
    value
}

/// The outcome stored for a command, marked as a replay.
pub(crate) fn command_outcome(value: &[u8]) -> Option<AppendOutcome> {
    Some(AppendOutcome {
        first_position: u64_value(value.get(..8)?)?,
        last_position: u64_value(value.get(8..16)?)?,
        stream_version: u64_value(value.get(16..24)?)?,
        deduplicated: true,
    })
}
