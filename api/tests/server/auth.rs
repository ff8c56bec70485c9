//! SPEC section 8: tokens, and role/active state read on every request.

use std::time::{Duration, SystemTime};

use backchannel_api::auth::StaffIdentity;
use serde_json::json;

use backchannel_testkit::demo::{BOB, CAROL, OWNER};
use backchannel_testkit::*;

const ME: &str = "{ me { id name role } }";

#[tokio::test]
async fn a_missing_token_is_unauthenticated() {
    let app = TestServer::spawn().await;
    let reply = app
        .post("/graphql", None, br#"{"query":"{ me { id } }"}"#)
        .await;
    assert_eq!(reply.code(), Some("UNAUTHENTICATED"));
}

#[tokio::test]
async fn a_bad_token_is_unauthenticated() {
    let app = TestServer::spawn().await;
    let reply = app.staff("not-a-jwt", ME, json!({})).await;
    assert_eq!(reply.code(), Some("UNAUTHENTICATED"));
}

#[tokio::test]
async fn an_expired_token_is_unauthenticated() {
    let app = TestServer::spawn().await;
    let identity = StaffIdentity {
        staff: OWNER.parse().unwrap(),
        company: app.demo().company,
    };
    let long_ago = SystemTime::now() - Duration::from_secs(365 * 24 * 3600);
    let token = app.tokens.mint_staff_at(identity, long_ago).unwrap().token;
    let reply = app.staff(&token, ME, json!({})).await;
    assert_eq!(reply.code(), Some("UNAUTHENTICATED"));
}

#[tokio::test]
async fn a_customer_token_does_not_open_the_staff_schema() {
    let app = TestServer::spawn().await;
    let reply = app.staff(&app.demo().customer.clone(), ME, json!({})).await;
    assert_eq!(reply.code(), Some("UNAUTHENTICATED"));
}

#[tokio::test]
async fn a_valid_token_names_the_staff_member() {
    let app = TestServer::spawn().await;
    let reply = app.staff(&app.token("agent 1"), ME, json!({})).await;
    assert_eq!(reply.data()["me"]["name"], "Alice Agent");
    assert_eq!(reply.data()["me"]["role"], "AGENT");
}

#[tokio::test]
async fn a_deactivated_staff_member_is_unauthenticated_at_once() {
    let app = TestServer::spawn().await;
    let bob = app.token("agent 2");
    assert!(app.staff(&bob, ME, json!({})).await.code().is_none());
    let reply = app
        .staff(
            &app.token("owner"),
            "mutation($id: ID!) { deactivateStaff(staffId: $id) { staff { active } } }",
            json!({ "id": BOB }),
        )
        .await;
    assert_eq!(
        reply.data()["deactivateStaff"]["staff"]["active"],
        false,
        "{:?}",
        reply.body
    );
    let reply = app.staff(&bob, ME, json!({})).await;
    assert_eq!(reply.code(), Some("UNAUTHENTICATED"));
}

#[tokio::test]
async fn a_demotion_takes_effect_on_the_next_request() {
    let app = TestServer::spawn().await;
    let admin = app.token("admin");
    let settings = "mutation { updatePrivacySettings(privateConversationsEnabled: false) { company { settings { privateConversationsEnabled } } } }";
    let demote = app
        .staff(
            &app.token("owner"),
            "mutation($id: ID!) { changeRole(staffId: $id, role: AGENT) { staff { role } } }",
            json!({ "id": "01900000-0000-7000-8000-000000005002" }),
        )
        .await;
    assert_eq!(
        demote.data()["changeRole"]["staff"]["role"],
        "AGENT",
        "{:?}",
        demote.body
    );
    let reply = app.staff(&admin, settings, json!({})).await;
    assert_eq!(reply.code(), Some("FORBIDDEN"));
}

#[tokio::test]
async fn owners_issue_tokens_that_work() {
    let app = TestServer::spawn().await;
    let reply = app
        .staff(
            &app.token("owner"),
            "mutation($id: ID!) { issueStaffToken(staffId: $id) { token staff { name } } }",
            json!({ "id": CAROL }),
        )
        .await;
    let token = reply.data()["issueStaffToken"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = app.staff(&token, ME, json!({})).await;
    assert_eq!(me.data()["me"]["name"], "Carol Agent");
    let refused = app
        .staff(
            &app.token("agent 1"),
            "mutation($id: ID!) { issueStaffToken(staffId: $id) { token } }",
            json!({ "id": CAROL }),
        )
        .await;
    assert_eq!(refused.code(), Some("FORBIDDEN"));
}
