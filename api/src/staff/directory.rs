//! The company directory as staff see it: the company and its settings,
//! staff members and groups. Every staff member of a company sees its
//! directory (they need it to pick an assignee or invite a colleague); only
//! the owner and admins change it.

use async_graphql::{Context, ID, Object, SimpleObject};
use backchannel_domain::ids::{GroupId, StaffId};
use backchannel_domain::state;

use crate::context::shared;
use crate::error::ApiResult;
use crate::graphql::enums::{Permission, Role, RoutingType};
use crate::graphql::ids::id;

/// A member of the company's staff.
pub(crate) struct Staff(pub state::Staff);

#[Object(name = "Staff", serial)]
impl Staff {
    pub async fn id(&self) -> ID {
        id(self.0.id)
    }

    async fn name(&self) -> &str {
        self.0.name.as_str()
    }

    async fn role(&self) -> Role {
        self.0.role.into()
    }

    async fn permissions(&self) -> Vec<Permission> {
        self.0.permissions.iter().map(|p| (*p).into()).collect()
    }

    /// Deactivated staff can no longer sign in and are never assigned.
    async fn active(&self) -> bool {
        self.0.active
    }
}

/// Looks staff up in the current state (unknown ids are skipped).
pub(crate) fn staff_list(
    ctx: &Context<'_>,
    ids: impl IntoIterator<Item = StaffId>,
) -> ApiResult<Vec<Staff>> {
    let desk = &shared(ctx)?.desk;
    let models = desk.models();
    Ok(ids
        .into_iter()
        .filter_map(|s| models.state().staff.get(&s).cloned().map(Staff))
        .collect())
}

pub(crate) fn staff_one(ctx: &Context<'_>, staff: Option<StaffId>) -> ApiResult<Option<Staff>> {
    Ok(staff_list(ctx, staff)?.pop())
}

/// Looks a group up in the current state (`None` for an unknown id).
pub(crate) fn group_one(ctx: &Context<'_>, group: GroupId) -> ApiResult<Option<Group>> {
    let desk = &shared(ctx)?.desk;
    let models = desk.models();
    Ok(models.state().groups.get(&group).cloned().map(Group))
}

/// A team: members handle its conversations, supervisors oversee them.
pub(crate) struct Group(pub state::Group);

#[Object(name = "Group", serial)]
impl Group {
    pub async fn id(&self) -> ID {
        id(self.0.id)
    }

    async fn name(&self) -> &str {
        self.0.name.as_str()
    }

    async fn routing(&self) -> RoutingType {
        self.0.routing.into()
    }

    /// In the order they joined (the round-robin rotation follows it).
    async fn members(&self, ctx: &Context<'_>) -> ApiResult<Vec<Staff>> {
        staff_list(ctx, self.0.members.iter().copied())
    }

    async fn supervisors(&self, ctx: &Context<'_>) -> ApiResult<Vec<Staff>> {
        staff_list(ctx, self.0.supervisors.iter().copied())
    }
}

/// SPEC section 2.
#[derive(SimpleObject)]
#[graphql(serial)]
pub(crate) struct PrivacySettings {
    pub private_conversations_enabled: bool,
    pub new_conversations_private: bool,
}

pub(crate) struct Company(pub state::Company);

impl Company {
    /// `company` as the read models hold it now.
    pub(crate) fn current(
        desk: &crate::desk::Desk,
        company: backchannel_domain::ids::CompanyId,
    ) -> ApiResult<Company> {
        desk.models()
            .state()
            .companies
            .get(&company)
            .cloned()
            .map(Company)
            .ok_or_else(|| {
                backchannel_domain::DomainError::NotFound(
                    backchannel_domain::error::Missing::Company,
                )
                .into()
            })
    }
}

#[Object(name = "Company", serial)]
impl Company {
    pub async fn id(&self) -> ID {
        id(self.0.id)
    }

    async fn name(&self) -> &str {
        self.0.name.as_str()
    }

    /// The public key the company's chat widget opens conversations with.
    async fn widget_key(&self) -> ID {
        id(self.0.widget_key)
    }

    /// The origins (`scheme://host[:port]`) of the websites the customer
    /// widget may call `/customer/graphql` from. Shown to all staff: like the
    /// widget key they are public (any browser learns them by a preflight).
    async fn widget_origins(&self) -> Vec<&str> {
        self.0
            .widget_origins
            .as_slice()
            .iter()
            .map(|o| o.as_str())
            .collect()
    }

    async fn settings(&self) -> PrivacySettings {
        PrivacySettings {
            private_conversations_enabled: self.0.settings.private_conversations_enabled,
            new_conversations_private: self.0.settings.new_conversations_private,
        }
    }
}
