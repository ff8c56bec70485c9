//! The JSON Lines audit trail: one object per entry, with a fixed field
//! order, carrying the event's own fields.

use backchannel_domain::State;
use backchannel_domain::events::{self, Event, StreamId};
use backchannel_domain::ids::{ConversationId, GroupId};
use backchannel_domain::model::Actor;
use backchannel_eventlog::RecordedEvent;
use serde::Serialize;

use crate::time::{TimeRangeError, format_rfc3339};

use super::describe;

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

pub(super) fn json_line(state: &State, recorded: &RecordedEvent) -> Result<String, TimeRangeError> {
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
            state
                .conversations
                .get(&c)
                .map(|c| c.customer.text().to_owned()),
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
            customer: e.customer.text().to_owned(),
            private: e.private,
        }),
        Event::ConversationAssigned(e) => Payload::ConversationAssigned(e),
        Event::StaffInvitedToRoom(e) => Payload::StaffInvitedToRoom(e),
        Event::ConversationPrivacyChanged(e) => Payload::ConversationPrivacyChanged(e),
        Event::MessagePosted(e) => Payload::MessagePosted(Posted {
            conversation: e.conversation,
            message: e.message,
            author: &e.author,
            body: e.body.text().to_owned(),
        }),
        Event::PrivateMessagePosted(e) => Payload::PrivateMessagePosted(Posted {
            conversation: e.conversation,
            message: e.message,
            author: &e.author,
            body: e.body.text().to_owned(),
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
