//! The read-side permissions beyond one conversation (`domain::permissions`):
//! the signed-in check, the enquiry overview, audit trails, the access log and
//! the log export.

mod support;

use backchannel_domain::ErrorCode::{self, *};
use backchannel_domain::events::*;
use backchannel_domain::ids::{ConversationId, GroupId, StaffId};
use backchannel_domain::model::{Channel, Role};
use backchannel_domain::permissions::{
    audit_trail_access, may_read_access_log, may_read_log, overview_access, signed_in_staff,
};
use backchannel_domain::state::State;
use support::*;

fn code<T>(result: Result<T, backchannel_domain::DomainError>) -> Option<ErrorCode> {
    result.err().map(|e| e.code())
}

/// The world with one conversation queued in Support.
fn with_conversation(w: &World, c: ConversationId) -> State {
    let mut events = w.setup();
    events.push(w.opened(c, w.support, Channel::Chat, false));
    State::from_events(&events)
}

/// Acme alone: the world's events up to Globex's creation.
fn acme_only(w: &World) -> State {
    let events: Vec<Event> = w
        .setup()
        .into_iter()
        .take_while(|e| !matches!(e, Event::CompanyCreated(c) if c.company == w.globex))
        .collect();
    State::from_events(&events)
}

#[test]
fn signed_in_staff_is_active_staff_of_the_tokens_company() {
    let w = World::new();
    let state = State::from_events(&w.setup());
    assert_eq!(
        signed_in_staff(&state, w.a, w.acme).map(|s| s.id),
        Some(w.a)
    );
    assert!(
        signed_in_staff(&state, w.z, w.acme).is_none(),
        "deactivated"
    );
    assert!(
        signed_in_staff(&state, w.a, w.globex).is_none(),
        "another company"
    );
    assert!(signed_in_staff(&state, StaffId::new(), w.acme).is_none());
}

#[test]
fn overview_is_for_the_owner_admins_and_the_groups_supervisors_and_members() {
    let w = World::new();
    let state = State::from_events(&w.setup());
    let check = |viewer: StaffId, group: GroupId| code(overview_access(&state, viewer, group));
    for viewer in [w.owner, w.admin, w.supervisor, w.a, w.h] {
        assert_eq!(check(viewer, w.support), None, "{viewer:?}");
    }
    // The supervisor of another group, a member of another group.
    assert_eq!(check(w.sales_supervisor, w.support), Some(Forbidden));
    assert_eq!(check(w.d, w.support), Some(Forbidden));
    assert_eq!(check(w.supervisor, w.sales), Some(Forbidden));
    // Another company's group does not exist; a deactivated viewer is not signed in.
    assert_eq!(check(w.x, w.support), Some(NotFound));
    assert_eq!(check(w.owner, GroupId::new()), Some(NotFound));
    assert_eq!(check(w.z, w.support), Some(Unauthenticated));
    assert_eq!(check(StaffId::new(), w.support), Some(Unauthenticated));
}

#[test]
fn a_named_supervisor_demoted_to_agent_loses_the_overview_unless_a_member() {
    let w = World::new();
    let mut events = w.setup();
    events.push(Event::StaffRoleChanged(StaffRoleChanged {
        company: w.acme,
        staff: w.supervisor,
        role: Role::Agent,
    }));
    let state = State::from_events(&events);
    assert_eq!(
        code(overview_access(&state, w.supervisor, w.support)),
        Some(Forbidden)
    );
    events.push(Event::GroupMemberAdded(gs(w.acme, w.support, w.supervisor)));
    let state = State::from_events(&events);
    assert_eq!(code(overview_access(&state, w.supervisor, w.support)), None);
}

#[test]
fn audit_trails_are_for_the_owner_and_admins() {
    let w = World::new();
    let c = ConversationId::new();
    let state = with_conversation(&w, c);
    assert_eq!(code(audit_trail_access(&state, w.owner, c)), None);
    assert_eq!(code(audit_trail_access(&state, w.admin, c)), None);
    for viewer in [w.supervisor, w.a, w.h] {
        assert_eq!(
            code(audit_trail_access(&state, viewer, c)),
            Some(Forbidden),
            "{viewer:?}"
        );
    }
}

#[test]
fn an_audit_trail_refusal_says_not_found_before_forbidden() {
    let w = World::new();
    let c = ConversationId::new();
    let state = with_conversation(&w, c);
    // Another company's admin, and an agent asking for an unknown id, learn
    // only that there is no such conversation.
    assert_eq!(code(audit_trail_access(&state, w.x, c)), Some(NotFound));
    assert_eq!(
        code(audit_trail_access(&state, w.a, ConversationId::new())),
        Some(NotFound)
    );
    assert_eq!(
        code(audit_trail_access(&state, w.z, c)),
        Some(Unauthenticated)
    );
}

#[test]
fn the_access_log_is_for_active_owners_and_admins() {
    let w = World::new();
    let mut events = w.setup();
    let state = State::from_events(&events);
    let may = |state: &State, id: StaffId| may_read_access_log(state.staff.get(&id).unwrap());
    // Another company's admin passes this check too: the api answers
    // `NOT_FOUND` for other companies' ids before it asks.
    for viewer in [w.owner, w.admin, w.x] {
        assert!(may(&state, viewer), "{viewer:?}");
    }
    for viewer in [w.supervisor, w.sales_supervisor, w.a, w.h, w.z] {
        assert!(!may(&state, viewer), "{viewer:?}");
    }
    events.push(Event::StaffDeactivated(StaffDeactivated {
        company: w.acme,
        staff: w.admin,
    }));
    let state = State::from_events(&events);
    assert!(!may(&state, w.admin), "a deactivated admin");
}

#[test]
fn the_log_is_for_the_owner_and_admins_of_the_only_company() {
    let w = World::new();
    let state = acme_only(&w);
    let staff = |id: StaffId| state.staff.get(&id).unwrap();
    assert_eq!(code(may_read_log(&state, staff(w.owner))), None);
    assert_eq!(code(may_read_log(&state, staff(w.admin))), None);
    for viewer in [w.supervisor, w.a, w.z] {
        assert_eq!(
            code(may_read_log(&state, staff(viewer))),
            Some(Forbidden),
            "{viewer:?}"
        );
    }
}

#[test]
fn once_a_second_company_exists_the_log_is_for_the_operator_only() {
    let w = World::new();
    let state = State::from_events(&w.setup());
    for viewer in [w.owner, w.admin, w.x] {
        let staff = state.staff.get(&viewer).unwrap();
        assert_eq!(
            code(may_read_log(&state, staff)),
            Some(Forbidden),
            "{viewer:?}"
        );
    }
}
