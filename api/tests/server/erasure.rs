//! Erasure by crypto-shredding (SPEC section 12), end to end through the
//! server: after `eraseConversation`, every path shows the content as erased
//! (`ERASED` where it is asked for directly), the structure stays, and no
//! byte of the plaintext remains in the store's files, the checkpoint (once
//! written again) or an export.

use std::path::Path;
use std::time::Duration;

use backchannel_domain::events::StreamId;
use backchannel_domain::ids::ConversationId;
use serde_json::{Value, json};

use backchannel_testkit::demo::{ALICE, SUPPORT};
use backchannel_testkit::*;

const CUSTOMER: &str = "Ulrike Unforgettable-Qz7";
const PUBLIC: &str = "PUBLIC-PLAINTEXT: my parcel number is 7781-QZ";
const PRIVATE: &str = "PRIVATE-PLAINTEXT: she called twice, be kind";
const KEPT: &str = "Karl Keepme-Qz7";

const OPEN: &str = "mutation($g: ID!, $n: String!) { openConversation(groupId: $g, customerName: $n, channel: SOCIAL) { conversationId } }";
const ASSIGN: &str = "mutation($c: ID!, $s: ID!) { assignConversation(conversationId: $c, assigneeId: $s) { conversationId } }";
const SEND: &str = "mutation($c: ID!, $b: String!, $v: MessageVisibility!) { sendMessage(conversationId: $c, body: $b, visibility: $v) { message { __typename } } }";
const ERASE: &str = "mutation($c: ID!, $r: String!, $k: String) { eraseConversation(conversationId: $c, reason: $r, idempotencyKey: $k) { conversation { status erased } } }";
const VIEW: &str = "query($c: ID!) { conversation(id: $c) { status erased customerName assignee { name }
    timeline(first: 50) { edges { node { __typename
        ... on PublicMessage { body } ... on PrivateMessage { body } ... on SystemEvent { kind } } } } } }";

async fn ok(app: &TestServer, token: &str, query: &str, vars: Value) -> Value {
    let reply = app.staff(token, query, vars).await;
    assert!(reply.code().is_none(), "{query}: {:?}", reply.body);
    reply.body["data"].clone()
}

/// Opens a conversation for `customer`, assigned to Alice, with one public
/// and one private message.
async fn conversation(app: &TestServer, customer: &str) -> String {
    let alice = app.token("agent 1");
    let opened = ok(app, &alice, OPEN, json!({ "g": SUPPORT, "n": customer })).await;
    let id = opened["openConversation"]["conversationId"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(app, &alice, ASSIGN, json!({ "c": id, "s": ALICE })).await;
    ok(
        app,
        &alice,
        SEND,
        json!({ "c": id, "b": PUBLIC, "v": "PUBLIC" }),
    )
    .await;
    ok(
        app,
        &alice,
        SEND,
        json!({ "c": id, "b": PRIVATE, "v": "PRIVATE" }),
    )
    .await;
    id
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && contains(&bytes, needle)
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn an_erased_conversation_shows_erased_everywhere_and_leaves_no_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = TestServer::spawn_with(demo_config(dir.path())).await;
    let id = conversation(&app, CUSTOMER).await;
    let kept = conversation(&app, KEPT).await;

    // Sealed as stored: the log's files never held the messages in clear.
    for text in [PUBLIC, PRIVATE] {
        assert_eq!(files_containing(dir.path(), text), Vec::<String>::new());
    }
    // The checkpoint a stop writes holds the customer's name (the read
    // models keep it in memory): the byte search can find it.
    app.stop().await;
    drop(app);
    assert!(
        !files_containing(dir.path(), CUSTOMER).is_empty(),
        "the positive control: the checkpoint holds the name before the erasure"
    );

    // Restarted on the same store: the keys are still there.
    let app = TestServer::spawn_with(demo_config(dir.path())).await;
    let owner = app.token("owner");
    let admin = app.token("admin");
    let alice = app.token("agent 1");
    let before = ok(&app, &owner, VIEW, json!({ "c": id })).await;
    assert_eq!(before["conversation"]["customerName"], CUSTOMER);
    assert_eq!(before["conversation"]["erased"], false);

    let operator = app.tokens.mint_operator().unwrap().token;
    let erased = ok(
        &app,
        &owner,
        ERASE,
        json!({ "c": id, "r": "GDPR Article 17 request #7", "k": "erase-1" }),
    )
    .await;
    assert_eq!(erased["eraseConversation"]["conversation"]["erased"], true);
    assert_eq!(
        erased["eraseConversation"]["conversation"]["status"],
        "HANDLING"
    );
    let stream = StreamId::Conversation(id.parse::<ConversationId>().unwrap());
    let events = app.desk.log().stream_positions(&stream, u64::MAX).len();

    // Asked for directly: ERASED, for the owner and the assignee alike; the
    // structure (status, assignee, the timeline's shape) stays.
    for token in [&owner, &alice] {
        let reply = app.staff(token, VIEW, json!({ "c": id })).await;
        let view = &reply.body["data"]["conversation"];
        assert_eq!(view["status"], "HANDLING", "{:?}", reply.body);
        assert_eq!(view["erased"], true);
        assert_eq!(view["assignee"]["name"], "Alice Agent");
        assert_eq!(view["customerName"], Value::Null);
        // Present and null, as GraphQL answers a failed nullable field.
        assert!(
            view.as_object().unwrap().contains_key("customerName"),
            "{view}"
        );
        let nodes: Vec<&Value> = view["timeline"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["node"])
            .collect();
        let bodies: Vec<&Value> = nodes
            .iter()
            .filter(|n| n["__typename"] != "SystemEvent")
            .map(|n| &n["body"])
            .collect();
        assert_eq!(bodies, vec![&Value::Null, &Value::Null], "{nodes:?}");
        assert!(
            nodes
                .iter()
                .filter(|n| n["__typename"] != "SystemEvent")
                .all(|n| n.as_object().unwrap().contains_key("body")),
            "{nodes:?}"
        );
        assert!(
            nodes.iter().any(|n| n["kind"] == "ERASED"),
            "the erasure is in the timeline: {nodes:?}"
        );
        let errors = reply.body["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 3, "name and two bodies: {errors:?}");
        assert!(
            errors.iter().all(|e| e["extensions"]["code"] == "ERASED"),
            "{errors:?}"
        );
        let text = reply.body.to_string();
        for plain in [CUSTOMER, PUBLIC, PRIVATE] {
            assert!(!text.contains(plain), "{plain} in {text}");
        }
    }
    // The other conversation is untouched.
    let other = ok(&app, &owner, VIEW, json!({ "c": kept })).await;
    assert_eq!(other["conversation"]["customerName"], KEPT);
    // The overview lists it, its name erased.
    let list = app
        .staff(
            &owner,
            "{ conversations(first: 100) { edges { node { id erased customerName } } } }",
            json!({}),
        )
        .await;
    let listed = list.body["data"]["conversations"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node"]["id"] == id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(listed["node"]["erased"], true);
    assert_eq!(listed["node"]["customerName"], Value::Null);
    assert_eq!(list.code(), Some("ERASED"));

    // No new content: its key is gone.
    let refused = app
        .staff(
            &alice,
            SEND,
            json!({ "c": id, "b": "anything", "v": "PUBLIC" }),
        )
        .await;
    assert_eq!(refused.code(), Some("ERASED"), "{:?}", refused.body);
    // Erasing again changes nothing; retrying the first key answers as before.
    ok(
        &app,
        &admin,
        ERASE,
        json!({ "c": id, "r": "again", "k": "erase-2" }),
    )
    .await;
    ok(
        &app,
        &owner,
        ERASE,
        json!({ "c": id, "r": "GDPR Article 17 request #7", "k": "erase-1" }),
    )
    .await;
    assert_eq!(
        app.desk.log().stream_positions(&stream, u64::MAX).len(),
        events,
        "no second erasure"
    );

    // The checkpoint is written again right after the erasure.
    let mut waited = Duration::ZERO;
    while !files_containing(dir.path(), CUSTOMER).is_empty() {
        assert!(
            waited < Duration::from_secs(20),
            "the name is still in {:?}",
            files_containing(dir.path(), CUSTOMER)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
    }
    // An export holds no plaintext of it, and still verifies.
    let (status, export) = app.get_as("/log", Some(&operator)).await.parts();
    assert_eq!(status, 200);
    for plain in [CUSTOMER, PUBLIC, PRIVATE, KEPT] {
        assert!(!contains(&export, plain), "{plain} in the export");
    }
    let mut app = app;
    app.stop().await;
    drop(app);
    for plain in [CUSTOMER, PUBLIC, PRIVATE] {
        assert_eq!(
            files_containing(dir.path(), plain),
            Vec::<String>::new(),
            "{plain} after the stop's checkpoint"
        );
    }
    // The log still verifies, and a rebuild from it (with the server's keys)
    // replays every event, the erased ones opening as erased.
    let store = dir.path().join("store");
    let secret = backchannel_api::secret::load_or_create(dir.path(), None).unwrap();
    let wrap = backchannel_eventlog::KeyWrap::from_secret(&secret);
    let (verified, rebuilt) = tokio::task::spawn_blocking(move || {
        let spec = backchannel_eventlog::StoreSpec::sled(&store);
        let mut models = backchannel_projections::ReadModels::new();
        let log = backchannel_eventlog::Log::open_replaying(&spec, 1, Some(&wrap), |recorded| {
            models.apply(&recorded).map(drop)
        })
        .unwrap();
        let verified = log.verify().unwrap();
        log.close().unwrap();
        (verified, models)
    })
    .await
    .unwrap();
    assert_eq!(verified.events, rebuilt.position());
    let conversation = &rebuilt.state().conversations[&id.parse::<ConversationId>().unwrap()];
    assert!(conversation.is_erased());
    assert_eq!(
        conversation.status,
        backchannel_domain::model::ConversationStatus::Handling
    );

    // Restarted without its checkpoint, so the read models are rebuilt from
    // the log (customer names applied sealed, opened when asked): still
    // erased (the key stays destroyed), the other one whole.
    std::fs::remove_dir_all(dir.path().join("store").join("checkpoints")).unwrap();
    let app = TestServer::spawn_with(demo_config(dir.path())).await;
    let reply = app
        .staff(&app.token("owner"), VIEW, json!({ "c": id }))
        .await;
    assert_eq!(reply.body["data"]["conversation"]["erased"], true);
    assert_eq!(reply.code(), Some("ERASED"));
    let other = ok(&app, &app.token("owner"), VIEW, json!({ "c": kept })).await;
    assert_eq!(other["conversation"]["customerName"], KEPT);
    let bodies = other["conversation"]["timeline"]["edges"].to_string();
    assert!(
        bodies.contains(PUBLIC) && bodies.contains(PRIVATE),
        "{bodies}"
    );
}

/// The customer's own view, and the closed-enquiry report, after an erasure.
#[tokio::test]
async fn the_customer_and_the_report_see_the_erasure_too() {
    let app = TestServer::spawn().await;
    let owner = app.token("owner");
    let customer = app.demo().customer.clone();
    let id = app.demo().customer_conversation.to_string();
    let mine = "{ conversation { status customerName messages(first: 100) { edges { node { author body } } } } }";
    let before = app.customer(Some(&customer), mine, json!({})).await;
    assert!(before.code().is_none(), "{:?}", before.body);
    let name = before.body["data"]["conversation"]["customerName"]
        .as_str()
        .unwrap()
        .to_owned();
    let bodies: Vec<String> = before.body["data"]["conversation"]["messages"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["body"].as_str().unwrap().to_owned())
        .collect();
    assert!(!bodies.is_empty());

    ok(
        &app,
        &owner,
        ERASE,
        json!({ "c": id, "r": "the customer asked", "k": "erase-demo" }),
    )
    .await;
    let after = app.customer(Some(&customer), mine, json!({})).await;
    let view = &after.body["data"]["conversation"];
    assert_eq!(view["customerName"], Value::Null, "{:?}", after.body);
    let edges = view["messages"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), bodies.len(), "the chat's shape stays");
    assert!(edges.iter().all(|e| e["node"]["body"].is_null()));
    let errors = after.body["errors"].as_array().unwrap();
    assert!(
        errors.iter().all(|e| e["extensions"]["code"] == "ERASED"),
        "{errors:?}"
    );
    let text = after.body.to_string();
    assert!(!text.contains(&name));
    for body in &bodies {
        assert!(!text.contains(body.as_str()), "{body}");
    }
    // The customer cannot write into it any more.
    let refused = app
        .customer(
            Some(&customer),
            "mutation { sendMessage(body: \"still there?\") { message { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(refused.code(), Some("ERASED"), "{:?}", refused.body);

    // Closed, it is in the report: its rows stay, its content shows erased.
    ok(
        &app,
        &owner,
        "mutation($c: ID!) { closeConversation(conversationId: $c) { conversationId } }",
        json!({ "c": id }),
    )
    .await;
    let (status, csv) = app
        .get_as(
            "/reports/enquiries?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z&format=csv",
            Some(&owner),
        )
        .await
        .parts();
    assert_eq!(status, 200);
    let csv = String::from_utf8(csv).unwrap();
    let rows: Vec<&str> = csv.lines().filter(|l| l.contains(id.as_str())).collect();
    // Its private messages too (the customer never saw those).
    assert!(rows.len() > bodies.len(), "{csv}");
    assert!(rows.iter().all(|r| r.contains("[erased]")), "{rows:?}");
    assert!(!csv.contains(&name));
    for body in &bodies {
        assert!(!csv.contains(body.as_str()), "{body}");
    }
}
