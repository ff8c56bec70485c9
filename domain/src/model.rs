//! The glossary of SPEC section 1 as plain enums.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{ConversationId, StaffId};

/// A staff member's role in their company. Exactly one `Owner` per company.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    Owner,
    Admin,
    Supervisor,
    Agent,
}

impl Role {
    /// Owner and admins manage the company and see every conversation (R1).
    pub fn is_owner_or_admin(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

/// Grantable permissions. Today there is one; the enum keeps the door open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Permission {
    /// Read closed enquiries (with private messages) of one's groups and export their report.
    EnquiryHistory,
}

/// How a group hands out new conversations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RoutingType {
    /// New conversations wait unassigned in the group's queue.
    Broadcast,
    /// New conversations are assigned at once to the next active member in rotation.
    RoundRobin,
}

/// Where the customer reached the company.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Channel {
    Chat,
    Social,
    Email,
    Call,
}

impl Channel {
    /// Private messages need a room staff share with each other; mail threads and
    /// phone calls have none (SPEC section 4).
    pub fn supports_private_messages(self) -> bool {
        matches!(self, Channel::Chat | Channel::Social)
    }
}

/// Lifecycle of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConversationStatus {
    /// Open and unassigned.
    Queued,
    /// Open and assigned.
    Handling,
    Closed,
}

/// Who a message is meant for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MessageVisibility {
    /// The chat the customer sees.
    Public,
    /// Staff only; never reaches the customer.
    Private,
}

/// Who caused an event. Stored in every event envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Actor {
    Staff(StaffId),
    /// The customer of one conversation; their token is scoped to it.
    Customer(ConversationId),
    /// The server itself: round-robin routing, `backchannel init`, migrations.
    System,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Owner => "OWNER",
            Role::Admin => "ADMIN",
            Role::Supervisor => "SUPERVISOR",
            Role::Agent => "AGENT",
        })
    }
}
