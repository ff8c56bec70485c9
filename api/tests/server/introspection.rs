//! SPEC section 8: standard GraphQL tools work against the defaults. The
//! introspection query of graphql-js (what GraphiQL, `gql` and graphql-js'
//! `buildClientSchema` send) is answered in full at the default limits, on
//! both endpoints, while deeper queries are still refused.

use serde_json::{Value, json};

use backchannel_testkit::*;

/// graphql-js v16's `getIntrospectionQuery()` with its default options,
/// verbatim (`fixtures/graphql/README.md` says how it was taken).
const INTROSPECTION: &str = include_str!("../../../fixtures/graphql/introspection-query.graphql");

/// An anonymous POST of `query` to `path`: tools fetch the schema before
/// anyone has pasted a token (and name the operation, as graphql-js does).
async fn anonymous(app: &TestServer, path: &str, query: &str) -> Reply {
    let mut request = json!({ "query": query });
    if query.contains("query IntrospectionQuery") {
        request["operationName"] = json!("IntrospectionQuery");
    }
    app.post(path, None, request.to_string().as_bytes()).await
}

/// The answer is a whole `__schema` without errors: the root types are
/// named and the type list holds `root` with its fields.
fn assert_full_schema(reply: &Reply, root: &str, field: &str) {
    assert_eq!(reply.status, 200);
    assert!(reply.body.get("errors").is_none(), "{:?}", reply.body);
    let schema = &reply.data()["__schema"];
    assert_eq!(schema["queryType"]["name"], "Query");
    assert_eq!(schema["mutationType"]["name"], "Mutation");
    assert_eq!(schema["subscriptionType"]["name"], "Subscription");
    let types = schema["types"].as_array().expect("a list of types");
    let found = types
        .iter()
        .find(|t| t["name"] == root)
        .unwrap_or_else(|| panic!("no type {root}"));
    let fields: Vec<&Value> = found["fields"].as_array().unwrap().iter().collect();
    assert!(
        fields.iter().any(|f| f["name"] == field),
        "{root} has no field {field}"
    );
    assert!(!schema["directives"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn the_graphql_js_introspection_query_is_answered_in_full_on_both_endpoints() {
    let app = TestServer::spawn().await;
    let staff = anonymous(&app, "/graphql", INTROSPECTION).await;
    assert_full_schema(&staff, "Query", "conversations");
    let customer = anonymous(&app, "/customer/graphql", INTROSPECTION).await;
    assert_full_schema(&customer, "Mutation", "startConversation");
    // With a token too (GraphiQL sends the headers it is given).
    let owner = app
        .staff(&app.token("owner"), INTROSPECTION, json!({}))
        .await;
    assert_full_schema(&owner, "Query", "conversations");
}

/// `__type(name: "Query") { fields { type { ofType { … } } } }` with `levels`
/// `ofType`s: selections `levels + 4` deep.
fn of_type_chain(levels: usize) -> String {
    let mut selection = "name".to_owned();
    for _ in 0..levels {
        selection = format!("name ofType {{ {selection} }}");
    }
    format!("{{ __type(name: \"Query\") {{ fields {{ type {{ {selection} }} }} }} }}")
}

#[tokio::test]
async fn a_query_deeper_than_introspection_needs_is_still_too_complex() {
    let app = TestServer::spawn().await;
    // 15 deep, as deep as graphql-js' own query: answered.
    let reply = anonymous(&app, "/graphql", &of_type_chain(11)).await;
    assert!(reply.body.get("errors").is_none(), "{:?}", reply.body);
    // 16 and deeper: refused, on both endpoints, through introspection's
    // cycles and through the staff schema's own fields.
    for path in ["/graphql", "/customer/graphql"] {
        for levels in [12, 20] {
            let reply = anonymous(&app, path, &of_type_chain(levels)).await;
            assert_eq!(reply.status, 200);
            assert_eq!(reply.code(), Some("QUERY_TOO_COMPLEX"), "{:?}", reply.body);
        }
    }
    // The staff schema's own types nest 8 deep at most; only introspection
    // (`__Type.fields.type`, `ofType`) has cycles. With a token as well.
    let mut selection = "name".to_owned();
    for _ in 0..8 {
        selection = format!("fields {{ type {{ {selection} }} }}");
    }
    let query = format!("{{ __schema {{ types {{ {selection} }} }} }}");
    let reply = app.staff(&app.token("owner"), &query, json!({})).await;
    assert_eq!(reply.code(), Some("QUERY_TOO_COMPLEX"), "{:?}", reply.body);
}
