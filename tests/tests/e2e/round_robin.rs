//! SPEC glossary "routing type": a `ROUND_ROBIN` group assigns a conversation
//! at opening to the next active member in rotation; when it is private, the
//! other members never see it, not even for a moment.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn round_robin_assigns_at_opening_in_rotation_and_hides_private_ones() {
    let (mut server, created) = TestServer::with_companies(&["Acme"]).await;
    let acme = Company::new(&server, &created[0]);
    let admin = acme.add_staff("Ada Admin", "ADMIN").await;
    let a = acme.add_staff("Alice Agent", "AGENT").await;
    let b = acme.add_staff("Bob Agent", "AGENT").await;
    let gone = acme.add_staff("Gus Gone", "AGENT").await;
    let c = acme.add_staff("Carl Agent", "AGENT").await;
    let sales = acme
        .add_group("Sales", "ROUND_ROBIN", &[&a, &b, &gone, &c])
        .await;
    acme.deactivate(&gone).await;
    acme.privacy(&admin, true, true).await;
    let members = [&a, &b, &c];

    let mut live = Vec::new();
    for agent in members {
        live.push(
            server
                .subscribe_staff(&agent.token, NOTIFICATIONS_LIVE, json!({}))
                .await,
        );
    }

    let mut assignees = Vec::new();
    for n in 0..4 {
        let customer = acme
            .start(&sales, &format!("Customer {n}"), "SOCIAL", "Hello")
            .await;
        let id = customer.conversation;
        let seen = ok(&server, &admin, CONVERSATION, json!({ "id": id })).await;
        let conversation = &seen["conversation"];
        assert_eq!(conversation["status"], "HANDLING", "assigned at opening");
        let assignee = conversation["assignee"]["id"].as_str().unwrap().to_owned();
        assert_ne!(assignee, gone.id, "deactivated staff are skipped");
        let chosen = members.iter().position(|m| m.id == assignee).unwrap();

        // Every member is told it opened; only the chosen one is told it is theirs.
        for (i, sub) in live.iter_mut().enumerate() {
            let opened = sub.next_data("notifications").await;
            assert_eq!(opened["kind"], "CONVERSATION_OPENED");
            assert_eq!(opened["conversationId"], id.as_str());
            if i == chosen {
                let assigned = sub.next_data("notifications").await;
                assert_eq!(assigned["kind"], "ASSIGNED");
                assert_eq!(assigned["conversationId"], id.as_str());
            }
        }
        // The others never see it: lookup, list, count, overview, live events.
        for (i, agent) in members.iter().enumerate() {
            let lookup = server
                .staff(&agent.token, CONVERSATION, json!({ "id": id }))
                .await;
            let list = ok(&server, agent, LIST, json!({})).await;
            let overview = ok(&server, agent, OVERVIEW, json!({ "g": sales })).await;
            let in_list = listed(&list).0.contains(&id);
            let in_overview = ["queued", "handling"]
                .iter()
                .any(|col| column(&overview, col).0.contains(&id));
            if i == chosen {
                assert_eq!(lookup.code(), None, "{}", lookup.text);
                assert!(in_list && in_overview);
            } else {
                assert_eq!(lookup.code(), Some("RESTRICTED_ACCESS"), "{}", lookup.text);
                assert!(!in_list && !in_overview, "{list} {overview}");
                let mut events = server
                    .subscribe_staff(&agent.token, EVENTS_LIVE, json!({ "c": id }))
                    .await;
                assert_eq!(events.next().await.code(), Some("RESTRICTED_ACCESS"));
            }
        }
        assignees.push(chosen);
    }
    // In rotation, in the order the members joined.
    for pair in assignees.windows(2) {
        assert_eq!(pair[1], (pair[0] + 1) % members.len(), "{assignees:?}");
    }
    // Each agent's count is exactly what rotation handed them.
    for (i, agent) in members.iter().enumerate() {
        let list = ok(&server, agent, LIST, json!({})).await;
        let theirs = assignees.iter().filter(|&&chosen| chosen == i).count() as u64;
        assert_eq!(listed(&list).1, theirs, "{list}");
    }
    server.stop().await;
}
