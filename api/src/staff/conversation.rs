//! Conversations as staff see them: a summary from the read models, checked
//! by the visibility policy for the viewer, and its timeline from the log.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use backchannel_domain::DomainError;
use backchannel_domain::error::Missing;
use backchannel_domain::ids::{ConversationId, StaffId};
use backchannel_projections::{ConversationFilter as Filter, ConversationSummary, Denied};

use crate::context::{Me, shared};
use crate::error::{ApiError, ApiResult};
use crate::graphql::enums::{AccessRule, Channel, ConversationStatus};
use crate::graphql::ids::{id, parse};
use crate::graphql::paging::PageInfo;
use crate::graphql::serial::Serial;
use crate::graphql::time::DateTime;
use crate::staff::directory::{Group, Staff, group_one, staff_list, staff_one};
use crate::staff::timeline::TimelineItem;
use crate::staff::timeline_connection::{self, TimelineConnection};

pub(crate) fn denied(denied: Denied) -> ApiError {
    match denied {
        Denied::Restricted => DomainError::RestrictedAccess.into(),
        Denied::NotFound => DomainError::NotFound(Missing::Conversation).into(),
    }
}

/// The conversation as `me` may see it now, or the policy's refusal.
pub(crate) fn load(ctx: &Context<'_>, me: Me, id: ConversationId) -> ApiResult<Conversation> {
    let desk = &shared(ctx)?.desk;
    let models = desk.models();
    let summary = models.conversation(me.id, id).map_err(denied)?;
    Ok(Conversation::new(me.id, summary))
}

/// Like [`load`], but `None` when the viewer cannot see it (mutation payloads).
pub(crate) fn load_if_visible(
    ctx: &Context<'_>,
    me: Me,
    id: ConversationId,
) -> ApiResult<Option<Conversation>> {
    match load(ctx, me, id) {
        Ok(c) => Ok(Some(c)),
        Err(ApiError::Domain(DomainError::RestrictedAccess | DomainError::NotFound(_))) => Ok(None),
        Err(err) => Err(err),
    }
}

pub(crate) struct Conversation {
    viewer: StaffId,
    summary: ConversationSummary,
}

impl Conversation {
    /// `summary` as the read models composed it for `viewer`, after the
    /// policy's check (which it carries: the rule that granted it).
    pub(crate) fn new(viewer: StaffId, summary: ConversationSummary) -> Self {
        Conversation { viewer, summary }
    }
}

#[Object(serial)]
impl Conversation {
    pub async fn id(&self) -> ID {
        id(self.summary.id)
    }

    async fn group(&self, ctx: &Context<'_>) -> ApiResult<Option<Group>> {
        group_one(ctx, self.summary.group)
    }

    async fn channel(&self) -> Channel {
        self.summary.channel.into()
    }

    /// The customer's name; null with `ERASED` once the conversation was
    /// erased.
    async fn customer_name(&self, ctx: &Context<'_>) -> Option<String> {
        crate::error::customer_name_field(ctx, self.summary.id, &self.summary.customer).await
    }

    /// True once the owner or an admin erased the conversation's customer
    /// data (`eraseConversation`): its customer's name and its messages'
    /// bodies answer `ERASED`; its structure stays.
    async fn erased(&self) -> bool {
        self.summary.customer.is_erased()
    }

    /// The conversation's own privacy flag.
    async fn private(&self) -> bool {
        self.summary.private
    }

    /// Private in effect: its flag and the company's `privateConversationsEnabled`.
    async fn effectively_private(&self) -> bool {
        self.summary.effectively_private
    }

    async fn status(&self) -> ConversationStatus {
        self.summary.status.into()
    }

    async fn assignee(&self, ctx: &Context<'_>) -> ApiResult<Option<Staff>> {
        staff_one(ctx, self.summary.assignee)
    }

    /// The assignee and the staff invited into the room.
    async fn participants(&self, ctx: &Context<'_>) -> ApiResult<Vec<Staff>> {
        staff_list(ctx, self.summary.participants().into_iter())
    }

    async fn opened_at(&self) -> DateTime {
        self.summary.opened_at.into()
    }

    async fn updated_at(&self) -> DateTime {
        self.summary.updated_at.into()
    }

    async fn closed_at(&self) -> Option<DateTime> {
        self.summary.closed_at.map(DateTime)
    }

    async fn public_message_count(&self) -> u32 {
        self.summary.public_messages
    }

    async fn private_message_count(&self) -> u32 {
        self.summary.private_messages
    }

    /// The rule of SPEC section 3 that lets you see this conversation.
    async fn access_rule(&self) -> Option<AccessRule> {
        Some(self.summary.rule.into())
    }

    /// The last message, public or private.
    async fn last_message(&self, ctx: &Context<'_>) -> ApiResult<Option<TimelineItem>> {
        let Some(position) = self.summary.last_message else {
            return Ok(None);
        };
        // Visibility is checked again: the summary may be older than the state.
        // The message is a timeline item, so the timeline's check (the policy,
        // without composing a summary to throw away).
        let desk = &shared(ctx)?.desk;
        desk.models()
            .timeline(self.viewer, self.summary.id)
            .map_err(denied)?;
        // Boxed, like `timeline`'s page: every field of a conversation is
        // resolved in a future as big as the biggest field's, so the two that
        // read the log keep theirs on the heap.
        let events = Box::pin(desk.read_positions(&[position])).await?;
        Ok(events.first().and_then(TimelineItem::from_recorded))
    }

    /// Public and private messages and system events, oldest first, a page
    /// at a time (a Relay connection). Forward: `first` items (default and
    /// maximum: the page-size limit, 100) after the item whose cursor is
    /// `after`, from the oldest without it. Backward: `last` items before the
    /// item whose cursor is `before`, up to the newest without it; they are
    /// still listed oldest first. Mixing the two directions (`first` or
    /// `after` with `last` or `before`) is `VALIDATION`.
    #[graphql(
        complexity = "crate::config::page_items(first.or(last), crate::config::MAX_PAGE_SIZE) * child_complexity"
    )]
    async fn timeline(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> ApiResult<TimelineConnection> {
        let shared = shared(ctx)?;
        let request = timeline_connection::request(
            first,
            after.as_deref(),
            last,
            before.as_deref(),
            shared.limits.max_page_size,
        )?;
        Box::pin(timeline_connection::page(
            &shared.desk,
            self.viewer,
            self.summary.id,
            request,
        ))
        .await
    }
}

/// Narrows a conversation list; every field is optional.
#[derive(InputObject, Default)]
pub(crate) struct ConversationFilter {
    pub status: Option<ConversationStatus>,
    pub group_id: Option<ID>,
    pub assignee_id: Option<ID>,
    pub channel: Option<Channel>,
}

impl ConversationFilter {
    pub(crate) fn parse(&self) -> ApiResult<Filter> {
        Ok(Filter {
            status: self.status.map(Into::into),
            group: self.group_id.as_ref().map(parse).transpose()?,
            assignee: self.assignee_id.as_ref().map(parse).transpose()?,
            channel: self.channel.map(Into::into),
        })
    }
}

#[derive(SimpleObject)]
#[graphql(serial)]
pub(crate) struct ConversationEdge {
    pub cursor: String,
    pub node: Conversation,
}

/// A Relay connection of the conversations the viewer may see.
#[derive(SimpleObject)]
#[graphql(serial)]
pub(crate) struct ConversationConnection {
    pub edges: Serial<ConversationEdge>,
    pub page_info: PageInfo,
    /// How many conversations match, as the viewer may see them.
    pub total_count: u64,
}

/// One column of the enquiry overview.
#[derive(SimpleObject)]
#[graphql(serial)]
pub(crate) struct OverviewColumn {
    /// How many the viewer may see in this column (not only those listed).
    pub count: u64,
    pub items: Serial<Conversation>,
}

/// A group's conversations by status, as the viewer may see them.
#[derive(SimpleObject)]
#[graphql(serial)]
pub(crate) struct EnquiryOverview {
    pub group: Group,
    pub queued: OverviewColumn,
    pub handling: OverviewColumn,
    pub closed: OverviewColumn,
}
