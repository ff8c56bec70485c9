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

#[cfg(test)]
mod tests {
    use backchannel_domain::ids::{CommandId, CorrelationId};
    use backchannel_domain::model::Actor;
    use backchannel_domain::samples::one_of_each;

    use super::*;
    use crate::{AppendMeta, ExpectedVersion};

    fn meta() -> AppendMeta {
        AppendMeta {
            command_id: CommandId::new(),
            correlation_id: CorrelationId::new(),
            actor: Actor::System,
        }
    }

    /// A log holding every sample event, one append per stream run.
    async fn sample_log(dir: &std::path::Path) -> SledEventLog {
        let log = SledEventLog::open(dir).unwrap();
        for event in one_of_each() {
            log.append(event.stream(), ExpectedVersion::Any, vec![event], meta())
                .await
                .unwrap();
        }
        log
    }

    /// Rewrites the stored record at `position` (test-only: bypasses the writer).
    fn tamper(log: &SledEventLog, position: u64, change: impl FnOnce(&mut Vec<u8>)) {
        let key = keys::event(position);
        let mut bytes = log.inner.db.get(key).unwrap().unwrap().to_vec();
        change(&mut bytes);
        log.inner.db.insert(key, bytes).unwrap();
    }

    #[tokio::test]
    async fn a_sound_log_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let log = sample_log(dir.path()).await;
        let report = log.verify().unwrap();
        assert_eq!(report.events, 22);
        assert_eq!(report.streams, 2);
        let last = log.inner.db.get(keys::event(22)).unwrap().unwrap();
        assert_eq!(report.head_hash, codec::record_hash(&last));
    }

    #[tokio::test]
    async fn a_modified_payload_breaks_the_chain_at_the_next_record() {
        let dir = tempfile::tempdir().unwrap();
        let log = sample_log(dir.path()).await;
        // Flip one byte of the customer name in ConversationOpened (position 15):
        // the record still decodes, but position 16's link no longer matches.
        tamper(&log, 15, |bytes| {
            let at = bytes.len() - 3;
            bytes[at] ^= 0x01;
        });
        let err = log.verify().unwrap_err();
        assert!(
            matches!(err, Error::Broken { position: 16, .. }),
            "unexpected: {err}"
        );
    }

    #[tokio::test]
    async fn garbage_under_an_event_key_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let log = sample_log(dir.path()).await;
        tamper(&log, 5, |bytes| bytes.truncate(40));
        let err = log.verify().unwrap_err();
        assert!(
            matches!(err, Error::Corrupt { position: 5, .. }),
            "unexpected: {err}"
        );
        assert!(err.to_string().contains("position 5"), "{err}");
        let read = log.read_all_now(1, 100).unwrap_err();
        assert!(matches!(read, Error::Corrupt { position: 5, .. }));
        let scanned: Vec<_> = log.scan(1).collect();
        assert_eq!(scanned.len(), 22);
        assert!(scanned[4].is_err() && scanned[5].is_ok());
    }

    #[tokio::test]
    async fn a_missing_record_is_reported_as_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let log = sample_log(dir.path()).await;
        log.inner.db.remove(keys::event(7)).unwrap();
        let err = log.verify().unwrap_err();
        assert!(
            matches!(err, Error::Broken { position: 7, .. }),
            "unexpected: {err}"
        );
    }
}
