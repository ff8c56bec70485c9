//! One error type per boundary: opening a store, appending, and reading.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use backchannel_domain::events::StreamId;

use crate::codec::CodecError;
use crate::envelope::ExpectedVersion;

/// A failure of the storage underneath (sled or the file system).
///
/// Opaque on purpose: callers must not depend on the engine. Cheap to clone, so
/// one failed group commit can report the same cause to every waiter.
#[derive(Clone)]
pub struct StorageError(Arc<dyn std::error::Error + Send + Sync>);

impl StorageError {
    pub(crate) fn new(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(err))
    }
}

impl fmt::Debug for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl From<sled::Error> for StorageError {
    fn from(err: sled::Error) -> Self {
        Self::new(err)
    }
}

impl From<std::io::Error> for StorageError {
    fn from(err: std::io::Error) -> Self {
        Self::new(err)
    }
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "{path} is not a Backchannel store: it is a non-empty directory without a \
         BACKCHANNEL_STORE marker file; refusing to touch it"
    )]
    NotAStore { path: PathBuf },
    #[error("{path} exists but is not a directory")]
    NotADirectory { path: PathBuf },
    #[error(
        "the store at {path} is in use by another process or another open handle; \
         stop it or close the handle first"
    )]
    StoreInUse { path: PathBuf },
    #[error("the store at {path} has format {found:?}, this build reads format {supported}")]
    UnsupportedFormat {
        path: PathBuf,
        found: String,
        supported: u32,
    },
    #[error("the store at {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot access the store at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the storage engine failed to open {path}: {source}")]
    Storage {
        path: PathBuf,
        #[source]
        source: StorageError,
    },
    /// [`crate::SledEventLog::open_resuming`]: the log's record at the
    /// checkpoint's position is not the one the checkpoint was taken after
    /// (another store's checkpoint). Nothing was visited.
    #[error(
        "the log at {path} does not continue the checkpoint: it does not hold the record \
         the checkpoint was taken after (position {position})"
    )]
    DoesNotContinue { path: PathBuf, position: u64 },
    /// The log is not the one that was acknowledged: it ends before the
    /// committed head the store recorded (`HEAD`), or its record at that
    /// position hashes otherwise (media corruption, a lost file, a restored
    /// old copy of the sled files). Refused rather than served shorter or
    /// different.
    #[error(
        "the log at {path} is not the log that was acknowledged: {problem} (committed head: \
         position {head}; the log ends at position {log_end}); refusing to open it. Restore \
         the store from a backup or an export whose head is at least position {head}"
    )]
    HeadMismatch {
        path: PathBuf,
        /// The committed head's position, as recorded.
        head: u64,
        /// Where the log found in sled ends.
        log_end: u64,
        problem: String,
    },
    /// [`crate::SledEventLog::open_resuming`]: the checkpoint was taken at a
    /// position past the log's end. The checkpoint is evidence the log was
    /// acknowledged that far, so this is a fault to report, never a reason
    /// to rebuild from an earlier position.
    #[error(
        "the read-model checkpoint of {path} was taken at position {checkpoint}, but the log \
         ends at position {log_end}: acknowledged events are missing from the log; refusing \
         to open it (and to rewind the read models)"
    )]
    CheckpointAhead {
        path: PathBuf,
        checkpoint: u64,
        log_end: u64,
    },
    /// A store string that names no store (see [`crate::StoreSpec::parse`]).
    #[error("{spec:?} names no store: {problem}")]
    BadStoreSpec { spec: String, problem: String },
    /// The store names an engine this build cannot open yet.
    #[error("the store {spec} is a PostgreSQL store: PostgreSQL store not built yet")]
    EngineNotBuilt { spec: String },
    /// What [`crate::SledEventLog::open_replaying`]'s visitor refused.
    #[error("replaying the store at {path} stopped at position {position}: {source}")]
    Replay {
        path: PathBuf,
        position: u64,
        #[source]
        source: ReplayError,
    },
}

/// Why a replay visitor refused an event.
pub type ReplayError = Box<dyn std::error::Error + Send + Sync>;

/// Why a read (or a verification) failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("the record at position {position} cannot be decoded: {source}")]
    Corrupt {
        position: u64,
        #[source]
        source: CodecError,
    },
    #[error("the event log is broken at position {position}: {problem}")]
    Broken { position: u64, problem: String },
    #[error("storage error: {0}")]
    Storage(#[from] StorageError),
}

impl From<sled::Error> for Error {
    fn from(err: sled::Error) -> Self {
        Error::Storage(err.into())
    }
}

/// Why an append appended nothing.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    #[error("{stream:?} is at version {current}, the command expected {expected}")]
    WrongExpectedVersion {
        stream: StreamId,
        expected: ExpectedVersion,
        /// The stream's current version (0: the stream does not exist).
        current: u64,
    },
    #[error("an append needs at least one event")]
    NoEvents,
    #[error("event {index} belongs to {found:?}, not to {expected:?} which is being appended to")]
    WrongStream {
        index: usize,
        expected: StreamId,
        found: StreamId,
    },
    #[error("an append may hold at most {max} events, this one has {count}")]
    TooManyEvents { count: usize, max: usize },
    #[error("an append may name at most {max} streams, this one names {count}")]
    TooManyStreams { count: usize, max: usize },
    #[error("{stream:?} has two expected versions in one append")]
    DuplicateStream { stream: StreamId },
    #[error("event {index} cannot be stored: {source}")]
    Encode {
        index: usize,
        #[source]
        source: CodecError,
    },
    #[error(
        "the commit failed, nothing was acknowledged: {0}; the log has stopped, reopen the store"
    )]
    Storage(#[source] StorageError),
    #[error("the event log is closed (or its writer stopped after a storage error)")]
    Closed,
    /// The append holds customer data in plain text or an erasure, and this
    /// log was opened without its key store.
    #[error("customer data must be sealed, and this log was opened without its key store")]
    NoKeyStore,
    /// The key store could not make, read or destroy a conversation's data
    /// key; nothing was appended.
    #[error("the key store failed, nothing was appended: {0}")]
    Keys(#[source] StorageError),
    /// The commit may or may not have happened (PostgreSQL: the connection
    /// dropped at commit, or the wait for the synchronous standby was
    /// cancelled) and the writer could not find out. Retry with the same
    /// command id: a committed append is then answered as a duplicate.
    #[error("the outcome of the commit is unknown: {0}; retry the append with the same command id")]
    OutcomeUnknown(#[source] StorageError),
}
