//! Decisions on the company: settings, staff, permissions and groups
//! (SPEC section 4, first three rows), one function per command. All of them
//! are for the owner and admins (`company_manager`), except creating a
//! company (the server operator) and marking one's own notifications read
//! (every active staff member).

use crate::error::DomainError;
use crate::events::*;
use crate::ids::{CompanyId, GroupId, StaffId, WidgetKey};
use crate::model::{Actor, Permission, Role, RoutingType};
use crate::state::{Company, Group, Staff, State};
use crate::values::{Name, WidgetOrigins};

use super::{acting_staff, company, group_of, staff_of};

/// `CreateCompany`: only the server itself (`backchannel init`), with its owner.
pub(super) fn create_company(
    state: &State,
    actor: Actor,
    company: CompanyId,
    name: &Name,
    widget_key: WidgetKey,
    owner: StaffId,
    owner_name: &Name,
) -> Result<Vec<Event>, DomainError> {
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
        Event::StaffAdded(StaffAdded {
            company,
            staff: owner,
            name: owner_name.clone(),
            role: Role::Owner,
        }),
    ])
}

/// `MarkNotificationsRead`: every active staff member manages their own.
pub(super) fn mark_notifications_read(
    state: &State,
    actor: Actor,
    company_id: CompanyId,
    up_to: u64,
) -> Result<Vec<Event>, DomainError> {
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
    state: &State,
    actor: Actor,
    company: CompanyId,
    private_conversations_enabled: bool,
    new_conversations_private: bool,
) -> Result<Vec<Event>, DomainError> {
    let (_, current) = company_manager(state, actor, company)?;
    let unchanged = current.settings.private_conversations_enabled == private_conversations_enabled
        && current.settings.new_conversations_private == new_conversations_private;
    unless_already(unchanged, || {
        Event::PrivacySettingsChanged(PrivacySettingsChanged {
            company,
            private_conversations_enabled,
            new_conversations_private,
        })
    })
}

pub(super) fn set_widget_origins(
    state: &State,
    actor: Actor,
    company: CompanyId,
    origins: &WidgetOrigins,
) -> Result<Vec<Event>, DomainError> {
    let (_, current) = company_manager(state, actor, company)?;
    unless_already(current.widget_origins == *origins, || {
        Event::WidgetOriginsChanged(WidgetOriginsChanged {
            company,
            origins: origins.clone(),
        })
    })
}

pub(super) fn add_staff(
    state: &State,
    actor: Actor,
    company: CompanyId,
    staff: StaffId,
    name: &Name,
    role: Role,
) -> Result<Vec<Event>, DomainError> {
    let (me, _) = company_manager(state, actor, company)?;
    check_may_give_role(me, role)?;
    if state.staff.contains_key(&staff) {
        return Err(DomainError::validation("the staff id is already in use"));
    }
    Ok(vec![Event::StaffAdded(StaffAdded {
        company,
        staff,
        name: name.clone(),
        role,
    })])
}

pub(super) fn change_role(
    state: &State,
    actor: Actor,
    company: CompanyId,
    staff: StaffId,
    role: Role,
) -> Result<Vec<Event>, DomainError> {
    let (me, target) = colleague(
        state,
        actor,
        company,
        staff,
        [
            "the owner's role cannot be changed",
            "only the owner can demote an admin",
        ],
    )?;
    check_may_give_role(me, role)?;
    check_active(target)?;
    unless_already(target.role == role, || {
        Event::StaffRoleChanged(StaffRoleChanged {
            company,
            staff,
            role,
        })
    })
}

pub(super) fn grant_permission(
    state: &State,
    actor: Actor,
    company: CompanyId,
    staff: StaffId,
    permission: Permission,
) -> Result<Vec<Event>, DomainError> {
    company_manager(state, actor, company)?;
    let target = staff_of(state, company, staff)?;
    check_active(target)?;
    unless_already(target.has(permission), || {
        Event::PermissionGranted(PermissionGranted {
            company,
            staff,
            permission,
        })
    })
}

pub(super) fn revoke_permission(
    state: &State,
    actor: Actor,
    company: CompanyId,
    staff: StaffId,
    permission: Permission,
) -> Result<Vec<Event>, DomainError> {
    company_manager(state, actor, company)?;
    let target = staff_of(state, company, staff)?;
    unless_already(!target.has(permission), || {
        Event::PermissionRevoked(PermissionRevoked {
            company,
            staff,
            permission,
        })
    })
}

pub(super) fn deactivate_staff(
    state: &State,
    actor: Actor,
    company: CompanyId,
    staff: StaffId,
) -> Result<Vec<Event>, DomainError> {
    let (_, target) = colleague(
        state,
        actor,
        company,
        staff,
        [
            "the owner cannot be deactivated",
            "only the owner can deactivate an admin",
        ],
    )?;
    unless_already(!target.active, || {
        Event::StaffDeactivated(StaffDeactivated { company, staff })
    })
}

pub(super) fn create_group(
    state: &State,
    actor: Actor,
    company: CompanyId,
    group: GroupId,
    name: &Name,
    routing: RoutingType,
) -> Result<Vec<Event>, DomainError> {
    company_manager(state, actor, company)?;
    if state.groups.contains_key(&group) {
        return Err(DomainError::validation("the group id is already in use"));
    }
    Ok(vec![Event::GroupCreated(GroupCreated {
        company,
        group,
        name: name.clone(),
        routing,
    })])
}

pub(super) fn rename_group(
    state: &State,
    actor: Actor,
    company: CompanyId,
    group: GroupId,
    name: &Name,
) -> Result<Vec<Event>, DomainError> {
    company_manager(state, actor, company)?;
    let target = group_of(state, company, group)?;
    unless_already(target.name == *name, || {
        Event::GroupRenamed(GroupRenamed {
            company,
            group,
            name: name.clone(),
        })
    })
}

pub(super) fn set_group_routing(
    state: &State,
    actor: Actor,
    company: CompanyId,
    group: GroupId,
    routing: RoutingType,
) -> Result<Vec<Event>, DomainError> {
    company_manager(state, actor, company)?;
    let target = group_of(state, company, group)?;
    unless_already(target.routing == routing, || {
        Event::GroupRoutingChanged(GroupRoutingChanged {
            company,
            group,
            routing,
        })
    })
}

pub(super) fn add_group_member(
    state: &State,
    actor: Actor,
    names: GroupStaff,
) -> Result<Vec<Event>, DomainError> {
    let (group, staff) = group_and_staff(state, actor, &names)?;
    check_active(staff)?;
    unless_already(group.is_member(staff.id), || Event::GroupMemberAdded(names))
}

pub(super) fn remove_group_member(
    state: &State,
    actor: Actor,
    names: GroupStaff,
) -> Result<Vec<Event>, DomainError> {
    let (group, staff) = group_and_staff(state, actor, &names)?;
    unless_already(!group.is_member(staff.id), || {
        Event::GroupMemberRemoved(names)
    })
}

pub(super) fn add_group_supervisor(
    state: &State,
    actor: Actor,
    names: GroupStaff,
) -> Result<Vec<Event>, DomainError> {
    let (group, staff) = group_and_staff(state, actor, &names)?;
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

pub(super) fn remove_group_supervisor(
    state: &State,
    actor: Actor,
    names: GroupStaff,
) -> Result<Vec<Event>, DomainError> {
    let (group, staff) = group_and_staff(state, actor, &names)?;
    unless_already(!group.is_supervisor(staff.id), || {
        Event::GroupSupervisorRemoved(names)
    })
}

/// The group and the staff member a command on a group's members or
/// supervisors names, once the caller is a company manager: both must be of
/// the company (`NOT_FOUND`), the group checked first.
fn group_and_staff<'s>(
    state: &'s State,
    actor: Actor,
    names: &GroupStaff,
) -> Result<(&'s Group, &'s Staff), DomainError> {
    company_manager(state, actor, names.company)?;
    let group = group_of(state, names.company, names.group)?;
    let staff = staff_of(state, names.company, names.staff)?;
    Ok((group, staff))
}

/// The command's event, or none when the company already is as the command
/// asks (`done`): setting what is already set succeeds with no events.
fn unless_already(done: bool, event: impl FnOnce() -> Event) -> Result<Vec<Event>, DomainError> {
    Ok(if done { Vec::new() } else { vec![event()] })
}

/// The acting owner or admin of `id`, and the company: the first checks of
/// every command here but creating a company and marking notifications read,
/// in the order `decide` documents (`UNAUTHENTICATED`, `NOT_FOUND`, then
/// `FORBIDDEN`).
fn company_manager(
    state: &State,
    actor: Actor,
    id: CompanyId,
) -> Result<(&Staff, &Company), DomainError> {
    let me = acting_staff(state, actor, id)?;
    let current = company(state, id)?;
    if !me.role.is_owner_or_admin() {
        return Err(DomainError::Forbidden(
            "only the owner or an admin can manage the company",
        ));
    }
    Ok((me, current))
}

/// The acting manager and the colleague a change of role or a deactivation
/// names (docs/decisions/admins-and-owner.md): never the owner, and an admin
/// only by the owner, else `FORBIDDEN` with `refusals` (the owner's, the
/// admin's).
fn colleague<'s>(
    state: &'s State,
    actor: Actor,
    company: CompanyId,
    staff: StaffId,
    refusals: [&'static str; 2],
) -> Result<(&'s Staff, &'s Staff), DomainError> {
    let (me, _) = company_manager(state, actor, company)?;
    let target = staff_of(state, company, staff)?;
    let [owner, admin] = refusals;
    if target.role == Role::Owner {
        return Err(DomainError::Forbidden(owner));
    }
    if target.role == Role::Admin && me.role != Role::Owner {
        return Err(DomainError::Forbidden(admin));
    }
    Ok((me, target))
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

fn check_active(staff: &Staff) -> Result<(), DomainError> {
    if staff.active {
        Ok(())
    } else {
        Err(DomainError::validation("the staff member is deactivated"))
    }
}
