//! SPEC sections 8 and 10: a slow or half-sent request can neither hold a
//! connection nor delay a graceful shutdown, and connections are capped.
//! Every read here has a client-side timeout, so a server that never closes
//! fails the test instead of hanging it.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use backchannel_api::Config;
use backchannel_api::transport::TransportLimits;
use backchannel_eventlog::SledEventLog;
use backchannel_projections::ReadModels;
use backchannel_projections::checkpoint;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use backchannel_testkit::demo::CASEY;
use backchannel_testkit::*;

/// How long a test waits for the server to close a connection.
const PATIENCE: Duration = Duration::from_secs(10);

fn with_transport(dir: &Path, transport: TransportLimits) -> Config {
    let mut config = demo_config(dir);
    config.transport = transport;
    config
}

/// Reads until the server closes the connection: what it sent, or `None`
/// if it did not close within [`PATIENCE`].
async fn until_closed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await
    .ok()?;
    Some(received)
}

/// A connection that sent the first half of a request's headers.
async fn half_sent_head(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"POST /graphql HTTP/1.1\r\nHost: localhost\r\nContent-Ty")
        .await
        .unwrap();
    stream
}

/// A connection that sent its headers and half its body.
async fn half_sent_body(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let body = br#"{"query": "{ me { id } }"}"#;
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..body.len() / 2]).await.unwrap();
    stream
}

#[tokio::test]
async fn half_sent_headers_are_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let transport = TransportLimits {
        header_timeout: Duration::from_secs(1),
        ..TransportLimits::default()
    };
    let mut app = TestServer::spawn_with(with_transport(dir.path(), transport)).await;
    let mut stream = half_sent_head(app.addr).await;
    assert!(
        until_closed(&mut stream).await.is_some(),
        "the connection is still open"
    );
    // A connection that sends nothing at all is closed the same way.
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    assert!(until_closed(&mut silent).await.is_some());
    app.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let transport = TransportLimits {
        header_timeout: Duration::from_secs(1),
        ..TransportLimits::default()
    };
    let mut app = TestServer::spawn_with(with_transport(dir.path(), transport)).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let received = until_closed(&mut stream)
        .await
        .expect("the idle connection is still open");
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("alive"), "{text}");
    app.stop().await;
}

#[tokio::test]
async fn a_half_sent_body_is_refused_after_the_body_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let transport = TransportLimits {
        body_timeout: Duration::from_secs(1),
        ..TransportLimits::default()
    };
    let mut app = TestServer::spawn_with(with_transport(dir.path(), transport)).await;
    let mut stream = half_sent_body(app.addr).await;
    let received = until_closed(&mut stream)
        .await
        .expect("the connection is still open");
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"code\":\"VALIDATION\""), "{text}");
    // A body trickled in byte by byte gets no longer: the deadline is for
    // the whole body, not for each piece.
    let mut stream = half_sent_body(app.addr).await;
    let trickle = async {
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if stream.write_all(b" ").await.is_err() {
                break;
            }
        }
    };
    tokio::time::timeout(PATIENCE, trickle).await.unwrap();
    let received = until_closed(&mut stream)
        .await
        .expect("the connection is still open");
    assert!(String::from_utf8_lossy(&received).starts_with("HTTP/1.1 408"));
    app.stop().await;
}

/// At the cap a new connection waits to be accepted; it is served once a
/// place frees.
#[tokio::test]
async fn connections_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let transport = TransportLimits {
        max_connections: 1,
        ..TransportLimits::default()
    };
    let mut app = TestServer::spawn_with(with_transport(dir.path(), transport)).await;
    let holder = half_sent_head(app.addr).await;
    let mut waiting = TcpStream::connect(app.addr).await.unwrap();
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(300), waiting.read(&mut buffer)).await;
    assert!(early.is_err(), "answered past the cap: {early:?}");
    drop(holder);
    let received = until_closed(&mut waiting)
        .await
        .expect("not served after a place freed");
    assert!(String::from_utf8_lossy(&received).starts_with("HTTP/1.1 200"));
    app.stop().await;
}

/// A half-sent head, a half-sent body and a websocket: a graceful stop still
/// ends within the grace period and writes its checkpoint.
#[tokio::test]
async fn a_graceful_stop_ends_slow_connections_and_writes_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let grace = Duration::from_secs(2);
    // The slow connections' own timeouts are far off: only the stop ends them.
    let transport = TransportLimits {
        header_timeout: Duration::from_secs(600),
        body_timeout: Duration::from_secs(600),
        grace,
        ..TransportLimits::default()
    };
    let mut app = TestServer::spawn_with(with_transport(dir.path(), transport)).await;
    let addr = app.addr;
    let agent = app.demo().staff[3].3.clone();

    let note = json!({
        "query": "mutation($id: ID!) { sendMessage(conversationId: $id, body: \"before the stop\", visibility: PRIVATE) { message { __typename } } }",
        "variables": { "id": CASEY },
    })
    .to_string();
    let request = format!(
        "POST /graphql HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nAuthorization: Bearer {agent}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{note}",
        note.len()
    );
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let answer = until_closed(&mut stream).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.contains("PrivateMessage"), "{answer}");
    let head = app.desk.log().head();

    let _head = half_sent_head(addr).await;
    let _body = half_sent_body(addr).await;
    let mut ws = Ws::connect(addr, "/graphql").await;
    ws.init(&agent).await;
    ws.subscribe("1", "subscription { notifications { id } }", json!({}))
        .await;
    assert!(ws.ping().await.is_empty());

    let stopped = tokio::time::timeout(grace + PATIENCE, app.stop()).await;
    assert!(stopped.is_ok(), "the server did not stop");
    assert!(
        matches!(ws.recv().await, Received::Closed(1001, _)),
        "the websocket was not closed as going away"
    );
    drop(app);

    let store = dir.path().join("store");
    let saved = tokio::task::spawn_blocking(move || {
        SledEventLog::load_checkpoint::<ReadModels>(
            &store,
            checkpoint::CHECKPOINT_NAME,
            checkpoint::CHECKPOINT_KIND,
        )
        .unwrap()
    })
    .await
    .unwrap()
    .expect("no checkpoint was written");
    assert_eq!(saved.after.position, head);
}
