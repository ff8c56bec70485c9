//! Erasing a conversation (SPEC section 12): who may, and what is refused.

mod support;

use backchannel_domain::DomainError;
use backchannel_domain::ErrorCode::*;
use backchannel_domain::commands::Command;
use backchannel_domain::decide;
use backchannel_domain::ids::ConversationId;
use backchannel_domain::model::{Actor, Channel};
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

#[test]
fn a_conversation_stored_in_clear_is_refused_pointing_to_the_migration() {
    let w = World::new();
    let c = ConversationId::new();
    for actor in [staff(w.owner), staff(w.admin)] {
        let state = given(handled(&w, c)).state();
        let refused = decide(&state, &erase(c), actor);
        assert_eq!(refused, Err(DomainError::StoredInClear));
        let message = DomainError::StoredInClear.to_string();
        assert!(message.contains("docs/erasure.md"), "{message}");
        assert!(message.contains("re-encrypt"), "{message}");
        given(handled(&w, c))
            .when(actor, erase(c))
            .then_error(Validation);
    }
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
