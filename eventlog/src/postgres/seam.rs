//! What the blocking half of the seam ([`crate::Log`]) needs from a
//! [`PgEventLog`]: a runtime to block on, the open's replay pass, paged bulk
//! reads, verify, and the in-memory stream index.
//!
//! Runtime: a log opened through the seam gets a small runtime of its own
//! (two workers) that runs its writer, doorbell listener and connections, so
//! it works the same from a server's blocking thread, a test's runtime or a
//! plain command-line `main`. The seam's blocking calls block on that runtime
//! from the caller's thread, which must therefore be a blocking thread, never
//! an async task (as the seam's docs require).
//!
//! Stream index: [`crate::Log::stream_positions`] is synchronous (a desk
//! timeline reads it under the read models' lock), so each process keeps
//! every stream's positions in memory as sled does: loaded once by the open
//! (`(position, stream)` rows only), then fed in position order by the open's
//! replay and by every tail of this log (the desk's projector is one). It
//! covers at least what the read models applied; memory is the positions
//! (8 bytes each) plus one 17-byte key per stream.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;

use backchannel_domain::events::StreamId;
use tokio::runtime::{Handle, Runtime};

use super::{PAGE, PgEventLog, PgOptions, storage, stream_key, to_i64, to_u64};
use crate::chain::ChainCheck;
use crate::checkpoint::ResumePoint;
use crate::codec;
use crate::crypt::KeyWrap;
use crate::envelope::{Hash, RecordedEvent};
use crate::error::{Error, OpenError, ReplayError, StorageError};
use crate::import::ImportError;
use crate::keystore::{KeyStore, KeyStoreError};
use crate::verify::VerifyReport;

/// A replay's visitor, handed each event with the log's key store (if the
/// open was given a key wrap).
pub(crate) type KeyedVisit<'a> =
    dyn FnMut(RecordedEvent, Option<&KeyStore>) -> Result<(), ReplayError> + 'a;

/// Rows per query when loading the stream index.
const INDEX_PAGE: i64 = 10_000;

/// A runtime owned by a log; shut down (without waiting) with the log.
pub(crate) struct OwnedRuntime(Option<Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Every stream's positions, in position order, up to `upto` (contiguous).
#[derive(Default)]
pub(crate) struct StreamIndex {
    streams: HashMap<Vec<u8>, Vec<u64>>,
    upto: u64,
}

impl StreamIndex {
    fn add(&mut self, position: u64, key: Vec<u8>) {
        if position != self.upto + 1 {
            return;
        }
        self.streams.entry(key).or_default().push(position);
        self.upto = position;
    }

    pub(crate) fn positions(&self, stream: &StreamId, up_to: u64) -> Vec<u64> {
        self.streams
            .get(&stream_key(stream))
            .map(|positions| {
                positions
                    .iter()
                    .copied()
                    .take_while(|&p| p <= up_to)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn stats(&self) -> crate::index::IndexStats {
        let positions: u64 = self.streams.values().map(|p| p.len() as u64).sum();
        crate::index::IndexStats {
            streams: self.streams.len(),
            commands: 0,
            positions,
            approx_bytes: self.streams.len() * (17 + 48)
                + usize::try_from(positions)
                    .unwrap_or(usize::MAX)
                    .saturating_mul(8),
        }
    }
}

/// Adds `event` to `log`'s stream index if it is the next position.
pub(crate) fn index_event(log: &PgEventLog, event: &RecordedEvent) {
    let mut index = match log.shared.streams.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    index.add(event.envelope.position, stream_key(&event.envelope.stream));
}

/// The seam's blocking calls must come from a blocking thread (a
/// `spawn_blocking` task, a plain thread), never from an async task: tokio
/// has no public way to tell the two apart, and blocking on a runtime from
/// inside one panics. Every caller in the workspace complies (the server
/// opens and checkpoints on `spawn_blocking`, the replay tool has no runtime).
fn blocking_only() -> Result<(), StorageError> {
    Ok(())
}

fn runtime() -> Result<Runtime, StorageError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("backchannel-pg")
        .enable_all()
        .build()
        .map_err(StorageError::new)
}

fn open_storage(url: &str, source: StorageError) -> OpenError {
    OpenError::Storage {
        path: PathBuf::from(crate::StoreSpec::Postgres(url.to_owned()).to_string()),
        source,
    }
}

impl PgEventLog {
    /// Runs `future` to completion from a blocking thread, on the log's own
    /// runtime (or the caller's, for a log connected outside the seam).
    pub(crate) fn block<F: Future>(&self, future: F) -> Result<F::Output, Error> {
        blocking_only()?;
        let handle = match self.shared.runtime.get().and_then(|owned| owned.0.as_ref()) {
            Some(runtime) => runtime.handle().clone(),
            None => Handle::try_current().map_err(storage)?,
        };
        Ok(handle.block_on(future))
    }

    /// Connects (blocking) on a runtime of the log's own, and loads the
    /// stream index.
    pub(crate) fn open_blocking(url: &str, read_only: bool) -> Result<PgEventLog, OpenError> {
        blocking_only().map_err(|e| open_storage(url, e))?;
        let runtime = runtime().map_err(|e| open_storage(url, e))?;
        let log = runtime.block_on(async {
            match read_only {
                true => PgEventLog::connect_read_only(url, PgOptions::default()).await,
                false => PgEventLog::connect(url, PgOptions::default()).await,
            }
        })?;
        let _ = log.shared.runtime.set(OwnedRuntime(Some(runtime)));
        log.load_index()
            .map_err(|e| log.shared.db.open_error(into_storage(e)))?;
        Ok(log)
    }

    /// [`PgEventLog::open_blocking`], then checks `after` (if given: the
    /// record at its position must hash to its hash) and hands `visit` every
    /// event from `from` up to the head, checking the chain.
    /// With `wrap`, opens the log's key store first (loading every key at
    /// once) and hands it to `visit` with each event.
    pub(crate) fn open_visiting(
        url: &str,
        from: u64,
        after: Option<ResumePoint>,
        wrap: Option<&KeyWrap>,
        visit: &mut KeyedVisit<'_>,
    ) -> Result<(PgEventLog, Option<KeyStore>), OpenError> {
        let log = PgEventLog::open_blocking(url, false)?;
        let keys = match wrap {
            None => None,
            Some(wrap) => {
                let opened = log
                    .block(async {
                        let keys = KeyStore::from(log.key_store(wrap.clone()).await?);
                        keys.preload().await?;
                        Ok::<_, KeyStoreError>(keys)
                    })
                    .map_err(|e| log.shared.db.open_error(StorageError::new(e)))?;
                Some(opened.map_err(|e| log.shared.db.open_error(StorageError::new(e)))?)
            }
        };
        let target = PathBuf::from(log.target());
        let fail = |e: Error| log.shared.db.open_failure(e);
        let (head, _) = log
            .block(log.committed_head())
            .and_then(|r| r)
            .map_err(fail)?;
        let from = from.max(1);
        let mut previous: Hash = [0; 32];
        if let Some(after) = after.filter(|after| after.position > 0) {
            if after.position > head {
                return Err(OpenError::CheckpointAhead {
                    path: target,
                    checkpoint: after.position,
                    log_end: head,
                });
            }
            let record = log.raw_record(after.position).map_err(fail)?;
            previous = codec::record_hash(&record);
            if previous != after.hash {
                return Err(OpenError::DoesNotContinue {
                    path: target,
                    position: after.position,
                });
            }
        } else if from > 1 && from <= head {
            previous = codec::record_hash(&log.raw_record(from - 1).map_err(fail)?);
        }
        let mut check = ChainCheck::resuming(from, previous);
        log.each_record(from, head, fail, |position, record| {
            let event = check.check(&record).map_err(fail)?;
            visit(event, keys.as_ref()).map_err(|source| OpenError::Replay {
                path: target.clone(),
                position,
                source,
            })
        })?;
        Ok((log, keys))
    }

    fn load_index(&self) -> Result<(), Error> {
        let head = self.head();
        let mut next = 1;
        while next <= head {
            let rows = self.block(async {
                let reader = self.reader().await?;
                reader
                    .client
                    .query(
                        "SELECT position, stream FROM backchannel.events WHERE position >= $1 \
                         AND position <= $2 ORDER BY position LIMIT $3",
                        &[&to_i64(next)?, &to_i64(head)?, &INDEX_PAGE],
                    )
                    .await
                    .map_err(storage)
            })??;
            if rows.is_empty() {
                break;
            }
            let mut index = match self.shared.streams.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            for row in rows {
                let position = to_u64(row.try_get::<_, i64>(0).map_err(storage)?)?;
                let key: Vec<u8> = row.try_get(1).map_err(storage)?;
                if position != next {
                    return Err(Error::Broken {
                        position: next,
                        problem: format!("the log jumps to position {position}"),
                    });
                }
                index.add(position, key);
                next += 1;
            }
        }
        Ok(())
    }

    /// Hands `each` every stored record from `from` to `head`, in order, read
    /// in pages (blocking); a log that ends before `head` is
    /// [`Error::Broken`]. `fail` turns a read's error into the caller's.
    fn each_record<E>(
        &self,
        from: u64,
        head: u64,
        fail: impl Fn(Error) -> E,
        mut each: impl FnMut(u64, Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut next = from;
        while next <= head {
            let want = usize::try_from((head - next + 1).min(PAGE as u64)).unwrap_or(1);
            let page = self.page(next, want).map_err(&fail)?;
            if page.is_empty() {
                return Err(fail(Error::Broken {
                    position: next,
                    problem: "the log ends before its committed head".to_owned(),
                }));
            }
            for (position, record) in page {
                each(position, record)?;
                next = position + 1;
            }
        }
        Ok(())
    }

    /// Up to `limit` records from `from` (blocking), checked contiguous.
    pub(crate) fn page(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, Error> {
        self.block(self.raw_records(from, limit))?
    }

    /// The stored bytes of the committed record at `position` (blocking).
    pub(crate) fn raw_record(&self, position: u64) -> Result<Vec<u8>, Error> {
        let missing = || crate::chunks::missing(position);
        if position == 0 || position > self.head() {
            return Err(missing());
        }
        let page = self.page(position, 1)?;
        page.into_iter()
            .next()
            .filter(|(found, _)| *found == position)
            .map(|(_, record)| record)
            .ok_or_else(missing)
    }

    /// The positions of `stream` up to `up_to` (never past the head), from
    /// the in-memory stream index.
    pub(crate) fn stream_positions(&self, stream: &StreamId, up_to: u64) -> Vec<u64> {
        let up_to = up_to.min(self.head());
        match self.shared.streams.lock() {
            Ok(guard) => guard.positions(stream, up_to),
            Err(poisoned) => poisoned.into_inner().positions(stream, up_to),
        }
    }

    pub(crate) fn index_stats(&self) -> crate::index::IndexStats {
        match self.shared.streams.lock() {
            Ok(guard) => guard.stats(),
            Err(poisoned) => poisoned.into_inner().stats(),
        }
    }

    /// Re-reads the log from position 1 to the committed head as stored
    /// (blocking) and checks the chain ([`ChainCheck`]) and that the last
    /// record hashes to the head's recorded hash.
    pub(crate) fn verify_blocking(
        &self,
        checked: &mut dyn FnMut(u64),
    ) -> Result<VerifyReport, Error> {
        let (head, hash) = self.block(self.committed_head())??;
        let mut check = ChainCheck::new();
        self.each_record(
            1,
            head,
            |e| e,
            |position, record| {
                check.check(&record)?;
                checked(position);
                Ok(())
            },
        )?;
        if check.head_hash() != hash {
            return Err(Error::Broken {
                position: head,
                problem: "the record at the committed head does not have the recorded hash"
                    .to_owned(),
            });
        }
        Ok(VerifyReport {
            events: check.events(),
            streams: check.streams(),
            head_hash: check.head_hash(),
        })
    }

    /// Imports `records` into the empty log at `url` (blocking), on a
    /// runtime of the log's own.
    pub(crate) fn import_blocking<I, E>(url: &str, records: I) -> Result<PgEventLog, ImportError>
    where
        I: IntoIterator<Item = Result<Vec<u8>, E>>,
        E: std::error::Error + Send + Sync + 'static,
    {
        blocking_only()?;
        let runtime = runtime()?;
        let log = runtime.block_on(PgEventLog::import(url, PgOptions::default(), records))?;
        let _ = log.shared.runtime.set(OwnedRuntime(Some(runtime)));
        log.load_index()
            .map_err(|e| ImportError::Storage(into_storage(e)))?;
        Ok(log)
    }

    /// The committed head position of the log at `url`, read on a read-only
    /// connection (blocking); `None` if it cannot be read.
    pub(crate) fn committed_head_at(url: &str) -> Option<u64> {
        blocking_only().ok()?;
        let runtime = runtime().ok()?;
        runtime.block_on(async {
            let log = PgEventLog::connect_read_only(url, PgOptions::default())
                .await
                .ok()?;
            log.committed_head().await.ok().map(|(head, _)| head)
        })
    }

    /// Stops the writer (blocking) after every queued append is answered.
    pub(crate) fn close_blocking(&self) -> Result<(), Error> {
        self.block(self.close())
    }
}

fn into_storage(err: Error) -> StorageError {
    match err {
        Error::Storage(source) => source,
        other => StorageError::new(std::io::Error::other(other.to_string())),
    }
}
