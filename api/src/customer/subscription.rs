use async_graphql::{Context, Subscription as GqlSubscription};
use backchannel_domain::StreamId;
use futures_util::Stream;

use crate::context::customer_conversation;
use crate::customer::types::{CustomerMessage, message};
use crate::error::{ApiError, ApiResult};
use crate::graphql::subscription::subscribe;
use crate::live::Key;

pub(crate) struct Subscription;

#[GqlSubscription]
impl Subscription {
    /// New messages of your conversation as they are posted (yours included).
    async fn messages(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = ApiResult<CustomerMessage>> + use<>, ApiError> {
        let conversation = customer_conversation(ctx)?;
        // Only its conversation's events are routed to it.
        let live = subscribe(ctx, &[Key::Conversation(conversation)])?;
        let stream = StreamId::Conversation(conversation);
        Ok(live.items(move |desk, committed| {
            if committed.recorded.event.stream() != stream {
                return Ok(None);
            }
            Ok(message(desk, &committed.recorded))
        }))
    }
}
