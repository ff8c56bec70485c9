//! SPEC section 10: a graceful shutdown loses no acknowledged event.

use backchannel_domain::events::{Event, StreamId};
use backchannel_domain::ids::ConversationId;
use backchannel_eventlog::SledEventLog;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn acknowledged_events_survive_a_graceful_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = TestApp::spawn_with(config(dir.path().to_owned())).await;
    let mut acknowledged = Vec::new();
    for i in 0..10 {
        let reply = app
            .staff(
                &app.token("agent 1"),
                "mutation($id: ID!, $b: String!) { sendMessage(conversationId: $id, body: $b, visibility: PRIVATE) { message { ... on PrivateMessage { id } } } }",
                json!({ "id": CASEY, "b": format!("note {i}") }),
            )
            .await;
        let id = reply.data()["sendMessage"]["message"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        acknowledged.push(id);
    }
    app.stop().await;
    drop(app);
    let log = tokio::task::spawn_blocking({
        let store = dir.path().join("store");
        move || SledEventLog::open(store)
    })
    .await
    .unwrap()
    .unwrap();
    // Every acknowledged message is in the conversation's stream.
    let casey: ConversationId = CASEY.parse().unwrap();
    let stored: Vec<String> = log
        .read_stream(StreamId::Conversation(casey), 1)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.event {
            Event::PrivateMessagePosted(e) => Some(e.message.to_string()),
            _ => None,
        })
        .collect();
    for id in &acknowledged {
        assert!(stored.contains(id), "{id} was lost");
    }
    log.close().unwrap();

    // And the server starts again on the same data, demo already loaded.
    let mut again = TestApp::spawn_with(config(dir.path().to_owned())).await;
    let reply = again
        .staff(
            &again.token("agent 1"),
            "query($id: ID!) { conversation(id: $id) { privateMessageCount } }",
            json!({ "id": CASEY }),
        )
        .await;
    assert_eq!(reply.data()["conversation"]["privateMessageCount"], 11);
    again.stop().await;
}
