//! Opening a [`Log`]: creating or opening it, with a catch-up replay or from
//! a checkpoint, read only, by import, and reading how far an open will
//! replay.

use std::path::{Path, PathBuf};

use crate::checkpoint::ResumePoint;
use crate::crypt::KeyWrap;
use crate::envelope::RecordedEvent;
use crate::error::{OpenError, ReplayError, StorageError};
use crate::import::ImportError;
use crate::keystore::{DirKeyStore, KeyStore, KeyStoreError};
use crate::log::SledEventLog;
use crate::postgres::PgEventLog;
use crate::snapshot::CopyProgress;

use super::scan::open_recorded_blocking;
use super::{Engine, Log, StoreSpec};

impl Log {
    /// Opens (creating if needed) the log `spec` names.
    pub fn open(spec: &StoreSpec) -> Result<Log, OpenError> {
        match spec {
            StoreSpec::Sled(path) => SledEventLog::open(path).map(Log::from),
            StoreSpec::Postgres(url) => PgEventLog::open_blocking(url, false).map(Log::from),
        }
    }

    /// Opens the log and hands `visit` every event from `from_position` on, in
    /// order, before any append can happen (a server's catch-up). With
    /// `keys`, the log opens its key store (see [`Log::with_keys`]) first, and
    /// `visit` gets customer data opened. Blocking.
    pub fn open_replaying<F, E>(
        spec: &StoreSpec,
        from_position: u64,
        keys: Option<&KeyWrap>,
        visit: F,
    ) -> Result<Log, OpenError>
    where
        F: FnMut(RecordedEvent) -> Result<(), E>,
        E: Into<ReplayError>,
    {
        Log::open_visiting(spec, from_position, None, keys, visit)
    }

    /// [`Log::open_replaying`] from a checkpoint: first checks that the record
    /// at `after.position` hashes to `after.hash` ([`OpenError::DoesNotContinue`]
    /// if not, [`OpenError::CheckpointAhead`] if the log ends before it), then
    /// visits every event after it. Blocking.
    pub fn open_resuming<F, E>(
        spec: &StoreSpec,
        after: ResumePoint,
        keys: Option<&KeyWrap>,
        visit: F,
    ) -> Result<Log, OpenError>
    where
        F: FnMut(RecordedEvent) -> Result<(), E>,
        E: Into<ReplayError>,
    {
        Log::open_visiting(
            spec,
            after.position.saturating_add(1),
            Some(after),
            keys,
            visit,
        )
    }

    fn open_visiting<F, E>(
        spec: &StoreSpec,
        from: u64,
        after: Option<ResumePoint>,
        wrap: Option<&KeyWrap>,
        mut visit: F,
    ) -> Result<Log, OpenError>
    where
        F: FnMut(RecordedEvent) -> Result<(), E>,
        E: Into<ReplayError>,
    {
        let keys_failed = |path: PathBuf| {
            move |err: KeyStoreError| OpenError::Storage {
                path,
                source: StorageError::new(err),
            }
        };
        match spec {
            StoreSpec::Sled(path) => {
                // The key directory is made only once the store exists (a
                // fresh directory must be empty for the store to be made in
                // it): on the first event, or after the open.
                let mut keys: Option<KeyStore> = None;
                let open_keys = |keys: &mut Option<KeyStore>| -> Result<(), KeyStoreError> {
                    if let (None, Some(wrap)) = (&keys, wrap) {
                        *keys = Some(DirKeyStore::open(path, wrap.clone())?.into());
                    }
                    Ok(())
                };
                let mut opened = |mut recorded: RecordedEvent| -> Result<(), ReplayError> {
                    open_keys(&mut keys).map_err(|e| -> ReplayError { Box::new(e) })?;
                    if let Some(keys) = &keys {
                        open_recorded_blocking(keys, &mut recorded)
                            .map_err(|e| -> ReplayError { Box::new(e) })?;
                    }
                    visit(recorded).map_err(Into::into)
                };
                let log = match after {
                    Some(after) => SledEventLog::open_resuming(path, after, &mut opened)?,
                    None => SledEventLog::open_replaying(path, from, &mut opened)?,
                };
                open_keys(&mut keys).map_err(keys_failed(path.clone()))?;
                Ok(Log {
                    engine: Engine::Sled(log),
                    keys,
                })
            }
            StoreSpec::Postgres(url) => {
                let (log, keys) = PgEventLog::open_visiting(
                    url,
                    from,
                    after,
                    wrap,
                    &mut |mut recorded, keys| {
                        if let Some(keys) = keys {
                            open_recorded_blocking(keys, &mut recorded)
                                .map_err(|e| -> ReplayError { Box::new(e) })?;
                        }
                        visit(recorded).map_err(Into::into)
                    },
                )?;
                Ok(Log {
                    engine: Engine::Postgres(log),
                    keys,
                })
            }
        }
    }

    /// Opens the log for reading without ever writing to it (an auditor's
    /// tool on a stopped server's store). For sled: copies the store into
    /// `scratch` (a missing or empty directory) and opens the copy, reporting
    /// the copy's progress. For PostgreSQL: connects with read-only sessions
    /// (`default_transaction_read_only = on`) and no writer, so appends fail
    /// and the server refuses any write; `scratch` is not used. Blocking.
    pub fn open_read_only(
        spec: &StoreSpec,
        scratch: &Path,
        progress: &mut dyn FnMut(CopyProgress),
    ) -> Result<Log, OpenError> {
        match spec {
            StoreSpec::Sled(path) => {
                SledEventLog::open_snapshot_with_progress(path, scratch, progress).map(Log::from)
            }
            StoreSpec::Postgres(url) => PgEventLog::open_blocking(url, true).map(Log::from),
        }
    }

    /// Creates the log `spec` names (it must hold no events) and writes
    /// `records` (stored record bytes, from position 1, e.g. an export) into
    /// it verbatim, checked. On a bad record nothing stays written. Blocking.
    pub fn import<I, E>(spec: &StoreSpec, records: I) -> Result<Log, ImportError>
    where
        I: IntoIterator<Item = Result<Vec<u8>, E>>,
        E: std::error::Error + Send + Sync + 'static,
    {
        match spec {
            StoreSpec::Sled(path) => SledEventLog::import(path, records).map(Log::from),
            StoreSpec::Postgres(url) => PgEventLog::import_blocking(url, records).map(Log::from),
        }
    }

    /// How far an open will replay at least, read without opening the log
    /// (`None` if unknown). For progress reports only.
    pub fn committed_head(spec: &StoreSpec) -> Option<u64> {
        match spec {
            StoreSpec::Sled(path) => SledEventLog::committed_head(path),
            StoreSpec::Postgres(url) => PgEventLog::committed_head_at(url),
        }
    }
}
