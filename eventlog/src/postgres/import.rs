//! [`PgEventLog::import`]: records written verbatim into an empty log, in one
//! transaction, each checked with [`ChainCheck`] first.

use std::path::PathBuf;

use tokio_postgres::{Client, Statement};

use super::doorbell::bump;
use super::rows::{command_uuid, stream_key, to_i64};
use super::{PgEventLog, PgOptions, writer};
use crate::chain::ChainCheck;
use crate::error::StorageError;
use crate::import::ImportError;

/// Records per statement in an import.
const IMPORT_BATCH: usize = 1000;

impl PgEventLog {
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
