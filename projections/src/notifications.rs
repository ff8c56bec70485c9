//! Stored notifications (SPEC section 5) with read/unread state; the read mark
//! is the `NotificationsMarkedRead` event, kept in the domain state.
//!
//! Every active member and supervisor of a group is told of every conversation
//! opened in it, so storing one row per recipient would cost a row per member
//! per conversation. Instead the model keeps, per group, the list of openings,
//! and per staff member the stretches of the log during which they were in the
//! group's audience (active, and a member or supervisor); a member's opening
//! notifications are the openings inside their stretches. Personal
//! notifications (assignment, invitation, private message) are stored per
//! recipient. `tests/notifications.rs` checks the result against
//! `domain::notify::notifications`, the rule's one definition.
//!
//! A notification carries no customer content, so it needs no visibility check:
//! members are told of every new conversation in their groups, even a private
//! one they will never be able to open.

use std::collections::HashMap;

use backchannel_domain::State;
use backchannel_domain::events::Event;
use backchannel_domain::ids::{ConversationId, GroupId, StaffId};
use backchannel_domain::model::{Actor, Channel};
use backchannel_domain::notify::{NotificationKind, notifications};
use backchannel_eventlog::{RecordedAt, RecordedEvent};

use crate::models::Page;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// A conversation opened in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Opening {
    position: u64,
    conversation: ConversationId,
    channel: Channel,
    at: RecordedAt,
}

/// A stretch of the log during which a staff member was told of a group's
/// openings: positions in `(from, to]` (`to: None`: still open).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Stretch {
    group: GroupId,
    from: u64,
    to: Option<u64>,
}

impl Stretch {
    fn contains(&self, position: u64) -> bool {
        position > self.from && self.to.is_none_or(|to| position <= to)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Notifications {
    openings: HashMap<GroupId, Vec<Opening>>,
    stretches: HashMap<StaffId, Vec<Stretch>>,
    /// Openings a staff member made themselves (nobody is told of their own
    /// action), sorted; only those inside one of their stretches.
    own_openings: HashMap<StaffId, Vec<u64>>,
    personal: HashMap<StaffId, Vec<StoredNotification>>,
}

impl Notifications {
    /// Records the notifications of `recorded`; `state` already includes it.
    /// Returns them all (openings included) for live delivery.
    pub(crate) fn apply(
        &mut self,
        state: &State,
        recorded: &RecordedEvent,
    ) -> Vec<StoredNotification> {
        let position = recorded.envelope.position;
        let produced: Vec<StoredNotification> =
            notifications(state, &recorded.event, recorded.envelope.actor)
                .into_iter()
                .map(|n| StoredNotification {
                    id: position,
                    recipient: n.recipient,
                    kind: n.kind,
                    conversation: n.conversation,
                    group: n.group,
                    channel: n.channel,
                    at: recorded.envelope.recorded_at,
                })
                .collect();
        match &recorded.event {
            Event::ConversationOpened(e) => {
                self.openings.entry(e.group).or_default().push(Opening {
                    position,
                    conversation: e.conversation,
                    channel: e.channel,
                    at: recorded.envelope.recorded_at,
                });
                if let Actor::Staff(actor) = recorded.envelope.actor
                    && self.in_audience(actor, e.group, position)
                {
                    self.own_openings.entry(actor).or_default().push(position);
                }
            }
            Event::GroupMemberAdded(e)
            | Event::GroupMemberRemoved(e)
            | Event::GroupSupervisorAdded(e)
            | Event::GroupSupervisorRemoved(e) => {
                self.update_audience(state, e.staff, e.group, position);
            }
            Event::StaffDeactivated(e) => {
                for stretch in self.stretches.entry(e.staff).or_default() {
                    if stretch.to.is_none() {
                        stretch.to = Some(position);
                    }
                }
            }
            _ => {
                for n in produced
                    .iter()
                    .filter(|n| n.kind != NotificationKind::ConversationOpened)
                {
                    self.personal.entry(n.recipient).or_default().push(*n);
                }
            }
        }
        produced
    }

    /// Opens or closes `staff`'s stretch for `group` to match the state.
    fn update_audience(&mut self, state: &State, staff: StaffId, group: GroupId, position: u64) {
        let should = state.staff.get(&staff).is_some_and(|s| s.active)
            && state
                .groups
                .get(&group)
                .is_some_and(|g| g.is_member(staff) || g.is_supervisor(staff));
        let stretches = self.stretches.entry(staff).or_default();
        let open = stretches
            .iter_mut()
            .find(|s| s.group == group && s.to.is_none());
        match (should, open) {
            (true, None) => stretches.push(Stretch {
                group,
                from: position,
                to: None,
            }),
            (false, Some(stretch)) => stretch.to = Some(position),
            _ => {}
        }
    }

    fn in_audience(&self, staff: StaffId, group: GroupId, position: u64) -> bool {
        self.stretches
            .get(&staff)
            .is_some_and(|all| all.iter().any(|s| s.group == group && s.contains(position)))
    }

    /// The staff member's notifications, newest first, older than `before`.
    pub(crate) fn page(
        &self,
        staff: StaffId,
        first: usize,
        before: Option<u64>,
    ) -> Page<StoredNotification> {
        Page::first_of(self.merged(staff, 0, before, Order::NewestFirst), first)
    }

    /// Relay's backward page: the `last` notifications of `staff` just
    /// newer than `after` (exclusive), or the oldest without it; listed
    /// newest first, like every page; `has_next` says newer ones remain.
    pub(crate) fn page_backward(
        &self,
        staff: StaffId,
        last: usize,
        after: Option<u64>,
    ) -> Page<StoredNotification> {
        let floor = after.unwrap_or(0);
        let mut page = Page::first_of(self.merged(staff, floor, None, Order::OldestFirst), last);
        page.items.reverse();
        page
    }

    /// How many of the staff member's notifications come after `read_up_to`.
    pub(crate) fn count_after(&self, staff: StaffId, read_up_to: u64) -> usize {
        let personal = self.personal_between(staff, read_up_to, None).len();
        let openings: usize = self.stretches.get(&staff).map_or(0, |stretches| {
            stretches
                .iter()
                .map(|s| self.openings_between(s, read_up_to, None).len())
                .sum()
        });
        let own = self.own_openings.get(&staff).map_or(0, |all| {
            all.len() - all.partition_point(|p| *p <= read_up_to)
        });
        personal + openings - own.min(openings)
    }

    fn openings_of(&self, group: GroupId) -> &[Opening] {
        self.openings.get(&group).map_or(&[], Vec::as_slice)
    }

    /// `staff`'s personal notifications with ids after `after` and before
    /// `before` (`None`: no bound), oldest first.
    fn personal_between(
        &self,
        staff: StaffId,
        after: u64,
        before: Option<u64>,
    ) -> &[StoredNotification] {
        let all = self.personal.get(&staff).map_or(&[][..], Vec::as_slice);
        let start = all.partition_point(|n| n.id <= after);
        let end = before.map_or(all.len(), |b| all.partition_point(|n| n.id < b));
        &all[start..end.max(start)]
    }

    /// The openings of `stretch`'s group inside the stretch, at positions
    /// after `after` and before `before` (`None`: no bound), oldest first.
    fn openings_between(&self, stretch: &Stretch, after: u64, before: Option<u64>) -> &[Opening] {
        let list = self.openings_of(stretch.group);
        let lo = list.partition_point(|o| o.position <= stretch.from.max(after));
        let hi = stretch
            .to
            .map_or(list.len(), |to| list.partition_point(|o| o.position <= to));
        let hi = before.map_or(hi, |b| hi.min(list.partition_point(|o| o.position < b)));
        &list[lo..hi.max(lo)]
    }

    /// Every notification of `staff` with an id after `after` and before
    /// `before` (`None`: no bound), in `order`: the personal ones and the
    /// openings inside their stretches (but their own), merged.
    fn merged(
        &self,
        staff: StaffId,
        after: u64,
        before: Option<u64>,
        order: Order,
    ) -> impl Iterator<Item = StoredNotification> + '_ {
        let own: &[u64] = self.own_openings.get(&staff).map_or(&[], Vec::as_slice);
        let mut sources: Vec<Box<dyn Iterator<Item = StoredNotification> + '_>> = Vec::new();
        let personal = self.personal_between(staff, after, before).iter().copied();
        sources.push(match order {
            Order::OldestFirst => Box::new(personal),
            Order::NewestFirst => Box::new(personal.rev()),
        });
        for stretch in self.stretches.get(&staff).map_or(&[][..], Vec::as_slice) {
            let group = stretch.group;
            let openings = self
                .openings_between(stretch, after, before)
                .iter()
                .filter(move |o| own.binary_search(&o.position).is_err())
                .map(move |o| StoredNotification {
                    id: o.position,
                    recipient: staff,
                    kind: NotificationKind::ConversationOpened,
                    conversation: o.conversation,
                    group,
                    channel: o.channel,
                    at: o.at,
                });
            sources.push(match order {
                Order::OldestFirst => Box::new(openings),
                Order::NewestFirst => Box::new(openings.rev()),
            });
        }
        let mut heads: Vec<Option<StoredNotification>> =
            sources.iter_mut().map(|s| s.next()).collect();
        std::iter::from_fn(move || {
            let ids = heads
                .iter()
                .enumerate()
                .filter_map(|(i, h)| h.map(|n| (i, n.id)));
            let (index, _) = match order {
                Order::OldestFirst => ids.min_by_key(|(_, id)| *id),
                Order::NewestFirst => ids.max_by_key(|(_, id)| *id),
            }?;
            let next = heads[index].take();
            heads[index] = sources[index].next();
            next
        })
    }
}

/// Which way [`Notifications::merged`] lists.
#[derive(Debug, Clone, Copy)]
enum Order {
    OldestFirst,
    NewestFirst,
}
