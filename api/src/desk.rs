//! The desk: the one service every request goes through.
//!
//! It owns the event log, the read models and the projector task that keeps
//! them in step with the log, and it runs commands (SPEC section 7):
//!
//! 1. A command with an idempotency key gets a command id derived from
//!    (actor, operation, key), and a fingerprint of its arguments (stored as
//!    the append's correlation id); if the log already holds that command,
//!    the answer is rebuilt from its stored events and nothing is decided
//!    again, provided the fingerprints match (else `VALIDATION`).
//! 2. Otherwise it is decided against the read models' `State` (read lock,
//!    released before any await) and appended with the version the decision
//!    read of every stream its events touch (one atomic multi-stream append:
//!    a round-robin opening also takes the turn on the company stream). If
//!    another command got there first (`WrongExpectedVersion`), the desk
//!    waits until the projections reach the log head and decides again, a
//!    bounded number of times. Commands that write a company stream are
//!    decided one at a time per company in this process, so a burst of them
//!    does not spend that budget; across processes the expectations keep
//!    them correct.
//! 3. The answer waits until the projections have applied the append, so a
//!    query issued after a mutation returned sees its effect.

use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use backchannel_domain::State;
use backchannel_domain::events::{ContentPath, Event, StreamId};
use backchannel_domain::ids::{
    CommandId, CompanyId, ConversationId, CorrelationId, StaffId, WidgetKey,
};
use backchannel_domain::model::RoutingType;
use backchannel_domain::{Actor, Command, decide};
use backchannel_eventlog::{
    AppendError, AppendMeta, AppendOutcome, ExpectedVersion, Log, OpenError, RecordedEvent,
    StoreSpec,
};
use backchannel_projections::checkpoint::{self, CheckpointDir, Start};
use backchannel_projections::{Denied, ReadModels};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{ApiError, ApiResult};
pub use crate::live::Committed;
use crate::live::{Feed, Key, Router};
use crate::read_audit::{Open, ReadAudit, ReadAuditConfig};
use crate::secret::LogKeys;

/// How often a command is decided again after losing a race for one of its
/// streams. Generous, because a company stream is shared by every directory
/// change and round-robin opening of the company (and, once several
/// processes share a log, by theirs); bounded, because each attempt waits
/// for the projections.
const MAX_ATTEMPTS: usize = 32;
/// Stripes of the per-company lock around company-stream decisions.
const COMPANY_STRIPES: usize = 64;
/// Shortest idempotency key of `startConversation`: its retry hands out the
/// conversation and a token for it, so the key must be unguessable.
pub const MIN_START_KEY_CHARS: usize = 16;
/// Longest idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 200;

/// How long a command that lost a race waits for the winning append to be
/// applied before deciding again anyway.
const STREAM_WAIT: Duration = Duration::from_secs(2);

/// Why [`Desk::wait_applied_within`] gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotApplied {
    /// Still behind when the patience ran out.
    Behind { applied: u64, head: u64 },
    /// The projections have stopped, for this reason.
    Halted(String),
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
    /// The durable log (any engine). Cheap to clone; its writer serialises
    /// appends.
    log: Log,
    /// Where this process keeps its read models' checkpoint.
    checkpoints: CheckpointDir,
    /// The read models. Written only by the projector task, one event at a
    /// time; readers take the read lock for synchronous work only and never
    /// hold it across an await.
    models: Arc<RwLock<ReadModels>>,
    /// The last position the projector applied; commands wait on it for
    /// read-your-writes, `/readyz` compares it with the log head.
    applied: watch::Receiver<u64>,
    /// Applied events for subscriptions, routed by conversation, recipient
    /// and company. Closed at shutdown so that every live stream ends.
    live: Arc<Router>,
    projector: Mutex<Option<JoinHandle<()>>>,
    /// How the read models were built when the desk opened.
    start: Start,
    /// Serialises, in this process, decide + append + apply of commands that
    /// write a company's stream (directory changes, round-robin openings),
    /// striped by company: they would conflict on that stream's version
    /// anyway, and one at a time none has to decide again. Held across the
    /// append's await, so a tokio mutex.
    company_turns: Box<[tokio::sync::Mutex<()>]>,
    /// Set once if the projector stops on an error: why.
    halted: Arc<std::sync::OnceLock<String>>,
    /// Time from handing events to the log to its acknowledgement (durable);
    /// registered in the application's metrics.
    commit_latency: Option<prometheus::Histogram>,
    /// The read audit's recorder (`read_audit`); off until started.
    read_audit: std::sync::OnceLock<ReadAudit>,
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
        Ok(desk)
    }

    /// How the read models were built at open: resumed from a checkpoint, or
    /// rebuilt from the log.
    pub fn start(&self) -> &Start {
        &self.start
    }

    pub fn log(&self) -> &Log {
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

    /// [`Desk::timeline_positions`] for a read that opens the content (the
    /// staff `timeline`): the same check, and the open to hand to
    /// [`Desk::record_open`] once the read succeeded (with the rule that
    /// granted it).
    pub fn open_timeline(
        &self,
        models: &ReadModels,
        viewer: StaffId,
        conversation: ConversationId,
        path: ContentPath,
    ) -> Result<(Vec<u64>, Option<Open>), Denied> {
        let rule = models.timeline(viewer, conversation)?;
        let open = models
            .state()
            .conversations
            .get(&conversation)
            .map(|c| Open {
                company: c.company,
                conversation,
                staff: viewer,
                rule,
                path,
            });
        let positions = self
            .log
            .stream_positions(&StreamId::Conversation(conversation), models.position());
        Ok((positions, open))
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

    /// Waits at most `patience` for the read models to apply `position`
    /// (read-your-writes across nodes: `X-Min-Position`). `Err` tells why
    /// not: still behind, or the projections have stopped.
    pub async fn wait_applied_within(
        &self,
        position: u64,
        patience: Duration,
    ) -> Result<(), NotApplied> {
        if let Some(reason) = self.halted() {
            return Err(NotApplied::Halted(reason.to_owned()));
        }
        let mut applied = self.applied.clone();
        match tokio::time::timeout(patience, applied.wait_for(|p| *p >= position)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(NotApplied::Halted(
                self.halted()
                    .unwrap_or("the projections stopped (the log is closing)")
                    .to_owned(),
            )),
            Err(_) => Err(NotApplied::Behind {
                applied: self.applied_position(),
                head: self.log.head(),
            }),
        }
    }

    /// Waits until the read models hold `stream` at `version` at least: after
    /// losing a race for it, the winner's append is decided against.
    async fn wait_stream(&self, stream: StreamId, version: u64) -> ApiResult<()> {
        let models = self.models.clone();
        let mut applied = self.applied.clone();
        let reached = applied.wait_for(|_| {
            models
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .state()
                .stream_version(stream)
                >= version
        });
        match tokio::time::timeout(STREAM_WAIT, reached).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(ApiError::internal(
                "waiting for projections",
                "the projector stopped",
            )),
            // Decided again regardless: the next append says if still stale.
            Err(_) => Ok(()),
        }
    }

    /// How many events the read models trail the log's head by, as far as
    /// this process knows the head (its own commits, and for a shared log
    /// every doorbell or poll heard).
    pub fn lag(&self) -> u64 {
        self.log.head().saturating_sub(self.applied_position())
    }

    /// Why the projections stopped following the log, if they did on an
    /// error (e.g. the record at the applied position changed: a failover
    /// lost data). A halted node must not serve: its models are frozen.
    pub fn halted(&self) -> Option<&str> {
        self.halted.get().map(String::as_str)
    }

    /// The events routed to `keys` as they are applied (see [`crate::live`]);
    /// `None` after shutdown.
    pub fn subscribe(&self, keys: &[Key]) -> Option<Feed> {
        self.live.subscribe(keys)
    }

    /// The commit latency histogram the desk observes (for metrics).
    pub fn commit_latency(&self) -> Option<prometheus::Histogram> {
        self.commit_latency.clone()
    }

    /// Starts recording reads of conversation content (SPEC section 12; see
    /// [`crate::read_audit`]). Once: a second call changes nothing.
    pub fn start_read_audit(&self, config: &ReadAuditConfig) {
        self.read_audit.get_or_init(|| {
            ReadAudit::start(
                config,
                self.log.clone(),
                self.models.clone(),
                self.applied.clone(),
            )
        });
    }

    /// The read audit's recorder (off if never started).
    pub fn read_audit(&self) -> &ReadAudit {
        self.read_audit.get_or_init(ReadAudit::off)
    }

    /// Records that `open.staff` opened the content of `open.conversation`;
    /// never waits (see [`crate::read_audit`]).
    pub fn record_open(&self, open: Open) {
        self.read_audit().record(open);
    }

    /// The live subscriptions' router (its counts, for tests and metrics).
    pub fn live(&self) -> &Router {
        &self.live
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
        let keyed = idempotency_key
            .map(|key| command_id(actor, operation, key))
            .transpose()?;
        self.execute_as(actor, operation, command, keyed).await
    }

    /// Runs a command under `keyed`, the command id an idempotency key
    /// derived (`None`: a fresh id, no idempotency). For callers whose key is
    /// not scoped to the actor (`startConversation`: see
    /// [`start_command_id`]).
    pub async fn execute_as(
        &self,
        actor: Actor,
        operation: &str,
        command: Command,
        keyed: Option<CommandId>,
    ) -> ApiResult<Executed> {
        let fingerprint = keyed.map(|_| arguments_fingerprint(operation, &command));
        if let Some(id) = keyed {
            let earlier = self
                .log
                .command_outcome(id)
                .await
                .map_err(|err| ApiError::internal("looking up a command", err))?;
            if let Some(outcome) = earlier {
                return self.retried(outcome, &command, fingerprint).await;
            }
        }
        // Unkeyed: a fresh command id and correlation id (`default` is `new`).
        let meta = AppendMeta {
            command_id: keyed.unwrap_or_default(),
            correlation_id: fingerprint.unwrap_or_default(),
            actor,
        };
        let _turn = match self.company_written_by(&command) {
            Some(company) => Some(self.company_turns[stripe(company)].lock().await),
            None => None,
        };
        for _ in 0..MAX_ATTEMPTS {
            let decided = {
                let models = self.models();
                let state = models.state();
                decide(state, &command, actor).map(|events| {
                    let expected = expectations(state, &command, &events);
                    (events, expected)
                })
            };
            let (events, expected) = match (decided, keyed) {
                (Ok(decided), _) => decided,
                // The same key may have been appended meanwhile (by another
                // node, e.g. two starting with `--demo`), and its effect
                // applied before this decision: the first answer, not a
                // refusal.
                (Err(refused), Some(id)) => match self.log.command_outcome(id).await {
                    Ok(Some(outcome)) => return self.retried(outcome, &command, fingerprint).await,
                    _ => return Err(refused.into()),
                },
                (Err(refused), None) => return Err(refused.into()),
            };
            if events.is_empty() {
                return Ok(Executed::default());
            }
            let appending = std::time::Instant::now();
            let appended = self.log.append_to_streams(expected, events, meta).await;
            if let Some(latency) = &self.commit_latency {
                latency.observe(appending.elapsed().as_secs_f64());
            }
            match appended {
                // A concurrent attempt with the same key got there first.
                Ok(outcome) if outcome.deduplicated => {
                    return self.retried(outcome, &command, fingerprint).await;
                }
                Ok(outcome) => return self.finish(outcome).await,
                Err(AppendError::WrongExpectedVersion {
                    stream, current, ..
                }) => {
                    tracing::debug!(
                        operation,
                        ?stream,
                        current,
                        "lost a race for a stream, deciding again"
                    );
                    // Wait for the append that won (possibly another node's,
                    // which this node's head may not know of yet).
                    self.wait_stream(stream, current).await?;
                    self.caught_up().await?;
                }
                Err(err) => return Err(ApiError::internal("appending", err)),
            }
        }
        Err(ApiError::Busy)
    }

    /// The answer to a retried key: the first attempt's, if it asked for the
    /// same thing. Its fingerprint is stored as the append's correlation id; an
    /// append from before fingerprints (a correlation id that is not a UUIDv8)
    /// is compared by its stream, as it was then.
    async fn retried(
        &self,
        outcome: AppendOutcome,
        command: &Command,
        fingerprint: Option<CorrelationId>,
    ) -> ApiResult<Executed> {
        let executed = self.finish(outcome).await?;
        let same = executed.events.first().is_none_or(|first| {
            let stored = first.envelope.correlation_id;
            match fingerprint {
                Some(fingerprint) if is_fingerprint(stored) => stored == fingerprint,
                _ => first.envelope.stream == command.stream(),
            }
        });
        if !same {
            return Err(ApiError::validation(
                "this idempotency key was already used for another request",
            ));
        }
        Ok(executed)
    }

    /// The company whose stream `command` may write (directory changes, and
    /// openings in a round-robin group, which take a turn), if any.
    fn company_written_by(&self, command: &Command) -> Option<CompanyId> {
        match command {
            Command::OpenConversation { company, group, .. } => {
                let models = self.models();
                let round_robin = models
                    .state()
                    .groups
                    .get(group)
                    .is_some_and(|g| g.routing == RoutingType::RoundRobin);
                round_robin.then_some(*company)
            }
            other => match other.stream() {
                StreamId::Company(company) => Some(company),
                StreamId::Conversation(_) | StreamId::ReadAudit(_) => None,
            },
        }
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

/// The streams a decision's append must find as the decision saw them: the
/// command's own stream and every stream its events touch, each at the
/// version `state` has (the state the events were decided against).
fn expectations(
    state: &State,
    command: &Command,
    events: &[Event],
) -> Vec<(StreamId, ExpectedVersion)> {
    let mut expected = vec![(
        command.stream(),
        ExpectedVersion::Exact(state.stream_version(command.stream())),
    )];
    for stream in events.iter().map(Event::stream) {
        if !expected.iter().any(|(s, _)| *s == stream) {
            expected.push((stream, ExpectedVersion::Exact(state.stream_version(stream))));
        }
    }
    expected
}

fn stripe(company: CompanyId) -> usize {
    let bytes = company.as_bytes();
    // The low bytes of a UUIDv7 are random.
    usize::from(bytes[15]) % COMPANY_STRIPES
}

/// A UUIDv8 from the first 16 bytes of a blake3 digest.
fn uuid_v8(digest: &blake3::Hash) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest.as_bytes()[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    bytes
}

/// The fingerprint of a keyed command's arguments: a UUIDv8 from blake3 of
/// the operation and the command's JSON serialisation with the ids it
/// creates left out (`Command::without_created_ids`: the server picks them
/// afresh for every attempt). Stored as the append's correlation id, so a
/// retry with the same key can tell the same request (the first answer)
/// from another one (`VALIDATION`). A correlation id that is a UUIDv8 is a
/// fingerprint; the random ones of unkeyed commands are UUIDv7.
pub fn arguments_fingerprint(operation: &str, command: &Command) -> CorrelationId {
    // Serialising plain data to JSON cannot fail; if it ever did, every
    // attempt would hash the same empty text, which still matches itself.
    let arguments = serde_json::to_vec(&command.without_created_ids()).unwrap_or_default();
    let digest = blake3::Hasher::new()
        .update(b"backchannel/arguments/v1\0")
        .update(operation.as_bytes())
        .update(b"\0")
        .update(&arguments)
        .finalize();
    CorrelationId::from_bytes(uuid_v8(&digest))
}

fn is_fingerprint(correlation: CorrelationId) -> bool {
    correlation.as_bytes()[6] >> 4 == 8
}

fn check_key(key: &str, min_chars: usize) -> ApiResult<()> {
    if key.chars().count() < min_chars || key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
        return Err(ApiError::validation(if min_chars <= 1 {
            format!("an idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} bytes")
        } else {
            format!(
                "this idempotency key must be at least {min_chars} characters (a random UUID) and at most {MAX_IDEMPOTENCY_KEY_BYTES} bytes"
            )
        }));
    }
    Ok(())
}

/// The command id of a keyed `startConversation`. Its caller has no
/// identity yet, so the key is scoped to the widget key; and since a retry
/// hands back the conversation and a token for it, the key must be
/// unguessable: at least [`MIN_START_KEY_CHARS`] characters (a random UUID
/// per conversation the customer starts).
pub fn start_command_id(widget_key: WidgetKey, key: &str) -> ApiResult<CommandId> {
    check_key(key, MIN_START_KEY_CHARS)?;
    let digest = blake3::Hasher::new()
        .update(b"backchannel/idempotency/v1\0")
        .update(b"w")
        .update(widget_key.as_bytes())
        .update(b"startConversation\0")
        .update(key.as_bytes())
        .finalize();
    Ok(CommandId::from_bytes(uuid_v8(&digest)))
}

/// The command id of an idempotent command: a UUIDv8 from blake3 of
/// (actor, operation, key), so the same caller retrying the same mutation
/// with the same key names the same command.
pub fn command_id(actor: Actor, operation: &str, key: &str) -> ApiResult<CommandId> {
    check_key(key, 1)?;
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
    Ok(CommandId::from_bytes(uuid_v8(&hasher.finalize())))
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
