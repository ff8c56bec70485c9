use std::sync::Arc;

use async_graphql::{Context, Subscription as GqlSubscription};
use backchannel_domain::StreamId;
use futures_util::Stream;
use futures_util::stream::unfold;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;

use crate::context::{customer_conversation, shared};
use crate::customer::types::{CustomerMessage, message};
use crate::desk::{Committed, Desk};
use crate::error::{ApiError, ApiResult};

pub struct Subscription;

#[GqlSubscription]
impl Subscription {
    /// New messages of your conversation as they are posted (yours included).
    async fn messages(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = ApiResult<CustomerMessage>> + use<>, ApiError> {
        let conversation = customer_conversation(ctx)?;
        let desk = shared(ctx)?.desk.clone();
        let rx = desk.subscribe().ok_or(ApiError::ShuttingDown)?;
        let stream = StreamId::Conversation(conversation);
        Ok(unfold(
            Some((rx, desk)),
            move |live: Option<(Receiver<Arc<Committed>>, Arc<Desk>)>| async move {
                let (mut rx, desk) = live?;
                loop {
                    let committed = match rx.recv().await {
                        Ok(committed) => committed,
                        Err(RecvError::Lagged(_)) => return Some((Err(ApiError::Lagged), None)),
                        Err(RecvError::Closed) => return None,
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
