//! Directory mutations: the company's settings, groups, staff and their
//! permissions.

use async_graphql::{Context, ID, Object, SimpleObject};
use backchannel_domain::error::Missing;
use backchannel_domain::events::Event;
use backchannel_domain::ids::{CompanyId, GroupId, StaffId};
use backchannel_domain::model::Role as DomainRole;
use backchannel_domain::values::WidgetOrigins;
use backchannel_domain::{Command, DomainError};

use super::run;
use crate::context::shared;
use crate::desk::Executed;
use crate::error::{ApiError, ApiResult};
use crate::graphql::enums::{Permission, Role, RoutingType};
use crate::graphql::ids::parse;
use crate::graphql::operations as op;
use crate::staff::directory::{Company, Group, Staff, group_one, staff_one};

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
    let staff = staff_one(ctx, Some(staff))?.ok_or(DomainError::NotFound(Missing::Staff))?;
    Ok(StaffPayload { staff })
}

fn group_now(ctx: &Context<'_>, group: GroupId) -> ApiResult<GroupPayload> {
    let group = group_one(ctx, group)?.ok_or(DomainError::NotFound(Missing::Group))?;
    Ok(GroupPayload { group })
}

/// Runs the command `command` makes for the caller's company (see [`run`]).
async fn run_in_company(
    ctx: &Context<'_>,
    operation: &str,
    command: impl FnOnce(CompanyId) -> Command,
    idempotency_key: Option<String>,
) -> ApiResult<Executed> {
    let (_, executed) = run(
        ctx,
        operation,
        |me| Ok(command(me.company)),
        idempotency_key,
    )
    .await?;
    Ok(executed)
}

/// The group `event` created, if it is a `GroupCreated` (for
/// [`Executed::created`](crate::desk::Executed::created)).
fn created_group(event: &Event) -> Option<GroupId> {
    match event {
        Event::GroupCreated(e) => Some(e.group),
        _ => None,
    }
}

/// The staff member `event` added, if it is a `StaffAdded` (for
/// [`Executed::created`](crate::desk::Executed::created)).
fn added_staff(event: &Event) -> Option<StaffId> {
    match event {
        Event::StaffAdded(e) => Some(e.staff),
        _ => None,
    }
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
        let command = |company| Command::CreateGroup {
            company,
            group: GroupId::new(),
            name: group_name,
            routing: routing.into(),
        };
        let executed = run_in_company(ctx, op::CREATE_GROUP, command, idempotency_key).await?;
        let created = executed.created(op::CREATE_GROUP, "no GroupCreated event", created_group)?;
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
        let command = |company| Command::RenameGroup {
            company,
            group,
            name: group_name,
        };
        run_in_company(ctx, op::RENAME_GROUP, command, idempotency_key).await?;
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
        let command = |company| Command::SetGroupRouting {
            company,
            group,
            routing: routing.into(),
        };
        run_in_company(ctx, op::SET_GROUP_ROUTING, command, idempotency_key).await?;
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
        let command = |company| Command::AddGroupMember {
            company,
            group,
            staff,
        };
        run_in_company(ctx, op::ADD_GROUP_MEMBER, command, idempotency_key).await?;
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
        let command = |company| Command::RemoveGroupMember {
            company,
            group,
            staff,
        };
        run_in_company(ctx, op::REMOVE_GROUP_MEMBER, command, idempotency_key).await?;
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
        let command = |company| Command::AddGroupSupervisor {
            company,
            group,
            staff,
        };
        run_in_company(ctx, op::ADD_GROUP_SUPERVISOR, command, idempotency_key).await?;
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
        let command = |company| Command::RemoveGroupSupervisor {
            company,
            group,
            staff,
        };
        run_in_company(ctx, op::REMOVE_GROUP_SUPERVISOR, command, idempotency_key).await?;
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
        let command = |company| Command::AddStaff {
            company,
            staff: StaffId::new(),
            name: staff_name,
            role: role.into(),
        };
        let executed = run_in_company(ctx, op::ADD_STAFF, command, idempotency_key).await?;
        let added = executed.created(op::ADD_STAFF, "no StaffAdded event", added_staff)?;
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
        let command = |company| Command::ChangeRole {
            company,
            staff,
            role,
        };
        run_in_company(ctx, op::CHANGE_ROLE, command, idempotency_key).await?;
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
        let command = |company| Command::GrantPermission {
            company,
            staff,
            permission: permission.into(),
        };
        run_in_company(ctx, op::GRANT_PERMISSION, command, idempotency_key).await?;
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
        let command = |company| Command::RevokePermission {
            company,
            staff,
            permission: permission.into(),
        };
        run_in_company(ctx, op::REVOKE_PERMISSION, command, idempotency_key).await?;
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
        let command = |company| Command::DeactivateStaff { company, staff };
        run_in_company(ctx, op::DEACTIVATE_STAFF, command, idempotency_key).await?;
        staff_now(ctx, staff)
    }
}
