//! [`PgTail`]: following the log on PostgreSQL.

use tokio::sync::watch;

use super::{PAGE, PgEventLog};
use crate::codec;
use crate::envelope::{Hash, RecordedEvent};
use crate::error::Error;
use crate::log::decode_at;
use crate::tail::ReadAhead;

/// Yields every event from a position on, then each new one as it is
/// committed by any node, without gaps or duplicates.
///
/// It selects `position >= applied` in pages, so each page starts with the
/// record it applied last: if that record is gone or hashes otherwise (a
/// failover lost committed data), the tail yields [`Error::Broken`] saying so
/// and stops. Each record must follow the previous one's position and hash.
/// It wakes on the doorbell (any node's commit), on this process's own
/// commits, or every `poll_interval`. A read error is an error item; the next
/// call retries (reconnecting).
pub struct PgTail {
    log: PgEventLog,
    known: watch::Receiver<u64>,
    ahead: ReadAhead,
    /// The hash of the record before `ahead.next_to_read()`, once seen.
    applied_hash: Option<Hash>,
    /// A fault found after some good events of a page, yielded after them.
    failure: Option<Error>,
    stopped: bool,
}

impl PgTail {
    pub(crate) fn new(log: PgEventLog, from_position: u64) -> PgTail {
        let known = log.shared.known.subscribe();
        PgTail {
            log,
            known,
            ahead: ReadAhead::new(from_position),
            applied_hash: None,
            failure: None,
            stopped: false,
        }
    }

    /// The position of the event the next call returns.
    pub fn position(&self) -> u64 {
        self.ahead.position()
    }

    /// The next event, waiting for it if needed; `None` after the tail
    /// stopped on a log that lost records it had applied, or once the log
    /// was closed (`Log::close`) and every committed event was returned.
    pub async fn next(&mut self) -> Option<Result<RecordedEvent, Error>> {
        loop {
            if let Some(event) = self.ahead.pop() {
                return Some(Ok(event));
            }
            if let Some(err) = self.failure.take() {
                self.stopped = true;
                return Some(Err(err));
            }
            if self.stopped {
                return None;
            }
            self.known.borrow_and_update();
            let closed = self
                .log
                .shared
                .closed
                .load(std::sync::atomic::Ordering::SeqCst);
            match self.refill().await {
                Ok(true) => continue,
                // Caught up with a log closed before this read: the end.
                Ok(false) if closed => return None,
                Ok(false) => {}
                Err(err) => {
                    if matches!(err, Error::Broken { .. }) {
                        self.stopped = true;
                    }
                    return Some(Err(err));
                }
            }
            let poll = self.log.shared.db.options.poll_interval;
            tokio::select! {
                _ = self.known.changed() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Reads the next page; whether it brought events.
    async fn refill(&mut self) -> Result<bool, Error> {
        let applied = self.ahead.next_to_read() - 1;
        let from = applied.max(1);
        let reader = self.log.reader().await?;
        let page = reader.page(from, super::PAGE + 1).await?;
        let mut rows = page.into_iter().peekable();
        if applied > 0 {
            let lost = |problem: &str| Error::Broken {
                position: applied,
                problem: format!(
                    "{problem}: the log lost records this node had applied (a failover without \
                     a synchronous standby?); this node stops following it"
                ),
            };
            match rows.peek() {
                Some((position, record)) if *position == applied => {
                    let hash = codec::record_hash(record);
                    match self.applied_hash {
                        Some(seen) if seen != hash => {
                            return Err(lost("the record at the applied position changed"));
                        }
                        _ => self.applied_hash = Some(hash),
                    }
                    rows.next();
                }
                Some(_) | None if self.applied_hash.is_some() => {
                    return Err(lost("the record at the applied position is gone"));
                }
                // Started past the log's end (or at a missing record): wait.
                _ => return Ok(false),
            }
        }
        let mut got = false;
        for (position, record) in rows.take(usize::try_from(PAGE).unwrap_or(1024)) {
            let checked = self.check(position, &record);
            let event = match checked {
                Ok(event) => event,
                Err(err) if got => {
                    self.failure = Some(err);
                    break;
                }
                Err(err) => return Err(err),
            };
            self.applied_hash = Some(codec::record_hash(&record));
            super::seam::index_event(&self.log, &event);
            self.ahead.push(event);
            got = true;
        }
        if got && self.failure.is_none() {
            super::bump(&self.log.shared.known, self.ahead.next_to_read() - 1);
        }
        Ok(got)
    }

    fn check(&self, position: u64, record: &[u8]) -> Result<RecordedEvent, Error> {
        let expected = self.ahead.next_to_read();
        if position != expected {
            return Err(Error::Broken {
                position: expected,
                problem: format!("the log jumps to position {position}"),
            });
        }
        let event = decode_at(position, record)?;
        if let Some(previous) = self.applied_hash
            && event.envelope.prev_hash != previous
        {
            return Err(Error::Broken {
                position,
                problem: "the previous-hash link does not match the previous record".to_owned(),
            });
        }
        Ok(event)
    }
}
