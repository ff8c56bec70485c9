//! The event catalogue of SPEC section 6.
//!
//! Each event type is its own struct with a stable name and schema version, so the
//! log can store and decode each one independently: changing a struct's fields means
//! adding a new schema version, never editing an old one (`fixtures/events/` and the
//! eventlog's format test enforce this). Public and private messages are different
//! types, so no consumer can forward a private message by forgetting a flag.

use serde::{Deserialize, Serialize};

use crate::ids::{CompanyId, ConversationId, GroupId, MessageId, StaffId, WidgetKey};
use crate::model::{Channel, Permission, Role, RoutingType};
use crate::values::{Content, ErasureReason, MessageBody, Name, WidgetOrigins};
use crate::visibility::Rule;

/// The consistency boundary an event belongs to. Optimistic concurrency is per stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum StreamId {
    /// Company settings, staff and groups.
    Company(CompanyId),
    /// One conversation: its routing, room, privacy, messages and lifecycle.
    Conversation(ConversationId),
    /// A company's read audit (SPEC section 12): who opened which
    /// conversation's content. Its own stream, so recording a read never
    /// changes a conversation's version or activity, nor contends with the
    /// company stream's directory changes.
    ReadAudit(CompanyId),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompanyCreated {
    pub company: CompanyId,
    pub name: Name,
    pub widget_key: WidgetKey,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivacySettingsChanged {
    pub company: CompanyId,
    pub private_conversations_enabled: bool,
    pub new_conversations_private: bool,
}

/// The origins the company's customer widget may call from (replaces the
/// whole list; an empty list allows no other origin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WidgetOriginsChanged {
    pub company: CompanyId,
    pub origins: WidgetOrigins,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffAdded {
    pub company: CompanyId,
    pub staff: StaffId,
    pub name: Name,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffRoleChanged {
    pub company: CompanyId,
    pub staff: StaffId,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionGranted {
    pub company: CompanyId,
    pub staff: StaffId,
    pub permission: Permission,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionRevoked {
    pub company: CompanyId,
    pub staff: StaffId,
    pub permission: Permission,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffDeactivated {
    pub company: CompanyId,
    pub staff: StaffId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCreated {
    pub company: CompanyId,
    pub group: GroupId,
    pub name: Name,
    pub routing: RoutingType,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRenamed {
    pub company: CompanyId,
    pub group: GroupId,
    pub name: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRoutingChanged {
    pub company: CompanyId,
    pub group: GroupId,
    pub routing: RoutingType,
}

/// Shared shape of the four group-membership events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStaff {
    pub company: CompanyId,
    pub group: GroupId,
    pub staff: StaffId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationOpened {
    pub company: CompanyId,
    pub conversation: ConversationId,
    pub group: GroupId,
    pub channel: Channel,
    /// Sealed under the conversation's data key (schema version 2); in clear
    /// in version 1, the plaintext era.
    pub customer: Content<Name>,
    /// Copied from the company's `newConversationsPrivate` at opening.
    pub private: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationAssigned {
    pub conversation: ConversationId,
    pub assignee: StaffId,
    /// The assignee this one replaces (a transfer), if any.
    pub previous_assignee: Option<StaffId>,
    /// True when the group's round-robin rotation chose the assignee.
    pub round_robin: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffInvitedToRoom {
    pub conversation: ConversationId,
    pub staff: StaffId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationPrivacyChanged {
    pub conversation: ConversationId,
    pub private: bool,
}

/// Who wrote a public message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageAuthor {
    Staff(StaffId),
    Customer,
}

/// A message the customer sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagePosted {
    pub conversation: ConversationId,
    pub message: MessageId,
    pub author: MessageAuthor,
    /// Sealed under the conversation's data key (schema version 2).
    pub body: Content<MessageBody>,
}

/// A staff-only message. Only staff can write one, so the author is always staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateMessagePosted {
    pub conversation: ConversationId,
    pub message: MessageId,
    pub author: StaffId,
    /// Sealed under the conversation's data key (schema version 2).
    pub body: Content<MessageBody>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationClosed {
    pub conversation: ConversationId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationReopened {
    pub conversation: ConversationId,
    /// The assignee it returns to; `None` puts it back in the queue.
    pub assignee: Option<StaffId>,
}

/// The owner or an admin erased the conversation's customer data (SPEC
/// section 12): its data key was destroyed just before this event was
/// appended, so its sealed content opens for nobody. Who is `erased_by`, when
/// is the record's time, why is `reason`. Its structure (status, times,
/// assignments) stays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationErased {
    pub conversation: ConversationId,
    pub erased_by: StaffId,
    pub reason: ErasureReason,
}

/// The round-robin rotation of `group` chose `assignee` for `conversation`.
///
/// Recorded on the company stream, in the same append as the conversation's
/// opening and assignment, so that openings decided against the same
/// rotation conflict on the company stream's version: two can never take the
/// same turn, on one node or several (SPEC section 7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundRobinTurnTaken {
    pub company: CompanyId,
    pub group: GroupId,
    pub conversation: ConversationId,
    pub assignee: StaffId,
}

/// A staff member has read their notifications up to (and including) the one
/// caused by the event at global position `up_to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationsMarkedRead {
    pub company: CompanyId,
    pub staff: StaffId,
    pub up_to: u64,
}

/// What a staff member opened a conversation's content through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ContentPath {
    /// The staff GraphQL `timeline` of the conversation.
    Timeline,
    /// Its live events (`conversationEvents`), messages included.
    Subscription,
    /// The closed-enquiry report (HTTP `/reports/enquiries`).
    Report,
}

impl ContentPath {
    pub fn name(self) -> &'static str {
        match self {
            ContentPath::Timeline => "timeline",
            ContentPath::Subscription => "subscription",
            ContentPath::Report => "report",
        }
    }
}

/// The read audit (SPEC section 12): `staff` opened the content of
/// `conversation` through `path`, granted by `rule` of the visibility policy,
/// at `at` (µs since the Unix epoch, UTC, the server's clock when the read
/// happened). One entry stands for every open by the same staff member of the
/// same conversation within the recorder's window (see the api's
/// `read_audit`). On the company's [`StreamId::ReadAudit`] stream; it changes
/// no state that decisions or customers read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentOpened {
    pub company: CompanyId,
    pub conversation: ConversationId,
    pub staff: StaffId,
    pub rule: Rule,
    pub path: ContentPath,
    pub at: i64,
}

/// Every event the log can hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    CompanyCreated(CompanyCreated),
    PrivacySettingsChanged(PrivacySettingsChanged),
    StaffAdded(StaffAdded),
    StaffRoleChanged(StaffRoleChanged),
    PermissionGranted(PermissionGranted),
    PermissionRevoked(PermissionRevoked),
    StaffDeactivated(StaffDeactivated),
    GroupCreated(GroupCreated),
    GroupRenamed(GroupRenamed),
    GroupRoutingChanged(GroupRoutingChanged),
    GroupMemberAdded(GroupStaff),
    GroupMemberRemoved(GroupStaff),
    GroupSupervisorAdded(GroupStaff),
    GroupSupervisorRemoved(GroupStaff),
    ConversationOpened(ConversationOpened),
    ConversationAssigned(ConversationAssigned),
    StaffInvitedToRoom(StaffInvitedToRoom),
    ConversationPrivacyChanged(ConversationPrivacyChanged),
    MessagePosted(MessagePosted),
    PrivateMessagePosted(PrivateMessagePosted),
    ConversationClosed(ConversationClosed),
    ConversationReopened(ConversationReopened),
    NotificationsMarkedRead(NotificationsMarkedRead),
    RoundRobinTurnTaken(RoundRobinTurnTaken),
    WidgetOriginsChanged(WidgetOriginsChanged),
    ContentOpened(ContentOpened),
    ConversationErased(ConversationErased),
}

/// The name of an event's type, without its payload. `ALL` lists every one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    CompanyCreated,
    PrivacySettingsChanged,
    StaffAdded,
    StaffRoleChanged,
    PermissionGranted,
    PermissionRevoked,
    StaffDeactivated,
    GroupCreated,
    GroupRenamed,
    GroupRoutingChanged,
    GroupMemberAdded,
    GroupMemberRemoved,
    GroupSupervisorAdded,
    GroupSupervisorRemoved,
    ConversationOpened,
    ConversationAssigned,
    StaffInvitedToRoom,
    ConversationPrivacyChanged,
    MessagePosted,
    PrivateMessagePosted,
    ConversationClosed,
    ConversationReopened,
    NotificationsMarkedRead,
    RoundRobinTurnTaken,
    WidgetOriginsChanged,
    ContentOpened,
    ConversationErased,
}

impl EventType {
    pub const ALL: [EventType; 27] = [
        EventType::CompanyCreated,
        EventType::PrivacySettingsChanged,
        EventType::StaffAdded,
        EventType::StaffRoleChanged,
        EventType::PermissionGranted,
        EventType::PermissionRevoked,
        EventType::StaffDeactivated,
        EventType::GroupCreated,
        EventType::GroupRenamed,
        EventType::GroupRoutingChanged,
        EventType::GroupMemberAdded,
        EventType::GroupMemberRemoved,
        EventType::GroupSupervisorAdded,
        EventType::GroupSupervisorRemoved,
        EventType::ConversationOpened,
        EventType::ConversationAssigned,
        EventType::StaffInvitedToRoom,
        EventType::ConversationPrivacyChanged,
        EventType::MessagePosted,
        EventType::PrivateMessagePosted,
        EventType::ConversationClosed,
        EventType::ConversationReopened,
        EventType::NotificationsMarkedRead,
        EventType::RoundRobinTurnTaken,
        EventType::WidgetOriginsChanged,
        EventType::ContentOpened,
        EventType::ConversationErased,
    ];

    /// The stored type name. Never change one: stored events are forever.
    pub fn name(self) -> &'static str {
        match self {
            EventType::CompanyCreated => "CompanyCreated",
            EventType::PrivacySettingsChanged => "PrivacySettingsChanged",
            EventType::StaffAdded => "StaffAdded",
            EventType::StaffRoleChanged => "StaffRoleChanged",
            EventType::PermissionGranted => "PermissionGranted",
            EventType::PermissionRevoked => "PermissionRevoked",
            EventType::StaffDeactivated => "StaffDeactivated",
            EventType::GroupCreated => "GroupCreated",
            EventType::GroupRenamed => "GroupRenamed",
            EventType::GroupRoutingChanged => "GroupRoutingChanged",
            EventType::GroupMemberAdded => "GroupMemberAdded",
            EventType::GroupMemberRemoved => "GroupMemberRemoved",
            EventType::GroupSupervisorAdded => "GroupSupervisorAdded",
            EventType::GroupSupervisorRemoved => "GroupSupervisorRemoved",
            EventType::ConversationOpened => "ConversationOpened",
            EventType::ConversationAssigned => "ConversationAssigned",
            EventType::StaffInvitedToRoom => "StaffInvitedToRoom",
            EventType::ConversationPrivacyChanged => "ConversationPrivacyChanged",
            EventType::MessagePosted => "MessagePosted",
            EventType::PrivateMessagePosted => "PrivateMessagePosted",
            EventType::ConversationClosed => "ConversationClosed",
            EventType::ConversationReopened => "ConversationReopened",
            EventType::NotificationsMarkedRead => "NotificationsMarkedRead",
            EventType::RoundRobinTurnTaken => "RoundRobinTurnTaken",
            EventType::WidgetOriginsChanged => "WidgetOriginsChanged",
            EventType::ContentOpened => "ContentOpened",
            EventType::ConversationErased => "ConversationErased",
        }
    }

    pub fn from_name(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The schema version new events of this type are written with.
    pub fn current_schema_version(self) -> u16 {
        match self {
            // Version 2 seals the customer data (SPEC section 12).
            EventType::ConversationOpened
            | EventType::MessagePosted
            | EventType::PrivateMessagePosted => 2,
            _ => 1,
        }
    }
}

impl Event {
    /// The schema version this event is stored with: the type's current one,
    /// except that customer data kept in clear ([`Content::Legacy`], the
    /// plaintext era) is stored as version 1.
    pub fn schema_version(&self) -> u16 {
        let legacy = match self {
            Event::ConversationOpened(e) => e.customer.is_legacy(),
            Event::MessagePosted(e) => e.body.is_legacy(),
            Event::PrivateMessagePosted(e) => e.body.is_legacy(),
            _ => false,
        };
        match legacy {
            true => 1,
            false => self.event_type().current_schema_version(),
        }
    }

    pub fn event_type(&self) -> EventType {
        match self {
            Event::CompanyCreated(_) => EventType::CompanyCreated,
            Event::PrivacySettingsChanged(_) => EventType::PrivacySettingsChanged,
            Event::StaffAdded(_) => EventType::StaffAdded,
            Event::StaffRoleChanged(_) => EventType::StaffRoleChanged,
            Event::PermissionGranted(_) => EventType::PermissionGranted,
            Event::PermissionRevoked(_) => EventType::PermissionRevoked,
            Event::StaffDeactivated(_) => EventType::StaffDeactivated,
            Event::GroupCreated(_) => EventType::GroupCreated,
            Event::GroupRenamed(_) => EventType::GroupRenamed,
            Event::GroupRoutingChanged(_) => EventType::GroupRoutingChanged,
            Event::GroupMemberAdded(_) => EventType::GroupMemberAdded,
            Event::GroupMemberRemoved(_) => EventType::GroupMemberRemoved,
            Event::GroupSupervisorAdded(_) => EventType::GroupSupervisorAdded,
            Event::GroupSupervisorRemoved(_) => EventType::GroupSupervisorRemoved,
            Event::ConversationOpened(_) => EventType::ConversationOpened,
            Event::ConversationAssigned(_) => EventType::ConversationAssigned,
            Event::StaffInvitedToRoom(_) => EventType::StaffInvitedToRoom,
            Event::ConversationPrivacyChanged(_) => EventType::ConversationPrivacyChanged,
            Event::MessagePosted(_) => EventType::MessagePosted,
            Event::PrivateMessagePosted(_) => EventType::PrivateMessagePosted,
            Event::ConversationClosed(_) => EventType::ConversationClosed,
            Event::ConversationReopened(_) => EventType::ConversationReopened,
            Event::NotificationsMarkedRead(_) => EventType::NotificationsMarkedRead,
            Event::RoundRobinTurnTaken(_) => EventType::RoundRobinTurnTaken,
            Event::WidgetOriginsChanged(_) => EventType::WidgetOriginsChanged,
            Event::ContentOpened(_) => EventType::ContentOpened,
            Event::ConversationErased(_) => EventType::ConversationErased,
        }
    }

    /// The stream this event is appended to.
    pub fn stream(&self) -> StreamId {
        match self {
            Event::CompanyCreated(e) => StreamId::Company(e.company),
            Event::PrivacySettingsChanged(e) => StreamId::Company(e.company),
            Event::StaffAdded(e) => StreamId::Company(e.company),
            Event::StaffRoleChanged(e) => StreamId::Company(e.company),
            Event::PermissionGranted(e) => StreamId::Company(e.company),
            Event::PermissionRevoked(e) => StreamId::Company(e.company),
            Event::StaffDeactivated(e) => StreamId::Company(e.company),
            Event::GroupCreated(e) => StreamId::Company(e.company),
            Event::GroupRenamed(e) => StreamId::Company(e.company),
            Event::GroupRoutingChanged(e) => StreamId::Company(e.company),
            Event::GroupMemberAdded(e)
            | Event::GroupMemberRemoved(e)
            | Event::GroupSupervisorAdded(e)
            | Event::GroupSupervisorRemoved(e) => StreamId::Company(e.company),
            Event::ConversationOpened(e) => StreamId::Conversation(e.conversation),
            Event::ConversationAssigned(e) => StreamId::Conversation(e.conversation),
            Event::StaffInvitedToRoom(e) => StreamId::Conversation(e.conversation),
            Event::ConversationPrivacyChanged(e) => StreamId::Conversation(e.conversation),
            Event::MessagePosted(e) => StreamId::Conversation(e.conversation),
            Event::PrivateMessagePosted(e) => StreamId::Conversation(e.conversation),
            Event::ConversationClosed(e) => StreamId::Conversation(e.conversation),
            Event::ConversationReopened(e) => StreamId::Conversation(e.conversation),
            Event::NotificationsMarkedRead(e) => StreamId::Company(e.company),
            Event::RoundRobinTurnTaken(e) => StreamId::Company(e.company),
            Event::WidgetOriginsChanged(e) => StreamId::Company(e.company),
            Event::ContentOpened(e) => StreamId::ReadAudit(e.company),
            Event::ConversationErased(e) => StreamId::Conversation(e.conversation),
        }
    }
}
