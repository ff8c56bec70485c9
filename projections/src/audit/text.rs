//! The human-readable audit trail: a one-line description of what each
//! event did, and the text line of an entry.

use backchannel_domain::State;
use backchannel_domain::events::{Event, MessageAuthor};
use backchannel_eventlog::RecordedEvent;

use crate::report::channel_name;
use crate::time::{TimeRangeError, format_rfc3339};

use super::{actor_label, group_label, on_off, routing_name, staff_label};

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
            e.customer.text(),
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
                e.body.text()
            )
        }
        Event::PrivateMessagePosted(e) => format!(
            "PRIVATE message {} in conversation {} by {}: {:?}",
            e.message,
            e.conversation,
            staff(e.author),
            e.body.text()
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

pub(super) fn text_line(state: &State, recorded: &RecordedEvent) -> Result<String, TimeRangeError> {
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
