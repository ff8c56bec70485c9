//! [`PortableReader`], reading a portable file record by record and
//! checking everything the module docs list.

use std::io::{self, Read};

use crate::chain::ChainCheck;
use crate::codec;
use crate::envelope::RecordedEvent;
use crate::error::Error;

use super::{
    FILE_FORMAT_VERSION, FILE_FORMAT_VERSION_1, FLAG_MAC, FileHeader, FileSummary, HEADER_LEN,
    HEADER_LEN_V1, MAGIC, PortableError, TRAILER_LEN, TRAILER_MAGIC,
};

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
        self.next_checked(|check, record| check.check(record))
    }

    /// The next record checked like [`PortableReader::next_record`] except
    /// that its payload is not decoded (see [`ChainCheck::check_envelope`]):
    /// its bytes are in [`PortableReader::record_bytes`], and `Some(Ok(()))`
    /// says they passed. The caller decodes the payload.
    pub fn next_checked_raw(&mut self) -> Option<Result<(), PortableError>> {
        self.next_checked(|check, record| check.check_envelope(record))
    }

    /// The next record passed through `checked` (which extends the chain
    /// check with it), or the trailer checked and `None` after the last one.
    fn next_checked<T>(
        &mut self,
        checked: impl FnOnce(&mut ChainCheck, &[u8]) -> Result<T, Error>,
    ) -> Option<Result<T, PortableError>> {
        if self.done {
            return None;
        }
        let result = if self.check.events() < self.header.events {
            self.read_frame().and_then(|()| {
                let record_offset = self.offset + 4;
                let value = checked(&mut self.check, &self.record).map_err(|source| {
                    PortableError::Record {
                        offset: record_offset,
                        source,
                    }
                })?;
                self.hash_frame();
                Ok(Some(value))
            })
        } else {
            self.read_trailer().map(|()| None)
        };
        match result {
            Ok(Some(value)) => Some(Ok(value)),
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
