//! [`EventSource`]: a log that can be replayed from a position, several times —
//! what the report, the audit and the access views read. The server's
//! [`Log`] (any engine) is one; the replay tool adds its exported-file source.

use std::ops::ControlFlow;

use backchannel_eventlog::{Log, RecordedEvent};

/// A replayable log.
pub trait EventSource {
    type Error: std::error::Error + Send + Sync + 'static;

    /// The last position the source holds (0: empty). Callers replay up to the
    /// head they read once, so several passes see the same events.
    fn head(&self) -> u64;

    /// Calls `visit` with every event from `from` to `to` (both included) in
    /// position order, until it returns `Break`.
    fn replay(
        &self,
        from: u64,
        to: u64,
        visit: &mut dyn FnMut(&RecordedEvent) -> ControlFlow<()>,
    ) -> Result<(), Self::Error>;
}

impl EventSource for Log {
    type Error = backchannel_eventlog::Error;

    fn head(&self) -> u64 {
        Log::head(self)
    }

    fn replay(
        &self,
        from: u64,
        to: u64,
        visit: &mut dyn FnMut(&RecordedEvent) -> ControlFlow<()>,
    ) -> Result<(), Self::Error> {
        for event in self.scan(from) {
            let event = event?;
            if event.envelope.position > to || visit(&event).is_break() {
                break;
            }
        }
        Ok(())
    }
}
