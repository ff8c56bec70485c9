//! Decisions on conversations: opening and routing, assignment and transfer, the
//! room, privacy, messages and the lifecycle (SPEC section 4, from "open a
//! conversation" on, and the rules on private messages), one function per
//! command.
//!
//! Who may do what to a conversation, by name: viewing it at all is
//! `visibility::conversation_access` (through `staff_context`); `manages`
//! (the owner, admins and the group's supervisors, who may also whisper
//! without being participants); `manages_or_handles` (or the assignee: who
//! may invite, close and reopen); who may assign or transfer, in
//! `assign_conversation`; privacy and erasure are for the owner and admins.

use crate::commands::FirstMessage;
use crate::error::{DomainError, Missing};
use crate::events::*;
use crate::ids::{CompanyId, ConversationId, GroupId, MessageId, StaffId};
use crate::model::{Actor, Channel, ConversationStatus, MessageVisibility, RoutingType};
use crate::state::{Conversation, Group, Staff, State};
use crate::values::{Content, ErasureReason, MessageBody, Name};
use crate::visibility::supervises;

use super::{
    Decision, acting_staff, active_staff, check_active, company, group_of, staff_of,
    viewable_conversation,
};

/// `OpenConversation`: by the customer through the widget, by staff of the
/// company on a customer's behalf, or by the server itself.
#[allow(clippy::too_many_arguments)] // the command's six fields, as the others take theirs
pub(super) fn open_conversation(
    state: &State,
    actor: Actor,
    company_id: CompanyId,
    conversation: ConversationId,
    group: GroupId,
    channel: Channel,
    customer: &Name,
    first_message: Option<&FirstMessage>,
) -> Decision {
    match actor {
        Actor::Customer(own) if own == conversation => {}
        Actor::Customer(_) => {
            return Err(DomainError::Forbidden(
                "a customer can only open their own conversation",
            ));
        }
        Actor::Staff(_) => {
            acting_staff(state, actor, company_id)?;
        }
        Actor::System => {}
    }
    let current = company(state, company_id)?;
    let group = group_of(state, company_id, group)?;
    if state.conversations.contains_key(&conversation) {
        return Err(DomainError::validation(
            "the conversation id is already in use",
        ));
    }
    let mut events = vec![Event::ConversationOpened(ConversationOpened {
        company: company_id,
        conversation,
        group: group.id,
        channel,
        customer: Content::Plain(customer.clone()),
        private: current.settings.new_conversations_private,
    })];
    // A round-robin group with no active member leaves it queued for the
    // owner, admins and the group's supervisors to assign.
    if group.routing == RoutingType::RoundRobin
        && let Some(assignee) = state.next_in_rotation(group)
    {
        events.push(Event::ConversationAssigned(ConversationAssigned {
            conversation,
            assignee,
            previous_assignee: None,
            round_robin: true,
        }));
        // The turn, on the company stream: openings decided against the
        // same rotation conflict there and are decided again.
        events.push(Event::RoundRobinTurnTaken(RoundRobinTurnTaken {
            company: company_id,
            group: group.id,
            conversation,
            assignee,
        }));
    }
    // The customer's own words, whoever records them (the widget, or
    // staff logging a call).
    if let Some(first) = first_message {
        events.push(Event::MessagePosted(MessagePosted {
            conversation,
            message: first.message,
            author: MessageAuthor::Customer,
            body: Content::Plain(first.body.clone()),
        }));
    }
    Ok(events)
}

/// `AssignConversation`: assigns a queued conversation, or transfers a
/// handled one.
pub(super) fn assign_conversation(
    state: &State,
    actor: Actor,
    conversation: ConversationId,
    assignee: StaffId,
) -> Decision {
    let (me, conv, group) = match staff_context(state, actor, conversation) {
        Err(DomainError::RestrictedAccess) => {
            return Err(lost_the_race(state, actor, conversation));
        }
        other => other?,
    };
    check_open(conv)?;
    let manager = manages(me, group);
    match conv.status {
        ConversationStatus::Queued => {
            let broadcast_member =
                group.routing == RoutingType::Broadcast && group.is_member(me.id);
            if !manager && !broadcast_member {
                return Err(DomainError::Forbidden(
                    "only the owner, admins, the group's supervisors or, in a broadcast group, its members can assign this conversation",
                ));
            }
        }
        _ => {
            if !manager && conv.assignee != Some(me.id) {
                // Another member got there first. The caller may view
                // the conversation (`staff_context`), so say who has it.
                let could_have_taken_it =
                    group.routing == RoutingType::Broadcast && group.is_member(me.id);
                return Err(if could_have_taken_it {
                    DomainError::Conflict {
                        current_assignee: conv.assignee,
                    }
                } else {
                    DomainError::Forbidden(
                        "only the owner, admins, the group's supervisors or the assignee can transfer this conversation",
                    )
                });
            }
        }
    }
    let target = staff_of(state, conv.company, assignee)?;
    if !target.active || !group.is_member(target.id) {
        return Err(DomainError::validation(
            "the assignee must be an active member of the conversation's group",
        ));
    }
    if conv.assignee == Some(target.id) {
        return Ok(Vec::new());
    }
    Ok(vec![Event::ConversationAssigned(ConversationAssigned {
        conversation: conv.id,
        assignee: target.id,
        previous_assignee: conv.assignee,
        round_robin: false,
    })])
}

pub(super) fn invite_to_room(
    state: &State,
    actor: Actor,
    conversation: ConversationId,
    staff: StaffId,
) -> Decision {
    let (me, conv, group) = staff_context(state, actor, conversation)?;
    check_open(conv)?;
    if !manages_or_handles(me, group, conv) {
        return Err(DomainError::Forbidden(
            "only the owner, admins, the group's supervisors or the assignee can invite into the room",
        ));
    }
    let invitee = staff_of(state, conv.company, staff)?;
    check_active(invitee)?;
    if conv.is_participant(invitee.id) {
        return Ok(Vec::new());
    }
    Ok(vec![Event::StaffInvitedToRoom(StaffInvitedToRoom {
        conversation: conv.id,
        staff: invitee.id,
    })])
}

pub(super) fn set_conversation_privacy(
    state: &State,
    actor: Actor,
    conversation: ConversationId,
    private: bool,
) -> Decision {
    let (me, conv, _) = staff_context(state, actor, conversation)?;
    if !me.role.is_owner_or_admin() {
        return Err(DomainError::Forbidden(
            "only the owner or an admin can make a conversation public or private",
        ));
    }
    if conv.private == private {
        return Ok(Vec::new());
    }
    Ok(vec![Event::ConversationPrivacyChanged(
        ConversationPrivacyChanged {
            conversation: conv.id,
            private,
        },
    )])
}

/// `CloseConversation`: by the customer, or by staff who manage or handle it.
pub(super) fn close_conversation(
    state: &State,
    actor: Actor,
    conversation: ConversationId,
) -> Decision {
    if let Actor::Customer(_) = actor {
        let conv = customer_conversation(state, actor, conversation)?;
        check_open(conv)?;
        return Ok(vec![closed(conv.id)]);
    }
    let (me, conv, group) = staff_context(state, actor, conversation)?;
    check_open(conv)?;
    if !manages_or_handles(me, group, conv) {
        return Err(DomainError::Forbidden(
            "only the owner, admins, the group's supervisors or the assignee can close this conversation",
        ));
    }
    Ok(vec![closed(conv.id)])
}

/// `EraseConversation` (SPEC section 12): the owner and admins.
pub(super) fn erase_conversation(
    state: &State,
    actor: Actor,
    conversation: ConversationId,
    reason: &ErasureReason,
) -> Decision {
    let (me, conv, _group) = staff_context(state, actor, conversation)?;
    if !me.role.is_owner_or_admin() {
        return Err(DomainError::Forbidden(
            "only the owner and admins can erase a conversation",
        ));
    }
    if conv.is_erased() {
        // Already what was asked: nothing more to destroy or record.
        return Ok(vec![]);
    }
    // Its customer data sits in clear in the log: destroying a key would
    // erase nothing (docs/erasure.md, the migration).
    if conv.is_stored_in_clear() {
        return Err(DomainError::StoredInClear);
    }
    Ok(vec![Event::ConversationErased(ConversationErased {
        conversation: conv.id,
        erased_by: me.id,
        reason: reason.clone(),
    })])
}

/// New content cannot be added to an erased conversation: its key is gone.
fn check_not_erased(conv: &Conversation) -> Result<(), DomainError> {
    match conv.is_erased() {
        true => Err(DomainError::Erased),
        false => Ok(()),
    }
}

/// `ReopenConversation`: back to the last assignee if they can still take
/// it, else to the queue.
pub(super) fn reopen_conversation(
    state: &State,
    actor: Actor,
    conversation: ConversationId,
) -> Decision {
    let (me, conv, group) = staff_context(state, actor, conversation)?;
    if conv.status != ConversationStatus::Closed {
        return Err(DomainError::validation("the conversation is not closed"));
    }
    if !manages_or_handles(me, group, conv) {
        return Err(DomainError::Forbidden(
            "only the owner, admins, the group's supervisors or the last assignee can reopen this conversation",
        ));
    }
    let assignee = conv
        .assignee
        .filter(|a| group.is_member(*a) && state.staff.get(a).is_some_and(|s| s.active));
    Ok(vec![Event::ConversationReopened(ConversationReopened {
        conversation: conv.id,
        assignee,
    })])
}

/// `SendMessage`: a public message by the customer or a participant, or a
/// private one (staff only) by a participant or whoever manages the group.
pub(super) fn send_message(
    state: &State,
    actor: Actor,
    conversation: ConversationId,
    message: MessageId,
    visibility: MessageVisibility,
    body: &MessageBody,
) -> Decision {
    // A public message's event, once the checks found who its author is.
    let public = |author| {
        vec![Event::MessagePosted(MessagePosted {
            conversation,
            message,
            author,
            body: Content::Plain(body.clone()),
        })]
    };
    if let Actor::Customer(_) = actor {
        let conv = customer_conversation(state, actor, conversation)?;
        check_open(conv)?;
        if visibility == MessageVisibility::Private {
            return Err(DomainError::Forbidden(
                "customers can only post public messages",
            ));
        }
        check_not_erased(conv)?;
        return Ok(public(MessageAuthor::Customer));
    }
    let (me, conv, group) = staff_context(state, actor, conversation)?;
    check_open(conv)?;
    match visibility {
        MessageVisibility::Public => {
            if !conv.is_participant(me.id) {
                return Err(DomainError::Forbidden(
                    "only participants of the conversation can post public messages",
                ));
            }
            check_not_erased(conv)?;
            Ok(public(MessageAuthor::Staff(me.id)))
        }
        MessageVisibility::Private => {
            if !conv.channel.supports_private_messages() {
                return Err(DomainError::PrivateMessagesUnsupported);
            }
            // Owner, admins and supervisors may whisper "from the overview".
            let may_whisper = conv.is_participant(me.id) || manages(me, group);
            if !may_whisper {
                return Err(DomainError::Forbidden(
                    "only participants, the owner, admins and the group's supervisors can post private messages",
                ));
            }
            check_not_erased(conv)?;
            Ok(vec![Event::PrivateMessagePosted(PrivateMessagePosted {
                conversation: conv.id,
                message,
                author: me.id,
                body: Content::Plain(body.clone()),
            })])
        }
    }
}

/// A broadcast-group member who tries to take a private conversation they can
/// no longer view (another member took it, it was transferred away from them,
/// or they joined the group after it left the queue) learns that it was
/// taken, never by whom (SPEC sections 3 and 7): `CONFLICT` without the
/// assignee. The answer is the same whether it is being handled or closed
/// since, so the status does not show either. Anyone else who cannot view it
/// gets `RESTRICTED_ACCESS`.
fn lost_the_race(state: &State, actor: Actor, conversation: ConversationId) -> DomainError {
    let (Actor::Staff(me), Some(conv)) = (actor, state.conversations.get(&conversation)) else {
        return DomainError::RestrictedAccess;
    };
    let broadcast_member = state
        .groups
        .get(&conv.group)
        .is_some_and(|g| g.routing == RoutingType::Broadcast && g.is_member(me));
    if conv.status != ConversationStatus::Queued && broadcast_member {
        DomainError::Conflict {
            current_assignee: None,
        }
    } else {
        DomainError::RestrictedAccess
    }
}

/// The owner, an admin, or a supervisor of the conversation's group.
fn manages(me: &Staff, group: &Group) -> bool {
    me.role.is_owner_or_admin() || supervises(me, group)
}

/// Manages the conversation's group, or is its assignee: who may invite,
/// close and reopen (SPEC section 4).
fn manages_or_handles(me: &Staff, group: &Group, conv: &Conversation) -> bool {
    manages(me, group) || conv.assignee == Some(me.id)
}

/// The acting staff member and the conversation they may view.
fn staff_context(
    state: &State,
    actor: Actor,
    conversation: ConversationId,
) -> Result<(&Staff, &Conversation, &Group), DomainError> {
    let me = active_staff(state, actor)?;
    let (conv, group) = viewable_conversation(state, me.id, conversation)?;
    Ok((me, conv, group))
}

/// A customer's token is scoped to one conversation; any other is not found.
fn customer_conversation(
    state: &State,
    actor: Actor,
    conversation: ConversationId,
) -> Result<&Conversation, DomainError> {
    match actor {
        Actor::Customer(own) if own == conversation => state
            .conversations
            .get(&conversation)
            .ok_or(DomainError::NotFound(Missing::Conversation)),
        _ => Err(DomainError::NotFound(Missing::Conversation)),
    }
}

fn check_open(conversation: &Conversation) -> Result<(), DomainError> {
    if conversation.status == ConversationStatus::Closed {
        Err(DomainError::ConversationClosed)
    } else {
        Ok(())
    }
}

fn closed(conversation: ConversationId) -> Event {
    Event::ConversationClosed(ConversationClosed { conversation })
}
