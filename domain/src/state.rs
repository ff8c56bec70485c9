//! The current state of every company, folded from events.
//!
//! `apply` is total: events in the log were validated when they were decided, and
//! an event that refers to something unknown (which a valid log never holds) is
//! skipped rather than trusted, so replay can never panic.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;

use serde::{Deserialize, Serialize};

use crate::events::{Event, StreamId};
use crate::ids::{CompanyId, ConversationId, GroupId, StaffId, WidgetKey};
use crate::model::{Channel, ConversationStatus, Permission, Role, RoutingType};
use crate::values::{Content, Name, WidgetOrigins};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PrivacySettings {
    pub private_conversations_enabled: bool,
    pub new_conversations_private: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Company {
    pub id: CompanyId,
    pub name: Name,
    pub widget_key: WidgetKey,
    pub settings: PrivacySettings,
    /// Where the customer widget may be embedded (SPEC section 8, CORS).
    pub widget_origins: WidgetOrigins,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staff {
    pub id: StaffId,
    pub company: CompanyId,
    pub name: Name,
    pub role: Role,
    pub permissions: BTreeSet<Permission>,
    pub active: bool,
    /// Notifications caused by events up to this global position are read.
    pub notifications_read_up_to: u64,
}

impl Staff {
    pub fn has(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub id: GroupId,
    pub company: CompanyId,
    pub name: Name,
    pub routing: RoutingType,
    /// In the order they joined: the round-robin rotation follows it.
    pub members: Vec<StaffId>,
    pub supervisors: BTreeSet<StaffId>,
    /// The member the rotation chose last.
    pub last_round_robin: Option<StaffId>,
}

impl Group {
    pub fn is_member(&self, staff: StaffId) -> bool {
        self.members.contains(&staff)
    }

    pub fn is_supervisor(&self, staff: StaffId) -> bool {
        self.supervisors.contains(&staff)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: ConversationId,
    pub company: CompanyId,
    pub group: GroupId,
    pub channel: Channel,
    /// [`Content::Erased`] once the conversation is erased; [`Content::Legacy`]
    /// for a conversation opened before encryption existed.
    pub customer: Content<Name>,
    /// The conversation's own flag; see [`State::is_effectively_private`].
    pub private: bool,
    pub status: ConversationStatus,
    pub assignee: Option<StaffId>,
    /// Staff invited into the room (the assignee is a participant without this).
    pub invited: BTreeSet<StaffId>,
}

impl Conversation {
    /// The assignee and the staff invited into the room.
    pub fn is_participant(&self, staff: StaffId) -> bool {
        self.assignee == Some(staff) || self.invited.contains(&staff)
    }

    /// Its customer data was erased (SPEC section 12).
    pub fn is_erased(&self) -> bool {
        self.customer.is_erased()
    }

    /// Opened before encryption existed: its customer data is in clear in the
    /// log, so it cannot be erased in place.
    pub fn is_stored_in_clear(&self) -> bool {
        self.customer.is_legacy()
    }
}

/// Everything the decisions and the visibility policy need, for every company.
///
/// Serializable so a server can checkpoint it with its read models (the
/// checkpoint format is the projections crate's, and versioned there).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct State {
    pub companies: HashMap<CompanyId, Company>,
    pub staff: HashMap<StaffId, Staff>,
    pub groups: HashMap<GroupId, Group>,
    pub conversations: HashMap<ConversationId, Conversation>,
    /// Events applied per stream: the expected version of the next append.
    pub versions: HashMap<StreamId, u64>,
    /// Every origin some company's widget lists, with how many companies list
    /// it: a CORS preflight carries no widget key, so it is answered for these.
    pub widget_origins: BTreeMap<String, u32>,
}

impl State {
    /// Folds a sequence of events into a fresh state.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut state = State::default();
        for event in events {
            state.apply(event);
        }
        state
    }

    /// The version of `stream` (0 when it has no events yet).
    pub fn stream_version(&self, stream: StreamId) -> u64 {
        self.versions.get(&stream).copied().unwrap_or(0)
    }

    /// SPEC section 2: private only while the company switch is on.
    pub fn is_effectively_private(&self, conversation: &Conversation) -> bool {
        conversation.private
            && self
                .companies
                .get(&conversation.company)
                .is_some_and(|c| c.settings.private_conversations_enabled)
    }

    /// Whether some company lists `origin` (a request's `Origin`, as sent).
    pub fn some_company_allows_origin(&self, origin: &str) -> bool {
        self.widget_origins.contains_key(origin)
    }

    pub fn company_by_widget_key(&self, key: WidgetKey) -> Option<&Company> {
        self.companies.values().find(|c| c.widget_key == key)
    }

    /// The next active member in the group's rotation, after the last one chosen.
    pub fn next_in_rotation(&self, group: &Group) -> Option<StaffId> {
        let start = group
            .last_round_robin
            .and_then(|last| group.members.iter().position(|m| *m == last))
            .map_or(0, |i| i + 1);
        let n = group.members.len();
        (0..n)
            .map(|offset| group.members[(start + offset) % n])
            .find(|m| self.staff.get(m).is_some_and(|s| s.active))
    }

    /// Folds one event into the state (total: see the module doc).
    pub fn apply(&mut self, event: &Event) {
        *self.versions.entry(event.stream()).or_insert(0) += 1;
        match event {
            Event::CompanyCreated(e) => {
                self.companies.insert(
                    e.company,
                    Company {
                        id: e.company,
                        name: e.name.clone(),
                        widget_key: e.widget_key,
                        settings: PrivacySettings::default(),
                        widget_origins: WidgetOrigins::default(),
                    },
                );
            }
            Event::PrivacySettingsChanged(e) => change(&mut self.companies, e.company, |company| {
                company.settings = PrivacySettings {
                    private_conversations_enabled: e.private_conversations_enabled,
                    new_conversations_private: e.new_conversations_private,
                };
            }),
            Event::WidgetOriginsChanged(e) => {
                let Some(company) = self.companies.get_mut(&e.company) else {
                    return;
                };
                let old = std::mem::replace(&mut company.widget_origins, e.origins.clone());
                for origin in old.as_slice() {
                    if let Some(count) = self.widget_origins.get_mut(origin.as_str()) {
                        *count = count.saturating_sub(1);
                        if *count == 0 {
                            self.widget_origins.remove(origin.as_str());
                        }
                    }
                }
                for origin in e.origins.as_slice() {
                    *self
                        .widget_origins
                        .entry(origin.as_str().to_owned())
                        .or_insert(0) += 1;
                }
            }
            Event::StaffAdded(e) => {
                self.staff.insert(
                    e.staff,
                    Staff {
                        id: e.staff,
                        company: e.company,
                        name: e.name.clone(),
                        role: e.role,
                        permissions: BTreeSet::new(),
                        active: true,
                        notifications_read_up_to: 0,
                    },
                );
            }
            Event::StaffRoleChanged(e) => {
                change(&mut self.staff, e.staff, |staff| staff.role = e.role)
            }
            Event::PermissionGranted(e) => change(&mut self.staff, e.staff, |staff| {
                staff.permissions.insert(e.permission);
            }),
            Event::PermissionRevoked(e) => change(&mut self.staff, e.staff, |staff| {
                staff.permissions.remove(&e.permission);
            }),
            Event::StaffDeactivated(e) => {
                change(&mut self.staff, e.staff, |staff| staff.active = false)
            }
            Event::GroupCreated(e) => {
                self.groups.insert(
                    e.group,
                    Group {
                        id: e.group,
                        company: e.company,
                        name: e.name.clone(),
                        routing: e.routing,
                        members: Vec::new(),
                        supervisors: BTreeSet::new(),
                        last_round_robin: None,
                    },
                );
            }
            Event::GroupRenamed(e) => change(&mut self.groups, e.group, |group| {
                group.name = e.name.clone()
            }),
            Event::GroupRoutingChanged(e) => {
                change(&mut self.groups, e.group, |group| group.routing = e.routing)
            }
            Event::GroupMemberAdded(e) => {
                if let Some(group) = self.groups.get_mut(&e.group)
                    && !group.members.contains(&e.staff)
                {
                    group.members.push(e.staff);
                }
            }
            Event::GroupMemberRemoved(e) => change(&mut self.groups, e.group, |group| {
                group.members.retain(|m| *m != e.staff);
            }),
            Event::GroupSupervisorAdded(e) => change(&mut self.groups, e.group, |group| {
                group.supervisors.insert(e.staff);
            }),
            Event::GroupSupervisorRemoved(e) => change(&mut self.groups, e.group, |group| {
                group.supervisors.remove(&e.staff);
            }),
            Event::ConversationOpened(e) => {
                self.conversations.insert(
                    e.conversation,
                    Conversation {
                        id: e.conversation,
                        company: e.company,
                        group: e.group,
                        channel: e.channel,
                        customer: e.customer.clone(),
                        private: e.private,
                        status: ConversationStatus::Queued,
                        assignee: None,
                        invited: BTreeSet::new(),
                    },
                );
            }
            Event::ConversationAssigned(e) => {
                let Some(conversation) = self.conversations.get_mut(&e.conversation) else {
                    return;
                };
                conversation.assignee = Some(e.assignee);
                // A transfer hands the room over: the previous assignee is no
                // longer a participant unless they were also invited.
                conversation.status = ConversationStatus::Handling;
                if e.round_robin
                    && let Some(group) = self.groups.get_mut(&conversation.group)
                {
                    group.last_round_robin = Some(e.assignee);
                }
            }
            Event::StaffInvitedToRoom(e) => {
                change(&mut self.conversations, e.conversation, |conversation| {
                    conversation.invited.insert(e.staff);
                })
            }
            Event::ConversationPrivacyChanged(e) => {
                change(&mut self.conversations, e.conversation, |conversation| {
                    conversation.private = e.private
                })
            }
            Event::ConversationErased(e) => {
                change(&mut self.conversations, e.conversation, |conversation| {
                    conversation.customer = Content::Erased
                })
            }
            // Messages and the read audit change nothing a decision or the
            // policy reads.
            Event::MessagePosted(_) | Event::PrivateMessagePosted(_) | Event::ContentOpened(_) => {}
            Event::ConversationClosed(e) => {
                change(&mut self.conversations, e.conversation, |conversation| {
                    conversation.status = ConversationStatus::Closed
                })
            }
            // Logs written before this event existed hold only the
            // assignment (above), which keeps the rotation right on its own.
            Event::RoundRobinTurnTaken(e) => change(&mut self.groups, e.group, |group| {
                group.last_round_robin = Some(e.assignee)
            }),
            Event::NotificationsMarkedRead(e) => change(&mut self.staff, e.staff, |staff| {
                staff.notifications_read_up_to = staff.notifications_read_up_to.max(e.up_to)
            }),
            Event::ConversationReopened(e) => {
                change(&mut self.conversations, e.conversation, |conversation| {
                    conversation.assignee = e.assignee;
                    conversation.status = match e.assignee {
                        Some(_) => ConversationStatus::Handling,
                        None => ConversationStatus::Queued,
                    };
                })
            }
        }
    }
}

/// Changes the entry `id` of `map` if there is one: an event about something
/// unknown is skipped (see the module doc).
fn change<K: Hash + Eq, V>(map: &mut HashMap<K, V>, id: K, change: impl FnOnce(&mut V)) {
    if let Some(value) = map.get_mut(&id) {
        change(value);
    }
}
