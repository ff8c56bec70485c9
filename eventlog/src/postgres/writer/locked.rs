//! The slow path: the group decided on the state read under the head lock,
//! in two round trips, with nothing else in flight.

use std::collections::HashMap;

use tokio_postgres::types::ToSql;

use super::burst::{self, Committed};
use super::group::{Group, Rows, commands_found, prepare};
use super::{
    AppendRequest, Writer, WriterConn, answer, command_uuid, connect, fail_all, other, settle,
    storage_error, stream_key, to_hash,
};
use crate::envelope::RecordedAt;
use crate::error::{AppendError, StorageError};

impl Writer {
    /// Commits `requests` deciding every append on the state read under the
    /// lock. Nothing may be in flight.
    pub(super) async fn locked_group(&mut self, requests: Vec<AppendRequest>) {
        let conn = match connect(&self.db, &mut self.slot, &mut self.known).await {
            Ok(conn) => conn,
            Err(err) => return fail_all(requests, err),
        };
        let mut group = match lock_and_read(conn, &requests).await {
            Ok(group) => group,
            Err(err) => {
                // Nothing was sent that could commit.
                let _ = conn.client.batch_execute("ROLLBACK").await;
                if conn.client.is_closed() {
                    self.slot = None;
                }
                self.known.forget();
                return fail_all(requests, AppendError::Storage(err));
            }
        };
        self.known
            .read((group.next_position - 1, group.chain), &group, &requests);
        let mut decided = Vec::with_capacity(requests.len());
        let mut replies = Vec::with_capacity(requests.len());
        for request in requests {
            decided.push(prepare(&mut group, &request));
            replies.push(request.reply);
        }
        if group.accepted.is_empty() {
            let _ = conn.client.batch_execute("ROLLBACK").await;
            return answer(replies, decided, Ok(()));
        }
        let answers = burst::send(conn, &mut group, None).await.answers().await;
        let settled = match answers.outcome(conn.notices.replication_warning()) {
            Committed::Yes => {
                self.record(&group);
                self.known.committed(&group);
                Ok(())
            }
            Committed::No(err) => {
                self.known.forget();
                Err(AppendError::Storage(err))
            }
            Committed::Unknown(why) => {
                self.slot = None;
                self.known.forget();
                tracing::warn!(reason = %why, "a PostgreSQL commit's outcome is unknown; settling it");
                settle(&self.db, &self.known_head, &group, &why, &mut decided).await
            }
        };
        answer(replies, decided, settled);
    }
}

/// Round trip 1: `BEGIN`, the head lock, the dedupe and version lookups.
async fn lock_and_read(
    conn: &WriterConn,
    requests: &[AppendRequest],
) -> Result<Group, StorageError> {
    let mut ids: Vec<uuid::Uuid> = requests
        .iter()
        .map(|r| command_uuid(r.meta.command_id))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut streams: Vec<Vec<u8>> = requests
        .iter()
        .flat_map(|r| r.expected.iter().map(|(s, _)| stream_key(s)))
        .collect();
    streams.sort_unstable();
    streams.dedup();
    let client = &conn.client;
    let ids_param: [&(dyn ToSql + Sync); 1] = [&ids];
    let streams_param: [&(dyn ToSql + Sync); 1] = [&streams];
    let (begin, head, commands, versions) = tokio::join!(
        client.batch_execute("BEGIN"),
        client.query_one(&conn.statements.lock_head, &[]),
        client.query(&conn.statements.find_commands, &ids_param),
        client.query(&conn.statements.find_streams, &streams_param),
    );
    begin.map_err(storage_error)?;
    let head = head.map_err(storage_error)?;
    let position: i64 = head.try_get(0).map_err(storage_error)?;
    let hash: Vec<u8> = head.try_get(1).map_err(storage_error)?;
    let stored_commands = commands_found(commands.map_err(storage_error)?)?;
    let mut stored_streams = HashMap::new();
    for row in versions.map_err(storage_error)? {
        let key: Vec<u8> = row.try_get(0).map_err(storage_error)?;
        let version: i64 = row.try_get(1).map_err(storage_error)?;
        stored_streams.insert(key, u64::try_from(version).unwrap_or(0));
    }
    let position = u64::try_from(position).map_err(|_| other("a negative head".to_owned()))?;
    let chain = to_hash(&hash).map_err(|err| other(err.to_string()))?;
    Ok(Group {
        next_position: position + 1,
        chain,
        recorded_at: RecordedAt::now(),
        stored_commands,
        commands: HashMap::new(),
        stored_streams,
        stream_heads: HashMap::new(),
        rows: Rows::default(),
        accepted: Vec::new(),
    })
}
