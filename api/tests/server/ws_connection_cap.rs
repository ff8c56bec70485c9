//! Open websockets count against the connection cap (SPEC section 8:
//! "connections ... are capped"): an upgraded connection keeps its place
//! until the socket closes, so websockets from many addresses cannot open
//! file descriptors without bound.

use std::time::Duration;

use backchannel_api::transport::TransportLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use backchannel_testkit::*;

#[tokio::test]
async fn an_open_websocket_keeps_its_place_under_the_connection_cap() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = demo_config(dir.path());
    config.transport = TransportLimits {
        max_connections: 1,
        ..TransportLimits::default()
    };
    let mut app = TestServer::spawn_with(config).await;
    let mut ws = Ws::connect(app.addr, "/graphql").await;
    ws.init(&app.token("agent 1")).await;

    let mut waiting = TcpStream::connect(app.addr).await.unwrap();
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(300), waiting.read(&mut buffer)).await;
    assert!(
        early.is_err(),
        "answered past the cap while a websocket held the only place: {early:?}"
    );

    // Once the websocket closes, its place serves the waiting request.
    drop(ws);
    let mut received = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(10), waiting.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "not served after the websocket closed");
    assert!(
        String::from_utf8_lossy(&received).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&received)
    );
    app.stop().await;
}
