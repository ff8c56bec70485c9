#![allow(clippy::unwrap_used)]
//! The compact notification model gives exactly what `domain::notify` — the
//! rule's one definition — says, event by event, for every staff member.

mod support;

use backchannel_domain::State;
use backchannel_domain::commands::Command;
use backchannel_domain::ids::{ConversationId, MessageId, StaffId};
use backchannel_domain::model::{Actor, Channel, MessageVisibility};
use backchannel_domain::notify::notifications;
use backchannel_domain::values::MessageBody;
use proptest::prelude::*;
use support::{Desk, name};

#[derive(Debug, Clone)]
enum Op {
    Open {
        support: bool,
        by_staff: Option<usize>,
    },
    Assign {
        conv: usize,
        actor: usize,
        to: usize,
    },
    Invite {
        conv: usize,
        to: usize,
    },
    Whisper {
        conv: usize,
        actor: usize,
    },
    AddMember {
        support: bool,
        staff: usize,
    },
    RemoveMember {
        support: bool,
        staff: usize,
    },
    AddSupervisor {
        support: bool,
    },
    RemoveSupervisor {
        support: bool,
    },
    Deactivate {
        staff: usize,
    },
    MarkRead {
        staff: usize,
        back: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let s = 0..8usize;
    let c = 0..5usize;
    prop_oneof![
        4 => (any::<bool>(), proptest::option::of(s.clone())).prop_map(|(support, by_staff)| Op::Open { support, by_staff }),
        2 => (c.clone(), s.clone(), s.clone()).prop_map(|(conv, actor, to)| Op::Assign { conv, actor, to }),
        1 => (c.clone(), s.clone()).prop_map(|(conv, to)| Op::Invite { conv, to }),
        2 => (c, s.clone()).prop_map(|(conv, actor)| Op::Whisper { conv, actor }),
        1 => (any::<bool>(), s.clone()).prop_map(|(support, staff)| Op::AddMember { support, staff }),
        1 => (any::<bool>(), s.clone()).prop_map(|(support, staff)| Op::RemoveMember { support, staff }),
        1 => any::<bool>().prop_map(|support| Op::AddSupervisor { support }),
        1 => any::<bool>().prop_map(|support| Op::RemoveSupervisor { support }),
        1 => s.clone().prop_map(|staff| Op::Deactivate { staff }),
        1 => (s, 0..6u64).prop_map(|(staff, back)| Op::MarkRead { staff, back }),
    ]
}

fn pool(d: &Desk) -> Vec<StaffId> {
    vec![d.owner, d.admin, d.supervisor, d.a, d.b, d.c, d.d, d.h]
}

fn play(desk: &mut Desk, convs: &mut Vec<ConversationId>, op: &Op) {
    let p = pool(desk);
    let (co, owner) = (desk.company, Actor::Staff(desk.owner));
    let group = |support: bool| if support { desk.support } else { desk.sales };
    let conv = |i: usize| convs.get(i % convs.len().max(1)).copied();
    let command = match *op {
        Op::Open { support, by_staff } => {
            let c = ConversationId::new();
            let actor = by_staff.map_or(Actor::Customer(c), |s| Actor::Staff(p[s]));
            let command = Command::OpenConversation {
                company: co,
                conversation: c,
                group: group(support),
                channel: Channel::Chat,
                customer: name("Pat"),
                first_message: None,
            };
            if desk.try_run(actor, command).is_ok() {
                convs.push(c);
            }
            return;
        }
        Op::Assign { conv: i, actor, to } => conv(i).map(|c| {
            (
                Actor::Staff(p[actor]),
                Command::AssignConversation {
                    conversation: c,
                    assignee: p[to],
                },
            )
        }),
        Op::Invite { conv: i, to } => conv(i).map(|c| {
            (
                Actor::Staff(desk.admin),
                Command::InviteToRoom {
                    conversation: c,
                    staff: p[to],
                },
            )
        }),
        Op::Whisper { conv: i, actor } => conv(i).map(|c| {
            (
                Actor::Staff(p[actor]),
                Command::SendMessage {
                    conversation: c,
                    message: MessageId::new(),
                    visibility: MessageVisibility::Private,
                    body: MessageBody::parse("psst").unwrap(),
                },
            )
        }),
        Op::AddMember { support, staff } => Some((
            owner,
            Command::AddGroupMember {
                company: co,
                group: group(support),
                staff: p[staff],
            },
        )),
        Op::RemoveMember { support, staff } => Some((
            owner,
            Command::RemoveGroupMember {
                company: co,
                group: group(support),
                staff: p[staff],
            },
        )),
        Op::AddSupervisor { support } => Some((
            owner,
            Command::AddGroupSupervisor {
                company: co,
                group: group(support),
                staff: desk.supervisor,
            },
        )),
        Op::RemoveSupervisor { support } => Some((
            owner,
            Command::RemoveGroupSupervisor {
                company: co,
                group: group(support),
                staff: desk.supervisor,
            },
        )),
        Op::Deactivate { staff } => Some((
            owner,
            Command::DeactivateStaff {
                company: co,
                staff: p[staff],
            },
        )),
        Op::MarkRead { staff, back } => Some((
            Actor::Staff(p[staff]),
            Command::MarkNotificationsRead {
                company: co,
                up_to: (desk.log.len() as u64).saturating_sub(back),
            },
        )),
    };
    if let Some((actor, command)) = command {
        let _ = desk.try_run(actor, command);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn stored_notifications_are_exactly_what_the_rule_says(ops in proptest::collection::vec(op(), 1..60)) {
        let mut desk = Desk::new();
        let mut convs = Vec::new();
        for op in &ops {
            play(&mut desk, &mut convs, op);
        }
        // The rule, event by event, on the state that includes the event.
        let mut state = State::default();
        let mut expected: Vec<(StaffId, u64, String)> = Vec::new();
        for recorded in &desk.log {
            state.apply(&recorded.event);
            for n in notifications(&state, &recorded.event, recorded.envelope.actor) {
                expected.push((n.recipient, recorded.envelope.position, format!("{:?} {:?} {:?} {:?}", n.kind, n.conversation, n.group, n.channel)));
            }
        }
        for staff in pool(&desk) {
            let mut want: Vec<(u64, String)> = expected
                .iter()
                .filter(|(r, _, _)| *r == staff)
                .map(|(_, p, d)| (*p, d.clone()))
                .collect();
            want.reverse();
            let got: Vec<(u64, String)> = desk
                .models
                .notifications(staff, 1000, None)
                .items
                .iter()
                .map(|n| (n.id, format!("{:?} {:?} {:?} {:?}", n.kind, n.conversation, n.group, n.channel)))
                .collect();
            prop_assert_eq!(&got, &want);
            // Paging by three gives the same sequence.
            let mut paged = Vec::new();
            let mut before = None;
            loop {
                let page = desk.models.notifications(staff, 3, before);
                paged.extend(page.items.iter().map(|n| n.id));
                if !page.has_next {
                    break;
                }
                before = paged.last().copied();
            }
            prop_assert_eq!(&paged, &want.iter().map(|(p, _)| *p).collect::<Vec<_>>());
            // Paging backward by three, from the oldest, gives it too.
            let mut backward: Vec<u64> = Vec::new();
            let mut after = None;
            loop {
                let page = desk.models.notifications_backward(staff, 3, after);
                let mut ids: Vec<u64> = page.items.iter().map(|n| n.id).collect();
                prop_assert!(ids.len() <= 3);
                ids.extend(backward);
                backward = ids;
                if !page.has_next {
                    break;
                }
                after = backward.first().copied();
            }
            prop_assert_eq!(&backward, &paged);
            let read = desk.models.state().staff[&staff].notifications_read_up_to;
            let unread = want.iter().filter(|(p, _)| *p > read).count();
            prop_assert_eq!(desk.models.unread_notifications(staff), unread);
        }
    }
}
