//! Decisions: `(state, command, actor) -> events or error`.
//!
//! A decision reads the current state and either refuses the command with a
//! [`DomainError`] or returns the events that record it. It appends nothing and
//! never fails on IO. Setting something to the value it already has succeeds and
//! returns no events, so a client can submit a form twice without an error.
//!
//! Checks run in a fixed order, so that an error never tells a caller more than
//! they may know: the caller is active staff (`UNAUTHENTICATED`), the target
//! exists in the caller's company (`NOT_FOUND`), the caller may view the
//! conversation (`RESTRICTED_ACCESS`), it is open (`CONVERSATION_CLOSED`), the
//! caller may do this (`FORBIDDEN`), and then the command's own arguments
//! (`VALIDATION`, ...). See `docs/decisions/error-order.md`.
//!
//! [`decide`] routes each command to its own function, named after it
//! (`AssignConversation` to `conversation::assign_conversation`,
//! `AddGroupMember` to `directory::add_group_member`, ...). Where the rules
//! live:
//!
//! - `directory.rs`: the company's settings, staff, permissions and groups,
//!   for the owner and admins (`decide` checks the caller with `manager`
//!   and hands the decision a `Manager`); who may give which role
//!   (`check_may_give_role`); creating a company (the server operator);
//!   marking one's notifications read (every active staff member).
//! - `conversation.rs`: opening, assigning, inviting, privacy, messages,
//!   closing, erasing and reopening; who manages a conversation (`manages`,
//!   `manages_or_handles`) and what a broadcast member who lost the race for
//!   it learns (`lost_the_race`).
//! - here: the shared checks in the order above (`acting_staff`,
//!   `viewable_conversation`, ...) and [`may_issue_staff_token`].
//! - `visibility.rs`: whether the caller may view the conversation (R1–R6);
//!   `permissions.rs`: the read-side permissions that are not commands.

mod conversation;
mod directory;

use crate::commands::Command;
use crate::error::{DomainError, Missing};
use crate::events::Event;
use crate::ids::{CompanyId, ConversationId, GroupId, StaffId};
use crate::model::Actor;
use crate::state::{Company, Conversation, Group, Staff, State};
use crate::visibility::Access;

use directory::manager;

/// What a decision returns: the events that record the command, or why it
/// is refused.
type Decision = Result<Vec<Event>, DomainError>;

/// Decides `command` issued by `actor` against `state`.
///
/// The one routing table: every command goes to its own function, in
/// `directory` (the company: settings, staff, permissions, groups,
/// notifications) or `conversation` (everything on one conversation). The
/// match names every command, so a new one does not compile until routed.
pub fn decide(state: &State, command: &Command, actor: Actor) -> Result<Vec<Event>, DomainError> {
    match command {
        Command::CreateCompany {
            company,
            name,
            widget_key,
            owner,
            owner_name,
        } => directory::create_company(
            state,
            actor,
            *company,
            name,
            *widget_key,
            *owner,
            owner_name,
        ),
        Command::UpdatePrivacySettings {
            company,
            private_conversations_enabled,
            new_conversations_private,
        } => directory::update_privacy_settings(
            manager(state, actor, *company)?,
            *private_conversations_enabled,
            *new_conversations_private,
        ),
        Command::SetWidgetOrigins { company, origins } => {
            directory::set_widget_origins(manager(state, actor, *company)?, origins)
        }
        Command::AddStaff {
            company,
            staff,
            name,
            role,
        } => directory::add_staff(manager(state, actor, *company)?, *staff, name, *role),
        Command::ChangeRole {
            company,
            staff,
            role,
        } => directory::change_role(manager(state, actor, *company)?, *staff, *role),
        Command::GrantPermission {
            company,
            staff,
            permission,
        } => directory::grant_permission(manager(state, actor, *company)?, *staff, *permission),
        Command::RevokePermission {
            company,
            staff,
            permission,
        } => directory::revoke_permission(manager(state, actor, *company)?, *staff, *permission),
        Command::DeactivateStaff { company, staff } => {
            directory::deactivate_staff(manager(state, actor, *company)?, *staff)
        }
        Command::CreateGroup {
            company,
            group,
            name,
            routing,
        } => directory::create_group(manager(state, actor, *company)?, *group, name, *routing),
        Command::RenameGroup {
            company,
            group,
            name,
        } => directory::rename_group(manager(state, actor, *company)?, *group, name),
        Command::SetGroupRouting {
            company,
            group,
            routing,
        } => directory::set_group_routing(manager(state, actor, *company)?, *group, *routing),
        Command::AddGroupMember {
            company,
            group,
            staff,
        } => directory::add_group_member(manager(state, actor, *company)?, *group, *staff),
        Command::RemoveGroupMember {
            company,
            group,
            staff,
        } => directory::remove_group_member(manager(state, actor, *company)?, *group, *staff),
        Command::AddGroupSupervisor {
            company,
            group,
            staff,
        } => directory::add_group_supervisor(manager(state, actor, *company)?, *group, *staff),
        Command::RemoveGroupSupervisor {
            company,
            group,
            staff,
        } => directory::remove_group_supervisor(manager(state, actor, *company)?, *group, *staff),
        Command::MarkNotificationsRead { company, up_to } => {
            directory::mark_notifications_read(state, actor, *company, *up_to)
        }
        Command::OpenConversation {
            company,
            conversation,
            group,
            channel,
            customer,
            first_message,
        } => conversation::open_conversation(
            state,
            actor,
            *company,
            *conversation,
            *group,
            *channel,
            customer,
            first_message.as_ref(),
        ),
        Command::AssignConversation {
            conversation,
            assignee,
        } => conversation::assign_conversation(state, actor, *conversation, *assignee),
        Command::InviteToRoom {
            conversation,
            staff,
        } => conversation::invite_to_room(state, actor, *conversation, *staff),
        Command::SetConversationPrivacy {
            conversation,
            private,
        } => conversation::set_conversation_privacy(state, actor, *conversation, *private),
        Command::SendMessage {
            conversation,
            message,
            visibility,
            body,
        } => conversation::send_message(state, actor, *conversation, *message, *visibility, body),
        Command::CloseConversation { conversation } => {
            conversation::close_conversation(state, actor, *conversation)
        }
        Command::EraseConversation {
            conversation,
            reason,
        } => conversation::erase_conversation(state, actor, *conversation, reason),
        Command::ReopenConversation { conversation } => {
            conversation::reopen_conversation(state, actor, *conversation)
        }
    }
}

fn company(state: &State, id: CompanyId) -> Result<&Company, DomainError> {
    state
        .companies
        .get(&id)
        .ok_or(DomainError::NotFound(Missing::Company))
}

/// The acting staff member, who must exist and be active.
fn active_staff(state: &State, actor: Actor) -> Result<&Staff, DomainError> {
    let Actor::Staff(id) = actor else {
        return Err(DomainError::Forbidden("only staff can do this"));
    };
    match state.staff.get(&id) {
        Some(staff) if staff.active => Ok(staff),
        _ => Err(DomainError::Unauthenticated),
    }
}

/// The acting staff member, who must be active staff of `company`. Staff of
/// another company learn nothing: for them the company's objects do not exist.
fn acting_staff(state: &State, actor: Actor, company: CompanyId) -> Result<&Staff, DomainError> {
    let staff = active_staff(state, actor)?;
    if staff.company != company || !state.companies.contains_key(&company) {
        return Err(DomainError::NotFound(Missing::Company));
    }
    Ok(staff)
}

fn staff_of(state: &State, company: CompanyId, id: StaffId) -> Result<&Staff, DomainError> {
    state
        .staff
        .get(&id)
        .filter(|s| s.company == company)
        .ok_or(DomainError::NotFound(Missing::Staff))
}

fn group_of(state: &State, company: CompanyId, id: GroupId) -> Result<&Group, DomainError> {
    state
        .groups
        .get(&id)
        .filter(|g| g.company == company)
        .ok_or(DomainError::NotFound(Missing::Group))
}

/// The conversation and its group, as the acting staff member may see them.
fn viewable_conversation(
    state: &State,
    staff: StaffId,
    id: ConversationId,
) -> Result<(&Conversation, &Group), DomainError> {
    match state.access(staff, id) {
        Access::Granted(_) => {}
        Access::Restricted => return Err(DomainError::RestrictedAccess),
        Access::NotFound => return Err(DomainError::NotFound(Missing::Conversation)),
    }
    let conversation = state
        .conversations
        .get(&id)
        .ok_or(DomainError::NotFound(Missing::Conversation))?;
    let group = state
        .groups
        .get(&conversation.group)
        .ok_or(DomainError::NotFound(Missing::Conversation))?;
    Ok((conversation, group))
}

/// SPEC section 8: owners and admins mint tokens for their staff. Only the owner
/// mints for the owner or an admin (a token is the identity it names, so minting
/// one for a higher role would be an escalation); the target must be active.
pub fn may_issue_staff_token(
    state: &State,
    actor: Actor,
    target: StaffId,
) -> Result<(), DomainError> {
    let me = active_staff(state, actor)?;
    if !me.role.is_owner_or_admin() {
        return Err(DomainError::Forbidden(
            "only the owner or an admin can issue staff tokens",
        ));
    }
    let target = staff_of(state, me.company, target)?;
    if target.role.is_owner_or_admin() && me.role != crate::model::Role::Owner && target.id != me.id
    {
        return Err(DomainError::Forbidden(
            "only the owner can issue tokens for the owner or an admin",
        ));
    }
    check_active(target)
}

/// The staff member a command names (an assignee, an invitee, a new member)
/// must be active, else `VALIDATION`.
fn check_active(staff: &Staff) -> Result<(), DomainError> {
    if staff.active {
        Ok(())
    } else {
        Err(DomainError::validation("the staff member is deactivated"))
    }
}
