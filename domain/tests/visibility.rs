//! SPEC section 3, rule by rule: who may view a conversation and why.

mod support;

use backchannel_domain::Access::{Granted, NotFound, Restricted};
use backchannel_domain::Rule::*;
use backchannel_domain::events::*;
use backchannel_domain::ids::{ConversationId, StaffId};
use backchannel_domain::model::Channel;
use backchannel_domain::visibility::enquiry_history_rule;
use backchannel_domain::{Access, State};
use support::*;

/// A private chat queued in Support (broadcast), in a company with privacy on.
fn private_queued(w: &World, c: ConversationId) -> Vec<Event> {
    let mut events = w.private_setup();
    events.push(w.opened(c, w.support, Channel::Chat, true));
    events
}

fn check(state: &State, c: ConversationId, expect: &[(StaffId, Access)]) {
    for (viewer, access) in expect {
        assert_eq!(
            state.access(*viewer, c),
            *access,
            "viewer {viewer:?} on {c:?}"
        );
    }
}

#[test]
fn r1_owner_and_admin_see_every_conversation_of_their_company() {
    let w = World::new();
    let c = ConversationId::new();
    let mut events = private_queued(&w, c);
    events.push(assigned(c, w.a, None));
    let state = State::from_events(&events);
    check(&state, c, &[(w.owner, Granted(R1)), (w.admin, Granted(R1))]);
}

#[test]
fn r2_supervisor_sees_conversations_of_supervised_groups_only() {
    let w = World::new();
    let c = ConversationId::new();
    let mut events = private_queued(&w, c);
    events.push(assigned(c, w.a, None));
    let state = State::from_events(&events);
    check(
        &state,
        c,
        &[
            (w.supervisor, Granted(R2)),
            (w.sales_supervisor, Restricted),
        ],
    );
}

#[test]
fn r3_assignee_and_invitees_see_a_private_conversation() {
    let w = World::new();
    let c = ConversationId::new();
    let mut events = private_queued(&w, c);
    events.push(assigned(c, w.a, None));
    events.push(invited(c, w.d));
    let state = State::from_events(&events);
    check(&state, c, &[(w.a, Granted(R3)), (w.d, Granted(R3))]);
}

#[test]
fn r3_a_transfer_hands_the_room_over() {
    let w = World::new();
    let c = ConversationId::new();
    let mut events = private_queued(&w, c);
    events.push(assigned(c, w.a, None));
    events.push(assigned(c, w.b, Some(w.a)));
    let state = State::from_events(&events);
    check(&state, c, &[(w.b, Granted(R3)), (w.a, Restricted)]);
}

#[test]
fn r4_closed_enquiry_visible_to_enquiry_history_holder_of_the_group() {
    let w = World::new();
    let c = ConversationId::new();
    let mut events = private_queued(&w, c);
    events.push(assigned(c, w.a, None));
    let before_close = State::from_events(&events);
    check(&before_close, c, &[(w.h, Restricted)]);
    events.push(closed(c));
    let state = State::from_events(&events);
    check(&state, c, &[(w.h, Granted(R4)), (w.b, Restricted)]);
}

#[test]
fn r4_needs_the_group_as_well_as_the_permission() {
    let w = World::new();
    let c = ConversationId::new();
    let mut events = w.private_setup();
    events.push(w.opened(c, w.sales, Channel::Chat, true));
    events.push(closed(c));
    let state = State::from_events(&events);
    // H holds ENQUIRY_HISTORY but is not in Sales.
    check(&state, c, &[(w.h, Restricted)]);
}

#[test]
fn r5_public_conversation_visible_to_group_members() {
    let w = World::new();
    let c = ConversationId::new();
    let mut events = w.setup();
    events.push(w.opened(c, w.support, Channel::Chat, false));
    events.push(assigned(c, w.a, None));
    let state = State::from_events(&events);
    check(
        &state,
        c,
        &[(w.b, Granted(R5)), (w.c, Granted(R5)), (w.d, Restricted)],
    );
}

#[test]
fn r6_private_queued_broadcast_visible_to_group_members() {
    let w = World::new();
    let c = ConversationId::new();
    let state = State::from_events(&private_queued(&w, c));
    check(
        &state,
        c,
        &[
            (w.a, Granted(R6)),
            (w.b, Granted(R6)),
            (w.c, Granted(R6)),
            (w.d, Restricted),
        ],
    );
}

#[test]
fn r6_ends_when_a_private_conversation_is_assigned() {
    let w = World::new();
    let c = ConversationId::new();
    let mut events = private_queued(&w, c);
    events.push(assigned(c, w.a, None));
    let state = State::from_events(&events);
    check(
        &state,
        c,
        &[(w.a, Granted(R3)), (w.b, Restricted), (w.c, Restricted)],
    );
}

#[test]
fn r6_does_not_apply_in_round_robin_groups() {
    let w = World::new();
    let c = ConversationId::new();
    let mut events = w.private_setup();
    // Queued in Sales (round robin), e.g. because nobody was active.
    events.push(w.opened(c, w.sales, Channel::Chat, true));
    let state = State::from_events(&events);
    check(&state, c, &[(w.d, Restricted), (w.e, Restricted)]);
}

#[test]
fn making_a_conversation_public_gives_sight_back() {
    let w = World::new();
    let c = ConversationId::new();
    let mut events = private_queued(&w, c);
    events.push(assigned(c, w.a, None));
    events.push(Event::ConversationPrivacyChanged(
        ConversationPrivacyChanged {
            conversation: c,
            private: false,
        },
    ));
    let state = State::from_events(&events);
    check(&state, c, &[(w.b, Granted(R5))]);
}

#[test]
fn company_switch_off_makes_every_conversation_public_and_on_restores_it() {
    let w = World::new();
    let c = ConversationId::new();
    let mut events = private_queued(&w, c);
    events.push(assigned(c, w.a, None));
    events.push(w.privacy(false, true));
    check(&State::from_events(&events), c, &[(w.b, Granted(R5))]);
    events.push(w.privacy(true, true));
    check(&State::from_events(&events), c, &[(w.b, Restricted)]);
}

#[test]
fn deactivated_staff_see_nothing() {
    let w = World::new();
    let c = ConversationId::new();
    let mut events = w.setup();
    events.push(w.opened(c, w.support, Channel::Chat, false));
    let state = State::from_events(&events);
    // Z is still listed as a member of Support, but deactivated.
    check(&state, c, &[(w.z, Restricted)]);
    events.push(Event::StaffDeactivated(StaffDeactivated {
        company: w.acme,
        staff: w.admin,
    }));
    check(&State::from_events(&events), c, &[(w.admin, Restricted)]);
}

#[test]
fn another_companys_staff_get_not_found_like_a_missing_id() {
    let w = World::new();
    let c = ConversationId::new();
    let state = State::from_events(&private_queued(&w, c));
    assert_eq!(state.access(w.x, c), NotFound);
    assert_eq!(state.access(w.admin, ConversationId::new()), NotFound);
    assert_eq!(state.access(StaffId::new(), c), NotFound);
}

#[test]
fn the_first_matching_rule_is_the_reason() {
    let w = World::new();
    let c = ConversationId::new();
    let mut events = private_queued(&w, c);
    events.push(assigned(c, w.a, None));
    events.push(invited(c, w.admin));
    events.push(invited(c, w.supervisor));
    let state = State::from_events(&events);
    check(
        &state,
        c,
        &[(w.admin, Granted(R1)), (w.supervisor, Granted(R2))],
    );
}

#[test]
fn enquiry_history_readers_per_group() {
    let w = World::new();
    let state = State::from_events(&w.setup());
    let support = [
        (w.owner, true),
        (w.admin, true),
        (w.supervisor, true),
        (w.sales_supervisor, false),
        (w.h, true),
        (w.a, false),
        (w.z, false),
        (w.x, false),
    ];
    for (staff, expect) in support {
        assert_eq!(
            state.may_read_enquiry_history(staff, w.support),
            expect,
            "{staff:?}"
        );
    }
    assert!(state.may_read_enquiry_history(w.sales_supervisor, w.sales));
    assert!(!state.may_read_enquiry_history(w.h, w.sales));
}

/// The replay tool prints a rule as its name and its description (why access
/// was granted): each is the rule's own, none is blank or shared.
#[test]
fn each_rule_prints_as_its_name_with_its_own_reason() {
    let rules = [
        (R1, "R1", "owner or admin"),
        (R2, "R2", "supervisor"),
        (R3, "R3", "participant"),
        (R4, "R4", "ENQUIRY_HISTORY"),
        (R5, "R5", "public"),
        (R6, "R6", "private"),
    ];
    for (rule, name, reason) in rules {
        assert_eq!(rule.to_string(), name);
        assert!(
            rule.description().contains(reason),
            "{name}: {:?}",
            rule.description()
        );
    }
    let mut descriptions: Vec<&str> = rules.iter().map(|(r, _, _)| r.description()).collect();
    descriptions.sort_unstable();
    descriptions.dedup();
    assert_eq!(descriptions.len(), rules.len());
}

/// Only a granted access counts as one: a restricted or unknown conversation
/// is not shown.
#[test]
fn only_a_granted_access_is_granted() {
    for rule in [R1, R2, R3, R4, R5, R6] {
        assert!(Granted(rule).is_granted());
    }
    assert!(!Restricted.is_granted());
    assert!(!NotFound.is_granted());
}

/// A report of closed enquiries records the rule each reader reads them by:
/// the one the policy grants on a closed private enquiry of the group (R1,
/// R2, R4), and none for those who may not read them.
#[test]
fn the_enquiry_history_rule_is_the_one_the_policy_grants_on_a_closed_enquiry() {
    let w = World::new();
    let c = ConversationId::new();
    let mut events = private_queued(&w, c);
    events.push(assigned(c, w.b, None));
    events.push(closed(c));
    let state = State::from_events(&events);
    let support = &state.groups[&w.support];
    let readers = [
        (w.owner, Some(R1)),
        (w.admin, Some(R1)),
        (w.supervisor, Some(R2)),
        (w.h, Some(R4)),
        (w.sales_supervisor, None),
        (w.a, None),
        (w.z, None),
        (w.x, None),
    ];
    for (reader, rule) in readers {
        let staff = &state.staff[&reader];
        assert_eq!(enquiry_history_rule(staff, support), rule, "{reader:?}");
        if staff.company == w.acme {
            let granted = match state.access(reader, c) {
                Granted(rule) => Some(rule),
                _ => None,
            };
            assert_eq!(granted, rule, "the policy on {reader:?}");
        }
    }
}
