//! SPEC section 8: no request can crash or stall the server. Nesting and
//! fragment expansion are refused before parsing, on both endpoints; every
//! request has a deadline. Each test also checks that the server still
//! answers an ordinary query afterwards.

use serde_json::{Value, json};

use backchannel_testkit::demo::{CASEY, OWNER, SUPPORT};
use backchannel_testkit::*;

fn nested(open: &str, inner: &str, close: &str, depth: usize) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

/// The server still answers: `me` for the owner, no error.
async fn still_serving(app: &TestServer) {
    let reply = app
        .staff(&app.token("owner"), "{ me { id } }", json!({}))
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.code(), None, "{:?}", reply.body);
    assert_eq!(reply.data()["me"]["id"], OWNER);
}

/// An anonymous POST of `body` as the JSON request's query.
async fn anonymous(app: &TestServer, path: &str, query: &str, variables: Value) -> Reply {
    let body = json!({ "query": query, "variables": variables }).to_string();
    app.post(path, None, body.as_bytes()).await
}

#[tokio::test]
async fn a_list_literal_nested_2000_deep_is_too_complex() {
    let app = TestServer::spawn().await;
    let query = format!(
        "{{ conversations(filter: {{ status: {} }}) {{ edges {{ node {{ id }} }} }} }}",
        nested("[", "QUEUED", "]", 2000)
    );
    assert!(query.len() < 5 * 1024);
    let reply = anonymous(&app, "/graphql", &query, json!({})).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.code(), Some("QUERY_TOO_COMPLEX"), "{:?}", reply.body);
    still_serving(&app).await;
}

#[tokio::test]
async fn an_input_object_nested_5000_deep_is_too_complex() {
    let app = TestServer::spawn().await;
    let query = format!(
        "{{ conversations(filter: {}) {{ edges {{ node {{ id }} }} }} }}",
        nested("{status: ", "QUEUED", "}", 5000)
    );
    let reply = anonymous(&app, "/graphql", &query, json!({})).await;
    assert_eq!(reply.code(), Some("QUERY_TOO_COMPLEX"), "{:?}", reply.body);
    still_serving(&app).await;
}

#[tokio::test]
async fn a_nested_customer_name_on_the_customer_endpoint_is_too_complex() {
    let app = TestServer::spawn().await;
    let query = format!(
        "mutation {{ startConversation(widgetKey: \"{}\", groupId: \"{SUPPORT}\", customerName: {}) {{ token }} }}",
        app.demo().widget_key,
        nested("[", "\"Ivy\"", "]", 2000)
    );
    let head = app.settled_head().await;
    let reply = anonymous(&app, "/customer/graphql", &query, json!({})).await;
    assert_eq!(reply.code(), Some("QUERY_TOO_COMPLEX"), "{:?}", reply.body);
    assert_eq!(app.desk.log().head(), head);
    let object = format!(
        "mutation {{ startConversation(widgetKey: \"k\", groupId: \"g\", customerName: {}) {{ token }} }}",
        nested("{a: ", "1", "}", 5000)
    );
    let reply = anonymous(&app, "/customer/graphql", &object, json!({})).await;
    assert_eq!(reply.code(), Some("QUERY_TOO_COMPLEX"), "{:?}", reply.body);
    still_serving(&app).await;
}

/// `[[…1…]]` alternating with `{"a": …}`, `depth` containers deep.
fn deep_json(depth: usize) -> Value {
    let mut value = json!(1);
    for i in 0..depth {
        value = if i % 2 == 0 {
            json!([value])
        } else {
            json!({ "a": value })
        };
    }
    value
}

#[tokio::test]
async fn deep_variables_are_refused_with_a_code() {
    let app = TestServer::spawn().await;
    let query =
        "query($f: ConversationFilter) { conversations(filter: $f) { edges { node { id } } } }";
    // Deeper than the nesting bound, within serde_json's own limit (128).
    for depth in [40, 100] {
        let reply = app
            .staff(&app.token("owner"), query, json!({ "f": deep_json(depth) }))
            .await;
        assert_eq!(reply.code(), Some("QUERY_TOO_COMPLEX"), "{:?}", reply.body);
    }
    // Beyond serde_json's limit: the body is refused as it is read. The JSON
    // is written by hand (serde_json would not write it either).
    let body = format!(
        r#"{{"query":"{{ me {{ id }} }}","variables":{{"f":{}}}}}"#,
        nested("[", "1", "]", 5000)
    );
    for path in ["/graphql", "/customer/graphql"] {
        let reply = app.post(path, None, body.as_bytes()).await;
        assert_eq!(reply.code(), Some("VALIDATION"), "{:?}", reply.body);
    }
    still_serving(&app).await;
}

/// `fragment F0 on Query { ...F1 ...F1 }` … `levels` deep: 2^levels fields
/// once spread.
fn fragment_bomb(levels: usize) -> String {
    let mut query = "query { ...F0 }".to_owned();
    for i in 0..levels {
        query.push_str(&format!(
            " fragment F{i} on Query {{ ...F{next} ...F{next} }}",
            next = i + 1
        ));
    }
    query.push_str(&format!(" fragment F{levels} on Query {{ me {{ id }} }}"));
    query
}

#[tokio::test]
async fn a_fragment_bomb_is_refused_at_once_on_both_endpoints() {
    let app = TestServer::spawn().await;
    for levels in [24, 30] {
        let query = fragment_bomb(levels);
        assert!(query.len() < 2 * 1024);
        let reply = anonymous(&app, "/graphql", &query, json!({})).await;
        assert_eq!(reply.code(), Some("QUERY_TOO_COMPLEX"), "{:?}", reply.body);
        let customer = query.replace("me { id }", "conversation { id }");
        let reply = anonymous(&app, "/customer/graphql", &customer, json!({})).await;
        assert_eq!(reply.code(), Some("QUERY_TOO_COMPLEX"), "{:?}", reply.body);
    }
    still_serving(&app).await;
}

#[tokio::test]
async fn a_fragment_cycle_is_a_validation_error() {
    let app = TestServer::spawn().await;
    let query =
        "query { ...A } fragment A on Query { me { id } ...B } fragment B on Query { ...A }";
    let reply = app.staff(&app.token("owner"), query, json!({})).await;
    assert_eq!(reply.code(), Some("VALIDATION"), "{:?}", reply.body);
    still_serving(&app).await;
}

#[tokio::test]
async fn selections_nested_beyond_the_bound_are_too_complex_before_parsing() {
    let app = TestServer::spawn().await;
    let query = format!("{}{}", "{ me ".repeat(3000), "}".repeat(3000));
    let reply = app.staff(&app.token("owner"), &query, json!({})).await;
    assert_eq!(
        reply.code(),
        Some("QUERY_TOO_COMPLEX"),
        "{}",
        reply.body["errors"][0]
    );
    still_serving(&app).await;
}

#[tokio::test]
async fn the_overview_with_a_full_page_of_ids_and_counts_is_not_too_complex() {
    let app = TestServer::spawn().await;
    let query = "query($g: ID!) { enquiryOverview(groupId: $g, first: 100) {
        queued { count items { id } } handling { count items { id } } closed { count items { id } } } }";
    let reply = app
        .staff(&app.token("supervisor"), query, json!({ "g": SUPPORT }))
        .await;
    assert_eq!(reply.code(), None, "{:?}", reply.body);
    assert_eq!(reply.data()["enquiryOverview"]["handling"]["count"], 1);
}

#[tokio::test]
async fn the_graphql_js_introspection_query_passes_the_admission_check() {
    let app = TestServer::spawn().await;
    let reply = app
        .staff(&app.token("owner"), INTROSPECTION, json!({}))
        .await;
    // Depth limits on selections are decided elsewhere; the admission check
    // (nesting, fragments) must not be what refuses it.
    let message = reply.body["errors"][0]["message"].as_str().unwrap_or("");
    assert!(
        !message.contains("once its fragments are spread") && !message.contains("nested deeper"),
        "{:?}",
        reply.body
    );
}

#[tokio::test]
async fn a_request_past_its_deadline_is_stopped_with_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = backchannel_testkit::demo_config(dir.path());
    config.limits.deadline = std::time::Duration::ZERO;
    let mut app = TestServer::spawn_with(config).await;
    // A zero deadline fires at the timer's next tick: a mutation whose append
    // became durable within it may still answer, so try a few; without a
    // deadline every one of them would.
    let mut timed_out = false;
    for _ in 0..20 {
        let reply = app
            .staff(
                &app.token("owner"),
                "mutation($id: ID!) { sendMessage(conversationId: $id, body: \"late\", \
                 visibility: PRIVATE) { message { __typename } } }",
                json!({ "id": CASEY }),
            )
            .await;
        assert_eq!(reply.status, 200);
        match reply.code() {
            Some("TIMEOUT") => {
                timed_out = true;
                break;
            }
            None => {}
            other => panic!("unexpected {other:?}: {:?}", reply.body),
        }
    }
    assert!(timed_out, "no request was stopped at its deadline");
    app.stop().await;
}

/// graphql-js' `getIntrospectionQuery()` (v16).
const INTROSPECTION: &str = r#"
query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) {
    name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason
  }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name ofType { kind name ofType { kind name ofType { kind name ofType {
  kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } }
}
"#;

/// Nesting the parser accepts but the validator's recursion does not survive
/// (found by `fuzz.rs`: an input object 369 deep aborted a debug build).
#[tokio::test]
async fn values_nested_a_few_hundred_deep_are_too_complex_on_both_endpoints() {
    let app = TestServer::spawn().await;
    for depth in [400, 1000, 700, 250, 100] {
        let list = format!(
            "{{ conversations(filter: {{ status: {} }}) {{ edges {{ node {{ id }} }} }} }}",
            nested("[", "QUEUED", "]", depth)
        );
        let object = format!(
            "{{ conversations(filter: {}) {{ edges {{ node {{ id }} }} }} }}",
            nested("{status: ", "QUEUED", "}", depth)
        );
        for path in ["/graphql", "/customer/graphql"] {
            for query in [&list, &object] {
                let reply = anonymous(&app, path, query, json!({})).await;
                assert_eq!(
                    reply.code(),
                    Some("QUERY_TOO_COMPLEX"),
                    "{depth} {path}: {:?}",
                    reply.body
                );
            }
        }
    }
    still_serving(&app).await;
}

/// Validation walks every fragment, used or not, and each selection set's
/// spreads anew: an unused fragment spreading a 5,000-field fragment 500
/// times took 2.9 s of a debug server for 33 KB. The expansion bound counts
/// every fragment's expanded size, not only the operations'.
#[tokio::test]
async fn an_unused_fragment_that_spreads_a_large_one_many_times_is_too_complex() {
    let app = TestServer::spawn().await;
    let fields: String = (0..5000).map(|i| format!("b{i} ")).collect();
    let sets = "x{...F0} ".repeat(500);
    let query = format!(
        "{{ __typename }} fragment F0 on Query {{ {fields} }} fragment U on Query {{ {sets} }}"
    );
    let reply = app.staff(&app.token("owner"), &query, json!({})).await;
    assert_eq!(reply.code(), Some("QUERY_TOO_COMPLEX"), "{:?}", reply.body);
    still_serving(&app).await;
}
