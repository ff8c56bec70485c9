//! The staff schema's subscriptions. Each listens to the events routed to it
//! (see [`crate::live`]): its conversation's or its notifications, and every
//! company-stream event of the subscriber's company, the only other events
//! that can change who may view a conversation or who is active staff. Every
//! such event re-checks, against the state after it, that the subscriber is
//! still active staff (else the stream ends with `UNAUTHENTICATED`) and still
//! may view the conversation (else it ends with `RESTRICTED_ACCESS`).

use crate::read_audit::Open;
use backchannel_domain::events::ContentPath;

use async_graphql::{Context, ID, Subscription as GqlSubscription};
use backchannel_domain::StreamId;
use backchannel_domain::ids::ConversationId;
use futures_util::Stream;

use crate::auth::StaffIdentity;
use crate::context::{Me, check_staff, me};
use crate::desk::Desk;
use crate::error::{ApiError, ApiResult};
use crate::graphql::ids::parse;
use crate::graphql::subscription::subscribe;
use crate::live::Key;
use crate::staff::conversation::{denied, load};
use crate::staff::notification::Notification;
use crate::staff::timeline::TimelineItem;

pub(crate) struct Subscription;

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
        // Subscribe before checking, so nothing committed in between is lost.
        let live = subscribe(
            ctx,
            &[Key::Conversation(conversation), Key::Company(me.company)],
        )?;
        load(ctx, me, conversation)?;
        let stream = StreamId::Conversation(conversation);
        Ok(live.items(move |desk, committed| {
            // The timeline's check: the policy, without composing a summary
            // per committed event and subscriber.
            still_me(desk, me)?;
            let rule = desk
                .models()
                .timeline(me.id, conversation)
                .map_err(denied)?;
            if committed.recorded.event.stream() != stream {
                return Ok(None);
            }
            let item = TimelineItem::from_recorded(&committed.recorded);
            if item.is_some() {
                // Content delivered: the read audit records it (coalesced,
                // without waiting).
                desk.record_open(Open {
                    company: me.company,
                    conversation,
                    staff: me.id,
                    rule,
                    path: ContentPath::Subscription,
                });
            }
            Ok(item)
        }))
    }

    /// Your notifications as they happen.
    async fn notifications(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = ApiResult<Notification>> + use<>, ApiError> {
        let me = me(ctx)?;
        let live = subscribe(ctx, &[Key::Recipient(me.id), Key::Company(me.company)])?;
        Ok(live.items(move |desk, committed| {
            still_me(desk, me)?;
            Ok(committed
                .notifications
                .iter()
                .filter(|n| n.recipient == me.id)
                .map(|n| Notification {
                    stored: *n,
                    read: false,
                })
                .collect::<Vec<_>>())
        }))
    }
}
