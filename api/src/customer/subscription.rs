use std::sync::Arc;

use async_graphql::{Context, Subscription as GqlSubscription};
use backchannel_domain::StreamId;
use futures_util::Stream;
use futures_util::stream::unfold;

use crate::context::{customer_conversation, shared};
use crate::customer::types::{CustomerMessage, message};
use crate::desk::Desk;
use crate::error::{ApiError, ApiResult};
use crate::live::{Feed, Key};

pub(crate) struct Subscription;

#[GqlSubscription]
impl Subscription {
    /// New messages of your conversation as they are posted (yours included).
    async fn messages(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = ApiResult<CustomerMessage>> + use<>, ApiError> {
        let conversation = customer_conversation(ctx)?;
        let desk = shared(ctx)?.desk.clone();
        // Only its conversation's events are routed to it.
        let rx = desk
            .subscribe(&[Key::Conversation(conversation)])
            .ok_or(ApiError::ShuttingDown)?;
        let stream = StreamId::Conversation(conversation);
        Ok(unfold(
            Some((rx, desk)),
            move |live: Option<(Feed, Arc<Desk>)>| async move {
                let (mut rx, desk) = live?;
                loop {
                    let committed = match rx.next().await? {
                        Ok(committed) => committed,
                        Err(_) => return Some((Err(ApiError::Lagged), None)),
                    };
                    if committed.recorded.event.stream() != stream {
                        continue;
                    }
                    if let Some(m) = message(&desk, &committed.recorded) {
                        return Some((Ok(m), Some((rx, desk))));
                    }
                }
            },
        ))
    }
}
