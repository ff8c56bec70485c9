//! SPEC section 7, "Integrity" and "Tamper evidence": the server publishes
//! its head with a MAC (`GET /log/head`), and refuses to start on a log that
//! lost acknowledged events (shorter than its committed head, or than its
//! read-model checkpoint) instead of serving it.

use std::path::Path;

use backchannel_api::Application;
use backchannel_eventlog::{HeadKey, codec, parse_hash};
use serde_json::{Value, json};

use backchannel_testkit::demo::CASEY;
use backchannel_testkit::*;

/// The server's secret, as `<data-dir>/secret` holds it (hex).
fn secret(data_dir: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(data_dir.join("secret")).unwrap();
    let text = text.trim();
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn copy_dir(from: &Path, to: &Path, skip: &[&str]) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(&name), &[]);
        } else {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

async fn post_note(app: &TestServer, text: &str) {
    let reply = app
        .staff(
            &app.token("agent 1"),
            "mutation($id: ID!, $b: String!) { sendMessage(conversationId: $id, body: $b, visibility: PRIVATE) { message { ... on PrivateMessage { id } } } }",
            json!({ "id": CASEY, "b": text }),
        )
        .await;
    assert!(reply.body["errors"].is_null(), "{}", reply.body);
}

#[tokio::test]
async fn the_head_is_published_with_the_servers_mac() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = TestServer::spawn_with(demo_config(dir.path())).await;
    post_note(&app, "a note").await;
    let operator = app.tokens.mint_operator().unwrap().token;
    let (status, body) = app.get_as("/log/head", Some(&operator)).await.parts();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let head: Value = serde_json::from_slice(&body).unwrap();
    let position = head["position"].as_u64().unwrap();
    assert_eq!(position, app.desk.log().head());
    let hash = parse_hash(head["hash"].as_str().unwrap()).unwrap();
    assert_eq!(
        hash,
        codec::record_hash(&app.desk.log().raw_record(position).unwrap())
    );
    let mac = parse_hash(head["mac"].as_str().unwrap()).unwrap();
    let key = HeadKey::from_secret(&secret(dir.path()));
    assert!(key.verifies(position, &hash, &mac), "{head}");
    let other = HeadKey::from_secret(b"not the server's secret, but long enough");
    assert!(!other.verifies(position, &hash, &mac));

    // The same callers as GET /log: nobody else.
    let (status, body) = app.get_as("/log/head", None).await.parts();
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&body));
    let (status, body) = app
        .get_as("/log/head", Some(&app.token("supervisor")))
        .await
        .parts();
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    app.stop().await;
}

/// Stops a server after a note, keeps a copy of its store (`old`), starts it
/// again, appends more, stops it: returns the heads before and after.
async fn two_generations(data_dir: &Path, old: &Path) -> (u64, u64) {
    let mut app = TestServer::spawn_with(demo_config(data_dir)).await;
    post_note(&app, "before the copy").await;
    app.stop().await;
    let before = app.desk.log().head();
    drop(app);
    copy_dir(&data_dir.join("store"), old, &["LOCK", "checkpoints"]);
    let mut app = TestServer::spawn_with(demo_config(data_dir)).await;
    post_note(&app, "after the copy").await;
    post_note(&app, "acknowledged, then lost").await;
    app.stop().await;
    let after = app.desk.log().head();
    drop(app);
    assert!(after > before);
    (before, after)
}

/// The whole store went back to an older copy (its sled files and head
/// record), but the read-model checkpoint is the newer one: the checkpoint
/// proves events up to its position were acknowledged, so the server refuses
/// to start rather than rewind its read models to the shorter log.
#[tokio::test]
async fn a_checkpoint_ahead_of_the_log_fails_the_start_naming_both_positions() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old-store");
    let (before, after) = two_generations(dir.path(), &old).await;
    let store = dir.path().join("store");
    for entry in std::fs::read_dir(&old).unwrap() {
        let entry = entry.unwrap();
        let target = store.join(entry.file_name());
        if target.is_dir() {
            std::fs::remove_dir_all(&target).unwrap();
        }
    }
    copy_dir(&old, &store, &[]);
    let err = Application::build(demo_config(dir.path()))
        .await
        .err()
        .expect("the server started on a log shorter than its checkpoint");
    let text = err.to_string();
    assert!(
        text.contains(&format!("position {after}")) && text.contains(&format!("position {before}")),
        "{text}"
    );
    assert!(text.contains("checkpoint"), "{text}");
}

/// Only the sled files went back (a restored backup, a lost write): the log
/// ends before the committed head the store recorded, and the server refuses
/// to start, naming both positions.
#[tokio::test]
async fn a_log_shorter_than_its_committed_head_fails_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old-store");
    let (before, after) = two_generations(dir.path(), &old).await;
    let sled = dir.path().join("store").join("sled");
    std::fs::remove_dir_all(&sled).unwrap();
    copy_dir(&old.join("sled"), &sled, &[]);
    let err = Application::build(demo_config(dir.path()))
        .await
        .err()
        .expect("the server started on a shortened log");
    let text = err.to_string();
    assert!(
        text.contains(&format!("position {after}")) && text.contains(&format!("position {before}")),
        "{text}"
    );
}
