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

mod conversation;
mod directory;

use crate::commands::Command;
use crate::error::{DomainError, Missing};
use crate::events::Event;
use crate::ids::{CompanyId, ConversationId, GroupId, StaffId};
use crate::model::Actor;
use crate::state::{Company, Conversation, Group, Staff, State};
use crate::visibility::Access;

/// Decides `command` issued by `actor` against `state`.
pub fn decide(state: &State, command: &Command, actor: Actor) -> Result<Vec<Event>, DomainError> {
    match command {
        Command::OpenConversation { .. }
        | Command::AssignConversation { .. }
        | Command::InviteToRoom { .. }
        | Command::SetConversationPrivacy { .. }
        | Command::SendMessage { .. }
        | Command::CloseConversation { .. }
        | Command::EraseConversation { .. }
        | Command::ReopenConversation { .. } => conversation::decide(state, command, actor),
        _ => directory::decide(state, command, actor),
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
    if !target.active {
        return Err(DomainError::validation("the staff member is deactivated"));
    }
    Ok(())
}
