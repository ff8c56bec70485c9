//! Erasing a conversation (SPEC section 12): who may, and what is refused.

mod support;

use backchannel_domain::DomainError;
use backchannel_domain::ErrorCode::*;
use backchannel_domain::commands::Command;
use backchannel_domain::decide;
use backchannel_domain::events::{ConversationErased, Event};
use backchannel_domain::ids::{ConversationId, MessageId};
use backchannel_domain::model::{Actor, Channel, MessageVisibility};
use backchannel_domain::values::{ErasureReason, MAX_REASON_CHARS};
use support::*;

fn erase(conversation: ConversationId) -> Command {
    Command::EraseConversation {
        conversation,
        reason: ErasureReason::parse("GDPR Article 17 request #42").unwrap_or_else(|e| {
            panic!("a valid reason: {e}");
        }),
    }
}

fn handled(w: &World, c: ConversationId) -> Vec<backchannel_domain::events::Event> {
    let mut events = w.setup();
    events.push(w.opened(c, w.support, Channel::Chat, false));
    events.push(assigned(c, w.a, None));
    events
}

#[test]
fn agents_supervisors_and_the_assignee_may_not_erase() {
    let w = World::new();
    let c = ConversationId::new();
    for actor in [staff(w.a), staff(w.b), staff(w.supervisor)] {
        given(handled(&w, c))
            .when(actor, erase(c))
            .then_error(Forbidden);
    }
    given(handled(&w, c))
        .when(Actor::Customer(c), erase(c))
        .then_error(Forbidden);
}

#[test]
fn another_companys_admin_gets_not_found() {
    let w = World::new();
    let c = ConversationId::new();
    given(handled(&w, c))
        .when(staff(w.x), erase(c))
        .then_error(NotFound);
    given(handled(&w, c))
        .when(staff(w.owner), erase(ConversationId::new()))
        .then_error(NotFound);
}

fn handled_in_clear(w: &World, c: ConversationId) -> Vec<backchannel_domain::events::Event> {
    let mut events = w.setup();
    events.push(w.opened_in_clear(c, w.support, Channel::Chat, false));
    events.push(assigned(c, w.a, None));
    events
}

#[test]
fn a_conversation_stored_in_clear_is_refused_pointing_to_the_migration() {
    let w = World::new();
    let c = ConversationId::new();
    for actor in [staff(w.owner), staff(w.admin)] {
        let state = given(handled_in_clear(&w, c)).state();
        let refused = decide(&state, &erase(c), actor);
        assert_eq!(refused, Err(DomainError::StoredInClear));
        let message = DomainError::StoredInClear.to_string();
        assert!(message.contains("docs/erasure.md"), "{message}");
        assert!(message.contains("re-encrypt"), "{message}");
        given(handled_in_clear(&w, c))
            .when(actor, erase(c))
            .then_error(Validation);
    }
}

#[test]
fn the_owner_and_admins_erase_a_sealed_conversation_recording_who_and_why() {
    let w = World::new();
    let c = ConversationId::new();
    for who in [w.owner, w.admin] {
        given(handled(&w, c))
            .when(staff(who), erase(c))
            .then_expect(vec![Event::ConversationErased(ConversationErased {
                conversation: c,
                erased_by: who,
                reason: ErasureReason::parse("GDPR Article 17 request #42").unwrap(),
            })]);
    }
}

#[test]
fn erasing_an_erased_conversation_changes_nothing() {
    let w = World::new();
    let c = ConversationId::new();
    let mut events = handled(&w, c);
    events.push(Event::ConversationErased(ConversationErased {
        conversation: c,
        erased_by: w.owner,
        reason: ErasureReason::parse("first request").unwrap(),
    }));
    given(events)
        .when(staff(w.admin), erase(c))
        .then_expect(vec![]);
}

#[test]
fn an_erased_conversation_keeps_its_structure_and_takes_no_new_content() {
    let w = World::new();
    let c = ConversationId::new();
    let mut events = handled(&w, c);
    events.push(Event::ConversationErased(ConversationErased {
        conversation: c,
        erased_by: w.owner,
        reason: ErasureReason::parse("GDPR").unwrap(),
    }));
    let state = given(events.clone()).state();
    let conversation = &state.conversations[&c];
    assert!(conversation.is_erased());
    assert_eq!(conversation.assignee, Some(w.a), "the structure stays");
    for (actor, visibility) in [
        (staff(w.a), MessageVisibility::Public),
        (staff(w.a), MessageVisibility::Private),
        (Actor::Customer(c), MessageVisibility::Public),
    ] {
        given(events.clone())
            .when(
                actor,
                Command::SendMessage {
                    conversation: c,
                    message: MessageId::new(),
                    visibility,
                    body: body("anything"),
                },
            )
            .then_error(Erased);
    }
    // Its lifecycle goes on.
    given(events)
        .when(staff(w.a), Command::CloseConversation { conversation: c })
        .then_expect(vec![closed(c)]);
}

#[test]
fn a_reason_is_required_and_bounded() {
    assert!(ErasureReason::parse("   ").is_err());
    assert!(ErasureReason::parse(&"r".repeat(MAX_REASON_CHARS + 1)).is_err());
    assert_eq!(
        ErasureReason::parse(&format!("  {}  ", "r".repeat(MAX_REASON_CHARS)))
            .map(|r| r.as_str().len()),
        Ok(MAX_REASON_CHARS)
    );
}
