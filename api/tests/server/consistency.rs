//! SPEC section 7: idempotency, read-your-writes, and the assignment race.

use serde_json::json;

use backchannel_testkit::demo::{ALICE, BOB, CASEY, DANA};
use backchannel_testkit::*;

const SEND: &str = "mutation($id: ID!, $body: String!, $key: String) {
    sendMessage(conversationId: $id, body: $body, visibility: PUBLIC, idempotencyKey: $key) {
        message { ... on PublicMessage { id body } } } }";

#[tokio::test]
async fn a_retried_mutation_returns_the_first_result_and_appends_nothing() {
    let app = TestServer::spawn().await;
    let alice = app.token("agent 1");
    let vars = json!({ "id": CASEY, "body": "We'll send a new pole.", "key": "retry-1" });
    let first = app.staff(&alice, SEND, vars.clone()).await;
    let head = app.settled_head().await;
    let second = app.staff(&alice, SEND, vars).await;
    assert!(first.code().is_none(), "{:?}", first.body);
    assert_eq!(
        first.data()["sendMessage"]["message"]["id"],
        second.data()["sendMessage"]["message"]["id"]
    );
    assert_eq!(app.desk.log().head(), head, "the retry appended nothing");
}

#[tokio::test]
async fn the_same_key_for_another_caller_is_another_command() {
    let app = TestServer::spawn().await;
    let whisper = "mutation($id: ID!, $key: String) {
        sendMessage(conversationId: $id, body: \"Take this one?\", visibility: PRIVATE, idempotencyKey: $key) {
            message { ... on PrivateMessage { id } } } }";
    let vars = json!({ "id": DANA, "key": "same" });
    let admin = app.staff(&app.token("admin"), whisper, vars.clone()).await;
    let owner = app.staff(&app.token("owner"), whisper, vars).await;
    assert!(
        admin.code().is_none() && owner.code().is_none(),
        "{:?} {:?}",
        admin.body,
        owner.body
    );
    assert_ne!(
        admin.data()["sendMessage"]["message"]["id"],
        owner.data()["sendMessage"]["message"]["id"]
    );
}

#[tokio::test]
async fn a_query_after_a_mutation_sees_it() {
    let app = TestServer::spawn().await;
    let alice = app.token("agent 1");
    for i in 0..5 {
        let body = format!("read your writes {i}");
        let sent = app
            .staff(&alice, SEND, json!({ "id": CASEY, "body": body }))
            .await;
        assert!(sent.code().is_none(), "{:?}", sent.body);
        let timeline = app
            .staff(
                &alice,
                "query($id: ID!) { conversation(id: $id) { publicMessageCount timeline(last: 10) { edges { node { ... on PublicMessage { body } } } } } }",
                json!({ "id": CASEY }),
            )
            .await;
        let items = timeline.data()["conversation"]["timeline"]["edges"]
            .as_array()
            .unwrap()
            .clone();
        assert!(
            items.iter().any(|e| e["node"]["body"] == body.as_str()),
            "{items:?}"
        );
    }
}

#[tokio::test]
async fn two_agents_racing_for_a_queued_conversation_one_wins() {
    let app = TestServer::spawn().await;
    let take = "mutation($c: ID!, $s: ID!) { assignConversation(conversationId: $c, assigneeId: $s) { conversationId } }";
    let alice = app.token("agent 1");
    let bob = app.token("agent 2");
    let (a, b) = tokio::join!(
        app.staff(&alice, take, json!({ "c": DANA, "s": ALICE })),
        app.staff(&bob, take, json!({ "c": DANA, "s": BOB })),
    );
    let codes = [a.code(), b.code()];
    assert!(codes.contains(&None), "{codes:?}");
    assert!(
        codes.contains(&Some("CONFLICT")),
        "{codes:?} {:?} {:?}",
        a.body,
        b.body
    );
}

#[tokio::test]
async fn an_idempotency_key_reused_on_another_conversation_is_refused() {
    let app = TestServer::spawn().await;
    let alice = app.token("agent 1");
    let first = app
        .staff(
            &alice,
            SEND,
            json!({ "id": CASEY, "body": "one", "key": "reused" }),
        )
        .await;
    assert!(first.code().is_none(), "{:?}", first.body);
    let head = app.settled_head().await;
    let other = app
        .staff(
            &alice,
            SEND,
            json!({ "id": DANA, "body": "two", "key": "reused" }),
        )
        .await;
    assert_eq!(other.code(), Some("VALIDATION"), "{:?}", other.body);
    assert_eq!(app.desk.log().head(), head);
}
