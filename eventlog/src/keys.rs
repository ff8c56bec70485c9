//! The sled key layout. Everything lives in sled's default tree, so one
//! `apply_batch` covers every chunk of a group commit atomically.
//!
//! | key | value |
//! |-----|-------|
//! | `e` + first position (u64 BE) | a chunk of records (see [`crate::codec`]) |
//! | `m` + `format` | [`FORMAT_MAGIC`] |
//!
//! There is no index in sled: the stream index and the command index live in
//! memory and are rebuilt on open (see `index.rs`).
//!
//! Big-endian integers make sled's byte order equal to numeric order, so a range
//! scan over `e` keys is a scan in position order, and the chunk holding
//! position `p` is the last `e` key at or before `chunk(p)`.

pub(crate) const CHUNK: u8 = b'e';

/// The meta key and value that mark a sled database as an event log of this format.
pub(crate) const FORMAT_KEY: &[u8] = b"mformat";
pub(crate) const FORMAT_MAGIC: &[u8] = b"backchannel-eventlog/2";

/// The key of the chunk whose first record is at `first_position`.
pub(crate) fn chunk(first_position: u64) -> [u8; 9] {
    let mut key = [CHUNK; 9];
    key[1..].copy_from_slice(&first_position.to_be_bytes());
    key
}

/// The first position encoded in an `e` key, if it is one.
pub(crate) fn position_of(key: &[u8]) -> Option<u64> {
    match key {
        [CHUNK, rest @ ..] => rest.try_into().ok().map(u64::from_be_bytes),
        _ => None,
    }
}
