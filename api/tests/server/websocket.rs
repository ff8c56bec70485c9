//! SPEC section 8: websockets follow graphql-transport-ws exactly (close
//! codes, the init timeout, caps, token expiry), over a real socket.

use std::time::{Duration, SystemTime};

use backchannel_api::Config;
use backchannel_api::auth::StaffIdentity;
use backchannel_api::transport::TransportLimits;
use serde_json::json;

use backchannel_testkit::demo::CASEY;
use backchannel_testkit::*;

const NOTIFICATIONS: &str = "subscription { notifications { id } }";
const EVENTS: &str =
    "subscription($id: ID!) { conversationEvents(conversationId: $id) { __typename } }";
const NOTE: &str = "mutation($id: ID!, $b: String!) { sendMessage(conversationId: $id, body: $b, visibility: PRIVATE) { message { __typename } } }";

/// The server with these transport limits, and its data directory.
async fn spawn_with(transport: TransportLimits) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config: Config = demo_config(dir.path());
    config.transport = transport;
    (TestServer::spawn_with(config).await, dir)
}

#[tokio::test]
async fn a_bad_token_is_refused_at_init_with_4403() {
    let app = TestServer::spawn().await;
    for path in ["/graphql", "/customer/graphql"] {
        let mut ws = Ws::connect(app.addr, path).await;
        ws.send(json!({ "type": "connection_init", "payload": { "Authorization": "Bearer not-a-token" } }))
            .await;
        assert_eq!(ws.closed().await, (4403, "Forbidden".to_owned()), "{path}");
    }
    // A customer's token is no staff token, and the other way round.
    let mut ws = Ws::connect(app.addr, "/graphql").await;
    ws.send(json!({ "type": "connection_init", "payload": { "token": app.demo().customer } }))
        .await;
    assert_eq!(ws.closed().await.0, 4403);
    let mut ws = Ws::connect(app.addr, "/customer/graphql").await;
    ws.send(json!({ "type": "connection_init", "payload": { "token": app.token("agent 1") } }))
        .await;
    assert_eq!(ws.closed().await.0, 4403);
}

#[tokio::test]
async fn a_missing_token_is_refused_at_init_with_4403() {
    let app = TestServer::spawn().await;
    for path in ["/graphql", "/customer/graphql"] {
        let mut ws = Ws::connect(app.addr, path).await;
        ws.send(json!({ "type": "connection_init" })).await;
        assert_eq!(ws.closed().await, (4403, "Forbidden".to_owned()), "{path}");
        let mut ws = Ws::connect(app.addr, path).await;
        ws.send(json!({ "type": "connection_init", "payload": {} }))
            .await;
        assert_eq!(ws.closed().await.0, 4403, "{path}");
    }
}

#[tokio::test]
async fn an_expired_token_is_refused_at_init_with_4403() {
    let app = TestServer::spawn().await;
    let (_, _, staff, _) = app.demo().staff[3].clone();
    let identity = StaffIdentity {
        staff,
        company: app.demo().company,
    };
    let long_ago = SystemTime::now() - Duration::from_secs(90 * 24 * 3600);
    let expired = app.tokens.mint_staff_at(identity, long_ago).unwrap();
    let mut ws = Ws::connect(app.addr, "/graphql").await;
    ws.send(json!({ "type": "connection_init", "payload": { "token": expired.token } }))
        .await;
    assert_eq!(ws.closed().await.0, 4403);
}

#[tokio::test]
async fn the_upgrade_requests_header_carries_the_token_too() {
    let app = TestServer::spawn().await;
    let bearer = format!("Bearer {}", app.token("agent 1"));
    let mut ws =
        Ws::connect_with_headers(app.addr, "/graphql", &[("Authorization", &bearer)]).await;
    ws.send(json!({ "type": "connection_init" })).await;
    assert_eq!(ws.message().await["type"], "connection_ack");
}

#[tokio::test]
async fn an_unknown_message_type_closes_with_4400_and_a_reason_that_fits_a_control_frame() {
    let app = TestServer::spawn().await;
    let mut ws = Ws::connect(app.addr, "/graphql").await;
    ws.init(&app.token("agent 1")).await;
    ws.send(json!({ "type": "x".repeat(300) })).await;
    let (code, reason) = ws.closed().await;
    assert_eq!(code, 4400);
    assert!(reason.len() <= 123, "{} bytes: {reason}", reason.len());
    // Not JSON at all, and before the init, is the same.
    let mut ws = Ws::connect(app.addr, "/customer/graphql").await;
    ws.send_text(&"{\"type\": ".repeat(40)).await;
    let (code, reason) = ws.closed().await;
    assert_eq!(code, 4400);
    assert!(reason.len() <= 123, "{} bytes: {reason}", reason.len());
}

#[tokio::test]
async fn a_subscribe_before_the_ack_closes_with_4401() {
    let app = TestServer::spawn().await;
    let mut ws = Ws::connect(app.addr, "/graphql").await;
    ws.subscribe("1", NOTIFICATIONS, json!({})).await;
    assert_eq!(ws.closed().await, (4401, "Unauthorized".to_owned()));
}

#[tokio::test]
async fn no_init_in_time_closes_with_4408() {
    let (app, _dir) = spawn_with(TransportLimits {
        ws_init_timeout: Duration::from_secs(2),
        ..TransportLimits::default()
    })
    .await;
    let mut ws = Ws::connect(app.addr, "/graphql").await;
    // Pings are answered before the init, but do not stand for it.
    assert!(ws.ping().await.is_empty());
    assert_eq!(ws.closed().await.0, 4408);
}

#[tokio::test]
async fn a_duplicate_subscription_id_closes_with_4409() {
    let app = TestServer::spawn().await;
    let mut ws = Ws::connect(app.addr, "/graphql").await;
    ws.init(&app.token("agent 1")).await;
    ws.subscribe("same", NOTIFICATIONS, json!({})).await;
    ws.subscribe("same", NOTIFICATIONS, json!({})).await;
    assert_eq!(
        ws.closed().await,
        (4409, "Subscriber for same already exists".to_owned())
    );
    // A long id still leaves a reason that fits a control frame.
    let long = "é".repeat(60);
    let mut ws = Ws::connect(app.addr, "/graphql").await;
    ws.init(&app.token("agent 1")).await;
    ws.subscribe(&long, NOTIFICATIONS, json!({})).await;
    ws.subscribe(&long, NOTIFICATIONS, json!({})).await;
    let (code, reason) = ws.closed().await;
    assert_eq!(code, 4409);
    assert!(reason.len() <= 123, "{} bytes: {reason}", reason.len());
    assert!(reason.starts_with("Subscriber for éé"), "{reason}");
}

#[tokio::test]
async fn a_second_init_closes_with_4429() {
    let app = TestServer::spawn().await;
    let mut ws = Ws::connect(app.addr, "/graphql").await;
    ws.init(&app.token("agent 1")).await;
    ws.send(json!({ "type": "connection_init", "payload": { "token": app.token("agent 1") } }))
        .await;
    assert_eq!(ws.closed().await.0, 4429);
}

#[tokio::test]
async fn subscriptions_per_socket_are_capped() {
    let (app, _dir) = spawn_with(TransportLimits {
        ws_max_subscriptions: 3,
        ..TransportLimits::default()
    })
    .await;
    let mut ws = Ws::connect(app.addr, "/graphql").await;
    ws.init(&app.token("agent 1")).await;
    for id in ["a", "b", "c", "d"] {
        ws.subscribe(id, NOTIFICATIONS, json!({})).await;
    }
    let refused = ws.ping().await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["type"], "error");
    assert_eq!(refused[0]["id"], "d");
    assert_eq!(
        refused[0]["payload"][0]["extensions"]["code"],
        "QUERY_TOO_COMPLEX"
    );
    // Completing one makes room.
    ws.send(json!({ "id": "a", "type": "complete" })).await;
    ws.subscribe("d", NOTIFICATIONS, json!({})).await;
    assert!(ws.ping().await.is_empty());
}

#[tokio::test]
async fn websockets_per_client_address_are_capped() {
    let (app, _dir) = spawn_with(TransportLimits {
        ws_max_per_address: 2,
        ..TransportLimits::default()
    })
    .await;
    let first = Ws::connect(app.addr, "/graphql").await;
    let _second = Ws::connect(app.addr, "/customer/graphql").await;
    assert_eq!(Ws::try_connect(app.addr, "/graphql").await.err(), Some(429));
    // Plain HTTP is not counted.
    let status = app.get("/healthz").await.status;
    assert_eq!(status, 200);
    // Once one closes, its place is free again.
    drop(first);
    let mut admitted = None;
    for _ in 0..100 {
        match Ws::try_connect(app.addr, "/graphql").await {
            Ok(ws) => {
                admitted = Some(ws);
                break;
            }
            Err(status) => {
                assert_eq!(status, 429);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let mut ws = admitted.expect("a place after a socket closed");
    ws.init(&app.token("agent 1")).await;
}

#[tokio::test]
async fn an_idle_subscription_ends_when_its_token_expires() {
    let app = TestServer::spawn().await;
    let (_, _, staff, _) = app.demo().staff[3].clone();
    let identity = StaffIdentity {
        staff,
        company: app.demo().company,
    };
    // Issued so that it expires two to three seconds from now.
    let lifetime = Duration::from_secs(30 * 24 * 3600);
    let issued = SystemTime::now() - lifetime + Duration::from_secs(3);
    let short = app.tokens.mint_staff_at(identity, issued).unwrap();
    let mut ws = Ws::connect(app.addr, "/graphql").await;
    ws.init(&short.token).await;
    ws.subscribe("1", NOTIFICATIONS, json!({})).await;
    assert!(ws.ping().await.is_empty());
    assert_eq!(ws.closed().await, (4403, "token expired".to_owned()));
}

#[tokio::test]
async fn subscriptions_deliver_until_completed() {
    let app = TestServer::spawn().await;
    let agent = app.token("agent 1");
    let mut ws = Ws::connect(app.addr, "/graphql").await;
    ws.init(&agent).await;
    ws.subscribe("events", EVENTS, json!({ "id": CASEY })).await;
    assert!(ws.ping().await.is_empty());
    let sent = app
        .staff(&agent, NOTE, json!({ "id": CASEY, "b": "first" }))
        .await;
    assert!(sent.body["errors"].is_null(), "{}", sent.body);
    let next = ws.message().await;
    assert_eq!(next["type"], "next", "{next}");
    assert_eq!(next["id"], "events");
    assert_eq!(
        next["payload"]["data"]["conversationEvents"]["__typename"],
        "PrivateMessage"
    );
    // After `complete` nothing more arrives for it.
    ws.send(json!({ "id": "events", "type": "complete" })).await;
    assert!(ws.ping().await.is_empty());
    app.staff(&agent, NOTE, json!({ "id": CASEY, "b": "second" }))
        .await;
    // A later query's answer comes after anything the event could have sent.
    ws.subscribe("me", "{ me { id } }", json!({})).await;
    let next = ws.message().await;
    assert_eq!(next["id"], "me", "{next}");
    assert_eq!(next["type"], "next");
    assert!(next["payload"]["data"]["me"]["id"].is_string(), "{next}");
    assert_eq!(
        ws.message().await,
        json!({ "id": "me", "type": "complete" })
    );
    // The id is free again once its operation completed.
    ws.subscribe("me", "{ me { id } }", json!({})).await;
    assert_eq!(ws.message().await["type"], "next");
    assert_eq!(ws.message().await["type"], "complete");
}

#[tokio::test]
async fn an_operation_refused_before_execution_gets_an_error_message() {
    let app = TestServer::spawn().await;
    let mut ws = Ws::connect(app.addr, "/customer/graphql").await;
    ws.init(&app.demo().customer).await;
    ws.subscribe("bad", "subscription { noSuchField }", json!({}))
        .await;
    let error = ws.message().await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["id"], "bad");
    assert_eq!(error["payload"][0]["extensions"]["code"], "VALIDATION");
    // No `complete` follows an `error`, and the socket stays usable.
    assert!(ws.ping().await.is_empty());
    ws.subscribe("bad", "{ conversation { id } }", json!({}))
        .await;
    let next = ws.message().await;
    assert_eq!(next["type"], "next", "{next}");
    assert!(next["payload"]["data"]["conversation"]["id"].is_string());
}

/// A query or mutation over a websocket has an execution deadline. With none
/// at all, a mutation (which waits for its append) is cut off at once.
#[tokio::test]
async fn single_result_operations_have_a_deadline() {
    let (app, _dir) = spawn_with(TransportLimits {
        ws_operation_timeout: Duration::ZERO,
        ..TransportLimits::default()
    })
    .await;
    let mut ws = Ws::connect(app.addr, "/graphql").await;
    ws.init(&app.token("agent 1")).await;
    // A zero deadline fires at the timer's next tick: an append that became
    // durable within it may still answer, so try a few; without a deadline
    // every one of them would.
    let mut timed_out = false;
    for attempt in 0..20 {
        let id = format!("m{attempt}");
        ws.subscribe(&id, NOTE, json!({ "id": CASEY, "b": "late" }))
            .await;
        let answer = ws.message().await;
        assert_eq!(answer["id"], id.as_str(), "{answer}");
        match answer["type"].as_str() {
            Some("error") => {
                assert_eq!(answer["payload"][0]["extensions"]["code"], "TIMEOUT");
                timed_out = true;
                break;
            }
            Some("next") => {
                assert!(answer["payload"]["errors"].is_null(), "{answer}");
                let complete = ws.message().await;
                assert_eq!(complete["type"], "complete", "{complete}");
            }
            other => panic!("unexpected {other:?}: {answer}"),
        }
    }
    assert!(timed_out, "no operation was stopped at its deadline");
    // Subscriptions have no such deadline.
    ws.subscribe("n", NOTIFICATIONS, json!({})).await;
    assert!(ws.ping().await.is_empty());
}
