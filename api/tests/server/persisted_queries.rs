//! Automatic persisted queries (Apollo's protocol) over HTTP and websockets:
//! a hash alone is unknown until it comes with its text, the text must match
//! the hash, and a text the admission check refuses is never stored.

use std::time::Duration;

use backchannel_api::Config;
use backchannel_api::transport::TransportLimits;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use backchannel_testkit::demo::{ALICE, CASEY, OWNER};
use backchannel_testkit::*;

const ME: &str = "query Me { me { id name } }";

fn hash(query: &str) -> String {
    hex::encode(Sha256::digest(query.as_bytes()))
}

fn persisted(hash: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

async fn post(app: &TestServer, path: &str, token: &str, body: Value) -> Reply {
    app.post(path, Some(token), body.to_string().as_bytes())
        .await
}

fn message(reply: &Reply) -> &str {
    reply.body["errors"][0]["message"].as_str().unwrap_or("")
}

#[tokio::test]
async fn a_hash_runs_its_query_once_the_query_came_with_it() {
    let mut app = TestServer::spawn().await;
    let owner = app.token("owner");
    let h = hash(ME);
    // Unknown hash.
    let reply = post(
        &app,
        "/graphql",
        &owner,
        json!({ "extensions": persisted(&h) }),
    )
    .await;
    assert_eq!(message(&reply), "PersistedQueryNotFound", "{}", reply.body);
    assert_eq!(reply.code(), Some("PERSISTED_QUERY_NOT_FOUND"));
    assert!(reply.body["data"].is_null());
    // Hash and query: runs, and is stored.
    let body = json!({ "query": ME, "extensions": persisted(&h) });
    let first = post(&app, "/graphql", &owner, body).await;
    assert!(first.code().is_none(), "{}", first.body);
    assert_eq!(first.data()["me"]["id"], OWNER);
    // The hash alone now runs it.
    let again = post(
        &app,
        "/graphql",
        &owner,
        json!({ "extensions": persisted(&h) }),
    )
    .await;
    assert!(again.code().is_none(), "{}", again.body);
    assert_eq!(again.data(), first.data());
    // …with the caller's own rights: another token, another answer.
    let alice = app.token("agent 1");
    let theirs = post(
        &app,
        "/graphql",
        &alice,
        json!({ "extensions": persisted(&h) }),
    )
    .await;
    assert_eq!(theirs.data()["me"]["id"], ALICE, "{}", theirs.body);
    // A hash that is not the query's: refused, nothing run or stored.
    let other = "{ company { name } }";
    let wrong = hash("{ me { role } }");
    let body = json!({ "query": other, "extensions": persisted(&wrong) });
    let reply = post(&app, "/graphql", &owner, body).await;
    assert_eq!(
        message(&reply),
        "provided sha does not match query",
        "{}",
        reply.body
    );
    assert!(reply.body["data"].is_null());
    let reply = post(
        &app,
        "/graphql",
        &owner,
        json!({ "extensions": persisted(&wrong) }),
    )
    .await;
    assert_eq!(message(&reply), "PersistedQueryNotFound");
    // A text too long to keep runs, but its hash stays unknown.
    let long = format!("{{ me {{ id }} {} }}", "me { name } ".repeat(800));
    assert!(long.len() > 8 * 1024);
    let lh = hash(&long);
    let reply = post(
        &app,
        "/graphql",
        &owner,
        json!({ "query": long, "extensions": persisted(&lh) }),
    )
    .await;
    assert!(reply.data()["me"]["id"].is_string(), "{}", reply.body);
    let reply = post(
        &app,
        "/graphql",
        &owner,
        json!({ "extensions": persisted(&lh) }),
    )
    .await;
    assert_eq!(message(&reply), "PersistedQueryNotFound", "{}", reply.body);
    // Only version 1.
    let body = json!({ "query": ME, "extensions": { "persistedQuery": { "version": 2, "sha256Hash": h } } });
    let reply = post(&app, "/graphql", &owner, body).await;
    assert!(reply.body["data"].is_null(), "{}", reply.body);
    assert!(reply.code().is_some());
    // The customer endpoint speaks it too.
    let mine = "{ conversation { id } }";
    let ch = hash(mine);
    let customer = app.demo().customer.clone();
    let reply = post(
        &app,
        "/customer/graphql",
        &customer,
        json!({ "extensions": persisted(&ch) }),
    )
    .await;
    assert_eq!(message(&reply), "PersistedQueryNotFound");
    let body = json!({ "query": mine, "extensions": persisted(&ch) });
    let reply = post(&app, "/customer/graphql", &customer, body).await;
    assert!(reply.code().is_none(), "{}", reply.body);
    let reply = post(
        &app,
        "/customer/graphql",
        &customer,
        json!({ "extensions": persisted(&ch) }),
    )
    .await;
    assert!(
        reply.data()["conversation"]["id"].is_string(),
        "{}",
        reply.body
    );
    app.stop().await;
}

#[tokio::test]
async fn a_query_the_admission_check_refuses_is_not_stored() {
    let mut app = TestServer::spawn().await;
    let owner = app.token("owner");
    // Nested far past the depth bound: the pre-scan refuses it unparsed.
    let deep = format!("{{ {}id{} }}", "me { ".repeat(200), " }".repeat(200));
    let h = hash(&deep);
    let body = json!({ "query": deep, "extensions": persisted(&h) });
    let reply = post(&app, "/graphql", &owner, body).await;
    assert_eq!(reply.code(), Some("QUERY_TOO_COMPLEX"), "{}", reply.body);
    let reply = post(
        &app,
        "/graphql",
        &owner,
        json!({ "extensions": persisted(&h) }),
    )
    .await;
    assert_eq!(message(&reply), "PersistedQueryNotFound", "{}", reply.body);
    app.stop().await;
}

const EVENTS: &str =
    "subscription Events($id: ID!) { conversationEvents(conversationId: $id) { __typename } }";
const NOTE: &str = "mutation($id: ID!, $b: String!) { sendMessage(conversationId: $id, body: $b, visibility: PRIVATE) { message { __typename } } }";

/// A subscription by hash over a websocket is a subscription: it outlives
/// the deadline of queries and mutations and delivers events.
#[tokio::test]
async fn a_persisted_subscription_runs_over_a_websocket() {
    let dir = tempfile::tempdir().unwrap();
    let mut config: Config = demo_config(dir.path());
    config.transport = TransportLimits {
        ws_operation_timeout: Duration::from_millis(300),
        ..TransportLimits::default()
    };
    let mut app = TestServer::spawn_with(config).await;
    let agent = app.token("agent 1");
    let h = hash(EVENTS);
    let mut ws = Ws::connect(app.addr, "/graphql").await;
    ws.init(&agent).await;
    let subscribe = |id: &str, query: Option<&str>| {
        let mut payload = json!({ "variables": { "id": CASEY }, "extensions": persisted(&h) });
        if let Some(query) = query {
            payload["query"] = json!(query);
        }
        json!({ "id": id, "type": "subscribe", "payload": payload })
    };
    // Unknown yet.
    ws.send(subscribe("unknown", None)).await;
    let refused = ws.message().await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["payload"][0]["message"], "PersistedQueryNotFound");
    // With its text: stored; then by hash alone.
    ws.send(subscribe("with-text", Some(EVENTS))).await;
    assert!(ws.ping().await.is_empty());
    ws.send(json!({ "id": "with-text", "type": "complete" }))
        .await;
    ws.send(subscribe("by-hash", None)).await;
    assert!(ws.ping().await.is_empty());
    // Past the query deadline it still listens.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let sent = app
        .staff(&agent, NOTE, json!({ "id": CASEY, "b": "hello" }))
        .await;
    assert!(sent.code().is_none(), "{}", sent.body);
    let next = ws.message().await;
    assert_eq!(next["id"], "by-hash", "{next}");
    assert_eq!(next["type"], "next", "{next}");
    assert_eq!(
        next["payload"]["data"]["conversationEvents"]["__typename"],
        "PrivateMessage"
    );
    app.stop().await;
}

/// Each audience has its own store: a hash staff persisted is unknown to the
/// customer endpoint, so a customer cannot learn which texts staff send, nor
/// push staff entries out.
#[tokio::test]
async fn staff_and_customers_do_not_share_persisted_queries() {
    let app = TestServer::spawn().await;
    let owner = app.token("owner");
    let text = "query Mine { __typename }";
    let h = hash(text);
    let body = json!({ "query": text, "extensions": persisted(&h) });
    let stored = post(&app, "/graphql", &owner, body).await;
    assert!(stored.code().is_none(), "{}", stored.body);
    let customer = app.demo().customer.clone();
    let probe = post(
        &app,
        "/customer/graphql",
        &customer,
        json!({ "extensions": persisted(&h) }),
    )
    .await;
    assert_eq!(
        probe.code(),
        Some("PERSISTED_QUERY_NOT_FOUND"),
        "{}",
        probe.body
    );
    // The staff endpoint still has it.
    let again = post(
        &app,
        "/graphql",
        &owner,
        json!({ "extensions": persisted(&h) }),
    )
    .await;
    assert!(again.code().is_none(), "{}", again.body);
}
