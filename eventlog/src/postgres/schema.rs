//! Opening a [`PgEventLog`]: the `backchannel` schema, created idempotently
//! in one transaction under an advisory lock (unless read only), the check of
//! its layout version ([`PG_FORMAT`]), and the check that the stored log ends
//! at the committed head with the recorded hash.

use std::path::PathBuf;

use tokio_postgres::Client;

use super::read::ReadConn;
use super::rows::{to_hash, to_u64};
use super::{Db, PgEventLog, PgOptions};
use crate::codec;
use crate::error::{Error, OpenError, StorageError};

/// The layout version of the `backchannel` schema this build reads and writes.
pub const PG_FORMAT: i32 = 1;

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
        let db = Db::new(url, options).map_err(bad_url)?;
        open(db, true).await
    }

    /// Connects to the log at `url` strictly for reading: every session is
    /// read only (`default_transaction_read_only = on`, so the server refuses
    /// any write), nothing is created (a database without the schema is an
    /// error), and no writer runs: appends fail with
    /// [`AppendError::Closed`](crate::AppendError::Closed). Checks the format
    /// and the committed head as [`PgEventLog::connect`].
    pub async fn connect_read_only(url: &str, options: PgOptions) -> Result<PgEventLog, OpenError> {
        let db = Db::read_only(url, options).map_err(bad_url)?;
        open(db, false).await
    }
}

/// A URL that does not parse: named without its text, which may hold a password.
fn bad_url(source: StorageError) -> OpenError {
    OpenError::Storage {
        path: PathBuf::from("postgres://"),
        source,
    }
}

/// Creates the schema (if `writable`), checks its format and the committed
/// head, and starts the log (with a writer if `writable`).
async fn open(db: Db, writable: bool) -> Result<PgEventLog, OpenError> {
    let conn = db.connect(None).await.map_err(|e| db.open_error(e))?;
    if writable {
        let create = format!(
            "BEGIN; {SCHEMA} INSERT INTO backchannel.format (id, format) VALUES (1, {PG_FORMAT}) \
             ON CONFLICT (id) DO NOTHING; COMMIT;"
        );
        conn.client
            .batch_execute(&create)
            .await
            .map_err(|e| db.open_error(StorageError::new(e)))?;
    }
    check_format(&db, &conn.client).await?;
    drop(conn);
    let reader = ReadConn::new(&db).await.map_err(|e| db.open_error(e))?;
    let head = check_head(&db, &reader).await?;
    Ok(PgEventLog::start(db, reader, head, writable))
}

/// The stored layout version must be [`PG_FORMAT`].
async fn check_format(db: &Db, client: &Client) -> Result<(), OpenError> {
    let found: i32 = client
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
    Ok(())
}

/// Checks that the log ends at the committed head and that the record there
/// has the recorded hash; returns the head position. One statement, so one
/// snapshot: another node appending meanwhile cannot make the head and the
/// log's end disagree.
async fn check_head(db: &Db, reader: &ReadConn) -> Result<u64, OpenError> {
    let open_err = |e: Error| db.open_failure(e);
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
