//! One summary per conversation — what a list row or a header shows — and the
//! indexes that let a page of a viewer's list cost O(page size).
//!
//! Indexes are sets of conversation ids (UUIDv7, so ordered by opening time).
//! They only narrow down *candidates*; whether the viewer may see one is decided
//! by the visibility policy in `listing`.

use std::collections::{BTreeSet, HashMap};

use backchannel_domain::events::Event;
use backchannel_domain::ids::{CompanyId, ConversationId, GroupId, StaffId};
use backchannel_domain::model::{Channel, ConversationStatus};
use backchannel_domain::values::Name;
use backchannel_eventlog::{RecordedAt, RecordedEvent};

/// What staff see of a conversation in lists and headers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConversationSummary {
    pub id: ConversationId,
    pub company: CompanyId,
    pub group: GroupId,
    pub channel: Channel,
    pub customer: Name,
    /// The conversation's own privacy flag (effective privacy also needs the
    /// company switch: `State::is_effectively_private`).
    pub private: bool,
    pub status: ConversationStatus,
    pub assignee: Option<StaffId>,
    /// The staff invited into the room (the assignee is a participant anyway).
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
}

/// Where a conversation sits in the group index.
pub(crate) type GroupKey = (GroupId, ConversationStatus, bool);

#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Conversations {
    pub(crate) by_id: HashMap<ConversationId, ConversationSummary>,
    pub(crate) by_company: HashMap<CompanyId, BTreeSet<ConversationId>>,
    /// (group, status, own privacy flag) → conversations.
    pub(crate) by_group: HashMap<GroupKey, BTreeSet<ConversationId>>,
    /// Staff → conversations they take part in (assignee or invited).
    pub(crate) by_participant: HashMap<StaffId, BTreeSet<ConversationId>>,
}

pub(crate) static EMPTY: BTreeSet<ConversationId> = BTreeSet::new();

impl Conversations {
    pub fn get(&self, id: ConversationId) -> Option<&ConversationSummary> {
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

    pub(crate) fn apply(&mut self, recorded: &RecordedEvent) {
        let at = recorded.envelope.recorded_at;
        let position = recorded.envelope.position;
        if let Event::ConversationOpened(e) = &recorded.event {
            let summary = ConversationSummary {
                id: e.conversation,
                company: e.company,
                group: e.group,
                channel: e.channel,
                customer: e.customer.clone(),
                private: e.private,
                status: ConversationStatus::Queued,
                assignee: None,
                invited: Vec::new(),
                opened_at: at,
                updated_at: at,
                closed_at: None,
                public_messages: 0,
                private_messages: 0,
                last_public_message: None,
                last_message: None,
            };
            self.by_company
                .entry(e.company)
                .or_default()
                .insert(e.conversation);
            self.by_group
                .entry(key_of(&summary))
                .or_default()
                .insert(e.conversation);
            self.by_id.insert(e.conversation, summary);
            return;
        }
        let Some(id) = conversation_of(&recorded.event) else {
            return;
        };
        let Some(summary) = self.by_id.get_mut(&id) else {
            return;
        };
        let old_key = key_of(summary);
        let old_participants = summary.participants();
        summary.updated_at = at;
        match &recorded.event {
            Event::ConversationAssigned(e) => {
                summary.status = ConversationStatus::Handling;
                summary.assignee = Some(e.assignee);
            }
            Event::StaffInvitedToRoom(e) if !summary.invited.contains(&e.staff) => {
                summary.invited.push(e.staff);
            }
            Event::ConversationPrivacyChanged(e) => summary.private = e.private,
            Event::MessagePosted(_) => {
                summary.public_messages += 1;
                summary.last_public_message = Some(position);
                summary.last_message = Some(position);
            }
            Event::PrivateMessagePosted(_) => {
                summary.private_messages += 1;
                summary.last_message = Some(position);
            }
            Event::ConversationClosed(_) => {
                summary.status = ConversationStatus::Closed;
                summary.closed_at = Some(at);
            }
            Event::ConversationReopened(e) => {
                summary.status = match e.assignee {
                    Some(_) => ConversationStatus::Handling,
                    None => ConversationStatus::Queued,
                };
                summary.closed_at = None;
                summary.assignee = e.assignee;
            }
            _ => {}
        }
        let new_key = key_of(summary);
        let new_participants = summary.participants();
        if new_key != old_key {
            if let Some(set) = self.by_group.get_mut(&old_key) {
                set.remove(&id);
            }
            self.by_group.entry(new_key).or_default().insert(id);
        }
        for gone in old_participants
            .iter()
            .filter(|s| !new_participants.contains(s))
        {
            if let Some(set) = self.by_participant.get_mut(gone) {
                set.remove(&id);
            }
        }
        for came in new_participants
            .iter()
            .filter(|s| !old_participants.contains(s))
        {
            self.by_participant.entry(*came).or_default().insert(id);
        }
    }
}

impl ConversationSummary {
    /// The assignee and the invitees, in that order, without duplicates
    /// (derived, not stored: a summary per conversation is the bulk of the
    /// read models). A transfer hands the room over: the previous assignee
    /// leaves it unless they were also invited (as `State` has it).
    pub fn participants(&self) -> Vec<StaffId> {
        let mut all: Vec<StaffId> = self.assignee.into_iter().collect();
        all.extend(self.invited.iter().filter(|s| Some(**s) != self.assignee));
        all
    }
}

fn key_of(summary: &ConversationSummary) -> GroupKey {
    (summary.group, summary.status, summary.private)
}

fn conversation_of(event: &Event) -> Option<ConversationId> {
    match event {
        Event::ConversationOpened(e) => Some(e.conversation),
        Event::ConversationAssigned(e) => Some(e.conversation),
        Event::StaffInvitedToRoom(e) => Some(e.conversation),
        Event::ConversationPrivacyChanged(e) => Some(e.conversation),
        Event::MessagePosted(e) => Some(e.conversation),
        Event::PrivateMessagePosted(e) => Some(e.conversation),
        Event::ConversationClosed(e) => Some(e.conversation),
        Event::ConversationReopened(e) => Some(e.conversation),
        _ => None,
    }
}
