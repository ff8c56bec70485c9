//! Opening the desk (read models from a checkpoint or the whole log), the
//! projector task that keeps them in step with the log, and closing.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use backchannel_eventlog::{Log, OpenError, StoreSpec};
use backchannel_projections::ReadModels;
use backchannel_projections::checkpoint::{self, CheckpointDir, Start};
use tokio::sync::watch;

pub(super) use crate::live::Committed;
use crate::live::Router;
use crate::secret::LogKeys;
use backchannel_domain::events::Event;

use super::command::COMPANY_STRIPES;
use super::{Desk, take_task};

impl Desk {
    /// Opens the store and builds the read models in the same pass: from the
    /// checkpoint the last clean shutdown saved, replaying only the events
    /// after it, or else from the whole log (blocking: linear in the events
    /// replayed). Then starts projecting what is appended from there on.
    ///
    /// `keys.head` authenticates the head in checkpoints and exports (see
    /// `log_export`); a checkpoint ahead of the log, or a log shorter or
    /// different than its committed head, fails the open. `keys.wrap` opens
    /// the log's key store: customer data is sealed as it is appended and
    /// opened as it is read (SPEC section 12).
    pub fn open(
        store: &StoreSpec,
        checkpoints: &CheckpointDir,
        keys: &LogKeys,
    ) -> Result<Arc<Desk>, OpenError> {
        Desk::open_counting(
            store,
            checkpoints,
            keys,
            &std::sync::atomic::AtomicU64::new(0),
        )
    }

    /// [`Desk::open`], storing in `applied` the position the read models have
    /// applied while the opening pass runs (`/readyz` reports it).
    pub fn open_counting(
        store: &StoreSpec,
        checkpoints: &CheckpointDir,
        keys: &LogKeys,
        applied: &std::sync::atomic::AtomicU64,
    ) -> Result<Arc<Desk>, OpenError> {
        let started = std::time::Instant::now();
        // The catch-up runs on a thread of its own that ends with it. The
        // allocator (mimalloc) gives a thread's freed memory back to the
        // system when that thread allocates again or ends; on the caller's
        // thread (the runtime's main thread, idle once the server runs) the
        // pass's transient hundreds of MiB could stay resident for good.
        let opened = std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("catch-up".to_owned())
                .spawn_scoped(scope, || {
                    checkpoint::open_with_read_models_counting(
                        store,
                        checkpoints,
                        Some(&keys.head),
                        Some(&keys.wrap),
                        applied,
                    )
                    .map(|(log, mut models, start)| {
                        models.shrink_to_fit();
                        (log, models, start)
                    })
                })
                .map(|thread| thread.join())
        });
        let (log, models, start) = match opened {
            Ok(Ok(opened)) => opened?,
            // A panic in the pass panics the caller, as it did on its thread.
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(source) => {
                return Err(OpenError::Io {
                    path: std::path::PathBuf::from(store.to_string()),
                    source,
                });
            }
        };
        let elapsed_ms = started.elapsed().as_millis();
        match &start {
            Start::Resumed { position, replayed } => tracing::info!(
                checkpoint = position,
                replayed,
                elapsed_ms,
                "read models resumed from their checkpoint"
            ),
            Start::Rebuilt {
                replayed,
                why: None,
            } => {
                tracing::info!(replayed, elapsed_ms, "read models built from the log");
            }
            Start::Rebuilt {
                replayed,
                why: Some(why),
            } => tracing::warn!(
                replayed,
                elapsed_ms,
                %why,
                "the read models' checkpoint was not usable; built them from the log"
            ),
        }
        let (applied_tx, applied) = watch::channel(models.position());
        let models = Arc::new(RwLock::new(models));
        let live = Router::new();
        let halted = Arc::new(std::sync::OnceLock::new());
        let (erasures_tx, erasures) = tokio::sync::mpsc::unbounded_channel();
        let projector = tokio::spawn(project(
            log.clone(),
            models.clone(),
            applied_tx,
            live.clone(),
            halted.clone(),
            erasures_tx,
        ));
        let desk = Arc::new(Desk {
            log,
            checkpoints: checkpoints.clone(),
            models,
            applied,
            live,
            projector: Mutex::new(Some(projector)),
            halted,
            start,
            company_turns: (0..COMPANY_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            commit_latency: crate::metrics::commit_latency(),
            read_audit: std::sync::OnceLock::new(),
        });
        tokio::spawn(checkpoint_after_erasures(Arc::downgrade(&desk), erasures));
        // Warms the key cache off the request path: the catch-up read no
        // key, and a read's first key otherwise costs it a file or a query.
        if let Some(keys) = desk.log.keys().cloned() {
            tokio::spawn(async move {
                match keys.preload().await {
                    Ok(count) => tracing::debug!(count, "data keys loaded"),
                    Err(err) => {
                        tracing::warn!(%err, "could not preload the data keys; they load as needed")
                    }
                }
            });
        }
        Ok(desk)
    }

    /// Stops accepting appends, commits what was queued (flush + fsync), lets
    /// the projector drain, and ends every live subscription.
    pub async fn close(&self) {
        // The read audit's queue first, while the log still takes appends;
        // its task ends, so no handle on the log outlives the close.
        if tokio::time::timeout(Duration::from_secs(5), self.read_audit().stop())
            .await
            .is_err()
        {
            tracing::warn!("the read audit did not drain in time");
        }
        let log = self.log.clone();
        match tokio::task::spawn_blocking(move || log.close()).await {
            Ok(Ok(())) => tracing::info!("event log closed"),
            Ok(Err(err)) => tracing::error!(%err, "closing the event log failed"),
            Err(err) => tracing::error!(%err, "closing the event log panicked"),
        }
        if let Some(projector) = take_task(&self.projector) {
            // The tail ends once the closed log is drained; don't wait forever.
            if tokio::time::timeout(Duration::from_secs(5), projector)
                .await
                .is_err()
            {
                tracing::warn!("the projector did not stop in time");
            }
        }
        self.live.close();
        self.save_checkpoint().await;
    }

    /// Saves the read models as the store's checkpoint, so the next start
    /// replays only what follows. Best effort: without it the next start
    /// replays more, and loses nothing.
    async fn save_checkpoint(&self) {
        let log = self.log.clone();
        let checkpoints = self.checkpoints.clone();
        let models = self.models.clone();
        let saved = tokio::task::spawn_blocking(move || {
            let models = models.read().unwrap_or_else(PoisonError::into_inner);
            checkpoint::save_read_models(&log, &checkpoints, &models)
        })
        .await;
        match saved {
            Ok(Ok(Some(saved))) => tracing::info!(
                position = saved.after.position,
                bytes = saved.bytes,
                "read models checkpointed"
            ),
            Ok(Ok(None)) => {}
            Ok(Err(err)) => tracing::warn!(%err, "could not checkpoint the read models"),
            Err(err) => tracing::error!(%err, "checkpointing the read models panicked"),
        }
    }
}

/// Follows the log and applies every event to the read models, in order.
async fn project(
    log: Log,
    models: Arc<RwLock<ReadModels>>,
    applied: watch::Sender<u64>,
    live: Arc<Router>,
    halted: Arc<std::sync::OnceLock<String>>,
    erasures: tokio::sync::mpsc::UnboundedSender<u64>,
) {
    let from = models
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .position()
        + 1;
    let mut tail = log.tail(from);
    drop(log);
    while let Some(next) = tail.next().await {
        let recorded = match next {
            Ok(recorded) => recorded,
            Err(err) => {
                tracing::error!(%err, "the projector cannot read the log; projections stop");
                let _ = halted.set(format!("this node stopped following the log: {err}"));
                return;
            }
        };
        let result = models
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .apply(&recorded);
        match result {
            Ok(done) => {
                applied.send_replace(recorded.envelope.position);
                if let Event::ConversationErased(_) = recorded.event {
                    let _ = erasures.send(recorded.envelope.position);
                }
                live.deliver(Committed {
                    recorded,
                    notifications: done.notifications,
                });
            }
            Err(err) => {
                tracing::error!(%err, "a projection refused an event; projections stop");
                let _ = halted.set(format!("this node's read models refused an event: {err}"));
                return;
            }
        }
    }
    tracing::info!("the log closed; the projector stopped");
}

/// Saves the checkpoint again right after this node applied an erasure
/// (SPEC section 12): the read models held the erased conversation's
/// customer name until then, and the checkpoint on disk still does. Ends
/// with the projector (its sender dropped) or the desk.
async fn checkpoint_after_erasures(
    desk: std::sync::Weak<Desk>,
    mut erasures: tokio::sync::mpsc::UnboundedReceiver<u64>,
) {
    while let Some(position) = erasures.recv().await {
        // Several erasures in a row: one checkpoint covers them all.
        while erasures.try_recv().is_ok() {}
        let Some(desk) = desk.upgrade() else {
            return;
        };
        tracing::info!(
            position,
            "a conversation was erased; checkpointing the read models again"
        );
        desk.save_checkpoint().await;
    }
}
