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
//! through [`ChainCheck`] (gapless positions from 1, decodes, hash links,
//! contiguous stream versions), then the count, the head hash, the trailer and
//! its checksum, and that nothing follows. The first fault is reported with the
//! position of the record it concerns (if any) and its byte offset.

use std::io::{self, Read, Write};

use crate::chain::ChainCheck;
use crate::codec;
use crate::envelope::{Hash, RecordedEvent};
use crate::error::Error;
use crate::log::SledEventLog;
use crate::mac::HeadKey;

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

/// Writes a portable file from stored records, checking them as it goes.
///
/// The caller gives the header's count and head hash up front (the file may go
/// to a pipe, so the header cannot be patched afterwards); a record stream that
/// does not match them fails the export.
pub struct PortableWriter<W: Write> {
    out: Hashing<W>,
    header: FileHeader,
    check: ChainCheck,
}

impl<W: Write> PortableWriter<W> {
    /// A writer of an unauthenticated file (no head MAC).
    pub fn new(out: W, events: u64, head_hash: Hash) -> Result<Self, PortableError> {
        Self::with_mac(out, events, head_hash, None)
    }

    /// A writer whose header carries `mac`, the MAC of (`events`,
    /// `head_hash`) under the server's key (given by the server, or computed
    /// with [`HeadKey::mac`]).
    pub fn with_mac(
        out: W,
        events: u64,
        head_hash: Hash,
        mac: Option<Hash>,
    ) -> Result<Self, PortableError> {
        let header = FileHeader {
            file_format_version: FILE_FORMAT_VERSION,
            codec_version: codec::CODEC_VERSION,
            events,
            head_hash,
            mac,
        };
        let mut out = Hashing {
            out,
            hasher: blake3::Hasher::new(),
            bytes: 0,
        };
        out.put(&encode_header(&header))?;
        Ok(PortableWriter {
            out,
            header,
            check: ChainCheck::new(),
        })
    }

    /// Checks and writes the next stored record.
    pub fn push(&mut self, record: &[u8]) -> Result<RecordedEvent, PortableError> {
        let recorded = self.check.check(record)?;
        let len = u32::try_from(record.len()).map_err(|_| PortableError::Bad {
            offset: self.out.bytes,
            position: Some(recorded.envelope.position),
            problem: "a record longer than 4 GiB".to_owned(),
        })?;
        self.out.put(&len.to_be_bytes())?;
        self.out.put(record)?;
        Ok(recorded)
    }

    /// Writes the trailer after checking the records matched the header.
    pub fn finish(mut self) -> Result<(W, FileSummary), PortableError> {
        let mismatch = |problem: String| PortableError::Bad {
            offset: 0,
            position: None,
            problem,
        };
        if self.check.events() != self.header.events {
            return Err(mismatch(format!(
                "the header announces {} events, {} were written",
                self.header.events,
                self.check.events()
            )));
        }
        if self.check.head_hash() != self.header.head_hash {
            return Err(mismatch(
                "the head hash in the header is not the last record's hash".to_owned(),
            ));
        }
        let digest = *self.out.hasher.finalize().as_bytes();
        self.out.out.write_all(TRAILER_MAGIC)?;
        self.out.out.write_all(&digest)?;
        self.out.out.flush()?;
        let summary = FileSummary {
            events: self.check.events(),
            streams: self.check.streams(),
            head_hash: self.check.head_hash(),
            bytes: self.out.bytes + TRAILER_LEN as u64,
        };
        Ok((self.out.out, summary))
    }
}

impl SledEventLog {
    /// Writes every committed event (as of this call) to `out` as a portable
    /// file, checking the chain and invariants as it goes; `progress` is
    /// called with each position written.
    pub fn export<W: Write>(
        &self,
        out: W,
        mut progress: impl FnMut(u64),
    ) -> Result<FileSummary, PortableError> {
        let head = self.head();
        let head_hash = match head {
            0 => [0; 32],
            _ => codec::record_hash(&self.raw_record(head)?),
        };
        let mac = self.head_key().map(|key| key.mac(head, &head_hash));
        let mut writer = PortableWriter::with_mac(out, head, head_hash, mac)?;
        for record in self.raw_records(1, head) {
            let (position, bytes) = record?;
            writer.push(&bytes)?;
            progress(position);
        }
        writer.finish().map(|(_, summary)| summary)
    }
}

/// Reads a portable file record by record, checking everything (see the
/// module docs). After the last record, the next call checks the trailer and
/// returns `None`; every fault is one error item, after which it returns `None`.
pub struct PortableReader<R: Read> {
    input: R,
    header: FileHeader,
    hasher: blake3::Hasher,
    offset: u64,
    check: ChainCheck,
    record: Vec<u8>,
    done: bool,
    /// Records read by [`PortableReader::next_trusted`].
    trusted: u64,
}

impl<R: Read> PortableReader<R> {
    /// Reads and checks the header.
    pub fn new(mut input: R) -> Result<Self, PortableError> {
        let mut header = [0u8; HEADER_LEN];
        let got = read_full(&mut input, &mut header[..HEADER_LEN_V1])?;
        if got == 0 {
            return Err(PortableError::Empty);
        }
        if got < MAGIC.len() || &header[..8] != MAGIC {
            return Err(PortableError::Foreign);
        }
        let truncated = |got: usize| PortableError::Bad {
            offset: got as u64,
            position: None,
            problem: "the file is truncated inside its header".to_owned(),
        };
        if got < HEADER_LEN_V1 {
            return Err(truncated(got));
        }
        let file_format_version = u16::from_be_bytes([header[8], header[9]]);
        let header_len = match file_format_version {
            FILE_FORMAT_VERSION_1 => HEADER_LEN_V1,
            FILE_FORMAT_VERSION => HEADER_LEN,
            found => return Err(PortableError::UnsupportedFileVersion { found }),
        };
        if header[10] != codec::CODEC_VERSION {
            return Err(PortableError::UnsupportedCodecVersion { found: header[10] });
        }
        let got = HEADER_LEN_V1 + read_full(&mut input, &mut header[HEADER_LEN_V1..header_len])?;
        if got < header_len {
            return Err(truncated(got));
        }
        let flags = header[11];
        let known = if file_format_version == FILE_FORMAT_VERSION {
            FLAG_MAC
        } else {
            0
        };
        if flags & !known != 0 {
            return Err(PortableError::Bad {
                offset: 11,
                position: None,
                problem: format!("unknown header flags {flags:#04x} (tampered or a newer file)"),
            });
        }
        let mut events = [0u8; 8];
        events.copy_from_slice(&header[12..20]);
        let mut head_hash = [0u8; 32];
        head_hash.copy_from_slice(&header[20..52]);
        let mac = (flags & FLAG_MAC != 0).then(|| {
            let mut mac = [0u8; 32];
            mac.copy_from_slice(&header[52..84]);
            mac
        });
        let mut hasher = blake3::Hasher::new();
        hasher.update(&header[..header_len]);
        Ok(PortableReader {
            input,
            header: FileHeader {
                file_format_version,
                codec_version: header[10],
                events: u64::from_be_bytes(events),
                head_hash,
                mac,
            },
            hasher,
            offset: header_len as u64,
            check: ChainCheck::new(),
            record: Vec::new(),
            done: false,
            trusted: 0,
        })
    }

    pub fn header(&self) -> FileHeader {
        self.header
    }

    /// The stored bytes of the record the last [`PortableReader::next_record`] returned.
    pub fn record_bytes(&self) -> &[u8] {
        &self.record
    }

    /// What was checked so far; complete once `next_record` returned `None`
    /// without an error before it.
    pub fn summary(&self) -> FileSummary {
        FileSummary {
            events: self.check.events(),
            streams: self.check.streams(),
            head_hash: self.check.head_hash(),
            bytes: self.offset,
        }
    }

    fn bad(&self, problem: impl Into<String>, position: Option<u64>) -> PortableError {
        PortableError::Bad {
            offset: self.offset,
            position,
            problem: problem.into(),
        }
    }

    /// The next record, checked and decoded; `None` at the (checked) end.
    pub fn next_record(&mut self) -> Option<Result<RecordedEvent, PortableError>> {
        if self.done {
            return None;
        }
        let result = if self.check.events() < self.header.events {
            self.read_record().map(Some)
        } else {
            self.read_trailer().map(|()| None)
        };
        match result {
            Ok(Some(event)) => Some(Ok(event)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(err) => {
                self.done = true;
                Some(Err(err))
            }
        }
    }

    fn read_record(&mut self) -> Result<RecordedEvent, PortableError> {
        self.read_frame()?;
        let record_offset = self.offset + 4;
        let recorded = self
            .check
            .check(&self.record)
            .map_err(|source| PortableError::Record {
                offset: record_offset,
                source,
            })?;
        self.hash_frame();
        Ok(recorded)
    }

    /// The next record checked like [`PortableReader::next_record`] except
    /// that its payload is not decoded (see [`ChainCheck::check_envelope`]):
    /// its bytes are in [`PortableReader::record_bytes`], and `Some(Ok(()))`
    /// says they passed. The caller decodes the payload.
    pub fn next_checked_raw(&mut self) -> Option<Result<(), PortableError>> {
        if self.done {
            return None;
        }
        let result = if self.check.events() < self.header.events {
            self.read_frame()
                .and_then(|()| {
                    let record_offset = self.offset + 4;
                    self.check.check_envelope(&self.record).map_err(|source| {
                        PortableError::Record {
                            offset: record_offset,
                            source,
                        }
                    })
                })
                .map(|()| {
                    self.hash_frame();
                    Some(())
                })
        } else {
            self.read_trailer().map(|()| None)
        };
        match result {
            Ok(Some(())) => Some(Ok(())),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(err) => {
                self.done = true;
                Some(Err(err))
            }
        }
    }

    /// The next record of a file this process has already read through
    /// completely without a fault (and which has not changed since): framing,
    /// decoding and gapless positions are checked, the hash chain, stream
    /// versions and trailer are not. `None` after the last record announced.
    pub fn next_trusted(&mut self) -> Option<Result<RecordedEvent, PortableError>> {
        if self.done || self.trusted >= self.header.events {
            self.done = true;
            return None;
        }
        let position = self.trusted + 1;
        let result = self.read_frame().and_then(|()| {
            let offset = self.offset + 4;
            let recorded =
                codec::decode_record(&self.record).map_err(|source| PortableError::Record {
                    offset,
                    source: Error::Corrupt { position, source },
                })?;
            if recorded.envelope.position != position {
                return Err(PortableError::Record {
                    offset,
                    source: Error::Broken {
                        position,
                        problem: format!(
                            "the record says it is at position {} (the file changed?)",
                            recorded.envelope.position
                        ),
                    },
                });
            }
            self.offset += 4 + self.record.len() as u64;
            self.trusted = position;
            Ok(recorded)
        });
        if result.is_err() {
            self.done = true;
        }
        Some(result)
    }

    /// Reads the next length-prefixed record into `self.record`.
    fn read_frame(&mut self) -> Result<(), PortableError> {
        let position = self.check.events().max(self.trusted) + 1;
        let mut len = [0u8; 4];
        if read_full(&mut self.input, &mut len)? < len.len() {
            return Err(self.bad(
                format!(
                    "the file ends before record {position} of the {} its header announces (truncated)",
                    self.header.events
                ),
                Some(position),
            ));
        }
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 || len > codec::MAX_RECORD_BYTES {
            return Err(self.bad(
                format!(
                    "record length {len} is outside 1..={} (corrupt framing)",
                    codec::MAX_RECORD_BYTES
                ),
                Some(position),
            ));
        }
        self.record.resize(len, 0);
        if read_full(&mut self.input, &mut self.record)? < len {
            return Err(self.bad(
                format!("the file ends inside record {position} (truncated)"),
                Some(position),
            ));
        }
        Ok(())
    }

    /// Adds the checked record's frame to the trailer checksum and moves on.
    fn hash_frame(&mut self) {
        let len = self.record.len();
        self.hasher.update(&(len as u32).to_be_bytes());
        self.hasher.update(&self.record);
        self.offset += 4 + len as u64;
    }

    fn read_trailer(&mut self) -> Result<(), PortableError> {
        if self.check.head_hash() != self.header.head_hash {
            return Err(self.bad(
                format!(
                    "the header's head hash does not match record {} (tampered header or last record)",
                    self.check.events()
                ),
                Some(self.check.events()).filter(|&p| p > 0),
            ));
        }
        let mut trailer = [0u8; TRAILER_LEN];
        let got = read_full(&mut self.input, &mut trailer)?;
        if got < TRAILER_LEN {
            return Err(self.bad("the file ends before its trailer (truncated)", None));
        }
        if &trailer[..8] != TRAILER_MAGIC {
            return Err(self.bad(
                "no trailer after the announced records (more records than the header says, or a tampered count)",
                None,
            ));
        }
        if trailer[8..] != *self.hasher.finalize().as_bytes() {
            return Err(self.bad(
                "the checksum in the trailer does not match the file (tampered)",
                None,
            ));
        }
        self.offset += TRAILER_LEN as u64;
        let mut extra = [0u8; 1];
        if read_full(&mut self.input, &mut extra)? > 0 {
            return Err(self.bad("bytes after the trailer", None));
        }
        Ok(())
    }
}

impl<R: Read> Iterator for PortableReader<R> {
    type Item = Result<RecordedEvent, PortableError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record()
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}
