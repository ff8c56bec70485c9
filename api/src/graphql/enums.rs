//! The glossary's enums as GraphQL enums (same names as SPEC: `OWNER`,
//! `BROADCAST`, `CHAT`, `QUEUED`, `PRIVATE`, ...).

use async_graphql::Enum;

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "backchannel_domain::model::Role")]
pub enum Role {
    Owner,
    Admin,
    Supervisor,
    Agent,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "backchannel_domain::model::Permission")]
pub enum Permission {
    EnquiryHistory,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "backchannel_domain::model::RoutingType")]
pub enum RoutingType {
    Broadcast,
    RoundRobin,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "backchannel_domain::model::Channel")]
pub enum Channel {
    Chat,
    Social,
    Email,
    Call,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "backchannel_domain::model::ConversationStatus")]
pub enum ConversationStatus {
    Queued,
    Handling,
    Closed,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "backchannel_domain::model::MessageVisibility")]
pub enum MessageVisibility {
    Public,
    Private,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "backchannel_domain::notify::NotificationKind")]
pub enum NotificationKind {
    ConversationOpened,
    Assigned,
    InvitedToRoom,
    PrivateMessage,
}

/// The rule (SPEC section 3) that lets the viewer see a conversation.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "backchannel_domain::visibility::Rule")]
pub enum AccessRule {
    R1,
    R2,
    R3,
    R4,
    R5,
    R6,
}

/// Who caused an event.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    Staff,
    Customer,
    System,
}
