//! Checkpoint payloads: a caller's value in the bincode configuration of
//! codec version 1, without the per-record size limit.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{CHECKPOINT_CONFIG, CodecError};

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
