//! The desk: the one service every request goes through.
//!
//! It owns the event log, the read models and the projector task that keeps
//! them in step with the log, and it runs commands (SPEC section 7):
//!
//! 1. A command with an idempotency key gets a command id derived from
//!    (actor, operation, key); if the log already holds that command, the
//!    answer is rebuilt from its stored events and nothing is decided again.
//! 2. Otherwise it is decided against the read models' `State` (read lock,
//!    released before any await) and appended with the stream version the
//!    decision read. If another command got there first
//!    (`WrongExpectedVersion`), the desk waits until the projections reach the
//!    log head and decides again, a bounded number of times.
//! 3. The answer waits until the projections have applied the append, so a
//!    query issued after a mutation returned sees its effect.

use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use backchannel_domain::events::StreamId;
use backchannel_domain::ids::{CommandId, ConversationId, CorrelationId, StaffId};
use backchannel_domain::{Actor, Command, decide};
use backchannel_eventlog::{
    AppendError, AppendMeta, AppendOutcome, ExpectedVersion, OpenError, RecordedEvent, SledEventLog,
};
use backchannel_projections::checkpoint::{self, Start};
use backchannel_projections::{Denied, ReadModels, StoredNotification};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::error::{ApiError, ApiResult};

/// How often a command is decided again after losing a race for its stream.
const MAX_ATTEMPTS: usize = 5;
/// How many committed events a slow subscriber may fall behind.
const LIVE_CAPACITY: usize = 4096;
/// Longest idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 200;

/// One event as the projector applied it, for live subscriptions.
#[derive(Debug)]
pub struct Committed {
    pub recorded: RecordedEvent,
    /// The notifications this event produced (SPEC section 5).
    pub notifications: Vec<StoredNotification>,
}

/// What a command appended (nothing when it changed nothing).
#[derive(Debug, Default)]
pub struct Executed {
    /// The stored events of the command, from the log (for a retried
    /// idempotency key: the first attempt's events).
    pub events: Vec<RecordedEvent>,
    /// True when this answer is a retry's: nothing new was appended.
    pub deduplicated: bool,
}

pub struct Desk {
    /// The durable log. Cheap to clone; the writer thread serialises appends.
    log: SledEventLog,
    /// The read models. Written only by the projector task, one event at a
    /// time; readers take the read lock for synchronous work only and never
    /// hold it across an await.
    models: Arc<RwLock<ReadModels>>,
    /// The last position the projector applied; commands wait on it for
    /// read-your-writes, `/readyz` compares it with the log head.
    applied: watch::Receiver<u64>,
    /// Applied events for subscriptions. Taken (dropped) at shutdown so that
    /// every live stream ends.
    live: Mutex<Option<broadcast::Sender<Arc<Committed>>>>,
    projector: Mutex<Option<JoinHandle<()>>>,
    /// How the read models were built when the desk opened.
    start: Start,
}

impl std::fmt::Debug for Desk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Desk")
            .field("applied", &*self.applied.borrow())
            .finish_non_exhaustive()
    }
}

impl Desk {
    /// Opens the store and builds the read models in the same pass: from the
    /// checkpoint the last clean shutdown saved, replaying only the events
    /// after it, or else from the whole log (blocking: linear in the events
    /// replayed). Then starts projecting what is appended from there on.
    ///
    /// `key` authenticates the head in checkpoints and exports (see
    /// `log_export`); a checkpoint ahead of the log, or a log shorter or
    /// different than its committed head, fails the open.
    pub fn open(
        store_dir: &std::path::Path,
        key: &backchannel_eventlog::HeadKey,
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
                    checkpoint::open_with_read_models(store_dir, Some(key)).map(
                        |(log, mut models, start)| {
                            models.shrink_to_fit();
                            (log, models, start)
                        },
                    )
                })
                .map(|thread| thread.join())
        });
        let (log, models, start) = match opened {
            Ok(Ok(opened)) => opened?,
            // A panic in the pass panics the caller, as it did on its thread.
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(source) => {
                return Err(OpenError::Io {
                    path: store_dir.to_owned(),
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
        let (live_tx, _) = broadcast::channel(LIVE_CAPACITY);
        let projector = tokio::spawn(project(
            log.clone(),
            models.clone(),
            applied_tx,
            live_tx.clone(),
        ));
        Ok(Arc::new(Desk {
            log,
            models,
            applied,
            live: Mutex::new(Some(live_tx)),
            projector: Mutex::new(Some(projector)),
            start,
        }))
    }

    /// How the read models were built at open: resumed from a checkpoint, or
    /// rebuilt from the log.
    pub fn start(&self) -> &Start {
        &self.start
    }

    pub fn log(&self) -> &SledEventLog {
        &self.log
    }

    /// The read models, for synchronous reads. Never hold the guard across
    /// an await.
    pub fn models(&self) -> RwLockReadGuard<'_, ReadModels> {
        self.models.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The positions of a conversation's timeline (its stream in the log), if
    /// `viewer` may read it: checked by the visibility policy and read from the
    /// log's stream index up to what `models` (the caller's guard, so the check
    /// and the positions agree with whatever else it checked) have applied.
    pub fn timeline_positions(
        &self,
        models: &ReadModels,
        viewer: StaffId,
        conversation: ConversationId,
    ) -> Result<Vec<u64>, Denied> {
        models.timeline(viewer, conversation)?;
        Ok(self
            .log
            .stream_positions(&StreamId::Conversation(conversation), models.position()))
    }

    pub fn applied_position(&self) -> u64 {
        *self.applied.borrow()
    }

    /// True when the read models have applied everything the log holds.
    pub fn is_caught_up(&self) -> bool {
        self.applied_position() >= self.log.head()
    }

    /// Waits until the read models have applied `position`.
    pub async fn wait_applied(&self, position: u64) -> ApiResult<()> {
        let mut applied = self.applied.clone();
        applied
            .wait_for(|p| *p >= position)
            .await
            .map(|_| ())
            .map_err(|_| ApiError::internal("waiting for projections", "the projector stopped"))
    }

    /// Waits until the read models have caught up with the log's head.
    pub async fn caught_up(&self) -> ApiResult<()> {
        self.wait_applied(self.log.head()).await
    }

    /// A receiver of events as they are applied; `None` after shutdown.
    pub fn subscribe(&self) -> Option<broadcast::Receiver<Arc<Committed>>> {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(broadcast::Sender::subscribe)
    }

    /// Runs a command (see the module docs). `operation` names the mutation, so
    /// one idempotency key reused for another mutation is another command.
    pub async fn execute(
        &self,
        actor: Actor,
        operation: &str,
        command: Command,
        idempotency_key: Option<&str>,
    ) -> ApiResult<Executed> {
        let command_id = match idempotency_key {
            Some(key) => {
                let id = command_id(actor, operation, key)?;
                let earlier = self
                    .log
                    .command_outcome(id)
                    .map_err(|err| ApiError::internal("looking up a command", err))?;
                if let Some(outcome) = earlier {
                    let executed = self.finish(outcome).await?;
                    // The same key on another conversation (or company) is
                    // another request: say so rather than answer the first.
                    if executed
                        .events
                        .first()
                        .is_some_and(|e| e.envelope.stream != command.stream())
                    {
                        return Err(ApiError::validation(
                            "this idempotency key was already used for another request",
                        ));
                    }
                    return Ok(executed);
                }
                id
            }
            None => CommandId::new(),
        };
        let meta = AppendMeta {
            command_id,
            correlation_id: CorrelationId::new(),
            actor,
        };
        let stream = command.stream();
        for _ in 0..MAX_ATTEMPTS {
            let (events, expected) = {
                let models = self.models();
                let state = models.state();
                (
                    decide(state, &command, actor)?,
                    state.stream_version(stream),
                )
            };
            if events.is_empty() {
                return Ok(Executed::default());
            }
            match self
                .log
                .append(stream, ExpectedVersion::Exact(expected), events, meta)
                .await
            {
                Ok(outcome) => return self.finish(outcome).await,
                Err(AppendError::WrongExpectedVersion { current, .. }) => {
                    tracing::debug!(
                        operation,
                        current,
                        "lost a race for the stream, deciding again"
                    );
                    self.caught_up().await?;
                }
                Err(err) => return Err(ApiError::internal("appending", err)),
            }
        }
        Err(ApiError::Busy)
    }

    /// Waits for the projections to apply an append, then reads its events.
    async fn finish(&self, outcome: AppendOutcome) -> ApiResult<Executed> {
        self.wait_applied(outcome.last_position).await?;
        let count = outcome.last_position + 1 - outcome.first_position;
        let events = self
            .log
            .read_all(
                outcome.first_position,
                usize::try_from(count).unwrap_or(usize::MAX),
            )
            .await
            .map_err(|err| ApiError::internal("reading an append back", err))?;
        Ok(Executed {
            events,
            deduplicated: outcome.deduplicated,
        })
    }

    /// The events at `positions` (ascending), read in runs of consecutive
    /// positions: exactly those, in that order, or an error. Callers found
    /// the positions through a visibility check, so an event at any other
    /// position could be another conversation's.
    pub async fn read_positions(&self, positions: &[u64]) -> ApiResult<Vec<RecordedEvent>> {
        let mut events = Vec::with_capacity(positions.len());
        let mut i = 0;
        while i < positions.len() {
            let start = positions[i];
            let mut end = i + 1;
            while end < positions.len() && positions[end] == start + (end - i) as u64 {
                end += 1;
            }
            let run = self
                .log
                .read_all(start, end - i)
                .await
                .map_err(|err| ApiError::internal("reading the log", err))?;
            events.extend(run);
            i = end;
        }
        if !events
            .iter()
            .map(|r| r.envelope.position)
            .eq(positions.iter().copied())
        {
            return Err(ApiError::internal(
                "reading the log",
                "the log returned other positions than asked",
            ));
        }
        Ok(events)
    }

    /// Stops accepting appends, commits what was queued (flush + fsync), lets
    /// the projector drain, and ends every live subscription.
    pub async fn close(&self) {
        let log = self.log.clone();
        match tokio::task::spawn_blocking(move || log.close()).await {
            Ok(Ok(())) => tracing::info!("event log closed"),
            Ok(Err(err)) => tracing::error!(%err, "closing the event log failed"),
            Err(err) => tracing::error!(%err, "closing the event log panicked"),
        }
        let projector = self
            .projector
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(projector) = projector {
            // The tail ends once the closed log is drained; don't wait forever.
            if tokio::time::timeout(Duration::from_secs(5), projector)
                .await
                .is_err()
            {
                tracing::warn!("the projector did not stop in time");
            }
        }
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.save_checkpoint().await;
    }

    /// Saves the read models as the store's checkpoint, so the next start
    /// replays only what follows. Best effort: without it the next start
    /// replays more, and loses nothing.
    async fn save_checkpoint(&self) {
        let log = self.log.clone();
        let models = self.models.clone();
        let saved = tokio::task::spawn_blocking(move || {
            let models = models.read().unwrap_or_else(PoisonError::into_inner);
            checkpoint::save_read_models(&log, &models)
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
    log: SledEventLog,
    models: Arc<RwLock<ReadModels>>,
    applied: watch::Sender<u64>,
    live: broadcast::Sender<Arc<Committed>>,
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
                // No subscriber is fine.
                let _ = live.send(Arc::new(Committed {
                    recorded,
                    notifications: done.notifications,
                }));
            }
            Err(err) => {
                tracing::error!(%err, "a projection refused an event; projections stop");
                return;
            }
        }
    }
    tracing::info!("the log closed; the projector stopped");
}

/// The command id of an idempotent command: a UUIDv8 from blake3 of
/// (actor, operation, key), so the same caller retrying the same mutation
/// with the same key names the same command.
pub fn command_id(actor: Actor, operation: &str, key: &str) -> ApiResult<CommandId> {
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
        return Err(ApiError::validation(format!(
            "an idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} bytes"
        )));
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"backchannel/idempotency/v1\0");
    match actor {
        Actor::Staff(id) => hasher.update(b"s").update(id.as_bytes()),
        Actor::Customer(id) => hasher.update(b"c").update(id.as_bytes()),
        Actor::System => hasher.update(b"y"),
    };
    hasher
        .update(operation.as_bytes())
        .update(b"\0")
        .update(key.as_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest.as_bytes()[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Ok(CommandId::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use backchannel_domain::ids::StaffId;

    #[test]
    fn idempotency_keys_name_one_command_per_actor_and_operation() {
        let me = Actor::Staff(StaffId::new());
        let other = Actor::Staff(StaffId::new());
        let id = |actor, op, key| command_id(actor, op, key).ok();
        assert_eq!(id(me, "sendMessage", "k"), id(me, "sendMessage", "k"));
        assert_ne!(id(me, "sendMessage", "k"), id(other, "sendMessage", "k"));
        assert_ne!(id(me, "sendMessage", "k"), id(me, "closeConversation", "k"));
        assert!(id(me, "sendMessage", "").is_none());
    }
}
