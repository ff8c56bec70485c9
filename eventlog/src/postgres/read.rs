//! Reads of a [`PgEventLog`]: the read connection ([`ReadConn`], reconnected
//! if it dropped; tokio-postgres pipelines concurrent queries over it), the
//! reads by stream, by position and by command id, the committed head, and
//! export.

use std::io::Write;
use std::sync::Arc;

use backchannel_domain::events::StreamId;
use backchannel_domain::ids::CommandId;
use tokio_postgres::{Client, Statement};

use super::rows::{command_uuid, storage, stream_key, to_hash, to_i64, to_u64};
use super::{Db, PgEventLog};
use crate::envelope::{AppendOutcome, Hash, RecordedEvent};
use crate::error::{Error, StorageError};
use crate::log::decode_at;
use crate::portable::{FileSummary, PortableError, PortableWriter};

/// Records per page when reading the whole log (reads, tails, export).
pub(crate) const PAGE: i64 = 1024;

/// The read connection and its prepared statements.
pub(crate) struct ReadConn {
    pub(super) client: Client,
    read_all: Statement,
    read_stream: Statement,
    command: Statement,
    head: Statement,
}

impl ReadConn {
    pub(super) async fn new(db: &Db) -> Result<ReadConn, StorageError> {
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

impl PgEventLog {
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
