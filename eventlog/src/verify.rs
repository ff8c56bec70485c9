//! Checking the whole log: the hash chain and the invariants the writer keeps.

use std::collections::HashMap;

use backchannel_domain::events::StreamId;

use crate::codec;
use crate::envelope::Hash;
use crate::error::Error;
use crate::keys;
use crate::log::{SledEventLog, decode_at};

/// What [`SledEventLog::verify`] found in a sound log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Events checked: positions 1 to `events`.
    pub events: u64,
    pub streams: usize,
    /// The hash of the last record (zeros for an empty log).
    pub head_hash: Hash,
}

impl SledEventLog {
    /// Re-reads the log from position 1 to the committed head and checks that
    /// positions are gapless, every record decodes, each record's `prev_hash` is
    /// the hash of the one before, stream versions are contiguous from 1, and the
    /// stream index points at each record. The first problem found is returned as
    /// [`Error::Broken`] or [`Error::Corrupt`] with its position.
    pub fn verify(&self) -> Result<VerifyReport, Error> {
        let head = self.head();
        let mut chain: Hash = [0; 32];
        let mut streams: HashMap<StreamId, u64> = HashMap::new();
        let mut expected = 1;
        for entry in self
            .inner
            .db
            .range(keys::event(1)..=keys::event(head.max(1)))
        {
            let (key, bytes) = entry?;
            let broken = |problem: String| Error::Broken {
                position: expected,
                problem,
            };
            if keys::position_of(&key) != Some(expected) {
                return Err(broken(
                    "the record is missing (a gap in the log)".to_owned(),
                ));
            }
            let recorded = decode_at(expected, &bytes)?;
            let envelope = &recorded.envelope;
            if envelope.prev_hash != chain {
                return Err(broken(
                    "the previous-hash link does not match the previous record".to_owned(),
                ));
            }
            let version = streams.entry(envelope.stream).or_insert(0);
            if envelope.stream_version != *version + 1 {
                return Err(broken(format!(
                    "{:?} jumps from version {} to {}",
                    envelope.stream, version, envelope.stream_version
                )));
            }
            *version += 1;
            let indexed = self.inner.db.get(keys::stream_version(
                &envelope.stream,
                envelope.stream_version,
            ))?;
            if indexed.as_deref().and_then(keys::u64_value) != Some(expected) {
                return Err(broken(format!(
                    "the index of {:?} version {} does not point here",
                    envelope.stream, envelope.stream_version
                )));
            }
            chain = codec::record_hash(&bytes);
            expected += 1;
        }
        if expected != head + 1 {
            return Err(Error::Broken {
                position: expected,
                problem: format!("the log ends before its committed head {head}"),
            });
        }
        Ok(VerifyReport {
            events: head,
            streams: streams.len(),
            head_hash: chain,
        })
    }
}
