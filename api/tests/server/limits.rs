//! SPEC section 8: bounded bodies, depth, complexity, pages; no batches.

use serde_json::json;

use backchannel_testkit::*;

#[tokio::test]
async fn an_oversized_body_is_413_payload_too_large() {
    let app = TestServer::spawn().await;
    let body = format!(
        r#"{{"query":"{{ me {{ id }} }}","variables":{{"x":"{}"}}}}"#,
        "a".repeat(70 * 1024)
    );
    let reply = app
        .post("/graphql", Some(&app.token("owner")), body.as_bytes())
        .await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.code(), Some("PAYLOAD_TOO_LARGE"));
}

#[tokio::test]
async fn a_deep_query_is_too_complex() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = backchannel_testkit::demo_config(dir.path());
    config.limits.max_depth = 4;
    let mut app = TestServer::spawn_with(config).await;
    let deep = "{ conversations { edges { node { assignee { id } } } } }";
    let reply = app.staff(&app.token("owner"), deep, json!({})).await;
    assert_eq!(reply.code(), Some("QUERY_TOO_COMPLEX"), "{:?}", reply.body);
    let shallow = "{ me { id } }";
    assert!(
        app.staff(&app.token("owner"), shallow, json!({}))
            .await
            .code()
            .is_none()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_costly_query_is_too_complex() {
    let app = TestServer::spawn().await;
    // A full inbox page is fine...
    let page = "conversations(first: 100) { edges { node { id customerName status channel private openedAt updatedAt } } }";
    let reply = app
        .staff(&app.token("owner"), &format!("{{ {page} }}"), json!({}))
        .await;
    assert_eq!(reply.code(), None, "{:?}", reply.body);
    // ...three of them in one request are not.
    let query = format!("{{ a: {page} b: {page} c: {page} }}");
    let reply = app.staff(&app.token("owner"), &query, json!({})).await;
    assert_eq!(reply.code(), Some("QUERY_TOO_COMPLEX"), "{:?}", reply.body);
}

#[tokio::test]
async fn one_request_carries_at_most_twenty_mutations() {
    let app = TestServer::spawn().await;
    let mutations = |n: usize| {
        let fields: String = (0..n)
            .map(|i| format!("m{i}: markNotificationsRead(upTo: \"1\") "))
            .collect();
        format!("mutation {{ {fields} }}")
    };
    let reply = app
        .staff(&app.token("owner"), &mutations(21), json!({}))
        .await;
    assert_eq!(reply.code(), Some("QUERY_TOO_COMPLEX"), "{:?}", reply.body);
}

#[tokio::test]
async fn a_page_over_100_is_a_validation_error() {
    let app = TestServer::spawn().await;
    let reply = app
        .staff(
            &app.token("owner"),
            "{ notifications(first: 101) { unreadCount } }",
            json!({}),
        )
        .await;
    assert_eq!(reply.code(), Some("VALIDATION"));
}

#[tokio::test]
async fn batched_requests_are_refused() {
    let app = TestServer::spawn().await;
    let reply = app
        .post(
            "/graphql",
            Some(&app.token("owner")),
            br#"[{"query":"{ me { id } }"},{"query":"{ me { id } }"}]"#,
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.code(), Some("VALIDATION"));
}

#[tokio::test]
async fn introspection_can_be_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = backchannel_testkit::demo_config(dir.path());
    config.introspection = false;
    config.graphiql = false;
    let mut app = TestServer::spawn_with(config).await;
    let reply = app
        .staff(
            &app.token("owner"),
            "{ __schema { types { name } } }",
            json!({}),
        )
        .await;
    // async-graphql answers introspection with nothing when it is disabled.
    assert!(reply.data()["__schema"].is_null(), "{:?}", reply.body);
    let status = app.get("/").await.status;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = TestServer::spawn().await;
    assert_eq!(app.get("/healthz").await.status, 200);
    assert_eq!(app.get("/readyz").await.status, 200);
}
