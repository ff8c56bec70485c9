//! `generate`: a large synthetic log, deterministic from a seed.
//!
//! Every command goes through `domain::decide` (via [`Recorder`]), so the log
//! is one the server could have written. Ids are UUIDv7-shaped values derived
//! from the seed and a simulated clock (2025-01-01 onwards, 0.5–20 s between
//! commands), so the same seed and options give the same bytes.
//!
//! The mix: `companies` companies, each with an owner, an admin, two
//! supervisors, eight agents (one holding ENQUIRY_HISTORY) and two groups, one
//! BROADCAST and one ROUND_ROBIN. Company 0 has private conversations on from
//! the start, company 1 switches the company setting on and off every few
//! hundred conversations, the others stay public. Conversations are opened in
//! every channel (customers open chat and social, staff log calls and mail)
//! and run interleaved, about 64 at a time: assignment (self-assignment in
//! broadcast groups), public messages both ways, private messages in chat and
//! social (by the assignee or from the overview by a supervisor), invitations,
//! privacy switched by an admin, and an end state of closed (~80%, a few
//! reopened and closed again), handling (~12%) or still queued (~8%).

use std::collections::VecDeque;

use backchannel_domain::commands::Command;
use backchannel_domain::ids::{CompanyId, ConversationId, GroupId, MessageId, StaffId, WidgetKey};
use backchannel_domain::model::{
    Actor, Channel, ConversationStatus, MessageVisibility, Permission, Role, RoutingType,
};
use backchannel_domain::values::{MessageBody, Name};
use backchannel_eventlog::RecordedAt;

use crate::recorder::{Recorder, mix};

/// 2025-01-01T00:00:00Z in milliseconds.
const START_MS: u64 = 1_735_689_600_000;
const WINDOW: usize = 64;

#[derive(Debug, Clone, Copy)]
pub struct GenerateOptions {
    pub seed: u64,
    pub conversations: u64,
    pub companies: u32,
    /// Stop once at least this many events are recorded.
    pub max_events: Option<u64>,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

struct GroupPlan {
    id: GroupId,
    members: Vec<StaffId>,
    supervisor: StaffId,
}

struct CompanyPlan {
    id: CompanyId,
    admin: StaffId,
    groups: Vec<GroupPlan>,
}

struct Active {
    id: ConversationId,
    company: usize,
    group: usize,
    channel: Channel,
    steps_left: u32,
    /// What it should end as: Closed, Handling or Queued.
    target: ConversationStatus,
    reopened: bool,
}

/// Yields the generated log's records in order.
pub struct Generator {
    options: GenerateOptions,
    rec: Recorder,
    rng: Rng,
    clock_ms: u64,
    companies: Vec<CompanyPlan>,
    active: Vec<Active>,
    opened: u64,
    pending: VecDeque<Vec<u8>>,
    /// Commands the domain refused (the generator then moves on); reported.
    pub refused: u64,
    started: bool,
}

fn name(text: &str) -> Name {
    Name::parse(text).unwrap_or_else(|_| Name::parse("name").unwrap_or_else(|_| unreachable!()))
}

fn body(text: &str) -> MessageBody {
    MessageBody::parse(text)
        .unwrap_or_else(|_| MessageBody::parse("…").unwrap_or_else(|_| unreachable!()))
}

const CUSTOMER_LINES: [&str; 6] = [
    "Hello, my order has not arrived yet, can you help?",
    "I was charged twice for the same invoice.",
    "How do I reset my password?",
    "The app crashes when I open the settings page.",
    "Can I change the delivery address of order",
    "Thanks, that solved it!",
];
const AGENT_LINES: [&str; 5] = [
    "Thanks for reaching out, let me check that for you.",
    "I have refunded the duplicate charge.",
    "Could you send me a screenshot of the error?",
    "Your order is on its way, here is the tracking link.",
    "Is there anything else I can help you with?",
];
const PRIVATE_LINES: [&str; 4] = [
    "Careful, this customer had two refunds this month.",
    "Escalate to billing if they ask again.",
    "Try offering the 10% voucher.",
    "I'm taking over after lunch, leave notes here.",
];

impl Generator {
    pub fn new(options: GenerateOptions) -> Self {
        Generator {
            options,
            rec: Recorder::new(mix(options.seed ^ 0x5EED)),
            rng: Rng(options.seed),
            clock_ms: START_MS,
            companies: Vec::new(),
            active: Vec::new(),
            opened: 0,
            pending: VecDeque::new(),
            refused: 0,
            started: false,
        }
    }

    /// Conversations opened so far.
    pub fn opened(&self) -> u64 {
        self.opened
    }

    fn tick(&mut self) -> RecordedAt {
        self.clock_ms += 500 + self.rng.below(19_500);
        RecordedAt::from_micros(i64::try_from(self.clock_ms * 1000).unwrap_or(i64::MAX))
    }

    fn uuid(&mut self) -> [u8; 16] {
        let ms = self.clock_ms;
        self.rec.next_uuid(ms)
    }

    fn run(&mut self, actor: Actor, command: Command) -> bool {
        let at = self.tick();
        match self.rec.run(at, actor, &command) {
            Ok(_) => {
                self.pending.extend(self.rec.take_records());
                true
            }
            Err(_) => {
                self.refused += 1;
                false
            }
        }
    }

    fn setup(&mut self) {
        for c in 0..self.options.companies.max(1) {
            let company = CompanyId::from_bytes(self.uuid());
            let owner = StaffId::from_bytes(self.uuid());
            let widget_key = WidgetKey::from_bytes(self.uuid());
            self.run(
                Actor::System,
                Command::CreateCompany {
                    company,
                    name: name(&format!("Company {c}")),
                    widget_key,
                    owner,
                    owner_name: name(&format!("Owner {c}")),
                },
            );
            let by_owner = Actor::Staff(owner);
            let add = |g: &mut Self, role: Role, label: String| {
                let staff = StaffId::from_bytes(g.uuid());
                g.run(
                    by_owner,
                    Command::AddStaff {
                        company,
                        staff,
                        name: name(&label),
                        role,
                    },
                );
                staff
            };
            let admin = add(self, Role::Admin, format!("Admin {c}"));
            let supervisors: Vec<StaffId> = (0..2)
                .map(|i| add(self, Role::Supervisor, format!("Supervisor {c}.{i}")))
                .collect();
            let agents: Vec<StaffId> = (0..8)
                .map(|i| add(self, Role::Agent, format!("Agent {c}.{i}")))
                .collect();
            self.run(
                by_owner,
                Command::GrantPermission {
                    company,
                    staff: agents[0],
                    permission: Permission::EnquiryHistory,
                },
            );
            let mut groups = Vec::new();
            for (i, routing) in [RoutingType::Broadcast, RoutingType::RoundRobin]
                .into_iter()
                .enumerate()
            {
                let group = GroupId::from_bytes(self.uuid());
                self.run(
                    Actor::Staff(admin),
                    Command::CreateGroup {
                        company,
                        group,
                        name: name(if i == 0 { "Support" } else { "Sales" }),
                        routing,
                    },
                );
                let members: Vec<StaffId> = agents.iter().skip(i).step_by(2).copied().collect();
                for &staff in &members {
                    self.run(
                        Actor::Staff(admin),
                        Command::AddGroupMember {
                            company,
                            group,
                            staff,
                        },
                    );
                }
                self.run(
                    Actor::Staff(admin),
                    Command::AddGroupSupervisor {
                        company,
                        group,
                        staff: supervisors[i],
                    },
                );
                groups.push(GroupPlan {
                    id: group,
                    members,
                    supervisor: supervisors[i],
                });
            }
            if c == 0 {
                self.privacy(company, admin, true);
            }
            self.companies.push(CompanyPlan {
                id: company,
                admin,
                groups,
            });
        }
    }

    fn privacy(&mut self, company: CompanyId, admin: StaffId, enabled: bool) {
        self.run(
            Actor::Staff(admin),
            Command::UpdatePrivacySettings {
                company,
                private_conversations_enabled: enabled,
                new_conversations_private: true,
            },
        );
    }

    fn open(&mut self) {
        let n = self.opened;
        self.opened += 1;
        let company = self.rng.below(self.companies.len() as u64) as usize;
        if company == 1 && n % 400 == 399 {
            let (id, admin) = (self.companies[1].id, self.companies[1].admin);
            let enabled = (n / 400).is_multiple_of(2);
            self.privacy(id, admin, enabled);
        }
        let group = self.rng.below(2) as usize;
        let channel = self.rng.pick(&[
            Channel::Chat,
            Channel::Chat,
            Channel::Social,
            Channel::Email,
            Channel::Call,
        ]);
        let id = ConversationId::from_bytes(self.uuid());
        let plan = &self.companies[company];
        let actor = match channel {
            Channel::Chat | Channel::Social => Actor::Customer(id),
            Channel::Email | Channel::Call => Actor::Staff(plan.groups[group].members[0]),
        };
        let command = Command::OpenConversation {
            company: plan.id,
            conversation: id,
            group: plan.groups[group].id,
            channel,
            customer: name(&format!("Customer {n}")),
            first_message: None,
        };
        if !self.run(actor, command) {
            return;
        }
        let roll = self.rng.below(100);
        let target = if roll < 80 {
            ConversationStatus::Closed
        } else if roll < 92 || group == 1 {
            ConversationStatus::Handling
        } else {
            ConversationStatus::Queued
        };
        let steps_left = 3 + self.rng.below(10) as u32;
        self.active.push(Active {
            id,
            company,
            group,
            channel,
            steps_left,
            target,
            reopened: false,
        });
    }

    /// One step of the conversation at `index`; removes it once it is done.
    fn step(&mut self, index: usize) {
        let a = &self.active[index];
        let (id, channel, target) = (a.id, a.channel, a.target);
        let plan = &self.companies[a.company];
        let group = &plan.groups[a.group];
        let (admin, supervisor) = (plan.admin, group.supervisor);
        let members = group.members.clone();
        let Some(conv) = self.rec.state().conversations.get(&id) else {
            self.active.swap_remove(index);
            return;
        };
        let (status, assignee) = (conv.status, conv.assignee);
        match status {
            ConversationStatus::Queued if target == ConversationStatus::Queued => {
                self.active.swap_remove(index);
            }
            ConversationStatus::Queued => {
                let me = self.rng.pick(&members);
                self.run(
                    Actor::Staff(me),
                    Command::AssignConversation {
                        conversation: id,
                        assignee: me,
                    },
                );
            }
            ConversationStatus::Handling => {
                let assignee = assignee.unwrap_or(admin);
                if self.active[index].steps_left == 0 {
                    if target == ConversationStatus::Closed {
                        self.run(
                            Actor::Staff(assignee),
                            Command::CloseConversation { conversation: id },
                        );
                    } else {
                        self.active.swap_remove(index);
                    }
                    return;
                }
                self.active[index].steps_left -= 1;
                let roll = self.rng.below(100);
                let message = MessageId::from_bytes(self.uuid());
                let private_ok = channel.supports_private_messages();
                let say = |actor, visibility, line| {
                    (
                        actor,
                        Command::SendMessage {
                            conversation: id,
                            message,
                            visibility,
                            body: body(line),
                        },
                    )
                };
                let (actor, command) = if roll < 40 {
                    let line = self.rng.pick(&CUSTOMER_LINES);
                    say(Actor::Customer(id), MessageVisibility::Public, line)
                } else if roll < 75 || !private_ok && roll < 94 {
                    let line = self.rng.pick(&AGENT_LINES);
                    say(Actor::Staff(assignee), MessageVisibility::Public, line)
                } else if roll < 94 {
                    let author = if self.rng.chance(30) {
                        supervisor
                    } else {
                        assignee
                    };
                    let line = self.rng.pick(&PRIVATE_LINES);
                    say(Actor::Staff(author), MessageVisibility::Private, line)
                } else if roll < 97 {
                    let staff = self.rng.pick(&members);
                    (
                        Actor::Staff(assignee),
                        Command::InviteToRoom {
                            conversation: id,
                            staff,
                        },
                    )
                } else {
                    let private = self.rng.chance(50);
                    (
                        Actor::Staff(admin),
                        Command::SetConversationPrivacy {
                            conversation: id,
                            private,
                        },
                    )
                };
                self.run(actor, command);
            }
            ConversationStatus::Closed => {
                if !self.active[index].reopened && self.rng.chance(5) {
                    self.active[index].reopened = true;
                    self.active[index].steps_left = 2;
                    self.run(
                        Actor::Staff(admin),
                        Command::ReopenConversation { conversation: id },
                    );
                } else {
                    self.active.swap_remove(index);
                }
            }
        }
    }

    fn finished(&self) -> bool {
        self.options
            .max_events
            .is_some_and(|max| self.rec.head() >= max)
            || (self.opened >= self.options.conversations && self.active.is_empty())
    }

    fn advance(&mut self) {
        if !self.started {
            self.started = true;
            self.setup();
            return;
        }
        let may_open = self.opened < self.options.conversations;
        if may_open
            && (self.active.len() < WINDOW / 2 || self.active.len() < WINDOW && self.rng.chance(30))
        {
            self.open();
        } else if !self.active.is_empty() {
            let index = self.rng.below(self.active.len() as u64) as usize;
            self.step(index);
        } else if may_open {
            self.open();
        }
    }
}

impl Iterator for Generator {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(record) = self.pending.pop_front() {
                return Some(record);
            }
            if self.started && self.finished() {
                return None;
            }
            self.advance();
        }
    }
}
