//! Who may read what beyond one conversation: the read-side permissions of
//! SPEC sections 4, 8 and 9, and the check every staff request starts from.
//!
//! Each rule is one function here, and the api and projections call it rather
//! than asking the state themselves:
//!
//! - [`signed_in_staff`]: a staff token's member is active staff of its
//!   company *now* (the api's `context::check_staff`, for every staff
//!   resolver and subscription, and `log_export.rs` for `GET /log`).
//! - [`may_see_overview`] / [`overview_access`]: `enquiryOverview(groupId)`
//!   (projections' `listing.rs::overview`).
//! - [`may_read_audit_trails`] / [`audit_trail_access`]:
//!   `auditTrail(conversationId)` (the api's `staff/query.rs`).
//! - [`may_read_access_log`]: the read audit, `accessLog(conversationId |
//!   staffId)` (the api's `staff/access_log.rs`).
//! - [`may_read_log`]: `GET /log` and `GET /log/head` with a staff token (the
//!   api's `log_export.rs`; the server operator's token is not staff and is
//!   checked there, before this).
//!
//! Whether staff may view one conversation is [`conversation_access`] in
//! `visibility.rs`, and reading a group's closed enquiries is
//! `visibility::may_read_enquiry_history`. What staff may *do* is decided with
//! the command, in [`crate::decide`](mod@crate::decide). The `*_access` functions answer in the
//! order `decide` documents: `UNAUTHENTICATED`, then `NOT_FOUND`, then
//! `FORBIDDEN`.
//!
//! [`conversation_access`]: crate::visibility::conversation_access

use crate::error::{DomainError, Missing};
use crate::ids::{CompanyId, ConversationId, GroupId, StaffId};
use crate::state::{Group, Staff, State};
use crate::visibility::supervises;

/// The staff member a token names, if they are active staff of the token's
/// `company` in `state`: the one check that a staff identity still holds
/// (a deactivation takes effect on the next request). `None` means
/// `UNAUTHENTICATED`.
pub fn signed_in_staff(state: &State, staff: StaffId, company: CompanyId) -> Option<&Staff> {
    state
        .staff
        .get(&staff)
        .filter(|s| s.active && s.company == company)
}

/// SPEC section 8's `enquiryOverview(groupId)`: the owner, admins, the
/// group's supervisors and its members may open a group's overview. Each
/// column still holds only what [`crate::visibility::conversation_access`]
/// grants the viewer.
pub fn may_see_overview(staff: &Staff, group: &Group) -> bool {
    staff.active
        && staff.company == group.company
        && (staff.role.is_owner_or_admin() || supervises(staff, group) || group.is_member(staff.id))
}

/// [`may_see_overview`] for `viewer` and `group` in `state`, with the
/// refusal: an unknown or deactivated viewer is `UNAUTHENTICATED`, a group
/// not of their company `NOT_FOUND`, anyone else it does not allow
/// `FORBIDDEN`.
pub fn overview_access(
    state: &State,
    viewer: StaffId,
    group: GroupId,
) -> Result<(&Staff, &Group), DomainError> {
    let staff = active_viewer(state, viewer)?;
    let group = state
        .groups
        .get(&group)
        .filter(|g| g.company == staff.company)
        .ok_or(DomainError::NotFound(Missing::Group))?;
    if !may_see_overview(staff, group) {
        return Err(DomainError::Forbidden(
            "only the owner, admins, and the group's supervisors and members see its overview",
        ));
    }
    Ok((staff, group))
}

/// Audit trails (the envelopes of a conversation's events: who, what, when,
/// which command) are for the owner and admins.
pub fn may_read_audit_trails(staff: &Staff) -> bool {
    staff.active && staff.role.is_owner_or_admin()
}

/// [`may_read_audit_trails`] for `viewer` and the audit trail of
/// `conversation`, with the refusal: an unknown or deactivated viewer is
/// `UNAUTHENTICATED`, a conversation not of their company `NOT_FOUND`, and a
/// viewer who is neither owner nor admin `FORBIDDEN`.
pub fn audit_trail_access(
    state: &State,
    viewer: StaffId,
    conversation: ConversationId,
) -> Result<(), DomainError> {
    let staff = active_viewer(state, viewer)?;
    let exists = state
        .conversations
        .get(&conversation)
        .is_some_and(|c| c.company == staff.company);
    if !exists {
        return Err(DomainError::NotFound(Missing::Conversation));
    }
    if !may_read_audit_trails(staff) {
        return Err(DomainError::Forbidden(
            "only the owner and admins can read audit trails",
        ));
    }
    Ok(())
}

/// The viewer of a read-side request, who must exist and be active, else
/// `UNAUTHENTICATED`: the first check of every `*_access` function here.
fn active_viewer(state: &State, viewer: StaffId) -> Result<&Staff, DomainError> {
    state
        .staff
        .get(&viewer)
        .filter(|s| s.active)
        .ok_or(DomainError::Unauthenticated)
}

/// SPEC section 12's read audit (`accessLog(conversationId | staffId)`: who
/// opened which conversation's content) is for the owner and admins. The api
/// answers `NOT_FOUND` for another company's conversation or staff member
/// before it asks this.
pub fn may_read_access_log(staff: &Staff) -> bool {
    staff.active && staff.role.is_owner_or_admin()
}

/// SPEC section 9's log export for a staff member (`GET /log`): the log is
/// one hash chain across every company and is served only whole, so an
/// active owner or admin may read it only while their company is the only
/// company in `state`; everyone else needs the server operator. The refusal
/// is `FORBIDDEN` with the reason.
pub fn may_read_log(state: &State, staff: &Staff) -> Result<(), DomainError> {
    if !staff.active || !staff.role.is_owner_or_admin() {
        return Err(DomainError::Forbidden(
            "only the owner or an admin may read the log",
        ));
    }
    let only_company = state.companies.len() == 1 && state.companies.contains_key(&staff.company);
    if !only_company {
        return Err(DomainError::Forbidden(
            "the log holds other companies' events too and is one hash chain, so it is served \
             only whole, to the server operator (`backchannel token --operator`)",
        ));
    }
    Ok(())
}
