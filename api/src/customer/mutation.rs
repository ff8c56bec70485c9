use async_graphql::{Context, ID, Object, SimpleObject};
use backchannel_domain::commands::FirstMessage;
use backchannel_domain::error::Missing;
use backchannel_domain::events::Event;
use backchannel_domain::ids::{ConversationId, GroupId, MessageId, WidgetKey};
use backchannel_domain::model::{Actor, MessageVisibility};
use backchannel_domain::values::{MessageBody, Name};
use backchannel_domain::{Command, DomainError};

use crate::auth::CustomerIdentity;
use crate::context::{customer, shared};
use crate::cors::RequestOrigin;
use crate::customer::types::{CustomerConversation, CustomerMessage, conversation, message};
use crate::desk::{Executed, opened_conversation, start_command_id};
use crate::error::{ApiError, ApiResult};
use crate::graphql::enums::Channel;
use crate::graphql::ids::parse;
use crate::graphql::mutation::execute;
use crate::graphql::operations as op;
use crate::ratelimit::ClientAddr;

pub(crate) struct Mutation;

/// A new conversation and the token to follow it with.
#[derive(SimpleObject)]
#[graphql(name = "StartConversationPayload", serial)]
pub(crate) struct StartedConversation {
    /// Send it as `Authorization: Bearer <token>` from now on.
    pub token: String,
    pub conversation: CustomerConversation,
}

/// The result of `sendMessage`.
#[derive(SimpleObject)]
#[graphql(serial)]
pub(crate) struct CustomerMessagePayload {
    /// The stored message (the first one, for a retried idempotency key).
    pub message: CustomerMessage,
}

/// The result of `closeConversation`.
#[derive(SimpleObject)]
#[graphql(serial)]
pub(crate) struct CustomerConversationPayload {
    /// Your conversation as it is now.
    pub conversation: CustomerConversation,
}

/// Runs one command of the customer `me` through the desk: their
/// conversation's rate limit, then the desk's idempotent execution
/// (`graphql::mutation`).
async fn run(
    ctx: &Context<'_>,
    me: CustomerIdentity,
    operation: &str,
    command: Command,
    idempotency_key: Option<String>,
) -> ApiResult<Executed> {
    let limited = shared(ctx)?.limiters.customer_mutation(me.conversation);
    let actor = Actor::Customer(me.conversation);
    execute(
        ctx,
        actor,
        limited,
        operation,
        || Ok(command),
        idempotency_key,
    )
    .await
}

#[Object(serial)]
impl Mutation {
    /// Starts a conversation with the company whose widget key this is, with
    /// an optional first message (one append: both or neither). Needs no
    /// token; answers with one scoped to the new conversation. A retry with
    /// the same `idempotencyKey` (a random UUID per conversation: at least
    /// 16 characters, scoped to the widget key) and the same arguments gets
    /// the same conversation and a token for it, and appends nothing.
    #[graphql(complexity = "crate::config::MUTATION_COST")]
    #[allow(clippy::too_many_arguments)]
    async fn start_conversation(
        &self,
        ctx: &Context<'_>,
        widget_key: ID,
        group_id: ID,
        customer_name: String,
        #[graphql(default_with = "Channel::Chat")] channel: Channel,
        message: Option<String>,
        idempotency_key: Option<String>,
    ) -> ApiResult<StartedConversation> {
        let widget_key: WidgetKey = parse(&widget_key)?;
        let group: GroupId = parse(&group_id)?;
        let customer_name =
            Name::parse(&customer_name).map_err(|e| ApiError::validation(e.to_string()))?;
        let body = message
            .map(|m| MessageBody::parse(&m).map_err(|e| ApiError::validation(e.to_string())))
            .transpose()?;
        let keyed = idempotency_key
            .as_deref()
            .map(|key| start_command_id(widget_key, key))
            .transpose()?;
        let shared = shared(ctx)?;
        let company = shared
            .desk
            .models()
            .state()
            .company_by_widget_key(widget_key)
            .map(|c| c.id)
            .ok_or(DomainError::NotFound(Missing::Company))?;
        // From a browser on another origin, only one this company lists
        // (`cors`): a page elsewhere cannot open conversations in its name.
        if let Some(origin) = ctx.data_opt::<RequestOrigin>().and_then(|o| o.0.as_deref())
            && !crate::cors::company_allows(&shared.desk, company, origin)
        {
            return Err(DomainError::Forbidden(
                "this company's widget is not allowed on this website",
            )
            .into());
        }
        // Keyed only once the widget key is known to be a company's, so
        // made-up keys cannot grow the limiter.
        let client = ctx
            .data_opt::<ClientAddr>()
            .copied()
            .unwrap_or(ClientAddr::UNKNOWN);
        shared
            .limiters
            .widget_start(widget_key, client)
            .map_err(ApiError::RateLimited)?;
        let id = ConversationId::new();
        let open = Command::OpenConversation {
            company,
            conversation: id,
            group,
            channel: channel.into(),
            customer: customer_name,
            first_message: body.map(|body| FirstMessage {
                message: MessageId::new(),
                body,
            }),
        };
        let executed = shared
            .desk
            .execute_as(Actor::Customer(id), op::START_CONVERSATION, open, keyed)
            .await?;
        crate::position::note(ctx, &executed);
        // A retried key answers with the first attempt's conversation.
        let id = executed.created(
            op::START_CONVERSATION,
            "no ConversationOpened event",
            opened_conversation,
        )?;
        let token = shared
            .tokens
            .mint_customer(CustomerIdentity {
                conversation: id,
                company,
            })
            .map_err(|err| ApiError::internal("minting a customer token", err))?;
        Ok(StartedConversation {
            token: token.token,
            conversation: conversation(&shared.desk, id)?,
        })
    }

    /// Posts a message to your conversation.
    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn send_message(
        &self,
        ctx: &Context<'_>,
        body: String,
        idempotency_key: Option<String>,
    ) -> ApiResult<CustomerMessagePayload> {
        let me = customer(ctx)?;
        let body = MessageBody::parse(&body).map_err(|e| ApiError::validation(e.to_string()))?;
        let command = Command::SendMessage {
            conversation: me.conversation,
            message: MessageId::new(),
            visibility: MessageVisibility::Public,
            body,
        };
        let executed = run(ctx, me, op::SEND_MESSAGE, command, idempotency_key).await?;
        let desk = &shared(ctx)?.desk;
        executed
            .events
            .iter()
            .find(|r| matches!(r.event, Event::MessagePosted(_)))
            .and_then(|r| message(desk, r))
            .map(|message| CustomerMessagePayload { message })
            .ok_or_else(|| ApiError::broken("customer sendMessage", "no message event"))
    }

    /// Ends your chat.
    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn close_conversation(
        &self,
        ctx: &Context<'_>,
        idempotency_key: Option<String>,
    ) -> ApiResult<CustomerConversationPayload> {
        let me = customer(ctx)?;
        let command = Command::CloseConversation {
            conversation: me.conversation,
        };
        run(ctx, me, op::CLOSE_CONVERSATION, command, idempotency_key).await?;
        Ok(CustomerConversationPayload {
            conversation: conversation(&shared(ctx)?.desk, me.conversation)?,
        })
    }
}
