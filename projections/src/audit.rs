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
use backchannel_domain::events::{self, Event, MessageAuthor, StreamId};
use backchannel_domain::ids::{CompanyId, ConversationId, GroupId, StaffId};
use backchannel_domain::model::{Actor, RoutingType};
use backchannel_eventlog::RecordedEvent;
use serde::Serialize;

use crate::replay::EventSource;
use crate::report::channel_name;
use crate::time::{TimeRangeError, format_rfc3339};

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

/// Writes the audit trail of `subject` to `out`; returns the number of entries.
/// An id the log never mentions is an error (and nothing is written).
pub fn write_audit<S: EventSource, W: Write>(
    source: &S,
    subject: AuditSubject,
    format: AuditFormat,
    out: W,
) -> Result<u64, AuditError> {
    write_entries(source, subject, format, out, concerns)
}

/// Writes the read audit of `subject` (SPEC section 12), oldest first: the
/// `ContentOpened` entries of a conversation (who opened it), of a staff
/// member (what they opened), or of a company. Same formats and errors as
/// [`write_audit`].
pub fn write_access_log<S: EventSource, W: Write>(
    source: &S,
    subject: AuditSubject,
    format: AuditFormat,
    out: W,
) -> Result<u64, AuditError> {
    write_entries(source, subject, format, out, opened_content)
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

fn write_entries<S: EventSource, W: Write>(
    source: &S,
    subject: AuditSubject,
    format: AuditFormat,
    mut out: W,
    concerns: fn(&State, AuditSubject, &RecordedEvent) -> bool,
) -> Result<u64, AuditError> {
    let mut state = State::default();
    let mut entries = 0u64;
    let mut failure = None;
    source
        .replay(1, source.head(), &mut |recorded| {
            state.apply(&recorded.event);
            if !concerns(&state, subject, recorded) {
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
            Some(conversation) => format!("customer {:?}", conversation.customer.shown()),
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

/// A one-line human description of what the event did.
pub fn describe(state: &State, event: &Event) -> String {
    let staff = |id| staff_label(state, id);
    let group = |id| group_label(state, id);
    match event {
        Event::CompanyCreated(e) => {
            format!("created company {:?} ({})", e.name.as_str(), e.company)
        }
        Event::PrivacySettingsChanged(e) => format!(
            "set privateConversationsEnabled {}, newConversationsPrivate {}",
            on_off(e.private_conversations_enabled),
            on_off(e.new_conversations_private)
        ),
        Event::StaffAdded(e) => format!("added {} as {}", staff(e.staff), e.role),
        Event::StaffRoleChanged(e) => {
            format!("changed the role of {} to {}", staff(e.staff), e.role)
        }
        Event::PermissionGranted(e) => {
            format!("granted {:?} to {}", e.permission, staff(e.staff))
        }
        Event::PermissionRevoked(e) => {
            format!("revoked {:?} from {}", e.permission, staff(e.staff))
        }
        Event::StaffDeactivated(e) => format!("deactivated {}", staff(e.staff)),
        Event::GroupCreated(e) => format!(
            "created group {:?} ({}) with routing {}",
            e.name.as_str(),
            e.group,
            routing_name(e.routing)
        ),
        Event::GroupRenamed(e) => format!("renamed {} to {:?}", group(e.group), e.name.as_str()),
        Event::GroupRoutingChanged(e) => format!(
            "set the routing of {} to {}",
            group(e.group),
            routing_name(e.routing)
        ),
        Event::GroupMemberAdded(e) => format!("added {} to {}", staff(e.staff), group(e.group)),
        Event::GroupMemberRemoved(e) => {
            format!("removed {} from {}", staff(e.staff), group(e.group))
        }
        Event::GroupSupervisorAdded(e) => {
            format!("made {} a supervisor of {}", staff(e.staff), group(e.group))
        }
        Event::GroupSupervisorRemoved(e) => format!(
            "removed {} as a supervisor of {}",
            staff(e.staff),
            group(e.group)
        ),
        Event::ConversationOpened(e) => format!(
            "opened conversation {} in {} on {} for customer {:?}{}",
            e.conversation,
            group(e.group),
            channel_name(e.channel),
            e.customer.shown(),
            if e.private { ", private" } else { ", public" }
        ),
        Event::ConversationAssigned(e) => {
            let how = if e.round_robin { " (round robin)" } else { "" };
            match e.previous_assignee {
                Some(previous) => format!(
                    "transferred conversation {} from {} to {}{how}",
                    e.conversation,
                    staff(previous),
                    staff(e.assignee)
                ),
                None => format!(
                    "assigned conversation {} to {}{how}",
                    e.conversation,
                    staff(e.assignee)
                ),
            }
        }
        Event::StaffInvitedToRoom(e) => format!(
            "invited {} into conversation {}",
            staff(e.staff),
            e.conversation
        ),
        Event::ConversationPrivacyChanged(e) => format!(
            "made conversation {} {}",
            e.conversation,
            if e.private { "private" } else { "public" }
        ),
        Event::MessagePosted(e) => {
            let author = match e.author {
                MessageAuthor::Staff(id) => staff(id),
                MessageAuthor::Customer => "the customer".to_owned(),
            };
            format!(
                "PUBLIC message {} in conversation {} by {author}: {:?}",
                e.message,
                e.conversation,
                e.body.shown()
            )
        }
        Event::PrivateMessagePosted(e) => format!(
            "PRIVATE message {} in conversation {} by {}: {:?}",
            e.message,
            e.conversation,
            staff(e.author),
            e.body.shown()
        ),
        Event::ConversationErased(e) => format!(
            "erased conversation {} (by {}, reason {:?})",
            e.conversation,
            staff(e.erased_by),
            e.reason.as_str()
        ),
        Event::ConversationClosed(e) => format!("closed conversation {}", e.conversation),
        Event::ConversationReopened(e) => match e.assignee {
            Some(assignee) => format!(
                "reopened conversation {}, back to {}",
                e.conversation,
                staff(assignee)
            ),
            None => format!("reopened conversation {} into the queue", e.conversation),
        },
        Event::NotificationsMarkedRead(e) => format!(
            "{} marked notifications read up to position {}",
            staff(e.staff),
            e.up_to
        ),
        Event::RoundRobinTurnTaken(e) => format!(
            "round robin of {} gave conversation {} to {}",
            group_label(state, e.group),
            e.conversation,
            staff(e.assignee)
        ),
        Event::WidgetOriginsChanged(e) => {
            let list: Vec<&str> = e.origins.as_slice().iter().map(|o| o.as_str()).collect();
            if list.is_empty() {
                "cleared the widget's allowed origins".to_owned()
            } else {
                format!("set the widget's allowed origins to {}", list.join(", "))
            }
        }
        Event::ContentOpened(e) => format!(
            "{} opened the content of conversation {} ({}, rule {})",
            staff(e.staff),
            e.conversation,
            e.path.name(),
            e.rule
        ),
    }
}

fn text_line(state: &State, recorded: &RecordedEvent) -> Result<String, TimeRangeError> {
    let envelope = &recorded.envelope;
    Ok(format!(
        "{} #{} {} by {}: {} [command {}]",
        format_rfc3339(envelope.recorded_at)?,
        envelope.position,
        envelope.event_type.name(),
        actor_label(state, envelope.actor),
        describe(state, &recorded.event),
        envelope.command_id
    ))
}

/// One JSON Lines entry. A struct, not a `serde_json::Map`, so the field order
/// is fixed whatever features other crates turn on in serde_json.
#[derive(Serialize)]
struct JsonEntry<'a> {
    position: u64,
    recorded_at: String,
    event_type: &'static str,
    schema_version: u16,
    event_id: String,
    stream: JsonStream,
    actor: JsonActor,
    command_id: String,
    correlation_id: String,
    summary: String,
    event: Payload<'a>,
}

#[derive(Serialize)]
struct JsonStream {
    kind: &'static str,
    id: String,
    version: u64,
}

#[derive(Serialize)]
struct JsonActor {
    kind: &'static str,
    id: Option<String>,
    name: Option<String>,
}

fn json_line(state: &State, recorded: &RecordedEvent) -> Result<String, TimeRangeError> {
    let envelope = &recorded.envelope;
    let (actor_kind, actor_id, actor_name) = match envelope.actor {
        Actor::Staff(id) => (
            "STAFF",
            Some(id.to_string()),
            state.staff.get(&id).map(|s| s.name.to_string()),
        ),
        Actor::Customer(c) => (
            "CUSTOMER",
            Some(c.to_string()),
            state.conversations.get(&c).map(|c| c.customer.shown()),
        ),
        Actor::System => ("SYSTEM", None, None),
    };
    let (stream_kind, stream_id) = match envelope.stream {
        StreamId::Company(id) => ("company", id.to_string()),
        StreamId::Conversation(id) => ("conversation", id.to_string()),
        StreamId::ReadAudit(id) => ("read-audit", id.to_string()),
    };
    let entry = JsonEntry {
        position: envelope.position,
        recorded_at: format_rfc3339(envelope.recorded_at)?,
        event_type: envelope.event_type.name(),
        schema_version: envelope.schema_version,
        event_id: envelope.event_id.to_string(),
        stream: JsonStream {
            kind: stream_kind,
            id: stream_id,
            version: envelope.stream_version,
        },
        actor: JsonActor {
            kind: actor_kind,
            id: actor_id,
            name: actor_name,
        },
        command_id: envelope.command_id.to_string(),
        correlation_id: envelope.correlation_id.to_string(),
        summary: describe(state, &recorded.event),
        event: payload(&recorded.event),
    };
    Ok(serde_json::to_string(&entry).unwrap_or_default())
}

/// The event's own fields (serde's derive of the domain structs).
#[derive(Serialize)]
#[serde(untagged)]
enum Payload<'a> {
    CompanyCreated(&'a events::CompanyCreated),
    PrivacySettingsChanged(&'a events::PrivacySettingsChanged),
    StaffAdded(&'a events::StaffAdded),
    StaffRoleChanged(&'a events::StaffRoleChanged),
    PermissionGranted(&'a events::PermissionGranted),
    PermissionRevoked(&'a events::PermissionRevoked),
    StaffDeactivated(&'a events::StaffDeactivated),
    GroupCreated(&'a events::GroupCreated),
    GroupRenamed(&'a events::GroupRenamed),
    GroupRoutingChanged(&'a events::GroupRoutingChanged),
    GroupStaff(&'a events::GroupStaff),
    ConversationAssigned(&'a events::ConversationAssigned),
    StaffInvitedToRoom(&'a events::StaffInvitedToRoom),
    ConversationPrivacyChanged(&'a events::ConversationPrivacyChanged),
    ConversationClosed(&'a events::ConversationClosed),
    ConversationReopened(&'a events::ConversationReopened),
    NotificationsMarkedRead(&'a events::NotificationsMarkedRead),
    RoundRobinTurnTaken(&'a events::RoundRobinTurnTaken),
    WidgetOriginsChanged(&'a events::WidgetOriginsChanged),
    ContentOpened(&'a events::ContentOpened),
    ConversationErased(&'a events::ConversationErased),
    /// The three events with customer data: their fields, the data shown as
    /// text (or `[erased]`, `[sealed]`).
    ConversationOpened(Opened),
    MessagePosted(Posted<'a, events::MessageAuthor>),
    PrivateMessagePosted(Posted<'a, backchannel_domain::ids::StaffId>),
}

#[derive(Serialize)]
struct Opened {
    company: backchannel_domain::ids::CompanyId,
    conversation: ConversationId,
    group: GroupId,
    channel: backchannel_domain::model::Channel,
    customer: String,
    private: bool,
}

#[derive(Serialize)]
struct Posted<'a, A: Serialize> {
    conversation: ConversationId,
    message: backchannel_domain::ids::MessageId,
    author: &'a A,
    body: String,
}

fn payload(event: &Event) -> Payload<'_> {
    match event {
        Event::CompanyCreated(e) => Payload::CompanyCreated(e),
        Event::PrivacySettingsChanged(e) => Payload::PrivacySettingsChanged(e),
        Event::StaffAdded(e) => Payload::StaffAdded(e),
        Event::StaffRoleChanged(e) => Payload::StaffRoleChanged(e),
        Event::PermissionGranted(e) => Payload::PermissionGranted(e),
        Event::PermissionRevoked(e) => Payload::PermissionRevoked(e),
        Event::StaffDeactivated(e) => Payload::StaffDeactivated(e),
        Event::GroupCreated(e) => Payload::GroupCreated(e),
        Event::GroupRenamed(e) => Payload::GroupRenamed(e),
        Event::GroupRoutingChanged(e) => Payload::GroupRoutingChanged(e),
        Event::GroupMemberAdded(e)
        | Event::GroupMemberRemoved(e)
        | Event::GroupSupervisorAdded(e)
        | Event::GroupSupervisorRemoved(e) => Payload::GroupStaff(e),
        Event::ConversationOpened(e) => Payload::ConversationOpened(Opened {
            company: e.company,
            conversation: e.conversation,
            group: e.group,
            channel: e.channel,
            customer: e.customer.shown(),
            private: e.private,
        }),
        Event::ConversationAssigned(e) => Payload::ConversationAssigned(e),
        Event::StaffInvitedToRoom(e) => Payload::StaffInvitedToRoom(e),
        Event::ConversationPrivacyChanged(e) => Payload::ConversationPrivacyChanged(e),
        Event::MessagePosted(e) => Payload::MessagePosted(Posted {
            conversation: e.conversation,
            message: e.message,
            author: &e.author,
            body: e.body.shown(),
        }),
        Event::PrivateMessagePosted(e) => Payload::PrivateMessagePosted(Posted {
            conversation: e.conversation,
            message: e.message,
            author: &e.author,
            body: e.body.shown(),
        }),
        Event::ConversationClosed(e) => Payload::ConversationClosed(e),
        Event::ConversationReopened(e) => Payload::ConversationReopened(e),
        Event::NotificationsMarkedRead(e) => Payload::NotificationsMarkedRead(e),
        Event::RoundRobinTurnTaken(e) => Payload::RoundRobinTurnTaken(e),
        Event::WidgetOriginsChanged(e) => Payload::WidgetOriginsChanged(e),
        Event::ContentOpened(e) => Payload::ContentOpened(e),
        Event::ConversationErased(e) => Payload::ConversationErased(e),
    }
}
