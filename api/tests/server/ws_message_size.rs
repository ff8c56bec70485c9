//! A websocket message over the body limit closes the socket with 1009
//! ("Message too big") and a reason, not a dropped connection (1006).

use serde_json::json;

use backchannel_testkit::*;

#[tokio::test]
async fn an_oversized_message_closes_with_1009() {
    let app = TestServer::spawn().await;
    let mut ws = Ws::connect(app.addr, "/graphql").await;
    ws.init(&app.token("agent 1")).await;
    // A 95 KB subscribe payload, over the default body limit.
    let padding = "x".repeat(95 * 1024);
    ws.subscribe(
        "1",
        "subscription { notifications { id } }",
        json!({ "padding": padding }),
    )
    .await;
    let (code, reason) = ws.closed().await;
    assert_eq!(code, 1009, "{reason}");
    assert!(!reason.is_empty() && reason.len() <= 123, "{reason}");
}
