//! [`Tail`], a follower of the log over either engine, opening customer data
//! as it goes when the log has its key store.

use crate::envelope::RecordedEvent;
use crate::error::Error;
use crate::keystore::KeyStore;
use crate::postgres::PgTail;
use crate::tail::SledTail;

use super::scan::open_recorded;

/// A follower of the log; see [`Log::tail`](super::Log::tail).
pub struct Tail {
    pub(super) engine: TailEngine,
    pub(super) keys: Option<KeyStore>,
}

pub(super) enum TailEngine {
    Sled(SledTail),
    Postgres(PgTail),
}

impl Tail {
    /// The position of the event the next call returns.
    pub fn position(&self) -> u64 {
        match &self.engine {
            TailEngine::Sled(tail) => tail.position(),
            TailEngine::Postgres(tail) => tail.position(),
        }
    }

    /// The next event, waiting for it if needed; `None` once the log is closed
    /// and every committed event has been returned. After an error the next
    /// call retries the same position.
    pub async fn next(&mut self) -> Option<Result<RecordedEvent, Error>> {
        let next = match &mut self.engine {
            TailEngine::Sled(tail) => tail.next().await,
            TailEngine::Postgres(tail) => tail.next().await,
        }?;
        let mut recorded = match next {
            Ok(recorded) => recorded,
            Err(err) => return Some(Err(err)),
        };
        if let Some(keys) = &self.keys
            && let Err(err) = open_recorded(keys, &mut recorded).await
        {
            return Some(Err(err));
        }
        Some(Ok(recorded))
    }
}
