//! Following the log as it grows.

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
    next_position: u64,
    buffered: VecDeque<RecordedEvent>,
}

impl SledTail {
    pub(crate) fn new(log: SledEventLog, from_position: u64) -> Self {
        let committed = log.inner.committed.clone();
        SledTail {
            log,
            committed,
            next_position: from_position,
            buffered: VecDeque::new(),
        }
    }

    /// The position of the event the next call returns.
    pub fn position(&self) -> u64 {
        self.next_position - self.buffered.len() as u64
    }

    /// The next event, waiting for it if needed. `None` once the log is closed
    /// and every committed event has been returned. After an error, the next
    /// call retries the same position.
    pub async fn next(&mut self) -> Option<Result<RecordedEvent, Error>> {
        loop {
            if let Some(event) = self.buffered.pop_front() {
                return Some(Ok(event));
            }
            let head = *self.committed.borrow_and_update();
            if self.next_position <= head {
                match self.log.read_all_now(self.next_position, PAGE) {
                    Ok(page) => {
                        self.next_position += page.len() as u64;
                        self.buffered.extend(page);
                        continue;
                    }
                    Err(err) => return Some(Err(err)),
                }
            }
            if self.committed.changed().await.is_err() {
                // The writer has stopped; drain what it committed before that.
                if self.next_position <= *self.committed.borrow() {
                    continue;
                }
                return None;
            }
        }
    }
}
