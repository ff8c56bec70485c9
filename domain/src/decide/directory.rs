//! Decisions on the company: settings, staff, permissions and groups
//! (SPEC section 4, first three rows). All of them are for the owner and admins.

use crate::commands::Command;
use crate::error::DomainError;
use crate::events::*;
use crate::model::{Actor, Role};
use crate::state::{Staff, State};

use super::{acting_staff, company, group_of, staff_of};

pub(super) fn decide(
    state: &State,
    command: &Command,
    actor: Actor,
) -> Result<Vec<Event>, DomainError> {
    if let Command::CreateCompany {
        company,
        name,
        widget_key,
        owner,
        owner_name,
    } = command
    {
        if actor != Actor::System {
            return Err(DomainError::Forbidden(
                "companies are created by the server operator",
            ));
        }
        if state.companies.contains_key(company)
            || state.company_by_widget_key(*widget_key).is_some()
        {
            return Err(DomainError::validation("the company already exists"));
        }
        if state.staff.contains_key(owner) {
            return Err(DomainError::validation(
                "the owner's staff id is already in use",
            ));
        }
        return Ok(vec![
            Event::CompanyCreated(CompanyCreated {
                company: *company,
                name: name.clone(),
                widget_key: *widget_key,
            }),
            Event::StaffAdded(StaffAdded {
                company: *company,
                staff: *owner,
                name: owner_name.clone(),
                role: Role::Owner,
            }),
        ]);
    }

    let company_id = match command.stream() {
        StreamId::Company(id) => id,
        StreamId::Conversation(_) | StreamId::ReadAudit(_) => {
            return Err(DomainError::validation("not a company command"));
        }
    };
    let me = acting_staff(state, actor, company_id)?;
    let current = company(state, company_id)?;
    // Every active staff member manages their own notifications.
    if let Command::MarkNotificationsRead { company, up_to } = command {
        if *up_to <= me.notifications_read_up_to {
            return Ok(Vec::new());
        }
        return Ok(vec![Event::NotificationsMarkedRead(
            NotificationsMarkedRead {
                company: *company,
                staff: me.id,
                up_to: *up_to,
            },
        )]);
    }
    if !me.role.is_owner_or_admin() {
        return Err(DomainError::Forbidden(
            "only the owner or an admin can manage the company",
        ));
    }

    let events = match command {
        Command::CreateCompany { .. } | Command::MarkNotificationsRead { .. } => Vec::new(),
        Command::UpdatePrivacySettings {
            company,
            private_conversations_enabled,
            new_conversations_private,
        } => {
            let unchanged = current.settings.private_conversations_enabled
                == *private_conversations_enabled
                && current.settings.new_conversations_private == *new_conversations_private;
            if unchanged {
                Vec::new()
            } else {
                vec![Event::PrivacySettingsChanged(PrivacySettingsChanged {
                    company: *company,
                    private_conversations_enabled: *private_conversations_enabled,
                    new_conversations_private: *new_conversations_private,
                })]
            }
        }
        Command::SetWidgetOrigins { company, origins } => {
            if current.widget_origins == *origins {
                Vec::new()
            } else {
                vec![Event::WidgetOriginsChanged(WidgetOriginsChanged {
                    company: *company,
                    origins: origins.clone(),
                })]
            }
        }
        Command::AddStaff {
            company,
            staff,
            name,
            role,
        } => {
            check_may_give_role(me, *role)?;
            if state.staff.contains_key(staff) {
                return Err(DomainError::validation("the staff id is already in use"));
            }
            vec![Event::StaffAdded(StaffAdded {
                company: *company,
                staff: *staff,
                name: name.clone(),
                role: *role,
            })]
        }
        Command::ChangeRole {
            company,
            staff,
            role,
        } => {
            let target = staff_of(state, *company, *staff)?;
            if target.role == Role::Owner {
                return Err(DomainError::Forbidden("the owner's role cannot be changed"));
            }
            if target.role == Role::Admin && me.role != Role::Owner {
                return Err(DomainError::Forbidden("only the owner can demote an admin"));
            }
            check_may_give_role(me, *role)?;
            check_active(target)?;
            if target.role == *role {
                Vec::new()
            } else {
                vec![Event::StaffRoleChanged(StaffRoleChanged {
                    company: *company,
                    staff: *staff,
                    role: *role,
                })]
            }
        }
        Command::GrantPermission {
            company,
            staff,
            permission,
        } => {
            let target = staff_of(state, *company, *staff)?;
            check_active(target)?;
            if target.has(*permission) {
                Vec::new()
            } else {
                vec![Event::PermissionGranted(PermissionGranted {
                    company: *company,
                    staff: *staff,
                    permission: *permission,
                })]
            }
        }
        Command::RevokePermission {
            company,
            staff,
            permission,
        } => {
            let target = staff_of(state, *company, *staff)?;
            if target.has(*permission) {
                vec![Event::PermissionRevoked(PermissionRevoked {
                    company: *company,
                    staff: *staff,
                    permission: *permission,
                })]
            } else {
                Vec::new()
            }
        }
        Command::DeactivateStaff { company, staff } => {
            let target = staff_of(state, *company, *staff)?;
            if target.role == Role::Owner {
                return Err(DomainError::Forbidden("the owner cannot be deactivated"));
            }
            if target.role == Role::Admin && me.role != Role::Owner {
                return Err(DomainError::Forbidden(
                    "only the owner can deactivate an admin",
                ));
            }
            if target.active {
                vec![Event::StaffDeactivated(StaffDeactivated {
                    company: *company,
                    staff: *staff,
                })]
            } else {
                Vec::new()
            }
        }
        Command::CreateGroup {
            company,
            group,
            name,
            routing,
        } => {
            if state.groups.contains_key(group) {
                return Err(DomainError::validation("the group id is already in use"));
            }
            vec![Event::GroupCreated(GroupCreated {
                company: *company,
                group: *group,
                name: name.clone(),
                routing: *routing,
            })]
        }
        Command::RenameGroup {
            company,
            group,
            name,
        } => {
            let target = group_of(state, *company, *group)?;
            if target.name == *name {
                Vec::new()
            } else {
                vec![Event::GroupRenamed(GroupRenamed {
                    company: *company,
                    group: *group,
                    name: name.clone(),
                })]
            }
        }
        Command::SetGroupRouting {
            company,
            group,
            routing,
        } => {
            let target = group_of(state, *company, *group)?;
            if target.routing == *routing {
                Vec::new()
            } else {
                vec![Event::GroupRoutingChanged(GroupRoutingChanged {
                    company: *company,
                    group: *group,
                    routing: *routing,
                })]
            }
        }
        Command::AddGroupMember {
            company,
            group,
            staff,
        } => {
            let target_group = group_of(state, *company, *group)?;
            let target = staff_of(state, *company, *staff)?;
            check_active(target)?;
            if target_group.is_member(*staff) {
                Vec::new()
            } else {
                vec![Event::GroupMemberAdded(group_staff(
                    *company, *group, *staff,
                ))]
            }
        }
        Command::RemoveGroupMember {
            company,
            group,
            staff,
        } => {
            let target_group = group_of(state, *company, *group)?;
            staff_of(state, *company, *staff)?;
            if target_group.is_member(*staff) {
                vec![Event::GroupMemberRemoved(group_staff(
                    *company, *group, *staff,
                ))]
            } else {
                Vec::new()
            }
        }
        Command::AddGroupSupervisor {
            company,
            group,
            staff,
        } => {
            let target_group = group_of(state, *company, *group)?;
            let target = staff_of(state, *company, *staff)?;
            check_active(target)?;
            if target.role != Role::Supervisor {
                return Err(DomainError::validation(
                    "only staff with the SUPERVISOR role can supervise a group",
                ));
            }
            if target_group.is_supervisor(*staff) {
                Vec::new()
            } else {
                vec![Event::GroupSupervisorAdded(group_staff(
                    *company, *group, *staff,
                ))]
            }
        }
        Command::RemoveGroupSupervisor {
            company,
            group,
            staff,
        } => {
            let target_group = group_of(state, *company, *group)?;
            staff_of(state, *company, *staff)?;
            if target_group.is_supervisor(*staff) {
                vec![Event::GroupSupervisorRemoved(group_staff(
                    *company, *group, *staff,
                ))]
            } else {
                Vec::new()
            }
        }
        Command::OpenConversation { .. }
        | Command::AssignConversation { .. }
        | Command::InviteToRoom { .. }
        | Command::SetConversationPrivacy { .. }
        | Command::SendMessage { .. }
        | Command::CloseConversation { .. }
        | Command::EraseConversation { .. }
        | Command::ReopenConversation { .. } => {
            return Err(DomainError::validation("not a company command"));
        }
    };
    Ok(events)
}

fn group_staff(
    company: crate::ids::CompanyId,
    group: crate::ids::GroupId,
    staff: crate::ids::StaffId,
) -> GroupStaff {
    GroupStaff {
        company,
        group,
        staff,
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

fn check_active(staff: &Staff) -> Result<(), DomainError> {
    if staff.active {
        Ok(())
    } else {
        Err(DomainError::validation("the staff member is deactivated"))
    }
}
