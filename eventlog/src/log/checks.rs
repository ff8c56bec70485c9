//! The checks of an append shared by both engines, and decoding a stored
//! record at a known position.

use backchannel_domain::events::{Event, StreamId};

use crate::codec;
use crate::envelope::{ExpectedVersion, RecordedEvent};
use crate::error::{AppendError, Error};
use crate::writer;

use super::MAX_STREAMS_PER_APPEND;

/// Every event of a single-stream append belongs to `stream`
/// ([`AppendError::WrongStream`] names the first that does not); both
/// engines' `append` check this before `check_append`.
pub(crate) fn check_one_stream(stream: &StreamId, events: &[Event]) -> Result<(), AppendError> {
    match events
        .iter()
        .map(Event::stream)
        .enumerate()
        .find(|(_, found)| found != stream)
    {
        Some((index, found)) => Err(AppendError::WrongStream {
            index,
            expected: *stream,
            found,
        }),
        None => Ok(()),
    }
}

/// The checks of an append that need no state: at least one event, at most
/// `MAX_EVENTS_PER_APPEND` events and [`MAX_STREAMS_PER_APPEND`] streams, no
/// stream listed twice, every event's stream listed. Shared by both engines.
pub(crate) fn check_append(
    expected: &[(StreamId, ExpectedVersion)],
    events: &[Event],
) -> Result<(), AppendError> {
    if events.is_empty() {
        return Err(AppendError::NoEvents);
    }
    if events.len() > writer::MAX_EVENTS_PER_APPEND {
        return Err(AppendError::TooManyEvents {
            count: events.len(),
            max: writer::MAX_EVENTS_PER_APPEND,
        });
    }
    if expected.len() > MAX_STREAMS_PER_APPEND {
        return Err(AppendError::TooManyStreams {
            count: expected.len(),
            max: MAX_STREAMS_PER_APPEND,
        });
    }
    for (i, (stream, _)) in expected.iter().enumerate() {
        if expected[..i].iter().any(|(earlier, _)| earlier == stream) {
            return Err(AppendError::DuplicateStream { stream: *stream });
        }
    }
    if let Some((index, found)) = events
        .iter()
        .map(Event::stream)
        .enumerate()
        .find(|(_, found)| !expected.iter().any(|(stream, _)| stream == found))
    {
        return Err(AppendError::WrongStream {
            index,
            expected: expected.first().map_or(found, |(stream, _)| *stream),
            found,
        });
    }
    Ok(())
}

pub(crate) fn decode_at(position: u64, bytes: &[u8]) -> Result<RecordedEvent, Error> {
    let event =
        codec::decode_record(bytes).map_err(|source| Error::Corrupt { position, source })?;
    if event.envelope.position != position {
        return Err(Error::Broken {
            position,
            problem: format!(
                "the record says it is at position {}",
                event.envelope.position
            ),
        });
    }
    Ok(event)
}
