//! The portable log file: a whole log, exported from a store and importable
//! into an empty one, readable by the replay tool without sled.
//!
//! # File format version 2
//!
//! All integers are big-endian.
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 8 | magic `BCLOGEXP` |
//! | 8 | 2 | file format version ([`FILE_FORMAT_VERSION`]) |
//! | 10 | 1 | codec version of the records ([`codec::CODEC_VERSION`]) |
//! | 11 | 1 | flags: bit 0 set when the head carries a MAC; other bits `0` |
//! | 12 | 8 | event count `n` |
//! | 20 | 32 | head hash: blake3 of the last record (zeros when `n` = 0) |
//! | 52 | 32 | head MAC: `HeadKey::mac(n, head hash)` with the server's key (see `mac.rs`); zeros without one |
//! | 84 | … | `n` times: record length (u32), then the stored record verbatim |
//! | end − 40 | 8 | trailer magic `BCLOGEND` |
//! | end − 32 | 32 | blake3 of every byte before the trailer |
//!
//! Version 1 is the same without the MAC (records start at offset 52, byte 11
//! is `0`): still read, and reported as not authenticated. The chain, head
//! hash and trailer show a file is whole and unchanged by accident; only the
//! MAC shows the server that holds the key wrote that head, since anyone can
//! recompute the others after rewriting a record (`replay-tool verify --key`).
//!
//! Records are the codec records exactly as the store holds them (see
//! [`codec`]), so every envelope field (position, stream version, event id,
//! time, actor, command and correlation ids) and the hash chain travel with
//! them: export → import → export gives the same bytes. Chunks are a storage
//! detail and are not in the file.
//!
//! A reader checks, in file order: the magic, the versions, the flags, then every record
//! through [`ChainCheck`](crate::ChainCheck) (gapless positions from 1, decodes, hash links,
//! contiguous stream versions), then the count, the head hash, the trailer and
//! its checksum, and that nothing follows. The first fault is reported with the
//! position of the record it concerns (if any) and its byte offset.

use std::io::{self, Write};

use crate::codec;
use crate::envelope::Hash;
use crate::error::Error;
use crate::mac::HeadKey;

mod reader;
mod writer;

pub use reader::PortableReader;
pub use writer::PortableWriter;

/// The version of this file layout (version 1, without the head MAC, is
/// still read).
pub const FILE_FORMAT_VERSION: u16 = 2;
const FILE_FORMAT_VERSION_1: u16 = 1;
const MAGIC: &[u8; 8] = b"BCLOGEXP";
const TRAILER_MAGIC: &[u8; 8] = b"BCLOGEND";
/// Version 1's header; version 2 adds the 32-byte MAC.
const HEADER_LEN_V1: usize = 52;
const HEADER_LEN: usize = HEADER_LEN_V1 + 32;
/// Flag bit: the header carries a head MAC.
const FLAG_MAC: u8 = 1;
const TRAILER_LEN: usize = 40;

/// What a file's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    pub file_format_version: u16,
    pub codec_version: u8,
    pub events: u64,
    pub head_hash: Hash,
    /// The MAC of (`events`, `head_hash`) with the exporting server's key;
    /// `None`: exported without a key, or file format version 1.
    pub mac: Option<Hash>,
}

impl FileHeader {
    /// Whether the head carries a MAC that `key` verifies. (The reader
    /// checks the head hash against the records themselves; this checks who
    /// wrote it.)
    pub fn authenticated_by(&self, key: &HeadKey) -> bool {
        self.mac
            .is_some_and(|mac| key.verifies(self.events, &self.head_hash, &mac))
    }
}

/// A fault in a portable file, or a failure reading or writing one.
#[derive(Debug, thiserror::Error)]
pub enum PortableError {
    #[error(
        "not a Backchannel log export (the file does not start with the magic bytes {magic:?})",
        magic = "BCLOGEXP"
    )]
    Foreign,
    #[error("the file is empty")]
    Empty,
    #[error(
        "unsupported file format version {found} (this build reads versions 1 to {FILE_FORMAT_VERSION})"
    )]
    UnsupportedFileVersion { found: u16 },
    #[error(
        "unsupported codec version {found} (this build reads version {})",
        codec::CODEC_VERSION
    )]
    UnsupportedCodecVersion { found: u8 },
    /// A record breaks the log's invariants (its position is in `source`).
    #[error("at byte offset {offset}: {source}")]
    Record {
        offset: u64,
        #[source]
        source: Error,
    },
    /// Something outside the records is wrong: the header, the trailer, or
    /// the file ends early.
    #[error("at byte offset {offset}{}: {problem}", position.map(|p| format!(" (position {p})")).unwrap_or_default())]
    Bad {
        offset: u64,
        position: Option<u64>,
        problem: String,
    },
    /// The log being exported is broken.
    #[error("the log cannot be exported: {0}")]
    Log(#[from] Error),
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl PortableError {
    /// The global position of the first bad record, if the fault concerns one.
    pub fn position(&self) -> Option<u64> {
        match self {
            PortableError::Record { source, .. } | PortableError::Log(source) => match source {
                Error::Corrupt { position, .. } | Error::Broken { position, .. } => Some(*position),
                Error::Storage(_) => None,
            },
            PortableError::Bad { position, .. } => *position,
            _ => None,
        }
    }
}

/// What an export or a full read of a file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSummary {
    pub events: u64,
    pub streams: usize,
    pub head_hash: Hash,
    pub bytes: u64,
}

/// A writer that hashes what goes through it (for the trailer) and counts bytes.
struct Hashing<W> {
    out: W,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl<W: Write> Hashing<W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hasher.update(bytes);
        self.bytes += bytes.len() as u64;
        self.out.write_all(bytes)
    }
}

fn encode_header(header: &FileHeader) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[..8].copy_from_slice(MAGIC);
    out[8..10].copy_from_slice(&header.file_format_version.to_be_bytes());
    out[10] = header.codec_version;
    if let Some(mac) = &header.mac {
        out[11] = FLAG_MAC;
        out[52..84].copy_from_slice(mac);
    }
    out[12..20].copy_from_slice(&header.events.to_be_bytes());
    out[20..52].copy_from_slice(&header.head_hash);
    out
}
