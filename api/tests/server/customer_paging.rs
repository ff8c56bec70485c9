//! The customer's `messages`, paged: a Relay connection, forward with
//! `first`/`after` and backward with `last`/`before`; cursors name a
//! message's place in the customer's own list, never a global log position;
//! private messages never appear on any page.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use backchannel_testkit::demo::{ALICE, BOB, SUPPORT};
use backchannel_testkit::*;

const PAGE: &str = "query($first: Int, $after: String, $last: Int, $before: String) {
    conversation { messages(first: $first, after: $after, last: $last, before: $before) {
        edges { cursor node { id at author authorName body cursor } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } }";

const STAFF_SEND: &str = "mutation($c: ID!, $b: String!, $v: MessageVisibility!) {
    sendMessage(conversationId: $c, body: $b, visibility: $v) { message { __typename } } }";

const ASSIGN: &str = "mutation($c: ID!, $s: ID!) {
    assignConversation(conversationId: $c, assigneeId: $s) { conversationId } }";

/// A chat started for these tests, and its public messages' bodies in order.
struct Chat {
    id: String,
    token: String,
    public: Vec<String>,
}

async fn staff_ok(app: &TestServer, token: &str, query: &str, variables: Value) {
    let reply = app.staff(token, query, variables).await;
    assert!(reply.code().is_none(), "{:?}", reply.body);
}

async fn customer_ok(app: &TestServer, token: &str, query: &str, variables: Value) -> Value {
    let reply = app.customer(Some(token), query, variables).await;
    assert!(reply.code().is_none(), "{:?}", reply.body);
    reply.data().clone()
}

/// A new chat in Support with `public` public messages, from the customer
/// and Alice in turn. Between them: Alice's private messages (every third),
/// runs of 20 transfers between Bob and Alice (customer-visible events that
/// are not messages, more than a read window), closes and reopenings, and
/// privacy changes (staff-only events).
async fn chat(app: &TestServer, public: usize) -> Chat {
    let owner = app.token("owner");
    let alice = app.token("agent 1");
    let started = app
        .customer(
            None,
            "mutation($w: ID!, $g: ID!) { startConversation(widgetKey: $w, groupId: $g,
                customerName: \"Pat\", message: \"public 0\") { token conversation { id } } }",
            json!({ "w": app.demo().widget_key.to_string(), "g": SUPPORT }),
        )
        .await;
    assert!(started.code().is_none(), "{:?}", started.body);
    let token = started.data()["startConversation"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = started.data()["startConversation"]["conversation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    staff_ok(app, &owner, ASSIGN, json!({ "c": id, "s": ALICE })).await;
    let mut bodies = vec!["public 0".to_owned()];
    for i in 1..public {
        let body = format!("public {i}");
        if i % 2 == 0 {
            customer_ok(
                app,
                &token,
                "mutation($b: String!) { sendMessage(body: $b) { message { id } } }",
                json!({ "b": body }),
            )
            .await;
        } else {
            let vars = json!({ "c": id, "b": body, "v": "PUBLIC" });
            staff_ok(app, &alice, STAFF_SEND, vars).await;
        }
        bodies.push(body);
        if i % 3 == 0 {
            let vars = json!({ "c": id, "b": format!("private {i}"), "v": "PRIVATE" });
            staff_ok(app, &alice, STAFF_SEND, vars).await;
        }
        if i % 97 == 0 {
            for k in 0..20 {
                let to = if k % 2 == 0 { BOB } else { ALICE };
                staff_ok(app, &owner, ASSIGN, json!({ "c": id, "s": to })).await;
            }
        }
        if i % 61 == 0 {
            customer_ok(
                app,
                &token,
                "mutation { closeConversation { conversation { id } } }",
                json!({}),
            )
            .await;
            staff_ok(
                app,
                &alice,
                "mutation($c: ID!) { reopenConversation(conversationId: $c) { conversationId } }",
                json!({ "c": id }),
            )
            .await;
        }
        if i % 50 == 0 {
            staff_ok(
                app,
                &owner,
                "mutation($c: ID!, $p: Boolean!) {
                    setConversationPrivacy(conversationId: $c, private: $p) { conversationId } }",
                json!({ "c": id, "p": i % 100 == 0 }),
            )
            .await;
        }
    }
    // The setup did what it says: staff see the private messages too.
    let counts = app
        .staff(
            &owner,
            "query($c: ID!) { conversation(id: $c) { publicMessageCount privateMessageCount } }",
            json!({ "c": id }),
        )
        .await;
    assert_eq!(
        counts.data()["conversation"]["publicMessageCount"],
        public,
        "{:?}",
        counts.body
    );
    assert_eq!(
        counts.data()["conversation"]["privateMessageCount"],
        (public - 1) / 3
    );
    Chat {
        id,
        token,
        public: bodies,
    }
}

/// One page: its edges' bodies and cursors, and its `pageInfo`.
struct Page {
    bodies: Vec<String>,
    cursors: Vec<String>,
    info: Value,
    raw: String,
}

async fn page(app: &TestServer, chat: &Chat, variables: Value) -> Page {
    let reply = app.customer(Some(&chat.token), PAGE, variables).await;
    assert!(reply.code().is_none(), "{:?}", reply.body);
    let messages = &reply.data()["conversation"]["messages"];
    let edges = messages["edges"].as_array().unwrap();
    for edge in edges {
        assert_eq!(edge["cursor"], edge["node"]["cursor"], "{edge}");
    }
    let info = messages["pageInfo"].clone();
    let cursors: Vec<String> = edges
        .iter()
        .map(|e| e["cursor"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        info["startCursor"].as_str(),
        cursors.first().map(String::as_str)
    );
    assert_eq!(
        info["endCursor"].as_str(),
        cursors.last().map(String::as_str)
    );
    Page {
        bodies: edges
            .iter()
            .map(|e| e["node"]["body"].as_str().unwrap().to_owned())
            .collect(),
        cursors,
        info,
        raw: reply.body.to_string(),
    }
}

/// Pages forward with `first` (`None`: the default) until the end.
async fn forward(app: &TestServer, chat: &Chat, first: Option<usize>) -> Vec<Page> {
    let mut pages: Vec<Page> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let p = page(app, chat, json!({ "first": first, "after": after })).await;
        let more = p.info["hasNextPage"] == true;
        after = p.info["endCursor"].as_str().map(str::to_owned);
        pages.push(p);
        if !more {
            return pages;
        }
        assert!(pages.len() <= 300, "paging does not end");
    }
}

/// Pages backward with `last` from the newest until the oldest.
async fn backward(app: &TestServer, chat: &Chat, last: Option<usize>) -> Vec<Page> {
    let mut pages: Vec<Page> = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let vars = match (last, &before) {
            // `before` alone pages backward with the default size; the first
            // page needs `last`.
            (None, None) => json!({ "last": 100 }),
            _ => json!({ "last": last, "before": before }),
        };
        let p = page(app, chat, vars).await;
        let more = p.info["hasPreviousPage"] == true;
        before = p.info["startCursor"].as_str().map(str::to_owned);
        pages.push(p);
        if !more {
            return pages;
        }
        assert!(pages.len() <= 300, "paging does not end");
    }
}

/// The owner's audit trail of a conversation: its events' global positions.
const AUDIT: &str = "query($c: ID!) { auditTrail(conversationId: $c) { position eventType } }";

/// The global positions of an audit trail's public messages.
fn positions(reply: &Value) -> Vec<u64> {
    reply["data"]["auditTrail"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["eventType"] == "MessagePosted")
        .filter_map(|entry| entry["position"].as_str())
        .map(|p| p.parse().unwrap())
        .collect()
}

fn no_private_message(pages: &[Page]) {
    for p in pages {
        assert!(!p.raw.contains("private "), "a private message: {}", p.raw);
    }
}

#[tokio::test]
async fn forward_pages_concatenate_to_exactly_the_public_messages_in_order() {
    let app = TestServer::spawn().await;
    let chat = chat(&app, 250).await;
    for (first, sizes) in [
        (Some(7), [vec![7; 35], vec![5]].concat()),
        // The default page is the limit, 100.
        (None, vec![100, 100, 50]),
    ] {
        let pages = forward(&app, &chat, first).await;
        no_private_message(&pages);
        let got: Vec<usize> = pages.iter().map(|p| p.bodies.len()).collect();
        assert_eq!(got, sizes, "page sizes with first = {first:?}");
        let all: Vec<String> = pages.iter().flat_map(|p| p.bodies.clone()).collect();
        assert_eq!(all, chat.public, "first = {first:?}");
        for (i, p) in pages.iter().enumerate() {
            assert_eq!(p.info["hasPreviousPage"], i > 0, "page {i}");
            assert_eq!(p.info["hasNextPage"], i + 1 < pages.len(), "page {i}");
        }
        // Past the newest message: an empty page.
        let end = pages.last().unwrap().info["endCursor"].clone();
        let past = page(&app, &chat, json!({ "first": first, "after": end })).await;
        assert!(past.bodies.is_empty());
        assert_eq!(past.info["hasNextPage"], false);
        assert_eq!(past.info["hasPreviousPage"], true);
        assert_eq!(past.info["endCursor"], Value::Null);
    }
}

#[tokio::test]
async fn backward_pages_from_the_newest_concatenate_to_the_same_messages() {
    let app = TestServer::spawn().await;
    let chat = chat(&app, 250).await;
    for (last, sizes) in [
        (Some(7), [vec![7; 35], vec![5]].concat()),
        (None, vec![100, 100, 50]),
    ] {
        let pages = backward(&app, &chat, last).await;
        no_private_message(&pages);
        let got: Vec<usize> = pages.iter().map(|p| p.bodies.len()).collect();
        assert_eq!(got, sizes, "page sizes with last = {last:?}");
        // The first page is the newest messages, oldest first.
        let newest = &chat.public[chat.public.len() - sizes[0]..];
        assert_eq!(pages[0].bodies, newest);
        let all: Vec<String> = pages.iter().rev().flat_map(|p| p.bodies.clone()).collect();
        assert_eq!(all, chat.public, "last = {last:?}");
        for (i, p) in pages.iter().enumerate() {
            assert_eq!(p.info["hasNextPage"], i > 0, "page {i}");
            assert_eq!(p.info["hasPreviousPage"], i + 1 < pages.len(), "page {i}");
        }
    }
    // The directions meet: forward from a backward page's end is what
    // follows it.
    let older = page(&app, &chat, json!({ "last": 10 })).await;
    let before = older.info["startCursor"].clone();
    let middle = page(&app, &chat, json!({ "last": 3, "before": before })).await;
    let next = page(
        &app,
        &chat,
        json!({ "first": 13, "after": middle.info["endCursor"] }),
    )
    .await;
    assert_eq!(next.bodies, chat.public[240..]);
    assert_eq!(middle.bodies, chat.public[237..240]);
}

#[tokio::test]
async fn bad_cursors_and_sizes_are_validation_and_append_nothing() {
    let app = TestServer::spawn().await;
    let long = chat(&app, 40).await;
    let chat = chat(&app, 6).await;
    let good = page(&app, &chat, json!({ "first": 2 })).await;
    let cursor = good.cursors[1].clone();
    let made = |value: &str| URL_SAFE_NO_PAD.encode(value);
    // A cursor of the long chat, past the end of this one's list.
    let foreign = page(&app, &long, json!({ "last": 1 })).await.cursors[0].clone();
    // The global position of this chat's last message, as the owner's audit
    // trail tells it.
    let audit = app
        .staff(&app.token("owner"), AUDIT, json!({ "c": chat.id }))
        .await;
    let position = positions(&audit.body).pop().unwrap();
    let head = app.settled_head().await;
    let cases: Vec<(&str, Value)> = vec![
        ("first 0", json!({ "first": 0 })),
        ("first -1", json!({ "first": -1 })),
        ("first 101", json!({ "first": 101 })),
        ("last 0", json!({ "last": 0 })),
        ("last -5", json!({ "last": -5 })),
        ("last 101", json!({ "last": 101 })),
        ("first and last", json!({ "first": 2, "last": 2 })),
        ("after with last", json!({ "after": cursor, "last": 2 })),
        ("before with first", json!({ "before": cursor, "first": 2 })),
        (
            "after and before",
            json!({ "after": cursor, "before": cursor }),
        ),
        ("not base64", json!({ "after": "%%%" })),
        ("empty", json!({ "after": "" })),
        (
            "base64 of nothing useful",
            json!({ "before": made("hello") }),
        ),
        (
            "another kind",
            json!({ "after": made(&format!("conversation:{}", chat.id)) }),
        ),
        ("not a number", json!({ "after": made("message:x") })),
        ("negative", json!({ "after": made("message:-1") })),
        ("not canonical", json!({ "after": made("message:01") })),
        (
            "huge",
            json!({ "before": made("message:18446744073709551616") }),
        ),
        (
            "the opening, not a message",
            json!({ "after": made("message:0") }),
        ),
        ("past the end", json!({ "after": made("message:999") })),
        ("another chat's, past the end", json!({ "before": foreign })),
        (
            "a global position",
            json!({ "after": made(&format!("message:{position}")) }),
        ),
    ];
    for (name, variables) in cases {
        let reply = app.customer(Some(&chat.token), PAGE, variables).await;
        assert_eq!(reply.code(), Some("VALIDATION"), "{name}: {:?}", reply.body);
        assert_eq!(
            reply.data()["conversation"],
            Value::Null,
            "{name}: {:?}",
            reply.body
        );
        assert!(!reply.body.to_string().contains("public "), "{name}");
    }
    assert_eq!(app.desk.log().head(), head, "a refused page appended");
    // The same cursor, well used, still works.
    let next = page(&app, &chat, json!({ "after": cursor })).await;
    assert_eq!(next.bodies, chat.public[2..]);
}

#[tokio::test]
async fn the_page_size_is_capped_by_the_configured_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = backchannel_testkit::demo_config(dir.path());
    config.limits.max_page_size = 10;
    let mut app = TestServer::spawn_with(config).await;
    let chat = chat(&app, 25).await;
    let default = page(&app, &chat, json!({})).await;
    assert_eq!(default.bodies, chat.public[..10]);
    assert_eq!(default.info["hasNextPage"], true);
    let before = page(&app, &chat, json!({ "before": default.info["endCursor"] })).await;
    assert_eq!(before.bodies, chat.public[..9], "`before` alone: up to 10");
    let newest = page(&app, &chat, json!({ "last": 10 })).await;
    assert_eq!(newest.bodies, chat.public[15..]);
    for over in [json!({ "first": 11 }), json!({ "last": 11 })] {
        let reply = app.customer(Some(&chat.token), PAGE, over.clone()).await;
        assert_eq!(reply.code(), Some("VALIDATION"), "{over}: {:?}", reply.body);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_full_page_of_every_field_fits_the_complexity_limit_and_two_do_not() {
    let app = TestServer::spawn().await;
    let chat = chat(&app, 3).await;
    let one = app
        .customer(Some(&chat.token), PAGE, json!({ "last": 100 }))
        .await;
    assert_eq!(one.code(), None, "{:?}", one.body);
    let fields =
        "messages(first: 100) { edges { cursor node { id at author authorName body cursor } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor } }";
    let two = format!("{{ conversation {{ a: {fields} b: {fields} }} }}");
    let reply = app.customer(Some(&chat.token), &two, json!({})).await;
    assert_eq!(reply.code(), Some("QUERY_TOO_COMPLEX"), "{:?}", reply.body);
}

#[tokio::test]
async fn cursors_count_the_customers_own_events_not_log_positions() {
    let app = TestServer::spawn().await;
    let chat = chat(&app, 3).await;
    let p = page(&app, &chat, json!({})).await;
    let decoded: Vec<String> = p
        .cursors
        .iter()
        .map(|c| String::from_utf8(URL_SAFE_NO_PAD.decode(c).unwrap()).unwrap())
        .collect();
    // The customer's list: opened (0), the first message (1), assigned (2),
    // then the other two messages.
    assert_eq!(decoded, ["message:1", "message:3", "message:4"]);
    // The messages' global positions are far beyond: the demo came first.
    let audit = app
        .staff(&app.token("owner"), AUDIT, json!({ "c": chat.id }))
        .await;
    let first = positions(&audit.body)[0];
    assert!(first > 10, "{first}");
    // A sent message's cursor is its cursor in the chat.
    let sent = customer_ok(
        &app,
        &chat.token,
        "mutation { sendMessage(body: \"one more\") { message { cursor } } }",
        json!({}),
    )
    .await;
    let newest = page(&app, &chat, json!({ "last": 1 })).await;
    assert_eq!(newest.bodies, ["one more"]);
    assert_eq!(
        sent["sendMessage"]["message"]["cursor"].as_str(),
        Some(newest.cursors[0].as_str())
    );
    let after = page(
        &app,
        &chat,
        json!({ "after": sent["sendMessage"]["message"]["cursor"] }),
    )
    .await;
    assert!(after.bodies.is_empty());
}
