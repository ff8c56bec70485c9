//! The staff lists `conversations` and `notifications`, paged both ways as
//! Relay connections: backward (`last`/`before`) pages join up to the same
//! list as forward ones, `pageInfo` says where each page sits, an empty page
//! is an answer, and mixing the directions or an out-of-range size is
//! `VALIDATION`.

use serde_json::{Value, json};

use backchannel_testkit::demo::SUPPORT;
use backchannel_testkit::*;

const CONVERSATIONS: &str = "query($first: Int, $after: String, $last: Int, $before: String) {
    conversations(first: $first, after: $after, last: $last, before: $before) {
        edges { cursor node { id } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }";

const NOTIFICATIONS: &str = "query($first: Int, $after: String, $last: Int, $before: String) {
    notifications(first: $first, after: $after, last: $last, before: $before) {
        edges { cursor node { id } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }";

/// One page: the ids, the cursors, and `pageInfo`.
struct Page {
    ids: Vec<String>,
    cursors: Vec<String>,
    info: Value,
}

async fn page(app: &TestServer, token: &str, list: &str, query: &str, vars: Value) -> Page {
    let reply = app.staff(token, query, vars).await;
    assert!(reply.code().is_none(), "{:?}", reply.body);
    let connection = &reply.data()[list];
    let edges = connection["edges"].as_array().unwrap();
    Page {
        ids: edges
            .iter()
            .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
            .collect(),
        cursors: edges
            .iter()
            .map(|e| e["cursor"].as_str().unwrap().to_owned())
            .collect(),
        info: connection["pageInfo"].clone(),
    }
}

/// Checks one list: forward by 2 to the end, backward by 2 from the
/// oldest, a page before the newest (empty), and the refusals.
async fn check(app: &TestServer, token: &str, list: &str, query: &str) {
    // Forward, to the end.
    let mut forward: Vec<String> = Vec::new();
    let mut cursors: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let p = page(
            app,
            token,
            list,
            query,
            json!({ "first": 2, "after": after }),
        )
        .await;
        assert_eq!(p.info["hasPreviousPage"], json!(after.is_some()));
        assert!(p.ids.len() <= 2);
        forward.extend(p.ids);
        cursors.extend(p.cursors);
        if p.info["hasNextPage"] != json!(true) {
            break;
        }
        after = p.info["endCursor"].as_str().map(str::to_owned);
    }
    assert!(
        forward.len() >= 5,
        "{list}: too few to cross pages: {forward:?}"
    );
    // Backward, from the oldest, crossing every page boundary.
    let mut backward: Vec<String> = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let vars = json!({ "last": 2, "before": before });
        let p = page(app, token, list, query, vars).await;
        assert_eq!(p.info["hasNextPage"], json!(before.is_some()), "{list}");
        assert!(p.ids.len() <= 2);
        // A page is listed in the list's own order, newest first.
        let mut joined = p.ids.clone();
        joined.extend(backward);
        backward = joined;
        assert_eq!(
            p.info["startCursor"].as_str(),
            p.cursors.first().map(String::as_str)
        );
        if p.info["hasPreviousPage"] != json!(true) {
            break;
        }
        before = p.info["startCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(
        backward, forward,
        "{list}: backward pages join to the forward list"
    );
    // The two before the third: the first two; nothing precedes them.
    let p = page(
        app,
        token,
        list,
        query,
        json!({ "last": 2, "before": cursors[2] }),
    )
    .await;
    assert_eq!(p.ids, forward[..2]);
    assert_eq!(p.info["hasPreviousPage"], json!(false));
    assert_eq!(p.info["hasNextPage"], json!(true));
    // Before the newest: an empty page, not an error.
    let p = page(
        app,
        token,
        list,
        query,
        json!({ "last": 2, "before": cursors[0] }),
    )
    .await;
    assert!(p.ids.is_empty());
    assert_eq!(p.info["hasPreviousPage"], json!(false));
    assert_eq!(p.info["hasNextPage"], json!(true));
    assert_eq!(p.info["startCursor"], Value::Null);
    // After the oldest: empty too.
    let oldest = cursors.last().unwrap();
    let p = page(
        app,
        token,
        list,
        query,
        json!({ "first": 2, "after": oldest }),
    )
    .await;
    assert!(p.ids.is_empty());
    assert_eq!(p.info["hasPreviousPage"], json!(true));
    assert_eq!(p.info["hasNextPage"], json!(false));
    // Refusals.
    for vars in [
        json!({ "first": 2, "last": 2 }),
        json!({ "after": cursors[0], "before": cursors[1] }),
        json!({ "first": 2, "before": cursors[1] }),
        json!({ "last": 0 }),
        json!({ "last": 101 }),
        json!({ "before": "not a cursor" }),
    ] {
        let reply = app.staff(token, query, vars.clone()).await;
        assert_eq!(
            reply.code(),
            Some("VALIDATION"),
            "{list} {vars}: {:?}",
            reply.body
        );
    }
}

#[tokio::test]
async fn conversations_and_notifications_page_both_ways() {
    let mut app = TestServer::spawn().await;
    for n in 0..5 {
        let reply = app
            .customer(
                None,
                "mutation($w: ID!, $g: ID!, $n: String!) { startConversation(widgetKey: $w,
                    groupId: $g, customerName: $n) { token } }",
                json!({ "w": app.demo().widget_key.to_string(), "g": SUPPORT, "n": format!("Pat {n}") }),
            )
            .await;
        assert!(reply.code().is_none(), "{:?}", reply.body);
    }
    let owner = app.token("owner");
    check(&app, &owner, "conversations", CONVERSATIONS).await;
    let alice = app.token("agent 1");
    check(&app, &alice, "notifications", NOTIFICATIONS).await;
    app.stop().await;
}
