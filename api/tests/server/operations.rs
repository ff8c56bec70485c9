//! SPEC section 10 over real HTTP: `/metrics` moves with traffic, health and
//! readiness answer while the server catches up with its log, GraphQL answers
//! `NOT_CAUGHT_UP` meanwhile; the bearer scheme in any case.

use std::net::SocketAddr;

use backchannel_api::{Application, Config};
use serde_json::{Value, json};
use tokio::net::TcpStream;

use backchannel_testkit::demo::{CASEY, OWNER, SUPPORT};
use backchannel_testkit::*;

/// One request over a fresh connection (the harness' client): status,
/// lower-cased head, body.
async fn raw(addr: SocketAddr, request: String) -> (u16, String, String) {
    let reply = Client::new(addr).send(request.as_bytes()).await;
    (reply.status, reply.head.to_ascii_lowercase(), reply.text)
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await
}

async fn post(
    addr: SocketAddr,
    path: &str,
    authorization: Option<&str>,
    body: &Value,
) -> (u16, String, Value) {
    let body = body.to_string();
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let (status, head, body) = raw(
        addr,
        format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{auth}Connection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    (
        status,
        head,
        serde_json::from_str(&body).unwrap_or(Value::Null),
    )
}

/// The value of the sample `name` (with its labels exactly as rendered, e.g.
/// `x{a="b"}`) in a Prometheus text page; 0 when absent.
fn sample(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            (key == name).then(|| value.parse().unwrap())
        })
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_requests_appends_sockets_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = demo_config(dir.path());
    config.rate_limits.token_failures = "1/h".parse().unwrap();
    let mut app = TestServer::spawn_with(config).await;
    let (status, head, before) = get(app.addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/plain"), "{head}");
    let me = r#"backchannel_graphql_requests_total{code="OK",endpoint="staff",operation="Me"}"#;
    assert_eq!(sample(&before, me), 0.0);
    let appended = "backchannel_appended_events_total";
    let commits = "backchannel_commit_latency_seconds_count";

    let owner = app.token("owner");
    for _ in 0..2 {
        let reply = app.staff(&owner, "query Me { me { id } }", json!({})).await;
        assert!(reply.body["errors"].is_null(), "{}", reply.body);
    }
    let denied = app
        .staff("not-a-token", "query Me { me { id } }", json!({}))
        .await;
    assert_eq!(denied.code(), Some("UNAUTHENTICATED"));
    // The second bad token from this address is over the limit of 1/h.
    let refused = app
        .staff("not-a-token", "query Me { me { id } }", json!({}))
        .await;
    assert_eq!(refused.code(), Some("RATE_LIMITED"));
    let opened = app
        .staff(
            &owner,
            "mutation Open($g: ID!) { openConversation(groupId: $g, customerName: \"Mo\", channel: CALL) { conversationId } }",
            json!({ "g": SUPPORT }),
        )
        .await;
    assert!(opened.body["errors"].is_null(), "{}", opened.body);
    let agent = app.token("agent 1");
    let mut ws = Ws::connect(app.addr, "/graphql").await;
    ws.init(&agent).await;
    ws.subscribe(
        "1",
        "subscription($id: ID!) { conversationEvents(conversationId: $id) { __typename } }",
        json!({ "id": CASEY }),
    )
    .await;
    // A pong after the subscribe: it is registered.
    assert!(ws.ping().await.is_empty());
    let sent = app
        .staff(
            &agent,
            "mutation($id: ID!) { sendMessage(conversationId: $id, body: \"hello\", visibility: PRIVATE) { message { __typename } } }",
            json!({ "id": CASEY }),
        )
        .await;
    assert!(sent.body["errors"].is_null(), "{}", sent.body);
    let event = ws.message().await;
    assert_eq!(event["type"], "next", "{event}");

    // The read audit appends on its own (the subscription opened content):
    // let it finish, so the head, the applied position and the log agree.
    app.desk.read_audit().flush().await;
    let (_, _, after) = get(app.addr, "/metrics").await;
    assert_eq!(sample(&after, me), 2.0, "{after}");
    assert_eq!(
        sample(
            &after,
            r#"backchannel_graphql_requests_total{code="UNAUTHENTICATED",endpoint="staff",operation="Me"}"#
        ),
        1.0,
        "{after}"
    );
    assert!(
        sample(
            &after,
            r#"backchannel_graphql_request_duration_seconds_count{endpoint="staff"}"#
        ) >= 4.0,
        "{after}"
    );
    assert_eq!(
        sample(
            &after,
            r#"backchannel_rate_limited_total{limit="token_failures"}"#
        ),
        1.0,
        "{after}"
    );
    assert!(
        sample(&after, appended) >= sample(&before, appended) + 2.0,
        "{after}"
    );
    assert!(
        sample(&after, commits) >= sample(&before, commits) + 2.0,
        "{after}"
    );
    let head = app.desk.log().head() as f64;
    assert!(head > 0.0);
    assert_eq!(sample(&after, "backchannel_log_head"), head, "{after}");
    assert_eq!(
        sample(&after, "backchannel_applied_position"),
        head,
        "{after}"
    );
    assert_eq!(sample(&after, "backchannel_tail_lag"), 0.0, "{after}");
    assert_eq!(
        sample(&after, "backchannel_websockets_open"),
        1.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, "backchannel_subscriptions_open"),
        1.0,
        "{after}"
    );
    app.stop().await;
}

#[tokio::test]
async fn metrics_can_be_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = demo_config(dir.path());
    config.metrics = false;
    let mut app = TestServer::spawn_with(config).await;
    assert_eq!(get(app.addr, "/metrics").await.0, 404);
    app.stop().await;
}

/// A store with the demo's events, stopped.
async fn demo_store() -> (tempfile::TempDir, Config, u64) {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path());
    let mut app = TestServer::spawn_with(config.clone()).await;
    let head = app.desk.log().head();
    app.stop().await;
    (dir, config, head)
}

#[tokio::test]
async fn health_and_readiness_answer_before_the_catch_up_completes() {
    let (_dir, config, head) = demo_store().await;
    assert!(head > 0);
    let starting = Application::start(config).await.unwrap();
    let addr = starting.addr();
    // Listening, the store not opened yet.
    let (status, _, body) = get(addr, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "alive\n"));
    let (status, _, body) = get(addr, "/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(body, format!("catching up: applied 0 of {head}\n"));
    for path in ["/graphql", "/customer/graphql"] {
        let (status, head, reply) =
            post(addr, path, None, &json!({ "query": "{ __typename }" })).await;
        assert_eq!(status, 503, "{reply}");
        assert_eq!(
            reply["errors"][0]["extensions"]["code"], "NOT_CAUGHT_UP",
            "{reply}"
        );
        assert!(
            reply["errors"][0]["extensions"]["retryAfterMs"]
                .as_u64()
                .unwrap()
                > 0
        );
        assert!(head.contains("retry-after: "), "{head}");
    }

    let app = starting.catch_up().await.unwrap();
    let (status, _, body) = get(addr, "/readyz").await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    let (status, _, reply) = post(
        addr,
        "/graphql",
        None,
        &json!({ "query": "{ __typename }" }),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["data"]["__typename"], "Query");
    let shutdown = app.shutdown_handle();
    let server = tokio::spawn(app.run_until_stopped());
    shutdown.trigger();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_start_dropped_before_catching_up_stops_listening() {
    let (_dir, config, _) = demo_store().await;
    let starting = Application::start(config).await.unwrap();
    let addr = starting.addr();
    assert_eq!(get(addr, "/healthz").await.0, 200);
    drop(starting);
    // The accept loop ends with the handle; the port is closed soon after.
    let mut refused = false;
    for _ in 0..200 {
        if TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(refused, "still accepting after the start was dropped");
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive_over_http() {
    let mut app = TestServer::spawn().await;
    let owner = app.token("owner");
    for scheme in ["BEARER", "bearer", "Bearer", "bEaReR"] {
        let (status, _, reply) = post(
            app.addr,
            "/graphql",
            Some(&format!("{scheme} {owner}")),
            &json!({ "query": "{ me { id } }" }),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(reply["data"]["me"]["id"], OWNER, "{scheme}: {reply}");
    }
    app.stop().await;
}
