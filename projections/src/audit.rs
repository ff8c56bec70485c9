//! Audit trails (SPEC section 9): who did what, when, through which command —
//! for a conversation, a staff member (what they did, and what was done to
//! them) or a company — as text for humans or JSON Lines for tools.
//!
//! Entries are written as the log is replayed (memory: the domain state, for
//! names). Names are the ones current at each event. Message bodies, public
//! and private, are part of an audit trail: this is an owner's/auditor's view.

use std::io::Write;
use std::ops::ControlFlow;

use backchannel_domain::State;
use backchannel_domain::events::{Event, MessageAuthor, StreamId};
use backchannel_domain::ids::{CompanyId, ConversationId, GroupId, StaffId};
use backchannel_domain::model::{Actor, RoutingType};
use backchannel_eventlog::RecordedEvent;

use crate::replay::EventSource;
use crate::time::TimeRangeError;

mod json;
mod text;

use json::json_line;
pub use text::describe;
use text::text_line;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditSubject {
    Conversation(ConversationId),
    Staff(StaffId),
    Company(CompanyId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditFormat {
    Text,
    JsonLines,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("no {kind} with id {id} in the log")]
    UnknownSubject { kind: &'static str, id: String },
    #[error("reading the log failed: {0}")]
    Source(Box<dyn std::error::Error + Send + Sync>),
    #[error("writing the audit trail failed: {0}")]
    Output(#[from] std::io::Error),
    #[error(transparent)]
    Time(#[from] TimeRangeError),
}

/// Which entries an audit trail holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditTrail {
    /// Who did what (SPEC section 9): the events that concern the subject.
    Events,
    /// The read audit (SPEC section 12), oldest first: the `ContentOpened`
    /// entries of a conversation (who opened it), of a staff member (what
    /// they opened), or of a company.
    ContentOpened,
}

/// Writes the `trail` of `subject` to `out`; returns the number of entries.
/// An id the log never mentions is an error (and nothing is written).
pub fn write_audit<S: EventSource, W: Write>(
    source: &S,
    subject: AuditSubject,
    trail: AuditTrail,
    format: AuditFormat,
    mut out: W,
) -> Result<u64, AuditError> {
    let belongs: fn(&State, AuditSubject, &RecordedEvent) -> bool = match trail {
        AuditTrail::Events => concerns,
        AuditTrail::ContentOpened => opened_content,
    };
    let mut state = State::default();
    let mut entries = 0u64;
    let mut failure = None;
    source
        .replay(1, source.head(), &mut |recorded| {
            state.apply(&recorded.event);
            if !belongs(&state, subject, recorded) {
                return ControlFlow::Continue(());
            }
            let line = match format {
                AuditFormat::Text => text_line(&state, recorded),
                AuditFormat::JsonLines => json_line(&state, recorded),
            };
            let written = line
                .map_err(AuditError::from)
                .and_then(|line| Ok(writeln!(out, "{line}")?));
            match written {
                Ok(()) => {
                    entries += 1;
                    ControlFlow::Continue(())
                }
                Err(err) => {
                    failure = Some(err);
                    ControlFlow::Break(())
                }
            }
        })
        .map_err(|err| AuditError::Source(Box::new(err)))?;
    if let Some(err) = failure {
        return Err(err);
    }
    out.flush()?;
    let known = match subject {
        AuditSubject::Conversation(id) => state.conversations.contains_key(&id),
        AuditSubject::Staff(id) => state.staff.contains_key(&id),
        AuditSubject::Company(id) => state.companies.contains_key(&id),
    };
    if !known && entries == 0 {
        let (kind, id) = match subject {
            AuditSubject::Conversation(id) => ("conversation", id.to_string()),
            AuditSubject::Staff(id) => ("staff member", id.to_string()),
            AuditSubject::Company(id) => ("company", id.to_string()),
        };
        return Err(AuditError::UnknownSubject { kind, id });
    }
    Ok(entries)
}

/// Whether the event is a read-audit entry of the subject.
fn opened_content(_: &State, subject: AuditSubject, recorded: &RecordedEvent) -> bool {
    let Event::ContentOpened(e) = &recorded.event else {
        return false;
    };
    match subject {
        AuditSubject::Conversation(id) => e.conversation == id,
        AuditSubject::Staff(id) => e.staff == id,
        AuditSubject::Company(id) => e.company == id,
    }
}

/// Whether the event belongs to the subject's trail (`state` has the event applied).
fn concerns(state: &State, subject: AuditSubject, recorded: &RecordedEvent) -> bool {
    let event = &recorded.event;
    match subject {
        AuditSubject::Conversation(id) => event.stream() == StreamId::Conversation(id),
        AuditSubject::Company(id) => match event.stream() {
            StreamId::Company(company) | StreamId::ReadAudit(company) => company == id,
            StreamId::Conversation(c) => {
                state.conversations.get(&c).is_some_and(|c| c.company == id)
            }
        },
        AuditSubject::Staff(id) => {
            recorded.envelope.actor == Actor::Staff(id) || mentions_staff(event, id)
        }
    }
}

fn mentions_staff(event: &Event, id: StaffId) -> bool {
    match event {
        Event::StaffAdded(e) => e.staff == id,
        Event::StaffRoleChanged(e) => e.staff == id,
        Event::PermissionGranted(e) => e.staff == id,
        Event::PermissionRevoked(e) => e.staff == id,
        Event::StaffDeactivated(e) => e.staff == id,
        Event::GroupMemberAdded(e)
        | Event::GroupMemberRemoved(e)
        | Event::GroupSupervisorAdded(e)
        | Event::GroupSupervisorRemoved(e) => e.staff == id,
        Event::ConversationAssigned(e) => e.assignee == id || e.previous_assignee == Some(id),
        Event::StaffInvitedToRoom(e) => e.staff == id,
        Event::ConversationReopened(e) => e.assignee == Some(id),
        Event::NotificationsMarkedRead(e) => e.staff == id,
        Event::RoundRobinTurnTaken(e) => e.assignee == id,
        Event::MessagePosted(e) => e.author == MessageAuthor::Staff(id),
        Event::PrivateMessagePosted(e) => e.author == id,
        Event::ContentOpened(e) => e.staff == id,
        _ => false,
    }
}

fn staff_label(state: &State, id: StaffId) -> String {
    match state.staff.get(&id) {
        Some(staff) => format!("{:?} ({id})", staff.name.as_str()),
        None => format!("staff {id}"),
    }
}

fn group_label(state: &State, id: GroupId) -> String {
    match state.groups.get(&id) {
        Some(group) => format!("group {:?} ({id})", group.name.as_str()),
        None => format!("group {id}"),
    }
}

fn actor_label(state: &State, actor: Actor) -> String {
    match actor {
        Actor::Staff(id) => format!("staff {}", staff_label(state, id)),
        Actor::Customer(c) => match state.conversations.get(&c) {
            Some(conversation) => format!("customer {:?}", conversation.customer.text()),
            None => "customer".to_owned(),
        },
        Actor::System => "system".to_owned(),
    }
}

fn routing_name(routing: RoutingType) -> &'static str {
    match routing {
        RoutingType::Broadcast => "BROADCAST",
        RoutingType::RoundRobin => "ROUND_ROBIN",
    }
}

fn on_off(flag: bool) -> &'static str {
    if flag { "on" } else { "off" }
}
