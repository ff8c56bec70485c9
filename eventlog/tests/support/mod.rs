//! Builders shared by the integration tests: real domain events with real ids.
#![allow(dead_code, unreachable_pub)]

use backchannel_domain::events::{
    ConversationOpened, Event, MessageAuthor, MessagePosted, StreamId,
};
use backchannel_domain::ids::{
    CommandId, CompanyId, ConversationId, CorrelationId, GroupId, MessageId,
};
use backchannel_domain::model::{Actor, Channel};
use backchannel_domain::values::{Content, MessageBody, Name};
use backchannel_eventlog::AppendMeta;

pub fn meta() -> AppendMeta {
    meta_for(CommandId::new())
}

pub fn meta_for(command_id: CommandId) -> AppendMeta {
    AppendMeta {
        command_id,
        correlation_id: CorrelationId::new(),
        actor: Actor::System,
    }
}

/// A conversation id derived from a number, so a test can rebuild it.
pub fn conversation(n: u64) -> ConversationId {
    let mut bytes = [0u8; 16];
    bytes[0] = 0x01;
    bytes[6] = 0x70;
    bytes[8] = 0x80;
    bytes[8..16].copy_from_slice(&(n | 0x8000_0000_0000_0000).to_be_bytes());
    ConversationId::from_bytes(bytes)
}

pub fn stream(n: u64) -> StreamId {
    StreamId::Conversation(conversation(n))
}

pub fn opened(conversation: ConversationId) -> Event {
    Event::ConversationOpened(ConversationOpened {
        company: CompanyId::from_bytes([1; 16]),
        conversation,
        group: GroupId::from_bytes([2; 16]),
        channel: Channel::Chat,
        customer: Content::Legacy(Name::parse("Carla Customer").unwrap()),
        private: false,
    })
}

/// A public message whose id and body are derived from `(conversation, n)`.
pub fn message(conversation: ConversationId, n: u64) -> Event {
    let mut id = *conversation.as_bytes();
    id[..8].copy_from_slice(&n.to_be_bytes());
    Event::MessagePosted(MessagePosted {
        conversation,
        message: MessageId::from_bytes(id),
        author: MessageAuthor::Customer,
        body: Content::Legacy(
            MessageBody::parse(&format!("message {n} in {conversation}")).unwrap(),
        ),
    })
}
