//! Decisions on the company: settings, staff, permissions and groups
//! (SPEC section 4, first three rows), one function per command. All of them
//! are for the owner and admins: `decide` hands them a checked [`Manager`]
//! (`manager`). Creating a company (the server operator) and marking one's
//! own notifications read (every active staff member) check their caller
//! themselves.

use crate::error::DomainError;
use crate::events::*;
use crate::ids::{CompanyId, GroupId, StaffId, WidgetKey};
use crate::model::{Actor, Permission, Role, RoutingType};
use crate::state::{Company, Group, PrivacySettings, Staff, State};
use crate::values::{Name, WidgetOrigins};

use super::{Decision, acting_staff, check_active, company, group_of, staff_of};

/// `CreateCompany`: only the server itself (`backchannel init`), with its owner.
pub(super) fn create_company(
    state: &State,
    actor: Actor,
    company: CompanyId,
    name: &Name,
    widget_key: WidgetKey,
    owner: StaffId,
    owner_name: &Name,
) -> Decision {
    if actor != Actor::System {
        return Err(DomainError::Forbidden(
            "companies are created by the server operator",
        ));
    }
    if state.companies.contains_key(&company) || state.company_by_widget_key(widget_key).is_some() {
        return Err(DomainError::validation("the company already exists"));
    }
    if state.staff.contains_key(&owner) {
        return Err(DomainError::validation(
            "the owner's staff id is already in use",
        ));
    }
    Ok(vec![
        Event::CompanyCreated(CompanyCreated {
            company,
            name: name.clone(),
            widget_key,
        }),
        staff_added(company, owner, owner_name, Role::Owner),
    ])
}

/// `MarkNotificationsRead`: every active staff member manages their own.
pub(super) fn mark_notifications_read(
    state: &State,
    actor: Actor,
    company_id: CompanyId,
    up_to: u64,
) -> Decision {
    let me = acting_staff(state, actor, company_id)?;
    company(state, company_id)?;
    unless_already(up_to <= me.notifications_read_up_to, || {
        Event::NotificationsMarkedRead(NotificationsMarkedRead {
            company: company_id,
            staff: me.id,
            up_to,
        })
    })
}

pub(super) fn update_privacy_settings(
    by: Manager<'_>,
    private_conversations_enabled: bool,
    new_conversations_private: bool,
) -> Decision {
    let asked = PrivacySettings {
        private_conversations_enabled,
        new_conversations_private,
    };
    unless_already(by.company.settings == asked, || {
        Event::PrivacySettingsChanged(PrivacySettingsChanged {
            company: by.company.id,
            private_conversations_enabled,
            new_conversations_private,
        })
    })
}

pub(super) fn set_widget_origins(by: Manager<'_>, origins: &WidgetOrigins) -> Decision {
    unless_already(by.company.widget_origins == *origins, || {
        Event::WidgetOriginsChanged(WidgetOriginsChanged {
            company: by.company.id,
            origins: origins.clone(),
        })
    })
}

pub(super) fn add_staff(by: Manager<'_>, staff: StaffId, name: &Name, role: Role) -> Decision {
    check_may_give_role(by.me, role)?;
    if by.state.staff.contains_key(&staff) {
        return Err(DomainError::validation("the staff id is already in use"));
    }
    Ok(vec![staff_added(by.company.id, staff, name, role)])
}

pub(super) fn change_role(by: Manager<'_>, staff: StaffId, role: Role) -> Decision {
    let target = by.colleague(
        staff,
        [
            "the owner's role cannot be changed",
            "only the owner can demote an admin",
        ],
    )?;
    check_may_give_role(by.me, role)?;
    check_active(target)?;
    unless_already(target.role == role, || {
        Event::StaffRoleChanged(StaffRoleChanged {
            company: by.company.id,
            staff,
            role,
        })
    })
}

pub(super) fn grant_permission(
    by: Manager<'_>,
    staff: StaffId,
    permission: Permission,
) -> Decision {
    let target = by.staff(staff)?;
    check_active(target)?;
    unless_already(target.has(permission), || {
        Event::PermissionGranted(PermissionGranted {
            company: by.company.id,
            staff,
            permission,
        })
    })
}

pub(super) fn revoke_permission(
    by: Manager<'_>,
    staff: StaffId,
    permission: Permission,
) -> Decision {
    let target = by.staff(staff)?;
    unless_already(!target.has(permission), || {
        Event::PermissionRevoked(PermissionRevoked {
            company: by.company.id,
            staff,
            permission,
        })
    })
}

pub(super) fn deactivate_staff(by: Manager<'_>, staff: StaffId) -> Decision {
    let target = by.colleague(
        staff,
        [
            "the owner cannot be deactivated",
            "only the owner can deactivate an admin",
        ],
    )?;
    unless_already(!target.active, || {
        Event::StaffDeactivated(StaffDeactivated {
            company: by.company.id,
            staff,
        })
    })
}

pub(super) fn create_group(
    by: Manager<'_>,
    group: GroupId,
    name: &Name,
    routing: RoutingType,
) -> Decision {
    if by.state.groups.contains_key(&group) {
        return Err(DomainError::validation("the group id is already in use"));
    }
    Ok(vec![Event::GroupCreated(GroupCreated {
        company: by.company.id,
        group,
        name: name.clone(),
        routing,
    })])
}

pub(super) fn rename_group(by: Manager<'_>, group: GroupId, name: &Name) -> Decision {
    let target = by.group(group)?;
    unless_already(target.name == *name, || {
        Event::GroupRenamed(GroupRenamed {
            company: by.company.id,
            group,
            name: name.clone(),
        })
    })
}

pub(super) fn set_group_routing(by: Manager<'_>, group: GroupId, routing: RoutingType) -> Decision {
    let target = by.group(group)?;
    unless_already(target.routing == routing, || {
        Event::GroupRoutingChanged(GroupRoutingChanged {
            company: by.company.id,
            group,
            routing,
        })
    })
}

pub(super) fn add_group_member(by: Manager<'_>, group: GroupId, staff: StaffId) -> Decision {
    let (names, group, staff) = by.group_and_staff(group, staff)?;
    check_active(staff)?;
    unless_already(group.is_member(staff.id), || Event::GroupMemberAdded(names))
}

pub(super) fn remove_group_member(by: Manager<'_>, group: GroupId, staff: StaffId) -> Decision {
    let (names, group, staff) = by.group_and_staff(group, staff)?;
    unless_already(!group.is_member(staff.id), || {
        Event::GroupMemberRemoved(names)
    })
}

pub(super) fn add_group_supervisor(by: Manager<'_>, group: GroupId, staff: StaffId) -> Decision {
    let (names, group, staff) = by.group_and_staff(group, staff)?;
    check_active(staff)?;
    if staff.role != Role::Supervisor {
        return Err(DomainError::validation(
            "only staff with the SUPERVISOR role can supervise a group",
        ));
    }
    unless_already(group.is_supervisor(staff.id), || {
        Event::GroupSupervisorAdded(names)
    })
}

pub(super) fn remove_group_supervisor(by: Manager<'_>, group: GroupId, staff: StaffId) -> Decision {
    let (names, group, staff) = by.group_and_staff(group, staff)?;
    unless_already(!group.is_supervisor(staff.id), || {
        Event::GroupSupervisorRemoved(names)
    })
}

/// A staff member joining `company`: its owner as it is created, or anyone
/// a manager adds.
fn staff_added(company: CompanyId, staff: StaffId, name: &Name, role: Role) -> Event {
    Event::StaffAdded(StaffAdded {
        company,
        staff,
        name: name.clone(),
        role,
    })
}

/// The command's event, or none when the company already is as the command
/// asks (`done`): setting what is already set succeeds with no events.
fn unless_already(done: bool, event: impl FnOnce() -> Event) -> Decision {
    Ok(if done { Vec::new() } else { vec![event()] })
}

/// The owner or an admin acting on their company: what every decision here
/// but creating a company and marking notifications read is given, once
/// [`manager`] checked it.
#[derive(Clone, Copy)]
pub(super) struct Manager<'s> {
    state: &'s State,
    me: &'s Staff,
    company: &'s Company,
}

/// The acting owner or admin of company `id`, checked in the order `decide`
/// documents (`UNAUTHENTICATED`, `NOT_FOUND`, then `FORBIDDEN`): the first
/// checks of every command a [`Manager`] decides.
pub(super) fn manager(
    state: &State,
    actor: Actor,
    id: CompanyId,
) -> Result<Manager<'_>, DomainError> {
    let me = acting_staff(state, actor, id)?;
    let company = company(state, id)?;
    if !me.role.is_owner_or_admin() {
        return Err(DomainError::Forbidden(
            "only the owner or an admin can manage the company",
        ));
    }
    Ok(Manager { state, me, company })
}

impl<'s> Manager<'s> {
    /// A staff member of the company (`NOT_FOUND` otherwise).
    fn staff(&self, id: StaffId) -> Result<&'s Staff, DomainError> {
        staff_of(self.state, self.company.id, id)
    }

    /// A group of the company (`NOT_FOUND` otherwise).
    fn group(&self, id: GroupId) -> Result<&'s Group, DomainError> {
        group_of(self.state, self.company.id, id)
    }

    /// What a command on a group's members or supervisors names, as its
    /// event records it, with the group and the staff member: both must be
    /// of the company (`NOT_FOUND`), the group checked first.
    fn group_and_staff(
        &self,
        group: GroupId,
        staff: StaffId,
    ) -> Result<(GroupStaff, &'s Group, &'s Staff), DomainError> {
        let names = GroupStaff {
            company: self.company.id,
            group,
            staff,
        };
        Ok((names, self.group(group)?, self.staff(staff)?))
    }

    /// The colleague a change of role or a deactivation names
    /// (docs/decisions/admins-and-owner.md): never the owner, and an admin
    /// only by the owner, else `FORBIDDEN` with `refusals` (the owner's, the
    /// admin's).
    fn colleague(
        &self,
        staff: StaffId,
        refusals: [&'static str; 2],
    ) -> Result<&'s Staff, DomainError> {
        let target = self.staff(staff)?;
        let [owner, admin] = refusals;
        if target.role == Role::Owner {
            return Err(DomainError::Forbidden(owner));
        }
        if target.role == Role::Admin && self.me.role != Role::Owner {
            return Err(DomainError::Forbidden(admin));
        }
        Ok(target)
    }
}

/// Exactly one owner per company; only the owner makes admins.
fn check_may_give_role(me: &Staff, role: Role) -> Result<(), DomainError> {
    match role {
        Role::Owner => Err(DomainError::validation(
            "a company has exactly one owner; the OWNER role cannot be given",
        )),
        Role::Admin if me.role != Role::Owner => {
            Err(DomainError::Forbidden("only the owner can make admins"))
        }
        _ => Ok(()),
    }
}
