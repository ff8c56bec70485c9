//! SPEC section 8: websockets follow graphql-transport-ws exactly (close
//! codes, the init timeout, caps, token expiry), over a real socket.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use backchannel_api::Config;
use backchannel_api::auth::StaffIdentity;
use backchannel_api::transport::TransportLimits;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use crate::support::*;

/// How long a test waits for something it expects.
const PATIENCE: Duration = Duration::from_secs(10);

/// What the server sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    Message(Value),
    Closed(u16, String),
}

pub struct Ws {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    pub async fn connect(addr: SocketAddr, path: &str) -> Ws {
        match Ws::try_connect(addr, path).await {
            Ok(ws) => ws,
            Err(status) => panic!("the upgrade was refused with {status}"),
        }
    }

    /// Connects, or the HTTP status of the refusal.
    pub async fn try_connect(addr: SocketAddr, path: &str) -> Result<Ws, u16> {
        let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("graphql-transport-ws"),
        );
        match connect_async(request).await {
            Ok((socket, _)) => Ok(Ws { socket }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(err) => panic!("cannot connect: {err}"),
        }
    }

    pub async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
    }

    /// The next message or the close; panics after [`PATIENCE`] or on a
    /// frame the client cannot read (say a close reason over 123 bytes).
    pub async fn recv(&mut self) -> Received {
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.socket.next())
                .await
                .expect("the server sent nothing in time");
            match frame {
                None => return Received::Closed(1006, String::new()),
                Some(Err(err)) => panic!("unreadable frame: {err}"),
                Some(Ok(Message::Text(text))) => {
                    return Received::Message(serde_json::from_str(&text).unwrap());
                }
                Some(Ok(Message::Close(frame))) => {
                    return match frame {
                        Some(frame) => {
                            Received::Closed(u16::from(frame.code), frame.reason.to_string())
                        }
                        None => Received::Closed(1005, String::new()),
                    };
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    pub async fn message(&mut self) -> Value {
        match self.recv().await {
            Received::Message(message) => message,
            closed => panic!("expected a message, got {closed:?}"),
        }
    }

    /// The close code and reason; panics on any message before it.
    pub async fn closed(&mut self) -> (u16, String) {
        match self.recv().await {
            Received::Closed(code, reason) => (code, reason),
            message => panic!("expected the socket to close, got {message:?}"),
        }
    }

    pub async fn init(&mut self, token: &str) {
        self.send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } }))
            .await;
        let ack = self.message().await;
        assert_eq!(ack["type"], "connection_ack", "{ack}");
    }

    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } }))
            .await;
    }

    /// A ping, and every message before its pong. The server starts each
    /// operation before it reads the next message, so after the pong every
    /// earlier subscription listens.
    pub async fn ping(&mut self) -> Vec<Value> {
        self.send(json!({ "type": "ping" })).await;
        let mut before = Vec::new();
        loop {
            let message = self.message().await;
            if message["type"] == "pong" {
                return before;
            }
            before.push(message);
        }
    }
}

const NOTIFICATIONS: &str = "subscription { notifications { id } }";
const EVENTS: &str =
    "subscription($id: ID!) { conversationEvents(conversationId: $id) { __typename } }";
const NOTE: &str = "mutation($id: ID!, $b: String!) { sendMessage(conversationId: $id, body: $b, visibility: PRIVATE) { message { __typename } } }";

/// The server with these transport limits, and its data directory.
async fn spawn_with(transport: TransportLimits) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config: Config = config(dir.path().to_owned());
    config.transport = transport;
    (TestApp::spawn_with(config).await, dir)
}

#[tokio::test]
async fn a_bad_token_is_refused_at_init_with_4403() {
    let app = TestApp::spawn().await;
    for path in ["/graphql", "/customer/graphql"] {
        let mut ws = Ws::connect(app.addr, path).await;
        ws.send(json!({ "type": "connection_init", "payload": { "Authorization": "Bearer not-a-token" } }))
            .await;
        assert_eq!(ws.closed().await, (4403, "Forbidden".to_owned()), "{path}");
    }
    // A customer's token is no staff token, and the other way round.
    let mut ws = Ws::connect(app.addr, "/graphql").await;
    ws.send(json!({ "type": "connection_init", "payload": { "token": app.demo.customer } }))
        .await;
    assert_eq!(ws.closed().await.0, 4403);
    let mut ws = Ws::connect(app.addr, "/customer/graphql").await;
    ws.send(json!({ "type": "connection_init", "payload": { "token": app.token("agent 1") } }))
        .await;
    assert_eq!(ws.closed().await.0, 4403);
}

#[tokio::test]
async fn a_missing_token_is_refused_at_init_with_4403() {
    let app = TestApp::spawn().await;
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
    let app = TestApp::spawn().await;
    let (_, _, staff, _) = app.demo.staff[3].clone();
    let identity = StaffIdentity {
        staff,
        company: app.demo.company,
    };
    let long_ago = SystemTime::now() - Duration::from_secs(90 * 24 * 3600);
    let expired = app.app_tokens.mint_staff_at(identity, long_ago).unwrap();
    let mut ws = Ws::connect(app.addr, "/graphql").await;
    ws.send(json!({ "type": "connection_init", "payload": { "token": expired.token } }))
        .await;
    assert_eq!(ws.closed().await.0, 4403);
}

#[tokio::test]
async fn the_upgrade_requests_header_carries_the_token_too() {
    let app = TestApp::spawn().await;
    let mut request = format!("ws://{}/graphql", app.addr)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let bearer = format!("Bearer {}", app.token("agent 1"));
    request
        .headers_mut()
        .insert("Authorization", HeaderValue::from_str(&bearer).unwrap());
    let (socket, _) = connect_async(request).await.unwrap();
    let mut ws = Ws { socket };
    ws.send(json!({ "type": "connection_init" })).await;
    assert_eq!(ws.message().await["type"], "connection_ack");
}

#[tokio::test]
async fn an_unknown_message_type_closes_with_4400_and_a_reason_that_fits_a_control_frame() {
    let app = TestApp::spawn().await;
    let mut ws = Ws::connect(app.addr, "/graphql").await;
    ws.init(&app.token("agent 1")).await;
    ws.send(json!({ "type": "x".repeat(300) })).await;
    let (code, reason) = ws.closed().await;
    assert_eq!(code, 4400);
    assert!(reason.len() <= 123, "{} bytes: {reason}", reason.len());
    // Not JSON at all, and before the init, is the same.
    let mut ws = Ws::connect(app.addr, "/customer/graphql").await;
    ws.socket
        .send(Message::text("{\"type\": ".repeat(40)))
        .await
        .unwrap();
    let (code, reason) = ws.closed().await;
    assert_eq!(code, 4400);
    assert!(reason.len() <= 123, "{} bytes: {reason}", reason.len());
}

#[tokio::test]
async fn a_subscribe_before_the_ack_closes_with_4401() {
    let app = TestApp::spawn().await;
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
    let app = TestApp::spawn().await;
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
    let app = TestApp::spawn().await;
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
    let (status, _) = app.get("/healthz").await;
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
    let app = TestApp::spawn().await;
    let (_, _, staff, _) = app.demo.staff[3].clone();
    let identity = StaffIdentity {
        staff,
        company: app.demo.company,
    };
    // Issued so that it expires two to three seconds from now.
    let lifetime = Duration::from_secs(30 * 24 * 3600);
    let issued = SystemTime::now() - lifetime + Duration::from_secs(3);
    let short = app.app_tokens.mint_staff_at(identity, issued).unwrap();
    let mut ws = Ws::connect(app.addr, "/graphql").await;
    ws.init(&short.token).await;
    ws.subscribe("1", NOTIFICATIONS, json!({})).await;
    assert!(ws.ping().await.is_empty());
    assert_eq!(ws.closed().await, (4403, "token expired".to_owned()));
}

#[tokio::test]
async fn subscriptions_deliver_until_completed() {
    let app = TestApp::spawn().await;
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
    let app = TestApp::spawn().await;
    let mut ws = Ws::connect(app.addr, "/customer/graphql").await;
    ws.init(&app.demo.customer).await;
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
