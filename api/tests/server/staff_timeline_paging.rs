//! The staff `Conversation.timeline`, paged: a Relay connection, forward with
//! `first`/`after` and backward with `last`/`before`; cursors name an item's
//! place in the conversation's own timeline (its stream), never a global log
//! position; every page is checked by the visibility policy, cursor or not.

use backchannel_api::staff::timeline_connection;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use backchannel_testkit::demo::{ALICE, BOB, CAROL, CASEY, SUPPORT};
use backchannel_testkit::*;

const PAGE: &str = "query($c: ID!, $first: Int, $after: String, $last: Int, $before: String) {
    conversation(id: $c) { timeline(first: $first, after: $after, last: $last, before: $before) {
        edges { cursor node { __typename
            ... on PublicMessage { id cursor body }
            ... on PrivateMessage { id cursor body }
            ... on SystemEvent { id cursor kind } } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } }";

const AUDIT: &str =
    "query($c: ID!) { auditTrail(conversationId: $c) { position eventId eventType } }";

const SEND: &str = "mutation($c: ID!, $b: String!, $v: MessageVisibility!) {
    sendMessage(conversationId: $c, body: $b, visibility: $v) {
        message { ... on PublicMessage { cursor } ... on PrivateMessage { cursor } } } }";

const ASSIGN: &str = "mutation($c: ID!, $s: ID!) {
    assignConversation(conversationId: $c, assigneeId: $s) { conversationId } }";

/// A conversation started for these tests: its timeline as the test built
/// it (`"PublicMessage public 3"`, `"SystemEvent ASSIGNED"`, …), and the
/// global position and event id of each item, from the owner's audit trail.
struct Timeline {
    id: String,
    items: Vec<String>,
    positions: Vec<u64>,
    event_ids: Vec<String>,
}

async fn staff_ok(app: &TestServer, token: &str, query: &str, variables: Value) -> Value {
    let reply = app.staff(token, query, variables).await;
    assert!(reply.code().is_none(), "{:?}", reply.body);
    reply.data().clone()
}

/// A new chat in Support (private: the demo's default) with `public` public
/// messages, from the customer and Alice in turn; between them Alice's
/// private messages (every third), transfers to Bob and back (every 30th),
/// privacy changes (every 25th), a close and a reopening (every 45th), and
/// Carol invited into the room (once).
async fn conversation(app: &TestServer, public: usize) -> Timeline {
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
    let mut items = vec![
        "SystemEvent OPENED".to_owned(),
        "PublicMessage public 0".to_owned(),
    ];
    staff_ok(app, &owner, ASSIGN, json!({ "c": id, "s": ALICE })).await;
    items.push("SystemEvent ASSIGNED".to_owned());
    for i in 1..public {
        let body = format!("public {i}");
        if i % 2 == 0 {
            let reply = app
                .customer(
                    Some(&token),
                    "mutation($b: String!) { sendMessage(body: $b) { message { id } } }",
                    json!({ "b": body }),
                )
                .await;
            assert!(reply.code().is_none(), "{:?}", reply.body);
        } else {
            let vars = json!({ "c": id, "b": body, "v": "PUBLIC" });
            staff_ok(app, &alice, SEND, vars).await;
        }
        items.push(format!("PublicMessage {body}"));
        if i % 3 == 0 {
            let body = format!("private {i}");
            let vars = json!({ "c": id, "b": body, "v": "PRIVATE" });
            staff_ok(app, &alice, SEND, vars).await;
            items.push(format!("PrivateMessage {body}"));
        }
        if i % 30 == 0 {
            for to in [BOB, ALICE] {
                staff_ok(app, &owner, ASSIGN, json!({ "c": id, "s": to })).await;
                items.push("SystemEvent ASSIGNED".to_owned());
            }
        }
        if i % 25 == 0 {
            // Private from the start: public at 25, private at 50, …
            let private = (i / 25) % 2 == 0;
            staff_ok(
                app,
                &owner,
                "mutation($c: ID!, $p: Boolean!) {
                    setConversationPrivacy(conversationId: $c, private: $p) { conversationId } }",
                json!({ "c": id, "p": private }),
            )
            .await;
            items.push(
                if private {
                    "SystemEvent MADE_PRIVATE"
                } else {
                    "SystemEvent MADE_PUBLIC"
                }
                .to_owned(),
            );
        }
        if i % 45 == 0 {
            for mutation in ["closeConversation", "reopenConversation"] {
                staff_ok(
                    app,
                    &owner,
                    &format!(
                        "mutation($c: ID!) {{ {mutation}(conversationId: $c) {{ conversationId }} }}"
                    ),
                    json!({ "c": id }),
                )
                .await;
            }
            items.push("SystemEvent CLOSED".to_owned());
            items.push("SystemEvent REOPENED".to_owned());
        }
        if i == 70 {
            staff_ok(
                app,
                &owner,
                "mutation($c: ID!, $s: ID!) {
                    inviteToRoom(conversationId: $c, staffId: $s) { conversationId } }",
                json!({ "c": id, "s": CAROL }),
            )
            .await;
            items.push("SystemEvent INVITED_TO_ROOM".to_owned());
        }
    }
    // The setup did what it says: the stream holds exactly these events.
    let audit = staff_ok(app, &owner, AUDIT, json!({ "c": id })).await;
    let audit = audit["auditTrail"].as_array().unwrap();
    let types: Vec<&str> = audit
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = items
        .iter()
        .map(|item| match item.split(' ').nth(1).unwrap() {
            "OPENED" => "ConversationOpened",
            "ASSIGNED" => "ConversationAssigned",
            "MADE_PRIVATE" | "MADE_PUBLIC" => "ConversationPrivacyChanged",
            "CLOSED" => "ConversationClosed",
            "REOPENED" => "ConversationReopened",
            "INVITED_TO_ROOM" => "StaffInvitedToRoom",
            "public" => "MessagePosted",
            "private" => "PrivateMessagePosted",
            other => panic!("{other}"),
        })
        .collect();
    assert_eq!(types, expected);
    Timeline {
        id,
        items,
        positions: audit
            .iter()
            .map(|e| e["position"].as_str().unwrap().parse().unwrap())
            .collect(),
        event_ids: audit
            .iter()
            .map(|e| e["eventId"].as_str().unwrap().to_owned())
            .collect(),
    }
}

/// One page: its items (as [`Timeline::items`] writes them), node ids and
/// cursors, and its `pageInfo`.
struct Page {
    items: Vec<String>,
    ids: Vec<String>,
    cursors: Vec<String>,
    info: Value,
}

async fn page_as(app: &TestServer, token: &str, timeline: &Timeline, variables: Value) -> Page {
    let mut variables = variables;
    variables["c"] = json!(timeline.id);
    let data = staff_ok(app, token, PAGE, variables).await;
    let connection = &data["conversation"]["timeline"];
    let edges = connection["edges"].as_array().unwrap();
    for edge in edges {
        assert_eq!(edge["cursor"], edge["node"]["cursor"], "{edge}");
    }
    let info = connection["pageInfo"].clone();
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
        items: edges
            .iter()
            .map(|e| {
                let node = &e["node"];
                let what = node["body"].as_str().or(node["kind"].as_str()).unwrap();
                format!("{} {what}", node["__typename"].as_str().unwrap())
            })
            .collect(),
        ids: edges
            .iter()
            .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
            .collect(),
        cursors,
        info,
    }
}

async fn page(app: &TestServer, timeline: &Timeline, variables: Value) -> Page {
    page_as(app, &app.token("owner"), timeline, variables).await
}

/// Pages forward with `first` (`None`: the default) until the end.
async fn forward(app: &TestServer, timeline: &Timeline, first: Option<usize>) -> Vec<Page> {
    let mut pages: Vec<Page> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let p = page(app, timeline, json!({ "first": first, "after": after })).await;
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
async fn backward(app: &TestServer, timeline: &Timeline, last: Option<usize>) -> Vec<Page> {
    let mut pages: Vec<Page> = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let vars = match (last, &before) {
            // `before` alone pages backward with the default size; the first
            // page needs `last`.
            (None, None) => json!({ "last": 100 }),
            _ => json!({ "last": last, "before": before }),
        };
        let p = page(app, timeline, vars).await;
        let more = p.info["hasPreviousPage"] == true;
        before = p.info["startCursor"].as_str().map(str::to_owned);
        pages.push(p);
        if !more {
            return pages;
        }
        assert!(pages.len() <= 300, "paging does not end");
    }
}

/// The sizes of the pages of `size` over `len` items.
fn sizes(len: usize, size: usize) -> Vec<usize> {
    (0..len)
        .step_by(size)
        .map(|start| size.min(len - start))
        .collect()
}

fn decode(cursor: &str) -> String {
    String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).unwrap()).unwrap()
}

#[tokio::test]
async fn forward_and_backward_pages_concatenate_to_the_whole_timeline_in_order() {
    let app = TestServer::spawn().await;
    let timeline = conversation(&app, 120).await;
    let len = timeline.items.len();
    assert!(len > 150, "{len}");
    for first in [Some(7), None] {
        let pages = forward(&app, &timeline, first).await;
        let got: Vec<usize> = pages.iter().map(|p| p.items.len()).collect();
        // The default page is the limit, 100.
        assert_eq!(got, sizes(len, first.unwrap_or(100)), "first = {first:?}");
        let all: Vec<String> = pages.iter().flat_map(|p| p.items.clone()).collect();
        assert_eq!(all, timeline.items, "first = {first:?}");
        for (i, p) in pages.iter().enumerate() {
            assert_eq!(p.info["hasPreviousPage"], i > 0, "page {i}");
            assert_eq!(p.info["hasNextPage"], i + 1 < pages.len(), "page {i}");
        }
        // A system event's id is its event's id; a message's, the message's.
        let ids: Vec<String> = pages.iter().flat_map(|p| p.ids.clone()).collect();
        for ((item, id), event_id) in timeline.items.iter().zip(&ids).zip(&timeline.event_ids) {
            assert_eq!(item.starts_with("SystemEvent"), id == event_id, "{item}");
        }
        // Past the newest item: an empty page.
        let end = pages.last().unwrap().info["endCursor"].clone();
        let past = page(&app, &timeline, json!({ "first": first, "after": end })).await;
        assert!(past.items.is_empty());
        assert_eq!(past.info["hasNextPage"], false);
        assert_eq!(past.info["hasPreviousPage"], true);
        assert_eq!(past.info["endCursor"], Value::Null);
    }
    for last in [Some(7), None] {
        let pages = backward(&app, &timeline, last).await;
        let got: Vec<usize> = pages.iter().map(|p| p.items.len()).collect();
        // Full pages from the newest; the oldest page holds the rest.
        let expected = sizes(len, last.unwrap_or(100));
        assert_eq!(got, expected, "last = {last:?}");
        // The first page is the newest items, oldest first.
        assert_eq!(pages[0].items, timeline.items[len - expected[0]..]);
        let all: Vec<String> = pages.iter().rev().flat_map(|p| p.items.clone()).collect();
        assert_eq!(all, timeline.items, "last = {last:?}");
        for (i, p) in pages.iter().enumerate() {
            assert_eq!(p.info["hasNextPage"], i > 0, "page {i}");
            assert_eq!(p.info["hasPreviousPage"], i + 1 < pages.len(), "page {i}");
        }
    }
    // The directions meet: forward from a backward page's end is what
    // follows it.
    let newest = page(&app, &timeline, json!({ "last": 10 })).await;
    let middle = page(
        &app,
        &timeline,
        json!({ "last": 3, "before": newest.info["startCursor"] }),
    )
    .await;
    let next = page(
        &app,
        &timeline,
        json!({ "first": 13, "after": middle.info["endCursor"] }),
    )
    .await;
    assert_eq!(middle.items, timeline.items[len - 13..len - 10]);
    assert_eq!(next.items, timeline.items[len - 10..]);
    assert_eq!(next.info["hasNextPage"], false);
}

#[tokio::test]
async fn cursors_are_the_items_places_in_the_timeline_not_log_positions() {
    let app = TestServer::spawn().await;
    let timeline = conversation(&app, 12).await;
    let pages = forward(&app, &timeline, Some(5)).await;
    let decoded: Vec<String> = pages
        .iter()
        .flat_map(|p| p.cursors.iter().map(|c| decode(c)))
        .collect();
    let ordinals: Vec<String> = (0..timeline.items.len())
        .map(|i| format!("timeline:{i}"))
        .collect();
    assert_eq!(decoded, ordinals);
    // The items' global positions are elsewhere: the demo came first.
    for (i, position) in timeline.positions.iter().enumerate() {
        assert!(*position > i as u64 + 10, "{i}: {position}");
    }
    // No item tells its global position any more.
    let owner = app.token("owner");
    for typename in ["PublicMessage", "PrivateMessage", "SystemEvent"] {
        let reply = app
            .staff(
                &owner,
                &format!(
                    "query($c: ID!) {{ conversation(id: $c) {{ timeline {{ edges {{ node {{
                        ... on {typename} {{ position }} }} }} }} }} }}"
                ),
                json!({ "c": timeline.id }),
            )
            .await;
        assert_eq!(reply.code(), Some("VALIDATION"), "{:?}", reply.body);
    }
    // A sent message's cursor is its cursor in the timeline, and pages.
    let alice = app.token("agent 1");
    for visibility in ["PUBLIC", "PRIVATE"] {
        let sent = staff_ok(
            &app,
            &alice,
            SEND,
            json!({ "c": timeline.id, "b": "one more", "v": visibility }),
        )
        .await;
        let cursor = sent["sendMessage"]["message"]["cursor"].clone();
        let newest = page(&app, &timeline, json!({ "last": 1 })).await;
        assert_eq!(cursor.as_str(), Some(newest.cursors[0].as_str()));
        let after = page(&app, &timeline, json!({ "after": cursor })).await;
        assert!(after.items.is_empty());
        assert_eq!(after.info["hasPreviousPage"], true);
        let last = staff_ok(
            &app,
            &owner,
            "query($c: ID!) { conversation(id: $c) { lastMessage {
                ... on PublicMessage { cursor } ... on PrivateMessage { cursor } } } }",
            json!({ "c": timeline.id }),
        )
        .await;
        assert_eq!(last["conversation"]["lastMessage"]["cursor"], cursor);
    }
}

#[tokio::test]
async fn bad_cursors_and_sizes_are_validation_and_append_nothing() {
    let app = TestServer::spawn().await;
    let long = conversation(&app, 40).await;
    let timeline = conversation(&app, 4).await;
    let len = timeline.items.len();
    let good = page(&app, &timeline, json!({ "first": 2 })).await;
    let cursor = good.cursors[1].clone();
    let made = |value: &str| URL_SAFE_NO_PAD.encode(value);
    // A cursor of the long conversation, past the end of this one.
    let foreign = page(&app, &long, json!({ "last": 1 })).await.cursors[0].clone();
    let position = *timeline.positions.last().unwrap();
    assert!(position as usize >= len);
    // A customer's message cursor, a real one.
    let customer = app
        .customer(
            Some(&app.demo().customer),
            "{ conversation { messages(first: 1) { edges { cursor } } } }",
            json!({}),
        )
        .await;
    let message = customer.data()["conversation"]["messages"]["edges"][0]["cursor"].clone();
    assert!(message.is_string(), "{:?}", customer.body);
    // The pages read above are recorded by the read audit in the background.
    app.desk.read_audit().flush().await;
    let head = app.desk.log().head();
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
            json!({ "after": made(&format!("conversation:{}", timeline.id)) }),
        ),
        ("a customer's message cursor", json!({ "after": message })),
        ("not a number", json!({ "after": made("timeline:x") })),
        ("negative", json!({ "after": made("timeline:-1") })),
        ("not canonical", json!({ "after": made("timeline:01") })),
        ("signed", json!({ "before": made("timeline:+1") })),
        (
            "huge",
            json!({ "before": made("timeline:18446744073709551616") }),
        ),
        (
            "past the end",
            json!({ "after": made(&format!("timeline:{len}")) }),
        ),
        (
            "another timeline's, past the end",
            json!({ "before": foreign }),
        ),
        (
            "a global position",
            json!({ "after": made(&format!("timeline:{position}")) }),
        ),
        (
            "the old shape: a bare position",
            json!({ "after": position.to_string() }),
        ),
    ];
    let owner = app.token("owner");
    for (name, mut variables) in cases {
        variables["c"] = json!(timeline.id);
        let reply = app.staff(&owner, PAGE, variables).await;
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
    let next = page(&app, &timeline, json!({ "after": cursor })).await;
    assert_eq!(next.items, timeline.items[2..]);
}

#[tokio::test]
async fn the_page_size_is_capped_by_the_configured_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = backchannel_testkit::demo_config(dir.path());
    config.limits.max_page_size = 10;
    let mut app = TestServer::spawn_with(config).await;
    let timeline = conversation(&app, 15).await;
    let len = timeline.items.len();
    assert!(len > 20, "{len}");
    let default = page(&app, &timeline, json!({})).await;
    assert_eq!(default.items, timeline.items[..10]);
    assert_eq!(default.info["hasNextPage"], true);
    let before = page(
        &app,
        &timeline,
        json!({ "before": default.info["endCursor"] }),
    )
    .await;
    assert_eq!(
        before.items,
        timeline.items[..9],
        "`before` alone: up to 10"
    );
    let newest = page(&app, &timeline, json!({ "last": 10 })).await;
    assert_eq!(newest.items, timeline.items[len - 10..]);
    for over in [json!({ "first": 11 }), json!({ "last": 11 })] {
        let mut variables = over.clone();
        variables["c"] = json!(timeline.id);
        let reply = app.staff(&app.token("owner"), PAGE, variables).await;
        assert_eq!(reply.code(), Some("VALIDATION"), "{over}: {:?}", reply.body);
    }
    app.stop().await;
}

#[tokio::test]
async fn the_complexity_counts_last_like_first() {
    let app = TestServer::spawn().await;
    let fields = |size: &str| {
        format!(
            "timeline{size} {{ edges {{ cursor node {{
                ... on PublicMessage {{ id cursor at body author {{ id name }} }}
                ... on PrivateMessage {{ id cursor at body author {{ id name }} }}
                ... on SystemEvent {{ id cursor at kind }} }} }}
            pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }} }}"
        )
    };
    let query = |size: &str| {
        format!(
            "query($c: ID!) {{ conversation(id: $c) {{ a: {} b: {} }} }}",
            fields(size),
            fields(size)
        )
    };
    let owner = app.token("owner");
    for size in ["(first: 10)", "(last: 10)"] {
        let reply = app.staff(&owner, &query(size), json!({ "c": CASEY })).await;
        assert_eq!(reply.code(), None, "{size}: {:?}", reply.body);
    }
    for size in ["(first: 100)", "(last: 100)", ""] {
        let reply = app.staff(&owner, &query(size), json!({ "c": CASEY })).await;
        assert_eq!(
            reply.code(),
            Some("QUERY_TOO_COMPLEX"),
            "{size}: {:?}",
            reply.body
        );
    }
}

#[tokio::test]
async fn an_agent_who_loses_access_gets_no_page_even_with_an_earlier_cursor() {
    let app = TestServer::spawn().await;
    let owner = app.token("owner");
    let bob = app.token("agent 2");
    // Private (the demo's default) and Alice's; Bob takes it over for a while.
    let timeline = conversation(&app, 10).await;
    staff_ok(&app, &owner, ASSIGN, json!({ "c": timeline.id, "s": BOB })).await;
    let seen = page_as(&app, &bob, &timeline, json!({ "first": 3 })).await;
    assert_eq!(seen.items, timeline.items[..3]);
    let cursor = seen.info["endCursor"].clone();
    // Back to Alice: Bob is no participant of a private, handled conversation.
    staff_ok(
        &app,
        &owner,
        ASSIGN,
        json!({ "c": timeline.id, "s": ALICE }),
    )
    .await;
    for variables in [
        json!({ "first": 3, "after": cursor }),
        json!({ "after": cursor }),
        json!({ "last": 3, "before": cursor }),
        json!({ "before": cursor }),
        json!({}),
    ] {
        let mut variables = variables;
        variables["c"] = json!(timeline.id);
        let reply = app.staff(&bob, PAGE, variables.clone()).await;
        assert_eq!(
            reply.code(),
            Some("RESTRICTED_ACCESS"),
            "{variables}: {:?}",
            reply.body
        );
        assert_eq!(reply.data()["conversation"], Value::Null);
        let body = reply.body.to_string();
        assert!(
            !body.contains("public ") && !body.contains("private "),
            "{body}"
        );
    }
    // `conversation(id:)` refuses first; the timeline checks again on its own
    // (a `Conversation` may have been loaded before the access went).
    let conversation = timeline.id.parse().unwrap();
    let bob_id = BOB.parse().unwrap();
    for request in [
        timeline_connection::request(Some(3), cursor.as_str(), None, None, 100),
        timeline_connection::request(None, None, Some(3), cursor.as_str(), 100),
    ] {
        let refused = timeline_connection::page(&app.desk, bob_id, conversation, request.unwrap())
            .await
            .err()
            .map(|e| e.code());
        assert_eq!(refused, Some("RESTRICTED_ACCESS"));
    }
    // The cursor itself is still good, for those who may see the timeline.
    let alice = page_as(
        &app,
        &app.token("agent 1"),
        &timeline,
        json!({ "first": 3, "after": cursor }),
    )
    .await;
    assert_eq!(alice.items, timeline.items[3..6]);
}
