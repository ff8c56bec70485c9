//! Values as the schema stores them: positions and versions as `bigint`,
//! hashes as 32-byte `bytea`, a stream as its 17-byte key, a command id as a
//! `uuid`; and a driver error as the log's [`Error`].

use backchannel_domain::events::StreamId;
use backchannel_domain::ids::CommandId;

use crate::codec;
use crate::envelope::Hash;
use crate::error::{Error, StorageError};

pub(crate) fn storage(err: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Storage(StorageError::new(err))
}

fn other(message: String) -> StorageError {
    StorageError::new(std::io::Error::other(message))
}

pub(crate) fn to_i64(value: u64) -> Result<i64, Error> {
    i64::try_from(value).map_err(|_| Error::Storage(other(format!("{value} is out of range"))))
}

pub(crate) fn to_u64(value: i64) -> Result<u64, Error> {
    u64::try_from(value).map_err(|_| Error::Storage(other(format!("{value} is out of range"))))
}

pub(crate) fn to_hash(bytes: &[u8]) -> Result<Hash, Error> {
    bytes
        .try_into()
        .map_err(|_| Error::Storage(other("a stored hash is not 32 bytes".to_owned())))
}

/// The 17-byte key of a stream: its kind byte, then its id.
pub(crate) fn stream_key(stream: &StreamId) -> Vec<u8> {
    let (kind, id) = codec::stream_parts(stream);
    let mut key = Vec::with_capacity(17);
    key.push(kind);
    key.extend_from_slice(id);
    key
}

pub(crate) fn command_uuid(command: CommandId) -> uuid::Uuid {
    uuid::Uuid::from_bytes(*command.as_bytes())
}
