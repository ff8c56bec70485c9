//! The staff timeline of each conversation: the global positions of all its
//! events (public and private messages and system events), in order. Bodies
//! stay in the log; a timeline page reads them by position. Who may read a
//! timeline is decided by the visibility policy in `ReadModels::timeline`.

use std::collections::HashMap;

use backchannel_domain::events::StreamId;
use backchannel_domain::ids::ConversationId;
use backchannel_eventlog::RecordedEvent;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Timelines {
    by_conversation: HashMap<ConversationId, Vec<u64>>,
}

impl Timelines {
    pub(crate) fn apply(&mut self, recorded: &RecordedEvent) {
        if let StreamId::Conversation(id) = recorded.envelope.stream {
            self.by_conversation
                .entry(id)
                .or_default()
                .push(recorded.envelope.position);
        }
    }

    pub(crate) fn positions(&self, id: ConversationId) -> &[u64] {
        self.by_conversation.get(&id).map_or(&[], Vec::as_slice)
    }
}
