//! What both schemas' subscriptions share: a feed of the committed events
//! routed to them (see [`crate::live`]), turned into a stream of items.

use std::sync::Arc;

use async_graphql::Context;
use futures_util::Stream;
use futures_util::stream::unfold;

use crate::context::shared;
use crate::desk::{Committed, Desk};
use crate::error::{ApiError, ApiResult};
use crate::live::{Feed, Key};

/// A subscription's feed, and the desk whose state it reads.
pub(crate) struct Live {
    feed: Feed,
    desk: Arc<Desk>,
}

/// Registers a feed for the events routed to `keys`; `SHUTTING_DOWN` once
/// the server stops. Events committed from now on are kept for it, so a
/// check made after this call misses none.
pub(crate) fn subscribe(ctx: &Context<'_>, keys: &[Key]) -> ApiResult<Live> {
    let desk = shared(ctx)?.desk.clone();
    let feed = desk.subscribe(keys).ok_or(ApiError::ShuttingDown)?;
    Ok(Live { feed, desk })
}

impl Live {
    /// The items `each` makes of the committed events, in order: none, one
    /// or several per event. The stream ends after the first error, the
    /// feed's (`LAGGED`: it fell too far behind) or `each`'s (e.g. the
    /// subscriber may no longer see what it follows).
    pub(crate) fn items<T, I, F>(self, each: F) -> impl Stream<Item = ApiResult<T>>
    where
        I: IntoIterator<Item = T>,
        F: FnMut(&Desk, &Committed) -> ApiResult<I>,
    {
        let pending: Option<I::IntoIter> = None;
        unfold(Some((self, each, pending)), |state| async move {
            let (mut live, mut each, mut pending) = state?;
            loop {
                if let Some(item) = pending.as_mut().and_then(Iterator::next) {
                    return Some((Ok(item), Some((live, each, pending))));
                }
                let made = match live.feed.next().await? {
                    Ok(committed) => each(&live.desk, &committed),
                    Err(_) => Err(ApiError::Lagged),
                };
                match made {
                    Ok(items) => pending = Some(items.into_iter()),
                    Err(err) => return Some((Err(err), None)),
                }
            }
        })
    }
}
