//! A small fixed world and a given/when/then harness (after cqrs-es) for the
//! rule tests. Every test reads as SPEC.md does: given these events, when this
//! actor issues this command, then expect these events or this error code.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use backchannel_domain::commands::Command;
use backchannel_domain::events::*;
use backchannel_domain::ids::*;
use backchannel_domain::model::{Actor, Channel, Permission, Role, RoutingType};
use backchannel_domain::state::State;
use backchannel_domain::values::{Content, MessageBody, Name};
use backchannel_domain::{ErrorCode, decide};

pub fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

pub fn body(s: &str) -> MessageBody {
    MessageBody::parse(s).unwrap()
}

/// Acme: owner, admin, supervisor of Support, agents A, B, C in Support
/// (BROADCAST), agents D and E in Sales (ROUND_ROBIN, supervised by nobody),
/// H in Support with ENQUIRY_HISTORY, a second supervisor S2 of Sales only,
/// and a deactivated agent Z (was in Support). Globex: another company with
/// its own admin X and group.
pub struct World {
    pub acme: CompanyId,
    pub owner: StaffId,
    pub admin: StaffId,
    pub supervisor: StaffId,
    pub sales_supervisor: StaffId,
    pub a: StaffId,
    pub b: StaffId,
    pub c: StaffId,
    pub d: StaffId,
    pub e: StaffId,
    pub h: StaffId,
    pub z: StaffId,
    pub support: GroupId,
    pub sales: GroupId,
    pub globex: CompanyId,
    pub x: StaffId,
    pub globex_group: GroupId,
}

impl World {
    pub fn new() -> Self {
        World {
            acme: CompanyId::new(),
            owner: StaffId::new(),
            admin: StaffId::new(),
            supervisor: StaffId::new(),
            sales_supervisor: StaffId::new(),
            a: StaffId::new(),
            b: StaffId::new(),
            c: StaffId::new(),
            d: StaffId::new(),
            e: StaffId::new(),
            h: StaffId::new(),
            z: StaffId::new(),
            support: GroupId::new(),
            sales: GroupId::new(),
            globex: CompanyId::new(),
            x: StaffId::new(),
            globex_group: GroupId::new(),
        }
    }

    /// The events that build the world, privacy switched off.
    pub fn setup(&self) -> Vec<Event> {
        let acme = self.acme;
        let mut events = vec![
            Event::CompanyCreated(CompanyCreated {
                company: acme,
                name: name("Acme"),
                widget_key: WidgetKey::new(),
            }),
            staff_added(acme, self.owner, "Olga Owner", Role::Owner),
            staff_added(acme, self.admin, "Adam Admin", Role::Admin),
            staff_added(acme, self.supervisor, "Sue Supervisor", Role::Supervisor),
            staff_added(
                acme,
                self.sales_supervisor,
                "Sam Supervisor",
                Role::Supervisor,
            ),
            staff_added(acme, self.a, "Ann", Role::Agent),
            staff_added(acme, self.b, "Ben", Role::Agent),
            staff_added(acme, self.c, "Cid", Role::Agent),
            staff_added(acme, self.d, "Dee", Role::Agent),
            staff_added(acme, self.e, "Eve", Role::Agent),
            staff_added(acme, self.h, "Hal", Role::Agent),
            staff_added(acme, self.z, "Zed", Role::Agent),
            Event::PermissionGranted(PermissionGranted {
                company: acme,
                staff: self.h,
                permission: Permission::EnquiryHistory,
            }),
            group_created(acme, self.support, "Support", RoutingType::Broadcast),
            group_created(acme, self.sales, "Sales", RoutingType::RoundRobin),
        ];
        for m in [self.a, self.b, self.c, self.h, self.z] {
            events.push(Event::GroupMemberAdded(gs(acme, self.support, m)));
        }
        for m in [self.d, self.e] {
            events.push(Event::GroupMemberAdded(gs(acme, self.sales, m)));
        }
        events.push(Event::GroupSupervisorAdded(gs(
            acme,
            self.support,
            self.supervisor,
        )));
        events.push(Event::GroupSupervisorAdded(gs(
            acme,
            self.sales,
            self.sales_supervisor,
        )));
        events.push(Event::StaffDeactivated(StaffDeactivated {
            company: acme,
            staff: self.z,
        }));
        events.extend([
            Event::CompanyCreated(CompanyCreated {
                company: self.globex,
                name: name("Globex"),
                widget_key: WidgetKey::new(),
            }),
            staff_added(self.globex, self.x, "Xavier", Role::Admin),
            group_created(
                self.globex,
                self.globex_group,
                "Help",
                RoutingType::Broadcast,
            ),
            Event::GroupMemberAdded(gs(self.globex, self.globex_group, self.x)),
        ]);
        events
    }

    /// The setup with private conversations switched on and new ones private.
    pub fn private_setup(&self) -> Vec<Event> {
        let mut events = self.setup();
        events.push(self.privacy(true, true));
        events
    }

    pub fn privacy(&self, enabled: bool, new_private: bool) -> Event {
        Event::PrivacySettingsChanged(PrivacySettingsChanged {
            company: self.acme,
            private_conversations_enabled: enabled,
            new_conversations_private: new_private,
        })
    }

    pub fn opened(
        &self,
        conversation: ConversationId,
        group: GroupId,
        channel: Channel,
        private: bool,
    ) -> Event {
        Event::ConversationOpened(ConversationOpened {
            company: self.acme,
            conversation,
            group,
            channel,
            customer: Content::Plain(name("Carla Customer")),
            private,
        })
    }

    /// [`World::opened`] as stored before encryption existed (the plaintext
    /// era): its customer data in clear.
    pub fn opened_in_clear(
        &self,
        conversation: ConversationId,
        group: GroupId,
        channel: Channel,
        private: bool,
    ) -> Event {
        let mut event = self.opened(conversation, group, channel, private);
        if let Event::ConversationOpened(e) = &mut event {
            e.customer = Content::Legacy(name("Carla Customer"));
        }
        event
    }
}

pub fn staff_added(company: CompanyId, staff: StaffId, n: &str, role: Role) -> Event {
    Event::StaffAdded(StaffAdded {
        company,
        staff,
        name: name(n),
        role,
    })
}

pub fn group_created(company: CompanyId, group: GroupId, n: &str, routing: RoutingType) -> Event {
    Event::GroupCreated(GroupCreated {
        company,
        group,
        name: name(n),
        routing,
    })
}

pub fn gs(company: CompanyId, group: GroupId, staff: StaffId) -> GroupStaff {
    GroupStaff {
        company,
        group,
        staff,
    }
}

pub fn assigned(
    conversation: ConversationId,
    assignee: StaffId,
    previous: Option<StaffId>,
) -> Event {
    Event::ConversationAssigned(ConversationAssigned {
        conversation,
        assignee,
        previous_assignee: previous,
        round_robin: false,
    })
}

pub fn invited(conversation: ConversationId, staff: StaffId) -> Event {
    Event::StaffInvitedToRoom(StaffInvitedToRoom {
        conversation,
        staff,
    })
}

pub fn closed(conversation: ConversationId) -> Event {
    Event::ConversationClosed(ConversationClosed { conversation })
}

pub fn staff(id: StaffId) -> Actor {
    Actor::Staff(id)
}

// ---- given / when / then ----

pub fn given(events: Vec<Event>) -> Given {
    Given { events }
}

pub struct Given {
    events: Vec<Event>,
}

impl Given {
    pub fn state(&self) -> State {
        State::from_events(&self.events)
    }

    pub fn when(self, actor: Actor, command: Command) -> Then {
        let state = self.state();
        let result = decide(&state, &command, actor);
        Then { result }
    }
}

pub struct Then {
    result: Result<Vec<Event>, backchannel_domain::DomainError>,
}

impl Then {
    #[track_caller]
    pub fn then_expect(self, expected: Vec<Event>) {
        match self.result {
            Ok(events) => assert_eq!(events, expected),
            Err(err) => panic!("expected events, got error {:?}: {err}", err.code()),
        }
    }

    #[track_caller]
    pub fn then_error(self, code: ErrorCode) {
        match self.result {
            Ok(events) => panic!("expected {code}, got events {events:?}"),
            Err(err) => assert_eq!(err.code(), code, "unexpected error: {err}"),
        }
    }

    /// The events, for tests that inspect them further.
    #[track_caller]
    pub fn events(self) -> Vec<Event> {
        match self.result {
            Ok(events) => events,
            Err(err) => panic!("expected events, got error {:?}: {err}", err.code()),
        }
    }
}
