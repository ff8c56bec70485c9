//! Composing records outside a store: the envelope the writer gives an event,
//! its encoding, and its link in the hash chain, for callers that build a log
//! to import (`replay-tool`'s recorder, which picks its own ids and times).
//! Both engines' writers fill their envelopes here too
//! ([`ChainEnd::compose`]): a record composed here imports as one a
//! writer appended.

use backchannel_domain::events::Event;
use backchannel_domain::ids::EventId;

use crate::codec::{self, CodecError};
use crate::envelope::{AppendMeta, Envelope, Hash, RecordedAt};

/// The end of a chain of records being composed: the position the next
/// record takes and the hash it links to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainEnd {
    next_position: u64,
    prev_hash: Hash,
}

impl Default for ChainEnd {
    fn default() -> Self {
        ChainEnd::empty()
    }
}

impl ChainEnd {
    /// An empty log: the first record is at position 1 and links to zeros.
    pub const fn empty() -> Self {
        ChainEnd {
            next_position: 1,
            prev_hash: [0; 32],
        }
    }

    /// The last position composed (0: none yet).
    pub const fn head(&self) -> u64 {
        self.next_position - 1
    }

    /// The hash the next record links to (the last record's; zeros before
    /// the first).
    pub const fn head_hash(&self) -> Hash {
        self.prev_hash
    }

    /// The end of a log of `head` records, the last one hashing to `hash`.
    pub(crate) const fn after(head: u64, hash: Hash) -> Self {
        ChainEnd {
            next_position: head + 1,
            prev_hash: hash,
        }
    }

    /// Encodes `event` as the next record, appended to `out`, and moves the
    /// end past it; returns the record's envelope. The envelope holds the
    /// next position, `stream_version` in the event's stream, `event_id`,
    /// the event type's current schema version, this codec's version,
    /// `recorded_at`, what `meta` says (actor, command and correlation ids)
    /// and the previous record's hash: the one way the writers of both
    /// engines fill an envelope. On error nothing moves (`out` may hold part
    /// of the record).
    pub fn compose(
        &mut self,
        meta: &AppendMeta,
        recorded_at: RecordedAt,
        stream_version: u64,
        event_id: EventId,
        event: &Event,
        out: &mut Vec<u8>,
    ) -> Result<Envelope, CodecError> {
        let envelope = Envelope {
            position: self.next_position,
            stream: event.stream(),
            stream_version,
            event_id,
            event_type: event.event_type(),
            schema_version: event.schema_version(),
            codec_version: codec::CODEC_VERSION,
            recorded_at,
            actor: meta.actor,
            command_id: meta.command_id,
            correlation_id: meta.correlation_id,
            prev_hash: self.prev_hash,
        };
        let start = out.len();
        codec::encode_record(&envelope, event, out)?;
        self.prev_hash = codec::record_hash(&out[start..]);
        self.next_position += 1;
        Ok(envelope)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use backchannel_domain::ids::{CommandId, CorrelationId};
    use backchannel_domain::model::Actor;
    use backchannel_domain::samples::one_of_each;

    use super::*;
    use crate::chain::ChainCheck;

    #[test]
    fn composed_records_form_a_chain_the_import_check_accepts() {
        let meta = AppendMeta {
            command_id: CommandId::new(),
            correlation_id: CorrelationId::new(),
            actor: Actor::System,
        };
        let at = RecordedAt::from_micros(1_700_000_000_000_000);
        let mut end = ChainEnd::empty();
        assert_eq!((end.head(), end.head_hash()), (0, [0; 32]));
        let mut versions = HashMap::new();
        let mut check = ChainCheck::new();
        let events = one_of_each();
        for (n, event) in events.iter().enumerate() {
            let version = versions.entry(event.stream()).or_insert(0u64);
            *version += 1;
            let mut record = Vec::new();
            let envelope = end
                .compose(&meta, at, *version, EventId::new(), event, &mut record)
                .unwrap();
            assert_eq!(envelope.position, n as u64 + 1);
            assert_eq!(end.head_hash(), codec::record_hash(&record));
            let stored = check.check(&record).unwrap();
            assert_eq!(&stored.event, event);
            assert_eq!(stored.envelope.recorded_at, at);
            assert_eq!(stored.envelope.command_id, meta.command_id);
        }
        assert_eq!(end.head(), events.len() as u64);
        assert_eq!(check.head_hash(), end.head_hash());
    }

    #[test]
    fn a_record_that_skips_a_stream_version_is_refused_by_the_check() {
        let meta = AppendMeta {
            command_id: CommandId::new(),
            correlation_id: CorrelationId::new(),
            actor: Actor::System,
        };
        let event = &one_of_each()[0];
        let mut end = ChainEnd::empty();
        let mut record = Vec::new();
        end.compose(
            &meta,
            RecordedAt::now(),
            2,
            EventId::new(),
            event,
            &mut record,
        )
        .unwrap();
        assert!(ChainCheck::new().check(&record).is_err());
    }
}
