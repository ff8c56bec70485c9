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
//!
//! Layout: this file holds the desk and its reads; [`command`] runs
//! commands (decide, append, retry after a lost race); [`idempotency`]
//! derives command ids and argument fingerprints from idempotency keys;
//! [`lifecycle`] opens and closes the desk and runs the projector task.

mod command;
mod idempotency;
mod lifecycle;

use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use backchannel_domain::events::{ContentPath, Event, StreamId};
use backchannel_domain::ids::{ConversationId, StaffId};
use backchannel_eventlog::{Log, RecordedEvent};
use backchannel_projections::checkpoint::{CheckpointDir, Start};
use backchannel_projections::{Denied, ReadModels};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{ApiError, ApiResult};
pub(crate) use crate::live::Committed;
use crate::live::{Feed, Key, Router};
use crate::read_audit::{Open, ReadAudit, ReadAuditConfig};
pub(crate) use idempotency::start_command_id;

/// The handle of a background task (the projector, the read audit's
/// recorder), taken to be awaited at shutdown: the first call gets it, later
/// ones none, and a lock poisoned by a panic still gives it up.
pub(crate) fn take_task(slot: &Mutex<Option<JoinHandle<()>>>) -> Option<JoinHandle<()>> {
    slot.lock().unwrap_or_else(PoisonError::into_inner).take()
}

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

impl Executed {
    /// What `pick` finds in the first stored event it recognises: the id of
    /// what the command created (for a retried key, what the first attempt
    /// created). Finding none breaks `operation`'s decision, which always
    /// records that event; `missing` names it for the logs.
    pub(crate) fn created<T>(
        &self,
        operation: &str,
        missing: &str,
        pick: impl Fn(&Event) -> Option<T>,
    ) -> ApiResult<T> {
        self.events
            .iter()
            .find_map(|r| pick(&r.event))
            .ok_or_else(|| ApiError::broken(operation, missing))
    }
}

/// The conversation `event` opened, if it is an opening (for
/// [`Executed::created`]).
pub(crate) fn opened_conversation(event: &Event) -> Option<ConversationId> {
    match event {
        Event::ConversationOpened(e) => Some(e.conversation),
        _ => None,
    }
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
            .map_err(|_| ApiError::broken("waiting for projections", "the projector stopped"))
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
            return Err(ApiError::broken(
                "reading the log",
                "the log returned other positions than asked",
            ));
        }
        Ok(events)
    }
}
