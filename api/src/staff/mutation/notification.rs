//! Notification mutations.

use async_graphql::{Context, ID, Object, SimpleObject};
use backchannel_domain::Command;

use super::run;
use crate::context::shared;
use crate::error::{ApiError, ApiResult};
use crate::graphql::operations as op;

#[derive(Default)]
pub(super) struct NotificationMutation;

/// The result of `markNotificationsRead`.
#[derive(SimpleObject)]
#[graphql(name = "MarkNotificationsReadPayload", serial)]
pub(crate) struct NotificationsRead {
    pub unread_count: u64,
}

#[Object(serial)]
impl NotificationMutation {
    /// Marks your notifications read up to (and including) `upTo`, the id of
    /// a notification: one past the log's end is `VALIDATION` (it would mark
    /// notifications read before they exist).
    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn mark_notifications_read(
        &self,
        ctx: &Context<'_>,
        up_to: ID,
        idempotency_key: Option<String>,
    ) -> ApiResult<NotificationsRead> {
        let up_to: u64 = up_to
            .as_str()
            .parse()
            .map_err(|_| ApiError::validation("not a valid notification id"))?;
        // Every notification the caller can have seen was caused by an event
        // the read models have applied.
        if up_to > shared(ctx)?.desk.models().position() {
            return Err(ApiError::validation("no such notification"));
        }
        let (me, _) = run(
            ctx,
            op::MARK_NOTIFICATIONS_READ,
            |me| {
                Ok(Command::MarkNotificationsRead {
                    company: me.company,
                    up_to,
                })
            },
            idempotency_key,
        )
        .await?;
        let desk = &shared(ctx)?.desk;
        Ok(NotificationsRead {
            unread_count: desk.models().unread_notifications(me.id) as u64,
        })
    }
}
