//! The doorbell: each append sends `pg_notify` on [`CHANNEL`] inside its
//! transaction, carrying the new head; every process `LISTEN`s on its own
//! connection and raises the head it knows of ([`bump`]), which wakes its
//! tails.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use super::Db;
use crate::error::StorageError;

/// The channel of the doorbell: its payload is the new head position.
const CHANNEL: &str = "backchannel_log";

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

/// The doorbell listener: `LISTEN`s on its own connection and raises `known`
/// to each notified head; after every (re)connect it reads the head once, so
/// nothing committed while it was away is missed. Stops with the log.
pub(super) async fn listen(
    db: Db,
    known: Arc<watch::Sender<u64>>,
    mut stop: oneshot::Receiver<()>,
) {
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
