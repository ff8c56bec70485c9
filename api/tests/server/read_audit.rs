//! The read audit (SPEC section 12): opening a conversation's content (its
//! timeline, or a report holding it) is recorded, coalesced per staff member
//! and conversation within a window, durable across a restart, and listed by
//! `accessLog` to the owner and admins only.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use backchannel_api::read_audit::{Clock, ReadAuditConfig};
use serde_json::{Value, json};

use backchannel_testkit::demo::{ALICE, CASEY, DANA, EVAN, FRANKIE, OWNER, SUPERVISOR, SUPPORT};
use backchannel_testkit::*;

const TIMELINE: &str =
    "query($c: ID!) { conversation(id: $c) { timeline(first: 5) { edges { cursor } } } }";
const ACCESS_BY_CONVERSATION: &str = "query($c: ID, $first: Int, $after: String) {
  accessLog(conversationId: $c, first: $first, after: $after) {
    edges { cursor node { staffId conversationId rule path at staff { name } } }
    pageInfo { hasNextPage endCursor }
  } }";
const ACCESS_BY_STAFF: &str = "query($s: ID) {
  accessLog(staffId: $s) { edges { node { staffId conversationId rule path } } } }";

async fn entries(app: &TestServer, conversation: &str) -> Vec<Value> {
    app.desk.read_audit().flush().await;
    let reply = app
        .staff(
            &app.token("owner"),
            ACCESS_BY_CONVERSATION,
            json!({ "c": conversation }),
        )
        .await;
    assert!(reply.body["errors"].is_null(), "{}", reply.body);
    reply.data()["accessLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

async fn open_timeline(app: &TestServer, role: &str, conversation: &str) {
    let reply = app
        .staff(&app.token(role), TIMELINE, json!({ "c": conversation }))
        .await;
    assert!(reply.body["errors"].is_null(), "{}", reply.body);
}

/// A clock the test moves.
fn manual_clock() -> (Clock, Arc<AtomicI64>) {
    let now = Arc::new(AtomicI64::new(1_800_000_000_000_000));
    let read = now.clone();
    (Clock::new(move || read.load(Ordering::SeqCst)), now)
}

#[tokio::test]
async fn opening_a_timeline_is_recorded_with_who_and_the_rule() {
    let app = TestServer::spawn().await;
    assert!(entries(&app, CASEY).await.is_empty());
    open_timeline(&app, "agent 1", CASEY).await;
    let got = entries(&app, CASEY).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["staffId"], ALICE);
    assert_eq!(got[0]["conversationId"], CASEY);
    assert_eq!(got[0]["rule"], "R3");
    assert_eq!(got[0]["path"], "TIMELINE");
    assert_eq!(
        got[0]["staff"]["name"].as_str().map(|n| !n.is_empty()),
        Some(true)
    );

    // By staff member: what Alice opened.
    app.desk.read_audit().flush().await;
    let reply = app
        .staff(&app.token("admin"), ACCESS_BY_STAFF, json!({ "s": ALICE }))
        .await;
    let edges = reply.data()["accessLog"]["edges"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(edges.len(), 1, "{}", reply.body);
    assert_eq!(edges[0]["node"]["conversationId"], CASEY);
}

#[tokio::test]
async fn listing_and_looking_up_conversations_is_not_opening_content() {
    let app = TestServer::spawn().await;
    let list = "{ conversations(first: 50) { edges { node { id customerName lastMessage { __typename } } } } }";
    let reply = app.staff(&app.token("owner"), list, json!({})).await;
    assert!(reply.body["errors"].is_null(), "{}", reply.body);
    let one = "query($c: ID!) { conversation(id: $c) { id status } node(id: $c) { id } }";
    let reply = app
        .staff(&app.token("owner"), one, json!({ "c": CASEY }))
        .await;
    assert!(reply.body["errors"].is_null(), "{}", reply.body);
    let overview = "query($g: ID!) { enquiryOverview(groupId: $g) { queued { count } } }";
    app.staff(&app.token("owner"), overview, json!({ "g": SUPPORT }))
        .await;
    for c in [CASEY, DANA, EVAN, FRANKIE] {
        assert!(entries(&app, c).await.is_empty(), "{c}");
    }
    // A refused timeline opens nothing either.
    let reply = app
        .staff(&app.token("agent 2"), TIMELINE, json!({ "c": CASEY }))
        .await;
    assert!(reply.code().is_some(), "{}", reply.body);
    assert!(entries(&app, CASEY).await.is_empty());
}

#[tokio::test]
async fn opens_within_the_window_are_one_entry_and_a_later_one_is_another() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = demo_config(dir.path());
    let (clock, now) = manual_clock();
    config.read_audit = ReadAuditConfig {
        enabled: true,
        window: Duration::from_secs(15 * 60),
        clock,
    };
    let app = TestServer::spawn_with(config).await;
    open_timeline(&app, "owner", CASEY).await;
    now.fetch_add(60_000_000, Ordering::SeqCst); // a minute later
    open_timeline(&app, "owner", CASEY).await;
    open_timeline(&app, "owner", CASEY).await;
    assert_eq!(entries(&app, CASEY).await.len(), 1);
    // Another conversation, and another reader, are entries of their own.
    open_timeline(&app, "owner", DANA).await;
    open_timeline(&app, "agent 1", CASEY).await;
    assert_eq!(entries(&app, CASEY).await.len(), 2);
    assert_eq!(entries(&app, DANA).await.len(), 1);
    // Past the window (15 minutes after the first), a new entry.
    now.fetch_add(15 * 60_000_000, Ordering::SeqCst);
    open_timeline(&app, "owner", CASEY).await;
    let got = entries(&app, CASEY).await;
    assert_eq!(got.len(), 3, "{got:?}");
    // Newest first.
    assert_eq!(got[0]["staffId"], OWNER);
    assert_eq!(got[0]["rule"], "R1");
    assert_eq!(got[1]["staffId"], ALICE);
}

#[tokio::test]
async fn a_report_records_each_conversation_it_holds() {
    let app = TestServer::spawn().await;
    let (status, _) = app
        .get_as(
            "/reports/enquiries?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z",
            Some(&app.token("supervisor")),
        )
        .await
        .parts();
    assert_eq!(status, 200);
    let got = entries(&app, FRANKIE).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["staffId"], SUPERVISOR);
    assert_eq!(got[0]["rule"], "R2");
    assert_eq!(got[0]["path"], "REPORT");
    // Open conversations are in no closed-enquiry report.
    assert!(entries(&app, CASEY).await.is_empty());
}

#[tokio::test]
async fn the_access_log_survives_a_restart_and_the_window_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = TestServer::spawn_with(demo_config(dir.path())).await;
    open_timeline(&app, "agent 1", CASEY).await;
    // No flush: a graceful stop drains the recorder's queue.
    app.stop().await;
    drop(app);

    // The demo loads again by its idempotency keys: nothing new.
    let app = TestServer::spawn_with(demo_config(dir.path())).await;
    let got = entries(&app, CASEY).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["staffId"], ALICE);
    // Within the window of the entry before the restart: not recorded again.
    open_timeline(&app, "agent 1", CASEY).await;
    assert_eq!(entries(&app, CASEY).await.len(), 1);
}

#[tokio::test]
async fn only_the_owner_and_admins_read_the_access_log() {
    let app = TestServer::spawn().await;
    for role in ["supervisor", "agent 1", "agent 2"] {
        for (query, vars) in [
            (ACCESS_BY_CONVERSATION, json!({ "c": CASEY })),
            (ACCESS_BY_STAFF, json!({ "s": ALICE })),
        ] {
            let reply = app.staff(&app.token(role), query, vars).await;
            assert_eq!(reply.code(), Some("FORBIDDEN"), "{role}: {}", reply.body);
            assert!(reply.data().is_null(), "{role}: {}", reply.body);
        }
    }
    for role in ["owner", "admin"] {
        let reply = app
            .staff(
                &app.token(role),
                ACCESS_BY_CONVERSATION,
                json!({ "c": CASEY }),
            )
            .await;
        assert!(reply.body["errors"].is_null(), "{role}: {}", reply.body);
    }
    // Exactly one of the two ids.
    let both =
        "query($c: ID, $s: ID) { accessLog(conversationId: $c, staffId: $s) { edges { cursor } } }";
    for vars in [json!({ "c": CASEY, "s": ALICE }), json!({})] {
        let reply = app.staff(&app.token("owner"), both, vars).await;
        assert_eq!(reply.code(), Some("VALIDATION"), "{}", reply.body);
    }
    // Unknown (or another company's) ids: NOT_FOUND, for every role.
    let stranger = "01900000-0000-7000-8000-0000000fffff";
    for role in ["owner", "agent 1"] {
        for (query, vars) in [
            (ACCESS_BY_CONVERSATION, json!({ "c": stranger })),
            (ACCESS_BY_STAFF, json!({ "s": stranger })),
        ] {
            let reply = app.staff(&app.token(role), query, vars).await;
            assert_eq!(reply.code(), Some("NOT_FOUND"), "{role}: {}", reply.body);
        }
    }
    // No token: UNAUTHENTICATED.
    let body = json!({ "query": ACCESS_BY_CONVERSATION, "variables": { "c": CASEY } }).to_string();
    let reply = app.post("/graphql", None, body.as_bytes()).await;
    assert_eq!(reply.code(), Some("UNAUTHENTICATED"), "{}", reply.body);
}

#[tokio::test]
async fn the_access_log_pages_newest_first() {
    let app = TestServer::spawn().await;
    for role in ["owner", "admin", "agent 1"] {
        open_timeline(&app, role, CASEY).await;
        app.desk.read_audit().flush().await;
    }
    let first = app
        .staff(
            &app.token("owner"),
            ACCESS_BY_CONVERSATION,
            json!({ "c": CASEY, "first": 2 }),
        )
        .await;
    let page = &first.data()["accessLog"];
    assert_eq!(page["edges"].as_array().unwrap().len(), 2, "{}", first.body);
    assert_eq!(page["edges"][0]["node"]["staffId"], ALICE);
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    let rest = app
        .staff(
            &app.token("owner"),
            ACCESS_BY_CONVERSATION,
            json!({ "c": CASEY, "first": 2, "after": page["pageInfo"]["endCursor"] }),
        )
        .await;
    let page = &rest.data()["accessLog"];
    assert_eq!(page["edges"].as_array().unwrap().len(), 1, "{}", rest.body);
    assert_eq!(page["edges"][0]["node"]["staffId"], OWNER);
    assert_eq!(page["pageInfo"]["hasNextPage"], false);
}

#[tokio::test]
async fn recording_off_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = demo_config(dir.path());
    config.read_audit.enabled = false;
    let app = TestServer::spawn_with(config).await;
    open_timeline(&app, "owner", CASEY).await;
    assert!(entries(&app, CASEY).await.is_empty());
}
