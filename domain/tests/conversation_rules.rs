//! SPEC section 4 for conversations: opening and routing, assignment, the room,
//! privacy, closing and reopening. Given/when/then.

mod support;

use backchannel_domain::ErrorCode::*;
use backchannel_domain::commands::Command;
use backchannel_domain::events::*;
use backchannel_domain::ids::ConversationId;
use backchannel_domain::model::{Actor, Channel};
use backchannel_domain::values::Content;
use support::*;

fn open(w: &World, c: ConversationId, group: backchannel_domain::ids::GroupId) -> Command {
    Command::OpenConversation {
        company: w.acme,
        conversation: c,
        group,
        channel: Channel::Chat,
        customer: name("Carla Customer"),
        first_message: None,
    }
}

fn assign(c: ConversationId, to: backchannel_domain::ids::StaffId) -> Command {
    Command::AssignConversation {
        conversation: c,
        assignee: to,
    }
}

/// Private company, one private chat queued in Support.
fn queued(w: &World, c: ConversationId) -> Vec<Event> {
    let mut events = w.private_setup();
    events.push(w.opened(c, w.support, Channel::Chat, true));
    events
}

/// The same chat, assigned to A.
fn handled(w: &World, c: ConversationId) -> Vec<Event> {
    let mut events = queued(w, c);
    events.push(assigned(c, w.a, None));
    events
}

#[test]
fn customer_opens_a_conversation_queued_in_a_broadcast_group() {
    let w = World::new();
    let c = ConversationId::new();
    given(w.setup())
        .when(Actor::Customer(c), open(&w, c, w.support))
        .then_expect(vec![w.opened(c, w.support, Channel::Chat, false)]);
}

#[test]
fn new_conversations_private_sets_the_flag_at_opening() {
    let w = World::new();
    let c = ConversationId::new();
    given(w.private_setup())
        .when(Actor::Customer(c), open(&w, c, w.support))
        .then_expect(vec![w.opened(c, w.support, Channel::Chat, true)]);
}

#[test]
fn staff_open_conversations_on_behalf_of_a_customer() {
    let w = World::new();
    let c = ConversationId::new();
    given(w.setup())
        .when(
            staff(w.a),
            Command::OpenConversation {
                company: w.acme,
                conversation: c,
                group: w.support,
                channel: Channel::Call,
                customer: name("Carla Customer"),
                first_message: None,
            },
        )
        .then_expect(vec![w.opened(c, w.support, Channel::Call, false)]);
}

#[test]
fn a_customer_token_opens_only_its_own_conversation() {
    let w = World::new();
    let c = ConversationId::new();
    given(w.setup())
        .when(
            Actor::Customer(ConversationId::new()),
            open(&w, c, w.support),
        )
        .then_error(Forbidden);
}

#[test]
fn opening_in_another_companys_group_is_not_found() {
    let w = World::new();
    let c = ConversationId::new();
    given(w.setup())
        .when(Actor::Customer(c), open(&w, c, w.globex_group))
        .then_error(NotFound);
}

#[test]
fn round_robin_assigns_at_opening_in_rotation() {
    let w = World::new();
    let (c1, c2, c3) = (
        ConversationId::new(),
        ConversationId::new(),
        ConversationId::new(),
    );
    let mut events = w.private_setup();
    let mut assignees = Vec::new();
    for c in [c1, c2, c3] {
        let new = given(events.clone())
            .when(Actor::Customer(c), open(&w, c, w.sales))
            .events();
        let Event::ConversationAssigned(a) = &new[1] else {
            panic!("expected an assignment, got {new:?}");
        };
        assert!(a.round_robin);
        assignees.push(a.assignee);
        events.extend(new);
    }
    assert_eq!(assignees, vec![w.d, w.e, w.d]);
}

#[test]
fn a_round_robin_opening_records_the_turn_on_the_company_stream() {
    let w = World::new();
    let c = ConversationId::new();
    let new = given(w.setup())
        .when(Actor::Customer(c), open(&w, c, w.sales))
        .events();
    assert_eq!(new.len(), 3, "{new:?}");
    assert_eq!(
        new[2],
        Event::RoundRobinTurnTaken(RoundRobinTurnTaken {
            company: w.acme,
            group: w.sales,
            conversation: c,
            assignee: w.d,
        })
    );
    assert_eq!(new[2].stream(), StreamId::Company(w.acme));
}

#[test]
fn the_rotation_follows_the_turn_and_old_logs_assignments_alike() {
    let w = World::new();
    let next = |events: Vec<Event>| {
        let c = ConversationId::new();
        let new = given(events)
            .when(Actor::Customer(c), open(&w, c, w.sales))
            .events();
        match &new[1] {
            Event::ConversationAssigned(a) => a.assignee,
            other => panic!("expected an assignment, got {other:?}"),
        }
    };
    let earlier = ConversationId::new();
    // The turn alone (the assignment not marked round robin).
    let mut events = w.setup();
    events.push(w.opened(earlier, w.sales, Channel::Chat, false));
    events.push(assigned(earlier, w.d, None));
    events.push(Event::RoundRobinTurnTaken(RoundRobinTurnTaken {
        company: w.acme,
        group: w.sales,
        conversation: earlier,
        assignee: w.d,
    }));
    assert_eq!(next(events), w.e);
    // A log from before the turn event: the round-robin assignment alone.
    let mut events = w.setup();
    events.push(w.opened(earlier, w.sales, Channel::Chat, false));
    let mut old = assigned(earlier, w.d, None);
    if let Event::ConversationAssigned(a) = &mut old {
        a.round_robin = true;
    }
    events.push(old);
    assert_eq!(next(events), w.e);
}

#[test]
fn a_first_message_is_posted_with_the_opening() {
    let w = World::new();
    let c = ConversationId::new();
    let message = backchannel_domain::ids::MessageId::new();
    let body = backchannel_domain::values::MessageBody::parse("Hello there").unwrap();
    let command = Command::OpenConversation {
        company: w.acme,
        conversation: c,
        group: w.support,
        channel: Channel::Chat,
        customer: name("Carla Customer"),
        first_message: Some(backchannel_domain::commands::FirstMessage {
            message,
            body: body.clone(),
        }),
    };
    given(w.setup())
        .when(Actor::Customer(c), command)
        .then_expect(vec![
            w.opened(c, w.support, Channel::Chat, false),
            Event::MessagePosted(MessagePosted {
                conversation: c,
                message,
                author: MessageAuthor::Customer,
                body: Content::Plain(body),
            }),
        ]);
}

#[test]
fn round_robin_skips_deactivated_members() {
    let w = World::new();
    let c = ConversationId::new();
    let mut events = w.setup();
    events.push(Event::StaffDeactivated(StaffDeactivated {
        company: w.acme,
        staff: w.d,
    }));
    let new = given(events)
        .when(Actor::Customer(c), open(&w, c, w.sales))
        .events();
    assert_eq!(new[1], {
        let mut e = assigned(c, w.e, None);
        if let Event::ConversationAssigned(a) = &mut e {
            a.round_robin = true;
        }
        e
    });
}

#[test]
fn round_robin_without_active_members_leaves_it_queued() {
    let w = World::new();
    let c = ConversationId::new();
    let mut events = w.setup();
    for m in [w.d, w.e] {
        events.push(Event::GroupMemberRemoved(gs(w.acme, w.sales, m)));
    }
    given(events)
        .when(Actor::Customer(c), open(&w, c, w.sales))
        .then_expect(vec![w.opened(c, w.sales, Channel::Chat, false)]);
}

#[test]
fn broadcast_members_assign_queued_conversations_to_themselves_or_each_other() {
    let w = World::new();
    let c = ConversationId::new();
    given(queued(&w, c))
        .when(staff(w.a), assign(c, w.a))
        .then_expect(vec![assigned(c, w.a, None)]);
    given(queued(&w, c))
        .when(staff(w.a), assign(c, w.b))
        .then_expect(vec![assigned(c, w.b, None)]);
}

#[test]
fn owner_admin_and_supervisor_assign_queued_conversations() {
    let w = World::new();
    let c = ConversationId::new();
    for actor in [w.owner, w.admin, w.supervisor] {
        given(queued(&w, c))
            .when(staff(actor), assign(c, w.c))
            .then_expect(vec![assigned(c, w.c, None)]);
    }
}

#[test]
fn the_assignee_must_be_an_active_member_of_the_group() {
    let w = World::new();
    let c = ConversationId::new();
    for assignee in [w.d, w.z, w.supervisor] {
        given(queued(&w, c))
            .when(staff(w.admin), assign(c, assignee))
            .then_error(Validation);
    }
    given(queued(&w, c))
        .when(staff(w.admin), assign(c, w.x))
        .then_error(NotFound);
}

#[test]
fn the_second_of_two_assigners_of_a_private_conversation_learns_it_was_taken_not_by_whom() {
    let w = World::new();
    let c = ConversationId::new();
    // A took it; B, working from the queue as it was, now tries to take it.
    // B can no longer view it (R6 ended), so is not told who has it.
    let mut events = queued(&w, c);
    events.push(assigned(c, w.a, None));
    let conflict = backchannel_domain::DomainError::Conflict {
        current_assignee: None,
    };
    let decide = |events: &[Event]| {
        backchannel_domain::decide(
            &backchannel_domain::State::from_events(events),
            &assign(c, w.b),
            staff(w.b),
        )
    };
    assert_eq!(decide(&events), Err(conflict.clone()));
    // Closed since: the same answer, so the status does not show either.
    events.push(Event::ConversationClosed(
        backchannel_domain::events::ConversationClosed { conversation: c },
    ));
    assert_eq!(decide(&events), Err(conflict));
}

#[test]
fn the_second_of_two_assigners_of_a_public_conversation_is_told_who_has_it() {
    let w = World::new();
    let c = ConversationId::new();
    let mut events = w.setup();
    events.push(w.opened(c, w.support, Channel::Chat, false));
    events.push(assigned(c, w.a, None));
    let result = backchannel_domain::decide(
        &backchannel_domain::State::from_events(&events),
        &assign(c, w.b),
        staff(w.b),
    );
    assert_eq!(
        result,
        Err(backchannel_domain::DomainError::Conflict {
            current_assignee: Some(w.a)
        })
    );
}

#[test]
fn the_assignee_supervisor_and_admin_transfer_a_handled_conversation() {
    let w = World::new();
    let c = ConversationId::new();
    for actor in [w.a, w.supervisor, w.admin, w.owner] {
        given(handled(&w, c))
            .when(staff(actor), assign(c, w.b))
            .then_expect(vec![assigned(c, w.b, Some(w.a))]);
    }
}

#[test]
fn other_members_cannot_transfer_a_public_handled_conversation() {
    let w = World::new();
    let c = ConversationId::new();
    let mut events = w.setup();
    events.push(w.opened(c, w.support, Channel::Chat, false));
    events.push(assigned(c, w.a, None));
    // B can see it (R5) but it is A's: CONFLICT naming A.
    given(events)
        .when(staff(w.b), assign(c, w.c))
        .then_error(Conflict);
}

/// Only a member of a broadcast group could have taken the conversation
/// first: anyone else who sees it but may not transfer it is forbidden, not
/// told of a race.
#[test]
fn those_who_could_not_have_taken_it_are_forbidden_to_transfer_it() {
    let w = World::new();
    let c = ConversationId::new();
    // D (Sales) is invited into A's conversation in Support: sees it (R3),
    // was never in the running.
    let mut events = handled(&w, c);
    events.push(invited(c, w.d));
    given(events)
        .when(staff(w.d), assign(c, w.d))
        .then_error(Forbidden);
    // E, a member of round-robin Sales, sees D's public conversation there
    // (R5) but never picks from the queue.
    let mut events = w.setup();
    events.push(w.opened(c, w.sales, Channel::Chat, false));
    events.push(assigned(c, w.d, None));
    given(events)
        .when(staff(w.e), assign(c, w.e))
        .then_error(Forbidden);
}

#[test]
fn agents_who_lost_sight_of_a_private_conversation_get_restricted_access() {
    let w = World::new();
    let c = ConversationId::new();
    // D is not in Support: for D, taking it is no race, just no access.
    given(handled(&w, c))
        .when(staff(w.d), assign(c, w.d))
        .then_error(RestrictedAccess);
    for command in [
        Command::InviteToRoom {
            conversation: c,
            staff: w.b,
        },
        Command::CloseConversation { conversation: c },
    ] {
        given(handled(&w, c))
            .when(staff(w.b), command)
            .then_error(RestrictedAccess);
    }
}

#[test]
fn round_robin_members_cannot_pick_from_the_queue() {
    let w = World::new();
    let c = ConversationId::new();
    let mut events = w.setup();
    events.push(w.opened(c, w.sales, Channel::Chat, false));
    given(events)
        .when(staff(w.d), assign(c, w.d))
        .then_error(Forbidden);
}

#[test]
fn another_companys_admin_gets_not_found_on_conversations() {
    let w = World::new();
    let c = ConversationId::new();
    given(handled(&w, c))
        .when(staff(w.x), assign(c, w.x))
        .then_error(NotFound);
    given(handled(&w, c))
        .when(staff(w.x), assign(ConversationId::new(), w.x))
        .then_error(NotFound);
}

#[test]
fn assignee_supervisor_and_admin_invite_into_the_room() {
    let w = World::new();
    let c = ConversationId::new();
    for actor in [w.a, w.supervisor, w.admin] {
        given(handled(&w, c))
            .when(
                staff(actor),
                Command::InviteToRoom {
                    conversation: c,
                    staff: w.d,
                },
            )
            .then_expect(vec![invited(c, w.d)]);
    }
}

#[test]
fn invitees_must_be_active_staff_of_the_company() {
    let w = World::new();
    let c = ConversationId::new();
    given(handled(&w, c))
        .when(
            staff(w.a),
            Command::InviteToRoom {
                conversation: c,
                staff: w.z,
            },
        )
        .then_error(Validation);
    given(handled(&w, c))
        .when(
            staff(w.a),
            Command::InviteToRoom {
                conversation: c,
                staff: w.x,
            },
        )
        .then_error(NotFound);
}

#[test]
fn members_who_are_not_the_assignee_cannot_invite() {
    let w = World::new();
    let c = ConversationId::new();
    let mut events = w.setup();
    events.push(w.opened(c, w.support, Channel::Chat, false));
    events.push(assigned(c, w.a, None));
    given(events)
        .when(
            staff(w.b),
            Command::InviteToRoom {
                conversation: c,
                staff: w.c,
            },
        )
        .then_error(Forbidden);
}

#[test]
fn only_owner_and_admin_make_a_conversation_public_or_private() {
    let w = World::new();
    let c = ConversationId::new();
    let public = Command::SetConversationPrivacy {
        conversation: c,
        private: false,
    };
    for actor in [w.owner, w.admin] {
        given(handled(&w, c))
            .when(staff(actor), public.clone())
            .then_expect(vec![Event::ConversationPrivacyChanged(
                ConversationPrivacyChanged {
                    conversation: c,
                    private: false,
                },
            )]);
    }
    for actor in [w.supervisor, w.a] {
        given(handled(&w, c))
            .when(staff(actor), public.clone())
            .then_error(Forbidden);
    }
}

#[test]
fn privacy_can_change_even_when_closed() {
    let w = World::new();
    let c = ConversationId::new();
    let mut events = handled(&w, c);
    events.push(closed(c));
    given(events)
        .when(
            staff(w.admin),
            Command::SetConversationPrivacy {
                conversation: c,
                private: false,
            },
        )
        .then_expect(vec![Event::ConversationPrivacyChanged(
            ConversationPrivacyChanged {
                conversation: c,
                private: false,
            },
        )]);
}

#[test]
fn assignee_supervisor_admin_and_customer_close() {
    let w = World::new();
    let c = ConversationId::new();
    for actor in [
        staff(w.a),
        staff(w.supervisor),
        staff(w.admin),
        Actor::Customer(c),
    ] {
        given(handled(&w, c))
            .when(actor, Command::CloseConversation { conversation: c })
            .then_expect(vec![closed(c)]);
    }
}

#[test]
fn invitees_and_other_customers_cannot_close() {
    let w = World::new();
    let c = ConversationId::new();
    let mut events = handled(&w, c);
    events.push(invited(c, w.b));
    given(events.clone())
        .when(staff(w.b), Command::CloseConversation { conversation: c })
        .then_error(Forbidden);
    given(events)
        .when(
            Actor::Customer(ConversationId::new()),
            Command::CloseConversation { conversation: c },
        )
        .then_error(NotFound);
}

#[test]
fn closed_conversations_are_read_only() {
    let w = World::new();
    let c = ConversationId::new();
    let mut events = handled(&w, c);
    events.push(closed(c));
    for command in [
        assign(c, w.b),
        Command::InviteToRoom {
            conversation: c,
            staff: w.b,
        },
        Command::CloseConversation { conversation: c },
        Command::SendMessage {
            conversation: c,
            message: backchannel_domain::ids::MessageId::new(),
            visibility: backchannel_domain::model::MessageVisibility::Public,
            body: body("still there?"),
        },
    ] {
        given(events.clone())
            .when(staff(w.admin), command)
            .then_error(ConversationClosed);
    }
}

#[test]
fn reopening_returns_to_the_last_assignee() {
    let w = World::new();
    let c = ConversationId::new();
    let mut events = handled(&w, c);
    events.push(closed(c));
    for actor in [w.a, w.supervisor, w.admin] {
        given(events.clone())
            .when(
                staff(actor),
                Command::ReopenConversation { conversation: c },
            )
            .then_expect(vec![Event::ConversationReopened(ConversationReopened {
                conversation: c,
                assignee: Some(w.a),
            })]);
    }
}

#[test]
fn reopening_queues_when_the_last_assignee_is_gone() {
    let w = World::new();
    let c = ConversationId::new();
    let mut events = handled(&w, c);
    events.push(closed(c));
    events.push(Event::StaffDeactivated(StaffDeactivated {
        company: w.acme,
        staff: w.a,
    }));
    given(events)
        .when(
            staff(w.admin),
            Command::ReopenConversation { conversation: c },
        )
        .then_expect(vec![Event::ConversationReopened(ConversationReopened {
            conversation: c,
            assignee: None,
        })]);
}

#[test]
fn reopening_needs_a_closed_conversation_and_the_right_role() {
    let w = World::new();
    let c = ConversationId::new();
    given(handled(&w, c))
        .when(
            staff(w.admin),
            Command::ReopenConversation { conversation: c },
        )
        .then_error(Validation);
    let mut events = handled(&w, c);
    events.push(closed(c));
    // H may read it (R4) but not reopen it.
    given(events)
        .when(staff(w.h), Command::ReopenConversation { conversation: c })
        .then_error(Forbidden);
}
