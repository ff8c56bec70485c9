#![allow(clippy::unwrap_used)]
//! The private-conversation scenario of SPEC sections 2, 3 and 5, through every
//! read model: lookups, lists, counts, the overview, timelines, notifications.

mod support;

use backchannel_domain::commands::Command;
use backchannel_domain::ids::{ConversationId, StaffId};
use backchannel_domain::model::{Actor, Channel, ConversationStatus, MessageVisibility};
use backchannel_domain::notify::NotificationKind;
use backchannel_projections::{ConversationFilter, Denied, ReadModels};
use support::Desk;

fn sees(models: &ReadModels, viewer: StaffId, c: ConversationId) -> bool {
    let lookup = models.conversation(viewer, c).is_ok();
    let all = ConversationFilter::default();
    let listed = models
        .conversations(viewer, &all, 100, None)
        .items
        .iter()
        .any(|s| s.id == c);
    let counted = models.count_conversations(viewer, &all);
    assert_eq!(
        counted,
        models.conversations(viewer, &all, 100, None).items.len(),
        "count and list agree"
    );
    assert_eq!(lookup, listed, "lookup and list agree for {viewer:?}");
    assert_eq!(
        lookup,
        models.timeline(viewer, c).is_ok(),
        "timeline agrees"
    );
    lookup
}

fn in_overview(models: &ReadModels, viewer: StaffId, desk: &Desk, c: ConversationId) -> bool {
    let overview = models.overview(viewer, desk.support, 50).unwrap();
    [&overview.queued, &overview.handling, &overview.closed]
        .iter()
        .any(|col| col.items.iter().any(|s| s.id == c))
}

#[test]
fn assignment_takes_sight_away_and_public_or_switch_off_gives_it_back() {
    let mut desk = Desk::new();
    desk.privacy(true, true);
    let c = desk.open(desk.support, Channel::Chat);

    // Queued in a broadcast group: A, B, C see it (R6) and were notified.
    for agent in [desk.a, desk.b, desk.c] {
        assert!(sees(&desk.models, agent, c));
        assert!(in_overview(&desk.models, agent, &desk, c));
        let notes = desk.models.notifications(agent, 10, None).items;
        assert!(
            notes
                .iter()
                .any(|n| n.conversation == c && n.kind == NotificationKind::ConversationOpened)
        );
    }
    assert!(!sees(&desk.models, desk.d, c));

    desk.assign(desk.a, c, desk.a);
    assert!(sees(&desk.models, desk.a, c));
    for agent in [desk.b, desk.c] {
        assert!(!sees(&desk.models, agent, c));
        assert_eq!(desk.models.conversation(agent, c), Err(Denied::Restricted));
        assert!(!in_overview(&desk.models, agent, &desk, c));
        let overview = desk.models.overview(agent, desk.support, 50).unwrap();
        assert_eq!(overview.handling.count, 0);
        assert_eq!(overview.queued.count, 0);
        // They keep the notification.
        assert!(
            desk.models
                .notifications(agent, 10, None)
                .items
                .iter()
                .any(|n| n.conversation == c)
        );
    }
    for staff in [desk.admin, desk.owner, desk.supervisor] {
        assert!(sees(&desk.models, staff, c));
    }
    assert_eq!(desk.models.conversation(desk.x, c), Err(Denied::NotFound));

    let admin = desk.admin;
    desk.run(
        Actor::Staff(admin),
        Command::SetConversationPrivacy {
            conversation: c,
            private: false,
        },
    );
    assert!(sees(&desk.models, desk.b, c));
    desk.run(
        Actor::Staff(admin),
        Command::SetConversationPrivacy {
            conversation: c,
            private: true,
        },
    );
    assert!(!sees(&desk.models, desk.b, c));

    desk.privacy(false, true);
    assert!(sees(&desk.models, desk.b, c));
    assert!(in_overview(&desk.models, desk.b, &desk, c));
    desk.privacy(true, true);
    assert!(!sees(&desk.models, desk.b, c));
}

#[test]
fn closed_enquiries_open_to_history_holders_of_the_group() {
    let mut desk = Desk::new();
    desk.privacy(true, true);
    let c = desk.open(desk.support, Channel::Chat);
    desk.assign(desk.a, c, desk.a);
    desk.say(
        Actor::Staff(desk.supervisor),
        c,
        MessageVisibility::Private,
        "refund it",
    );
    assert!(!sees(&desk.models, desk.h, c));
    desk.run(
        Actor::Staff(desk.a),
        Command::CloseConversation { conversation: c },
    );
    assert!(sees(&desk.models, desk.h, c));
    assert!(!sees(&desk.models, desk.b, c));
    let closed = ConversationFilter {
        status: Some(ConversationStatus::Closed),
        ..ConversationFilter::default()
    };
    assert_eq!(desk.models.count_conversations(desk.h, &closed), 1);
    assert_eq!(desk.models.count_conversations(desk.b, &closed), 0);
}

#[test]
fn summaries_count_messages_and_track_the_room() {
    let mut desk = Desk::new();
    let c = desk.open(desk.support, Channel::Chat);
    desk.assign(desk.a, c, desk.a);
    let public = desk.say(
        Actor::Staff(desk.a),
        c,
        MessageVisibility::Public,
        "Hi Carla",
    );
    let whisper = desk.say(
        Actor::Staff(desk.admin),
        c,
        MessageVisibility::Private,
        "vip",
    );
    let admin = desk.admin;
    desk.run(
        Actor::Staff(admin),
        Command::InviteToRoom {
            conversation: c,
            staff: desk.d,
        },
    );
    let s = desk.models.conversation(desk.admin, c).unwrap();
    assert_eq!(s.public_messages, 2);
    assert_eq!(s.private_messages, 1);
    assert_eq!(s.last_public_message, Some(public));
    assert_eq!(s.last_message, Some(whisper));
    assert_eq!(s.participants(), vec![desk.a, desk.d]);
    assert_eq!(s.status, ConversationStatus::Handling);
    // The transfer hands the room over; the invitee stays.
    desk.assign(desk.a, c, desk.b);
    let s = desk.models.conversation(desk.admin, c).unwrap();
    assert_eq!(s.participants(), vec![desk.b, desk.d]);
    let mine = ConversationFilter {
        assignee: Some(desk.b),
        ..ConversationFilter::default()
    };
    assert_eq!(desk.models.count_conversations(desk.b, &mine), 1);
    assert_eq!(
        desk.models.count_conversations(desk.a, &mine),
        1,
        "public: A still sees it"
    );
}

#[test]
fn round_robin_conversations_are_never_seen_by_other_members_when_private() {
    let mut desk = Desk::new();
    let e = StaffId::new();
    let (co, owner, sales) = (desk.company, desk.owner, desk.sales);
    desk.run(
        Actor::Staff(owner),
        Command::AddStaff {
            company: co,
            staff: e,
            name: support::name("Eve"),
            role: backchannel_domain::model::Role::Agent,
        },
    );
    desk.run(
        Actor::Staff(owner),
        Command::AddGroupMember {
            company: co,
            group: sales,
            staff: e,
        },
    );
    desk.privacy(true, true);
    let first = desk.open(desk.sales, Channel::Social);
    let second = desk.open(desk.sales, Channel::Social);
    let s1 = desk
        .models
        .conversation(desk.admin, first)
        .unwrap()
        .assignee;
    let s2 = desk
        .models
        .conversation(desk.admin, second)
        .unwrap()
        .assignee;
    assert_eq!((s1, s2), (Some(desk.d), Some(e)));
    assert!(sees(&desk.models, desk.d, first) && !sees(&desk.models, desk.d, second));
    assert!(sees(&desk.models, e, second) && !sees(&desk.models, e, first));
}

#[test]
fn notifications_have_read_state() {
    let mut desk = Desk::new();
    let c1 = desk.open(desk.support, Channel::Chat);
    let _c2 = desk.open(desk.support, Channel::Chat);
    assert_eq!(desk.models.unread_notifications(desk.b), 2);
    let newest = desk.models.notifications(desk.b, 10, None).items;
    assert_eq!(newest.len(), 2);
    assert!(newest[0].id > newest[1].id);
    let older = desk
        .models
        .notifications(desk.b, 10, Some(newest[0].id))
        .items;
    assert_eq!(older.len(), 1);
    assert_eq!(older[0].conversation, c1);
    let (co, b) = (desk.company, desk.b);
    desk.run(
        Actor::Staff(b),
        Command::MarkNotificationsRead {
            company: co,
            up_to: newest[1].id,
        },
    );
    assert_eq!(desk.models.unread_notifications(desk.b), 1);
    assert_eq!(desk.models.unread_notifications(desk.c), 2);
}
