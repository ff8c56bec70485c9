//! The staff schema's mutations. Each one parses its input at the edge
//! (`VALIDATION`), runs one domain command through the desk, and answers from
//! the stored events and the read models after they applied them.

use async_graphql::{Context, ID, Object, SimpleObject};
use backchannel_domain::error::Missing;
use backchannel_domain::events::Event;
use backchannel_domain::ids::{ConversationId, GroupId, MessageId, StaffId};
use backchannel_domain::model::{Actor, Role as DomainRole};
use backchannel_domain::values::{ErasureReason, MessageBody, Name, WidgetOrigins};
use backchannel_domain::{Command, DomainError, may_issue_staff_token};

use crate::auth::StaffIdentity;
use crate::context::{Me, me, shared};
use crate::desk::Executed;
use crate::error::{ApiError, ApiResult};
use crate::graphql::enums::{Channel, MessageVisibility, Permission, Role, RoutingType};
use crate::graphql::ids::{id, parse};
use crate::graphql::operations as op;
use crate::graphql::time::DateTime;
use crate::staff::conversation::{Conversation, load_if_visible};
use crate::staff::directory::{Company, Group, Staff};
use crate::staff::timeline::TimelineItem;

pub struct Mutation;

fn name(input: &str) -> ApiResult<Name> {
    Name::parse(input).map_err(|e| ApiError::validation(e.to_string()))
}

async fn run(
    ctx: &Context<'_>,
    operation: &str,
    command: impl FnOnce(Me) -> ApiResult<Command>,
    idempotency_key: Option<String>,
) -> ApiResult<(Me, Executed)> {
    let me = me(ctx)?;
    let shared = shared(ctx)?;
    shared
        .limiters
        .staff_mutation(me.id)
        .map_err(ApiError::RateLimited)?;
    let command = command(me)?;
    let desk = &shared.desk;
    let executed = desk
        .execute(
            Actor::Staff(me.id),
            operation,
            command,
            idempotency_key.as_deref(),
        )
        .await?;
    crate::position::note(ctx, &executed);
    Ok((me, executed))
}

/// The result of a mutation on one conversation.
#[derive(SimpleObject)]
#[graphql(serial)]
pub struct ConversationPayload {
    pub conversation_id: ID,
    /// The conversation as you may see it now; null if you no longer may
    /// (e.g. you transferred a private conversation to a colleague).
    pub conversation: Option<Conversation>,
}

fn conversation_payload(
    ctx: &Context<'_>,
    me: Me,
    conversation: ConversationId,
) -> ApiResult<ConversationPayload> {
    Ok(ConversationPayload {
        conversation_id: id(conversation),
        conversation: load_if_visible(ctx, me, conversation)?,
    })
}

/// The result of `sendMessage`.
#[derive(SimpleObject)]
#[graphql(serial)]
pub struct MessagePayload {
    /// The stored message (the first one, for a retried idempotency key).
    pub message: TimelineItem,
    pub conversation: Option<Conversation>,
}

/// The result of `markNotificationsRead`.
#[derive(SimpleObject)]
#[graphql(name = "MarkNotificationsReadPayload", serial)]
pub struct NotificationsRead {
    pub unread_count: u64,
}

/// A token minted by `issueStaffToken`.
#[derive(SimpleObject)]
#[graphql(name = "IssueStaffTokenPayload", serial)]
pub struct IssuedToken {
    pub token: String,
    pub staff: Staff,
    pub expires_at: DateTime,
}

/// The result of a mutation on the company's settings.
#[derive(SimpleObject)]
#[graphql(serial)]
pub struct CompanyPayload {
    /// The company as it is now.
    pub company: Company,
}

/// The result of a mutation on a group.
#[derive(SimpleObject)]
#[graphql(serial)]
pub struct GroupPayload {
    /// The group as it is now.
    pub group: Group,
}

/// The result of a mutation on a staff member.
#[derive(SimpleObject)]
#[graphql(serial)]
pub struct StaffPayload {
    /// The staff member as they are now.
    pub staff: Staff,
}

fn staff_now(ctx: &Context<'_>, staff: StaffId) -> ApiResult<StaffPayload> {
    let desk = &shared(ctx)?.desk;
    let models = desk.models();
    models
        .state()
        .staff
        .get(&staff)
        .cloned()
        .map(|s| StaffPayload { staff: Staff(s) })
        .ok_or(DomainError::NotFound(Missing::Staff).into())
}

fn group_now(ctx: &Context<'_>, group: GroupId) -> ApiResult<GroupPayload> {
    let desk = &shared(ctx)?.desk;
    let models = desk.models();
    models
        .state()
        .groups
        .get(&group)
        .cloned()
        .map(|g| GroupPayload { group: Group(g) })
        .ok_or(DomainError::NotFound(Missing::Group).into())
}

#[Object(serial)]
impl Mutation {
    /// Opens a conversation on a customer's behalf (e.g. logging a call).
    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn open_conversation(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        customer_name: String,
        channel: Channel,
        idempotency_key: Option<String>,
    ) -> ApiResult<ConversationPayload> {
        let group: GroupId = parse(&group_id)?;
        let customer = name(&customer_name)?;
        let (me, executed) = run(
            ctx,
            op::OPEN_CONVERSATION,
            |me| {
                Ok(Command::OpenConversation {
                    company: me.company,
                    conversation: ConversationId::new(),
                    group,
                    channel: channel.into(),
                    customer,
                    first_message: None,
                })
            },
            idempotency_key,
        )
        .await?;
        let opened = executed
            .events
            .iter()
            .find_map(|r| match &r.event {
                Event::ConversationOpened(e) => Some(e.conversation),
                _ => None,
            })
            .ok_or_else(|| ApiError::internal("openConversation", "no ConversationOpened event"))?;
        conversation_payload(ctx, me, opened)
    }

    /// Assigns a queued conversation, or transfers a handled one.
    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn assign_conversation(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
        assignee_id: ID,
        idempotency_key: Option<String>,
    ) -> ApiResult<ConversationPayload> {
        let conversation: ConversationId = parse(&conversation_id)?;
        let assignee: StaffId = parse(&assignee_id)?;
        let (me, _) = run(
            ctx,
            op::ASSIGN_CONVERSATION,
            |_| {
                Ok(Command::AssignConversation {
                    conversation,
                    assignee,
                })
            },
            idempotency_key,
        )
        .await?;
        conversation_payload(ctx, me, conversation)
    }

    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn invite_to_room(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
        staff_id: ID,
        idempotency_key: Option<String>,
    ) -> ApiResult<ConversationPayload> {
        let conversation: ConversationId = parse(&conversation_id)?;
        let staff: StaffId = parse(&staff_id)?;
        let (me, _) = run(
            ctx,
            op::INVITE_TO_ROOM,
            |_| {
                Ok(Command::InviteToRoom {
                    conversation,
                    staff,
                })
            },
            idempotency_key,
        )
        .await?;
        conversation_payload(ctx, me, conversation)
    }

    /// Posts a `PUBLIC` message (the customer sees it) or a `PRIVATE` one
    /// (staff only; not in `EMAIL` and `CALL` conversations).
    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn send_message(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
        body: String,
        visibility: MessageVisibility,
        idempotency_key: Option<String>,
    ) -> ApiResult<MessagePayload> {
        let conversation: ConversationId = parse(&conversation_id)?;
        let body = MessageBody::parse(&body).map_err(|e| ApiError::validation(e.to_string()))?;
        let (me, executed) = run(
            ctx,
            op::SEND_MESSAGE,
            |_| {
                Ok(Command::SendMessage {
                    conversation,
                    message: MessageId::new(),
                    visibility: visibility.into(),
                    body,
                })
            },
            idempotency_key,
        )
        .await?;
        let message = executed
            .events
            .iter()
            .find(|r| {
                matches!(
                    r.event,
                    Event::MessagePosted(_) | Event::PrivateMessagePosted(_)
                )
            })
            .and_then(TimelineItem::from_recorded)
            .ok_or_else(|| ApiError::internal("sendMessage", "no message event"))?;
        Ok(MessagePayload {
            message,
            conversation: load_if_visible(ctx, me, conversation)?,
        })
    }

    /// Owner and admins: make one conversation private or public.
    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn set_conversation_privacy(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
        private: bool,
        idempotency_key: Option<String>,
    ) -> ApiResult<ConversationPayload> {
        let conversation: ConversationId = parse(&conversation_id)?;
        let (me, _) = run(
            ctx,
            op::SET_CONVERSATION_PRIVACY,
            |_| {
                Ok(Command::SetConversationPrivacy {
                    conversation,
                    private,
                })
            },
            idempotency_key,
        )
        .await?;
        conversation_payload(ctx, me, conversation)
    }

    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn close_conversation(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
        idempotency_key: Option<String>,
    ) -> ApiResult<ConversationPayload> {
        let conversation: ConversationId = parse(&conversation_id)?;
        let (me, _) = run(
            ctx,
            op::CLOSE_CONVERSATION,
            |_| Ok(Command::CloseConversation { conversation }),
            idempotency_key,
        )
        .await?;
        conversation_payload(ctx, me, conversation)
    }

    /// Owner and admins: erases the conversation's customer data by
    /// destroying its data key (SPEC section 12); its structure stays.
    /// Conversations stored before encryption are refused (`VALIDATION`, with
    /// a pointer to the migration in docs/erasure.md).
    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn erase_conversation(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
        reason: String,
        idempotency_key: Option<String>,
    ) -> ApiResult<ConversationPayload> {
        let conversation: ConversationId = parse(&conversation_id)?;
        let (me, _) = run(
            ctx,
            op::ERASE_CONVERSATION,
            |_| {
                Ok(Command::EraseConversation {
                    conversation,
                    reason: ErasureReason::parse(&reason)
                        .map_err(|e| ApiError::validation(e.to_string()))?,
                })
            },
            idempotency_key,
        )
        .await?;
        conversation_payload(ctx, me, conversation)
    }

    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn reopen_conversation(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
        idempotency_key: Option<String>,
    ) -> ApiResult<ConversationPayload> {
        let conversation: ConversationId = parse(&conversation_id)?;
        let (me, _) = run(
            ctx,
            op::REOPEN_CONVERSATION,
            |_| Ok(Command::ReopenConversation { conversation }),
            idempotency_key,
        )
        .await?;
        conversation_payload(ctx, me, conversation)
    }

    /// Owner and admins. An omitted setting keeps its current value.
    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn update_privacy_settings(
        &self,
        ctx: &Context<'_>,
        private_conversations_enabled: Option<bool>,
        new_conversations_private: Option<bool>,
        idempotency_key: Option<String>,
    ) -> ApiResult<CompanyPayload> {
        let desk = &shared(ctx)?.desk;
        let (me, _) = run(
            ctx,
            op::UPDATE_PRIVACY_SETTINGS,
            |me| {
                let current = desk
                    .models()
                    .state()
                    .companies
                    .get(&me.company)
                    .map(|c| c.settings)
                    .unwrap_or_default();
                Ok(Command::UpdatePrivacySettings {
                    company: me.company,
                    private_conversations_enabled: private_conversations_enabled
                        .unwrap_or(current.private_conversations_enabled),
                    new_conversations_private: new_conversations_private
                        .unwrap_or(current.new_conversations_private),
                })
            },
            idempotency_key,
        )
        .await?;
        Ok(CompanyPayload {
            company: Company::current(desk, me.company)?,
        })
    }

    /// Owner and admins. Replaces the list of origins (`scheme://host[:port]`,
    /// http or https, at most 20) the customer widget may call from; an empty
    /// list allows none but this server's own.
    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn set_widget_origins(
        &self,
        ctx: &Context<'_>,
        origins: Vec<String>,
        idempotency_key: Option<String>,
    ) -> ApiResult<CompanyPayload> {
        let parsed =
            WidgetOrigins::parse(&origins).map_err(|e| ApiError::validation(e.to_string()))?;
        let (me, _) = run(
            ctx,
            op::SET_WIDGET_ORIGINS,
            |me| {
                Ok(Command::SetWidgetOrigins {
                    company: me.company,
                    origins: parsed,
                })
            },
            idempotency_key,
        )
        .await?;
        let desk = &shared(ctx)?.desk;
        Ok(CompanyPayload {
            company: Company::current(desk, me.company)?,
        })
    }

    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn create_group(
        &self,
        ctx: &Context<'_>,
        name: String,
        routing: RoutingType,
        idempotency_key: Option<String>,
    ) -> ApiResult<GroupPayload> {
        let group_name = self::name(&name)?;
        let (_, executed) = run(
            ctx,
            op::CREATE_GROUP,
            |me| {
                Ok(Command::CreateGroup {
                    company: me.company,
                    group: GroupId::new(),
                    name: group_name,
                    routing: routing.into(),
                })
            },
            idempotency_key,
        )
        .await?;
        let created = executed
            .events
            .iter()
            .find_map(|r| match &r.event {
                Event::GroupCreated(e) => Some(e.group),
                _ => None,
            })
            .ok_or_else(|| ApiError::internal("createGroup", "no GroupCreated event"))?;
        group_now(ctx, created)
    }

    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn rename_group(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        name: String,
        idempotency_key: Option<String>,
    ) -> ApiResult<GroupPayload> {
        let group: GroupId = parse(&group_id)?;
        let group_name = self::name(&name)?;
        run(
            ctx,
            op::RENAME_GROUP,
            |me| {
                Ok(Command::RenameGroup {
                    company: me.company,
                    group,
                    name: group_name,
                })
            },
            idempotency_key,
        )
        .await?;
        group_now(ctx, group)
    }

    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn set_group_routing(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        routing: RoutingType,
        idempotency_key: Option<String>,
    ) -> ApiResult<GroupPayload> {
        let group: GroupId = parse(&group_id)?;
        run(
            ctx,
            op::SET_GROUP_ROUTING,
            |me| {
                Ok(Command::SetGroupRouting {
                    company: me.company,
                    group,
                    routing: routing.into(),
                })
            },
            idempotency_key,
        )
        .await?;
        group_now(ctx, group)
    }

    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn add_group_member(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        staff_id: ID,
        idempotency_key: Option<String>,
    ) -> ApiResult<GroupPayload> {
        let (group, staff): (GroupId, StaffId) = (parse(&group_id)?, parse(&staff_id)?);
        run(
            ctx,
            op::ADD_GROUP_MEMBER,
            |me| {
                Ok(Command::AddGroupMember {
                    company: me.company,
                    group,
                    staff,
                })
            },
            idempotency_key,
        )
        .await?;
        group_now(ctx, group)
    }

    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn remove_group_member(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        staff_id: ID,
        idempotency_key: Option<String>,
    ) -> ApiResult<GroupPayload> {
        let (group, staff): (GroupId, StaffId) = (parse(&group_id)?, parse(&staff_id)?);
        run(
            ctx,
            op::REMOVE_GROUP_MEMBER,
            |me| {
                Ok(Command::RemoveGroupMember {
                    company: me.company,
                    group,
                    staff,
                })
            },
            idempotency_key,
        )
        .await?;
        group_now(ctx, group)
    }

    /// The staff member must hold the `SUPERVISOR` role.
    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn add_group_supervisor(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        staff_id: ID,
        idempotency_key: Option<String>,
    ) -> ApiResult<GroupPayload> {
        let (group, staff): (GroupId, StaffId) = (parse(&group_id)?, parse(&staff_id)?);
        run(
            ctx,
            op::ADD_GROUP_SUPERVISOR,
            |me| {
                Ok(Command::AddGroupSupervisor {
                    company: me.company,
                    group,
                    staff,
                })
            },
            idempotency_key,
        )
        .await?;
        group_now(ctx, group)
    }

    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn remove_group_supervisor(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        staff_id: ID,
        idempotency_key: Option<String>,
    ) -> ApiResult<GroupPayload> {
        let (group, staff): (GroupId, StaffId) = (parse(&group_id)?, parse(&staff_id)?);
        run(
            ctx,
            op::REMOVE_GROUP_SUPERVISOR,
            |me| {
                Ok(Command::RemoveGroupSupervisor {
                    company: me.company,
                    group,
                    staff,
                })
            },
            idempotency_key,
        )
        .await?;
        group_now(ctx, group)
    }

    /// Owner and admins (only the owner adds admins).
    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn add_staff(
        &self,
        ctx: &Context<'_>,
        name: String,
        role: Role,
        idempotency_key: Option<String>,
    ) -> ApiResult<StaffPayload> {
        let staff_name = self::name(&name)?;
        let (_, executed) = run(
            ctx,
            op::ADD_STAFF,
            |me| {
                Ok(Command::AddStaff {
                    company: me.company,
                    staff: StaffId::new(),
                    name: staff_name,
                    role: role.into(),
                })
            },
            idempotency_key,
        )
        .await?;
        let added = executed
            .events
            .iter()
            .find_map(|r| match &r.event {
                Event::StaffAdded(e) => Some(e.staff),
                _ => None,
            })
            .ok_or_else(|| ApiError::internal("addStaff", "no StaffAdded event"))?;
        staff_now(ctx, added)
    }

    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn change_role(
        &self,
        ctx: &Context<'_>,
        staff_id: ID,
        role: Role,
        idempotency_key: Option<String>,
    ) -> ApiResult<StaffPayload> {
        let staff: StaffId = parse(&staff_id)?;
        let role: DomainRole = role.into();
        run(
            ctx,
            op::CHANGE_ROLE,
            |me| {
                Ok(Command::ChangeRole {
                    company: me.company,
                    staff,
                    role,
                })
            },
            idempotency_key,
        )
        .await?;
        staff_now(ctx, staff)
    }

    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn grant_permission(
        &self,
        ctx: &Context<'_>,
        staff_id: ID,
        permission: Permission,
        idempotency_key: Option<String>,
    ) -> ApiResult<StaffPayload> {
        let staff: StaffId = parse(&staff_id)?;
        run(
            ctx,
            op::GRANT_PERMISSION,
            |me| {
                Ok(Command::GrantPermission {
                    company: me.company,
                    staff,
                    permission: permission.into(),
                })
            },
            idempotency_key,
        )
        .await?;
        staff_now(ctx, staff)
    }

    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn revoke_permission(
        &self,
        ctx: &Context<'_>,
        staff_id: ID,
        permission: Permission,
        idempotency_key: Option<String>,
    ) -> ApiResult<StaffPayload> {
        let staff: StaffId = parse(&staff_id)?;
        run(
            ctx,
            op::REVOKE_PERMISSION,
            |me| {
                Ok(Command::RevokePermission {
                    company: me.company,
                    staff,
                    permission: permission.into(),
                })
            },
            idempotency_key,
        )
        .await?;
        staff_now(ctx, staff)
    }

    /// Their tokens stop working at once and their subscriptions end.
    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn deactivate_staff(
        &self,
        ctx: &Context<'_>,
        staff_id: ID,
        idempotency_key: Option<String>,
    ) -> ApiResult<StaffPayload> {
        let staff: StaffId = parse(&staff_id)?;
        run(
            ctx,
            op::DEACTIVATE_STAFF,
            |me| {
                Ok(Command::DeactivateStaff {
                    company: me.company,
                    staff,
                })
            },
            idempotency_key,
        )
        .await?;
        staff_now(ctx, staff)
    }

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

    /// Owner and admins mint a token for a staff member (only the owner for
    /// the owner or an admin). Minting records no event.
    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn issue_staff_token(&self, ctx: &Context<'_>, staff_id: ID) -> ApiResult<IssuedToken> {
        let me = me(ctx)?;
        let target: StaffId = parse(&staff_id)?;
        let shared = shared(ctx)?;
        shared
            .limiters
            .staff_mutation(me.id)
            .map_err(ApiError::RateLimited)?;
        let staff = {
            let models = shared.desk.models();
            may_issue_staff_token(models.state(), Actor::Staff(me.id), target)?;
            models
                .state()
                .staff
                .get(&target)
                .cloned()
                .ok_or(DomainError::NotFound(Missing::Staff))?
        };
        let minted = shared
            .tokens
            .mint_staff(StaffIdentity {
                staff: staff.id,
                company: staff.company,
            })
            .map_err(|err| ApiError::internal("minting a token", err))?;
        tracing::info!(issuer = %me.id, staff = %staff.id, "staff token issued");
        Ok(IssuedToken {
            token: minted.token,
            expires_at: DateTime(system_time_to_recorded(minted.expires_at)),
            staff: Staff(staff),
        })
    }
}

pub fn system_time_to_recorded(at: std::time::SystemTime) -> backchannel_eventlog::RecordedAt {
    let micros = at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    backchannel_eventlog::RecordedAt::from_micros(micros)
}
