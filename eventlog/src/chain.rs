//! [`ChainCheck`]: the invariants of a sequence of stored records, checked one
//! record at a time, whatever holds them (a store being imported, an exported
//! file being read or verified).

use std::collections::HashMap;

use backchannel_domain::events::StreamId;

use crate::codec::{self, CodecError};
use crate::envelope::{Envelope, Hash, RecordedEvent};
use crate::error::Error;

/// Checks that records come in order from position 1 without gaps, that each
/// one decodes (envelope and payload), links to the hash of the one before, and
/// continues its stream's versions by one.
///
/// Memory: one counter per stream seen.
#[derive(Debug, Clone)]
pub struct ChainCheck {
    next_position: u64,
    chain: Hash,
    streams: HashMap<StreamId, u64>,
    /// Started mid-log: a stream's first version seen is taken as is.
    resumed: bool,
}

impl Default for ChainCheck {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainCheck {
    pub fn new() -> Self {
        ChainCheck {
            next_position: 1,
            chain: [0; 32],
            streams: HashMap::new(),
            resumed: false,
        }
    }

    /// Checks records from `next_position` on, the one before hashing to
    /// `chain`: positions and hash links as [`ChainCheck::new`]; stream
    /// versions only from each stream's first record seen (the earlier ones
    /// are not read).
    pub fn resuming(next_position: u64, chain: Hash) -> Self {
        ChainCheck {
            next_position: next_position.max(1),
            chain,
            streams: HashMap::new(),
            resumed: next_position > 1,
        }
    }

    /// Checks the next stored record and returns it decoded. On error nothing
    /// changes, and the error names the position the record should have had.
    pub fn check(&mut self, bytes: &[u8]) -> Result<RecordedEvent, Error> {
        let position = self.next_position;
        self.size(bytes)?;
        let recorded =
            codec::decode_record(bytes).map_err(|source| Error::Corrupt { position, source })?;
        self.link(bytes, &recorded.envelope)?;
        Ok(recorded)
    }

    /// [`ChainCheck::check`] without decoding the payload: position, hash
    /// link and stream version from the envelope. For a reader whose consumer
    /// decodes the payload itself (and reports a payload that does not decode
    /// as `Corrupt` at that position).
    pub fn check_envelope(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let position = self.next_position;
        self.size(bytes)?;
        let (envelope, _) =
            codec::decode_envelope(bytes).map_err(|source| Error::Corrupt { position, source })?;
        self.link(bytes, &envelope)
    }

    fn size(&self, bytes: &[u8]) -> Result<(), Error> {
        if bytes.len() > codec::MAX_RECORD_BYTES {
            return Err(Error::Corrupt {
                position: self.next_position,
                source: CodecError::TooLarge { size: bytes.len() },
            });
        }
        Ok(())
    }

    fn link(&mut self, bytes: &[u8], envelope: &Envelope) -> Result<(), Error> {
        let position = self.next_position;
        let broken = |problem: String| Error::Broken { position, problem };
        if envelope.position != position {
            return Err(broken(format!(
                "the record says it is at position {}",
                envelope.position
            )));
        }
        if envelope.prev_hash != self.chain {
            return Err(broken(
                "the previous-hash link does not match the previous record".to_owned(),
            ));
        }
        let version = match self.streams.get(&envelope.stream) {
            Some(version) => *version,
            None if self.resumed => envelope.stream_version.saturating_sub(1),
            None => 0,
        };
        if envelope.stream_version != version + 1 {
            return Err(broken(format!(
                "{:?} jumps from version {} to {}",
                envelope.stream, version, envelope.stream_version
            )));
        }
        self.streams.insert(envelope.stream, version + 1);
        self.chain = codec::record_hash(bytes);
        self.next_position += 1;
        Ok(())
    }

    /// Records checked so far (the last good position).
    pub fn events(&self) -> u64 {
        self.next_position - 1
    }

    /// The hash of the last good record (zeros before the first).
    pub fn head_hash(&self) -> Hash {
        self.chain
    }

    pub fn streams(&self) -> usize {
        self.streams.len()
    }
}
