//! [`PgEventLog`]: the event log on PostgreSQL (SPEC section 11), for several
//! API nodes over one database.
//!
//! The records are the bytes sled stores ([`codec`], the blake3 chain of
//! `chain.rs`), so an export from either engine imports into the other and
//! verifies.
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
//! Layout: `writer`, the per-process group-commit task (one connection, one
//! transaction per group: one pipelined round trip on the head and stream
//! versions it assumes, checked under the lock, else two after reading them
//! under the lock; and how an unknown commit outcome is settled); `tail`: [`PgTail`]; this module: connecting, the schema, reads,
//! the doorbell listener, export and import.
//!
//! Connections: the writer's, one for reads (tokio-postgres pipelines
//! concurrent queries over it), and one that `LISTEN`s for the doorbell
//! (`pg_notify` sent inside each append, carrying the new head). Each sets
//! `idle_in_transaction_session_timeout` and TCP keepalives, so a dead writer
//! cannot hold the head lock. No TLS yet (`NoTls`).

mod keys;
pub(crate) mod seam;
mod tail;
mod writer;

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backchannel_domain::events::{Event, StreamId};
use backchannel_domain::ids::CommandId;
use futures_util::future::poll_fn;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::error::DbError;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls, Notification, Statement};

use crate::chain::ChainCheck;
use crate::codec;
use crate::envelope::{AppendMeta, AppendOutcome, ExpectedVersion, Hash, RecordedEvent};
use crate::error::{AppendError, Error, OpenError, StorageError};
use crate::import::ImportError;
use crate::log::{check_append, check_one_stream, decode_at};
use crate::portable::{FileSummary, PortableError, PortableWriter};

pub use keys::PgKeyStore;
pub use tail::PgTail;

/// The layout version of the `backchannel` schema this build reads and writes.
pub const PG_FORMAT: i32 = 1;
/// The channel of the doorbell: its payload is the new head position.
pub(crate) const CHANNEL: &str = "backchannel_log";
/// Records per page when reading the whole log (reads, tails, export).
const PAGE: i64 = 1024;
/// Records per statement in an import.
const IMPORT_BATCH: usize = 1000;

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
    requests: Mutex<Option<mpsc::UnboundedSender<writer::PgAppend>>>,
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

/// How to reach the database.
#[derive(Clone)]
pub(crate) struct Db {
    pub(crate) config: Config,
    pub(crate) options: PgOptions,
    /// The target for messages, without credentials.
    pub(crate) target: String,
}

/// A connection whose notices (and notifications, if asked) are forwarded.
pub(crate) struct Conn {
    pub(crate) client: Client,
    pub(crate) notices: mpsc::UnboundedReceiver<DbError>,
}

impl Db {
    fn new(url: &str, options: PgOptions) -> Result<Db, StorageError> {
        Db::with_config(url.parse().map_err(StorageError::new)?, options)
    }

    /// Every session of this `Db` starts read only
    /// (`default_transaction_read_only = on`): the server refuses any write.
    fn read_only(url: &str, options: PgOptions) -> Result<Db, StorageError> {
        let mut config: Config = url.parse().map_err(StorageError::new)?;
        let mut session = config.get_options().unwrap_or("").to_owned();
        session.push_str(" -c default_transaction_read_only=on");
        config.options(session.trim());
        Db::with_config(config, options)
    }

    fn with_config(mut config: Config, options: PgOptions) -> Result<Db, StorageError> {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config
            .keepalives(true)
            .keepalives_idle(options.keepalive_idle)
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3)
            .application_name("backchannel");
        let target = describe(&config);
        Ok(Db {
            config,
            options,
            target,
        })
    }

    pub(crate) async fn connect(
        &self,
        notifications: Option<mpsc::UnboundedSender<Notification>>,
    ) -> Result<Conn, StorageError> {
        let (client, mut connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(StorageError::new)?;
        let (notice_tx, notices) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notice(notice))) => {
                        let _ = notice_tx.send(notice);
                    }
                    Some(Ok(AsyncMessage::Notification(note))) => {
                        if let Some(tx) = &notifications {
                            let _ = tx.send(note);
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(err)) => {
                        tracing::debug!(error = %err, "a PostgreSQL connection ended");
                        break;
                    }
                    None => break,
                }
            }
        });
        let millis = self.options.idle_in_transaction_timeout.as_millis().max(1);
        client
            .batch_execute(&format!(
                "SET idle_in_transaction_session_timeout = {millis}"
            ))
            .await
            .map_err(StorageError::new)?;
        Ok(Conn { client, notices })
    }

    fn open_error(&self, source: StorageError) -> OpenError {
        OpenError::Storage {
            path: PathBuf::from(&self.target),
            source,
        }
    }
}

/// `postgres://user@host:port[,host:port…]/dbname`, never the password.
pub(crate) fn describe(config: &Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let name = match host {
                tokio_postgres::config::Host::Tcp(host) => host.clone(),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            };
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            format!("{name}:{port}")
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "localhost:5432".to_owned()
    } else {
        hosts.join(",")
    };
    format!(
        "postgres://{}@{hosts}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

/// The read connection and its prepared statements.
pub(crate) struct ReadConn {
    client: Client,
    read_all: Statement,
    read_stream: Statement,
    command: Statement,
    head: Statement,
}

impl ReadConn {
    async fn new(db: &Db) -> Result<ReadConn, StorageError> {
        let conn = db.connect(None).await?;
        let client = conn.client;
        let prepare = |sql: &'static str| {
            let client = &client;
            async move { client.prepare(sql).await.map_err(StorageError::new) }
        };
        Ok(ReadConn {
            read_all: prepare(
                "SELECT position, record FROM backchannel.events WHERE position >= $1 \
                 ORDER BY position LIMIT $2",
            )
            .await?,
            read_stream: prepare(
                "SELECT position, record FROM backchannel.events WHERE stream = $1 \
                 AND version >= $2 ORDER BY version",
            )
            .await?,
            command: prepare(
                "SELECT first_position, last_position, stream_version FROM \
                 backchannel.commands WHERE command_id = $1",
            )
            .await?,
            head: prepare("SELECT position, hash FROM backchannel.log_head WHERE id = 1").await?,
            client,
        })
    }

    /// Up to `limit` (position, record) rows from `from` on, in order.
    pub(crate) async fn page(&self, from: u64, limit: i64) -> Result<Vec<(u64, Vec<u8>)>, Error> {
        let rows = self
            .client
            .query(&self.read_all, &[&to_i64(from)?, &limit])
            .await
            .map_err(storage)?;
        rows.iter()
            .map(|row| {
                let position: i64 = row.try_get(0).map_err(storage)?;
                let record: Vec<u8> = row.try_get(1).map_err(storage)?;
                Ok((to_u64(position)?, record))
            })
            .collect()
    }
}

pub(crate) fn storage(err: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Storage(StorageError::new(err))
}

fn other(message: String) -> StorageError {
    StorageError::new(std::io::Error::other(message))
}

pub(crate) fn to_i64(value: u64) -> Result<i64, Error> {
    i64::try_from(value).map_err(|_| Error::Storage(other(format!("{value} is out of range"))))
}

pub(crate) fn to_u64(value: i64) -> Result<u64, Error> {
    u64::try_from(value).map_err(|_| Error::Storage(other(format!("{value} is out of range"))))
}

pub(crate) fn to_hash(bytes: &[u8]) -> Result<Hash, Error> {
    bytes
        .try_into()
        .map_err(|_| Error::Storage(other("a stored hash is not 32 bytes".to_owned())))
}

/// The 17-byte key of a stream: its kind byte, then its id.
pub(crate) fn stream_key(stream: &StreamId) -> Vec<u8> {
    let (kind, id) = codec::stream_parts(stream);
    let mut key = Vec::with_capacity(17);
    key.push(kind);
    key.extend_from_slice(id);
    key
}

pub(crate) fn command_uuid(command: CommandId) -> uuid::Uuid {
    uuid::Uuid::from_bytes(*command.as_bytes())
}

/// Raises `known` to `position` (never lowers it).
pub(crate) fn bump(known: &watch::Sender<u64>, position: u64) {
    known.send_if_modified(|head| {
        if position > *head {
            *head = position;
            true
        } else {
            false
        }
    });
}

const SCHEMA: &str = "
SELECT pg_advisory_xact_lock(7291044403716513);
CREATE SCHEMA IF NOT EXISTS backchannel;
CREATE TABLE IF NOT EXISTS backchannel.format (
    id int PRIMARY KEY CHECK (id = 1),
    format int NOT NULL
);
CREATE TABLE IF NOT EXISTS backchannel.log_head (
    id int PRIMARY KEY CHECK (id = 1),
    position bigint NOT NULL,
    hash bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS backchannel.events (
    position bigint PRIMARY KEY,
    stream bytea NOT NULL,
    version bigint NOT NULL,
    command_id uuid NOT NULL,
    record bytea NOT NULL,
    UNIQUE (stream, version)
);
CREATE TABLE IF NOT EXISTS backchannel.streams (
    stream bytea PRIMARY KEY,
    version bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS backchannel.commands (
    command_id uuid PRIMARY KEY,
    first_position bigint NOT NULL,
    last_position bigint NOT NULL,
    stream_version bigint NOT NULL
);
INSERT INTO backchannel.log_head (id, position, hash)
    VALUES (1, 0, '\\x0000000000000000000000000000000000000000000000000000000000000000')
    ON CONFLICT (id) DO NOTHING;
";

impl PgEventLog {
    /// Connects to the database at `url` (a `postgres://` URL), creates the
    /// schema if absent, checks its format and that the stored log ends at
    /// the committed head with the recorded hash, and starts the writer task
    /// and the doorbell listener.
    pub async fn connect(url: &str, options: PgOptions) -> Result<PgEventLog, OpenError> {
        let db = Db::new(url, options).map_err(|source| OpenError::Storage {
            path: PathBuf::from("postgres://"),
            source,
        })?;
        let conn = db.connect(None).await.map_err(|e| db.open_error(e))?;
        let format = format!(
            "BEGIN; {SCHEMA} INSERT INTO backchannel.format (id, format) VALUES (1, {PG_FORMAT}) \
             ON CONFLICT (id) DO NOTHING; COMMIT;"
        );
        conn.client
            .batch_execute(&format)
            .await
            .map_err(|e| db.open_error(StorageError::new(e)))?;
        let found: i32 = conn
            .client
            .query_one("SELECT format FROM backchannel.format WHERE id = 1", &[])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| db.open_error(StorageError::new(e)))?;
        if found != PG_FORMAT {
            return Err(OpenError::UnsupportedFormat {
                path: PathBuf::from(&db.target),
                found: found.to_string(),
                supported: PG_FORMAT as u32,
            });
        }
        drop(conn);
        let reader = ReadConn::new(&db).await.map_err(|e| db.open_error(e))?;
        let head = check_head(&db, &reader).await?;
        Ok(Self::start(db, reader, head, true))
    }

    /// Connects to the log at `url` strictly for reading: every session is
    /// read only (`default_transaction_read_only = on`, so the server refuses
    /// any write), nothing is created (a database without the schema is an
    /// error), and no writer runs: appends fail with [`AppendError::Closed`].
    /// Checks the format and the committed head as [`PgEventLog::connect`].
    pub async fn connect_read_only(url: &str, options: PgOptions) -> Result<PgEventLog, OpenError> {
        let db = Db::read_only(url, options).map_err(|source| OpenError::Storage {
            path: PathBuf::from("postgres://"),
            source,
        })?;
        let conn = db.connect(None).await.map_err(|e| db.open_error(e))?;
        let found: i32 = conn
            .client
            .query_one("SELECT format FROM backchannel.format WHERE id = 1", &[])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| db.open_error(StorageError::new(e)))?;
        if found != PG_FORMAT {
            return Err(OpenError::UnsupportedFormat {
                path: PathBuf::from(&db.target),
                found: found.to_string(),
                supported: PG_FORMAT as u32,
            });
        }
        drop(conn);
        let reader = ReadConn::new(&db).await.map_err(|e| db.open_error(e))?;
        let head = check_head(&db, &reader).await?;
        Ok(Self::start(db, reader, head, false))
    }

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
        tokio::spawn(listen(db.clone(), known.clone(), stopped));
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

    /// The read connection, reconnected if it dropped.
    pub(crate) async fn reader(&self) -> Result<Arc<ReadConn>, Error> {
        let current = match self.shared.reader.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        if let Some(conn) = current.filter(|conn| !conn.client.is_closed()) {
            return Ok(conn);
        }
        let fresh = Arc::new(ReadConn::new(&self.shared.db).await?);
        match self.shared.reader.lock() {
            Ok(mut guard) => *guard = Some(fresh.clone()),
            Err(poisoned) => *poisoned.into_inner() = Some(fresh.clone()),
        }
        Ok(fresh)
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
                requests.send(writer::PgAppend {
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

    /// The outcome of an earlier committed append with this command id (from
    /// any node), with `deduplicated: true`.
    pub async fn command_outcome(
        &self,
        command: CommandId,
    ) -> Result<Option<AppendOutcome>, Error> {
        let reader = self.reader().await?;
        let row = reader
            .client
            .query_opt(&reader.command, &[&command_uuid(command)])
            .await
            .map_err(storage)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let first: i64 = row.try_get(0).map_err(storage)?;
        let last: i64 = row.try_get(1).map_err(storage)?;
        let version: i64 = row.try_get(2).map_err(storage)?;
        Ok(Some(AppendOutcome {
            first_position: to_u64(first)?,
            last_position: to_u64(last)?,
            stream_version: to_u64(version)?,
            deduplicated: true,
        }))
    }

    /// The events of `stream` from `from_version` (1 = the beginning).
    pub async fn read_stream(
        &self,
        stream: StreamId,
        from_version: u64,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let reader = self.reader().await?;
        let rows = reader
            .client
            .query(
                &reader.read_stream,
                &[&stream_key(&stream), &to_i64(from_version.max(1))?],
            )
            .await
            .map_err(storage)?;
        let mut events = Vec::with_capacity(rows.len());
        for (next_version, row) in (from_version.max(1)..).zip(rows) {
            let position = to_u64(row.try_get::<_, i64>(0).map_err(storage)?)?;
            let record: Vec<u8> = row.try_get(1).map_err(storage)?;
            let event = decode_at(position, &record)?;
            if event.envelope.stream != stream || event.envelope.stream_version != next_version {
                return Err(Error::Broken {
                    position,
                    problem: format!(
                        "indexed as version {next_version} of {stream:?} but is version {} of {:?}",
                        event.envelope.stream_version, event.envelope.stream
                    ),
                });
            }
            events.push(event);
        }
        Ok(events)
    }

    /// Up to `limit` events from `from_position` (1 = the beginning), in
    /// position order; an empty page means the caller is at the head.
    pub async fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let records = self.raw_records(from_position, limit).await?;
        records
            .iter()
            .map(|(position, record)| decode_at(*position, record))
            .collect()
    }

    /// Up to `limit` stored records from `from_position`, undecoded, as
    /// (position, bytes), checked to be contiguous: what verify and export
    /// page through.
    pub async fn raw_records(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, Error> {
        let from = from_position.max(1);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let reader = self.reader().await?;
        let page = reader.page(from, limit).await?;
        for (offset, (position, _)) in page.iter().enumerate() {
            let expected = from + offset as u64;
            if *position != expected {
                return Err(Error::Broken {
                    position: expected,
                    problem: format!("the log jumps to position {position}"),
                });
            }
        }
        Ok(page)
    }

    /// The committed head as stored: (position, hash of its record).
    pub async fn committed_head(&self) -> Result<(u64, Hash), Error> {
        let reader = self.reader().await?;
        read_head(&reader).await
    }

    /// Follows the log from `from_position`: see [`PgTail`].
    pub fn tail(&self, from_position: u64) -> PgTail {
        PgTail::new(self.clone(), from_position.max(1))
    }

    /// Writes every committed record (as of this call) to `out` as a
    /// portable file, checking the chain as it goes.
    pub async fn export<W: Write>(&self, out: W) -> Result<FileSummary, PortableError> {
        let (head, hash) = self.committed_head().await?;
        let mut writer = PortableWriter::new(out, head, hash)?;
        let mut next = 1;
        while next <= head {
            let want = usize::try_from((head - next + 1).min(PAGE as u64)).unwrap_or(1);
            let page = self.raw_records(next, want).await?;
            if page.is_empty() {
                return Err(Error::Broken {
                    position: next,
                    problem: "the log ends before its committed head".to_owned(),
                }
                .into());
            }
            for (_, record) in &page {
                writer.push(record)?;
            }
            next += page.len() as u64;
        }
        writer.finish().map(|(_, summary)| summary)
    }

    /// Connects to the database at `url` and writes `records` verbatim into
    /// its log, which must be empty, in one transaction, each checked with
    /// [`ChainCheck`] first: a bad record or a failing source leaves the log
    /// empty. Returns the connected log.
    pub async fn import<I, E>(
        url: &str,
        options: PgOptions,
        records: I,
    ) -> Result<PgEventLog, ImportError>
    where
        I: IntoIterator<Item = Result<Vec<u8>, E>>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let log = PgEventLog::connect(url, options).await?;
        let db = &log.shared.db;
        let conn = db.connect(None).await?;
        let client = &conn.client;
        let fail = |e: tokio_postgres::Error| ImportError::Storage(StorageError::new(e));
        client.batch_execute("BEGIN").await.map_err(fail)?;
        let row = client
            .query_one(
                "SELECT position FROM backchannel.log_head WHERE id = 1 FOR UPDATE",
                &[],
            )
            .await
            .map_err(fail)?;
        let head: i64 = row.try_get(0).map_err(fail)?;
        let count: i64 = client
            .query_one("SELECT count(*) FROM backchannel.events", &[])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(fail)?;
        if head > 0 || count > 0 {
            return Err(ImportError::NotEmpty {
                path: PathBuf::from(&db.target),
                events: u64::try_from(head.max(count)).unwrap_or(0),
            });
        }
        let insert_events = client.prepare(writer::INSERT_EVENTS).await.map_err(fail)?;
        let upsert_commands = client
            .prepare(
                "INSERT INTO backchannel.commands (command_id, first_position, last_position, \
                 stream_version) SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], \
                 $4::bigint[]) ON CONFLICT (command_id) DO UPDATE SET \
                 last_position = EXCLUDED.last_position, stream_version = EXCLUDED.stream_version",
            )
            .await
            .map_err(fail)?;
        let upsert_streams = client.prepare(writer::UPSERT_STREAMS).await.map_err(fail)?;
        let mut check = ChainCheck::new();
        let mut batch = writer::Rows::default();
        let mut commands = CommandRuns::default();
        for record in records {
            let record = record.map_err(|err| ImportError::Source(Box::new(err)))?;
            let recorded = check.check(&record).map_err(ImportError::Invalid)?;
            let envelope = &recorded.envelope;
            batch.push(envelope, record).map_err(ImportError::Invalid)?;
            commands.push(envelope);
            if batch.len() >= IMPORT_BATCH {
                batch.insert(client, &insert_events).await.map_err(fail)?;
                commands.flush(client, &upsert_commands).await?;
            }
        }
        batch.insert(client, &insert_events).await.map_err(fail)?;
        commands.flush(client, &upsert_commands).await?;
        let streams: Vec<Vec<u8>> = commands.streams.keys().cloned().collect();
        let versions: Vec<i64> = streams
            .iter()
            .map(|key| commands.streams.get(key).copied().unwrap_or(0))
            .collect();
        client
            .execute(&upsert_streams, &[&streams, &versions])
            .await
            .map_err(fail)?;
        let position = to_i64(check.events()).map_err(ImportError::Invalid)?;
        client
            .execute(
                "UPDATE backchannel.log_head SET position = $1, hash = $2 WHERE id = 1",
                &[&position, &check.head_hash().as_slice()],
            )
            .await
            .map_err(fail)?;
        client.batch_execute("COMMIT").await.map_err(fail)?;
        bump(&log.shared.known, check.events());
        Ok(log)
    }
}

/// The commands (and stream versions) met during an import, flushed per batch.
#[derive(Default)]
struct CommandRuns {
    ids: Vec<uuid::Uuid>,
    firsts: Vec<i64>,
    lasts: Vec<i64>,
    versions: Vec<i64>,
    streams: std::collections::HashMap<Vec<u8>, i64>,
}

impl CommandRuns {
    fn push(&mut self, envelope: &crate::envelope::Envelope) {
        let id = command_uuid(envelope.command_id);
        let position = i64::try_from(envelope.position).unwrap_or(i64::MAX);
        let version = i64::try_from(envelope.stream_version).unwrap_or(i64::MAX);
        self.streams.insert(stream_key(&envelope.stream), version);
        if self.ids.last() == Some(&id) {
            if let Some(last) = self.lasts.last_mut() {
                *last = position;
            }
            if let Some(v) = self.versions.last_mut() {
                *v = version;
            }
            return;
        }
        self.ids.push(id);
        self.firsts.push(position);
        self.lasts.push(position);
        self.versions.push(version);
    }

    async fn flush(&mut self, client: &Client, statement: &Statement) -> Result<(), ImportError> {
        if self.ids.is_empty() {
            return Ok(());
        }
        client
            .execute(
                statement,
                &[&self.ids, &self.firsts, &self.lasts, &self.versions],
            )
            .await
            .map_err(|e| ImportError::Storage(StorageError::new(e)))?;
        // Keep the last command: the next batch may continue it.
        let keep = self.ids.len() - 1;
        self.ids.drain(..keep);
        self.firsts.drain(..keep);
        self.lasts.drain(..keep);
        self.versions.drain(..keep);
        Ok(())
    }
}

async fn read_head(reader: &ReadConn) -> Result<(u64, Hash), Error> {
    let row = reader
        .client
        .query_one(&reader.head, &[])
        .await
        .map_err(storage)?;
    let position: i64 = row.try_get(0).map_err(storage)?;
    let hash: Vec<u8> = row.try_get(1).map_err(storage)?;
    Ok((to_u64(position)?, to_hash(&hash)?))
}

/// Checks that the log ends at the committed head and that the record there
/// has the recorded hash; returns the head position. One statement, so one
/// snapshot: another node appending meanwhile cannot make the head and the
/// log's end disagree.
async fn check_head(db: &Db, reader: &ReadConn) -> Result<u64, OpenError> {
    let open_err = |e: Error| match e {
        Error::Storage(source) => db.open_error(source),
        other => OpenError::Corrupt {
            path: PathBuf::from(&db.target),
            reason: other.to_string(),
        },
    };
    let row = reader
        .client
        .query_one(
            "SELECT h.position, h.hash, \
                    (SELECT max(position) FROM backchannel.events), \
                    (SELECT record FROM backchannel.events e WHERE e.position = h.position) \
             FROM backchannel.log_head h WHERE h.id = 1",
            &[],
        )
        .await
        .map_err(|e| db.open_error(StorageError::new(e)))?;
    let column = |e: tokio_postgres::Error| db.open_error(StorageError::new(e));
    let position: i64 = row.try_get(0).map_err(column)?;
    let hash: Vec<u8> = row.try_get(1).map_err(column)?;
    let end: Option<i64> = row.try_get(2).map_err(column)?;
    let record: Option<Vec<u8>> = row.try_get(3).map_err(column)?;
    let head = to_u64(position).map_err(open_err)?;
    let hash = to_hash(&hash).map_err(open_err)?;
    let log_end = u64::try_from(end.unwrap_or(0)).unwrap_or(0);
    let mismatch = |problem: &str| OpenError::HeadMismatch {
        path: PathBuf::from(&db.target),
        head,
        log_end,
        problem: problem.to_owned(),
    };
    if log_end != head {
        return Err(mismatch(
            "the events table does not end at the committed head",
        ));
    }
    if head > 0 {
        match record {
            Some(record) if codec::record_hash(&record) == hash => {}
            _ => {
                return Err(mismatch(
                    "the record at the committed head does not have the recorded hash",
                ));
            }
        }
    }
    Ok(head)
}

/// The doorbell listener: `LISTEN`s on its own connection and raises `known`
/// to each notified head; after every (re)connect it reads the head once, so
/// nothing committed while it was away is missed. Stops with the log.
async fn listen(db: Db, known: Arc<watch::Sender<u64>>, mut stop: oneshot::Receiver<()>) {
    let poll = db.options.poll_interval;
    loop {
        let (tx, mut notes) = mpsc::unbounded_channel();
        let connected = async {
            let conn = db.connect(Some(tx)).await?;
            conn.client
                .batch_execute(&format!("LISTEN {CHANNEL}"))
                .await
                .map_err(StorageError::new)?;
            let row = conn
                .client
                .query_one(
                    "SELECT position FROM backchannel.log_head WHERE id = 1",
                    &[],
                )
                .await
                .map_err(StorageError::new)?;
            let head: i64 = row.try_get(0).map_err(StorageError::new)?;
            bump(&known, u64::try_from(head).unwrap_or(0));
            Ok::<_, StorageError>(conn)
        };
        let conn = tokio::select! {
            _ = &mut stop => return,
            conn = connected => conn,
        };
        match conn {
            Ok(conn) => loop {
                tokio::select! {
                    _ = &mut stop => return,
                    note = notes.recv() => match note {
                        Some(note) => {
                            if let Ok(position) = note.payload().parse::<u64>() {
                                bump(&known, position);
                            }
                        }
                        None => {
                            drop(conn);
                            break;
                        }
                    },
                }
            },
            Err(err) => {
                tracing::warn!(error = %err, target = %db.target, "the log's doorbell listener cannot connect; retrying");
            }
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(poll) => {}
        }
    }
}
