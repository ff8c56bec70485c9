//! Directory mutations: the company's settings, groups, staff and their
//! permissions.

use async_graphql::{Context, ID, Object, SimpleObject};
use backchannel_domain::error::Missing;
use backchannel_domain::events::Event;
use backchannel_domain::ids::{GroupId, StaffId};
use backchannel_domain::model::Role as DomainRole;
use backchannel_domain::values::WidgetOrigins;
use backchannel_domain::{Command, DomainError};

use super::run;
use crate::context::shared;
use crate::error::{ApiError, ApiResult};
use crate::graphql::enums::{Permission, Role, RoutingType};
use crate::graphql::ids::parse;
use crate::graphql::operations as op;
use crate::staff::directory::{Company, Group, Staff};

#[derive(Default)]
pub(super) struct DirectoryMutation;

/// The result of a mutation on the company's settings.
#[derive(SimpleObject)]
#[graphql(serial)]
pub(crate) struct CompanyPayload {
    /// The company as it is now.
    pub company: Company,
}

/// The result of a mutation on a group.
#[derive(SimpleObject)]
#[graphql(serial)]
pub(crate) struct GroupPayload {
    /// The group as it is now.
    pub group: Group,
}

/// The result of a mutation on a staff member.
#[derive(SimpleObject)]
#[graphql(serial)]
pub(crate) struct StaffPayload {
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
impl DirectoryMutation {
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
        let group_name = super::name(&name)?;
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
            .ok_or_else(|| ApiError::broken(op::CREATE_GROUP, "no GroupCreated event"))?;
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
        let group_name = super::name(&name)?;
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
        let staff_name = super::name(&name)?;
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
            .ok_or_else(|| ApiError::broken(op::ADD_STAFF, "no StaffAdded event"))?;
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
}
