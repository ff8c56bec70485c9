//! SPEC section 8: rate limits answer `RATE_LIMITED` with a retry delay, and
//! a refused call appends nothing. Distinct clients are distinct loopback
//! addresses (127.0.0.2, …) bound by the client socket.

use std::net::IpAddr;
use std::time::Duration;

use backchannel_api::ratelimit::Rate;
use serde_json::{Value, json};

use backchannel_testkit::demo::SUPPORT;
use backchannel_testkit::*;

/// POSTs a GraphQL request from the client address `from`.
async fn post_from(
    app: &TestServer,
    from: &str,
    path: &str,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> Reply {
    post_via(app, from, None, path, token, query, variables).await
}

/// The same, with an `X-Forwarded-For` header when `forwarded` is given.
async fn post_via(
    app: &TestServer,
    from: &str,
    forwarded: Option<&str>,
    path: &str,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> Reply {
    let body = json!({ "query": query, "variables": variables }).to_string();
    let authorization = token.map(|t| format!("Bearer {t}"));
    let extra = forwarded.map_or(String::new(), |f| format!("X-Forwarded-For: {f}\r\n"));
    Client::new(app.addr)
        .from_address(from.parse::<IpAddr>().unwrap())
        .post_with(path, authorization.as_deref(), &extra, body.as_bytes())
        .await
}

/// A server with the default rates changed by `set`, and its data directory.
async fn spawn_with_rates(
    set: impl FnOnce(&mut backchannel_api::ratelimit::RateLimits),
) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = backchannel_testkit::demo_config(dir.path());
    // The defaults, but for the rate under test.
    config.rate_limits = backchannel_api::ratelimit::RateLimits::default();
    set(&mut config.rate_limits);
    (TestServer::spawn_with(config).await, dir)
}

const PER_MINUTE: Duration = Duration::from_secs(60);

const START: &str = "mutation($w: ID!, $g: ID!) { startConversation(widgetKey: $w, groupId: $g, customerName: \"Ivy\", message: \"Hello?\") { token conversation { id } } }";

#[tokio::test]
async fn widget_starts_are_limited_per_key_and_address_and_append_nothing_when_refused() {
    let (app, _dir) = spawn_with_rates(|r| r.widget_starts = Rate::new(1, PER_MINUTE, 2)).await;
    let vars = json!({ "w": app.demo().widget_key.to_string(), "g": SUPPORT });
    for _ in 0..2 {
        let started = post_from(
            &app,
            "127.0.0.1",
            "/customer/graphql",
            None,
            START,
            vars.clone(),
        )
        .await;
        assert_eq!(started.code(), None, "{:?}", started.body);
    }
    let head = app.desk.log().head();
    let refused = post_from(
        &app,
        "127.0.0.1",
        "/customer/graphql",
        None,
        START,
        vars.clone(),
    )
    .await;
    assert_eq!(refused.status, 200);
    assert_eq!(refused.code(), Some("RATE_LIMITED"), "{:?}", refused.body);
    let retry = refused.retry_after_ms().expect("retryAfterMs");
    assert!(retry > 0 && retry <= 60_000, "{retry}");
    assert!(refused.header("retry-after").is_some());
    assert_eq!(
        app.desk.log().head(),
        head,
        "a refused start appends nothing"
    );
    // Another address is not affected.
    let other = post_from(&app, "127.0.0.2", "/customer/graphql", None, START, vars).await;
    assert_eq!(other.code(), None, "{:?}", other.body);
}

#[tokio::test]
async fn staff_mutations_are_limited_per_staff_member() {
    let (app, _dir) = spawn_with_rates(|r| r.staff_mutations = Rate::new(1, PER_MINUTE, 3)).await;
    let mark = "mutation { markNotificationsRead(upTo: \"1\") { unreadCount } }";
    let owner = app.token("owner");
    for _ in 0..3 {
        let done = post_from(&app, "127.0.0.1", "/graphql", Some(&owner), mark, json!({})).await;
        assert_eq!(done.code(), None, "{:?}", done.body);
    }
    let head = app.desk.log().head();
    let refused = post_from(&app, "127.0.0.1", "/graphql", Some(&owner), mark, json!({})).await;
    assert_eq!(refused.code(), Some("RATE_LIMITED"), "{:?}", refused.body);
    assert!(refused.retry_after_ms().is_some_and(|ms| ms > 0));
    assert_eq!(app.desk.log().head(), head);
    // Queries are not mutations.
    let me = post_from(
        &app,
        "127.0.0.1",
        "/graphql",
        Some(&owner),
        "{ me { id } }",
        json!({}),
    )
    .await;
    assert_eq!(me.code(), None, "{:?}", me.body);
    // Another staff member, from the same address, is not affected.
    let alice = app.token("agent 1");
    let done = post_from(&app, "127.0.0.1", "/graphql", Some(&alice), mark, json!({})).await;
    assert_eq!(done.code(), None, "{:?}", done.body);
}

#[tokio::test]
async fn customer_mutations_are_limited_per_conversation() {
    let (app, _dir) =
        spawn_with_rates(|r| r.customer_mutations = Rate::new(1, PER_MINUTE, 2)).await;
    let vars = json!({ "w": app.demo().widget_key.to_string(), "g": SUPPORT });
    let started = app.customer(None, START, vars).await;
    let token = started.data()["startConversation"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let send = "mutation { sendMessage(body: \"more\") { message { id } } }";
    for _ in 0..2 {
        let sent = app.customer(Some(&token), send, json!({})).await;
        assert_eq!(sent.code(), None, "{:?}", sent.body);
    }
    let head = app.desk.log().head();
    let refused = app.customer(Some(&token), send, json!({})).await;
    assert_eq!(refused.code(), Some("RATE_LIMITED"), "{:?}", refused.body);
    assert_eq!(app.desk.log().head(), head);
}

/// Behind a `--trusted-proxy`, the client is the right-most forwarded address
/// that is not the proxy; from any other peer the header is ignored.
#[tokio::test]
async fn forwarded_clients_are_told_apart_only_behind_a_trusted_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = backchannel_testkit::demo_config(dir.path());
    config.rate_limits = backchannel_api::ratelimit::RateLimits::default();
    config.rate_limits.token_failures = Rate::new(1, PER_MINUTE, 1);
    config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    let app = TestServer::spawn_with(config).await;
    let bad = Some("not-a-token");
    let try_as = |from: &'static str, forwarded: Option<&'static str>| {
        post_via(
            &app,
            from,
            forwarded,
            "/graphql",
            bad,
            "{ me { id } }",
            json!({}),
        )
    };
    // Through the proxy: each forwarded client has its own budget, and what
    // a client wrote left of the proxy's own entry does not count.
    let first = try_as("127.0.0.1", Some("198.51.100.9, 203.0.113.7")).await;
    assert_eq!(first.code(), Some("UNAUTHENTICATED"), "{:?}", first.body);
    let again = try_as("127.0.0.1", Some("192.0.2.1, 203.0.113.7")).await;
    assert_eq!(again.status, 429, "{:?}", again.body);
    let other = try_as("127.0.0.1", Some("203.0.113.8")).await;
    assert_eq!(other.code(), Some("UNAUTHENTICATED"), "{:?}", other.body);
    // A peer that is not the proxy is itself the client, whatever it claims.
    let direct = try_as("127.0.0.2", Some("203.0.113.9")).await;
    assert_eq!(direct.code(), Some("UNAUTHENTICATED"), "{:?}", direct.body);
    let spoofed = try_as("127.0.0.2", Some("203.0.113.10")).await;
    assert_eq!(spoofed.status, 429, "{:?}", spoofed.body);
}

#[tokio::test]
async fn token_failures_are_limited_per_address_before_graphql_runs() {
    let (app, _dir) = spawn_with_rates(|r| r.token_failures = Rate::new(1, PER_MINUTE, 2)).await;
    let bad = "not-a-token";
    for _ in 0..2 {
        let reply = post_from(
            &app,
            "127.0.0.1",
            "/graphql",
            Some(bad),
            "{ me { id } }",
            json!({}),
        )
        .await;
        assert_eq!(reply.code(), Some("UNAUTHENTICATED"), "{:?}", reply.body);
    }
    let refused = post_from(
        &app,
        "127.0.0.1",
        "/customer/graphql",
        Some(bad),
        "{ conversation { id } }",
        json!({}),
    )
    .await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.code(), Some("RATE_LIMITED"), "{:?}", refused.body);
    assert!(refused.retry_after_ms().is_some_and(|ms| ms > 0));
    let seconds: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&seconds), "{seconds}");
    // Another address still learns its token is bad.
    let other = post_from(
        &app,
        "127.0.0.2",
        "/graphql",
        Some(bad),
        "{ me { id } }",
        json!({}),
    )
    .await;
    assert_eq!(other.code(), Some("UNAUTHENTICATED"), "{:?}", other.body);
    // A good token from the limited address is served.
    let owner = app.token("owner");
    let me = post_from(
        &app,
        "127.0.0.1",
        "/graphql",
        Some(&owner),
        "{ me { id } }",
        json!({}),
    )
    .await;
    assert_eq!(me.code(), None, "{:?}", me.body);
    // So is a call without a token.
    let vars = json!({ "w": app.demo().widget_key.to_string(), "g": SUPPORT });
    let started = post_from(&app, "127.0.0.1", "/customer/graphql", None, START, vars).await;
    assert_eq!(started.code(), None, "{:?}", started.body);
}
