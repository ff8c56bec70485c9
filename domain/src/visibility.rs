//! The visibility policy of SPEC section 3: the one answer to "may staff S view
//! conversation C", with the rule that grants it.
//!
//! Every path that returns conversation data — lookups, lists, counts, the
//! overview, subscriptions, notification payloads, reports, the replay tool —
//! must ask [`conversation_access`] (directly, or through [`State::access`]).
//! A path that answers the question any other way is a bug.
//!
//! Where each rule lives: R1–R6 in [`conversation_access`] only; who may read
//! a group's closed enquiries (reports) in [`may_read_enquiry_history`] and
//! [`enquiry_history_rule`]; a group supervisor in [`supervises`]. The other
//! read-side permissions (the overview, audit trails, the read audit's access
//! log, the log export, the signed-in check) are in [`crate::permissions`].
//!
//! # What must change together with this policy
//!
//! Two places encode parts of it again, for speed, and must change with it:
//!
//! - `projections/src/listing.rs::candidate_sets` picks, for each viewer, the
//!   index sets (their rooms; per group and status, the public and the private
//!   part) that together hold every conversation R1–R6 may grant them. The
//!   policy still checks every candidate, so a set too wide costs time, but a
//!   set missing is a conversation silently left out of lists, counts and the
//!   overview (R4, for instance, also covers a group's named supervisor whose
//!   role is no longer SUPERVISOR, whom R2 does not). Any change to R2–R6
//!   changes the sets; `projections/tests/properties.rs`
//!   (`lists_pages_and_counts_are_exactly_what_the_policy_grants`) ties the two.
//! - Live subscriptions (the api's `live.rs`) route events by one fact about
//!   the policy: access to conversation C changes only by C's own events and by
//!   its company's stream events (staff, roles, permissions, groups, privacy
//!   settings), never by another conversation's. `domain/tests/properties.rs`
//!   checks it on random command sequences. A rule that looks at anything else
//!   breaks that routing.
//!
//! [`may_read_enquiry_history`] must stay consistent with R1, R2 and R4 for
//! closed conversations.

use std::fmt;

use crate::ids::{CompanyId, ConversationId, GroupId, StaffId};
use crate::model::{ConversationStatus, Permission, Role, RoutingType};
use crate::state::{Group, Staff, State};

/// The rule that lets a staff member view a conversation; audit tools report it.
/// Stored in the read audit's `ContentOpened` (by variant index: never reorder).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Rule {
    /// Owner or admin of the conversation's company.
    R1,
    /// Supervisor of the conversation's group.
    R2,
    /// Participant: the assignee, or invited into the room.
    R3,
    /// Closed, and the viewer holds ENQUIRY_HISTORY in the conversation's group.
    R4,
    /// Not effectively private, and the viewer is a member of its group.
    R5,
    /// Effectively private, queued in a broadcast group the viewer is a member of.
    R6,
}

impl Rule {
    pub fn description(self) -> &'static str {
        match self {
            Rule::R1 => "owner or admin of the company",
            Rule::R2 => "supervisor of the conversation's group",
            Rule::R3 => "participant of the conversation",
            Rule::R4 => "closed enquiry, ENQUIRY_HISTORY holder in its group",
            Rule::R5 => "public conversation in one of the viewer's groups",
            Rule::R6 => "private conversation queued in the viewer's broadcast group",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The policy's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Granted(Rule),
    /// The conversation exists in the viewer's company; nothing of it may be shown.
    Restricted,
    /// Another company's conversation, or none at all: indistinguishable.
    NotFound,
}

impl Access {
    pub fn is_granted(self) -> bool {
        matches!(self, Access::Granted(_))
    }
}

/// Everything the policy looks at, as plain facts, so that any read model (not
/// only [`State`]) can ask the same function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessFacts {
    pub viewer_company: CompanyId,
    pub viewer_role: Role,
    pub viewer_active: bool,
    pub viewer_has_enquiry_history: bool,
    pub viewer_is_group_member: bool,
    pub viewer_is_group_supervisor: bool,
    pub viewer_is_participant: bool,
    pub conversation_company: CompanyId,
    pub status: ConversationStatus,
    pub routing: RoutingType,
    pub effectively_private: bool,
}

/// SPEC section 3: the first matching rule grants access.
pub fn conversation_access(f: &AccessFacts) -> Access {
    if f.viewer_company != f.conversation_company {
        return Access::NotFound;
    }
    if !f.viewer_active {
        return Access::Restricted;
    }
    let rule = if f.viewer_role.is_owner_or_admin() {
        Rule::R1
    } else if f.viewer_role == Role::Supervisor && f.viewer_is_group_supervisor {
        Rule::R2
    } else if f.viewer_is_participant {
        Rule::R3
    } else if f.status == ConversationStatus::Closed
        && f.viewer_has_enquiry_history
        && (f.viewer_is_group_member || f.viewer_is_group_supervisor)
    {
        Rule::R4
    } else if !f.effectively_private && f.viewer_is_group_member {
        Rule::R5
    } else if f.effectively_private
        && f.status == ConversationStatus::Queued
        && f.routing == RoutingType::Broadcast
        && f.viewer_is_group_member
    {
        Rule::R6
    } else {
        return Access::Restricted;
    };
    Access::Granted(rule)
}

/// A supervisor of the group in the sense of SPEC sections 3 and 4: the
/// SUPERVISOR role and named as one of the group's supervisors.
pub fn supervises(staff: &Staff, group: &Group) -> bool {
    staff.role == Role::Supervisor && group.is_supervisor(staff.id)
}

/// SPEC section 4, last row: who may read closed enquiries of a group and export
/// their report. Consistent with R1, R2 and R4 for closed conversations.
pub fn may_read_enquiry_history(staff: &Staff, group: &Group) -> bool {
    staff.active
        && staff.company == group.company
        && (staff.role.is_owner_or_admin()
            || supervises(staff, group)
            || (staff.has(Permission::EnquiryHistory)
                && (group.is_member(staff.id) || group.is_supervisor(staff.id))))
}

/// The rule of SPEC section 3 by which `staff` reads a closed enquiry of
/// `group` in a report, when [`may_read_enquiry_history`] allows it: R1 for the
/// owner and admins, R2 for its supervisors, else R4 (the read audit records it).
pub fn enquiry_history_rule(staff: &Staff, group: &Group) -> Option<Rule> {
    if !may_read_enquiry_history(staff, group) {
        return None;
    }
    Some(if staff.role.is_owner_or_admin() {
        Rule::R1
    } else if supervises(staff, group) {
        Rule::R2
    } else {
        Rule::R4
    })
}

impl State {
    /// The policy applied to the current state. Unknown viewers and unknown
    /// conversations are `NotFound`.
    pub fn access(&self, viewer: StaffId, conversation: ConversationId) -> Access {
        let (Some(staff), Some(conversation)) = (
            self.staff.get(&viewer),
            self.conversations.get(&conversation),
        ) else {
            return Access::NotFound;
        };
        let Some(group) = self.groups.get(&conversation.group) else {
            return Access::NotFound;
        };
        conversation_access(&AccessFacts {
            viewer_company: staff.company,
            viewer_role: staff.role,
            viewer_active: staff.active,
            viewer_has_enquiry_history: staff.has(Permission::EnquiryHistory),
            viewer_is_group_member: group.is_member(staff.id),
            viewer_is_group_supervisor: group.is_supervisor(staff.id),
            viewer_is_participant: conversation.is_participant(staff.id),
            conversation_company: conversation.company,
            status: conversation.status,
            routing: group.routing,
            effectively_private: self.is_effectively_private(conversation),
        })
    }

    /// May `viewer` read the closed enquiries of `group`? Unknown ids: no.
    pub fn may_read_enquiry_history(&self, viewer: StaffId, group: GroupId) -> bool {
        match (self.staff.get(&viewer), self.groups.get(&group)) {
            (Some(staff), Some(group)) => may_read_enquiry_history(staff, group),
            _ => false,
        }
    }
}
