//! The staff schema's queries.

use async_graphql::{Context, ID, Object, SimpleObject};
use backchannel_domain::DomainError;
use backchannel_domain::error::Missing;
use backchannel_domain::ids::{ConversationId, GroupId};
use backchannel_domain::permissions;

use crate::config::DEFAULT_PAGE_SIZE;
use crate::context::{me, shared};
use crate::error::{ApiError, ApiResult};
use crate::graphql::cursor;
use crate::graphql::ids::{direction, page_size, parse};
use crate::graphql::paging::PageInfo;
use crate::graphql::time::DateTime;
use crate::staff::access_log::{AccessLogConnection, access_log};
use crate::staff::conversation::{
    Conversation, ConversationConnection, ConversationEdge, ConversationFilter, EnquiryOverview,
    OverviewColumn, denied, load,
};
use crate::staff::directory::{Company, Group, Staff};
use crate::staff::node::{Node, node};
use crate::staff::notification::{Notification, NotificationConnection, NotificationEdge};
use crate::staff::timeline::ActorRef;

pub(crate) struct Query;

#[Object(serial)]
impl Query {
    /// The signed-in staff member.
    async fn me(&self, ctx: &Context<'_>) -> ApiResult<Staff> {
        let me = me(ctx)?;
        let desk = &shared(ctx)?.desk;
        let models = desk.models();
        models
            .state()
            .staff
            .get(&me.id)
            .cloned()
            .map(Staff)
            .ok_or(ApiError::Unauthenticated("the account is unknown"))
    }

    /// Your company and its privacy settings.
    async fn company(&self, ctx: &Context<'_>) -> ApiResult<Company> {
        let me = me(ctx)?;
        let desk = &shared(ctx)?.desk;
        Company::current(desk, me.company)
    }

    /// Your company's staff, by name.
    async fn staff(&self, ctx: &Context<'_>) -> ApiResult<Vec<Staff>> {
        let me = me(ctx)?;
        let desk = &shared(ctx)?.desk;
        let models = desk.models();
        let mut staff: Vec<Staff> = models
            .state()
            .staff
            .values()
            .filter(|s| s.company == me.company)
            .cloned()
            .map(Staff)
            .collect();
        staff.sort_by(|a, b| a.0.name.cmp(&b.0.name).then(a.0.id.cmp(&b.0.id)));
        Ok(staff)
    }

    /// Your company's groups, by name.
    async fn groups(&self, ctx: &Context<'_>) -> ApiResult<Vec<Group>> {
        let me = me(ctx)?;
        let desk = &shared(ctx)?.desk;
        let models = desk.models();
        let mut groups: Vec<Group> = models
            .state()
            .groups
            .values()
            .filter(|g| g.company == me.company)
            .cloned()
            .map(Group)
            .collect();
        groups.sort_by(|a, b| a.0.name.cmp(&b.0.name).then(a.0.id.cmp(&b.0.id)));
        Ok(groups)
    }

    /// The conversations you may see, newest first. Forward: `first`
    /// (default 20, at most the page-size limit) after the cursor `after`.
    /// Backward: `last` before the cursor `before` (newer than it), from the
    /// oldest without it; still listed newest first. Mixing the directions
    /// is `VALIDATION`.
    #[graphql(
        complexity = "crate::config::page_items(first.or(last), crate::config::DEFAULT_PAGE_SIZE) * child_complexity"
    )]
    async fn conversations(
        &self,
        ctx: &Context<'_>,
        filter: Option<ConversationFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> ApiResult<ConversationConnection> {
        let me = me(ctx)?;
        let shared = shared(ctx)?;
        let asked = direction(
            first,
            after,
            last,
            before,
            DEFAULT_PAGE_SIZE,
            shared.limits.max_page_size,
        )?;
        let filter = filter.unwrap_or_default().parse()?;
        let models = shared.desk.models();
        let (page, has_previous_page, has_next_page) = asked.read(
            "conversation",
            |first, after| models.conversations(me.id, &filter, first, after),
            |last, before| models.conversations_backward(me.id, &filter, last, before),
        )?;
        // Counting walks every visible conversation: only when asked for.
        let total = if ctx.look_ahead().field("totalCount").exists() {
            models.count_conversations(me.id, &filter)
        } else {
            0
        };
        // One read guard for the whole page; nodes carry what they need.
        let edges: Vec<ConversationEdge> = page
            .items
            .into_iter()
            .map(|s| ConversationEdge {
                cursor: cursor::encode("conversation", &s.id.to_string()),
                node: Conversation::new(me.id, s),
            })
            .collect();
        drop(models);
        Ok(ConversationConnection {
            page_info: PageInfo::of(&edges, |e| &e.cursor, has_previous_page, has_next_page),
            edges: edges.into(),
            total_count: total as u64,
        })
    }

    /// One conversation: `RESTRICTED_ACCESS` if it exists but you may not see
    /// it, `NOT_FOUND` if it does not exist (or is another company's).
    async fn conversation(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Conversation> {
        let me = me(ctx)?;
        load(ctx, me, parse(&id)?)
    }

    /// Any object by its id (Relay's refetch): a conversation answers
    /// exactly as `conversation(id)` does; staff, groups and the company are
    /// your company's; anything else is null with a `NOT_FOUND` error.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Node>> {
        let me = me(ctx)?;
        node(ctx, me, &id).map(Some)
    }

    /// A group's conversations in three columns, as you may see them.
    /// Complexity: the child's already sums the three columns, so a page
    /// multiplies it once (at most `first` items in each column).
    #[graphql(
        complexity = "crate::config::page_items(first, crate::config::DEFAULT_PAGE_SIZE) * child_complexity"
    )]
    async fn enquiry_overview(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        first: Option<i32>,
    ) -> ApiResult<EnquiryOverview> {
        let me = me(ctx)?;
        let shared = shared(ctx)?;
        let per_column = page_size(first, DEFAULT_PAGE_SIZE, shared.limits.max_page_size)?;
        let group: GroupId = parse(&group_id)?;
        // Everything under one read guard: the columns were checked against
        // this state, and the nodes must not be built from a later one.
        let models = shared.desk.models();
        let overview = models.overview(me.id, group, per_column)?;
        let group = models
            .state()
            .groups
            .get(&group)
            .cloned()
            .map(Group)
            .ok_or(DomainError::NotFound(Missing::Group))?;
        let column = |c: backchannel_projections::Column| OverviewColumn {
            count: c.count as u64,
            items: c
                .items
                .into_iter()
                .map(|s| Conversation::new(me.id, s))
                .collect(),
        };
        Ok(EnquiryOverview {
            group,
            queued: column(overview.queued),
            handling: column(overview.handling),
            closed: column(overview.closed),
        })
    }

    /// Your notifications, newest first, with read state. Forward: `first`
    /// (default 20) after the cursor `after` (older ones). Backward: `last`
    /// before the cursor `before` (newer ones), from the oldest without it;
    /// still listed newest first. Mixing the directions is `VALIDATION`.
    #[graphql(
        complexity = "crate::config::page_items(first.or(last), crate::config::DEFAULT_PAGE_SIZE) * child_complexity"
    )]
    async fn notifications(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> ApiResult<NotificationConnection> {
        let me = me(ctx)?;
        let shared = shared(ctx)?;
        let asked = direction(
            first,
            after,
            last,
            before,
            DEFAULT_PAGE_SIZE,
            shared.limits.max_page_size,
        )?;
        let models = shared.desk.models();
        let read_up_to = models
            .state()
            .staff
            .get(&me.id)
            .map_or(0, |s| s.notifications_read_up_to);
        // Newest first: what comes after a cursor is older.
        let (page, has_previous_page, has_next_page) = asked.read(
            "notification",
            |first, after| models.notifications(me.id, first, after),
            |last, before| models.notifications_backward(me.id, last, before),
        )?;
        let edges: Vec<NotificationEdge> = page
            .items
            .iter()
            .map(|n| NotificationEdge {
                cursor: cursor::encode("notification", &n.id.to_string()),
                node: Notification {
                    stored: *n,
                    read: n.id <= read_up_to,
                },
            })
            .collect();
        Ok(NotificationConnection {
            page_info: PageInfo::of(&edges, |e| &e.cursor, has_previous_page, has_next_page),
            edges: edges.into(),
            unread_count: models.unread_notifications(me.id) as u64,
        })
    }

    /// Owner and admins: the read audit, who opened a conversation's content
    /// (its timeline, live events, or a report holding it), when and by which
    /// rule; one entry per staff member and conversation per 15 minutes.
    /// Exactly one of `conversationId` (who opened it) and `staffId` (what
    /// they opened); newest first, `first` (default 20) after the cursor
    /// `after` (older ones).
    #[graphql(
        complexity = "crate::config::page_items(first, crate::config::DEFAULT_PAGE_SIZE) * child_complexity"
    )]
    async fn access_log(
        &self,
        ctx: &Context<'_>,
        conversation_id: Option<ID>,
        staff_id: Option<ID>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<AccessLogConnection> {
        access_log(ctx, conversation_id, staff_id, first, after)
    }

    /// Owner and admins: the envelopes of a conversation's events (who, what,
    /// when, which command), oldest first.
    async fn audit_trail(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
    ) -> ApiResult<Vec<AuditEntry>> {
        let me = me(ctx)?;
        let conversation: ConversationId = parse(&conversation_id)?;
        let desk = &shared(ctx)?.desk;
        let positions = {
            let models = desk.models();
            permissions::audit_trail_access(models.state(), me.id, conversation)?;
            desk.timeline_positions(&models, me.id, conversation)
                .map_err(denied)?
        };
        let events = desk.read_positions(&positions).await?;
        Ok(events
            .into_iter()
            .map(|r| AuditEntry {
                position: ID(r.envelope.position.to_string()),
                stream_version: r.envelope.stream_version,
                event_id: ID(r.envelope.event_id.to_string()),
                event_type: r.envelope.event_type.name().to_owned(),
                schema_version: i32::from(r.envelope.schema_version),
                at: DateTime(r.envelope.recorded_at),
                actor: r.envelope.actor.into(),
                command_id: ID(r.envelope.command_id.to_string()),
                correlation_id: ID(r.envelope.correlation_id.to_string()),
            })
            .collect())
    }
}

/// One stored event's envelope (no payload).
#[derive(SimpleObject)]
#[graphql(serial)]
pub(crate) struct AuditEntry {
    /// Global position in the log.
    pub position: ID,
    pub stream_version: u64,
    pub event_id: ID,
    pub event_type: String,
    pub schema_version: i32,
    pub at: DateTime,
    pub actor: ActorRef,
    pub command_id: ID,
    pub correlation_id: ID,
}
