//! The durability stages of the writer: the syncer, which flushes and
//! fsyncs sled for the applied groups, and the head stage, which records the
//! committed head, publishes it and answers the callers.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, mpsc as std_mpsc};

use tokio::sync::watch;

use crate::error::StorageError;
use crate::head::HeadFile;
use crate::store::Syncer;

use super::{Applied, Counters, fail_all};

/// Makes applied groups durable in sled and hands them to the head stage.
pub(super) struct SyncStage {
    pub(super) db: sled::Db,
    pub(super) syncer: Syncer,
    pub(super) failure: Arc<OnceLock<StorageError>>,
    pub(super) counters: Arc<Counters>,
}

/// A sync round: groups whose records are durable in sled (or that wrote
/// nothing), waiting for the head record.
pub(super) struct Synced {
    wrote: bool,
    groups: Vec<Applied>,
}

/// Records the committed head (`HEAD`, see `head.rs`) after sled's sync,
/// then publishes it and answers the callers. A thread of its own, so the
/// head record's fdatasync of one round overlaps sled's flush + fsync of the
/// next; one head write covers every round synced meanwhile.
pub(super) struct HeadStage {
    pub(super) head_file: HeadFile,
    /// Tells readers and tails the last committed position.
    pub(super) committed: watch::Sender<u64>,
    pub(super) failure: Arc<OnceLock<StorageError>>,
}

impl SyncStage {
    pub(super) fn run(
        mut self,
        applied: std_mpsc::Receiver<Applied>,
        synced: std_mpsc::SyncSender<Synced>,
        head_thread: std::thread::JoinHandle<Result<(), StorageError>>,
    ) -> Result<(), StorageError> {
        let result = self.sync_rounds(&applied, &synced);
        // Closing the hand-over lets the head stage finish and stop.
        drop(synced);
        result.and(super::join(head_thread, "head-record"))
    }

    fn sync_rounds(
        &mut self,
        applied: &std_mpsc::Receiver<Applied>,
        synced: &std_mpsc::SyncSender<Synced>,
    ) -> Result<(), StorageError> {
        while let Ok(first) = applied.recv() {
            let mut groups = vec![first];
            groups.extend(applied.try_iter());
            let wrote = groups.iter().any(|g| g.wrote);
            if wrote {
                let result = self
                    .db
                    .flush()
                    .map(|_| ())
                    .map_err(StorageError::from)
                    .and_then(|()| self.syncer.sync());
                if let Err(err) = result {
                    let err = self.failure.get_or_init(|| err).clone();
                    tracing::error!(error = %err, "event log fsync failed; the writer stops");
                    for group in groups.into_iter().chain(applied.try_iter()) {
                        fail_all(group.answers, &err);
                    }
                    return Err(err);
                }
                self.counters.syncs.fetch_add(1, Ordering::Relaxed);
            }
            if let Err(std_mpsc::SendError(round)) = synced.send(Synced { wrote, groups }) {
                // The head stage stopped after a storage error.
                let err = self
                    .failure
                    .get_or_init(|| {
                        StorageError::new(std::io::Error::other("the head-record stage stopped"))
                    })
                    .clone();
                for group in round.groups.into_iter().chain(applied.try_iter()) {
                    fail_all(group.answers, &err);
                }
                return Err(err);
            }
        }
        self.db.flush()?;
        self.syncer.sync()
    }
}

impl HeadStage {
    pub(super) fn run(mut self, synced: std_mpsc::Receiver<Synced>) -> Result<(), StorageError> {
        let mut rounds = Vec::new();
        while let Ok(first) = synced.recv() {
            rounds.push(first);
            rounds.extend(synced.try_iter());
            let last = rounds
                .last()
                .and_then(|round| round.groups.last())
                .map(|group| group.head);
            if let Some(head) = last {
                // sled's records first (the sync stage), then the head record
                // naming them, then the answers: an acknowledged append is
                // always covered by `HEAD`, and `HEAD` never names what is
                // not durable.
                if rounds.iter().any(|round| round.wrote)
                    && let Err(err) = self.head_file.record(head)
                {
                    let err = self.failure.get_or_init(|| err.into()).clone();
                    tracing::error!(error = %err, "writing the event log's head record failed; the writer stops");
                    for round in rounds.drain(..).chain(synced.try_iter()) {
                        for group in round.groups {
                            fail_all(group.answers, &err);
                        }
                    }
                    return Err(err);
                }
                // Publish before answering, so a caller that sees its append
                // return also sees it in reads (read-your-writes).
                self.committed.send_replace(head.position);
            }
            for round in rounds.drain(..) {
                for group in round.groups {
                    for (reply, answer) in group.answers {
                        // A caller that stopped waiting does not matter: its append stands.
                        let _ = reply.send(answer);
                    }
                }
            }
        }
        Ok(())
    }
}
