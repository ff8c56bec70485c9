//! Property tests over random command sequences in the fixed world of
//! `support`: whatever staff and customers do, and in whatever order, the
//! privacy promise and the state's invariants hold, and replaying the produced
//! events rebuilds exactly the same state.

mod support;

use std::collections::HashMap;

use backchannel_domain::commands::Command;
use backchannel_domain::events::{Event, StreamId};
use backchannel_domain::ids::{ConversationId, MessageId, StaffId};
use backchannel_domain::model::{
    Actor, Channel, ConversationStatus, MessageVisibility, Permission, Role, RoutingType,
};
use backchannel_domain::{Access, Rule, State, decide};
use proptest::prelude::*;
use support::*;

const CONVERSATIONS: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    Open {
        conv: usize,
        group: usize,
        channel: usize,
        by_staff: Option<usize>,
    },
    Assign {
        conv: usize,
        actor: usize,
        target: usize,
    },
    Invite {
        conv: usize,
        actor: usize,
        target: usize,
    },
    SetPrivacy {
        conv: usize,
        actor: usize,
        private: bool,
    },
    Send {
        conv: usize,
        actor: Option<usize>,
        private: bool,
    },
    Close {
        conv: usize,
        actor: Option<usize>,
    },
    Reopen {
        conv: usize,
        actor: usize,
    },
    Settings {
        actor: usize,
        enabled: bool,
        new_private: bool,
    },
    Deactivate {
        actor: usize,
        target: usize,
    },
    AddMember {
        actor: usize,
        group: usize,
        target: usize,
    },
    RemoveMember {
        actor: usize,
        group: usize,
        target: usize,
    },
    Grant {
        actor: usize,
        target: usize,
    },
    Revoke {
        actor: usize,
        target: usize,
    },
    ChangeRole {
        actor: usize,
        target: usize,
        role: usize,
    },
    SetRouting {
        actor: usize,
        group: usize,
        broadcast: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let c = 0..CONVERSATIONS;
    let s = 0..12usize;
    prop_oneof![
        3 => (c.clone(), 0..2usize, 0..4usize, proptest::option::of(s.clone()))
            .prop_map(|(conv, group, channel, by_staff)| Op::Open { conv, group, channel, by_staff }),
        4 => (c.clone(), s.clone(), s.clone()).prop_map(|(conv, actor, target)| Op::Assign { conv, actor, target }),
        2 => (c.clone(), s.clone(), s.clone()).prop_map(|(conv, actor, target)| Op::Invite { conv, actor, target }),
        2 => (c.clone(), s.clone(), any::<bool>()).prop_map(|(conv, actor, private)| Op::SetPrivacy { conv, actor, private }),
        3 => (c.clone(), proptest::option::of(s.clone()), any::<bool>()).prop_map(|(conv, actor, private)| Op::Send { conv, actor, private }),
        2 => (c.clone(), proptest::option::of(s.clone())).prop_map(|(conv, actor)| Op::Close { conv, actor }),
        1 => (c, s.clone()).prop_map(|(conv, actor)| Op::Reopen { conv, actor }),
        2 => (s.clone(), any::<bool>(), any::<bool>()).prop_map(|(actor, enabled, new_private)| Op::Settings { actor, enabled, new_private }),
        1 => (s.clone(), s.clone()).prop_map(|(actor, target)| Op::Deactivate { actor, target }),
        1 => (s.clone(), 0..2usize, s.clone()).prop_map(|(actor, group, target)| Op::AddMember { actor, group, target }),
        1 => (s.clone(), 0..2usize, s.clone()).prop_map(|(actor, group, target)| Op::RemoveMember { actor, group, target }),
        1 => (s.clone(), s.clone()).prop_map(|(actor, target)| Op::Grant { actor, target }),
        1 => (s.clone(), s.clone()).prop_map(|(actor, target)| Op::Revoke { actor, target }),
        1 => (s.clone(), s.clone(), 0..4usize).prop_map(|(actor, target, role)| Op::ChangeRole { actor, target, role }),
        1 => (s.clone(), 0..2usize, any::<bool>()).prop_map(|(actor, group, broadcast)| Op::SetRouting { actor, group, broadcast }),
    ]
}

struct Pools {
    staff: Vec<StaffId>,
    conversations: Vec<ConversationId>,
}

impl Pools {
    fn new(w: &World) -> Self {
        Pools {
            staff: vec![
                w.owner,
                w.admin,
                w.supervisor,
                w.sales_supervisor,
                w.a,
                w.b,
                w.c,
                w.d,
                w.e,
                w.h,
                w.z,
                w.x,
            ],
            conversations: (0..CONVERSATIONS).map(|_| ConversationId::new()).collect(),
        }
    }
}

fn to_command(w: &World, p: &Pools, op: &Op) -> (Actor, Command) {
    let groups = [w.support, w.sales];
    let channels = [
        Channel::Chat,
        Channel::Social,
        Channel::Email,
        Channel::Call,
    ];
    let roles = [Role::Owner, Role::Admin, Role::Supervisor, Role::Agent];
    let st = |i: usize| p.staff[i];
    let cv = |i: usize| p.conversations[i];
    match *op {
        Op::Open {
            conv,
            group,
            channel,
            by_staff,
        } => (
            by_staff.map_or(Actor::Customer(cv(conv)), |s| Actor::Staff(st(s))),
            Command::OpenConversation {
                company: w.acme,
                conversation: cv(conv),
                group: groups[group],
                channel: channels[channel],
                customer: name("Pat"),
                first_message: None,
            },
        ),
        Op::Assign {
            conv,
            actor,
            target,
        } => (
            Actor::Staff(st(actor)),
            Command::AssignConversation {
                conversation: cv(conv),
                assignee: st(target),
            },
        ),
        Op::Invite {
            conv,
            actor,
            target,
        } => (
            Actor::Staff(st(actor)),
            Command::InviteToRoom {
                conversation: cv(conv),
                staff: st(target),
            },
        ),
        Op::SetPrivacy {
            conv,
            actor,
            private,
        } => (
            Actor::Staff(st(actor)),
            Command::SetConversationPrivacy {
                conversation: cv(conv),
                private,
            },
        ),
        Op::Send {
            conv,
            actor,
            private,
        } => (
            actor.map_or(Actor::Customer(cv(conv)), |s| Actor::Staff(st(s))),
            Command::SendMessage {
                conversation: cv(conv),
                message: MessageId::new(),
                visibility: if private {
                    MessageVisibility::Private
                } else {
                    MessageVisibility::Public
                },
                body: body("text"),
            },
        ),
        Op::Close { conv, actor } => (
            actor.map_or(Actor::Customer(cv(conv)), |s| Actor::Staff(st(s))),
            Command::CloseConversation {
                conversation: cv(conv),
            },
        ),
        Op::Reopen { conv, actor } => (
            Actor::Staff(st(actor)),
            Command::ReopenConversation {
                conversation: cv(conv),
            },
        ),
        Op::Settings {
            actor,
            enabled,
            new_private,
        } => (
            Actor::Staff(st(actor)),
            Command::UpdatePrivacySettings {
                company: w.acme,
                private_conversations_enabled: enabled,
                new_conversations_private: new_private,
            },
        ),
        Op::Deactivate { actor, target } => (
            Actor::Staff(st(actor)),
            Command::DeactivateStaff {
                company: w.acme,
                staff: st(target),
            },
        ),
        Op::AddMember {
            actor,
            group,
            target,
        } => (
            Actor::Staff(st(actor)),
            Command::AddGroupMember {
                company: w.acme,
                group: groups[group],
                staff: st(target),
            },
        ),
        Op::RemoveMember {
            actor,
            group,
            target,
        } => (
            Actor::Staff(st(actor)),
            Command::RemoveGroupMember {
                company: w.acme,
                group: groups[group],
                staff: st(target),
            },
        ),
        Op::Grant { actor, target } => (
            Actor::Staff(st(actor)),
            Command::GrantPermission {
                company: w.acme,
                staff: st(target),
                permission: Permission::EnquiryHistory,
            },
        ),
        Op::Revoke { actor, target } => (
            Actor::Staff(st(actor)),
            Command::RevokePermission {
                company: w.acme,
                staff: st(target),
                permission: Permission::EnquiryHistory,
            },
        ),
        Op::ChangeRole {
            actor,
            target,
            role,
        } => (
            Actor::Staff(st(actor)),
            Command::ChangeRole {
                company: w.acme,
                staff: st(target),
                role: roles[role],
            },
        ),
        Op::SetRouting {
            actor,
            group,
            broadcast,
        } => (
            Actor::Staff(st(actor)),
            Command::SetGroupRouting {
                company: w.acme,
                group: groups[group],
                routing: if broadcast {
                    RoutingType::Broadcast
                } else {
                    RoutingType::RoundRobin
                },
            },
        ),
    }
}

/// The privacy promise, checked without trusting the rule order: an agent who
/// can view an effectively private conversation assigned to someone else is in
/// its room, or reads it as a closed enquiry of their group.
fn check_no_agent_sees_anothers_private_conversation(state: &State) {
    for staff in state.staff.values().filter(|s| s.role == Role::Agent) {
        for conv in state.conversations.values() {
            let assigned_elsewhere = conv.assignee.is_some_and(|a| a != staff.id);
            if !(state.is_effectively_private(conv) && assigned_elsewhere) {
                continue;
            }
            let access = state.access(staff.id, conv.id);
            if let Access::Granted(rule) = access {
                let group = &state.groups[&conv.group];
                let participant = conv.is_participant(staff.id);
                let history = conv.status == ConversationStatus::Closed
                    && staff.has(Permission::EnquiryHistory)
                    && (group.is_member(staff.id) || group.is_supervisor(staff.id));
                assert!(
                    matches!(rule, Rule::R3 | Rule::R4) && (participant || history),
                    "agent {:?} sees private {:?} of {:?} by {rule}",
                    staff.id,
                    conv.id,
                    conv.assignee
                );
            }
        }
    }
}

fn check_invariants(state: &State, w: &World) {
    let owners = state
        .staff
        .values()
        .filter(|s| s.company == w.acme && s.role == Role::Owner)
        .count();
    assert_eq!(owners, 1, "exactly one owner");
    for conv in state.conversations.values() {
        match conv.status {
            ConversationStatus::Queued => assert_eq!(conv.assignee, None),
            ConversationStatus::Handling => assert!(conv.assignee.is_some()),
            ConversationStatus::Closed => {}
        }
    }
}

fn check_events(before: &State, events: &[Event]) {
    for event in events {
        if let Event::PrivateMessagePosted(p) = event {
            let conv = &before.conversations[&p.conversation];
            assert!(conv.channel.supports_private_messages());
        }
        if let StreamId::Conversation(id) = event.stream()
            && let Some(conv) = before.conversations.get(&id)
            && conv.status == ConversationStatus::Closed
        {
            assert!(
                matches!(
                    event,
                    Event::ConversationReopened(_) | Event::ConversationPrivacyChanged(_)
                ),
                "closed conversation changed by {event:?}"
            );
        }
    }
}

/// What live subscriptions are routed by (the api's `live.rs`): the events of
/// conversation X's stream change neither who is active staff (with which role
/// and permissions) nor who may view any conversation other than X. So a
/// conversation's own events and its company's stream events are the only
/// ones after which a subscriber's access to it must be checked again.
fn check_only_own_and_company_events_change_access(
    before: &State,
    after: &State,
    events: &[Event],
) {
    let Some(StreamId::Conversation(changed)) = events.first().map(Event::stream) else {
        return;
    };
    // A round-robin opening also takes the turn on its company's stream,
    // which reaches every subscription of the company anyway.
    assert!(
        events
            .iter()
            .all(|e| matches!(e.stream(), StreamId::Company(_))
                || e.stream() == StreamId::Conversation(changed))
    );
    for (id, staff) in &before.staff {
        let now = after.staff.get(id);
        assert_eq!(
            now.map(|s| (s.active, s.role, &s.permissions)),
            Some((staff.active, staff.role, &staff.permissions)),
            "an event of {changed:?} changed staff {id:?}"
        );
        for conversation in before.conversations.keys().filter(|c| **c != changed) {
            assert_eq!(
                after.access(*id, *conversation),
                before.access(*id, *conversation),
                "an event of {changed:?} changed what {id:?} may see of {conversation:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_command_sequences_keep_privacy_and_replay_exactly(ops in proptest::collection::vec(op(), 1..80)) {
        let w = World::new();
        let pools = Pools::new(&w);
        let mut log = w.setup();
        let mut live = State::from_events(&log);
        let mut decisions = Vec::new();
        for op in &ops {
            let (actor, command) = to_command(&w, &pools, op);
            let decision = decide(&live, &command, actor);
            decisions.push((log.len(), actor, command.clone(), decision.clone()));
            if let Ok(events) = decision {
                check_events(&live, &events);
                let before = live.clone();
                for event in &events {
                    live.apply(event);
                }
                check_only_own_and_company_events_change_access(&before, &live, &events);
                log.extend(events);
            }
            check_no_agent_sees_anothers_private_conversation(&live);
            check_invariants(&live, &w);
        }
        let replayed = State::from_events(&log);
        prop_assert_eq!(&replayed, &live);
        let mut counts: HashMap<StreamId, u64> = HashMap::new();
        for event in &log {
            *counts.entry(event.stream()).or_default() += 1;
        }
        for (stream, count) in counts {
            prop_assert_eq!(replayed.stream_version(stream), count);
        }
        // Every decision is reproduced from the log alone: a state rebuilt
        // from the events recorded before it decides the command exactly as
        // the live state did (no clock, randomness or state outside the log).
        for (recorded, actor, command, decision) in &decisions {
            let rebuilt = State::from_events(&log[..*recorded]);
            prop_assert_eq!(&decide(&rebuilt, command, *actor), decision);
        }
    }
}
