//! The read audit's recorder (SPEC section 12): each time staff open a
//! conversation's content — its `timeline`, its live events
//! (`conversationEvents`), or an enquiry report that includes it — who, when,
//! which conversation and the visibility rule that granted it are recorded as
//! a `ContentOpened` event on the company's `ReadAudit` stream of the log. So
//! the record is as durable as any event, on every engine, with no storage code
//! of its own; the `access_log` read model answers `accessLog`, and
//! `replay-tool audit` prints it. Listing conversations (the inbox, the
//! overview, `conversation(id)` or `node(id)` without `timeline`) opens no
//! content and records nothing.
//!
//! **Off the read's path.** A read hands its open to [`ReadAudit::record`],
//! which never waits: a `try_send` on a bounded channel ([`QUEUE`] opens). One
//! recorder task drains it in batches (up to [`BATCH`] at a time), coalesces,
//! and appends one event list per (company, staff) with the staff member as
//! actor, never awaited by a read. When the queue is full (the log cannot keep
//! up) the open is **dropped**: counted (`backchannel_read_audit_dropped_total`
//! on `/metrics`, [`ReadAudit::dropped`]) and logged (a warning at the first
//! drop and then every 1,000th). A failed append is logged and its entries are
//! lost the same way. A graceful shutdown drains the queue before the log
//! closes; a crash loses what was queued and not yet appended.
//!
//! **Coalescing.** One entry per (staff member, conversation) per [`WINDOW`]
//! (15 minutes; configurable for tests): an open within the window of the last
//! recorded one is not recorded again. The recorder keeps the recent entries
//! in a bounded map ([`MAX_OPEN_WINDOWS`] pairs; when full, expired pairs are
//! evicted, and if none has expired the map is emptied), and on a miss asks the
//! read model (`AccessLog::last_opened`), which is rebuilt from the log at
//! start: so a restart, or another node sharing the log, does not record the
//! same reading again within the window. (Two nodes may each record one entry
//! for the same window when the reads land on both before either append is
//! applied.) The entry's rule is the one that granted the first open of the
//! window.
//!
//! Decision record: `docs/decisions/what-opens-content.md`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use backchannel_domain::Actor;
use backchannel_domain::events::{ContentOpened, ContentPath, Event, StreamId};
use backchannel_domain::ids::{CommandId, CompanyId, ConversationId, CorrelationId, StaffId};
use backchannel_domain::visibility::Rule;
use backchannel_eventlog::{AppendMeta, ExpectedVersion, Log};
use backchannel_projections::ReadModels;
use tokio::sync::{mpsc, oneshot, watch};

use crate::desk::take_task;

/// The coalescing window: one entry per staff member and conversation in it.
pub(crate) const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Opens waiting to be recorded; more are dropped (counted and logged).
pub(crate) const QUEUE: usize = 8192;
/// Opens taken from the queue per round of appends.
pub(crate) const BATCH: usize = 512;
/// (staff, conversation) pairs the recorder remembers in memory.
pub(crate) const MAX_OPEN_WINDOWS: usize = 100_000;

/// The recorder's clock: µs since the Unix epoch (UTC).
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> i64 + Send + Sync>);

impl Clock {
    pub fn new(now: impl Fn() -> i64 + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(now))
    }

    /// The system clock.
    pub fn system() -> Clock {
        Clock::new(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        })
    }

    pub fn now(&self) -> i64 {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// How the server records reads.
#[derive(Debug, Clone)]
pub struct ReadAuditConfig {
    /// Record reads (the default). Off, nothing is recorded and `accessLog`
    /// shows only what was recorded before (the benchmark's comparison).
    pub enabled: bool,
    pub window: Duration,
    pub clock: Clock,
}

impl Default for ReadAuditConfig {
    fn default() -> Self {
        ReadAuditConfig {
            enabled: true,
            window: WINDOW,
            clock: Clock::system(),
        }
    }
}

/// One opening of a conversation's content, as a read saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Open {
    pub company: CompanyId,
    pub conversation: ConversationId,
    pub staff: StaffId,
    pub rule: Rule,
    pub path: ContentPath,
}

enum Message {
    Open(Open, i64),
    /// Answered once everything sent before it is appended and applied.
    Flush(oneshot::Sender<()>),
    /// Like `Flush`, then the task ends (dropping its handle on the log).
    Stop,
}

/// The handle reads record through (see the module docs).
#[derive(Debug)]
pub struct ReadAudit {
    sender: Option<mpsc::Sender<Message>>,
    clock: Clock,
    dropped: Arc<AtomicU64>,
    dropped_metric: Option<prometheus::IntCounter>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::Open(open, at) => write!(f, "Open({open:?}, {at})"),
            Message::Flush(_) => f.write_str("Flush"),
            Message::Stop => f.write_str("Stop"),
        }
    }
}

impl ReadAudit {
    /// A recorder that records nothing (`enabled: false`).
    pub fn off() -> ReadAudit {
        ReadAudit {
            sender: None,
            clock: Clock::system(),
            dropped: Arc::new(AtomicU64::new(0)),
            dropped_metric: None,
            task: std::sync::Mutex::new(None),
        }
    }

    /// Starts the recorder task over the desk's log and read models;
    /// `applied` is the projector's position (a flush waits for it).
    pub(crate) fn start(
        config: &ReadAuditConfig,
        log: Log,
        models: Arc<RwLock<ReadModels>>,
        applied: watch::Receiver<u64>,
    ) -> ReadAudit {
        if !config.enabled {
            return ReadAudit::off();
        }
        let (sender, receiver) = mpsc::channel(QUEUE);
        let recorder = Recorder {
            log,
            models,
            applied,
            window: i64::try_from(config.window.as_micros()).unwrap_or(i64::MAX),
            recent: HashMap::new(),
        };
        let task = tokio::spawn(recorder.run(receiver));
        ReadAudit {
            sender: Some(sender),
            clock: config.clock.clone(),
            dropped: Arc::new(AtomicU64::new(0)),
            dropped_metric: dropped_counter(),
            task: std::sync::Mutex::new(Some(task)),
        }
    }

    /// Records an open, without waiting (see the module docs).
    pub fn record(&self, open: Open) {
        let Some(sender) = &self.sender else {
            return;
        };
        let at = self.clock.now();
        // Closed: the server is stopping (`stop`); nothing to count.
        if let Err(mpsc::error::TrySendError::Full(_)) = sender.try_send(Message::Open(open, at)) {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed);
            if let Some(metric) = &self.dropped_metric {
                metric.inc();
            }
            if dropped.is_multiple_of(1000) {
                tracing::warn!(
                    dropped = dropped + 1,
                    "the read audit's queue is full: a read was not recorded"
                );
            }
        }
    }

    /// How many opens were dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The dropped-opens counter, for `/metrics`.
    pub fn dropped_metric(&self) -> Option<prometheus::IntCounter> {
        self.dropped_metric.clone()
    }

    /// Waits until every open recorded before this call is appended and
    /// applied to the read models (tests; the graceful shutdown).
    pub async fn flush(&self) {
        let Some(sender) = &self.sender else {
            return;
        };
        let (tx, rx) = oneshot::channel();
        if sender.send(Message::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

impl ReadAudit {
    /// Records what was queued before this call, then ends the recorder
    /// (the graceful shutdown, before the log closes: the task holds a
    /// handle on the log). Later opens are dropped.
    pub async fn stop(&self) {
        let Some(sender) = &self.sender else {
            return;
        };
        let _ = sender.send(Message::Stop).await;
        if let Some(task) = take_task(&self.task) {
            let _ = task.await;
        }
    }
}

fn dropped_counter() -> Option<prometheus::IntCounter> {
    prometheus::IntCounter::new(
        "backchannel_read_audit_dropped_total",
        "Reads of conversation content not recorded by the read audit (its queue was full).",
    )
    .ok()
}

struct Recorder {
    log: Log,
    models: Arc<RwLock<ReadModels>>,
    applied: watch::Receiver<u64>,
    /// µs.
    window: i64,
    /// The last recorded `at` of recent pairs.
    recent: HashMap<(StaffId, ConversationId), i64>,
}

impl Recorder {
    async fn run(mut self, mut receiver: mpsc::Receiver<Message>) {
        let mut batch = Vec::with_capacity(BATCH);
        while receiver.recv_many(&mut batch, BATCH).await > 0 {
            let mut flushes = Vec::new();
            let mut opens = Vec::new();
            let mut stop = false;
            for message in batch.drain(..) {
                match message {
                    Message::Open(open, at) if !stop => opens.push((open, at)),
                    Message::Open(..) => {}
                    Message::Flush(done) => flushes.push(done),
                    Message::Stop => stop = true,
                }
            }
            let events = self.coalesce(opens);
            let last = self.append(events).await;
            if !flushes.is_empty() {
                if let Some(last) = last {
                    let _ = self.applied.wait_for(|p| *p >= last).await;
                }
                for done in flushes {
                    let _ = done.send(());
                }
            }
            if stop {
                return;
            }
        }
    }

    /// The opens to record, grouped by (company, staff), in arrival order.
    fn coalesce(&mut self, opens: Vec<(Open, i64)>) -> Vec<((CompanyId, StaffId), Vec<Event>)> {
        let mut groups: Vec<((CompanyId, StaffId), Vec<Event>)> = Vec::new();
        for (open, at) in opens {
            let key = (open.staff, open.conversation);
            let last = match self.recent.get(&key) {
                Some(&last) => Some(last),
                None => self
                    .models
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .access_log()
                    .last_opened(open.staff, open.conversation),
            };
            if last.is_some_and(|last| at >= last && at - last < self.window) {
                continue;
            }
            self.remember(key, at);
            let event = Event::ContentOpened(ContentOpened {
                company: open.company,
                conversation: open.conversation,
                staff: open.staff,
                rule: open.rule,
                path: open.path,
                at,
            });
            let group = (open.company, open.staff);
            match groups.iter_mut().find(|(g, _)| *g == group) {
                Some((_, events)) => events.push(event),
                None => groups.push((group, vec![event])),
            }
        }
        groups
    }

    fn remember(&mut self, key: (StaffId, ConversationId), at: i64) {
        if self.recent.len() >= MAX_OPEN_WINDOWS && !self.recent.contains_key(&key) {
            let window = self.window;
            self.recent
                .retain(|_, last| at.saturating_sub(*last) < window);
            if self.recent.len() >= MAX_OPEN_WINDOWS {
                // The read model still answers for what is forgotten.
                self.recent.clear();
            }
        }
        self.recent.insert(key, at);
    }

    /// Appends each group, all at once (the log's group commit makes them
    /// share one durable commit, rather than one after the other); the last
    /// position appended, if any.
    async fn append(&mut self, groups: Vec<((CompanyId, StaffId), Vec<Event>)>) -> Option<u64> {
        let appends = groups.into_iter().map(|((company, staff), events)| {
            let count = events.len();
            let keys: Vec<(StaffId, ConversationId)> = events
                .iter()
                .filter_map(|e| match e {
                    Event::ContentOpened(e) => Some((e.staff, e.conversation)),
                    _ => None,
                })
                .collect();
            let meta = AppendMeta {
                command_id: CommandId::new(),
                correlation_id: CorrelationId::new(),
                actor: Actor::Staff(staff),
            };
            let log = self.log.clone();
            async move {
                let appended = log
                    .append(
                        StreamId::ReadAudit(company),
                        ExpectedVersion::Any,
                        events,
                        meta,
                    )
                    .await;
                (appended, count, keys)
            }
        });
        let mut last = None;
        for (appended, count, keys) in futures_util::future::join_all(appends).await {
            match appended {
                Ok(outcome) => last = last.max(Some(outcome.last_position)),
                Err(err) => {
                    tracing::error!(%err, count, "the read audit could not append its entries");
                    // Not recorded: a later open of the same pairs tries again.
                    for key in &keys {
                        self.recent.remove(key);
                    }
                }
            }
        }
        last
    }
}
