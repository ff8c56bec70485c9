//! Live delivery of committed events to subscriptions, routed by key (SPEC
//! section 8: an event costs work only for the subscriptions it concerns).
//!
//! A subscription registers under the keys it listens to; the projector hands
//! each committed event to the registrations of the event's keys only:
//!
//! - a conversation-stream event: [`Key::Conversation`] of that conversation;
//! - a company-stream event (settings, staff, roles, permissions, groups,
//!   members, supervisors): [`Key::Company`] of that company. These are the
//!   only events besides a conversation's own that can change who may view it
//!   or whether a staff member is still active, so every staff subscription
//!   registers under its company to re-check access on them. They are rare.
//! - each notification the event produced: [`Key::Recipient`] of its recipient.
//!
//! Each registration has its own bounded buffer of [`CAPACITY`] events. The
//! projector never waits for a subscriber: when a buffer is full the
//! registration is removed and its feed ends with [`Lagged`] (the client
//! subscribes again). Dropping a [`Feed`] removes its registration;
//! [`Router::close`] (shutdown) removes them all, which ends every feed.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use backchannel_domain::events::StreamId;
use backchannel_domain::ids::{CompanyId, ConversationId, StaffId};
use backchannel_eventlog::RecordedEvent;
use backchannel_projections::StoredNotification;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

/// How many committed events a slow subscriber may fall behind.
pub(crate) const CAPACITY: usize = 4096;

/// One event as the projector applied it, for live subscriptions.
#[derive(Debug)]
pub struct Committed {
    pub recorded: RecordedEvent,
    /// The notifications this event produced (SPEC section 5).
    pub notifications: Vec<StoredNotification>,
}

/// What a subscription listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// The events of one conversation's stream.
    Conversation(ConversationId),
    /// Events that notify this staff member.
    Recipient(StaffId),
    /// The company stream's events (who may see what, who is active).
    Company(CompanyId),
}

/// The subscription fell [`CAPACITY`] events behind and was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lagged;

/// The registry of live subscriptions. Shared by the desk (the projector
/// delivers, shutdown closes) and every [`Feed`] (which removes itself when
/// dropped); the lock is held for map updates and non-blocking sends only,
/// never across an await.
#[derive(Debug, Default)]
pub struct Router {
    registry: Mutex<Registry>,
    /// Events handed to registrations so far (one per registration reached).
    delivered: AtomicU64,
}

#[derive(Debug, Default)]
struct Registry {
    closed: bool,
    next_id: u64,
    registrations: HashMap<u64, Registration>,
    by_key: HashMap<Key, HashSet<u64>>,
}

#[derive(Debug)]
struct Registration {
    sender: mpsc::Sender<Arc<Committed>>,
    keys: Vec<Key>,
    lagged: Arc<AtomicBool>,
}

impl Registry {
    fn remove(&mut self, id: u64) {
        let Some(registration) = self.registrations.remove(&id) else {
            return;
        };
        for key in &registration.keys {
            if let Some(ids) = self.by_key.get_mut(key) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.by_key.remove(key);
                }
            }
        }
    }
}

/// A subscription's side: the events routed to its keys, in commit order.
#[derive(Debug)]
pub struct Feed {
    receiver: mpsc::Receiver<Arc<Committed>>,
    lagged: Arc<AtomicBool>,
    router: Arc<Router>,
    id: u64,
}

impl Feed {
    /// The next event, `Err(Lagged)` once the subscriber fell too far behind,
    /// `None` after shutdown.
    pub async fn next(&mut self) -> Option<Result<Arc<Committed>, Lagged>> {
        if self.lagged.load(Ordering::Acquire) {
            return Some(Err(Lagged));
        }
        match self.receiver.recv().await {
            Some(committed) => Some(Ok(committed)),
            None if self.lagged.load(Ordering::Acquire) => Some(Err(Lagged)),
            None => None,
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.router.lock().remove(self.id);
    }
}

impl Router {
    pub fn new() -> Arc<Router> {
        Arc::new(Router::default())
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a subscription under `keys`; `None` after [`Router::close`].
    pub fn subscribe(self: &Arc<Self>, keys: &[Key]) -> Option<Feed> {
        let (sender, receiver) = mpsc::channel(CAPACITY);
        let lagged = Arc::new(AtomicBool::new(false));
        let mut registry = self.lock();
        if registry.closed {
            return None;
        }
        let id = registry.next_id;
        registry.next_id += 1;
        let mut unique: Vec<Key> = Vec::with_capacity(keys.len());
        for key in keys {
            if !unique.contains(key) {
                unique.push(*key);
            }
        }
        for key in &unique {
            registry.by_key.entry(*key).or_default().insert(id);
        }
        registry.registrations.insert(
            id,
            Registration {
                sender,
                keys: unique,
                lagged: lagged.clone(),
            },
        );
        drop(registry);
        Some(Feed {
            receiver,
            lagged,
            router: self.clone(),
            id,
        })
    }

    /// Hands `committed` to the registrations it concerns (see the module
    /// docs), each once, without waiting for any of them.
    pub fn deliver(&self, committed: Committed) {
        let mut keys = Vec::with_capacity(1 + committed.notifications.len());
        keys.push(match committed.recorded.event.stream() {
            StreamId::Conversation(conversation) => Key::Conversation(conversation),
            StreamId::Company(company) => Key::Company(company),
            // The read audit concerns no subscription.
            StreamId::ReadAudit(_) => return,
        });
        keys.extend(
            committed
                .notifications
                .iter()
                .map(|n| Key::Recipient(n.recipient)),
        );
        let mut registry = self.lock();
        let mut targets: Vec<u64> = keys
            .iter()
            .filter_map(|key| registry.by_key.get(key))
            .flatten()
            .copied()
            .collect();
        if targets.is_empty() {
            return;
        }
        targets.sort_unstable();
        targets.dedup();
        let committed = Arc::new(committed);
        let mut gone = Vec::new();
        let mut delivered = 0;
        for id in targets {
            let Some(registration) = registry.registrations.get(&id) else {
                continue;
            };
            match registration.sender.try_send(committed.clone()) {
                Ok(()) => delivered += 1,
                Err(TrySendError::Full(_)) => {
                    registration.lagged.store(true, Ordering::Release);
                    gone.push(id);
                }
                Err(TrySendError::Closed(_)) => gone.push(id),
            }
        }
        for id in gone {
            registry.remove(id);
        }
        drop(registry);
        self.delivered.fetch_add(delivered, Ordering::Relaxed);
    }

    /// Ends every feed and refuses new subscriptions (shutdown).
    pub fn close(&self) {
        let mut registry = self.lock();
        registry.closed = true;
        registry.registrations.clear();
        registry.by_key.clear();
    }

    /// How many subscriptions are registered, and under how many keys.
    pub fn registrations(&self) -> (usize, usize) {
        let registry = self.lock();
        (registry.registrations.len(), registry.by_key.len())
    }

    /// How many times an event was handed to a registration so far.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use backchannel_domain::events::{ConversationClosed, Event, GroupCreated};
    use backchannel_domain::ids::{CommandId, CorrelationId, EventId, GroupId};
    use backchannel_domain::model::{Actor, Channel, RoutingType};
    use backchannel_domain::notify::NotificationKind;
    use backchannel_domain::values::Name;
    use backchannel_eventlog::{Envelope, RecordedAt};

    fn committed(event: Event, notify: &[StaffId]) -> Committed {
        let envelope = Envelope {
            position: 1,
            stream: event.stream(),
            stream_version: 1,
            event_id: EventId::new(),
            event_type: event.event_type(),
            schema_version: 1,
            codec_version: 1,
            recorded_at: RecordedAt::from_micros(0),
            actor: Actor::System,
            command_id: CommandId::new(),
            correlation_id: CorrelationId::new(),
            prev_hash: [0; 32],
        };
        let notifications = notify
            .iter()
            .map(|&recipient| StoredNotification {
                id: 1,
                recipient,
                kind: NotificationKind::PrivateMessage,
                conversation: ConversationId::new(),
                group: GroupId::new(),
                channel: Channel::Chat,
                at: RecordedAt::from_micros(0),
            })
            .collect();
        Committed {
            recorded: RecordedEvent { envelope, event },
            notifications,
        }
    }

    fn closed(conversation: ConversationId) -> Event {
        Event::ConversationClosed(ConversationClosed { conversation })
    }

    fn company_event(company: CompanyId) -> Event {
        Event::GroupCreated(GroupCreated {
            company,
            group: GroupId::new(),
            name: Name::parse("Support").unwrap(),
            routing: RoutingType::Broadcast,
        })
    }

    /// A feed of one conversation's events.
    fn conversation_feed(router: &Arc<Router>, conversation: ConversationId) -> Feed {
        router
            .subscribe(&[Key::Conversation(conversation)])
            .unwrap()
    }

    /// What the feed holds right now, without waiting.
    fn pending(feed: &mut Feed) -> usize {
        let mut n = 0;
        while feed.receiver.try_recv().is_ok() {
            n += 1;
        }
        n
    }

    #[test]
    fn an_event_reaches_only_the_registrations_of_its_keys() {
        let router = Router::new();
        let (mine, other) = (ConversationId::new(), ConversationId::new());
        let (company, other_company) = (CompanyId::new(), CompanyId::new());
        let (me, colleague) = (StaffId::new(), StaffId::new());
        let mut events = router
            .subscribe(&[Key::Conversation(mine), Key::Company(company)])
            .unwrap();
        let mut notes = router
            .subscribe(&[Key::Recipient(me), Key::Company(company)])
            .unwrap();
        let mut customer = conversation_feed(&router, mine);
        let mut unrelated: Vec<Feed> = (0..100)
            .map(|_| {
                router
                    .subscribe(&[
                        Key::Conversation(ConversationId::new()),
                        Key::Company(other_company),
                    ])
                    .unwrap()
            })
            .collect();

        router.deliver(committed(closed(mine), &[]));
        assert_eq!(
            router.delivered(),
            2,
            "the conversation's two subscriptions"
        );
        router.deliver(committed(closed(other), &[me]));
        assert_eq!(router.delivered(), 3, "the recipient's notifications");
        router.deliver(committed(company_event(company), &[]));
        assert_eq!(router.delivered(), 5, "every subscription of the company");
        router.deliver(committed(closed(mine), &[me, me, colleague]));
        assert_eq!(router.delivered(), 8, "each registration once per event");

        assert_eq!(pending(&mut events), 3);
        assert_eq!(pending(&mut notes), 3);
        assert_eq!(pending(&mut customer), 2);
        assert!(unrelated.iter_mut().all(|feed| pending(feed) == 0));
    }

    #[test]
    fn dropped_feeds_leave_nothing_registered() {
        let router = Router::new();
        let company = CompanyId::new();
        let feeds: Vec<Feed> = (0..10)
            .map(|i| {
                router
                    .subscribe(&[
                        Key::Conversation(ConversationId::new()),
                        Key::Recipient(StaffId::new()),
                        Key::Company(company),
                        Key::Company(company),
                    ])
                    .unwrap_or_else(|| panic!("subscription {i}"))
            })
            .collect();
        assert_eq!(router.registrations(), (10, 21));
        drop(feeds);
        assert_eq!(router.registrations(), (0, 0));
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_too_far_behind_ends_lagged_and_others_go_on() {
        let router = Router::new();
        let conversation = ConversationId::new();
        let mut slow = conversation_feed(&router, conversation);
        let mut keeping_up = conversation_feed(&router, conversation);
        for _ in 0..CAPACITY {
            router.deliver(committed(closed(conversation), &[]));
            assert!(matches!(keeping_up.next().await, Some(Ok(_))));
        }
        assert_eq!(
            router.registrations().0,
            2,
            "a full buffer is not yet lagging"
        );
        router.deliver(committed(closed(conversation), &[]));
        assert_eq!(router.registrations().0, 1, "the slow one is dropped");
        assert!(matches!(slow.next().await, Some(Err(Lagged))));
        assert!(matches!(slow.next().await, Some(Err(Lagged))));
        assert!(matches!(keeping_up.next().await, Some(Ok(_))));
    }

    #[tokio::test]
    async fn closing_ends_every_feed_and_refuses_new_ones() {
        let router = Router::new();
        let conversation = ConversationId::new();
        let mut feed = conversation_feed(&router, conversation);
        router.deliver(committed(closed(conversation), &[]));
        router.close();
        assert_eq!(router.registrations(), (0, 0));
        assert!(
            router
                .subscribe(&[Key::Conversation(conversation)])
                .is_none()
        );
        assert!(
            matches!(feed.next().await, Some(Ok(_))),
            "what was delivered stays"
        );
        assert!(feed.next().await.is_none());
    }
}
