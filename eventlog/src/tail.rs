//! Following the log as it grows: [`SledTail`], and [`ReadAhead`], the
//! events both engines' tails have read but not yet yielded.

use std::collections::VecDeque;

use tokio::sync::watch;

use crate::envelope::RecordedEvent;
use crate::error::Error;
use crate::log::SledEventLog;

/// Events read from sled per refill. Reads are served from sled's cache, so a
/// page takes microseconds; the bound keeps one `next` from hogging a runtime
/// thread after a long absence.
const PAGE: usize = 512;

/// Yields every event from a position on, then waits for new commits.
///
/// Built on the committed-head watch channel the writer publishes after each
/// fsync: the tail reads by position up to the head it has seen, so it never
/// skips or repeats an event, and never sees one before it is durable.
pub struct SledTail {
    log: SledEventLog,
    committed: watch::Receiver<u64>,
    ahead: ReadAhead,
}

impl SledTail {
    pub(crate) fn new(log: SledEventLog, from_position: u64) -> Self {
        let committed = log.inner.committed.clone();
        SledTail {
            log,
            committed,
            ahead: ReadAhead::new(from_position),
        }
    }

    /// The position of the event the next call returns.
    pub fn position(&self) -> u64 {
        self.ahead.position()
    }

    /// The next event, waiting for it if needed. `None` once the log is closed
    /// and every committed event has been returned. After an error, the next
    /// call retries the same position.
    pub async fn next(&mut self) -> Option<Result<RecordedEvent, Error>> {
        loop {
            if let Some(event) = self.ahead.pop() {
                return Some(Ok(event));
            }
            let head = *self.committed.borrow_and_update();
            let next = self.ahead.next_to_read();
            if next <= head {
                match self.log.read_all(next, PAGE).await {
                    Ok(page) => {
                        page.into_iter().for_each(|event| self.ahead.push(event));
                        continue;
                    }
                    Err(err) => return Some(Err(err)),
                }
            }
            if self.committed.changed().await.is_err() {
                // The writer has stopped; drain what it committed before that.
                if next <= *self.committed.borrow() {
                    continue;
                }
                return None;
            }
        }
    }
}

/// The events a tail has read but not yet yielded, in order, and the position
/// of the next one to read.
pub(crate) struct ReadAhead {
    next_to_read: u64,
    buffered: VecDeque<RecordedEvent>,
}

impl ReadAhead {
    pub(crate) fn new(from_position: u64) -> Self {
        ReadAhead {
            next_to_read: from_position,
            buffered: VecDeque::new(),
        }
    }

    /// The position of the event the tail yields next.
    pub(crate) fn position(&self) -> u64 {
        self.next_to_read - self.buffered.len() as u64
    }

    /// The position of the next event to read (one past the last one read).
    pub(crate) fn next_to_read(&self) -> u64 {
        self.next_to_read
    }

    /// The next event to yield, if one was read ahead.
    pub(crate) fn pop(&mut self) -> Option<RecordedEvent> {
        self.buffered.pop_front()
    }

    /// Keeps `event`, read at [`ReadAhead::next_to_read`], to yield in turn.
    pub(crate) fn push(&mut self, event: RecordedEvent) {
        self.next_to_read += 1;
        self.buffered.push_back(event);
    }
}
