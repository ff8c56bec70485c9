//! Conversation mutations: opening, assignment, the room, privacy,
//! messages, closing and reopening, and erasure.

use async_graphql::{Context, ID, Object, SimpleObject};
use backchannel_domain::Command;
use backchannel_domain::events::Event;
use backchannel_domain::ids::{ConversationId, GroupId, MessageId, StaffId};
use backchannel_domain::values::{ErasureReason, MessageBody};

use super::{name, run};
use crate::context::Me;
use crate::desk::opened_conversation;
use crate::error::{ApiError, ApiResult};
use crate::graphql::enums::{Channel, MessageVisibility};
use crate::graphql::ids::{id, parse};
use crate::graphql::operations as op;
use crate::staff::conversation::{Conversation, load_if_visible};
use crate::staff::timeline::TimelineItem;

#[derive(Default)]
pub(super) struct ConversationMutation;

/// The result of a mutation on one conversation.
#[derive(SimpleObject)]
#[graphql(serial)]
pub(crate) struct ConversationPayload {
    pub conversation_id: ID,
    /// The conversation as you may see it now; null if you no longer may
    /// (e.g. you transferred a private conversation to a colleague).
    pub conversation: Option<Conversation>,
}

fn conversation_payload(
    ctx: &Context<'_>,
    me: Me,
    conversation: ConversationId,
) -> ApiResult<ConversationPayload> {
    Ok(ConversationPayload {
        conversation_id: id(conversation),
        conversation: load_if_visible(ctx, me, conversation)?,
    })
}

/// Runs `command` on `conversation` (see [`run`]) and answers with the
/// conversation as the caller may see it afterwards.
async fn on_conversation(
    ctx: &Context<'_>,
    operation: &str,
    conversation: ConversationId,
    command: Command,
    idempotency_key: Option<String>,
) -> ApiResult<ConversationPayload> {
    let (me, _) = run(ctx, operation, |_| Ok(command), idempotency_key).await?;
    conversation_payload(ctx, me, conversation)
}

/// The result of `sendMessage`.
#[derive(SimpleObject)]
#[graphql(serial)]
pub(crate) struct MessagePayload {
    /// The stored message (the first one, for a retried idempotency key).
    pub message: TimelineItem,
    pub conversation: Option<Conversation>,
}

#[Object(serial)]
impl ConversationMutation {
    /// Opens a conversation on a customer's behalf (e.g. logging a call).
    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn open_conversation(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        customer_name: String,
        channel: Channel,
        idempotency_key: Option<String>,
    ) -> ApiResult<ConversationPayload> {
        let group: GroupId = parse(&group_id)?;
        let customer = name(&customer_name)?;
        let (me, executed) = run(
            ctx,
            op::OPEN_CONVERSATION,
            |me| {
                Ok(Command::OpenConversation {
                    company: me.company,
                    conversation: ConversationId::new(),
                    group,
                    channel: channel.into(),
                    customer,
                    first_message: None,
                })
            },
            idempotency_key,
        )
        .await?;
        let opened = executed.created(
            op::OPEN_CONVERSATION,
            "no ConversationOpened event",
            opened_conversation,
        )?;
        conversation_payload(ctx, me, opened)
    }

    /// Assigns a queued conversation, or transfers a handled one.
    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn assign_conversation(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
        assignee_id: ID,
        idempotency_key: Option<String>,
    ) -> ApiResult<ConversationPayload> {
        let conversation: ConversationId = parse(&conversation_id)?;
        let assignee: StaffId = parse(&assignee_id)?;
        let command = Command::AssignConversation {
            conversation,
            assignee,
        };
        on_conversation(
            ctx,
            op::ASSIGN_CONVERSATION,
            conversation,
            command,
            idempotency_key,
        )
        .await
    }

    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn invite_to_room(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
        staff_id: ID,
        idempotency_key: Option<String>,
    ) -> ApiResult<ConversationPayload> {
        let conversation: ConversationId = parse(&conversation_id)?;
        let staff: StaffId = parse(&staff_id)?;
        let command = Command::InviteToRoom {
            conversation,
            staff,
        };
        on_conversation(
            ctx,
            op::INVITE_TO_ROOM,
            conversation,
            command,
            idempotency_key,
        )
        .await
    }

    /// Posts a `PUBLIC` message (the customer sees it) or a `PRIVATE` one
    /// (staff only; not in `EMAIL` and `CALL` conversations).
    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn send_message(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
        body: String,
        visibility: MessageVisibility,
        idempotency_key: Option<String>,
    ) -> ApiResult<MessagePayload> {
        let conversation: ConversationId = parse(&conversation_id)?;
        let body = MessageBody::parse(&body).map_err(|e| ApiError::validation(e.to_string()))?;
        let (me, executed) = run(
            ctx,
            op::SEND_MESSAGE,
            |_| {
                Ok(Command::SendMessage {
                    conversation,
                    message: MessageId::new(),
                    visibility: visibility.into(),
                    body,
                })
            },
            idempotency_key,
        )
        .await?;
        let message = executed
            .events
            .iter()
            .find(|r| {
                matches!(
                    r.event,
                    Event::MessagePosted(_) | Event::PrivateMessagePosted(_)
                )
            })
            .and_then(TimelineItem::from_recorded)
            .ok_or_else(|| ApiError::broken(op::SEND_MESSAGE, "no message event"))?;
        Ok(MessagePayload {
            message,
            conversation: load_if_visible(ctx, me, conversation)?,
        })
    }

    /// Owner and admins: make one conversation private or public.
    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn set_conversation_privacy(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
        private: bool,
        idempotency_key: Option<String>,
    ) -> ApiResult<ConversationPayload> {
        let conversation: ConversationId = parse(&conversation_id)?;
        let command = Command::SetConversationPrivacy {
            conversation,
            private,
        };
        on_conversation(
            ctx,
            op::SET_CONVERSATION_PRIVACY,
            conversation,
            command,
            idempotency_key,
        )
        .await
    }

    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn close_conversation(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
        idempotency_key: Option<String>,
    ) -> ApiResult<ConversationPayload> {
        let conversation: ConversationId = parse(&conversation_id)?;
        let command = Command::CloseConversation { conversation };
        on_conversation(
            ctx,
            op::CLOSE_CONVERSATION,
            conversation,
            command,
            idempotency_key,
        )
        .await
    }

    /// Owner and admins: erases the conversation's customer data by
    /// destroying its data key (SPEC section 12); its structure stays.
    /// Conversations stored before encryption are refused (`VALIDATION`, with
    /// a pointer to the migration in docs/erasure.md).
    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn erase_conversation(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
        reason: String,
        idempotency_key: Option<String>,
    ) -> ApiResult<ConversationPayload> {
        let conversation: ConversationId = parse(&conversation_id)?;
        // The reason is parsed inside `run`, once the caller and its rate
        // limit are checked.
        let (me, _) = run(
            ctx,
            op::ERASE_CONVERSATION,
            |_| {
                Ok(Command::EraseConversation {
                    conversation,
                    reason: ErasureReason::parse(&reason)
                        .map_err(|e| ApiError::validation(e.to_string()))?,
                })
            },
            idempotency_key,
        )
        .await?;
        conversation_payload(ctx, me, conversation)
    }

    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn reopen_conversation(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
        idempotency_key: Option<String>,
    ) -> ApiResult<ConversationPayload> {
        let conversation: ConversationId = parse(&conversation_id)?;
        let command = Command::ReopenConversation { conversation };
        on_conversation(
            ctx,
            op::REOPEN_CONVERSATION,
            conversation,
            command,
            idempotency_key,
        )
        .await
    }
}
