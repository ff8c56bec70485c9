//! What a customer sees: their conversation and its public messages.

use async_graphql::{ComplexObject, Context, Enum, ID, SimpleObject};
use backchannel_domain::ids::ConversationId;
use backchannel_domain::values::{Content, MessageBody, Name};
use backchannel_eventlog::RecordedEvent;
use backchannel_projections::ReadModels;
use backchannel_projections::customer::{CustomerAuthor, CustomerEvent, customer_event};

use crate::context::shared;
use crate::customer::messages::{self, CustomerMessageConnection};
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
#[graphql(complex, serial)]
pub(crate) struct CustomerMessage {
    pub id: ID,
    pub at: DateTime,
    pub author: Author,
    /// The staff member's display name; null for your own messages.
    pub author_name: Option<String>,
    #[graphql(skip)]
    pub body: Content<MessageBody>,
    /// The message's place in your chat, as `messages` takes it (`after:`,
    /// `before:`); the same as its edge's cursor. A message received from
    /// `sendMessage` or the `messages` subscription can be paged from, e.g.
    /// `messages(after:)` with the last one seen, after a reconnect.
    pub cursor: String,
}

/// Your conversation with the company.
#[derive(SimpleObject)]
#[graphql(complex, serial)]
pub(crate) struct CustomerConversation {
    pub id: ID,
    pub channel: Channel,
    pub status: ConversationStatus,
    #[graphql(skip)]
    pub customer_name: Content<Name>,
    pub opened_at: DateTime,
    #[graphql(skip)]
    pub conversation: ConversationId,
}

#[ComplexObject]
impl CustomerMessage {
    /// Null with `ERASED` once the conversation was erased.
    async fn body(&self, ctx: &Context<'_>) -> Option<String> {
        crate::error::content_field(ctx, &self.body)
    }
}

#[ComplexObject]
impl CustomerConversation {
    /// Your name as the conversation has it; null with `ERASED` once it was
    /// erased.
    async fn customer_name(&self, ctx: &Context<'_>) -> Option<String> {
        crate::error::customer_name_field(ctx, self.conversation, &self.customer_name).await
    }

    /// The chat, oldest first, a page at a time (a Relay connection).
    /// Forward: `first` messages (default and maximum: the page-size limit,
    /// 100) after the message whose cursor is `after`, from the oldest
    /// without it. Backward, as a chat opens at its newest: `last` messages
    /// before the message whose cursor is `before`, up to the newest without
    /// it; they are still listed oldest first. Mixing the two directions
    /// (`first` or `after` with `last` or `before`) is `VALIDATION`.
    #[graphql(
        complexity = "crate::config::page_items(first.or(last), crate::config::MAX_PAGE_SIZE) * child_complexity"
    )]
    async fn messages(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> ApiResult<CustomerMessageConnection> {
        let shared = shared(ctx)?;
        let request = messages::MESSAGES.request(
            first,
            after.as_deref(),
            last,
            before.as_deref(),
            shared.limits.max_page_size,
        )?;
        messages::page(&shared.desk, self.conversation, request).await
    }
}

/// The customer-safe view of one stored event, if it is a message, with its
/// cursor (for `sendMessage` and the subscription).
pub(crate) fn message(desk: &Desk, recorded: &RecordedEvent) -> Option<CustomerMessage> {
    let models = desk.models();
    let event = customer_event(models.state(), &recorded.event)?;
    let ordinal = models
        .customer_conversation(event.conversation())?
        .positions
        .binary_search(&recorded.envelope.position)
        .ok()?;
    from_event(event, recorded, ordinal)
}

/// The customer-safe view of `recorded` if it is a message of `conversation`;
/// `ordinal` is its index in the customer view's positions. Under a read
/// guard the caller holds.
pub(crate) fn message_at(
    models: &ReadModels,
    conversation: ConversationId,
    recorded: &RecordedEvent,
    ordinal: usize,
) -> Option<CustomerMessage> {
    let event = customer_event(models.state(), &recorded.event)?;
    if event.conversation() != conversation {
        return None;
    }
    from_event(event, recorded, ordinal)
}

fn from_event(
    event: CustomerEvent,
    recorded: &RecordedEvent,
    ordinal: usize,
) -> Option<CustomerMessage> {
    let CustomerEvent::Message {
        message,
        author,
        body,
        ..
    } = event
    else {
        return None;
    };
    let (author, author_name) = match author {
        CustomerAuthor::Customer => (Author::Customer, None),
        CustomerAuthor::Staff { name } => (Author::Staff, Some(name.as_str().to_owned())),
    };
    Some(CustomerMessage {
        id: id(message),
        at: DateTime(recorded.envelope.recorded_at),
        author,
        author_name,
        body: body.clone(),
        cursor: messages::cursor(ordinal),
    })
}

pub(crate) fn not_found() -> ApiError {
    ApiError::Domain(backchannel_domain::DomainError::NotFound(
        backchannel_domain::error::Missing::Conversation,
    ))
}

/// The customer's conversation, built from the customer view only. Its
/// messages are read when (and as far as) the query pages through them.
pub(crate) fn conversation(
    desk: &Desk,
    conversation: ConversationId,
) -> ApiResult<CustomerConversation> {
    let models = desk.models();
    let view = models
        .customer_conversation(conversation)
        .ok_or_else(not_found)?;
    Ok(CustomerConversation {
        id: id(view.id),
        channel: view.channel.into(),
        status: view.status.into(),
        customer_name: view.customer.clone(),
        opened_at: DateTime(view.opened_at),
        conversation: view.id,
    })
}
