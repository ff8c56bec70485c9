//! SPEC section 4, rules on private messages: staff whisper to each other in
//! a conversation; the customer never receives a private message on any path.

use serde_json::{Value, json};

use crate::support::*;

const REOPEN: &str =
    "mutation($c: ID!) { reopenConversation(conversationId: $c) { conversationId } }";
const WHISPER: &str = "Offer the voucher, code WHISPER-7F3A";

const TIMELINE: &str = "query($id: ID!) { conversation(id: $id) { accessRule status
    publicMessageCount privateMessageCount participants { id }
    timeline { edges { node { __typename ... on PublicMessage { body } ... on PrivateMessage { body author { id } } } } } } }";

/// The bodies of a staff timeline's private messages.
fn private_bodies(data: &Value) -> Vec<String> {
    data["conversation"]["timeline"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| &edge["node"])
        .filter(|item| item["__typename"] == "PrivateMessage")
        .map(|item| item["body"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_whisper_reaches_staff_live_and_never_the_customer() {
    let (mut server, created) = TestServer::with_companies(&["Acme"]).await;
    let acme = Company::new(&server, &created[0]);
    let admin = acme.add_staff("Ada Admin", "ADMIN").await;
    let sofia = acme.add_staff("Sofia Supervisor", "SUPERVISOR").await;
    let a = acme.add_staff("Alice Agent", "AGENT").await;
    let other = acme.add_staff("Olga Agent", "AGENT").await;
    let historian = acme.add_staff("Hank Historian", "AGENT").await;
    let invitee = acme.add_staff("Ivan Invitee", "AGENT").await;
    let sales_historian = acme.add_staff("Sally Sales", "AGENT").await;
    let support = acme
        .add_group("Support", "BROADCAST", &[&a, &other, &historian])
        .await;
    acme.add_group("Sales", "BROADCAST", &[&invitee, &sales_historian])
        .await;
    acme.add_supervisor(&support, &sofia).await;
    acme.grant_enquiry_history(&historian).await;
    acme.grant_enquiry_history(&sales_historian).await;
    acme.privacy(&admin, true, true).await;

    let casey = acme
        .start(&support, "Casey Customer", "CHAT", "Where is my order?")
        .await;
    let id = casey.conversation.as_str();
    // Every customer answer is kept as raw text, to search for the whisper.
    let mut customer_wire = Vec::new();
    let mut customer_live = server
        .subscribe_customer(&casey.token, CUSTOMER_MESSAGES_LIVE, json!({}))
        .await;

    ok(&server, &a, ASSIGN, json!({ "c": id, "s": a.id })).await;
    ok(&server, &a, INVITE, json!({ "c": id, "s": invitee.id })).await;
    let mut invitee_events = server
        .subscribe_staff(&invitee.token, EVENTS_LIVE, json!({ "c": id }))
        .await;
    let mut invitee_notes = server
        .subscribe_staff(&invitee.token, NOTIFICATIONS_LIVE, json!({}))
        .await;

    let sent = server
        .customer(
            Some(&casey.token),
            "mutation { sendMessage(body: \"Any news?\") { message { body } } }",
            json!({}),
        )
        .await;
    sent.ok("customer sendMessage");
    customer_wire.push(sent.text);
    ok(
        &server,
        &a,
        SEND,
        json!({ "c": id, "b": "Checking now", "v": "PUBLIC" }),
    )
    .await;

    // The supervisor whispers from the overview, without joining the room.
    let overview = ok(&server, &sofia, OVERVIEW, json!({ "g": support })).await;
    assert!(
        column(&overview, "handling")
            .0
            .contains(&casey.conversation)
    );
    let whisper = ok(
        &server,
        &sofia,
        SEND,
        json!({ "c": id, "b": WHISPER, "v": "PRIVATE" }),
    )
    .await;
    assert_eq!(
        whisper["sendMessage"]["message"]["__typename"],
        "PrivateMessage"
    );
    let room = ok(&server, &sofia, TIMELINE, json!({ "id": id })).await;
    let participants: Vec<&Value> = room["conversation"]["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["id"])
        .collect();
    assert!(!participants.contains(&&json!(sofia.id)), "{room}");
    assert_eq!(room["conversation"]["accessRule"], "R2");

    ok(
        &server,
        &a,
        SEND,
        json!({ "c": id, "b": "Good news: 10% off", "v": "PUBLIC" }),
    )
    .await;

    // The invitee gets everything live, the whisper included, and is notified.
    let mut seen = Vec::new();
    for _ in 0..4 {
        let item = invitee_events.next_data("conversationEvents").await;
        seen.push((item["__typename"].clone(), item["body"].clone()));
    }
    assert_eq!(
        seen,
        vec![
            (json!("PublicMessage"), json!("Any news?")),
            (json!("PublicMessage"), json!("Checking now")),
            (json!("PrivateMessage"), json!(WHISPER)),
            (json!("PublicMessage"), json!("Good news: 10% off")),
        ]
    );
    let note = invitee_notes.next_data("notifications").await;
    assert_eq!(note["kind"], "PRIVATE_MESSAGE");
    assert_eq!(note["conversationId"], id);

    // The customer: the public messages around the whisper, live, and not it.
    let mut live_bodies = Vec::new();
    let mut live_cursors = Vec::new();
    for _ in 0..3 {
        let m = customer_live.next_data("messages").await;
        live_bodies.push(m["body"].as_str().unwrap().to_owned());
        live_cursors.push(m["cursor"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        live_bodies,
        ["Any news?", "Checking now", "Good news: 10% off"]
    );

    // On query: the messages (and so their count) are the public ones only,
    // and a live message's cursor is its cursor in the page.
    let view = server
        .customer(Some(&casey.token), CUSTOMER_CONVERSATION, json!({}))
        .await;
    let edges = view.ok("customer conversation")["conversation"]["messages"]["edges"]
        .as_array()
        .unwrap()
        .clone();
    let bodies: Vec<&str> = edges
        .iter()
        .map(|e| e["node"]["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        [
            "Where is my order?",
            "Any news?",
            "Checking now",
            "Good news: 10% off"
        ]
    );
    let page_cursors: Vec<&str> = edges[1..]
        .iter()
        .map(|e| e["cursor"].as_str().unwrap())
        .collect();
    assert_eq!(page_cursors, live_cursors);
    customer_wire.push(view.text.clone());
    let staff_view = ok(&server, &a, TIMELINE, json!({ "id": id })).await;
    assert_eq!(staff_view["conversation"]["publicMessageCount"], 4);
    assert_eq!(staff_view["conversation"]["privateMessageCount"], 1);

    // Closed: readable with its whisper by the group's ENQUIRY_HISTORY holder
    // and the admin; not by another agent of the group, nor by a holder of
    // another group.
    ok(&server, &a, CLOSE, json!({ "c": id })).await;
    let closed = server
        .customer(Some(&casey.token), CUSTOMER_CONVERSATION, json!({}))
        .await;
    assert_eq!(closed.ok("closed")["conversation"]["status"], "CLOSED");
    customer_wire.push(closed.text);
    for (reader, rule) in [(&historian, "R4"), (&admin, "R1")] {
        let read = ok(&server, reader, TIMELINE, json!({ "id": id })).await;
        assert_eq!(read["conversation"]["accessRule"], rule);
        assert_eq!(private_bodies(&read), [WHISPER]);
    }
    for refused in [&other, &sales_historian] {
        let reply = server
            .staff(&refused.token, TIMELINE, json!({ "id": id }))
            .await;
        assert_eq!(reply.code(), Some("RESTRICTED_ACCESS"), "{}", reply.text);
        assert!(!reply.text.contains(WHISPER));
    }

    // Whatever else the customer's socket carried by now is read too, up to
    // a marker: reopened, the customer says something, which their own
    // subscription shows after everything committed before it.
    ok(&server, &admin, REOPEN, json!({ "c": id })).await;
    server
        .customer(
            Some(&casey.token),
            "mutation { sendMessage(body: \"Marker\") { message { body } } }",
            json!({}),
        )
        .await
        .ok("customer marker");
    customer_live
        .until(|d| d["messages"]["body"] == "Marker")
        .await;
    customer_wire.push(customer_live.wire());
    for text in &customer_wire {
        assert!(
            !text.contains("WHISPER-7F3A"),
            "leaked to the customer: {text}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn email_and_call_conversations_refuse_private_messages() {
    let (mut server, created) = TestServer::with_companies(&["Acme"]).await;
    let acme = Company::new(&server, &created[0]);
    let a = acme.add_staff("Alice Agent", "AGENT").await;
    let support = acme.add_group("Support", "BROADCAST", &[&a]).await;
    let email = acme
        .start(&support, "Erin Emailer", "EMAIL", "Subject: refund")
        .await;
    let call = ok(
        &server,
        &a,
        "mutation($g: ID!) { openConversation(groupId: $g, customerName: \"Carl Caller\", channel: CALL) { conversationId } }",
        json!({ "g": support }),
    )
    .await;
    let call = call["openConversation"]["conversationId"].as_str().unwrap();

    for id in [email.conversation.as_str(), call] {
        ok(&server, &a, ASSIGN, json!({ "c": id, "s": a.id })).await;
        for who in [&a, &acme.owner] {
            let head = server.log_head();
            let reply = server
                .staff(
                    &who.token,
                    SEND,
                    json!({ "c": id, "b": "note to self", "v": "PRIVATE" }),
                )
                .await;
            assert_eq!(
                reply.code(),
                Some("PRIVATE_MESSAGES_UNSUPPORTED"),
                "{}",
                reply.text
            );
            assert_eq!(server.log_head(), head, "a refusal appends nothing");
        }
        // Public messages are fine there.
        ok(
            &server,
            &a,
            SEND,
            json!({ "c": id, "b": "Logged", "v": "PUBLIC" }),
        )
        .await;
    }
    server.stop().await;
}
