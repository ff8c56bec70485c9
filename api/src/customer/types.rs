//! What a customer sees: their conversation and its public messages.

use async_graphql::{Enum, ID, SimpleObject};
use backchannel_domain::ids::ConversationId;
use backchannel_eventlog::RecordedEvent;
use backchannel_projections::customer::{CustomerAuthor, CustomerEvent, customer_event};

use crate::desk::Desk;
use crate::error::{ApiError, ApiResult};
use crate::graphql::enums::{Channel, ConversationStatus};
use crate::graphql::ids::id;
use crate::graphql::time::DateTime;

/// Who wrote a message, as the customer may know it.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum Author {
    /// You.
    Customer,
    /// The company's support staff.
    Staff,
}

/// A message of the chat.
#[derive(SimpleObject)]
pub struct CustomerMessage {
    pub id: ID,
    pub at: DateTime,
    pub author: Author,
    /// The staff member's display name; null for your own messages.
    pub author_name: Option<String>,
    pub body: String,
}

/// Your conversation with the company.
#[derive(SimpleObject)]
pub struct CustomerConversation {
    pub id: ID,
    pub channel: Channel,
    pub status: ConversationStatus,
    pub customer_name: String,
    pub opened_at: DateTime,
    /// The chat, oldest first.
    pub messages: Vec<CustomerMessage>,
}

/// The customer-safe view of one stored event, if it has one.
pub fn message(desk: &Desk, recorded: &RecordedEvent) -> Option<CustomerMessage> {
    let event = customer_event(desk.models().state(), &recorded.event)?;
    match event {
        CustomerEvent::Message {
            message,
            author,
            body,
            ..
        } => {
            let (author, author_name) = match author {
                CustomerAuthor::Customer => (Author::Customer, None),
                CustomerAuthor::Staff { name } => (Author::Staff, Some(name.as_str().to_owned())),
            };
            Some(CustomerMessage {
                id: id(message),
                at: DateTime(recorded.envelope.recorded_at),
                author,
                author_name,
                body: body.as_str().to_owned(),
            })
        }
        _ => None,
    }
}

/// The customer's conversation, built from the customer view only.
pub async fn conversation(
    desk: &Desk,
    conversation: ConversationId,
) -> ApiResult<CustomerConversation> {
    let not_found = || {
        ApiError::Domain(backchannel_domain::DomainError::NotFound(
            backchannel_domain::error::Missing::Conversation,
        ))
    };
    let (header, positions) = {
        let models = desk.models();
        let view = models
            .customer_conversation(conversation)
            .ok_or_else(not_found)?;
        (
            CustomerConversation {
                id: id(view.id),
                channel: view.channel.into(),
                status: view.status.into(),
                customer_name: view.customer.as_str().to_owned(),
                opened_at: DateTime(view.opened_at),
                messages: Vec::new(),
            },
            view.positions.to_vec(),
        )
    };
    let events = desk.read_positions(&positions).await?;
    Ok(CustomerConversation {
        messages: events.iter().filter_map(|r| message(desk, r)).collect(),
        ..header
    })
}
