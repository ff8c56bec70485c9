//! CORS (SPEC section 8) over real HTTP: the staff desk's configured origins,
//! each company's widget origins, JSON-only POSTs and websocket upgrades.

use serde_json::{Value, json};

use backchannel_testkit::demo::SUPPORT;
use backchannel_testkit::*;

const SHOP: &str = "https://shop.example";
const DESK: &str = "https://desk.example";
const EVIL: &str = "https://evil.example";

/// Sends `head` (request line and headers, without the blank line) and
/// `body`; the harness' client reads the answer (only the head of an upgrade).
async fn raw(app: &TestServer, head: &str, body: &[u8]) -> Reply {
    let mut request = format!(
        "{head}\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
        app.addr,
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    app.send(&request).await
}

async fn preflight(app: &TestServer, path: &str, origin: &str) -> Reply {
    raw(
        app,
        &format!(
            "OPTIONS {path} HTTP/1.1\r\nConnection: close\r\nOrigin: {origin}\r\n\
             Access-Control-Request-Method: POST\r\n\
             Access-Control-Request-Headers: content-type, authorization"
        ),
        b"",
    )
    .await
}

async fn post(
    app: &TestServer,
    path: &str,
    origin: Option<&str>,
    content_type: &str,
    token: Option<&str>,
    body: &Value,
) -> Reply {
    let mut head =
        format!("POST {path} HTTP/1.1\r\nConnection: close\r\nContent-Type: {content_type}");
    if let Some(origin) = origin {
        head.push_str(&format!("\r\nOrigin: {origin}"));
    }
    if let Some(token) = token {
        head.push_str(&format!("\r\nAuthorization: Bearer {token}"));
    }
    raw(app, &head, body.to_string().as_bytes()).await
}

async fn upgrade(app: &TestServer, path: &str, origin: Option<&str>) -> Reply {
    let mut head = format!(
        "GET {path} HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Protocol: graphql-transport-ws"
    );
    if let Some(origin) = origin {
        head.push_str(&format!("\r\nOrigin: {origin}"));
    }
    raw(app, &head, b"").await
}

async fn spawn() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = demo_config(dir.path());
    config.staff_origins = vec![backchannel_domain::values::WebOrigin::parse(DESK).unwrap()];
    (TestServer::spawn_with(config).await, dir)
}

async fn set_origins(app: &TestServer, role: &str, origins: &[&str]) -> Reply {
    app.staff(
        &app.token(role),
        "mutation($o: [String!]!) { setWidgetOrigins(origins: $o) { company { widgetOrigins } } }",
        json!({ "o": origins }),
    )
    .await
}

fn start(app: &TestServer) -> Value {
    json!({
        "query": "mutation($w: ID!, $g: ID!) { startConversation(widgetKey: $w, groupId: $g, customerName: \"Web\") { token } }",
        "variables": { "w": app.demo().widget_key.to_string(), "g": SUPPORT },
    })
}

const ME: &str = "{ me { id } }";

#[tokio::test]
async fn staff_endpoint_answers_only_the_configured_desk_origins() {
    let (app, _dir) = spawn().await;
    let allowed = preflight(&app, "/graphql", DESK).await;
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.header("access-control-allow-origin"), Some(DESK));
    let methods = allowed.header("access-control-allow-methods").unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let headers = allowed
        .header("access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    for h in ["content-type", "authorization", "x-min-position"] {
        assert!(headers.contains(h), "{headers}");
    }
    assert!(allowed.header("access-control-max-age").is_some());

    let refused = preflight(&app, "/graphql", EVIL).await;
    assert_eq!(refused.header("access-control-allow-origin"), None);

    let body = json!({ "query": ME });
    let token = app.token("owner");
    let actual = post(
        &app,
        "/graphql",
        Some(DESK),
        "application/json",
        Some(&token),
        &body,
    )
    .await;
    assert_eq!(actual.status, 200);
    assert_eq!(actual.header("access-control-allow-origin"), Some(DESK));
    assert!(actual.body["data"]["me"]["id"].is_string());
    let exposed = actual
        .header("access-control-expose-headers")
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("x-log-position"), "{exposed}");
    assert!(exposed.contains("retry-after"), "{exposed}");
    let foreign = post(
        &app,
        "/graphql",
        Some(EVIL),
        "application/json",
        Some(&token),
        &body,
    )
    .await;
    assert_eq!(foreign.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn customer_endpoint_answers_the_origins_a_company_lists() {
    let (app, _dir) = spawn().await;
    // Nobody lists the shop yet.
    let before = preflight(&app, "/customer/graphql", SHOP).await;
    assert_eq!(before.header("access-control-allow-origin"), None);
    let started = post(
        &app,
        "/customer/graphql",
        Some(SHOP),
        "application/json",
        None,
        &start(&app),
    )
    .await;
    assert_eq!(started.code(), Some("FORBIDDEN"), "{:?}", started.body);
    assert_eq!(started.header("access-control-allow-origin"), None);

    let set = set_origins(&app, "owner", &["HTTPS://Shop.example/"]).await;
    assert_eq!(
        set.data()["setWidgetOrigins"]["company"]["widgetOrigins"],
        json!([SHOP])
    );

    let allowed = preflight(&app, "/customer/graphql", SHOP).await;
    assert_eq!(allowed.header("access-control-allow-origin"), Some(SHOP));
    let refused = preflight(&app, "/customer/graphql", EVIL).await;
    assert_eq!(refused.header("access-control-allow-origin"), None);

    let started = post(
        &app,
        "/customer/graphql",
        Some(SHOP),
        "application/json",
        None,
        &start(&app),
    )
    .await;
    assert_eq!(started.header("access-control-allow-origin"), Some(SHOP));
    let token = started.body["data"]["startConversation"]["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let read = json!({ "query": "{ conversation { id } }" });
    let own = post(
        &app,
        "/customer/graphql",
        Some(SHOP),
        "application/json",
        Some(&token),
        &read,
    )
    .await;
    assert_eq!(own.header("access-control-allow-origin"), Some(SHOP));
    assert!(
        own.body["data"]["conversation"]["id"].is_string(),
        "{:?}",
        own.body
    );

    // From an origin the company does not list: no header, and nothing runs.
    let head = app.settled_head().await;
    let foreign = post(
        &app,
        "/customer/graphql",
        Some(EVIL),
        "application/json",
        None,
        &start(&app),
    )
    .await;
    assert_eq!(foreign.header("access-control-allow-origin"), None);
    assert_eq!(foreign.code(), Some("FORBIDDEN"));
    let send = json!({ "query": "mutation { sendMessage(body: \"hi\") { message { id } } }" });
    let foreign = post(
        &app,
        "/customer/graphql",
        Some(EVIL),
        "application/json",
        Some(&token),
        &send,
    )
    .await;
    assert_eq!(foreign.status, 403);
    assert_eq!(foreign.code(), Some("FORBIDDEN"));
    assert_eq!(app.desk.log().head(), head);

    // Without Origin (not a browser) and from the server's own origin: as before.
    let plain = post(
        &app,
        "/customer/graphql",
        None,
        "application/json",
        None,
        &start(&app),
    )
    .await;
    assert!(plain.body["data"]["startConversation"]["token"].is_string());
    let own_origin = format!("http://{}", app.addr);
    let same = post(
        &app,
        "/customer/graphql",
        Some(&own_origin),
        "application/json",
        None,
        &start(&app),
    )
    .await;
    assert!(
        same.body["data"]["startConversation"]["token"].is_string(),
        "{:?}",
        same.body
    );
}

#[tokio::test]
async fn a_post_that_is_not_json_is_refused_with_415_and_appends_nothing() {
    let (app, _dir) = spawn().await;
    let head = app.settled_head().await;
    for content_type in [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let answer = post(
            &app,
            "/customer/graphql",
            Some(EVIL),
            content_type,
            None,
            &start(&app),
        )
        .await;
        assert_eq!(answer.status, 415, "{content_type}");
        assert_eq!(answer.code(), Some("VALIDATION"));
        let token = app.token("owner");
        let staff = json!({ "query": "mutation { createGroup(name: \"X\", routing: BROADCAST) { group { id } } }" });
        let answer = post(
            &app,
            "/graphql",
            Some(EVIL),
            content_type,
            Some(&token),
            &staff,
        )
        .await;
        assert_eq!(answer.status, 415, "{content_type}");
        assert_eq!(answer.code(), Some("VALIDATION"));
    }
    // No Content-Type at all (a typeless blob) is refused too.
    let answer = raw(
        &app,
        "POST /customer/graphql HTTP/1.1\r\nConnection: close",
        start(&app).to_string().as_bytes(),
    )
    .await;
    assert_eq!(answer.status, 415);
    assert_eq!(app.desk.log().head(), head);
    // JSON with a charset is fine.
    let ok = post(
        &app,
        "/customer/graphql",
        None,
        "application/json; charset=utf-8",
        None,
        &start(&app),
    )
    .await;
    assert!(ok.body["data"]["startConversation"]["token"].is_string());
}

#[tokio::test]
async fn websocket_upgrades_from_foreign_origins_are_refused() {
    let (app, _dir) = spawn().await;
    assert_eq!(upgrade(&app, "/graphql", Some(EVIL)).await.status, 403);
    assert_eq!(upgrade(&app, "/graphql", Some(DESK)).await.status, 101);
    assert_eq!(upgrade(&app, "/graphql", None).await.status, 101);
    assert_eq!(
        upgrade(&app, "/customer/graphql", Some(SHOP)).await.status,
        403
    );
    set_origins(&app, "admin", &[SHOP]).await;
    assert_eq!(
        upgrade(&app, "/customer/graphql", Some(SHOP)).await.status,
        101
    );
    assert_eq!(
        upgrade(&app, "/customer/graphql", Some(EVIL)).await.status,
        403
    );
}

#[tokio::test]
async fn only_the_owner_and_admins_set_widget_origins_and_bad_origins_change_nothing() {
    let (app, _dir) = spawn().await;
    for role in ["supervisor", "agent 1"] {
        assert_eq!(
            set_origins(&app, role, &[SHOP]).await.code(),
            Some("FORBIDDEN"),
            "{role}"
        );
    }
    let head = app.settled_head().await;
    for bad in [
        vec!["shop.example"],
        vec!["https://shop.example/widget"],
        vec!["ftp://x.example"],
    ] {
        assert_eq!(
            set_origins(&app, "owner", &bad).await.code(),
            Some("VALIDATION")
        );
    }
    let many: Vec<String> = (0..21).map(|i| format!("https://s{i}.example")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(
        set_origins(&app, "owner", &many).await.code(),
        Some("VALIDATION")
    );
    assert_eq!(app.desk.log().head(), head);
    let set = set_origins(&app, "admin", &[SHOP, "http://localhost:3000"]).await;
    assert_eq!(
        set.data()["setWidgetOrigins"]["company"]["widgetOrigins"],
        json!(["http://localhost:3000", SHOP])
    );
    let shown = app
        .staff(
            &app.token("owner"),
            "{ company { widgetOrigins } }",
            json!({}),
        )
        .await;
    assert_eq!(
        shown.data()["company"]["widgetOrigins"],
        json!(["http://localhost:3000", SHOP])
    );
}
