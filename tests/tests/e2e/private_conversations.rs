//! SPEC sections 2, 3 and 5: the private-conversation scenario, through every
//! path an agent could learn about a conversation from.

use serde_json::{Value, json};

use crate::support::*;

/// What one staff member can learn about conversation `c` on every path.
#[derive(Debug, PartialEq)]
struct Sight {
    /// `conversation(id)`: `Ok(access rule)` or the error code.
    lookup: Result<String, String>,
    /// In `conversations`, and in its `totalCount`.
    listed: bool,
    total: u64,
    /// In the overview's column for its status, and that column's count.
    overview: bool,
    overview_count: u64,
    /// Notified of its opening (listed in `notifications`).
    notified: bool,
}

async fn sight(server: &TestServer, who: &Member, c: &str, group: &str, status: &str) -> Sight {
    let lookup = server
        .staff(&who.token, CONVERSATION, json!({ "id": c }))
        .await;
    let lookup = match lookup.code() {
        None => Ok(lookup.data()["conversation"]["accessRule"]
            .as_str()
            .unwrap()
            .to_owned()),
        Some(code) => {
            assert!(
                !lookup.text.contains("Casey") && !lookup.text.contains("parcel"),
                "a refusal leaks nothing: {}",
                lookup.text
            );
            Err(code.to_owned())
        }
    };
    let list = ok(server, who, LIST, json!({})).await;
    let (ids, total) = listed(&list);
    let overview = ok(server, who, OVERVIEW, json!({ "g": group })).await;
    let (items, overview_count) = column(&overview, status);
    let notifications = ok(server, who, NOTIFICATIONS, json!({})).await;
    Sight {
        lookup,
        listed: ids.iter().any(|id| id == c),
        total,
        overview: items.iter().any(|id| id == c),
        overview_count,
        notified: notified_about(&notifications).iter().any(|id| id == c),
    }
}

fn sees(rule: &str, status_count: u64) -> Sight {
    Sight {
        lookup: Ok(rule.to_owned()),
        listed: true,
        total: 1,
        overview: true,
        overview_count: status_count,
        notified: true,
    }
}

fn restricted() -> Sight {
    Sight {
        lookup: Err("RESTRICTED_ACCESS".to_owned()),
        listed: false,
        total: 0,
        overview: false,
        overview_count: 0,
        notified: true,
    }
}

/// The admin is not a group member, so is never notified of an opening.
fn admin_sees() -> Sight {
    Sight {
        notified: false,
        ..sees("R1", 1)
    }
}

async fn conversation_data(sub: &mut Subscription) -> Value {
    sub.next_data("conversationEvents").await
}

#[tokio::test]
async fn a_private_conversation_disappears_for_the_group_once_assigned() {
    let (mut server, created) = TestServer::with_companies(&["Acme"]).await;
    let acme = Company::new(&server, &created[0]);
    let admin = acme.add_staff("Ada Admin", "ADMIN").await;
    let a = acme.add_staff("Alice Agent", "AGENT").await;
    let b = acme.add_staff("Bob Agent", "AGENT").await;
    let c = acme.add_staff("Carl Agent", "AGENT").await;
    let support = acme.add_group("Support", "BROADCAST", &[&a, &b, &c]).await;
    acme.privacy(&admin, true, true).await;

    // Everyone of the group listens for notifications before the chat opens.
    let mut live = Vec::new();
    for agent in [&a, &b, &c] {
        live.push(
            server
                .subscribe_staff(&agent.token, NOTIFICATIONS_LIVE, json!({}))
                .await,
        );
    }
    let casey = acme
        .start(&support, "Casey Customer", "CHAT", "My parcel is late")
        .await;
    let id = casey.conversation.as_str();

    for sub in &mut live {
        let n = sub.next_data("notifications").await;
        assert_eq!(n["kind"], "CONVERSATION_OPENED");
        assert_eq!(n["conversationId"], id);
    }
    // R6: queued, private, broadcast: every member sees and may open it.
    for agent in [&a, &b, &c] {
        assert_eq!(
            sight(&server, agent, id, &support, "queued").await,
            sees("R6", 1)
        );
        let opened = ok(&server, agent, CONVERSATION, json!({ "id": id })).await;
        assert_eq!(opened["conversation"]["effectivelyPrivate"], true);
        assert_eq!(opened["conversation"]["status"], "QUEUED");
    }

    let mut a_events = server
        .subscribe_staff(&a.token, EVENTS_LIVE, json!({ "c": id }))
        .await;
    let mut b_events = server
        .subscribe_staff(&b.token, EVENTS_LIVE, json!({ "c": id }))
        .await;
    let mut c_events = server
        .subscribe_staff(&c.token, EVENTS_LIVE, json!({ "c": id }))
        .await;

    ok(&server, &a, ASSIGN, json!({ "c": id, "s": a.id })).await;

    assert_eq!(conversation_data(&mut a_events).await["kind"], "ASSIGNED");
    for sub in [&mut b_events, &mut c_events] {
        let first = sub.next().await;
        assert_eq!(
            first.code(),
            Some("RESTRICTED_ACCESS"),
            "the stream ends before showing the assignment: {first:?}"
        );
        assert_eq!(sub.next().await, Frame::Complete);
        assert!(!sub.wire().contains("ASSIGNED"), "{}", sub.wire());
    }
    // The heart of the feature: B and C lose it on every path, keep the notification.
    for agent in [&b, &c] {
        assert_eq!(
            sight(&server, agent, id, &support, "handling").await,
            restricted()
        );
        let mut again = server
            .subscribe_staff(&agent.token, EVENTS_LIVE, json!({ "c": id }))
            .await;
        assert_eq!(again.next().await.code(), Some("RESTRICTED_ACCESS"));
    }
    assert_eq!(
        sight(&server, &a, id, &support, "handling").await,
        sees("R3", 1)
    );
    assert_eq!(
        sight(&server, &admin, id, &support, "handling").await,
        admin_sees()
    );

    // The admin makes it public: B sees it again (R5), live too.
    ok(&server, &admin, SET_PRIVACY, json!({ "c": id, "p": false })).await;
    assert_eq!(
        sight(&server, &b, id, &support, "handling").await,
        sees("R5", 1)
    );
    let mut b_events = server
        .subscribe_staff(&b.token, EVENTS_LIVE, json!({ "c": id }))
        .await;
    ok(
        &server,
        &a,
        SEND,
        json!({ "c": id, "b": "On its way", "v": "PUBLIC" }),
    )
    .await;
    assert_eq!(conversation_data(&mut b_events).await["body"], "On its way");

    // Private again; then the company switch off makes everything public.
    ok(&server, &admin, SET_PRIVACY, json!({ "c": id, "p": true })).await;
    assert_eq!(b_events.next().await.code(), Some("RESTRICTED_ACCESS"));
    assert_eq!(
        sight(&server, &b, id, &support, "handling").await,
        restricted()
    );
    acme.privacy(&admin, false, true).await;
    for agent in [&b, &c] {
        assert_eq!(
            sight(&server, agent, id, &support, "handling").await,
            sees("R5", 1)
        );
    }
    let flags = ok(&server, &b, CONVERSATION, json!({ "id": id })).await;
    assert_eq!(
        flags["conversation"]["private"], true,
        "its own flag is kept"
    );
    assert_eq!(flags["conversation"]["effectivelyPrivate"], false);

    // On again: each conversation's own flag is back in force.
    acme.privacy(&admin, true, true).await;
    for agent in [&b, &c] {
        assert_eq!(
            sight(&server, agent, id, &support, "handling").await,
            restricted()
        );
    }
    assert_eq!(
        sight(&server, &a, id, &support, "handling").await,
        sees("R3", 1)
    );

    // Notifications kept arriving for the group only as SPEC section 5 says:
    // nothing more for B and C since the opening. The marker: a new chat in
    // the group, which notifies every member.
    let marker = acme.start(&support, "Mark Marker", "CHAT", "Marker").await;
    for sub in &mut live[1..] {
        sub.quiet_until(|d| d["notifications"]["conversationId"] == marker.conversation.as_str())
            .await;
    }
    server.stop().await;
}

/// Filters narrow what the viewer may see; they never widen it.
#[tokio::test]
async fn filters_and_counts_never_reveal_a_hidden_conversation() {
    let (mut server, created) = TestServer::with_companies(&["Acme"]).await;
    let acme = Company::new(&server, &created[0]);
    let a = acme.add_staff("Alice Agent", "AGENT").await;
    let b = acme.add_staff("Bob Agent", "AGENT").await;
    let support = acme.add_group("Support", "BROADCAST", &[&a, &b]).await;
    acme.privacy(&acme.owner, true, true).await;
    let casey = acme.start(&support, "Casey", "SOCIAL", "Hello").await;
    ok(
        &server,
        &a,
        ASSIGN,
        json!({ "c": casey.conversation, "s": a.id }),
    )
    .await;

    let filters = [
        json!({}),
        json!({ "status": "HANDLING" }),
        json!({ "groupId": support }),
        json!({ "assigneeId": a.id }),
        json!({ "channel": "SOCIAL" }),
        json!({ "status": "HANDLING", "groupId": support, "assigneeId": a.id, "channel": "SOCIAL" }),
    ];
    for filter in filters {
        let theirs = ok(&server, &a, LIST, json!({ "f": filter })).await;
        assert_eq!(listed(&theirs), (vec![casey.conversation.clone()], 1));
        let hidden = ok(&server, &b, LIST, json!({ "f": filter })).await;
        assert_eq!(listed(&hidden), (vec![], 0), "{filter}: {hidden}");
    }
    server.stop().await;
}

/// Open subscriptions are re-checked on every commit, whatever stream it is
/// on: a company switch, a removal from a group, a deactivation.
#[tokio::test]
async fn open_subscriptions_end_when_their_viewer_loses_the_right() {
    let (mut server, created) = TestServer::with_companies(&["Acme"]).await;
    let acme = Company::new(&server, &created[0]);
    let a = acme.add_staff("Alice Agent", "AGENT").await;
    let b = acme.add_staff("Bob Agent", "AGENT").await;
    let sofia = acme.add_staff("Sofia Supervisor", "SUPERVISOR").await;
    let support = acme.add_group("Support", "BROADCAST", &[&a, &b]).await;
    acme.add_supervisor(&support, &sofia).await;
    // Public for now: the switch is off, new conversations are born private.
    acme.privacy(&acme.owner, false, true).await;
    let casey = acme.start(&support, "Casey", "CHAT", "Hello").await;
    let id = casey.conversation.as_str();
    ok(&server, &a, ASSIGN, json!({ "c": id, "s": a.id })).await;

    // The company switch on: B (R5 until now) is cut off at once.
    let mut b_events = server
        .subscribe_staff(&b.token, EVENTS_LIVE, json!({ "c": id }))
        .await;
    acme.privacy(&acme.owner, true, true).await;
    assert_eq!(b_events.next().await.code(), Some("RESTRICTED_ACCESS"));

    // The supervisor removed from the group: cut off too.
    let mut sofia_events = server
        .subscribe_staff(&sofia.token, EVENTS_LIVE, json!({ "c": id }))
        .await;
    acme.as_owner(
        "removeGroupSupervisor",
        "mutation($g: ID!, $s: ID!) { removeGroupSupervisor(groupId: $g, staffId: $s) { group { id } } }",
        json!({ "g": support, "s": sofia.id }),
    )
    .await;
    assert_eq!(sofia_events.next().await.code(), Some("RESTRICTED_ACCESS"));

    // The assignee deactivated: both her streams end as unauthenticated.
    let mut a_events = server
        .subscribe_staff(&a.token, EVENTS_LIVE, json!({ "c": id }))
        .await;
    let mut a_notes = server
        .subscribe_staff(&a.token, NOTIFICATIONS_LIVE, json!({}))
        .await;
    acme.deactivate(&a).await;
    assert_eq!(a_events.next().await.code(), Some("UNAUTHENTICATED"));
    assert_eq!(a_notes.next().await.code(), Some("UNAUTHENTICATED"));
    let reply = server.staff(&a.token, LIST, json!({})).await;
    assert_eq!(reply.code(), Some("UNAUTHENTICATED"));
    server.stop().await;
}
