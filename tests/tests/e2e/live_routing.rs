//! SPEC section 8: an event costs work only for the subscriptions it concerns
//! (routed by conversation and recipient), not for every open subscription;
//! a subscription's registration goes when the subscription ends, and
//! shutdown ends every live stream.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::*;

const CUSTOMER_SEND: &str = "mutation($b: String!) { sendMessage(body: $b) { message { id } } }";

/// Waits until `done` holds, for at most the websocket client's patience.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < PATIENCE, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_event_reaches_only_the_subscriptions_it_concerns() {
    let (mut server, created) = TestServer::with_companies(&["Acme", "Globex"]).await;
    let acme = Company::new(&server, &created[0]);
    let globex = Company::new(&server, &created[1]);
    let a = acme.add_staff("Alice Agent", "AGENT").await;
    let support = acme.add_group("Support", "BROADCAST", &[&a]).await;
    let casey = acme.start(&support, "Casey", "CHAT", "Hello").await;
    let mut others = Vec::new();
    for i in 0..4 {
        others.push(
            acme.start(&support, &format!("Other {i}"), "CHAT", "Hi")
                .await,
        );
    }
    let globex_group = globex.add_group("Help", "BROADCAST", &[]).await;
    let gina = globex.start(&globex_group, "Gina", "CHAT", "Hallo").await;

    // The two subscriptions the customer's messages concern...
    let mut owner_events = server
        .subscribe_staff(
            &acme.owner.token,
            EVENTS_LIVE,
            json!({ "c": casey.conversation }),
        )
        .await;
    let mut casey_live = server
        .subscribe_customer(&casey.token, CUSTOMER_MESSAGES_LIVE, json!({}))
        .await;
    // ... and many they do not: other conversations, notifications, another company.
    let mut acme_staff_unrelated = Vec::new();
    let mut unrelated = Vec::new();
    for other in &others {
        acme_staff_unrelated.push(
            server
                .subscribe_staff(
                    &acme.owner.token,
                    EVENTS_LIVE,
                    json!({ "c": other.conversation }),
                )
                .await,
        );
        unrelated.push(
            server
                .subscribe_customer(&other.token, CUSTOMER_MESSAGES_LIVE, json!({}))
                .await,
        );
    }
    let mut a_notes = server
        .subscribe_staff(&a.token, NOTIFICATIONS_LIVE, json!({}))
        .await;
    unrelated.push(
        server
            .subscribe_staff(
                &globex.owner.token,
                EVENTS_LIVE,
                json!({ "c": gina.conversation }),
            )
            .await,
    );
    unrelated.push(
        server
            .subscribe_staff(&globex.owner.token, NOTIFICATIONS_LIVE, json!({}))
            .await,
    );
    unrelated.push(
        server
            .subscribe_customer(&gina.token, CUSTOMER_MESSAGES_LIVE, json!({}))
            .await,
    );
    assert_eq!(
        server.live().registrations().0,
        2 + 2 * others.len() + 1 + 3
    );

    // A message of Casey's conversation: handed to its two subscriptions only.
    let base = server.live().delivered();
    let said = server
        .customer(
            Some(&casey.token),
            CUSTOMER_SEND,
            json!({ "b": "Anyone there?" }),
        )
        .await;
    said.ok("sendMessage");
    assert_eq!(
        owner_events.next_data("conversationEvents").await["body"],
        "Anyone there?"
    );
    assert_eq!(
        casey_live.next_data("messages").await["body"],
        "Anyone there?"
    );
    assert_eq!(server.live().delivered() - base, 2);

    // A company event (a new colleague) reaches each of Acme's staff
    // subscriptions, so they re-check access; no customer's, no Globex's.
    // Casey's next message is a barrier: the projector delivers in order.
    let base = server.live().delivered();
    acme.add_staff("Nina New", "AGENT").await;
    server
        .customer(Some(&casey.token), CUSTOMER_SEND, json!({ "b": "Hello?" }))
        .await
        .ok("sendMessage");
    assert_eq!(
        owner_events.next_data("conversationEvents").await["body"],
        "Hello?"
    );
    assert_eq!(casey_live.next_data("messages").await["body"], "Hello?");
    let acme_staff = 1 + acme_staff_unrelated.len() + 1;
    assert_eq!(server.live().delivered() - base, acme_staff as u64 + 2);

    // A new conversation in Support notifies its member: her notifications
    // subscription is the only one it reaches.
    let base = server.live().delivered();
    let newcomer = acme.start(&support, "Nora", "CHAT", "New here").await;
    let note = a_notes.next_data("notifications").await;
    assert_eq!(note["kind"], "CONVERSATION_OPENED");
    assert_eq!(note["conversationId"], newcomer.conversation);
    server
        .customer(
            Some(&casey.token),
            CUSTOMER_SEND,
            json!({ "b": "Still here" }),
        )
        .await
        .ok("sendMessage");
    assert_eq!(casey_live.next_data("messages").await["body"], "Still here");
    assert_eq!(
        owner_events.next_data("conversationEvents").await["body"],
        "Still here"
    );
    assert_eq!(server.live().delivered() - base, 1 + 2);

    // The unrelated subscriptions heard nothing, and still work: each one's
    // first frame is a marker caused now, after everything above (frames
    // follow commit order, so anything they were sent came before it).
    for (i, other) in others.iter().enumerate() {
        let marker = format!("Marker {i}");
        server
            .customer(Some(&other.token), CUSTOMER_SEND, json!({ "b": marker }))
            .await
            .ok("sendMessage");
        acme_staff_unrelated[i]
            .quiet_until(|d| d["conversationEvents"]["body"] == marker.as_str())
            .await;
        unrelated[i]
            .quiet_until(|d| d["messages"]["body"] == marker.as_str())
            .await;
    }
    // Globex: its owner is notified of a conversation opened in a group of
    // theirs, and Gina's messages reach her conversation's subscriptions.
    let markers = globex
        .add_group("Markers", "BROADCAST", &[&globex.owner])
        .await;
    let marked = globex.start(&markers, "Mark", "CHAT", "Marker").await;
    let [gina_events, globex_notes, gina_live] = &mut unrelated[others.len()..] else {
        panic!("three Globex subscriptions");
    };
    globex_notes
        .quiet_until(|d| d["notifications"]["conversationId"] == marked.conversation.as_str())
        .await;
    server
        .customer(
            Some(&gina.token),
            CUSTOMER_SEND,
            json!({ "b": "Marker Gina" }),
        )
        .await
        .ok("sendMessage");
    gina_events
        .quiet_until(|d| d["conversationEvents"]["body"] == "Marker Gina")
        .await;
    gina_live
        .quiet_until(|d| d["messages"]["body"] == "Marker Gina")
        .await;
    server
        .customer(
            Some(&others[0].token),
            CUSTOMER_SEND,
            json!({ "b": "Me too" }),
        )
        .await
        .ok("sendMessage");
    assert_eq!(
        acme_staff_unrelated[0]
            .next_data("conversationEvents")
            .await["body"],
        "Me too"
    );
    assert_eq!(unrelated[0].next_data("messages").await["body"], "Me too");
    server.stop().await;
}

#[tokio::test]
async fn an_ended_subscription_leaves_nothing_registered() {
    let (mut server, created) = TestServer::with_companies(&["Acme"]).await;
    let acme = Company::new(&server, &created[0]);
    let a = acme.add_staff("Alice Agent", "AGENT").await;
    let b = acme.add_staff("Bob Agent", "AGENT").await;
    let support = acme.add_group("Support", "BROADCAST", &[&a, &b]).await;
    acme.privacy(&acme.owner, true, true).await;
    let casey = acme.start(&support, "Casey", "CHAT", "Hello").await;
    let id = casey.conversation.as_str();
    assert_eq!(server.live().registrations(), (0, 0));

    let owner_events = server
        .subscribe_staff(&acme.owner.token, EVENTS_LIVE, json!({ "c": id }))
        .await;
    let casey_live = server
        .subscribe_customer(&casey.token, CUSTOMER_MESSAGES_LIVE, json!({}))
        .await;
    let a_notes = server
        .subscribe_staff(&a.token, NOTIFICATIONS_LIVE, json!({}))
        .await;
    let mut b_events = server
        .subscribe_staff(&b.token, EVENTS_LIVE, json!({ "c": id }))
        .await;
    assert_eq!(server.live().registrations().0, 4);

    // A taken private conversation: B's stream ends, and so does its registration.
    ok(&server, &a, ASSIGN, json!({ "c": id, "s": a.id })).await;
    assert_eq!(b_events.next().await.code(), Some("RESTRICTED_ACCESS"));
    eventually("B's registration is removed", || {
        server.live().registrations().0 == 3
    })
    .await;
    // A refused subscription registers nothing that stays.
    let mut refused = server
        .subscribe_staff(&b.token, EVENTS_LIVE, json!({ "c": id }))
        .await;
    assert_eq!(refused.next().await.code(), Some("RESTRICTED_ACCESS"));
    eventually("the refused registration is removed", || {
        server.live().registrations().0 == 3
    })
    .await;

    // Clients that go away leave nothing behind.
    drop((owner_events, casey_live, a_notes, b_events, refused));
    eventually("every registration is removed", || {
        server.live().registrations() == (0, 0)
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn shutdown_ends_every_live_stream() {
    let (mut server, created) = TestServer::with_companies(&["Acme"]).await;
    let acme = Company::new(&server, &created[0]);
    let support = acme.add_group("Support", "BROADCAST", &[]).await;
    let casey = acme.start(&support, "Casey", "CHAT", "Hello").await;
    let mut owner_events = server
        .subscribe_staff(
            &acme.owner.token,
            EVENTS_LIVE,
            json!({ "c": casey.conversation }),
        )
        .await;
    let mut owner_notes = server
        .subscribe_staff(&acme.owner.token, NOTIFICATIONS_LIVE, json!({}))
        .await;
    let mut casey_live = server
        .subscribe_customer(&casey.token, CUSTOMER_MESSAGES_LIVE, json!({}))
        .await;
    server.stop().await;
    for sub in [&mut owner_events, &mut owner_notes, &mut casey_live] {
        assert_eq!(sub.next().await, Frame::Complete);
    }
}
