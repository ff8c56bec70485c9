//! One summary per conversation — what a list row or a header shows — and the
//! indexes that let a page of a viewer's list cost O(page size).
//!
//! A summary is composed when it is read: most of it (company, group, channel,
//! customer, privacy flag, status, the room) is the domain state's
//! [`Conversation`], which `ReadModels` keeps anyway. This model stores only
//! what the state does not know, the conversation's `Activity` (times and
//! messages), so nothing is held twice: at 100k conversations the second copy
//! of the state's fields cost ~190 bytes a conversation.
//!
//! Indexes are sets of conversation ids (UUIDv7, so ordered by opening time).
//! They only narrow down *candidates*; whether the viewer may see one is decided
//! by the visibility policy in `listing`.

use std::collections::{BTreeSet, HashMap};
use std::num::NonZeroU64;

use backchannel_domain::State;
use backchannel_domain::events::{Event, StreamId};
use backchannel_domain::ids::{CompanyId, ConversationId, GroupId, StaffId};
use backchannel_domain::model::{Channel, ConversationStatus};
use backchannel_domain::state::Conversation;
use backchannel_domain::values::{Content, Name};
use backchannel_domain::visibility::Rule;
use backchannel_eventlog::{RecordedAt, RecordedEvent};

/// What staff see of a conversation in lists and headers: the state's
/// conversation and its activity, composed when read, for one viewer the
/// visibility policy granted it to (with the rule that did).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationSummary {
    pub id: ConversationId,
    pub company: CompanyId,
    pub group: GroupId,
    pub channel: Channel,
    pub customer: Content<Name>,
    /// The conversation's own privacy flag (effective privacy also needs the
    /// company switch: `State::is_effectively_private`).
    pub private: bool,
    pub status: ConversationStatus,
    pub assignee: Option<StaffId>,
    /// The staff invited into the room (the assignee is a participant anyway),
    /// in the state's order: by staff id.
    pub invited: Vec<StaffId>,
    pub opened_at: RecordedAt,
    pub updated_at: RecordedAt,
    pub closed_at: Option<RecordedAt>,
    pub public_messages: u32,
    pub private_messages: u32,
    /// Global position of the last public message (its body lives in the log).
    pub last_public_message: Option<u64>,
    /// Global position of the last message, public or private: staff only.
    pub last_message: Option<u64>,
    /// The rule of SPEC section 3 that granted it to the viewer it was
    /// composed for (a summary is only ever composed after the policy's yes).
    pub rule: Rule,
    /// Private in effect: its flag and the company's switch.
    pub effectively_private: bool,
}

impl ConversationSummary {
    /// The summary of `conversation`, as the state has it, with its activity,
    /// for a viewer the policy granted it to by `rule`.
    pub(crate) fn new(
        state: &State,
        conversation: &Conversation,
        activity: &Activity,
        rule: Rule,
    ) -> Self {
        ConversationSummary {
            id: conversation.id,
            company: conversation.company,
            group: conversation.group,
            channel: conversation.channel,
            customer: conversation.customer.clone(),
            private: conversation.private,
            status: conversation.status,
            assignee: conversation.assignee,
            invited: conversation.invited.iter().copied().collect(),
            opened_at: activity.opened_at,
            updated_at: activity.updated_at,
            closed_at: activity.closed_at,
            public_messages: activity.public_messages,
            private_messages: activity.private_messages,
            last_public_message: activity.last_public_message.map(NonZeroU64::get),
            last_message: activity.last_message.map(NonZeroU64::get),
            rule,
            effectively_private: state.is_effectively_private(conversation),
        }
    }

    /// The assignee, then the invitees (by staff id, as the state keeps
    /// them), without duplicates. A transfer hands the room over: the previous
    /// assignee leaves it unless they were also invited (as `State` has it).
    pub fn participants(&self) -> Vec<StaffId> {
        participants(self.assignee, self.invited.iter())
    }
}

/// What a conversation's summary holds beyond the domain state: when things
/// happened, and its messages. Everything else is read from the state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Activity {
    pub(crate) opened_at: RecordedAt,
    pub(crate) updated_at: RecordedAt,
    pub(crate) closed_at: Option<RecordedAt>,
    pub(crate) public_messages: u32,
    pub(crate) private_messages: u32,
    /// Global position of the last public message. Positions start at 1, so
    /// `NonZeroU64` makes the `Option` cost no more than the number (8 bytes
    /// instead of 16, per conversation).
    pub(crate) last_public_message: Option<NonZeroU64>,
    /// Global position of the last message, public or private.
    pub(crate) last_message: Option<NonZeroU64>,
}

impl Activity {
    fn opened(at: RecordedAt) -> Self {
        Activity {
            opened_at: at,
            updated_at: at,
            closed_at: None,
            public_messages: 0,
            private_messages: 0,
            last_public_message: None,
            last_message: None,
        }
    }
}

/// Where a conversation sits in the group index.
pub(crate) type GroupKey = (GroupId, ConversationStatus, bool);

/// Every index entry of one conversation. All of it comes from the state, so
/// `ReadModels::apply` takes it before and after the state applies an event,
/// and [`Conversations::apply`] moves the conversation from one to the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placement {
    company: CompanyId,
    group: GroupKey,
    participants: Vec<StaffId>,
}

impl Placement {
    /// Where the conversation `event` is about sits now, if it exists.
    pub(crate) fn of(state: &State, event: &Event) -> Option<Self> {
        let conversation = state.conversations.get(&conversation_of(event)?)?;
        Some(Placement {
            company: conversation.company,
            group: (
                conversation.group,
                conversation.status,
                conversation.private,
            ),
            participants: participants(conversation.assignee, conversation.invited.iter()),
        })
    }
}

/// The activity of every conversation, and the indexes. Every id in them is a
/// conversation of the state: both add one at `ConversationOpened` and never
/// remove it.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Conversations {
    pub(crate) by_id: HashMap<ConversationId, Activity>,
    pub(crate) by_company: HashMap<CompanyId, BTreeSet<ConversationId>>,
    /// (group, status, own privacy flag) → conversations.
    pub(crate) by_group: HashMap<GroupKey, BTreeSet<ConversationId>>,
    /// Staff → conversations they take part in (assignee or invited).
    pub(crate) by_participant: HashMap<StaffId, BTreeSet<ConversationId>>,
}

pub(crate) static EMPTY: BTreeSet<ConversationId> = BTreeSet::new();

impl Conversations {
    pub(crate) fn activity(&self, id: ConversationId) -> Option<&Activity> {
        self.by_id.get(&id)
    }

    pub(crate) fn group_set(&self, key: GroupKey) -> &BTreeSet<ConversationId> {
        self.by_group.get(&key).unwrap_or(&EMPTY)
    }

    pub(crate) fn company_set(&self, company: CompanyId) -> &BTreeSet<ConversationId> {
        self.by_company.get(&company).unwrap_or(&EMPTY)
    }

    pub(crate) fn participant_set(&self, staff: StaffId) -> &BTreeSet<ConversationId> {
        self.by_participant.get(&staff).unwrap_or(&EMPTY)
    }

    /// Applies `recorded` once the state has: `before` is the conversation's
    /// [`Placement`] in the state before the event, `state` the state after it.
    pub(crate) fn apply(
        &mut self,
        recorded: &RecordedEvent,
        before: Option<Placement>,
        state: &State,
    ) {
        let Some(id) = conversation_of(&recorded.event) else {
            return;
        };
        self.record_activity(id, recorded);
        self.reindex(id, before, Placement::of(state, &recorded.event));
    }

    fn record_activity(&mut self, id: ConversationId, recorded: &RecordedEvent) {
        let at = recorded.envelope.recorded_at;
        // `ReadModels::apply` takes positions from 1 on; 0 would mean "none".
        let position = NonZeroU64::new(recorded.envelope.position);
        if let Event::ConversationOpened(_) = &recorded.event {
            self.by_id.insert(id, Activity::opened(at));
            return;
        }
        let Some(activity) = self.by_id.get_mut(&id) else {
            return;
        };
        activity.updated_at = at;
        match &recorded.event {
            Event::MessagePosted(_) => {
                activity.public_messages += 1;
                activity.last_public_message = position;
                activity.last_message = position;
            }
            Event::PrivateMessagePosted(_) => {
                activity.private_messages += 1;
                activity.last_message = position;
            }
            Event::ConversationClosed(_) => activity.closed_at = Some(at),
            Event::ConversationReopened(_) => activity.closed_at = None,
            _ => {}
        }
    }

    /// Moves `id` from the index entries of `before` to those of `after`.
    fn reindex(&mut self, id: ConversationId, before: Option<Placement>, after: Option<Placement>) {
        if before == after {
            return;
        }
        if let Some(old) = &before {
            if after.as_ref().is_none_or(|new| new.company != old.company) {
                remove(&mut self.by_company, &old.company, id);
            }
            if after.as_ref().is_none_or(|new| new.group != old.group) {
                remove(&mut self.by_group, &old.group, id);
            }
            for staff in &old.participants {
                if after
                    .as_ref()
                    .is_none_or(|new| !new.participants.contains(staff))
                {
                    remove(&mut self.by_participant, staff, id);
                }
            }
        }
        if let Some(new) = after {
            self.by_company.entry(new.company).or_default().insert(id);
            self.by_group.entry(new.group).or_default().insert(id);
            for staff in new.participants {
                self.by_participant.entry(staff).or_default().insert(id);
            }
        }
    }
}

fn remove<K: std::hash::Hash + Eq>(
    index: &mut HashMap<K, BTreeSet<ConversationId>>,
    key: &K,
    id: ConversationId,
) {
    if let Some(set) = index.get_mut(key) {
        set.remove(&id);
    }
}

/// The assignee, then the invitees other than the assignee.
fn participants<'a>(
    assignee: Option<StaffId>,
    invited: impl Iterator<Item = &'a StaffId>,
) -> Vec<StaffId> {
    let mut all: Vec<StaffId> = assignee.into_iter().collect();
    all.extend(invited.filter(|s| Some(**s) != assignee));
    all
}

/// The conversation an event is about: the one whose stream it is on.
fn conversation_of(event: &Event) -> Option<ConversationId> {
    match event.stream() {
        StreamId::Conversation(id) => Some(id),
        StreamId::Company(_) | StreamId::ReadAudit(_) => None,
    }
}

#[cfg(test)]
mod tests {
    //! The list tests compare pages with the policy, which hides a stale index
    //! entry; these check the indexes themselves against the state.

    use super::*;
    use crate::ReadModels;
    use backchannel_domain::events::ConversationOpened;
    use backchannel_domain::events::{
        ConversationAssigned, ConversationClosed, ConversationPrivacyChanged, ConversationReopened,
        MessageAuthor, MessagePosted, PrivateMessagePosted, StaffInvitedToRoom,
    };
    use backchannel_domain::ids::{CommandId, CorrelationId, EventId, MessageId};
    use backchannel_domain::model::Actor;
    use backchannel_domain::values::MessageBody;
    use backchannel_eventlog::Envelope;

    type Index<K> = HashMap<K, BTreeSet<ConversationId>>;

    fn recorded(position: u64, event: Event) -> RecordedEvent {
        RecordedEvent {
            envelope: Envelope {
                position,
                stream: event.stream(),
                stream_version: 1,
                event_id: EventId::new(),
                event_type: event.event_type(),
                schema_version: 1,
                codec_version: 1,
                recorded_at: RecordedAt::from_micros(position as i64),
                actor: Actor::System,
                command_id: CommandId::new(),
                correlation_id: CorrelationId::new(),
                prev_hash: [0; 32],
            },
            event,
        }
    }

    fn non_empty<K: std::hash::Hash + Eq + Clone>(index: &Index<K>) -> Index<K> {
        index
            .iter()
            .filter(|(_, set)| !set.is_empty())
            .map(|(k, set)| (k.clone(), set.clone()))
            .collect()
    }

    /// The indexes hold exactly what the state says, and every conversation
    /// of the state has its activity.
    fn check(models: &ReadModels) {
        let state = models.state();
        let (mut company, mut group, mut participant) =
            (Index::default(), Index::default(), Index::default());
        for c in state.conversations.values() {
            company.entry(c.company).or_default().insert(c.id);
            group
                .entry((c.group, c.status, c.private))
                .or_default()
                .insert(c.id);
            for staff in c.assignee.iter().chain(&c.invited) {
                participant.entry(*staff).or_default().insert(c.id);
            }
        }
        let index = &models.conversations;
        assert_eq!(non_empty(&index.by_company), company);
        assert_eq!(non_empty(&index.by_group), group);
        assert_eq!(non_empty(&index.by_participant), participant);
        assert!(
            state
                .conversations
                .keys()
                .all(|id| index.by_id.contains_key(id))
                && index.by_id.len() == state.conversations.len()
        );
    }

    fn opened(company: CompanyId, conversation: ConversationId, group: GroupId) -> Event {
        Event::ConversationOpened(ConversationOpened {
            company,
            conversation,
            group,
            channel: Channel::Chat,
            customer: Content::Plain(Name::parse("Carla").unwrap()),
            private: false,
        })
    }

    fn assigned(conversation: ConversationId, assignee: StaffId) -> Event {
        Event::ConversationAssigned(ConversationAssigned {
            conversation,
            assignee,
            previous_assignee: None,
            round_robin: false,
        })
    }

    fn invited(conversation: ConversationId, staff: StaffId) -> Event {
        Event::StaffInvitedToRoom(StaffInvitedToRoom {
            conversation,
            staff,
        })
    }

    #[test]
    fn indexes_follow_the_state_through_transfers_privacy_closing_and_a_bad_log() {
        let (co, other_co) = (CompanyId::new(), CompanyId::new());
        let (g, other_g) = (GroupId::new(), GroupId::new());
        let (c1, c2, unknown) = (
            ConversationId::new(),
            ConversationId::new(),
            ConversationId::new(),
        );
        let (s1, s2, s3) = (StaffId::new(), StaffId::new(), StaffId::new());
        let body = MessageBody::parse("hi").unwrap();
        let events = [
            opened(co, c1, g),
            opened(co, c2, g),
            Event::MessagePosted(MessagePosted {
                conversation: c1,
                message: MessageId::new(),
                author: MessageAuthor::Customer,
                body: Content::Plain(body.clone()),
            }),
            assigned(c1, s1),
            invited(c1, s2),
            invited(c1, s1),
            // A transfer to an invitee: s1 stays, as an invitee.
            assigned(c1, s2),
            assigned(c2, s3),
            // A transfer: s3 leaves the room.
            assigned(c2, s1),
            Event::ConversationPrivacyChanged(ConversationPrivacyChanged {
                conversation: c1,
                private: true,
            }),
            Event::PrivateMessagePosted(PrivateMessagePosted {
                conversation: c1,
                message: MessageId::new(),
                author: s2,
                body: Content::Plain(body),
            }),
            Event::ConversationClosed(ConversationClosed { conversation: c1 }),
            Event::ConversationReopened(ConversationReopened {
                conversation: c1,
                assignee: None,
            }),
            // What a valid log never holds: skipped or moved, never stale.
            assigned(unknown, s3),
            opened(other_co, c2, other_g),
        ];
        let mut models = ReadModels::new();
        for (i, event) in events.into_iter().enumerate() {
            models.apply(&recorded(i as u64 + 1, event)).unwrap();
            check(&models);
        }
        let activity = models.conversations.activity(c1).unwrap();
        assert_eq!(
            (activity.public_messages, activity.private_messages),
            (1, 1)
        );
        assert_eq!(activity.last_public_message.map(NonZeroU64::get), Some(3));
        assert_eq!(activity.last_message.map(NonZeroU64::get), Some(11));
        assert_eq!(activity.closed_at, None);
        assert_eq!(models.state().conversations[&c1].invited.len(), 2);
    }
}
