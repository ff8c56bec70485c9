#![allow(clippy::unwrap_used)]
//! The customer read model never holds a private message or staff-only fact.

mod support;

use backchannel_domain::commands::Command;
use backchannel_domain::events::Event;
use backchannel_domain::model::{Actor, Channel, ConversationStatus, MessageVisibility};
use backchannel_projections::customer::{CustomerAuthor, CustomerEvent, customer_event};
use support::Desk;

#[test]
fn the_customer_sees_public_messages_and_the_lifecycle_only() {
    let mut desk = Desk::new();
    let c = desk.open(desk.support, Channel::Chat);
    desk.assign(desk.a, c, desk.a);
    let whisper = desk.say(
        Actor::Staff(desk.supervisor),
        c,
        MessageVisibility::Private,
        "secret",
    );
    let admin = desk.admin;
    desk.run(
        Actor::Staff(admin),
        Command::InviteToRoom {
            conversation: c,
            staff: desk.b,
        },
    );
    let reply = desk.say(Actor::Staff(desk.a), c, MessageVisibility::Public, "On it");
    desk.run(
        Actor::Customer(c),
        Command::CloseConversation { conversation: c },
    );

    let view = desk.models.customer_conversation(c).unwrap();
    assert_eq!(view.status, ConversationStatus::Closed);
    assert!(!view.positions.contains(&whisper));
    assert!(view.positions.contains(&reply));
    let seen: Vec<CustomerEvent> = view
        .positions
        .iter()
        .map(|p| {
            let recorded = &desk.log[(*p - 1) as usize];
            assert!(!matches!(
                recorded.event,
                Event::PrivateMessagePosted(_) | Event::StaffInvitedToRoom(_)
            ));
            customer_event(desk.models.state(), &recorded.event).unwrap()
        })
        .collect();
    assert!(matches!(seen[0], CustomerEvent::Opened { .. }));
    assert!(seen.iter().any(|e| matches!(
        e,
        CustomerEvent::Message { author: CustomerAuthor::Staff { name }, .. } if name.as_str() == "Ann"
    )));
    assert!(matches!(seen.last(), Some(CustomerEvent::Closed { .. })));
}

#[test]
fn no_private_or_staff_only_event_has_a_customer_view() {
    let state = backchannel_domain::State::default();
    for event in backchannel_domain::samples::one_of_each() {
        let visible = customer_event(&state, &event).is_some();
        let expected = matches!(
            event,
            Event::ConversationOpened(_)
                | Event::ConversationAssigned(_)
                | Event::ConversationClosed(_)
                | Event::ConversationReopened(_)
        );
        // MessagePosted by the customer is visible too (no staff name needed).
        let expected = expected
            || matches!(&event, Event::MessagePosted(m) if m.author == backchannel_domain::events::MessageAuthor::Customer);
        assert_eq!(visible, expected, "{:?}", event.event_type());
    }
}
