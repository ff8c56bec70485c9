//! Every domain refusal reaches the client with its SPEC code.

use serde_json::json;

use backchannel_testkit::demo::{ALICE, BOB, CASEY, EVAN, FRANKIE};
use backchannel_testkit::*;

const CONVERSATION: &str = "query($id: ID!) { conversation(id: $id) { id customerName } }";
const SEND: &str = "mutation($id: ID!, $body: String!, $v: MessageVisibility!) {
    sendMessage(conversationId: $id, body: $body, visibility: $v) { message { ... on PublicMessage { id } ... on PrivateMessage { id } } } }";

#[tokio::test]
async fn a_private_conversation_of_another_agent_is_restricted() {
    let app = TestServer::spawn().await;
    // Casey's conversation is private and handled by Alice; Bob is in the group.
    let reply = app
        .staff(&app.token("agent 2"), CONVERSATION, json!({ "id": CASEY }))
        .await;
    assert_eq!(reply.code(), Some("RESTRICTED_ACCESS"));
    assert!(
        !reply.body.to_string().contains("Casey"),
        "nothing of it leaks"
    );
}

#[tokio::test]
async fn an_unknown_conversation_is_not_found() {
    let app = TestServer::spawn().await;
    let id = "01900000-0000-7000-8000-0000000fffff";
    let reply = app
        .staff(&app.token("owner"), CONVERSATION, json!({ "id": id }))
        .await;
    assert_eq!(reply.code(), Some("NOT_FOUND"));
}

#[tokio::test]
async fn a_malformed_id_is_a_validation_error() {
    let app = TestServer::spawn().await;
    let reply = app
        .staff(&app.token("owner"), CONVERSATION, json!({ "id": "42" }))
        .await;
    assert_eq!(reply.code(), Some("VALIDATION"));
}

#[tokio::test]
async fn agents_may_not_change_privacy_settings() {
    let app = TestServer::spawn().await;
    let reply = app
        .staff(
            &app.token("agent 1"),
            "mutation { updatePrivacySettings(newConversationsPrivate: false) { company { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(reply.code(), Some("FORBIDDEN"));
}

#[tokio::test]
async fn private_messages_are_refused_in_email_conversations() {
    let app = TestServer::spawn().await;
    let reply = app
        .staff(
            &app.token("owner"),
            SEND,
            json!({ "id": EVAN, "body": "psst", "v": "PRIVATE" }),
        )
        .await;
    assert_eq!(reply.code(), Some("PRIVATE_MESSAGES_UNSUPPORTED"));
}

#[tokio::test]
async fn closed_conversations_are_read_only() {
    let app = TestServer::spawn().await;
    let reply = app
        .staff(
            &app.token("owner"),
            SEND,
            json!({ "id": FRANKIE, "body": "hello", "v": "PUBLIC" }),
        )
        .await;
    assert_eq!(reply.code(), Some("CONVERSATION_CLOSED"));
}

/// Casey's chat is private and Alice has it, so Bob (a member of Support)
/// lost sight of it: he learns it was taken, never by whom (SPEC 7).
#[tokio::test]
async fn taking_a_taken_private_conversation_is_a_conflict_without_the_assignee() {
    let app = TestServer::spawn().await;
    let reply = app
        .staff(
            &app.token("agent 2"),
            "mutation($c: ID!, $s: ID!) { assignConversation(conversationId: $c, assigneeId: $s) { conversationId } }",
            json!({ "c": CASEY, "s": BOB }),
        )
        .await;
    assert_eq!(reply.code(), Some("CONFLICT"));
    assert!(
        reply.body["errors"][0]["extensions"]["currentAssignee"].is_null(),
        "{:?}",
        reply.body
    );
    assert!(!reply.body.to_string().contains(ALICE), "{:?}", reply.body);
}

#[tokio::test]
async fn an_empty_message_is_a_validation_error() {
    let app = TestServer::spawn().await;
    let reply = app
        .staff(
            &app.token("agent 1"),
            SEND,
            json!({ "id": CASEY, "body": "   ", "v": "PUBLIC" }),
        )
        .await;
    assert_eq!(reply.code(), Some("VALIDATION"));
}

#[tokio::test]
async fn an_unknown_enum_value_is_a_validation_error() {
    let app = TestServer::spawn().await;
    let reply = app
        .staff(
            &app.token("agent 1"),
            SEND,
            json!({ "id": CASEY, "body": "x", "v": "SECRET" }),
        )
        .await;
    assert_eq!(reply.code(), Some("VALIDATION"));
}
