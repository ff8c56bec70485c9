//! How a source's customer data is shown (SPEC section 12): the keys it is
//! opened with (an auditor's bundle, or a store's own key store) and the
//! conversations whose content is shown erased.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use backchannel_domain::events::{Event, EventType};
use backchannel_domain::ids::ConversationId;
use backchannel_domain::values::Content;
use backchannel_eventlog::{
    DirKeyStore, KEYS_DIR, KeyState, KeyStore, KeyStoreError, KeyWrap, RecordedEvent, codec,
};

use super::{Source, SourceError};
use crate::failure::{Failure, Kind};

/// How a source's customer data is shown (SPEC section 12).
///
/// - A file's sealed data is opened with `keys` (an auditor's bundle) as it
///   is decoded; a store's log opens its own (`Log::with_keys`).
/// - A reader without keys cannot tell an erased conversation from one whose
///   key it was not given: both are sealed. So the first time a pass meets
///   customer data stored since encryption existed, the source's
///   `ConversationErased` events are collected in one pass over the records
///   that decodes only their envelopes (and the payload of those few
///   events); from then on that content of those conversations is
///   [`Content::Erased`], with or without a key. A log of the plaintext era
///   never pays for that pass.
#[derive(Default)]
pub struct Reading {
    keys: Option<KeyStore>,
    erased: Mutex<Option<Arc<HashSet<ConversationId>>>>,
}

impl Reading {
    /// The key store sealed data is opened with, if any.
    pub fn keys(&self) -> Option<&KeyStore> {
        self.keys.as_ref()
    }
}

impl Source {
    /// This source with `keys` (an auditor's key bundle) to open sealed data
    /// with.
    pub fn with_keys(self, keys: KeyStore) -> Source {
        match self {
            Source::Store {
                log,
                _scratch,
                path,
                reading,
            } => Source::Store {
                log: log.with_keys(keys.clone()),
                _scratch,
                path,
                reading: Reading {
                    keys: Some(keys),
                    ..reading
                },
            },
            Source::File {
                path,
                events,
                label,
                _scratch,
                verified,
                reading,
            } => Source::File {
                path,
                events,
                label,
                _scratch,
                verified,
                reading: Reading {
                    keys: Some(keys),
                    ..reading
                },
            },
        }
    }

    /// The store's own key store, read-only, unwrapped with `wrap` (from the
    /// server's secret): `<store>/keys/` of the original store (its copy
    /// holds no keys) or the database's `data_keys` table. A file has none.
    pub fn store_keys(&self, wrap: &KeyWrap) -> Result<KeyStore, Failure> {
        match self {
            Source::File { label, .. } => Err(Failure::new(
                Kind::Usage,
                format!(
                    "--key opens a store's own keys (--data-dir or --store); {label} has \
                     none: give an export's key bundle with --keys"
                ),
            )),
            Source::Store { log, path, .. } => match log.as_postgres() {
                None => {
                    let dir = DirKeyStore::open_read_only(path, wrap.clone());
                    // A wrong secret fails here, not part way through a
                    // replay: one live key is unwrapped first.
                    if let Some(conversation) = first_live_key(&path.join(KEYS_DIR)) {
                        dir.get(conversation).map_err(|err| self.key_failure(err))?;
                    }
                    Ok(dir.into())
                }
                Some(pg) => {
                    // Every key at once (one query): a replay then asks none.
                    let keys = KeyStore::from(pg.key_store_read_only(wrap.clone()));
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|err| Failure::new(Kind::Io, err.to_string()))?
                        .block_on(keys.preload())
                        .map_err(|err| self.key_failure(err))?;
                    Ok(keys)
                }
            },
        }
    }

    /// A key store's failure: a key that does not unwrap means `--key` is
    /// not this server's secret.
    fn key_failure(&self, err: KeyStoreError) -> Failure {
        match err {
            KeyStoreError::Damaged { .. } => Failure::new(
                Kind::Usage,
                format!(
                    "--key does not unwrap the keys of {} (is it this server's secret?): {err}",
                    self.describe()
                ),
            ),
            other => Failure::new(
                Kind::Unavailable,
                format!("the key store of {}: {other}", self.describe()),
            ),
        }
    }

    /// Every key of the store's own key store (see [`Source::store_keys`]),
    /// unwrapped with `wrap`: for an auditor's key bundle.
    pub fn store_key_list(
        &self,
        wrap: &KeyWrap,
    ) -> Result<Vec<(ConversationId, KeyState)>, Failure> {
        let listed = match self {
            Source::File { label, .. } => {
                return Err(Failure::new(
                    Kind::Usage,
                    format!(
                        "--keys-out needs the store the keys live in (--data-dir or --store); \
                         {label} holds no keys"
                    ),
                ));
            }
            Source::Store { log, path, .. } => match log.as_postgres() {
                None => DirKeyStore::open_read_only(path, wrap.clone()).all(),
                Some(pg) => tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|err| Failure::new(Kind::Io, err.to_string()))?
                    .block_on(pg.key_store_read_only(wrap.clone()).all()),
            },
        };
        listed.map_err(|err| self.key_failure(err))
    }

    /// This source reading a store's own keys (see [`Source::store_keys`]).
    pub fn with_store_keys(self, wrap: &KeyWrap) -> Result<Source, Failure> {
        let keys = self.store_keys(wrap)?;
        Ok(self.with_keys(keys))
    }

    /// Makes `recorded` show what this reader may see: a file's sealed data
    /// opened with the reader's keys, and any stored-sealed content of an
    /// erased conversation erased.
    pub(super) fn prepare(&self, recorded: &mut RecordedEvent) -> Result<(), SourceError> {
        // A store's log opened its events itself (`Log::with_keys`).
        if let (Source::File { .. }, Some(keys)) = (self, self.reading().keys()) {
            match &recorded.event {
                Event::ConversationErased(e) => keys.forget(e.conversation),
                _ => keys.open_blocking(&mut recorded.event)?,
            }
        }
        if let Some(conversation) = sealed_era_conversation(&recorded.event)
            && self.erased()?.contains(&conversation)
        {
            erase_content(&mut recorded.event);
        }
        Ok(())
    }

    /// The conversations this source holds a `ConversationErased` for,
    /// collected on first use.
    fn erased(&self) -> Result<Arc<HashSet<ConversationId>>, SourceError> {
        let mut erased = self
            .reading()
            .erased
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(set) = &*erased {
            return Ok(set.clone());
        }
        let set = Arc::new(self.collect_erased()?);
        *erased = Some(set.clone());
        Ok(set)
    }

    fn collect_erased(&self) -> Result<HashSet<ConversationId>, SourceError> {
        let mut erased = HashSet::new();
        let mut note = |bytes: &[u8], position: u64| -> Result<(), backchannel_eventlog::Error> {
            let corrupt = |source| backchannel_eventlog::Error::Corrupt { position, source };
            let (envelope, _) = codec::decode_envelope(bytes).map_err(corrupt)?;
            if envelope.event_type == EventType::ConversationErased
                && let Event::ConversationErased(e) =
                    codec::decode_record(bytes).map_err(corrupt)?.event
            {
                erased.insert(e.conversation);
            }
            Ok(())
        };
        match self {
            Source::Store { log, .. } => {
                for record in log.raw_records(1, log.head()) {
                    let (position, bytes) = record?;
                    note(&bytes, position)?;
                }
            }
            Source::File { path, .. } => {
                let fail = super::file::fault(path);
                let mut reader = super::file::read(path)?;
                let mut position = 0;
                while let Some(checked) = reader.next_checked_raw() {
                    checked.map_err(&fail)?;
                    position += 1;
                    note(reader.record_bytes(), position).map_err(|source| {
                        SourceError::Record {
                            path: path.to_owned(),
                            source,
                        }
                    })?;
                }
            }
        }
        Ok(erased)
    }
}

/// A conversation whose key file in `dir` holds a key (not a tombstone).
fn first_live_key(dir: &Path) -> Option<ConversationId> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .find_map(|entry| {
            let name = entry.file_name();
            let id = name.to_str()?.parse::<ConversationId>().ok()?;
            (entry.metadata().ok()?.len() > 0).then_some(id)
        })
}

/// The conversation of `event`'s customer data if it was stored sealed (any
/// content but the plaintext era's).
fn sealed_era_conversation(event: &Event) -> Option<ConversationId> {
    fn sealed_era<T>(content: &Content<T>) -> bool {
        !content.is_legacy()
    }
    match event {
        Event::ConversationOpened(e) => sealed_era(&e.customer).then_some(e.conversation),
        Event::MessagePosted(e) => sealed_era(&e.body).then_some(e.conversation),
        Event::PrivateMessagePosted(e) => sealed_era(&e.body).then_some(e.conversation),
        _ => None,
    }
}

fn erase_content(event: &mut Event) {
    match event {
        Event::ConversationOpened(e) => e.customer = Content::Erased,
        Event::MessagePosted(e) => e.body = Content::Erased,
        Event::PrivateMessagePosted(e) => e.body = Content::Erased,
        _ => {}
    }
}
