//! [`PgEventLog`]: the event log on PostgreSQL (SPEC section 11), for several
//! API nodes over one database.
//!
//! The records are the bytes sled stores ([`codec`](crate::codec), the
//! blake3 chain of `chain.rs`), so an export from either engine imports into
//! the other and verifies.
//!
//! Schema (`backchannel`, created idempotently by [`PgEventLog::connect`] in
//! one transaction under an advisory lock):
//! - `format(id = 1, format)`: the layout version this build reads ([`PG_FORMAT`]).
//! - `events(position bigint primary key, stream bytea, version bigint,
//!   command_id uuid, record bytea)`, unique `(stream, version)`; `stream` is
//!   the stream kind byte followed by its 16 id bytes.
//! - `streams(stream primary key, version)`: each stream's current version.
//! - `commands(command_id primary key, first_position, last_position,
//!   stream_version)`: each committed append's outcome, for dedupe.
//! - `log_head(id = 1, position, hash)`: the committed head; every append
//!   transaction locks it first (`SELECT … FOR UPDATE`), so appends from every
//!   node are serialized: positions are gapless in commit order and a rolled
//!   back batch leaves no hole.
//!
//! Layout: `db` (how to reach the database, one connection), `schema` (the
//! schema, the checks of an open, [`PgEventLog::connect`]), `read` (the read
//! connection, reads, export), `import`, `doorbell` (the `LISTEN`er that
//! raises the known head), `rows` (values as columns store them), `tail`:
//! [`PgTail`], `seam` (what the blocking seam needs), `keys`: [`PgKeyStore`],
//! and `writer`, the per-process group-commit task (one connection, one
//! transaction per group: one pipelined burst on the head and stream
//! versions it assumes, checked under the lock, sent behind the groups still
//! committing, else two round trips after reading them under the lock; and
//! how an unknown commit outcome is settled). This module: [`PgEventLog`]'s
//! shared state, appends and closing.
//!
//! Connections: the writer's, one for reads (tokio-postgres pipelines
//! concurrent queries over it), and one that `LISTEN`s for the doorbell
//! (`pg_notify` sent inside each append, carrying the new head). Each sets
//! `idle_in_transaction_session_timeout` and TCP keepalives, so a dead writer
//! cannot hold the head lock. No TLS yet (`NoTls`).

mod db;
mod doorbell;
mod import;
mod keys;
mod read;
mod rows;
mod schema;
pub(crate) mod seam;
mod tail;
mod writer;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use backchannel_domain::events::{Event, StreamId};
use tokio::sync::{mpsc, oneshot, watch};

use crate::envelope::{AppendMeta, AppendOutcome, ExpectedVersion};
use crate::error::AppendError;
use crate::log::{check_append, check_one_stream};

// What the submodules (the writer among them) reach as `super::…`.
pub(crate) use db::{Db, describe};
pub(crate) use doorbell::bump;
pub use keys::PgKeyStore;
pub(crate) use read::PAGE;
use read::ReadConn;
pub(crate) use rows::{command_uuid, storage, stream_key, to_hash, to_i64, to_u64};
pub use schema::PG_FORMAT;
pub use tail::PgTail;

/// Tuning of a [`PgEventLog`]; [`PgOptions::default`] suits production.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// How often a tail looks for new records when no doorbell rang.
    pub poll_interval: Duration,
    /// The server ends a session idle inside a transaction this long (so a
    /// stuck writer releases the head lock).
    pub idle_in_transaction_timeout: Duration,
    /// How long the writer tries to settle a commit whose outcome it did not
    /// see, before answering [`AppendError::OutcomeUnknown`].
    pub resolve_timeout: Duration,
    /// TCP keepalive idle time of every connection.
    pub keepalive_idle: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            poll_interval: Duration::from_millis(200),
            idle_in_transaction_timeout: Duration::from_secs(10),
            resolve_timeout: Duration::from_secs(30),
            keepalive_idle: Duration::from_secs(10),
        }
    }
}

/// The event log in a PostgreSQL database. Cheap to clone; clones share one
/// writer task, one read connection and one doorbell listener, which stop when
/// the last clone and tail are dropped. Must be used inside a tokio runtime.
#[derive(Clone)]
pub struct PgEventLog {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) db: Db,
    /// `None` once closed, and always for a read-only log (no writer).
    requests: Mutex<Option<mpsc::UnboundedSender<writer::AppendRequest>>>,
    /// The writer task, taken by `close`.
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Set by `close`: this handle's tails end once caught up.
    pub(crate) closed: std::sync::atomic::AtomicBool,
    /// Each stream's positions, fed in position order by whatever reads the
    /// log through this handle (the open's pass, tails): see `seam.rs`.
    pub(crate) streams: Mutex<seam::StreamIndex>,
    /// The key exports and checkpoints authenticate the head with.
    pub(crate) head_key: std::sync::OnceLock<crate::mac::HeadKey>,
    /// The last committed position this process knows of (own commits,
    /// doorbells, tails). Never lowered.
    pub(crate) known: Arc<watch::Sender<u64>>,
    reader: Mutex<Option<Arc<ReadConn>>>,
    /// The writer's counters: groups committed, events, commits.
    counters: Arc<writer::Counters>,
    /// Dropped with the log: stops the doorbell listener.
    _stop_listener: oneshot::Sender<()>,
    /// The runtime the seam ([`crate::Log`]) started for this log, if any;
    /// declared last so it stops after everything else.
    pub(crate) runtime: std::sync::OnceLock<seam::OwnedRuntime>,
}

impl PgEventLog {
    fn start(db: Db, reader: ReadConn, head: u64, writable: bool) -> PgEventLog {
        let (known, _) = watch::channel(head);
        let known = Arc::new(known);
        let counters = Arc::new(writer::Counters::default());
        let (requests, writer) = if writable {
            let (requests, receiver) = mpsc::unbounded_channel();
            let writer = tokio::spawn(writer::run(
                db.clone(),
                known.clone(),
                receiver,
                counters.clone(),
            ));
            (Some(requests), Some(writer))
        } else {
            (None, None)
        };
        let (stop_listener, stopped) = oneshot::channel();
        tokio::spawn(doorbell::listen(db.clone(), known.clone(), stopped));
        PgEventLog {
            shared: Arc::new(Shared {
                db,
                requests: Mutex::new(requests),
                writer: Mutex::new(writer),
                closed: std::sync::atomic::AtomicBool::new(false),
                streams: Mutex::new(seam::StreamIndex::default()),
                head_key: std::sync::OnceLock::new(),
                known,
                reader: Mutex::new(Some(Arc::new(reader))),
                counters,
                _stop_listener: stop_listener,
                runtime: std::sync::OnceLock::new(),
            }),
        }
    }

    /// How this process's writer grouped appends since connect (`syncs`
    /// counts commits; events per group is the batch size a bare-insert
    /// ceiling is measured at).
    pub fn commit_stats(&self) -> crate::CommitStats {
        self.shared.counters.snapshot()
    }

    /// The database this log is in, without credentials.
    pub fn target(&self) -> &str {
        &self.shared.db.target
    }

    /// Appends `events` to `stream` atomically and durably: the one-stream
    /// case of [`PgEventLog::append_to_streams`].
    pub async fn append(
        &self,
        stream: StreamId,
        expected: ExpectedVersion,
        events: Vec<Event>,
        meta: AppendMeta,
    ) -> Result<AppendOutcome, AppendError> {
        check_one_stream(&stream, &events)?;
        self.append_to_streams(vec![(stream, expected)], events, meta)
            .await
    }

    /// Appends events of several streams atomically, as
    /// [`crate::SledEventLog::append_to_streams`] does: a command id seen
    /// before (on any node) appends nothing and returns the first outcome,
    /// then every expectation is checked under the head lock.
    ///
    /// Besides sled's errors: [`AppendError::Storage`] means nothing was
    /// committed (retry freely); [`AppendError::OutcomeUnknown`] means the
    /// writer could not learn whether the commit happened: retry with the
    /// same command id. Dropping the future does not cancel the append.
    pub async fn append_to_streams(
        &self,
        expected: Vec<(StreamId, ExpectedVersion)>,
        events: Vec<Event>,
        meta: AppendMeta,
    ) -> Result<AppendOutcome, AppendError> {
        check_append(&expected, &events)?;
        let (reply, answer) = oneshot::channel();
        let sent = match self.shared.requests.lock() {
            Ok(guard) => guard.as_ref().map(|requests| {
                requests.send(writer::AppendRequest {
                    expected,
                    events,
                    meta,
                    reply,
                })
            }),
            Err(_) => None,
        };
        match sent {
            Some(Ok(())) => {}
            _ => return Err(AppendError::Closed),
        }
        answer.await.map_err(|_| AppendError::Closed)?
    }

    /// Stops the writer once every append queued before this call has its
    /// answer; later appends (through any clone) fail with
    /// [`AppendError::Closed`]. Reads keep working.
    pub async fn close(&self) {
        let requests = match self.shared.requests.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        drop(requests);
        let writer = match self.shared.writer.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(writer) = writer {
            // The writer ends when its queue is drained; a panic there was
            // already reported by the runtime.
            let _ = writer.await;
        }
        self.shared
            .closed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.shared.known.send_modify(|_| {});
    }

    /// The last committed position this process knows of: its own commits
    /// and every doorbell heard (0 for an empty log).
    pub fn head(&self) -> u64 {
        *self.shared.known.borrow()
    }

    /// Follows the log from `from_position`: see [`PgTail`].
    pub fn tail(&self, from_position: u64) -> PgTail {
        PgTail::new(self.clone(), from_position.max(1))
    }
}
