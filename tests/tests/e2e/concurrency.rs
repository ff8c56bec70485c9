//! SPEC section 7 over real HTTP: optimistic concurrency (one winner, the
//! other told it was taken) and idempotency (a retried key appends nothing).

use serde_json::{Value, json};

use crate::support::*;

const AUDIT: &str =
    "query($c: ID!) { auditTrail(conversationId: $c) { position eventType commandId } }";

/// The event types of a conversation's audit trail, oldest first.
async fn audit(server: &TestServer, owner: &Member, c: &str) -> Vec<String> {
    let trail = ok(server, owner, AUDIT, json!({ "c": c })).await;
    trail["auditTrail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventType"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_assigning_at_once_one_wins_the_other_learns_it_was_taken() {
    let (mut server, created) = TestServer::with_companies(&["Acme"]).await;
    let acme = Company::new(&server, &created[0]);
    let a = acme.add_staff("Alice Agent", "AGENT").await;
    let b = acme.add_staff("Bob Agent", "AGENT").await;
    let support = acme.add_group("Support", "BROADCAST", &[&a, &b]).await;
    acme.privacy(&acme.owner, true, true).await;

    let mut winners = Vec::new();
    for round in 0..10 {
        let customer = acme
            .start(&support, &format!("Customer {round}"), "CHAT", "Hello")
            .await;
        let id = customer.conversation.as_str();
        let before = audit(&server, &acme.owner, id).await;
        let (by_a, by_b) = tokio::join!(
            server.staff(&a.token, ASSIGN, json!({ "c": id, "s": a.id })),
            server.staff(&b.token, ASSIGN, json!({ "c": id, "s": b.id })),
        );
        let (winner, loser) = match (by_a.code(), by_b.code()) {
            (None, Some(_)) => ((&a, &by_a), &by_b),
            (Some(_), None) => ((&b, &by_b), &by_a),
            _ => panic!("round {round}: {} / {}", by_a.text, by_b.text),
        };
        assert_eq!(loser.code(), Some("CONFLICT"), "{}", loser.text);
        // Private: the loser lost sight of it, so is not told who won (the
        // case of one who may still view it is in `races.rs`).
        assert!(
            loser.body["errors"][0]["extensions"]["currentAssignee"].is_null(),
            "the loser is not told who won: {}",
            loser.text
        );
        assert_eq!(
            winner.1.data()["assignConversation"]["conversation"]["status"],
            "HANDLING"
        );
        let seen = ok(&server, &acme.owner, CONVERSATION, json!({ "id": id })).await;
        assert_eq!(seen["conversation"]["assignee"]["id"], winner.0.id.as_str());
        let after = audit(&server, &acme.owner, id).await;
        assert_eq!(after.len(), before.len() + 1, "{after:?}");
        assert_eq!(
            after.last().map(String::as_str),
            Some("ConversationAssigned")
        );
        winners.push(winner.0.id.clone());
    }
    eprintln!(
        "assignment races won by Alice: {} of 10",
        winners.iter().filter(|w| **w == a.id).count()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_mutation_with_the_same_key_appends_nothing() {
    let (mut server, created) = TestServer::with_companies(&["Acme"]).await;
    let acme = Company::new(&server, &created[0]);
    let a = acme.add_staff("Alice Agent", "AGENT").await;
    let support = acme.add_group("Support", "BROADCAST", &[&a]).await;
    let customer = acme.start(&support, "Casey", "CHAT", "Hello").await;
    let id = customer.conversation.as_str();

    // Assigning: the retry answers as the first time, though it is assigned now.
    let assign = json!({ "c": id, "s": a.id, "k": "take-1" });
    let first = ok(&server, &a, ASSIGN, assign.clone()).await;
    let head = server.log_head();
    let trail = audit(&server, &acme.owner, id).await;
    let retry = ok(&server, &a, ASSIGN, assign).await;
    assert_eq!(retry, first);
    assert_eq!(server.log_head(), head);
    assert_eq!(audit(&server, &acme.owner, id).await, trail);

    // Sending: the retry returns the first message; fired at once, still one.
    let send = json!({ "c": id, "b": "On it", "v": "PUBLIC", "k": "send-1" });
    let head = server.log_head();
    let (one, two) = tokio::join!(
        server.staff(&a.token, SEND, send.clone()),
        server.staff(&a.token, SEND, send.clone()),
    );
    let three = server.staff(&a.token, SEND, send).await;
    let ids: Vec<&Value> = [&one, &two, &three]
        .iter()
        .map(|r| &r.ok("sendMessage")["sendMessage"]["message"]["id"])
        .collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    assert_eq!(server.log_head(), head + 1, "one message appended, once");
    let messages = ok(&server, &a, CONVERSATION, json!({ "id": id })).await;
    assert_eq!(messages["conversation"]["publicMessageCount"], 2);

    // The same key on another mutation is another command.
    let head = server.log_head();
    ok(
        &server,
        &a,
        CLOSE
            .replace(
                "closeConversation(conversationId: $c)",
                "closeConversation(conversationId: $c, idempotencyKey: \"send-1\")",
            )
            .as_str(),
        json!({ "c": id }),
    )
    .await;
    assert_eq!(server.log_head(), head + 1);
    server.stop().await;
}
