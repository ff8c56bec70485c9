//! Notifications (SPEC section 5): who, what kind, which conversation, group
//! and channel, when. No customer content, so no visibility check is needed
//! to show one; opening the conversation is checked as usual.

use async_graphql::{Context, ID, Object, SimpleObject};
use backchannel_projections::StoredNotification;

use crate::error::ApiResult;
use crate::graphql::enums::{Channel, NotificationKind};
use crate::graphql::ids::id;
use crate::graphql::paging::PageInfo;
use crate::graphql::serial::Serial;
use crate::graphql::time::DateTime;
use crate::staff::directory::{Group, group_one};

pub(crate) struct Notification {
    pub stored: StoredNotification,
    pub read: bool,
}

#[Object(serial)]
impl Notification {
    /// Pass it to `markNotificationsRead(upTo:)`.
    async fn id(&self) -> ID {
        ID(self.stored.id.to_string())
    }

    async fn kind(&self) -> NotificationKind {
        self.stored.kind.into()
    }

    async fn conversation_id(&self) -> ID {
        id(self.stored.conversation)
    }

    async fn group(&self, ctx: &Context<'_>) -> ApiResult<Option<Group>> {
        group_one(ctx, self.stored.group)
    }

    async fn channel(&self) -> Channel {
        self.stored.channel.into()
    }

    async fn at(&self) -> DateTime {
        self.stored.at.into()
    }

    async fn read(&self) -> bool {
        self.read
    }
}

#[derive(SimpleObject)]
#[graphql(serial)]
pub(crate) struct NotificationEdge {
    pub cursor: String,
    pub node: Notification,
}

/// Your notifications, newest first.
#[derive(SimpleObject)]
#[graphql(serial)]
pub(crate) struct NotificationConnection {
    pub edges: Serial<NotificationEdge>,
    pub page_info: PageInfo,
    pub unread_count: u64,
}
