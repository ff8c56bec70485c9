//! SPEC section 10: a graceful shutdown loses no acknowledged event.

use backchannel_domain::events::{Event, StreamId};
use backchannel_domain::ids::ConversationId;
use backchannel_eventlog::SledEventLog;
use backchannel_projections::ReadModels;
use backchannel_projections::checkpoint::{self, Start};
use serde_json::json;

use backchannel_testkit::demo::CASEY;
use backchannel_testkit::*;

#[tokio::test]
async fn acknowledged_events_survive_a_graceful_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = TestServer::spawn_with(demo_config(dir.path())).await;
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
    let mut again = TestServer::spawn_with(demo_config(dir.path())).await;
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

/// A graceful shutdown checkpoints the read models; the next start resumes
/// from there, replaying nothing, and the checkpoint a later shutdown writes
/// equals the models rebuilt from the whole log.
#[tokio::test]
async fn a_restart_resumes_the_read_models_from_the_shutdown_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mut app = TestServer::spawn_with(demo_config(dir.path())).await;
    assert!(
        matches!(app.desk.start(), Start::Rebuilt { why: None, .. }),
        "a new data dir has no checkpoint: {:?}",
        app.desk.start()
    );
    let note = "mutation($id: ID!, $b: String!) { sendMessage(conversationId: $id, body: $b, visibility: PRIVATE) { message { __typename } } }";
    for i in 0..3 {
        app.staff(
            &app.token("agent 1"),
            note,
            json!({ "id": CASEY, "b": format!("note {i}") }),
        )
        .await
        .data();
    }
    let head = app.desk.log().head();
    app.stop().await;
    drop(app);

    let mut again = TestServer::spawn_with(demo_config(dir.path())).await;
    assert_eq!(
        again.desk.start(),
        &Start::Resumed {
            position: head,
            replayed: 0
        }
    );
    let count = "query($id: ID!) { conversation(id: $id) { privateMessageCount } }";
    let reply = again
        .staff(&again.token("agent 1"), count, json!({ "id": CASEY }))
        .await;
    assert_eq!(reply.data()["conversation"]["privateMessageCount"], 4);
    again
        .staff(
            &again.token("agent 1"),
            note,
            json!({ "id": CASEY, "b": "after" }),
        )
        .await
        .data();
    let head = again.desk.log().head();
    again.stop().await;
    drop(again);

    // The server's keys, to open the customer data as the server did.
    let secret = backchannel_api::secret::load_or_create(dir.path(), None).unwrap();
    let wrap = backchannel_eventlog::KeyWrap::from_secret(&secret);
    let (saved, rebuilt) = tokio::task::spawn_blocking(move || {
        let saved = SledEventLog::load_checkpoint::<ReadModels>(
            &store,
            checkpoint::CHECKPOINT_NAME,
            checkpoint::CHECKPOINT_KIND,
        )
        .unwrap()
        .unwrap();
        let mut rebuilt = ReadModels::new();
        let log = backchannel_eventlog::Log::open_replaying(
            &backchannel_eventlog::StoreSpec::sled(&store),
            1,
            Some(&wrap),
            |recorded| rebuilt.apply(&recorded).map(drop),
        )
        .unwrap();
        log.close().unwrap();
        (saved, rebuilt)
    })
    .await
    .unwrap();
    assert_eq!(saved.after.position, head);
    assert_eq!(saved.value, rebuilt);
}
