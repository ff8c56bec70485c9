//! Settling a commit whose outcome is unknown, and answering the callers.
//! The groups in flight on a lost connection are all unknown: they are
//! settled together once nothing is in flight ([`Writer::settle_unknown`]).
//! [`Notices`] holds the connection's notices, where a cancelled wait for the
//! synchronous standby shows.
//!
//! A `COMMIT` that answers with a warning notice about a cancelled wait for
//! synchronous replication (committed locally, perhaps not on the standby),
//! or a connection lost after the burst was sent, leaves the outcome unknown.
//! The writer then settles it in a transaction of its own that takes the head
//! lock (so the old transaction is over), looks the group's command ids up,
//! and commits a no-op head update: that commit's acknowledgement covers all
//! earlier WAL, so what it saw is durable on the synchronous standby too.
//! Found with the group's positions: success; found elsewhere: the other
//! commit's outcome (deduplicated); not found: nothing was committed, and a
//! fast-path group is decided again under the lock (a slow-path group's
//! callers get [`AppendError::Storage`]). If it cannot settle it within
//! `resolve_timeout`, the callers get [`AppendError::OutcomeUnknown`] and
//! retry with the same command id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use backchannel_domain::ids::CommandId;
use tokio::sync::{mpsc, watch};
use tokio_postgres::error::DbError;

use super::group::{Decided, Group, commands_found};
use super::{
    AppendRequest, Db, FIND_COMMANDS, LOCK_HEAD, Reply, TOUCH_HEAD, Writer, bump, command_uuid,
    other, storage_error,
};
use crate::envelope::AppendOutcome;
use crate::error::{AppendError, StorageError};

/// Settles an unknown outcome (see the module docs), rewriting the pending
/// answers; returns how the pending answers end.
pub(super) async fn settle(
    db: &Db,
    known: &watch::Sender<u64>,
    group: &Group,
    why: &StorageError,
    decided: &mut [Decided],
) -> Result<(), AppendError> {
    let deadline = Instant::now() + db.options.resolve_timeout;
    let ids: Vec<uuid::Uuid> = group
        .accepted
        .iter()
        .map(|(c, _)| command_uuid(*c))
        .collect();
    let mut delay = std::time::Duration::from_millis(50);
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let attempt = match tokio::time::timeout(remaining, settle_once(db, &ids)).await {
            Ok(attempt) => attempt,
            Err(_) => Err(other(
                "the settling transaction did not finish in time".to_owned(),
            )),
        };
        match attempt {
            Ok(found) => {
                let ours = group.accepted.iter().all(|(command, outcome)| {
                    found
                        .get(command)
                        .is_some_and(|f| f.first_position == outcome.first_position)
                });
                if ours {
                    bump(known, group.next_position - 1);
                    return Ok(());
                }
                // Not committed (all or nothing); some commands may have
                // been committed since by another node: answer those.
                for answer in decided.iter_mut() {
                    if let Decided::Pending(outcome) = answer
                        && let Some((command, _)) = group
                            .accepted
                            .iter()
                            .find(|(_, o)| o.first_position == outcome.first_position)
                        && let Some(stored) = found.get(command)
                    {
                        *answer = Decided::Final(Ok(*stored));
                    }
                }
                return Err(AppendError::Storage(other(format!(
                    "the commit did not happen ({why}); nothing was appended"
                ))));
            }
            Err(err) => {
                if Instant::now() + delay > deadline {
                    return Err(AppendError::OutcomeUnknown(other(format!(
                        "{why}; settling it failed: {err}"
                    ))));
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(2));
            }
        }
    }
}

/// One attempt: lock the head (the old transaction is then over), look the
/// commands up, commit a no-op update whose acknowledgement (without a
/// replication warning) makes what was seen durable where commits must be.
async fn settle_once(
    db: &Db,
    ids: &[uuid::Uuid],
) -> Result<HashMap<CommandId, AppendOutcome>, StorageError> {
    let mut conn = db.connect(None).await?;
    let client = &conn.client;
    client.batch_execute("BEGIN").await.map_err(storage_error)?;
    client
        .query_one(LOCK_HEAD, &[])
        .await
        .map_err(storage_error)?;
    let rows = client
        .query(FIND_COMMANDS, &[&ids])
        .await
        .map_err(storage_error)?;
    client
        .execute(TOUCH_HEAD, &[])
        .await
        .map_err(storage_error)?;
    client
        .batch_execute("COMMIT")
        .await
        .map_err(storage_error)?;
    let mut warning = None;
    while let Ok(notice) = conn.notices.try_recv() {
        if notice.message().contains("synchronous replication") {
            warning = Some(notice.message().to_owned());
        }
    }
    if let Some(warning) = warning {
        return Err(other(format!("the settling commit warned: {warning}")));
    }
    commands_found(rows)
}

pub(super) fn answer(replies: Vec<Reply>, decided: Vec<Decided>, pending: Result<(), AppendError>) {
    for (reply, decided) in replies.into_iter().zip(decided) {
        let result = match decided {
            Decided::Final(result) => result,
            Decided::Pending(outcome) => pending.clone().map(|()| outcome),
        };
        // A caller that stopped waiting does not matter: its append stands.
        let _ = reply.send(result);
    }
}

pub(super) fn fail_all(requests: Vec<AppendRequest>, err: AppendError) {
    for request in requests {
        let _ = request.reply.send(Err(err.clone()));
    }
}

/// A group whose commit outcome is unknown, waiting to be settled.
pub(super) struct Unknown {
    pub(super) requests: Vec<AppendRequest>,
    pub(super) group: Group,
    pub(super) decided: Vec<Decided>,
    pub(super) why: StorageError,
}

impl Writer {
    /// Once nothing is in flight, settles every group whose outcome is
    /// unknown, all at once (a lost connection leaves every group that was
    /// in flight on it unknown: settled one after another, each could take
    /// the whole `resolve_timeout`).
    pub(super) async fn settle_unknown(&mut self) {
        if !self.in_flight.is_empty() || self.unknown.is_empty() {
            return;
        }
        let mut unknown = std::mem::take(&mut self.unknown);
        let (db, known_head) = (&self.db, &self.known_head);
        let settled = futures_util::future::join_all(
            unknown
                .iter_mut()
                .map(|u| settle(db, known_head, &u.group, &u.why, &mut u.decided)),
        )
        .await;
        for (u, settled) in unknown.into_iter().zip(settled) {
            if let Err(AppendError::Storage(_)) = settled {
                // Known not committed: decided again under the lock, as a
                // group behind a failed check is (a command committed
                // meanwhile by another node is found there, deduplicated).
                self.redo.extend(u.requests);
                continue;
            }
            let replies = u.requests.into_iter().map(|r| r.reply).collect();
            answer(replies, u.decided, settled);
        }
    }
}

/// The notices of the writer connection, shared with the groups in flight
/// on it.
#[derive(Clone)]
pub(super) struct Notices(pub(super) Arc<Mutex<mpsc::UnboundedReceiver<DbError>>>);

impl Notices {
    /// Notices received so far that say a synchronous-replication wait was
    /// cancelled (the commit is local only).
    pub(super) fn replication_warning(&self) -> Option<String> {
        let mut notices = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut warning = None;
        while let Ok(notice) = notices.try_recv() {
            if notice.message().contains("synchronous replication") {
                warning = Some(notice.message().to_owned());
            }
        }
        warning
    }
}
