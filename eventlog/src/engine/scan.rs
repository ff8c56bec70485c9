//! [`OpenedScan`], the blocking scan of a [`Log`](super::Log) with customer data
//! opened, and opening one recorded event's customer data with the key store.

use backchannel_domain::events::Event;

use crate::envelope::RecordedEvent;
use crate::error::{Error, StorageError};
use crate::keystore::{KeyStore, KeyStoreError};
use crate::log::Scan;

/// [`Log::scan`](super::Log::scan): the events, their customer data opened when the log has
/// its key store. A blocking iterator.
pub struct OpenedScan {
    pub(super) scan: Scan,
    pub(super) keys: Option<KeyStore>,
}

impl Iterator for OpenedScan {
    type Item = Result<RecordedEvent, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let next = self.scan.next()?;
        Some(next.and_then(|mut recorded| {
            if let Some(keys) = &self.keys {
                open_recorded_blocking(keys, &mut recorded)
                    .map_err(|err| Error::Storage(StorageError::new(err)))?;
            }
            Ok(recorded)
        }))
    }
}

/// Opens `recorded`'s customer data; an erasure makes `keys` forget the key.
pub(super) async fn open_recorded(
    keys: &KeyStore,
    recorded: &mut RecordedEvent,
) -> Result<(), Error> {
    if forgets(keys, recorded) {
        return Ok(());
    }
    keys.open(&mut recorded.event)
        .await
        .map_err(|err| Error::Storage(StorageError::new(err)))
}

/// [`open_recorded`] on a blocking thread.
pub(super) fn open_recorded_blocking(
    keys: &KeyStore,
    recorded: &mut RecordedEvent,
) -> Result<(), KeyStoreError> {
    if forgets(keys, recorded) {
        return Ok(());
    }
    keys.open_blocking(&mut recorded.event)
}

/// Whether `recorded` is an erasure, which makes `keys` forget the
/// conversation's key (and holds no customer data to open).
fn forgets(keys: &KeyStore, recorded: &RecordedEvent) -> bool {
    match &recorded.event {
        Event::ConversationErased(e) => {
            keys.forget(e.conversation);
            true
        }
        _ => false,
    }
}
