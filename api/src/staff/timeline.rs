//! A conversation's timeline as staff see it: public messages, private
//! messages and system events, each marked by its type. Built from stored
//! events; only ever called for events of a conversation the viewer may view.
//! Paged by `timeline_connection`; every item carries its cursor there.

use async_graphql::{Context, Enum, ID, Object, SimpleObject, Union};
use backchannel_domain::events::{Event, MessageAuthor};
use backchannel_domain::ids::StaffId;
use backchannel_domain::model::Actor;
use backchannel_domain::values::{Content, MessageBody};
use backchannel_eventlog::RecordedEvent;

use crate::error::ApiResult;
use crate::graphql::enums::{ActorKind, MessageVisibility};
use crate::graphql::ids::id;
use crate::graphql::time::DateTime;
use crate::staff::directory::{Staff, staff_one};
use crate::staff::timeline_connection;

/// One entry of a conversation's timeline.
#[derive(Union)]
pub(crate) enum TimelineItem {
    PublicMessage(PublicMessage),
    PrivateMessage(PrivateMessage),
    SystemEvent(SystemEvent),
}

impl TimelineItem {
    /// The item a stored event of a conversation's stream is, if any.
    pub(crate) fn from_recorded(recorded: &RecordedEvent) -> Option<TimelineItem> {
        let place = ItemPlace {
            cursor: timeline_connection::cursor(ordinal(recorded)?),
            at: DateTime(recorded.envelope.recorded_at),
        };
        Some(match &recorded.event {
            Event::MessagePosted(e) => TimelineItem::PublicMessage(PublicMessage {
                id: id(e.message),
                place,
                author: match e.author {
                    MessageAuthor::Customer => None,
                    MessageAuthor::Staff(s) => Some(s),
                },
                body: e.body.clone(),
            }),
            Event::PrivateMessagePosted(e) => TimelineItem::PrivateMessage(PrivateMessage {
                id: id(e.message),
                place,
                author: e.author,
                body: e.body.clone(),
            }),
            event => {
                let (kind, staff) = system_kind(event)?;
                TimelineItem::SystemEvent(SystemEvent {
                    id: id(recorded.envelope.event_id),
                    place,
                    kind,
                    actor: recorded.envelope.actor,
                    staff,
                })
            }
        })
    }
}

/// A stored event's place in its conversation's timeline: its index in the
/// stream (versions count from 1). `None` for an event of no stream version.
pub(crate) fn ordinal(recorded: &RecordedEvent) -> Option<usize> {
    usize::try_from(recorded.envelope.stream_version.checked_sub(1)?).ok()
}

/// Where and when an item stands in its conversation's timeline: the fields
/// every item has after its id. Each item flattens them into its own; the
/// type is registered but pruned as unused, so the schema never names it.
#[derive(SimpleObject)]
pub(crate) struct ItemPlace {
    /// The item's place in the conversation's timeline, as `timeline` takes
    /// it (`after:`, `before:`); the same as its edge's cursor. An item from
    /// `sendMessage` or `conversationEvents` can be paged from, e.g.
    /// `timeline(after:)` with the last one seen, after a reconnect.
    cursor: String,
    at: DateTime,
}

/// A message the customer sees.
pub(crate) struct PublicMessage {
    id: ID,
    place: ItemPlace,
    /// `None`: the customer wrote it.
    author: Option<StaffId>,
    body: Content<MessageBody>,
}

#[Object(serial)]
impl PublicMessage {
    /// The message's id.
    async fn id(&self) -> &ID {
        &self.id
    }

    #[graphql(flatten)]
    async fn place(&self) -> &ItemPlace {
        &self.place
    }

    /// Always `PUBLIC`.
    async fn visibility(&self) -> MessageVisibility {
        MessageVisibility::Public
    }

    /// True when the customer wrote it.
    async fn from_customer(&self) -> bool {
        self.author.is_none()
    }

    /// The staff author; null when the customer wrote it.
    async fn author(&self, ctx: &Context<'_>) -> ApiResult<Option<Staff>> {
        staff_one(ctx, self.author)
    }

    /// Null with `ERASED` once the conversation was erased.
    async fn body(&self, ctx: &Context<'_>) -> Option<String> {
        crate::error::content_field(ctx, &self.body)
    }
}

/// A staff-only message: never shown to the customer.
pub(crate) struct PrivateMessage {
    id: ID,
    place: ItemPlace,
    author: StaffId,
    body: Content<MessageBody>,
}

#[Object(serial)]
impl PrivateMessage {
    /// The message's id.
    async fn id(&self) -> &ID {
        &self.id
    }

    #[graphql(flatten)]
    async fn place(&self) -> &ItemPlace {
        &self.place
    }

    /// Always `PRIVATE`.
    async fn visibility(&self) -> MessageVisibility {
        MessageVisibility::Private
    }

    async fn author(&self, ctx: &Context<'_>) -> ApiResult<Option<Staff>> {
        staff_one(ctx, Some(self.author))
    }

    /// Null with `ERASED` once the conversation was erased.
    async fn body(&self, ctx: &Context<'_>) -> Option<String> {
        crate::error::content_field(ctx, &self.body)
    }
}

/// What happened to the conversation, other than a message.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum SystemEventKind {
    Opened,
    Assigned,
    InvitedToRoom,
    MadePrivate,
    MadePublic,
    Closed,
    Reopened,
    /// The owner or an admin erased its customer data (`staff`: who).
    Erased,
}

fn system_kind(event: &Event) -> Option<(SystemEventKind, Option<StaffId>)> {
    Some(match event {
        Event::ConversationOpened(_) => (SystemEventKind::Opened, None),
        Event::ConversationAssigned(e) => (SystemEventKind::Assigned, Some(e.assignee)),
        Event::StaffInvitedToRoom(e) => (SystemEventKind::InvitedToRoom, Some(e.staff)),
        Event::ConversationPrivacyChanged(e) if e.private => (SystemEventKind::MadePrivate, None),
        Event::ConversationPrivacyChanged(_) => (SystemEventKind::MadePublic, None),
        Event::ConversationClosed(_) => (SystemEventKind::Closed, None),
        Event::ConversationReopened(e) => (SystemEventKind::Reopened, e.assignee),
        Event::ConversationErased(e) => (SystemEventKind::Erased, Some(e.erased_by)),
        _ => return None,
    })
}

/// Who caused an event.
#[derive(SimpleObject)]
#[graphql(serial)]
pub(crate) struct ActorRef {
    pub kind: ActorKind,
    /// The staff id, or the conversation id for a customer; null for the system.
    pub id: Option<ID>,
}

impl From<Actor> for ActorRef {
    fn from(actor: Actor) -> Self {
        match actor {
            Actor::Staff(s) => ActorRef {
                kind: ActorKind::Staff,
                id: Some(id(s)),
            },
            Actor::Customer(c) => ActorRef {
                kind: ActorKind::Customer,
                id: Some(id(c)),
            },
            Actor::System => ActorRef {
                kind: ActorKind::System,
                id: None,
            },
        }
    }
}

/// A change of the conversation's routing, room, privacy or lifecycle.
pub(crate) struct SystemEvent {
    id: ID,
    place: ItemPlace,
    kind: SystemEventKind,
    actor: Actor,
    staff: Option<StaffId>,
}

#[Object(serial)]
impl SystemEvent {
    /// The stored event's id (as the audit trail's `eventId`).
    async fn id(&self) -> &ID {
        &self.id
    }

    #[graphql(flatten)]
    async fn place(&self) -> &ItemPlace {
        &self.place
    }

    async fn kind(&self) -> SystemEventKind {
        self.kind
    }

    async fn actor(&self) -> ActorRef {
        self.actor.into()
    }

    /// The staff member the event is about: the assignee, or the invitee.
    async fn staff(&self, ctx: &Context<'_>) -> ApiResult<Option<Staff>> {
        staff_one(ctx, self.staff)
    }
}
