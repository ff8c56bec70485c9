//! The staff schema's subscriptions. Each listens to the events routed to it
//! (see [`crate::live`]): its conversation's or its notifications, and every
//! company-stream event of the subscriber's company, the only other events
//! that can change who may view a conversation or who is active staff. Every
//! such event re-checks, against the state after it, that the subscriber is
//! still active staff (else the stream ends with `UNAUTHENTICATED`) and still
//! may view the conversation (else it ends with `RESTRICTED_ACCESS`).

use crate::read_audit::Open;
use backchannel_domain::events::ContentPath;
use std::sync::Arc;

use async_graphql::{Context, ID, Subscription as GqlSubscription};
use backchannel_domain::StreamId;
use backchannel_domain::ids::ConversationId;
use futures_util::Stream;
use futures_util::stream::unfold;

use crate::auth::StaffIdentity;
use crate::context::{Me, check_staff, me, shared};
use crate::desk::{Committed, Desk};
use crate::error::{ApiError, ApiResult};
use crate::graphql::ids::parse;
use crate::live::{Feed, Key};
use crate::staff::conversation::{denied, load};
use crate::staff::notification::Notification;
use crate::staff::timeline::TimelineItem;

pub(crate) struct Subscription;

type Live = (Feed, Arc<Desk>);
type LiveNotifications = (Feed, Arc<Desk>, Vec<Notification>);

fn still_me(desk: &Desk, me: Me) -> ApiResult<()> {
    check_staff(
        desk,
        StaffIdentity {
            staff: me.id,
            company: me.company,
        },
    )
    .map(|_| ())
}

/// The next committed event, or the error that ends the stream.
async fn next(feed: &mut Feed) -> Option<ApiResult<Arc<Committed>>> {
    feed.next()
        .await
        .map(|next| next.map_err(|_| ApiError::Lagged))
}

#[GqlSubscription]
impl Subscription {
    /// The conversation's timeline items as they are committed.
    async fn conversation_events(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
    ) -> Result<impl Stream<Item = ApiResult<TimelineItem>> + use<>, ApiError> {
        let me = me(ctx)?;
        let conversation: ConversationId = parse(&conversation_id)?;
        let desk = shared(ctx)?.desk.clone();
        // Subscribe before checking, so nothing committed in between is lost.
        let rx = desk
            .subscribe(&[Key::Conversation(conversation), Key::Company(me.company)])
            .ok_or(ApiError::ShuttingDown)?;
        load(ctx, me, conversation)?;
        let stream = StreamId::Conversation(conversation);
        Ok(unfold(
            Some((rx, desk)),
            move |live: Option<Live>| async move {
                let (mut rx, desk) = live?;
                loop {
                    let committed = match next(&mut rx).await? {
                        Ok(committed) => committed,
                        Err(err) => return Some((Err(err), None)),
                    };
                    // The timeline's check: the policy, without composing a
                    // summary per committed event and subscriber.
                    let check = still_me(&desk, me)
                        .and_then(|()| desk.models().timeline(me.id, conversation).map_err(denied));
                    let rule = match check {
                        Ok(rule) => rule,
                        Err(err) => return Some((Err(err), None)),
                    };
                    if committed.recorded.event.stream() == stream
                        && let Some(item) = TimelineItem::from_recorded(&committed.recorded)
                    {
                        // Content delivered: the read audit records it
                        // (coalesced, without waiting).
                        desk.record_open(Open {
                            company: me.company,
                            conversation,
                            staff: me.id,
                            rule,
                            path: ContentPath::Subscription,
                        });
                        return Some((Ok(item), Some((rx, desk))));
                    }
                }
            },
        ))
    }

    /// Your notifications as they happen.
    async fn notifications(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = ApiResult<Notification>> + use<>, ApiError> {
        let me = me(ctx)?;
        let desk = shared(ctx)?.desk.clone();
        let rx = desk
            .subscribe(&[Key::Recipient(me.id), Key::Company(me.company)])
            .ok_or(ApiError::ShuttingDown)?;
        let pending: Vec<Notification> = Vec::new();
        Ok(unfold(
            Some((rx, desk, pending)),
            move |live: Option<LiveNotifications>| async move {
                let (mut rx, desk, mut pending) = live?;
                loop {
                    if let Some(n) = pending.pop() {
                        return Some((Ok(n), Some((rx, desk, pending))));
                    }
                    let committed = match next(&mut rx).await? {
                        Ok(committed) => committed,
                        Err(err) => return Some((Err(err), None)),
                    };
                    if let Err(err) = still_me(&desk, me) {
                        return Some((Err(err), None));
                    }
                    pending = committed
                        .notifications
                        .iter()
                        .rev()
                        .filter(|n| n.recipient == me.id)
                        .map(|n| Notification {
                            stored: *n,
                            read: false,
                        })
                        .collect();
                }
            },
        ))
    }
}
