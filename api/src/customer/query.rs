use async_graphql::{Context, Object};

use crate::context::{customer_conversation, shared};
use crate::customer::types::{CustomerConversation, conversation};
use crate::error::ApiResult;

pub struct Query;

#[Object(serial)]
impl Query {
    /// Your conversation (the one your token is for), public messages only.
    async fn conversation(&self, ctx: &Context<'_>) -> ApiResult<CustomerConversation> {
        let id = customer_conversation(ctx)?;
        conversation(&shared(ctx)?.desk, id)
    }
}
