//! A viewer's conversation list, its count, and the enquiry overview.
//!
//! The indexes give, for each viewer, a handful of id sets that together hold
//! every conversation they may see and few they may not (their room, and per
//! group the parts R2, R4, R5 and R6 can open). The sets are merged newest
//! first and every candidate is checked with the visibility policy, so a page
//! costs O(page size × sets), not a scan of the company.

use std::collections::{BTreeSet, BinaryHeap};

use backchannel_domain::error::DomainError;
use backchannel_domain::ids::{ConversationId, GroupId, StaffId};
use backchannel_domain::model::{Channel, ConversationStatus, Permission, RoutingType};
use backchannel_domain::permissions;
use backchannel_domain::state::{Conversation, Staff};
use backchannel_domain::visibility::{Rule, supervises};

use crate::models::{Page, ReadModels};
use crate::summaries::{Activity, ConversationSummary};

const STATUSES: [ConversationStatus; 3] = [
    ConversationStatus::Queued,
    ConversationStatus::Handling,
    ConversationStatus::Closed,
];

/// Narrows a list; `None` fields match everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConversationFilter {
    pub status: Option<ConversationStatus>,
    pub group: Option<GroupId>,
    pub assignee: Option<StaffId>,
    pub channel: Option<Channel>,
}

impl ConversationFilter {
    fn matches(&self, c: &Conversation) -> bool {
        self.status.is_none_or(|s| s == c.status)
            && self.group.is_none_or(|g| g == c.group)
            && self.assignee.is_none_or(|a| Some(a) == c.assignee)
            && self.channel.is_none_or(|ch| ch == c.channel)
    }

    fn statuses(&self) -> Vec<ConversationStatus> {
        self.status.map_or(STATUSES.to_vec(), |s| vec![s])
    }
}

/// One column of the enquiry overview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// How many of the group's conversations in this status the viewer may see.
    pub count: usize,
    /// The newest of them.
    pub items: Vec<ConversationSummary>,
}

/// SPEC section 8's `enquiryOverview(groupId)`: QUEUED / HANDLING / CLOSED.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overview {
    pub group: GroupId,
    pub queued: Column,
    pub handling: Column,
    pub closed: Column,
}

impl ReadModels {
    /// A page of the conversations `viewer` may see, newest first, after the
    /// cursor `after` (exclusive). Summaries are composed for the page only.
    pub fn conversations(
        &self,
        viewer: StaffId,
        filter: &ConversationFilter,
        first: usize,
        after: Option<ConversationId>,
    ) -> Page<ConversationSummary> {
        self.conversation_page(viewer, filter, first, after, true)
    }

    /// Relay's backward page: the `last` conversations `viewer` may see just
    /// before the cursor `before` (exclusive) in the newest-first list, i.e.
    /// newer than it; from the list's end (the oldest) without it. Listed
    /// newest first, like every page; `has_next` says more precede the page.
    pub fn conversations_backward(
        &self,
        viewer: StaffId,
        filter: &ConversationFilter,
        last: usize,
        before: Option<ConversationId>,
    ) -> Page<ConversationSummary> {
        let mut page = self.conversation_page(viewer, filter, last, before, false);
        page.items.reverse();
        page
    }

    /// Up to `size` visible conversations from `bound` (exclusive) on, in
    /// the direction asked, and whether more follow in it.
    fn conversation_page(
        &self,
        viewer: StaffId,
        filter: &ConversationFilter,
        size: usize,
        bound: Option<ConversationId>,
        newest_first: bool,
    ) -> Page<ConversationSummary> {
        let page = Page::first_of(self.visible(viewer, *filter, bound, newest_first), size);
        Page {
            items: page
                .items
                .into_iter()
                .map(|(conversation, activity, rule)| {
                    ConversationSummary::new(self.state(), conversation, activity, rule)
                })
                .collect(),
            has_next: page.has_next,
        }
    }

    /// How many conversations `viewer` may see through `filter`.
    pub fn count_conversations(&self, viewer: StaffId, filter: &ConversationFilter) -> usize {
        self.visible(viewer, *filter, None, true).count()
    }

    /// The enquiry overview of `group` for `viewer`: open to whom
    /// `domain::permissions::overview_access` allows; each column holds only
    /// what the viewer may see.
    pub fn overview(
        &self,
        viewer: StaffId,
        group: GroupId,
        per_column: usize,
    ) -> Result<Overview, DomainError> {
        permissions::overview_access(self.state(), viewer, group)?;
        let column = |status| {
            let filter = ConversationFilter {
                status: Some(status),
                group: Some(group),
                ..ConversationFilter::default()
            };
            Column {
                count: self.count_conversations(viewer, &filter),
                items: self.conversations(viewer, &filter, per_column, None).items,
            }
        };
        Ok(Overview {
            group,
            queued: column(ConversationStatus::Queued),
            handling: column(ConversationStatus::Handling),
            closed: column(ConversationStatus::Closed),
        })
    }

    /// Every conversation `viewer` may see through `filter`, newest first
    /// after `bound` (or oldest first before it: `newest_first` false), as
    /// the parts of its summary (composed only for what a page returns) and
    /// the rule that grants it.
    fn visible<'a>(
        &'a self,
        viewer: StaffId,
        filter: ConversationFilter,
        bound: Option<ConversationId>,
        newest_first: bool,
    ) -> impl Iterator<Item = (&'a Conversation, &'a Activity, Rule)> + 'a {
        let sets = match self.state().staff.get(&viewer) {
            Some(staff) if staff.active => self.candidate_sets(staff, &filter),
            _ => Vec::new(),
        };
        merge(sets, bound, newest_first).filter_map(move |id| {
            let conversation = self.state().conversations.get(&id)?;
            let activity = self.conversations.activity(id)?;
            if !filter.matches(conversation) {
                return None;
            }
            let rule = self.check(viewer, id).ok()?;
            Some((conversation, activity, rule))
        })
    }

    /// Id sets that together cover everything `staff` may see (SPEC section 3),
    /// chosen from the indexes; the policy still checks every candidate.
    ///
    /// This is a second encoding of rules R1–R6, kept for speed: it must change
    /// whenever `domain::visibility::conversation_access` does (that module's
    /// doc says so too). A set missing here hides a conversation the policy
    /// grants; `tests/properties.rs`
    /// (`lists_pages_and_counts_are_exactly_what_the_policy_grants`) checks the
    /// two agree.
    fn candidate_sets<'a>(
        &'a self,
        staff: &Staff,
        filter: &ConversationFilter,
    ) -> Vec<&'a BTreeSet<ConversationId>> {
        let state = self.state();
        let index = &self.conversations;
        let statuses = filter.statuses();
        let mut sets = Vec::new();
        let groups = state
            .groups
            .values()
            .filter(|g| g.company == staff.company)
            .filter(|g| filter.group.is_none_or(|id| id == g.id));
        if staff.role.is_owner_or_admin() {
            // R1: everything in the company.
            if filter.group.is_none() && filter.status.is_none() {
                sets.push(index.company_set(staff.company));
            } else {
                for g in groups {
                    for &s in &statuses {
                        sets.push(index.group_set((g.id, s, false)));
                        sets.push(index.group_set((g.id, s, true)));
                    }
                }
            }
            return sets;
        }
        // R3: the viewer's rooms.
        sets.push(index.participant_set(staff.id));
        let privacy_on = state
            .companies
            .get(&staff.company)
            .is_some_and(|c| c.settings.private_conversations_enabled);
        let history = staff.has(Permission::EnquiryHistory);
        for g in groups {
            let member = g.is_member(staff.id);
            let all_of_group = supervises(staff, g) || (member && !privacy_on);
            for &s in &statuses {
                // R4: closed enquiries, public and private, for history
                // holders among the group's members and named supervisors
                // (named, whatever their role now: not only through R2).
                let history_part = history
                    && s == ConversationStatus::Closed
                    && (member || g.is_supervisor(staff.id));
                // R2 sees the whole group; R5 the public part of it.
                if all_of_group || member || history_part {
                    sets.push(index.group_set((g.id, s, false)));
                }
                let private_part = all_of_group
                    // R6: private, queued, broadcast.
                    || (member && s == ConversationStatus::Queued && g.routing == RoutingType::Broadcast)
                    || history_part;
                if private_part {
                    sets.push(index.group_set((g.id, s, true)));
                }
            }
        }
        sets
    }
}

/// Merges sets of ids into one sequence without duplicates: newest first
/// from before `bound` (exclusive), or oldest first from after it.
fn merge<'a>(
    sets: Vec<&'a BTreeSet<ConversationId>>,
    bound: Option<ConversationId>,
    newest_first: bool,
) -> Box<dyn Iterator<Item = ConversationId> + 'a> {
    use std::ops::Bound::{Excluded, Unbounded};
    let walkers: Vec<Box<dyn Iterator<Item = ConversationId> + 'a>> = sets
        .into_iter()
        .map(|set| -> Box<dyn Iterator<Item = ConversationId> + 'a> {
            match (bound, newest_first) {
                (Some(cursor), true) => Box::new(set.range(..cursor).rev().copied()),
                (None, true) => Box::new(set.iter().rev().copied()),
                (Some(cursor), false) => {
                    Box::new(set.range((Excluded(cursor), Unbounded)).copied())
                }
                (None, false) => Box::new(set.iter().copied()),
            }
        })
        .collect();
    if newest_first {
        Box::new(merge_by(walkers, |id| id))
    } else {
        Box::new(merge_by(walkers, std::cmp::Reverse))
    }
}

/// Merges walkers that each yield ids in descending `key` order into one
/// such sequence, dropping repeats.
fn merge_by<'a, K: Ord + 'a>(
    mut walkers: Vec<Box<dyn Iterator<Item = ConversationId> + 'a>>,
    key: fn(ConversationId) -> K,
) -> impl Iterator<Item = ConversationId> + 'a {
    let mut heap: BinaryHeap<(K, usize, ConversationId)> = BinaryHeap::new();
    for (i, walker) in walkers.iter_mut().enumerate() {
        if let Some(id) = walker.next() {
            heap.push((key(id), i, id));
        }
    }
    let mut last: Option<ConversationId> = None;
    std::iter::from_fn(move || {
        while let Some((_, i, id)) = heap.pop() {
            if let Some(next) = walkers[i].next() {
                heap.push((key(next), i, next));
            }
            if last != Some(id) {
                last = Some(id);
                return Some(id);
            }
        }
        None
    })
}
