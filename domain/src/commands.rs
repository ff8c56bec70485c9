//! What clients ask for. A command names its target; ids of things it creates are
//! chosen by the caller, so deciding stays pure and a retried command creates the
//! same ids. Values are already parsed (`Name`, `MessageBody`).

use serde::Serialize;

use crate::events::StreamId;
use crate::ids::{CompanyId, ConversationId, GroupId, MessageId, StaffId, WidgetKey};
use crate::model::{Channel, MessageVisibility, Permission, Role, RoutingType};
use crate::values::{ErasureReason, MessageBody, Name, WidgetOrigins};

/// Serializable so the API can fingerprint a request's arguments (an
/// idempotency key reused with other arguments is refused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Command {
    /// Creates a company with its owner. Only the server itself (`backchannel init`).
    CreateCompany {
        company: CompanyId,
        name: Name,
        widget_key: WidgetKey,
        owner: StaffId,
        owner_name: Name,
    },
    UpdatePrivacySettings {
        company: CompanyId,
        private_conversations_enabled: bool,
        new_conversations_private: bool,
    },
    /// Replaces the list of origins the customer widget may call from.
    SetWidgetOrigins {
        company: CompanyId,
        origins: WidgetOrigins,
    },
    AddStaff {
        company: CompanyId,
        staff: StaffId,
        name: Name,
        role: Role,
    },
    ChangeRole {
        company: CompanyId,
        staff: StaffId,
        role: Role,
    },
    GrantPermission {
        company: CompanyId,
        staff: StaffId,
        permission: Permission,
    },
    RevokePermission {
        company: CompanyId,
        staff: StaffId,
        permission: Permission,
    },
    DeactivateStaff {
        company: CompanyId,
        staff: StaffId,
    },
    CreateGroup {
        company: CompanyId,
        group: GroupId,
        name: Name,
        routing: RoutingType,
    },
    RenameGroup {
        company: CompanyId,
        group: GroupId,
        name: Name,
    },
    SetGroupRouting {
        company: CompanyId,
        group: GroupId,
        routing: RoutingType,
    },
    AddGroupMember {
        company: CompanyId,
        group: GroupId,
        staff: StaffId,
    },
    RemoveGroupMember {
        company: CompanyId,
        group: GroupId,
        staff: StaffId,
    },
    AddGroupSupervisor {
        company: CompanyId,
        group: GroupId,
        staff: StaffId,
    },
    RemoveGroupSupervisor {
        company: CompanyId,
        group: GroupId,
        staff: StaffId,
    },
    /// Opened by the customer through the widget (the caller resolved the widget
    /// key to `company`) or by staff on a customer's behalf.
    OpenConversation {
        company: CompanyId,
        conversation: ConversationId,
        group: GroupId,
        channel: Channel,
        customer: Name,
        /// The customer's first message, posted in the same append as the
        /// opening (SPEC section 7: both or neither).
        first_message: Option<FirstMessage>,
    },
    /// Assigns a queued conversation, or transfers a handled one.
    AssignConversation {
        conversation: ConversationId,
        assignee: StaffId,
    },
    InviteToRoom {
        conversation: ConversationId,
        staff: StaffId,
    },
    SetConversationPrivacy {
        conversation: ConversationId,
        private: bool,
    },
    SendMessage {
        conversation: ConversationId,
        message: MessageId,
        visibility: MessageVisibility,
        body: MessageBody,
    },
    /// Owner and admins: destroys the conversation's data key (SPEC section 12).
    EraseConversation {
        conversation: ConversationId,
        reason: ErasureReason,
    },
    CloseConversation {
        conversation: ConversationId,
    },
    ReopenConversation {
        conversation: ConversationId,
    },
    /// The acting staff member read their notifications up to the one caused
    /// by the event at global position `up_to`.
    MarkNotificationsRead {
        company: CompanyId,
        up_to: u64,
    },
}

/// A customer's first message, sent with the opening of their conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FirstMessage {
    pub message: MessageId,
    pub body: MessageBody,
}

impl Command {
    /// The command as its caller asked for it: the ids of what it creates
    /// (which the server picks afresh for every attempt) set to nil, so that
    /// two attempts of one request compare equal, and a request with other
    /// arguments does not.
    pub fn without_created_ids(&self) -> Command {
        let mut command = self.clone();
        match &mut command {
            Command::CreateCompany {
                company,
                widget_key,
                owner,
                ..
            } => {
                *company = CompanyId::from_bytes([0; 16]);
                *widget_key = WidgetKey::from_bytes([0; 16]);
                *owner = StaffId::from_bytes([0; 16]);
            }
            Command::AddStaff { staff, .. } => *staff = StaffId::from_bytes([0; 16]),
            Command::CreateGroup { group, .. } => *group = GroupId::from_bytes([0; 16]),
            Command::OpenConversation {
                conversation,
                first_message,
                ..
            } => {
                *conversation = ConversationId::from_bytes([0; 16]);
                if let Some(first) = first_message {
                    first.message = MessageId::from_bytes([0; 16]);
                }
            }
            Command::SendMessage { message, .. } => *message = MessageId::from_bytes([0; 16]),
            _ => {}
        }
        command
    }

    /// The stream the command's events are appended to; the caller reads its
    /// version before deciding and appends with it as the expected version.
    pub fn stream(&self) -> StreamId {
        match self {
            Command::CreateCompany { company, .. }
            | Command::UpdatePrivacySettings { company, .. }
            | Command::SetWidgetOrigins { company, .. }
            | Command::AddStaff { company, .. }
            | Command::ChangeRole { company, .. }
            | Command::GrantPermission { company, .. }
            | Command::RevokePermission { company, .. }
            | Command::DeactivateStaff { company, .. }
            | Command::CreateGroup { company, .. }
            | Command::RenameGroup { company, .. }
            | Command::SetGroupRouting { company, .. }
            | Command::AddGroupMember { company, .. }
            | Command::RemoveGroupMember { company, .. }
            | Command::AddGroupSupervisor { company, .. }
            | Command::RemoveGroupSupervisor { company, .. }
            | Command::MarkNotificationsRead { company, .. } => StreamId::Company(*company),
            Command::OpenConversation { conversation, .. }
            | Command::AssignConversation { conversation, .. }
            | Command::InviteToRoom { conversation, .. }
            | Command::SetConversationPrivacy { conversation, .. }
            | Command::SendMessage { conversation, .. }
            | Command::EraseConversation { conversation, .. }
            | Command::CloseConversation { conversation }
            | Command::ReopenConversation { conversation } => StreamId::Conversation(*conversation),
        }
    }
}
