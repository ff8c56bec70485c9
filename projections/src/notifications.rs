//! Stored notifications (SPEC section 5), per recipient, oldest first, with the
//! read mark kept in the domain state (`Staff::notifications_read_up_to`).
//!
//! A notification carries no customer content, so it needs no visibility check:
//! members are told of every new conversation in their groups, even a private
//! one they will never be able to open.

use std::collections::HashMap;

use backchannel_domain::State;
use backchannel_domain::ids::{ConversationId, GroupId, StaffId};
use backchannel_domain::model::Channel;
use backchannel_domain::notify::{NotificationKind, notifications};
use backchannel_eventlog::{RecordedAt, RecordedEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredNotification {
    /// The global position of the event that caused it: unique per recipient.
    pub id: u64,
    pub recipient: StaffId,
    pub kind: NotificationKind,
    pub conversation: ConversationId,
    pub group: GroupId,
    pub channel: Channel,
    pub at: RecordedAt,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Notifications {
    by_recipient: HashMap<StaffId, Vec<StoredNotification>>,
}

impl Notifications {
    /// Stores the notifications of `recorded`; `state` already includes it.
    pub(crate) fn apply(
        &mut self,
        state: &State,
        recorded: &RecordedEvent,
    ) -> Vec<StoredNotification> {
        let produced: Vec<StoredNotification> =
            notifications(state, &recorded.event, recorded.envelope.actor)
                .into_iter()
                .map(|n| StoredNotification {
                    id: recorded.envelope.position,
                    recipient: n.recipient,
                    kind: n.kind,
                    conversation: n.conversation,
                    group: n.group,
                    channel: n.channel,
                    at: recorded.envelope.recorded_at,
                })
                .collect();
        for n in &produced {
            self.by_recipient.entry(n.recipient).or_default().push(*n);
        }
        produced
    }

    pub(crate) fn of(&self, staff: StaffId) -> &[StoredNotification] {
        self.by_recipient.get(&staff).map_or(&[], Vec::as_slice)
    }
}
