//! SPEC section 4, public and private messages. Given/when/then.

mod support;

use backchannel_domain::ErrorCode::*;
use backchannel_domain::commands::Command;
use backchannel_domain::events::*;
use backchannel_domain::ids::{ConversationId, MessageId};
use backchannel_domain::model::{Actor, Channel, MessageVisibility};
use backchannel_domain::values::Content;
use support::*;

fn handled_in(w: &World, c: ConversationId, channel: Channel) -> Vec<Event> {
    let mut events = w.private_setup();
    events.push(w.opened(c, w.support, channel, true));
    events.push(assigned(c, w.a, None));
    events
}

fn send(c: ConversationId, m: MessageId, visibility: MessageVisibility) -> Command {
    Command::SendMessage {
        conversation: c,
        message: m,
        visibility,
        body: body("Hello there"),
    }
}

#[test]
fn the_customer_posts_public_messages_in_their_own_conversation() {
    let w = World::new();
    let (c, m) = (ConversationId::new(), MessageId::new());
    given(handled_in(&w, c, Channel::Chat))
        .when(Actor::Customer(c), send(c, m, MessageVisibility::Public))
        .then_expect(vec![Event::MessagePosted(MessagePosted {
            conversation: c,
            message: m,
            author: MessageAuthor::Customer,
            body: Content::Plain(body("Hello there")),
        })]);
}

#[test]
fn a_customer_cannot_reach_another_conversation() {
    let w = World::new();
    let (c, m) = (ConversationId::new(), MessageId::new());
    given(handled_in(&w, c, Channel::Chat))
        .when(
            Actor::Customer(ConversationId::new()),
            send(c, m, MessageVisibility::Public),
        )
        .then_error(NotFound);
}

#[test]
fn customers_cannot_post_private_messages() {
    let w = World::new();
    let (c, m) = (ConversationId::new(), MessageId::new());
    given(handled_in(&w, c, Channel::Chat))
        .when(Actor::Customer(c), send(c, m, MessageVisibility::Private))
        .then_error(Forbidden);
}

#[test]
fn participants_post_public_messages() {
    let w = World::new();
    let (c, m) = (ConversationId::new(), MessageId::new());
    let mut events = handled_in(&w, c, Channel::Chat);
    events.push(invited(c, w.d));
    for author in [w.a, w.d] {
        given(events.clone())
            .when(staff(author), send(c, m, MessageVisibility::Public))
            .then_expect(vec![Event::MessagePosted(MessagePosted {
                conversation: c,
                message: m,
                author: MessageAuthor::Staff(author),
                body: Content::Plain(body("Hello there")),
            })]);
    }
}

#[test]
fn only_participants_post_public_messages() {
    let w = World::new();
    let (c, m) = (ConversationId::new(), MessageId::new());
    for actor in [w.admin, w.supervisor] {
        given(handled_in(&w, c, Channel::Chat))
            .when(staff(actor), send(c, m, MessageVisibility::Public))
            .then_error(Forbidden);
    }
}

#[test]
fn private_messages_are_their_own_event_type() {
    let w = World::new();
    let (c, m) = (ConversationId::new(), MessageId::new());
    given(handled_in(&w, c, Channel::Chat))
        .when(staff(w.a), send(c, m, MessageVisibility::Private))
        .then_expect(vec![Event::PrivateMessagePosted(PrivateMessagePosted {
            conversation: c,
            message: m,
            author: w.a,
            body: Content::Plain(body("Hello there")),
        })]);
}

#[test]
fn owner_admin_and_supervisor_whisper_without_joining() {
    let w = World::new();
    let (c, m) = (ConversationId::new(), MessageId::new());
    for actor in [w.owner, w.admin, w.supervisor] {
        let events = given(handled_in(&w, c, Channel::Social))
            .when(staff(actor), send(c, m, MessageVisibility::Private))
            .events();
        assert_eq!(events.len(), 1);
        assert!(matches!(&events[0], Event::PrivateMessagePosted(p) if p.author == actor));
    }
}

#[test]
fn members_who_are_not_participants_cannot_whisper() {
    let w = World::new();
    let (c, m) = (ConversationId::new(), MessageId::new());
    let mut events = w.setup();
    events.push(w.opened(c, w.support, Channel::Chat, false));
    events.push(assigned(c, w.a, None));
    // B sees the public conversation (R5) but is not in the room.
    given(events)
        .when(staff(w.b), send(c, m, MessageVisibility::Private))
        .then_error(Forbidden);
}

#[test]
fn private_messages_unsupported_in_email_and_call_conversations() {
    let w = World::new();
    let (c, m) = (ConversationId::new(), MessageId::new());
    for channel in [Channel::Email, Channel::Call] {
        for actor in [w.a, w.admin] {
            given(handled_in(&w, c, channel))
                .when(staff(actor), send(c, m, MessageVisibility::Private))
                .then_error(PrivateMessagesUnsupported);
        }
        // Public messages still work there.
        given(handled_in(&w, c, channel))
            .when(staff(w.a), send(c, m, MessageVisibility::Public))
            .events();
    }
}

#[test]
fn closed_conversations_take_no_messages() {
    let w = World::new();
    let (c, m) = (ConversationId::new(), MessageId::new());
    let mut events = handled_in(&w, c, Channel::Chat);
    events.push(closed(c));
    given(events.clone())
        .when(Actor::Customer(c), send(c, m, MessageVisibility::Public))
        .then_error(ConversationClosed);
    given(events)
        .when(staff(w.a), send(c, m, MessageVisibility::Private))
        .then_error(ConversationClosed);
}

#[test]
fn agents_who_cannot_view_get_restricted_access_not_a_hint() {
    let w = World::new();
    let (c, m) = (ConversationId::new(), MessageId::new());
    given(handled_in(&w, c, Channel::Chat))
        .when(staff(w.b), send(c, m, MessageVisibility::Private))
        .then_error(RestrictedAccess);
    given(handled_in(&w, c, Channel::Chat))
        .when(staff(w.x), send(c, m, MessageVisibility::Private))
        .then_error(NotFound);
}
