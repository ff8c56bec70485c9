//! SPEC section 11, read-your-writes, on one node: a mutation's answer names
//! its log position (`extensions.position`, `X-Log-Position`); a request
//! with `X-Min-Position` (websocket: `minPosition`) is answered once the node
//! has applied it, or `NOT_CAUGHT_UP` with a retry delay after a bounded
//! wait; a bad value is `400 VALIDATION` and changes nothing. (Two nodes on
//! one PostgreSQL log: `tests/tests/e2e/nodes.rs`.)

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};

use backchannel_testkit::demo::CASEY;
use backchannel_testkit::*;

const SEND: &str = "mutation($c: ID!, $k: String) { sendMessage(conversationId: $c, body: \"Logged.\", visibility: PUBLIC, idempotencyKey: $k) { message { __typename } } }";
const ME: &str = "{ me { name } }";

/// A POST of `body` with extra header lines: status, lower-cased head, body.
async fn post(addr: SocketAddr, token: &str, extra: &str, body: &Value) -> (u16, String, Value) {
    let bearer = format!("Bearer {token}");
    let body = body.to_string();
    let reply = Client::new(addr)
        .post_with("/graphql", Some(&bearer), extra, body.as_bytes())
        .await;
    (reply.status, reply.head.to_ascii_lowercase(), reply.body)
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}: ")))
        .map(str::to_owned)
}

async fn spawn_waiting(patience: Duration) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = demo_config(dir.path());
    config.limits.min_position_wait = patience;
    (TestServer::spawn_with(config).await, dir)
}

#[tokio::test]
async fn a_mutation_answer_names_the_position_of_its_append() {
    let (app, _dir) = spawn_waiting(Duration::from_millis(200)).await;
    let alice = app.token("agent 1");
    let send = json!({ "query": SEND, "variables": { "c": CASEY, "k": "pos-1" } });
    let (status, head, body) = post(app.addr, &alice, "", &send).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["errors"].is_null(), "{body}");
    let position = body["extensions"]["position"].as_u64().unwrap();
    // One node: its append is the log's last event.
    assert_eq!(position, app.desk.log().head());
    assert_eq!(header(&head, "x-log-position"), Some(position.to_string()));

    // A retried key answers the first attempt's position, appending nothing.
    let (_, head, again) = post(app.addr, &alice, "", &send).await;
    assert_eq!(again["extensions"]["position"].as_u64(), Some(position));
    assert_eq!(header(&head, "x-log-position"), Some(position.to_string()));
    assert_eq!(app.desk.log().head(), position);

    // Queries carry none.
    let (status, head, me) = post(app.addr, &alice, "", &json!({ "query": ME })).await;
    assert_eq!(status, 200, "{me}");
    assert!(me["extensions"]["position"].is_null(), "{me}");
    assert_eq!(header(&head, "x-log-position"), None);

    // A refused mutation still names a position at which it is answered.
    let refused =
        json!({ "query": SEND, "variables": { "c": "01900000-0000-7000-8000-00000000dfff" } });
    let (_, head, body) = post(app.addr, &alice, "", &refused).await;
    assert!(body["errors"].is_array(), "{body}");
    assert_eq!(body["extensions"]["position"].as_u64(), Some(position));
    assert_eq!(header(&head, "x-log-position"), Some(position.to_string()));

    // An anonymous caller learns nothing of the log: no position.
    let anonymous = app
        .post("/graphql", None, refused.to_string().as_bytes())
        .await;
    let text = format!("{}\r\n\r\n{}", anonymous.head, anonymous.text).to_ascii_lowercase();
    assert!(text.contains("unauthenticated"), "{text}");
    assert!(!text.contains("\r\nx-log-position:"), "{text}");
    assert!(!text.contains("\"position\""), "{text}");
}

#[tokio::test]
async fn min_position_reached_answers_and_beyond_the_head_is_not_caught_up() {
    let (app, _dir) = spawn_waiting(Duration::from_millis(200)).await;
    let alice = app.token("agent 1");
    let head = app.desk.log().head();
    let (status, _, body) = post(
        app.addr,
        &alice,
        &format!("X-Min-Position: {head}\r\n"),
        &json!({ "query": ME }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["me"]["name"].is_string(), "{body}");

    for far in [head + 1, head + 1_000_000, i64::MAX as u64] {
        let (status, response_head, body) = post(
            app.addr,
            &alice,
            &format!("X-Min-Position: {far}\r\n"),
            &json!({ "query": ME }),
        )
        .await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "NOT_CAUGHT_UP");
        assert!(
            body["errors"][0]["extensions"]["retryAfterMs"]
                .as_u64()
                .unwrap()
                > 0,
            "{body}"
        );
        assert!(
            header(&response_head, "retry-after").is_some(),
            "{response_head}"
        );
        assert!(body["data"].is_null(), "{body}");
    }
    // Nothing was executed: a mutation that waited in vain appended nothing.
    let send = json!({ "query": SEND, "variables": { "c": CASEY } });
    let (status, _, _) = post(
        app.addr,
        &alice,
        &format!("X-Min-Position: {}\r\n", head + 5),
        &send,
    )
    .await;
    assert_eq!(status, 503);
    assert_eq!(app.desk.log().head(), head);
}

#[tokio::test]
async fn bad_min_positions_are_refused_at_once_and_change_nothing() {
    // A long patience: a bad value must not wait for it.
    let (app, _dir) = spawn_waiting(Duration::from_secs(60)).await;
    let alice = app.token("agent 1");
    let head = app.desk.log().head();
    let send = json!({ "query": SEND, "variables": { "c": CASEY } });
    for extra in [
        "X-Min-Position: abc\r\n",
        "X-Min-Position: -1\r\n",
        "X-Min-Position: 1e3\r\n",
        "X-Min-Position: 0x10\r\n",
        "X-Min-Position: \r\n",
        "X-Min-Position: 9223372036854775808\r\n",
        "X-Min-Position: 99999999999999999999999999999\r\n",
        "X-Min-Position: 1\r\nX-Min-Position: 2\r\n",
    ] {
        let (status, _, body) = tokio::time::timeout(
            Duration::from_secs(20),
            post(app.addr, &alice, extra, &send),
        )
        .await
        .expect("a bad X-Min-Position must be answered without waiting");
        assert_eq!(status, 400, "{extra:?}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "VALIDATION",
            "{extra:?}: {body}"
        );
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("X-Min-Position"),
            "{body}"
        );
    }
    assert_eq!(app.desk.log().head(), head);
}

#[tokio::test]
async fn websocket_min_position_waits_refuses_or_closes_with_try_again_later() {
    let (app, _dir) = spawn_waiting(Duration::from_millis(200)).await;
    let alice = app.token("agent 1");
    let head = app.desk.log().head();
    let init = |min: Value| {
        json!({ "type": "connection_init", "payload": {
            "Authorization": format!("Bearer {alice}"), "minPosition": min } })
    };

    // Reached: acknowledged, and a mutation over it names its position.
    let mut ws = Ws::connect(app.addr, "/graphql").await;
    ws.send(init(json!(head))).await;
    assert_eq!(ws.message().await["type"], "connection_ack");
    ws.subscribe("m", SEND, json!({ "c": CASEY })).await;
    let next = ws.message().await;
    assert_eq!(next["type"], "next", "{next}");
    let position = next["payload"]["extensions"]["position"].as_u64().unwrap();
    assert_eq!(position, app.desk.log().head());
    assert!(position > head);

    // Beyond the head: closed with 1013 (try again later) naming the code.
    let mut ws = Ws::connect(app.addr, "/graphql").await;
    ws.send(init(json!(format!("{}", position + 100)))).await;
    let (code, reason) = ws.closed().await;
    assert_eq!(code, 1013, "{reason}");
    assert!(
        reason.starts_with("NOT_CAUGHT_UP retryAfterMs="),
        "{reason}"
    );

    // Bad values: 4400 at once.
    for bad in [
        json!(-1),
        json!("x"),
        json!(1.5),
        json!([1]),
        json!("99999999999999999999"),
    ] {
        let mut ws = Ws::connect(app.addr, "/graphql").await;
        ws.send(init(bad.clone())).await;
        match ws.recv().await {
            Received::Closed(code, reason) => {
                assert_eq!(code, 4400, "{bad}: {reason}");
                assert!(
                    reason.contains("minPosition") || reason.contains("position"),
                    "{reason}"
                );
            }
            other => panic!("{bad}: expected a close, got {other:?}"),
        }
    }
    assert_eq!(app.desk.log().head(), position);
}

// The guard is held across awaits on purpose: it stalls the projector (on
// another worker thread) while this test looks at `/readyz`, which takes no
// lock on the read models.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_503_with_the_lag_while_the_read_models_trail_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = demo_config(dir.path());
    config.ready_max_lag = 0;
    let app = TestServer::spawn_with(config).await;
    let ready = app.get("/readyz").await;
    assert_eq!((ready.status, ready.text), (200, "ready\n".to_owned()));
    let head = app.desk.log().head();

    // Hold the read models still: the projector cannot apply what is appended.
    let frozen = app.desk.models();
    let addr = app.addr;
    let alice = app.token("agent 1");
    let sending = tokio::spawn(async move {
        post(
            addr,
            &alice,
            "",
            &json!({ "query": SEND, "variables": { "c": CASEY } }),
        )
        .await
    });
    let mut seen = None;
    for _ in 0..200 {
        let ready = app.get("/readyz").await;
        let (status, body) = (ready.status, ready.text);
        if status == 503 {
            seen = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        seen.as_deref(),
        Some(format!("catching up: applied {head} of {} (lag 1)\n", head + 1).as_str())
    );
    drop(frozen);
    let (status, _, body) = sending.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["extensions"]["position"].as_u64(), Some(head + 1));
    let ready = app.get("/readyz").await;
    assert_eq!((ready.status, ready.text), (200, "ready\n".to_owned()));
}
