//! The read audit's read model (SPEC section 12): who opened which
//! conversation's content, when, through which path and by which rule of the
//! visibility policy. Built from `ContentOpened` events (on each company's
//! `ReadAudit` stream), in log order.
//!
//! Two ways in, both newest first and paged by the entry's log position: a
//! conversation's entries and a staff member's entries. The entries hold no
//! conversation content (ids, the rule, the time); who may list them is the
//! caller's to check (owners and admins of the entry's company: the api's
//! authorization matrix). [`AccessLog::last_opened`] gives the recorder the
//! latest entry of a (staff, conversation) pair, so a restarted server (or
//! another node) does not record the same reading twice within its window.

use std::collections::HashMap;

use backchannel_domain::events::{ContentOpened, ContentPath, Event};
use backchannel_domain::ids::{CompanyId, ConversationId, StaffId};
use backchannel_domain::visibility::Rule;
use backchannel_eventlog::RecordedEvent;
use serde::{Deserialize, Serialize};

use crate::models::Page;

/// One entry of the read audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    /// The log position of its `ContentOpened` (the cursor).
    pub position: u64,
    pub company: CompanyId,
    pub conversation: ConversationId,
    pub staff: StaffId,
    pub rule: Rule,
    pub path: ContentPath,
    /// When the content was opened, µs since the Unix epoch (UTC).
    pub at: i64,
}

/// Whose entries to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessSubject {
    Conversation(ConversationId),
    Staff(StaffId),
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccessLog {
    /// Every entry, in log order (ascending positions).
    entries: Vec<AccessEntry>,
    /// Indexes into `entries`, ascending.
    by_conversation: HashMap<ConversationId, Vec<usize>>,
    by_staff: HashMap<StaffId, Vec<usize>>,
    /// The latest entry's `at` per (staff, conversation).
    latest: HashMap<(StaffId, ConversationId), i64>,
}

impl AccessLog {
    /// Applies one recorded event; anything but `ContentOpened` is ignored.
    pub fn apply(&mut self, recorded: &RecordedEvent) {
        if let Event::ContentOpened(e) = &recorded.event {
            self.push(recorded.envelope.position, e);
        }
    }

    fn push(&mut self, position: u64, e: &ContentOpened) {
        let index = self.entries.len();
        self.entries.push(AccessEntry {
            position,
            company: e.company,
            conversation: e.conversation,
            staff: e.staff,
            rule: e.rule,
            path: e.path,
            at: e.at,
        });
        self.by_conversation
            .entry(e.conversation)
            .or_default()
            .push(index);
        self.by_staff.entry(e.staff).or_default().push(index);
        let latest = self.latest.entry((e.staff, e.conversation)).or_insert(e.at);
        *latest = (*latest).max(e.at);
    }

    /// The subject's entries, newest first: at most `first`, older than the
    /// entry at position `after` when given.
    pub fn page(
        &self,
        subject: AccessSubject,
        first: usize,
        after: Option<u64>,
    ) -> Page<AccessEntry> {
        let indexes: &[usize] = match subject {
            AccessSubject::Conversation(c) => self.by_conversation.get(&c),
            AccessSubject::Staff(s) => self.by_staff.get(&s),
        }
        .map_or(&[], Vec::as_slice);
        // Ascending positions: those before the cursor are a prefix.
        let end = match after {
            Some(after) => indexes
                .partition_point(|&i| self.entries.get(i).is_some_and(|e| e.position < after)),
            None => indexes.len(),
        };
        let older = indexes.get(..end).unwrap_or(&[]);
        let items: Vec<AccessEntry> = older
            .iter()
            .rev()
            .take(first)
            .filter_map(|&i| self.entries.get(i).copied())
            .collect();
        Page {
            has_next: older.len() > items.len(),
            items,
        }
    }

    /// When `staff` last opened `conversation`'s content, as recorded.
    pub fn last_opened(&self, staff: StaffId, conversation: ConversationId) -> Option<i64> {
        self.latest.get(&(staff, conversation)).copied()
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opened(staff: StaffId, conversation: ConversationId, at: i64) -> ContentOpened {
        ContentOpened {
            company: CompanyId::new(),
            conversation,
            staff,
            rule: Rule::R1,
            path: ContentPath::Timeline,
            at,
        }
    }

    #[test]
    fn pages_newest_first_by_conversation_and_by_staff() {
        let (a, b) = (StaffId::new(), StaffId::new());
        let (c, d) = (ConversationId::new(), ConversationId::new());
        let mut log = AccessLog::default();
        log.push(1, &opened(a, c, 10));
        log.push(2, &opened(b, c, 20));
        log.push(3, &opened(a, d, 30));
        log.push(4, &opened(a, c, 40));

        let page = log.page(AccessSubject::Conversation(c), 2, None);
        let positions: Vec<u64> = page.items.iter().map(|e| e.position).collect();
        assert_eq!(positions, [4, 2]);
        assert!(page.has_next);
        let rest = log.page(AccessSubject::Conversation(c), 2, Some(2));
        assert_eq!(rest.items.len(), 1);
        assert_eq!(rest.items[0].position, 1);
        assert!(!rest.has_next);

        let by_a: Vec<u64> = log
            .page(AccessSubject::Staff(a), 10, None)
            .items
            .iter()
            .map(|e| e.position)
            .collect();
        assert_eq!(by_a, [4, 3, 1]);
        assert!(
            log.page(AccessSubject::Staff(StaffId::new()), 10, None)
                .items
                .is_empty()
        );
        assert_eq!(log.last_opened(a, c), Some(40));
        assert_eq!(log.last_opened(b, d), None);
    }
}
