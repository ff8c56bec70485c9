//! A desk that decides commands with `domain` and records the events as the
//! log would (positions, stream versions, envelope), feeding `ReadModels`.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::HashMap;

use backchannel_domain::commands::Command;
use backchannel_domain::events::{Event, StreamId};
use backchannel_domain::ids::*;
use backchannel_domain::model::{Actor, Channel, MessageVisibility, Role, RoutingType};
use backchannel_domain::values::{MessageBody, Name};
use backchannel_domain::{DomainError, decide};
use backchannel_eventlog::{Envelope, RecordedAt, RecordedEvent};
use backchannel_projections::ReadModels;

pub fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

pub struct Desk {
    pub models: ReadModels,
    pub log: Vec<RecordedEvent>,
    versions: HashMap<StreamId, u64>,
    pub company: CompanyId,
    pub owner: StaffId,
    pub admin: StaffId,
    pub supervisor: StaffId,
    pub a: StaffId,
    pub b: StaffId,
    pub c: StaffId,
    pub d: StaffId,
    pub h: StaffId,
    pub support: GroupId,
    pub sales: GroupId,
    pub other_company: CompanyId,
    pub x: StaffId,
}

impl Desk {
    /// Acme: owner, admin, supervisor of Support; A, B, C and H (ENQUIRY_HISTORY)
    /// in Support (BROADCAST); D in Sales (ROUND_ROBIN). Globex: admin X.
    pub fn new() -> Self {
        let mut desk = Desk {
            models: ReadModels::new(),
            log: Vec::new(),
            versions: HashMap::new(),
            company: CompanyId::new(),
            owner: StaffId::new(),
            admin: StaffId::new(),
            supervisor: StaffId::new(),
            a: StaffId::new(),
            b: StaffId::new(),
            c: StaffId::new(),
            d: StaffId::new(),
            h: StaffId::new(),
            support: GroupId::new(),
            sales: GroupId::new(),
            other_company: CompanyId::new(),
            x: StaffId::new(),
        };
        let (co, owner) = (desk.company, desk.owner);
        desk.run(
            Actor::System,
            Command::CreateCompany {
                company: co,
                name: name("Acme"),
                widget_key: WidgetKey::new(),
                owner,
                owner_name: name("Olga"),
            },
        );
        for (id, n, role) in [
            (desk.admin, "Adam", Role::Admin),
            (desk.supervisor, "Sue", Role::Supervisor),
            (desk.a, "Ann", Role::Agent),
            (desk.b, "Ben", Role::Agent),
            (desk.c, "Cid", Role::Agent),
            (desk.d, "Dee", Role::Agent),
            (desk.h, "Hal", Role::Agent),
        ] {
            desk.run(
                Actor::Staff(owner),
                Command::AddStaff {
                    company: co,
                    staff: id,
                    name: name(n),
                    role,
                },
            );
        }
        desk.run(
            Actor::Staff(owner),
            Command::GrantPermission {
                company: co,
                staff: desk.h,
                permission: backchannel_domain::model::Permission::EnquiryHistory,
            },
        );
        for (g, n, routing) in [
            (desk.support, "Support", RoutingType::Broadcast),
            (desk.sales, "Sales", RoutingType::RoundRobin),
        ] {
            desk.run(
                Actor::Staff(owner),
                Command::CreateGroup {
                    company: co,
                    group: g,
                    name: name(n),
                    routing,
                },
            );
        }
        for (g, s) in [
            (desk.support, desk.a),
            (desk.support, desk.b),
            (desk.support, desk.c),
            (desk.support, desk.h),
            (desk.sales, desk.d),
        ] {
            desk.run(
                Actor::Staff(owner),
                Command::AddGroupMember {
                    company: co,
                    group: g,
                    staff: s,
                },
            );
        }
        desk.run(
            Actor::Staff(owner),
            Command::AddGroupSupervisor {
                company: co,
                group: desk.support,
                staff: desk.supervisor,
            },
        );
        let (other, x) = (desk.other_company, desk.x);
        desk.run(
            Actor::System,
            Command::CreateCompany {
                company: other,
                name: name("Globex"),
                widget_key: WidgetKey::new(),
                owner: x,
                owner_name: name("Xavier"),
            },
        );
        desk
    }

    /// Decides and records; panics on a refusal (use `try_run` to see one).
    pub fn run(&mut self, actor: Actor, command: Command) -> Vec<u64> {
        self.try_run(actor, command).unwrap()
    }

    pub fn try_run(&mut self, actor: Actor, command: Command) -> Result<Vec<u64>, DomainError> {
        let events = decide(self.models.state(), &command, actor)?;
        let command_id = CommandId::new();
        let mut positions = Vec::new();
        for event in events {
            let recorded = self.record(actor, command_id, event);
            positions.push(recorded.envelope.position);
            self.models.apply(&recorded).unwrap();
            self.log.push(recorded);
        }
        Ok(positions)
    }

    fn record(&mut self, actor: Actor, command_id: CommandId, event: Event) -> RecordedEvent {
        let stream = event.stream();
        let version = self.versions.entry(stream).or_insert(0);
        *version += 1;
        let position = self.log.len() as u64 + 1;
        RecordedEvent {
            envelope: Envelope {
                position,
                stream,
                stream_version: *version,
                event_id: EventId::new(),
                event_type: event.event_type(),
                schema_version: 1,
                codec_version: 1,
                recorded_at: RecordedAt::from_micros(1_700_000_000_000_000 + position as i64),
                actor,
                command_id,
                correlation_id: CorrelationId::new(),
                prev_hash: [0; 32],
            },
            event,
        }
    }

    pub fn privacy(&mut self, enabled: bool, new_private: bool) {
        let (co, owner) = (self.company, self.owner);
        self.run(
            Actor::Staff(owner),
            Command::UpdatePrivacySettings {
                company: co,
                private_conversations_enabled: enabled,
                new_conversations_private: new_private,
            },
        );
    }

    /// A customer opens a chat in `group` and writes a first message.
    pub fn open(&mut self, group: GroupId, channel: Channel) -> ConversationId {
        let c = ConversationId::new();
        let co = self.company;
        self.run(
            Actor::Customer(c),
            Command::OpenConversation {
                company: co,
                conversation: c,
                group,
                channel,
                customer: name("Carla"),
                first_message: None,
            },
        );
        self.say(Actor::Customer(c), c, MessageVisibility::Public, "Hello?");
        c
    }

    pub fn say(
        &mut self,
        actor: Actor,
        c: ConversationId,
        visibility: MessageVisibility,
        text: &str,
    ) -> u64 {
        self.run(
            actor,
            Command::SendMessage {
                conversation: c,
                message: MessageId::new(),
                visibility,
                body: MessageBody::parse(text).unwrap(),
            },
        )[0]
    }

    pub fn assign(&mut self, actor: StaffId, c: ConversationId, to: StaffId) {
        self.run(
            Actor::Staff(actor),
            Command::AssignConversation {
                conversation: c,
                assignee: to,
            },
        );
    }
}
