//! [`ReadModels`]: every read model, applied together in log order, with the
//! last global position applied as their checkpoint.

use backchannel_domain::State;
use backchannel_domain::ids::{ConversationId, StaffId};
use backchannel_domain::visibility::{Access, Rule};
use backchannel_eventlog::RecordedEvent;

use crate::access_log::AccessLog;
use crate::customer::{CustomerView, Customers, customer_event};
use crate::notifications::{Notifications, StoredNotification};
use crate::summaries::{ConversationSummary, Conversations, Placement};

/// Why a viewer gets nothing of a conversation (SPEC section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// It exists in the viewer's company; nothing of it may be shown.
    #[error("you do not have access to this conversation")]
    Restricted,
    /// Another company's, or none at all: indistinguishable.
    #[error("conversation not found")]
    NotFound,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProjectionError {
    /// Events must be applied in log order, each exactly once.
    #[error("expected the event at position {expected}, got position {got}")]
    OutOfOrder { expected: u64, got: u64 },
}

/// One page of a list, and whether more follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_next: bool,
}

impl<T> Page<T> {
    /// The first `size` of `items`, and whether more follow (read by
    /// taking one more).
    pub(crate) fn first_of(items: impl IntoIterator<Item = T>, size: usize) -> Page<T> {
        let mut items = items.into_iter();
        let mut page = Vec::with_capacity(size.min(128));
        page.extend(items.by_ref().take(size));
        Page {
            items: page,
            has_next: items.next().is_some(),
        }
    }
}

/// What applying one event produced, for live delivery.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    pub notifications: Vec<StoredNotification>,
}

/// Every read model. Not shared by itself: the server wraps it in a lock and
/// one projector task applies the log to it.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ReadModels {
    position: u64,
    state: State,
    pub(crate) conversations: Conversations,
    customers: Customers,
    notifications: Notifications,
    access_log: AccessLog,
}

impl ReadModels {
    pub fn new() -> Self {
        Self::default()
    }

    /// The last global position applied (0: nothing yet).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The domain state: the directory, and what decisions and the visibility
    /// policy read.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Applies the next event of the log. Anything but `position() + 1` is
    /// refused and changes nothing.
    pub fn apply(&mut self, recorded: &RecordedEvent) -> Result<Applied, ProjectionError> {
        let expected = self.position + 1;
        let got = recorded.envelope.position;
        if got != expected {
            return Err(ProjectionError::OutOfOrder { expected, got });
        }
        // The summaries' indexes follow the state: where the conversation sat
        // before the event, and (read from the state) where it sits after.
        let before = Placement::of(&self.state, &recorded.event);
        self.state.apply(&recorded.event);
        self.conversations.apply(recorded, before, &self.state);
        if let Some(event) = customer_event(&self.state, &recorded.event) {
            self.customers.apply(got, &event);
        }
        let notifications = self.notifications.apply(&self.state, recorded);
        self.access_log.apply(recorded);
        self.position = got;
        Ok(Applied { notifications })
    }

    /// Gives back the slack that vectors grown by doubling keep: call it after
    /// a bulk catch-up; it changes no answer.
    pub fn shrink_to_fit(&mut self) {
        self.customers.shrink_to_fit();
    }

    /// The conversation's summary, if `viewer` may see it (composed from the
    /// state and the stored activity: a copy, made only after the check).
    pub fn conversation(
        &self,
        viewer: StaffId,
        id: ConversationId,
    ) -> Result<ConversationSummary, Denied> {
        let rule = self.check(viewer, id)?;
        let conversation = self.state.conversations.get(&id).ok_or(Denied::NotFound)?;
        let activity = self.conversations.activity(id).ok_or(Denied::NotFound)?;
        Ok(ConversationSummary::new(
            &self.state,
            conversation,
            activity,
            rule,
        ))
    }

    /// Whether `viewer` may read the conversation's timeline: its events
    /// (public and private messages and system events) are the conversation's
    /// stream in the log, whose positions the log's stream index holds
    /// (`Log::stream_positions`); read them up to [`Self::position`],
    /// under the same guard as this check.
    /// The answer is the rule that grants it (the read audit records it).
    pub fn timeline(&self, viewer: StaffId, id: ConversationId) -> Result<Rule, Denied> {
        self.check(viewer, id)
    }

    /// The customer's own conversation, built only from customer events.
    pub fn customer_conversation(&self, conversation: ConversationId) -> Option<CustomerView<'_>> {
        let own = self.customers.get(conversation)?;
        let header = self.state.conversations.get(&conversation)?;
        let activity = self.conversations.activity(conversation)?;
        Some(CustomerView {
            id: conversation,
            company: header.company,
            channel: header.channel,
            status: own.status,
            customer: &header.customer,
            opened_at: activity.opened_at,
            positions: &own.positions,
        })
    }

    /// The read audit (SPEC section 12). It holds no conversation content;
    /// who may list it is the caller's to check (owners and admins).
    pub fn access_log(&self) -> &AccessLog {
        &self.access_log
    }

    /// The viewer's notifications, newest first, older than `before` if given.
    pub fn notifications(
        &self,
        viewer: StaffId,
        first: usize,
        before: Option<u64>,
    ) -> Page<StoredNotification> {
        self.notifications.page(viewer, first, before)
    }

    /// Relay's backward page of the viewer's notifications: the `last` just
    /// newer than `after` (or the oldest), listed newest first; `has_next`
    /// says newer ones remain.
    pub fn notifications_backward(
        &self,
        viewer: StaffId,
        last: usize,
        after: Option<u64>,
    ) -> Page<StoredNotification> {
        self.notifications.page_backward(viewer, last, after)
    }

    /// How many of the viewer's notifications are unread.
    pub fn unread_notifications(&self, viewer: StaffId) -> usize {
        let read_up_to = self
            .state
            .staff
            .get(&viewer)
            .map_or(0, |s| s.notifications_read_up_to);
        self.notifications.count_after(viewer, read_up_to)
    }

    /// The one visibility policy, as this crate's answer type: the rule that
    /// grants `viewer` the conversation, or why not.
    pub(crate) fn check(&self, viewer: StaffId, id: ConversationId) -> Result<Rule, Denied> {
        match self.state.access(viewer, id) {
            Access::Granted(rule) => Ok(rule),
            Access::Restricted => Err(Denied::Restricted),
            Access::NotFound => Err(Denied::NotFound),
        }
    }
}
