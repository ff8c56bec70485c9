//! What the log stores around every event (SPEC section 6), and the values the
//! public API exchanges with callers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backchannel_domain::events::{Event, EventType, StreamId};
use backchannel_domain::ids::{CommandId, CorrelationId, EventId};
use backchannel_domain::model::Actor;

/// A blake3 digest: the link of the hash chain.
pub type Hash = [u8; 32];

/// When the writer recorded an event: UTC, microseconds since the Unix epoch.
///
/// Read from the system clock by the writer thread; it orders nothing (the global
/// position does), it is information for humans and reports.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct RecordedAt(i64);

impl RecordedAt {
    pub const fn from_micros(micros_since_epoch: i64) -> Self {
        Self(micros_since_epoch)
    }

    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// The current time. A clock before 1970 or after year 294,247 is clamped.
    pub fn now() -> Self {
        let micros = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => i64::try_from(since.as_micros()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_micros())
                .map(|m| -m)
                .unwrap_or(i64::MIN),
        };
        Self(micros)
    }

    pub fn to_system_time(self) -> SystemTime {
        let magnitude = Duration::from_micros(self.0.unsigned_abs());
        if self.0 >= 0 {
            UNIX_EPOCH + magnitude
        } else {
            UNIX_EPOCH - magnitude
        }
    }
}

/// The envelope of one stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Global position: starts at 1, gapless, in commit order.
    pub position: u64,
    pub stream: StreamId,
    /// Position inside the stream: starts at 1, contiguous.
    pub stream_version: u64,
    pub event_id: EventId,
    pub event_type: EventType,
    pub schema_version: u16,
    /// The codec version the record was written with (the first stored byte).
    pub codec_version: u8,
    pub recorded_at: RecordedAt,
    pub actor: Actor,
    /// The idempotency key of the append that wrote this event.
    pub command_id: CommandId,
    pub correlation_id: CorrelationId,
    /// Hash of the previous record's stored bytes; all zeros for position 1.
    pub prev_hash: Hash,
}

/// One event as read back from the log.
///
/// Its own hash is not computed on read (that would cost a blake3 per event on
/// every replay): it is the next event's `envelope.prev_hash`, and
/// [`SledEventLog::verify`](crate::SledEventLog::verify) recomputes them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    pub envelope: Envelope,
    pub event: Event,
}

/// What the caller believes the stream's current version is.
///
/// A stream's version is the number of events in it, so 0 means "no stream".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// The stream must not exist yet (equivalent to `Exact(0)`).
    NoStream,
    /// The stream's last version must be exactly this.
    Exact(u64),
    /// No concurrency check.
    Any,
}

impl ExpectedVersion {
    pub(crate) fn accepts(self, current: u64) -> bool {
        match self {
            ExpectedVersion::NoStream => current == 0,
            ExpectedVersion::Exact(v) => current == v,
            ExpectedVersion::Any => true,
        }
    }
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
            ExpectedVersion::Any => f.write_str("any version"),
        }
    }
}

/// Who and what caused an append; copied into every event's envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendMeta {
    /// Idempotency key: a second append with the same id appends nothing and
    /// returns the first one's outcome.
    pub command_id: CommandId,
    pub correlation_id: CorrelationId,
    pub actor: Actor,
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    pub first_position: u64,
    pub last_position: u64,
    /// The stream's version after the append (its last event's version).
    pub stream_version: u64,
    /// True when this was a retry of an earlier command: nothing was appended and
    /// the positions are the original ones.
    pub deduplicated: bool,
}

impl AppendOutcome {
    /// `count` events appended from `first_position`, the stream at
    /// `stream_version` after them.
    pub(crate) fn appended(first_position: u64, count: u64, stream_version: u64) -> Self {
        AppendOutcome {
            first_position,
            last_position: first_position + count - 1,
            stream_version,
            deduplicated: false,
        }
    }
}
