//! Sealing and opening the customer data of events with a conversation's
//! key: what [`KeyStore::seal`] and [`KeyStore::open`] do to each event.

use std::collections::HashMap;

use backchannel_domain::events::{Event, MessagePosted, PrivateMessagePosted};
use backchannel_domain::ids::ConversationId;
use backchannel_domain::values::{Content, MessageBody, Name, SealedValue};

use super::{KeyState, KeyStore, KeyStoreError};
use crate::crypt::DataKey;
use crate::error::StorageError;

pub(super) fn read_only() -> KeyStoreError {
    KeyStoreError::Storage(StorageError::new(std::io::Error::other(
        "a key bundle is read-only",
    )))
}

pub(super) fn bundled(
    keys: &HashMap<ConversationId, Option<DataKey>>,
    c: ConversationId,
) -> KeyState {
    match keys.get(&c) {
        Some(Some(key)) => KeyState::Live(key.clone()),
        Some(None) => KeyState::Destroyed,
        None => KeyState::Absent,
    }
}

pub(super) async fn seal_content<T: AsRef<str>>(
    keys: &KeyStore,
    conversation: ConversationId,
    event_type: &str,
    content: &mut Content<T>,
) -> Result<(), KeyStoreError> {
    let Content::Plain(plain) = content else {
        return Ok(());
    };
    let key = keys.create(conversation).await?;
    let sealed = key.seal(conversation, event_type, plain.as_ref().as_bytes())?;
    *content = Content::Sealed(SealedValue::new(sealed));
    Ok(())
}

/// The conversation whose key `event` needs opened, if it holds sealed
/// content.
pub(super) fn sealed_conversation(event: &Event) -> Option<ConversationId> {
    match event {
        Event::ConversationOpened(e) => {
            matches!(e.customer, Content::Sealed(_)).then_some(e.conversation)
        }
        Event::MessagePosted(e) => matches!(e.body, Content::Sealed(_)).then_some(e.conversation),
        Event::PrivateMessagePosted(e) => {
            matches!(e.body, Content::Sealed(_)).then_some(e.conversation)
        }
        _ => None,
    }
}

pub(super) fn open_with(event: &mut Event, state: &KeyState) {
    let event_type = event.event_type().name();
    match event {
        Event::ConversationOpened(e) => {
            open_content(
                state,
                e.conversation,
                event_type,
                &mut e.customer,
                Name::from_stored,
            );
        }
        Event::MessagePosted(MessagePosted {
            conversation, body, ..
        })
        | Event::PrivateMessagePosted(PrivateMessagePosted {
            conversation, body, ..
        }) => {
            open_content(
                state,
                *conversation,
                event_type,
                body,
                MessageBody::from_stored,
            );
        }
        _ => {}
    }
}

pub(super) fn open_content<T>(
    state: &KeyState,
    conversation: ConversationId,
    event_type: &str,
    content: &mut Content<T>,
    make: fn(String) -> T,
) {
    let Content::Sealed(sealed) = content else {
        return;
    };
    match state {
        KeyState::Destroyed => *content = Content::Erased,
        KeyState::Absent => {}
        KeyState::Live(key) => {
            // A value that does not open under its conversation's key (moved
            // from another record, or altered) stays sealed: it is shown as
            // such, never as someone else's text.
            if let Ok(plain) = key.open(conversation, event_type, sealed.as_bytes())
                && let Ok(text) = String::from_utf8(plain)
            {
                *content = Content::Plain(make(text));
            }
        }
    }
}
