//! What a customer may ever see of their conversation.
//!
//! [`CustomerEvent`] has no variant that can hold a private message, a staff
//! member's id or any other staff-only fact, and [`customer_event`] — an
//! exhaustive match with no wildcard — is the only way to make one. The
//! customer read model applies `CustomerEvent`s only, so it never receives a
//! private message: not by a filter at the end, but because the type cannot
//! carry one. A new event type must be classified here before anything builds.

use std::collections::HashMap;

use backchannel_domain::State;
use backchannel_domain::events::{Event, MessageAuthor};
use backchannel_domain::ids::{CompanyId, ConversationId, MessageId};
use backchannel_domain::model::{Channel, ConversationStatus};
use backchannel_domain::values::{Content, MessageBody, Name};
use backchannel_eventlog::RecordedAt;

/// Who wrote a message, as the customer sees it: themselves, or a staff member
/// by display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerAuthor {
    Customer,
    Staff { name: Name },
}

/// An event of the customer's conversation, as the customer may see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerEvent {
    Opened {
        conversation: ConversationId,
        company: CompanyId,
        channel: Channel,
        customer: Content<Name>,
    },
    /// Someone from the company took the conversation (who is not said).
    Assigned {
        conversation: ConversationId,
    },
    Message {
        conversation: ConversationId,
        message: MessageId,
        author: CustomerAuthor,
        body: Content<MessageBody>,
    },
    Closed {
        conversation: ConversationId,
    },
    Reopened {
        conversation: ConversationId,
        assigned: bool,
    },
}

impl CustomerEvent {
    pub fn conversation(&self) -> ConversationId {
        match self {
            CustomerEvent::Opened { conversation, .. }
            | CustomerEvent::Assigned { conversation }
            | CustomerEvent::Message { conversation, .. }
            | CustomerEvent::Closed { conversation }
            | CustomerEvent::Reopened { conversation, .. } => *conversation,
        }
    }
}

/// The customer's view of `event`, or `None` when the customer must never see
/// it. `state` supplies staff display names.
pub fn customer_event(state: &State, event: &Event) -> Option<CustomerEvent> {
    match event {
        Event::ConversationOpened(e) => Some(CustomerEvent::Opened {
            conversation: e.conversation,
            company: e.company,
            channel: e.channel,
            customer: e.customer.clone(),
        }),
        Event::ConversationAssigned(e) => Some(CustomerEvent::Assigned {
            conversation: e.conversation,
        }),
        Event::MessagePosted(e) => {
            let author = match e.author {
                MessageAuthor::Customer => CustomerAuthor::Customer,
                MessageAuthor::Staff(staff) => CustomerAuthor::Staff {
                    name: state.staff.get(&staff)?.name.clone(),
                },
            };
            Some(CustomerEvent::Message {
                conversation: e.conversation,
                message: e.message,
                author,
                body: e.body.clone(),
            })
        }
        Event::ConversationClosed(e) => Some(CustomerEvent::Closed {
            conversation: e.conversation,
        }),
        Event::ConversationReopened(e) => Some(CustomerEvent::Reopened {
            conversation: e.conversation,
            assigned: e.assignee.is_some(),
        }),
        // Staff-only: private messages, the room, privacy, and everything
        // about the company, its staff and groups.
        Event::PrivateMessagePosted(_)
        | Event::StaffInvitedToRoom(_)
        | Event::ConversationPrivacyChanged(_)
        | Event::CompanyCreated(_)
        | Event::PrivacySettingsChanged(_)
        | Event::WidgetOriginsChanged(_)
        | Event::StaffAdded(_)
        | Event::StaffRoleChanged(_)
        | Event::PermissionGranted(_)
        | Event::PermissionRevoked(_)
        | Event::StaffDeactivated(_)
        | Event::GroupCreated(_)
        | Event::GroupRenamed(_)
        | Event::GroupRoutingChanged(_)
        | Event::GroupMemberAdded(_)
        | Event::GroupMemberRemoved(_)
        | Event::GroupSupervisorAdded(_)
        | Event::GroupSupervisorRemoved(_)
        | Event::NotificationsMarkedRead(_)
        | Event::RoundRobinTurnTaken(_)
        | Event::ContentOpened(_)
        // The erasure shows through the content itself (erased from then on).
        | Event::ConversationErased(_) => None,
    }
}

/// What the customer model keeps of one conversation: only what differs from
/// the staff side. The header (company, channel, customer's name, opening
/// time) is the conversation's own, taken from the domain state and the
/// summary when a view is made (`ReadModels::customer_conversation`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct CustomerConversation {
    /// The status as the customer has been told it.
    pub(crate) status: ConversationStatus,
    /// Global positions of the events that have a customer view, in order.
    pub(crate) positions: Vec<u64>,
}

/// What the customer read model answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CustomerView<'a> {
    pub id: ConversationId,
    pub company: CompanyId,
    pub channel: Channel,
    pub status: ConversationStatus,
    pub customer: &'a Content<Name>,
    pub opened_at: RecordedAt,
    /// Global positions of the customer-visible events; read them from the log
    /// and pass each through [`customer_event`].
    pub positions: &'a [u64],
}

/// The customer read model. Its `apply` takes [`CustomerEvent`]s only.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Customers {
    by_conversation: HashMap<ConversationId, CustomerConversation>,
}

impl Customers {
    pub(crate) fn apply(&mut self, position: u64, event: &CustomerEvent) {
        if let CustomerEvent::Opened { conversation, .. } = event {
            self.by_conversation.insert(
                *conversation,
                CustomerConversation {
                    status: ConversationStatus::Queued,
                    positions: vec![position],
                },
            );
            return;
        }
        let Some(view) = self.by_conversation.get_mut(&event.conversation()) else {
            return;
        };
        view.positions.push(position);
        match event {
            CustomerEvent::Opened { .. } | CustomerEvent::Message { .. } => {}
            CustomerEvent::Assigned { .. } => view.status = ConversationStatus::Handling,
            CustomerEvent::Closed { .. } => view.status = ConversationStatus::Closed,
            CustomerEvent::Reopened { assigned, .. } => {
                view.status = if *assigned {
                    ConversationStatus::Handling
                } else {
                    ConversationStatus::Queued
                };
            }
        }
    }

    /// Gives back the slack of vectors grown by doubling (after a catch-up).
    pub(crate) fn shrink_to_fit(&mut self) {
        for conversation in self.by_conversation.values_mut() {
            conversation.positions.shrink_to_fit();
        }
    }

    pub(crate) fn get(&self, id: ConversationId) -> Option<&CustomerConversation> {
        self.by_conversation.get(&id)
    }
}
