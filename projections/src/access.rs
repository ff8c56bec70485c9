//! "Who could see what, when" (SPEC section 9): the domain state at an instant
//! of the log, and the visibility policy asked about it — the same
//! `State::access` the server asks, nothing else.

use std::ops::ControlFlow;

use backchannel_domain::State;
use backchannel_domain::ids::{ConversationId, StaffId};
use backchannel_domain::model::Role;
use backchannel_domain::visibility::{Access, Rule};
use backchannel_eventlog::RecordedAt;

use crate::replay::EventSource;

/// An instant of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instant {
    /// Just after the event at this global position (0: before the first).
    Position(u64),
    /// The log as it was at this time: every event up to the first one recorded
    /// after it. (Positions order the log; recording times only inform. If a
    /// clock stepped back, events after that first later one are not applied.)
    Time(RecordedAt),
}

/// The state at an instant, and where in the log that is.
#[derive(Debug, Clone)]
pub struct StateAt {
    pub state: State,
    /// The last position applied (0: none).
    pub position: u64,
    /// When that event was recorded.
    pub recorded_at: Option<RecordedAt>,
}

/// Replays `source` up to `at` into a fresh [`State`].
pub fn state_at<S: EventSource>(source: &S, at: Instant) -> Result<StateAt, S::Error> {
    let head = source.head();
    let to = match at {
        Instant::Position(position) => position.min(head),
        Instant::Time(_) => head,
    };
    let mut result = StateAt {
        state: State::default(),
        position: 0,
        recorded_at: None,
    };
    if to == 0 {
        return Ok(result);
    }
    source.replay(1, to, &mut |recorded| {
        if let Instant::Time(time) = at
            && recorded.envelope.recorded_at > time
        {
            return ControlFlow::Break(());
        }
        result.state.apply(&recorded.event);
        result.position = recorded.envelope.position;
        result.recorded_at = Some(recorded.envelope.recorded_at);
        ControlFlow::Continue(())
    })?;
    Ok(result)
}

/// One staff member's access to a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffAccess {
    pub staff: StaffId,
    pub name: String,
    pub role: Role,
    pub active: bool,
    /// `Granted(rule)` or `Restricted` (never `NotFound`: same company).
    pub access: Access,
}

/// The subject of an access question does not exist at that instant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("conversation {0} does not exist at that point of the log")]
    UnknownConversation(ConversationId),
    #[error("staff {0} does not exist at that point of the log")]
    UnknownStaff(StaffId),
}

/// Every staff member of the conversation's company, with the policy's answer,
/// ordered by role (owner first), then name, then id.
pub fn who_can_view(
    state: &State,
    conversation: ConversationId,
) -> Result<Vec<StaffAccess>, AccessError> {
    let company = state
        .conversations
        .get(&conversation)
        .ok_or(AccessError::UnknownConversation(conversation))?
        .company;
    let mut all: Vec<StaffAccess> = state
        .staff
        .values()
        .filter(|s| s.company == company)
        .map(|s| StaffAccess {
            staff: s.id,
            name: s.name.to_string(),
            role: s.role,
            active: s.active,
            access: state.access(s.id, conversation),
        })
        .collect();
    all.sort_by(|a, b| (a.role, &a.name, a.staff).cmp(&(b.role, &b.name, b.staff)));
    Ok(all)
}

/// The conversations `staff` could view, with the rule, in id order (ids are
/// UUIDv7: opening order).
pub fn viewable_by(
    state: &State,
    staff: StaffId,
) -> Result<Vec<(ConversationId, Rule)>, AccessError> {
    let company = state
        .staff
        .get(&staff)
        .ok_or(AccessError::UnknownStaff(staff))?
        .company;
    let mut all: Vec<(ConversationId, Rule)> = state
        .conversations
        .values()
        .filter(|c| c.company == company)
        .filter_map(|c| match state.access(staff, c.id) {
            Access::Granted(rule) => Some((c.id, rule)),
            Access::Restricted | Access::NotFound => None,
        })
        .collect();
    all.sort();
    Ok(all)
}
