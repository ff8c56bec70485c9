//! Checking the whole log: the hash chain and the invariants the writer keeps.

use std::collections::HashMap;

use backchannel_domain::events::StreamId;

use crate::chunks::ChunkCursor;
use crate::codec;
use crate::envelope::Hash;
use crate::error::Error;
use crate::head::{HeadFile, ReadHead};
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
    /// every chunk is well framed (its key and header agree, its record count
    /// matches, chunks follow each other without gap or overlap), positions are
    /// gapless, every record decodes, each record's `prev_hash` is the hash of
    /// the one before, stream versions are contiguous from 1, and the in-memory
    /// stream and command indexes point at each record. The first problem found
    /// is returned as [`Error::Broken`] or [`Error::Corrupt`] with its position.
    ///
    /// It also checks the log against the store's committed head record
    /// (`HEAD`, as the open did): the record at its position must carry its
    /// hash. (`HEAD` may name a position just past `head` while the writer
    /// is between recording and publishing it; that is not checked.)
    pub fn verify(&self) -> Result<VerifyReport, Error> {
        self.verify_with_progress(&mut |_| {})
    }

    /// [`SledEventLog::verify`], calling `checked` with each position once
    /// its record passed (for a progress bar).
    pub fn verify_with_progress(
        &self,
        checked: &mut dyn FnMut(u64),
    ) -> Result<VerifyReport, Error> {
        let head = self.head();
        let committed = match HeadFile::read(self.path()) {
            Ok(ReadHead::Found(_, committed)) if committed.position <= head => Some(committed),
            _ => None,
        };
        let mut hash_at_recorded = None;
        let mut chain: Hash = [0; 32];
        let mut streams: HashMap<StreamId, u64> = HashMap::new();
        let mut expected = 1;
        let mut last_command = None;
        let chunks = self
            .inner
            .db
            .range(keys::chunk(1)..=keys::chunk(head.max(1)));
        for entry in chunks {
            let (key, value) = entry?;
            let mut cursor = ChunkCursor::open(&key, value)?;
            let first = cursor.header().first_position;
            if first != expected {
                return Err(Error::Broken {
                    position: expected,
                    problem: if first > expected {
                        "the record is missing (a gap in the log)".to_owned()
                    } else {
                        format!("a chunk starting at {first} overlaps the one before")
                    },
                });
            }
            while let Some((position, range)) = cursor.next()? {
                let bytes = &cursor.bytes()[range];
                let broken = |problem: String| Error::Broken { position, problem };
                if position > head {
                    return Err(broken(format!(
                        "a chunk runs past the committed head {head}"
                    )));
                }
                let recorded = decode_at(position, bytes)?;
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
                let indexes = self.indexes();
                if indexes.position_of(&envelope.stream, envelope.stream_version) != Some(position)
                {
                    return Err(broken(format!(
                        "the stream index of {:?} version {} does not point here",
                        envelope.stream, envelope.stream_version
                    )));
                }
                if last_command != Some(envelope.command_id) {
                    if indexes.command(&envelope.command_id) != Some(position) {
                        return Err(broken(format!(
                            "the command index does not point at the append of command {} here",
                            envelope.command_id
                        )));
                    }
                    last_command = Some(envelope.command_id);
                }
                drop(indexes);
                chain = codec::record_hash(bytes);
                if committed.is_some_and(|c| c.position == position) {
                    hash_at_recorded = Some(chain);
                }
                checked(position);
                expected += 1;
            }
        }
        if expected != head + 1 {
            return Err(Error::Broken {
                position: expected,
                problem: format!("the log ends before its committed head {head}"),
            });
        }
        if let Some(committed) = committed.filter(|c| c.position > 0)
            && hash_at_recorded != Some(committed.hash)
        {
            return Err(Error::Broken {
                position: committed.position,
                problem: format!(
                    "the record does not carry the hash the committed head record (HEAD) names \
                     for it ({})",
                    crate::mac::hex(&committed.hash)
                ),
            });
        }
        let indexes = self.indexes();
        for (stream, version) in &streams {
            if indexes.version_at(stream, head) != *version {
                return Err(Error::Broken {
                    position: head,
                    problem: format!(
                        "the stream index holds events of {stream:?} the log does not"
                    ),
                });
            }
        }
        if indexes.streams_at(head) != streams.len() {
            return Err(Error::Broken {
                position: head,
                problem: "the stream index holds streams the log does not".to_owned(),
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

    /// The key and bytes of the chunk holding `position`.
    fn chunk_of(log: &SledEventLog, position: u64) -> (sled::IVec, Vec<u8>) {
        let (key, value) = log
            .inner
            .db
            .range(keys::chunk(0)..=keys::chunk(position))
            .next_back()
            .unwrap()
            .unwrap();
        (key, value.to_vec())
    }

    /// Rewrites the stored record at `position`, reframing its chunk correctly
    /// (test-only: bypasses the writer).
    fn tamper(log: &SledEventLog, position: u64, change: impl FnOnce(&mut Vec<u8>)) {
        let (key, bytes) = chunk_of(log, position);
        let records = codec::decode_chunk(&bytes).unwrap();
        let first = records.header().first_position;
        let mut rebuilt = Vec::new();
        codec::begin_chunk(&mut rebuilt, first);
        let mut change = Some(change);
        for (offset, record) in records.enumerate() {
            let mut record = record.unwrap().to_vec();
            if first + offset as u64 == position {
                (change.take().unwrap())(&mut record);
            }
            codec::push_chunk_raw(&mut rebuilt, &record).unwrap();
        }
        assert!(change.is_none(), "position {position} not in its chunk");
        log.inner.db.insert(key, rebuilt).unwrap();
    }

    /// Rewrites the raw bytes of the chunk holding `position`.
    fn tamper_chunk(log: &SledEventLog, position: u64, change: impl FnOnce(&mut Vec<u8>)) {
        let (key, mut bytes) = chunk_of(log, position);
        change(&mut bytes);
        log.inner.db.insert(key, bytes).unwrap();
    }

    /// A log of 3 appends of 10, 1 and 20 events, so chunks hold several records.
    async fn chunked_log(dir: &std::path::Path) -> SledEventLog {
        let log = SledEventLog::open(dir).unwrap();
        let events = one_of_each();
        for count in [10usize, 1, 20] {
            let stream = events[0].stream();
            let batch: Vec<_> = events
                .iter()
                .filter(|e| e.stream() == stream)
                .cycle()
                .take(count)
                .cloned()
                .collect();
            log.append(stream, ExpectedVersion::Any, batch, meta())
                .await
                .unwrap();
        }
        log
    }

    #[tokio::test]
    async fn a_sound_log_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let log = sample_log(dir.path()).await;
        let report = log.verify().unwrap();
        let n = one_of_each().len() as u64;
        assert_eq!(report.events, n);
        // The samples' company, conversation and read-audit streams.
        assert_eq!(report.streams, 3);
        let (_, last) = chunk_of(&log, n);
        let record = codec::decode_chunk(&last).unwrap().last().unwrap().unwrap();
        assert_eq!(report.head_hash, codec::record_hash(record));
        let dir = tempfile::tempdir().unwrap();
        let log = chunked_log(dir.path()).await;
        assert_eq!(log.verify().unwrap().events, 31);
        let (_, chunk) = chunk_of(&log, 20);
        assert_eq!(codec::decode_chunk(&chunk).unwrap().header().count, 20);
    }

    #[tokio::test]
    async fn a_modified_payload_breaks_the_chain_at_the_next_record() {
        // Flip one byte near the end of the record at position 15 (in the
        // samples, the customer name in ConversationOpened): the record still
        // decodes, but position 16's link no longer matches. The same inside
        // a chunk of many records.
        for chunked in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let log = match chunked {
                false => sample_log(dir.path()).await,
                true => chunked_log(dir.path()).await,
            };
            tamper(&log, 15, |bytes| {
                let at = bytes.len() - 3;
                bytes[at] ^= 0x01;
            });
            let err = log.verify().unwrap_err();
            assert!(
                matches!(err, Error::Broken { position: 16, .. }),
                "chunked: {chunked}, unexpected: {err}"
            );
        }
    }

    #[tokio::test]
    async fn a_garbage_record_in_a_chunk_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let log = sample_log(dir.path()).await;
        tamper(&log, 5, |bytes| bytes.truncate(40));
        let err = log.verify().unwrap_err();
        assert!(
            matches!(err, Error::Corrupt { position: 5, .. }),
            "unexpected: {err}"
        );
        assert!(err.to_string().contains("position 5"), "{err}");
        let read = log.read_all(1, 100).await.unwrap_err();
        assert!(matches!(read, Error::Corrupt { position: 5, .. }));
        let scanned: Vec<_> = log.scan(1).collect();
        assert_eq!(scanned.len(), one_of_each().len());
        assert!(scanned[4].is_err() && scanned[5].is_ok());

        let dir = tempfile::tempdir().unwrap();
        let log = chunked_log(dir.path()).await;
        tamper(&log, 14, |bytes| bytes.truncate(40));
        let scanned: Vec<_> = log.scan(1).collect();
        assert_eq!(scanned.len(), 31);
        assert!(matches!(
            scanned[13],
            Err(Error::Corrupt { position: 14, .. })
        ));
        assert!(scanned[12].is_ok() && scanned[14].is_ok());
    }

    #[tokio::test]
    async fn broken_chunk_framing_is_a_clear_error_not_a_panic() {
        type Change = fn(&mut Vec<u8>);
        let cases: [(&str, Change, u64); 6] = [
            ("truncated", |b| b.truncate(b.len() - 7), 12),
            ("header only", |b| b.truncate(13), 12),
            ("empty", |b| b.clear(), 12),
            ("count too high", |b| b[12] += 1, 12),
            ("count too low", |b| b[12] -= 1, 12),
            ("wrong first position", |b| b[8] += 1, 12),
        ];
        for (name, change, position) in cases {
            let dir = tempfile::tempdir().unwrap();
            let log = chunked_log(dir.path()).await;
            tamper_chunk(&log, 12, change);
            let err = log.verify().unwrap_err();
            assert!(
                matches!(err, Error::Corrupt { position: p, .. } if p >= position && p <= 32),
                "{name}: unexpected {err}"
            );
            // Reads stop at the committed head, so a count claiming one record
            // more than the chunk holds is only seen by verify and open.
            if name != "count too high" {
                assert!(log.read_all(1, 100).await.is_err(), "{name}");
                assert!(log.scan(12).any(|r| r.is_err()), "{name}");
                let s = one_of_each()[0].stream();
                assert!(
                    log.read_stream(s, 1).await.is_err(),
                    "{name}: read_stream through the broken chunk"
                );
            }
            // Records before the broken chunk still read.
            assert_eq!(log.read_all(1, 11).await.unwrap().len(), 11, "{name}");
            drop(log);
            let reopened = SledEventLog::open(dir.path()).err().unwrap();
            assert!(
                matches!(reopened, crate::OpenError::Corrupt { .. }),
                "{name}: {reopened}"
            );
        }
    }

    /// The record at the committed head rewritten in place (bypassing the
    /// writer): verify names the head record's position.
    #[tokio::test]
    async fn a_record_that_differs_from_the_committed_head_record_fails_verify() {
        let dir = tempfile::tempdir().unwrap();
        let log = chunked_log(dir.path()).await;
        let head = log.head();
        tamper(&log, head, |bytes| {
            let at = bytes.len() - 3;
            bytes[at] ^= 0x01;
        });
        let err = log.verify().unwrap_err();
        assert!(
            matches!(err, Error::Broken { position, .. } if position == head),
            "unexpected: {err}"
        );
        assert!(err.to_string().contains("HEAD"), "{err}");
    }

    #[tokio::test]
    async fn a_missing_chunk_is_reported_as_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let log = sample_log(dir.path()).await;
        log.inner.db.remove(keys::chunk(7)).unwrap();
        let err = log.verify().unwrap_err();
        assert!(
            matches!(err, Error::Broken { position: 7, .. }),
            "unexpected: {err}"
        );
        let read = log.read_all(1, 100).await.unwrap_err();
        assert!(matches!(read, Error::Broken { position: 7, .. }), "{read}");
        let read = log.read_all(7, 100).await.unwrap_err();
        assert!(matches!(read, Error::Broken { position: 7, .. }), "{read}");
    }
}
