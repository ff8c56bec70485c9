//! [`Recorder`]: turns commands into stored records with envelopes the caller
//! controls (ids and times), through the real `domain::decide` and the real
//! codec — so a scenario or a synthetic log is byte-for-byte reproducible, and
//! importing its records gives a store like the server's.

use backchannel_domain::commands::Command;
use backchannel_domain::events::Event;
use backchannel_domain::ids::{CommandId, CorrelationId, EventId};
use backchannel_domain::model::Actor;
use backchannel_domain::values::Content;
use backchannel_domain::{DomainError, State, decide};
use backchannel_eventlog::codec::CodecError;
use backchannel_eventlog::{AppendMeta, ChainEnd, RecordedAt};

/// Decides commands against its own state and encodes the events as the
/// log's writer would, with the given time and derived ids.
pub struct Recorder {
    state: State,
    /// The end of the records' hash chain (composed as the writer composes).
    chain: ChainEnd,
    records: Vec<Vec<u8>>,
    /// Ids come from this counter (see [`Recorder::next_uuid`]).
    id_seed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("the command was refused: {0}")]
    Refused(#[from] DomainError),
    #[error(transparent)]
    Codec(#[from] CodecError),
}

impl Recorder {
    /// `id_seed` makes ids differ between recorders (e.g. the generator's seed).
    pub fn new(id_seed: u64) -> Self {
        Recorder {
            state: State::default(),
            chain: ChainEnd::empty(),
            records: Vec::new(),
            id_seed,
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// The last position recorded.
    pub fn head(&self) -> u64 {
        self.chain.head()
    }

    /// A UUIDv7-shaped value: `ms` in the time bits, then a counter mixed with
    /// the seed, so ids sort by time and never repeat within a recorder.
    pub fn next_uuid(&mut self, ms: u64) -> [u8; 16] {
        self.id_seed = self.id_seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let random = mix(self.id_seed);
        let mut bytes = [0u8; 16];
        bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
        bytes[6..14].copy_from_slice(&random.to_be_bytes());
        bytes[14..].copy_from_slice(&(mix(random) as u16).to_be_bytes());
        bytes[6] = 0x70 | (bytes[6] & 0x0F);
        bytes[8] = 0x80 | (bytes[8] & 0x3F);
        bytes
    }

    /// Decides `command` by `actor` at `at` and records its events (one append:
    /// one command id). Returns how many events it recorded (0: a no-op).
    pub fn run(
        &mut self,
        at: RecordedAt,
        actor: Actor,
        command: &Command,
    ) -> Result<usize, RecordError> {
        let events = decide(&self.state, command, actor)?;
        self.record(at, actor, &events)?;
        Ok(events.len())
    }

    /// Records `events` by `actor` at `at` as they are (one append: one
    /// command id), undecided: for events no command makes (the read audit's
    /// `ContentOpened`).
    pub fn record(
        &mut self,
        at: RecordedAt,
        actor: Actor,
        events: &[Event],
    ) -> Result<(), RecordError> {
        let ms = u64::try_from(at.as_micros() / 1000).unwrap_or(0);
        let meta = AppendMeta {
            command_id: CommandId::from_bytes(self.next_uuid(ms)),
            correlation_id: CorrelationId::from_bytes(self.next_uuid(ms)),
            actor,
        };
        for event in events {
            let event = &in_clear(event);
            let stream_version = self.state.stream_version(event.stream()) + 1;
            let event_id = EventId::from_bytes(self.next_uuid(ms));
            let mut record = Vec::with_capacity(256);
            self.chain
                .compose(&meta, at, stream_version, event_id, event, &mut record)?;
            self.state.apply(event);
            self.records.push(record);
        }
        Ok(())
    }

    /// The records recorded since the last call.
    pub fn take_records(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.records)
    }
}

/// `event` with its customer data kept in clear ([`Content::Legacy`], as
/// before encryption existed): a recorder has no key store, and its records
/// must be reproducible byte for byte, which sealing with random nonces and
/// keys is not. So scenario and synthetic logs are plaintext-era logs.
fn in_clear(event: &Event) -> Event {
    fn clear<T: Clone>(content: &Content<T>) -> Content<T> {
        match content {
            Content::Plain(value) => Content::Legacy(value.clone()),
            other => other.clone(),
        }
    }
    let mut event = event.clone();
    match &mut event {
        Event::ConversationOpened(e) => e.customer = clear(&e.customer),
        Event::MessagePosted(e) => e.body = clear(&e.body),
        Event::PrivateMessagePosted(e) => e.body = clear(&e.body),
        _ => {}
    }
    event
}

/// SplitMix64's output function.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
