use async_graphql::{Context, ID, Interface, Object};
use backchannel_domain::DomainError;
use backchannel_domain::error::Missing;
use backchannel_domain::ids::ConversationId;

use crate::context::{customer_conversation, shared};
use crate::customer::types::{CustomerConversation, conversation};
use crate::error::{ApiError, ApiResult};

pub(crate) struct Query;

/// An object with a globally unique id, refetchable with `node(id)`. A
/// customer reaches one: their own conversation.
#[derive(Interface)]
#[graphql(field(
    name = "id",
    ty = "&ID",
    desc = "Globally unique: `node(id:)` finds it again."
))]
pub(crate) enum Node {
    CustomerConversation(CustomerConversation),
}

#[Object(serial)]
impl Query {
    /// Your conversation (the one your token is for), public messages only.
    async fn conversation(&self, ctx: &Context<'_>) -> ApiResult<CustomerConversation> {
        let id = customer_conversation(ctx)?;
        conversation(&shared(ctx)?.desk, id)
    }

    /// Your conversation by its id (Relay's refetch); any other id, whether
    /// it names something or not, is null with a `NOT_FOUND` error.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Node>> {
        let own = customer_conversation(ctx)?;
        let asked: ConversationId = id
            .as_str()
            .parse()
            .map_err(|_| ApiError::validation("not a valid id"))?;
        if asked != own {
            return Err(DomainError::NotFound(Missing::Object).into());
        }
        conversation(&shared(ctx)?.desk, own).map(|c| Some(Node::CustomerConversation(c)))
    }
}
