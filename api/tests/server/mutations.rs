//! One happy path per mutation, as the owner, an admin or an agent would run it.

use serde_json::{Value, json};

use backchannel_testkit::demo::{ALICE, BOB, CASEY, FRANKIE, SALES, SUPERVISOR, SUPPORT};
use backchannel_testkit::*;

async fn ok(app: &TestServer, token: &str, query: &str, vars: Value) -> Value {
    let reply = app.staff(token, query, vars).await;
    assert!(reply.code().is_none(), "{query}: {:?}", reply.body);
    reply.body["data"].clone()
}

#[tokio::test]
async fn conversation_mutations() {
    let app = TestServer::spawn().await;
    let owner = app.token("owner");
    let alice = app.token("agent 1");

    let opened = ok(
        &app,
        &alice,
        "mutation($g: ID!) { openConversation(groupId: $g, customerName: \"Gina Caller\", channel: CALL) { conversationId conversation { status channel customerName } } }",
        json!({ "g": SUPPORT }),
    )
    .await;
    let id = opened["openConversation"]["conversationId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        opened["openConversation"]["conversation"]["status"],
        "QUEUED"
    );

    let assigned = ok(
        &app,
        &alice,
        "mutation($c: ID!, $s: ID!) { assignConversation(conversationId: $c, assigneeId: $s) { conversation { status assignee { name } } } }",
        json!({ "c": id, "s": ALICE }),
    )
    .await;
    assert_eq!(
        assigned["assignConversation"]["conversation"]["assignee"]["name"],
        "Alice Agent"
    );

    let invited = ok(
        &app,
        &alice,
        "mutation($c: ID!, $s: ID!) { inviteToRoom(conversationId: $c, staffId: $s) { conversation { participants { name } } } }",
        json!({ "c": id, "s": BOB }),
    )
    .await;
    assert_eq!(
        invited["inviteToRoom"]["conversation"]["participants"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let sent = ok(
        &app,
        &alice,
        "mutation($c: ID!) { sendMessage(conversationId: $c, body: \"Logged the call.\", visibility: PUBLIC) { message { __typename ... on PublicMessage { body fromCustomer } } } }",
        json!({ "c": id }),
    )
    .await;
    assert_eq!(
        sent["sendMessage"]["message"]["__typename"],
        "PublicMessage"
    );

    let private = ok(
        &app,
        &owner,
        "mutation($c: ID!, $p: Boolean!) { setConversationPrivacy(conversationId: $c, private: $p) { conversation { private } } }",
        json!({ "c": id, "p": false }),
    )
    .await;
    assert_eq!(
        private["setConversationPrivacy"]["conversation"]["private"],
        false
    );

    let closed = ok(
        &app,
        &alice,
        "mutation($c: ID!) { closeConversation(conversationId: $c) { conversation { status closedAt } } }",
        json!({ "c": id }),
    )
    .await;
    assert_eq!(
        closed["closeConversation"]["conversation"]["status"],
        "CLOSED"
    );

    let reopened = ok(
        &app,
        &alice,
        "mutation($c: ID!) { reopenConversation(conversationId: $c) { conversation { status } } }",
        json!({ "c": id }),
    )
    .await;
    assert_eq!(
        reopened["reopenConversation"]["conversation"]["status"],
        "HANDLING"
    );

    let whisper = ok(
        &app,
        &app.token("supervisor"),
        "mutation { sendMessage(conversationId: \"01900000-0000-7000-8000-00000000d001\", body: \"Nice work\", visibility: PRIVATE) { message { __typename } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        whisper["sendMessage"]["message"]["__typename"],
        "PrivateMessage"
    );
}

#[tokio::test]
async fn directory_mutations() {
    let app = TestServer::spawn().await;
    let owner = app.token("owner");

    let settings = ok(
        &app,
        &owner,
        "mutation { updatePrivacySettings(privateConversationsEnabled: false) { company { settings { privateConversationsEnabled newConversationsPrivate } } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        settings["updatePrivacySettings"]["company"]["settings"],
        json!({ "privateConversationsEnabled": false, "newConversationsPrivate": true })
    );

    let group = ok(
        &app,
        &owner,
        "mutation { createGroup(name: \"Returns\", routing: BROADCAST) { group { id name routing } } }",
        json!({}),
    )
    .await;
    let group_id = group["createGroup"]["group"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let renamed = ok(
        &app,
        &owner,
        "mutation($g: ID!) { renameGroup(groupId: $g, name: \"Returns & Repairs\") { group { name } } }",
        json!({ "g": group_id }),
    )
    .await;
    assert_eq!(renamed["renameGroup"]["group"]["name"], "Returns & Repairs");

    let routed = ok(
        &app,
        &owner,
        "mutation($g: ID!) { setGroupRouting(groupId: $g, routing: ROUND_ROBIN) { group { routing } } }",
        json!({ "g": group_id }),
    )
    .await;
    assert_eq!(routed["setGroupRouting"]["group"]["routing"], "ROUND_ROBIN");

    let staff = ok(
        &app,
        &owner,
        "mutation { addStaff(name: \"Hugo Helper\", role: AGENT) { staff { id name role active } } }",
        json!({}),
    )
    .await;
    let hugo = staff["addStaff"]["staff"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(staff["addStaff"]["staff"]["role"], "AGENT");

    let member = ok(&app, &owner, "mutation($g: ID!, $s: ID!) { addGroupMember(groupId: $g, staffId: $s) { group { members { name } } } }", json!({ "g": group_id, "s": hugo })).await;
    assert_eq!(
        member["addGroupMember"]["group"]["members"][0]["name"],
        "Hugo Helper"
    );

    let removed = ok(&app, &owner, "mutation($g: ID!, $s: ID!) { removeGroupMember(groupId: $g, staffId: $s) { group { members { name } } } }", json!({ "g": group_id, "s": hugo })).await;
    assert_eq!(removed["removeGroupMember"]["group"]["members"], json!([]));

    let supervised = ok(&app, &owner, "mutation($g: ID!, $s: ID!) { addGroupSupervisor(groupId: $g, staffId: $s) { group { supervisors { name } } } }", json!({ "g": group_id, "s": SUPERVISOR })).await;
    assert_eq!(
        supervised["addGroupSupervisor"]["group"]["supervisors"][0]["name"],
        "Sofia Supervisor"
    );

    let unsupervised = ok(&app, &owner, "mutation($g: ID!, $s: ID!) { removeGroupSupervisor(groupId: $g, staffId: $s) { group { supervisors { name } } } }", json!({ "g": group_id, "s": SUPERVISOR })).await;
    assert_eq!(
        unsupervised["removeGroupSupervisor"]["group"]["supervisors"],
        json!([])
    );

    let role = ok(
        &app,
        &owner,
        "mutation($s: ID!) { changeRole(staffId: $s, role: SUPERVISOR) { staff { role } } }",
        json!({ "s": hugo }),
    )
    .await;
    assert_eq!(role["changeRole"]["staff"]["role"], "SUPERVISOR");

    let granted = ok(&app, &owner, "mutation($s: ID!) { grantPermission(staffId: $s, permission: ENQUIRY_HISTORY) { staff { permissions } } }", json!({ "s": hugo })).await;
    assert_eq!(
        granted["grantPermission"]["staff"]["permissions"],
        json!(["ENQUIRY_HISTORY"])
    );

    let revoked = ok(&app, &owner, "mutation($s: ID!) { revokePermission(staffId: $s, permission: ENQUIRY_HISTORY) { staff { permissions } } }", json!({ "s": hugo })).await;
    assert_eq!(
        revoked["revokePermission"]["staff"]["permissions"],
        json!([])
    );

    let deactivated = ok(
        &app,
        &owner,
        "mutation($s: ID!) { deactivateStaff(staffId: $s) { staff { active } } }",
        json!({ "s": hugo }),
    )
    .await;
    assert_eq!(deactivated["deactivateStaff"]["staff"]["active"], false);
}

#[tokio::test]
async fn notifications_are_listed_and_marked_read() {
    let app = TestServer::spawn().await;
    let bob = app.token("agent 2");
    let listed = ok(&app, &bob, "{ notifications(first: 10) { unreadCount edges { node { id kind conversationId read } } } }", json!({})).await;
    let unread = listed["notifications"]["unreadCount"].as_u64().unwrap();
    assert!(unread > 0, "{listed:?}");
    let newest = listed["notifications"]["edges"][0]["node"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let marked = ok(
        &app,
        &bob,
        "mutation($n: ID!) { markNotificationsRead(upTo: $n) { unreadCount } }",
        json!({ "n": newest }),
    )
    .await;
    assert_eq!(marked["markNotificationsRead"]["unreadCount"], 0);
}

#[tokio::test]
async fn queries_answer_as_the_viewer_may_see() {
    let app = TestServer::spawn().await;
    let bob = app.token("agent 2");
    let data = ok(&app, &bob, "{ company { name settings { privateConversationsEnabled } } staff { name } groups { name } conversations { totalCount edges { cursor node { customerName } } } }", json!({})).await;
    assert_eq!(data["company"]["name"], "Acme Outdoor");
    // Bob sees Dana (queued, R6), Frankie (his, closed), Evan (round robin: Carol first).
    let names: Vec<&str> = data["conversations"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["customerName"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"Casey Customer"), "{names:?}");
    assert_eq!(data["conversations"]["totalCount"], names.len());

    let overview = ok(&app, &app.token("supervisor"), "query($g: ID!) { enquiryOverview(groupId: $g) { queued { count } handling { count items { customerName } } closed { count } } }", json!({ "g": SUPPORT })).await;
    assert_eq!(overview["enquiryOverview"]["handling"]["count"], 1);

    let audit = ok(&app, &app.token("owner"), "query($c: ID!) { auditTrail(conversationId: $c) { position eventType actor { kind } commandId } }", json!({ "c": CASEY })).await;
    assert_eq!(audit["auditTrail"][0]["eventType"], "ConversationOpened");
    let refused = app
        .staff(
            &bob,
            "query($c: ID!) { auditTrail(conversationId: $c) { position } }",
            json!({ "c": FRANKIE }),
        )
        .await;
    assert_eq!(refused.code(), Some("FORBIDDEN"));
    let _ = SALES;
}

#[tokio::test]
async fn customers_start_chat_and_never_see_private_messages() {
    let app = TestServer::spawn().await;
    let started = app
        .customer(
            None,
            "mutation($w: ID!, $g: ID!) { startConversation(widgetKey: $w, groupId: $g, customerName: \"Ivy\", message: \"Hello?\") { token conversation { status messages { edges { node { author body } } } } } }",
            json!({ "w": app.demo().widget_key.to_string(), "g": SUPPORT }),
        )
        .await;
    assert!(started.code().is_none(), "{:?}", started.body);
    let token = started.data()["startConversation"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let sent = app
        .customer(
            Some(&token),
            "mutation { sendMessage(body: \"Anyone?\") { message { author body } } }",
            json!({}),
        )
        .await;
    assert_eq!(sent.data()["sendMessage"]["message"]["author"], "CUSTOMER");
    let own = app
        .customer(
            Some(&app.demo().customer.clone()),
            "{ conversation { messages { edges { node { body authorName } } } } }",
            json!({}),
        )
        .await;
    let text = own.body.to_string();
    assert!(text.contains("Leeds"), "{text}");
    assert!(
        !text.contains("warranty"),
        "a private message leaked: {text}"
    );
    let closed = app
        .customer(
            Some(&token),
            "mutation { closeConversation { conversation { status } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        closed.data()["closeConversation"]["conversation"]["status"],
        "CLOSED"
    );
    let none = app
        .customer(None, "{ conversation { id } }", json!({}))
        .await;
    assert_eq!(none.code(), Some("UNAUTHENTICATED"));
}

/// SPEC section 12: erasure is for the owner and admins; every refusal
/// appends nothing. (What a successful erasure does: `erasure.rs`.)
#[tokio::test]
async fn erase_conversation_refusals() {
    let app = TestServer::spawn().await;
    let owner = app.token("owner");
    let admin = app.token("admin");
    let supervisor = app.token("supervisor");
    let alice = app.token("agent 1");
    let opened = ok(
        &app,
        &alice,
        "mutation($g: ID!) { openConversation(groupId: $g, customerName: \"Erin Erasable\", channel: CALL) { conversationId } }",
        json!({ "g": SUPPORT }),
    )
    .await;
    let id = opened["openConversation"]["conversationId"]
        .as_str()
        .unwrap()
        .to_owned();
    let erase = "mutation($c: ID!, $r: String!) { eraseConversation(conversationId: $c, reason: $r, idempotencyKey: \"erase-1\") { conversationId } }";
    let operator = app.tokens.mint_operator().unwrap().token;
    let (status, head) = app.get_as("/log/head", Some(&operator)).await.parts();
    assert_eq!(status, 200);

    for token in [&alice, &supervisor] {
        let reply = app
            .staff(token, erase, json!({ "c": id, "r": "customer asked" }))
            .await;
        assert_eq!(reply.code(), Some("FORBIDDEN"), "{:?}", reply.body);
    }
    let missing = app
        .staff(
            &owner,
            erase,
            json!({ "c": "0190f0d2-0000-7000-8000-000000000000", "r": "customer asked" }),
        )
        .await;
    assert_eq!(missing.code(), Some("NOT_FOUND"), "{:?}", missing.body);
    let no_reason = app
        .staff(&owner, erase, json!({ "c": id, "r": "  " }))
        .await;
    assert_eq!(no_reason.code(), Some("VALIDATION"));
    let admin_elsewhere = app.staff(&admin, erase, json!({ "c": id, "r": "" })).await;
    assert_eq!(admin_elsewhere.code(), Some("VALIDATION"));
    assert_eq!(
        app.get_as("/log/head", Some(&operator)).await.parts(),
        (200, head),
        "nothing appended"
    );
    // The conversation is whole.
    let seen = ok(
        &app,
        &owner,
        "query($c: ID!) { conversation(id: $c) { customerName } }",
        json!({ "c": id }),
    )
    .await;
    assert_eq!(seen["conversation"]["customerName"], "Erin Erasable");
}
