//! SPEC section 5: who is notified, and that nobody is told customer content.

mod support;

use backchannel_domain::State;
use backchannel_domain::events::*;
use backchannel_domain::ids::{ConversationId, MessageId, StaffId};
use backchannel_domain::model::{Actor, Channel};
use backchannel_domain::notify::{NotificationKind, notifications};
use backchannel_domain::values::Content;
use support::*;

fn recipients(events: &[Event], event: Event, actor: Actor) -> Vec<(StaffId, NotificationKind)> {
    let mut all = events.to_vec();
    all.push(event.clone());
    let state = State::from_events(&all);
    let mut got: Vec<_> = notifications(&state, &event, actor)
        .into_iter()
        .map(|n| (n.recipient, n.kind))
        .collect();
    got.sort();
    got
}

fn sorted(mut v: Vec<(StaffId, NotificationKind)>) -> Vec<(StaffId, NotificationKind)> {
    v.sort();
    v
}

#[test]
fn opening_notifies_every_active_member_and_supervisor_even_when_private() {
    let w = World::new();
    let c = ConversationId::new();
    let got = recipients(
        &w.private_setup(),
        w.opened(c, w.support, Channel::Chat, true),
        Actor::Customer(c),
    );
    // Z is a deactivated member: not notified.
    let expected = [w.a, w.b, w.c, w.h, w.supervisor]
        .into_iter()
        .map(|s| (s, NotificationKind::ConversationOpened))
        .collect();
    assert_eq!(got, sorted(expected));
}

#[test]
fn assignment_notifies_the_assignee_unless_they_took_it_themselves() {
    let w = World::new();
    let c = ConversationId::new();
    let mut events = w.private_setup();
    events.push(w.opened(c, w.support, Channel::Chat, true));
    assert_eq!(
        recipients(&events, assigned(c, w.b, None), staff(w.a)),
        vec![(w.b, NotificationKind::Assigned)]
    );
    assert_eq!(
        recipients(&events, assigned(c, w.a, None), staff(w.a)),
        vec![]
    );
}

#[test]
fn invitation_notifies_the_invitee() {
    let w = World::new();
    let c = ConversationId::new();
    let mut events = w.private_setup();
    events.push(w.opened(c, w.support, Channel::Chat, true));
    events.push(assigned(c, w.a, None));
    assert_eq!(
        recipients(&events, invited(c, w.d), staff(w.a)),
        vec![(w.d, NotificationKind::InvitedToRoom)]
    );
}

#[test]
fn private_messages_notify_the_participants_but_not_the_author() {
    let w = World::new();
    let c = ConversationId::new();
    let mut events = w.private_setup();
    events.push(w.opened(c, w.support, Channel::Chat, true));
    events.push(assigned(c, w.a, None));
    events.push(invited(c, w.d));
    let whisper = Event::PrivateMessagePosted(PrivateMessagePosted {
        conversation: c,
        message: MessageId::new(),
        author: w.supervisor,
        body: Content::Plain(body("Offer the refund")),
    });
    let got = recipients(&events, whisper, staff(w.supervisor));
    assert_eq!(
        got,
        sorted(vec![
            (w.a, NotificationKind::PrivateMessage),
            (w.d, NotificationKind::PrivateMessage)
        ])
    );
}

#[test]
fn public_messages_and_directory_events_notify_nobody() {
    let w = World::new();
    let c = ConversationId::new();
    let mut events = w.setup();
    events.push(w.opened(c, w.support, Channel::Chat, false));
    events.push(assigned(c, w.a, None));
    let message = Event::MessagePosted(MessagePosted {
        conversation: c,
        message: MessageId::new(),
        author: MessageAuthor::Customer,
        body: Content::Plain(body("Hi")),
    });
    assert_eq!(recipients(&events, message, Actor::Customer(c)), vec![]);
    assert_eq!(
        recipients(&events, w.privacy(true, true), staff(w.owner)),
        vec![]
    );
}

#[test]
fn staff_mark_their_own_notifications_read_forward_only() {
    use backchannel_domain::commands::Command;
    let w = World::new();
    let mark = |up_to| Command::MarkNotificationsRead {
        company: w.acme,
        up_to,
    };
    given(w.setup())
        .when(staff(w.a), mark(10))
        .then_expect(vec![Event::NotificationsMarkedRead(
            NotificationsMarkedRead {
                company: w.acme,
                staff: w.a,
                up_to: 10,
            },
        )]);
    let mut events = w.setup();
    events.push(Event::NotificationsMarkedRead(NotificationsMarkedRead {
        company: w.acme,
        staff: w.a,
        up_to: 10,
    }));
    given(events.clone())
        .when(staff(w.a), mark(7))
        .then_expect(vec![]);
    given(events)
        .when(staff(w.x), mark(12))
        .then_error(backchannel_domain::ErrorCode::NotFound);
}
