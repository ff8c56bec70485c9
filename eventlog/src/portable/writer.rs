//! [`PortableWriter`], writing a portable file from stored records and
//! checking them as it goes, and [`SledEventLog::export`].

use std::io::Write;

use crate::chain::ChainCheck;
use crate::codec;
use crate::envelope::{Hash, RecordedEvent};
use crate::log::SledEventLog;

use super::{
    FILE_FORMAT_VERSION, FileHeader, FileSummary, Hashing, PortableError, TRAILER_LEN,
    TRAILER_MAGIC, encode_header,
};

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
    /// with [`HeadKey::mac`](crate::HeadKey::mac)).
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
