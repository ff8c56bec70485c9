//! SPEC section 5: who is notified of an event. Projections turn these into
//! stored notifications (adding an id and the event's time) and deliver them.
//!
//! A notification carries no customer content: only the conversation id, its
//! group and channel. Members are told of every new conversation in their
//! groups, even a private one they will never be able to open.

use serde::{Deserialize, Serialize};

use crate::events::Event;
use crate::ids::{ConversationId, GroupId, StaffId};
use crate::model::{Actor, Channel};
use crate::state::State;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum NotificationKind {
    /// A new conversation in one of your groups.
    ConversationOpened,
    /// A conversation was assigned to you.
    Assigned,
    /// You were invited into a conversation's room.
    InvitedToRoom,
    /// A private message in a conversation you take part in.
    PrivateMessage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notification {
    pub recipient: StaffId,
    pub kind: NotificationKind,
    pub conversation: ConversationId,
    pub group: GroupId,
    pub channel: Channel,
}

/// The notifications `event`, caused by `actor`, produces. `state` must already
/// include the event. Nobody is notified of their own action, and deactivated
/// staff are never notified.
pub fn notifications(state: &State, event: &Event, actor: Actor) -> Vec<Notification> {
    let conversation_id = match event {
        Event::ConversationOpened(e) => e.conversation,
        Event::ConversationAssigned(e) => e.conversation,
        Event::StaffInvitedToRoom(e) => e.conversation,
        Event::PrivateMessagePosted(e) => e.conversation,
        _ => return Vec::new(),
    };
    let Some(conversation) = state.conversations.get(&conversation_id) else {
        return Vec::new();
    };
    let Some(group) = state.groups.get(&conversation.group) else {
        return Vec::new();
    };
    let mut recipients: Vec<(StaffId, NotificationKind)> = match event {
        Event::ConversationOpened(_) => {
            let mut everyone: Vec<StaffId> = group.members.clone();
            everyone.extend(group.supervisors.iter().copied());
            everyone.sort();
            everyone.dedup();
            everyone
                .into_iter()
                .map(|s| (s, NotificationKind::ConversationOpened))
                .collect()
        }
        Event::ConversationAssigned(e) => vec![(e.assignee, NotificationKind::Assigned)],
        Event::StaffInvitedToRoom(e) => vec![(e.staff, NotificationKind::InvitedToRoom)],
        Event::PrivateMessagePosted(e) => {
            let mut participants: Vec<StaffId> = conversation.invited.iter().copied().collect();
            participants.extend(conversation.assignee);
            participants.sort();
            participants.dedup();
            participants
                .into_iter()
                .filter(|p| *p != e.author)
                .map(|p| (p, NotificationKind::PrivateMessage))
                .collect()
        }
        _ => Vec::new(),
    };
    recipients.retain(|(staff, _)| {
        Actor::Staff(*staff) != actor
            && state
                .staff
                .get(staff)
                .is_some_and(|s| s.active && s.company == conversation.company)
    });
    recipients
        .into_iter()
        .map(|(recipient, kind)| Notification {
            recipient,
            kind,
            conversation: conversation.id,
            group: group.id,
            channel: conversation.channel,
        })
        .collect()
}
