//! SPEC glossary "company": nothing crosses companies. Every id of another
//! company, wherever a request names one, answers `NOT_FOUND` (as an id that
//! does not exist would) and appends nothing.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn ids_of_another_company_are_not_found_everywhere() {
    let (mut server, created) = TestServer::with_companies(&["Acme", "Globex"]).await;
    let acme = Company::new(&server, &created[0]);
    let globex = Company::new(&server, &created[1]);
    let a = acme.add_staff("Alice Agent", "AGENT").await;
    let support = acme.add_group("Support", "BROADCAST", &[&a]).await;
    let casey = acme.start(&support, "Casey", "CHAT", "Hello").await;
    ok(
        &server,
        &a,
        ASSIGN,
        json!({ "c": casey.conversation, "s": a.id }),
    )
    .await;
    let xavier = globex.add_staff("Xavier Agent", "AGENT").await;
    let elsewhere = globex.add_group("Help", "BROADCAST", &[&xavier]).await;
    let gina = globex.start(&elsewhere, "Gina", "CHAT", "Hi").await;

    let globex_id = ok(&server, &xavier, "{ company { id } }", json!({})).await["company"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let casey_token = Member {
        id: casey.conversation.clone(),
        token: casey.token.clone(),
    };
    let owner = &acme.owner;
    let cases = [
        // A customer of Acme's widget naming Globex's group.
        (
            "startConversation in another company's group",
            None,
            "/customer/graphql",
            "mutation($k: ID!, $g: ID!) { startConversation(widgetKey: $k, groupId: $g, customerName: \"Eve\") { token } }",
            json!({ "k": acme.widget_key, "g": elsewhere }),
        ),
        (
            "openConversation in another company's group",
            Some(owner),
            "/graphql",
            "mutation($g: ID!) { openConversation(groupId: $g, customerName: \"Eve\", channel: CALL) { conversationId } }",
            json!({ "g": elsewhere }),
        ),
        (
            "assign to another company's staff",
            Some(owner),
            "/graphql",
            ASSIGN,
            json!({ "c": casey.conversation, "s": xavier.id }),
        ),
        (
            "invite another company's staff",
            Some(&a),
            "/graphql",
            INVITE,
            json!({ "c": casey.conversation, "s": xavier.id }),
        ),
        (
            "add another company's staff to a group",
            Some(owner),
            "/graphql",
            "mutation($g: ID!, $s: ID!) { addGroupMember(groupId: $g, staffId: $s) { group { id } } }",
            json!({ "g": support, "s": xavier.id }),
        ),
        (
            "add a member to another company's group",
            Some(owner),
            "/graphql",
            "mutation($g: ID!, $s: ID!) { addGroupMember(groupId: $g, staffId: $s) { group { id } } }",
            json!({ "g": elsewhere, "s": a.id }),
        ),
        (
            "rename another company's group",
            Some(owner),
            "/graphql",
            "mutation($g: ID!) { renameGroup(groupId: $g, name: \"Mine\") { group { id } } }",
            json!({ "g": elsewhere }),
        ),
        (
            "deactivate another company's staff",
            Some(owner),
            "/graphql",
            "mutation($s: ID!) { deactivateStaff(staffId: $s) { staff { id } } }",
            json!({ "s": xavier.id }),
        ),
        (
            "change another company's staff role",
            Some(owner),
            "/graphql",
            "mutation($s: ID!) { changeRole(staffId: $s, role: SUPERVISOR) { staff { id } } }",
            json!({ "s": xavier.id }),
        ),
        (
            "grant another company's staff",
            Some(owner),
            "/graphql",
            "mutation($s: ID!) { grantPermission(staffId: $s, permission: ENQUIRY_HISTORY) { staff { id } } }",
            json!({ "s": xavier.id }),
        ),
        (
            "token for another company's staff",
            Some(owner),
            "/graphql",
            "mutation($s: ID!) { issueStaffToken(staffId: $s) { token } }",
            json!({ "s": xavier.id }),
        ),
        (
            "whisper in another company's conversation",
            Some(owner),
            "/graphql",
            SEND,
            json!({ "c": gina.conversation, "b": "hi", "v": "PRIVATE" }),
        ),
        (
            "close another company's conversation",
            Some(owner),
            "/graphql",
            CLOSE,
            json!({ "c": gina.conversation }),
        ),
        (
            "erase another company's conversation",
            Some(owner),
            "/graphql",
            "mutation($c: ID!) { eraseConversation(conversationId: $c, reason: \"asked\") { conversationId } }",
            json!({ "c": gina.conversation }),
        ),
        (
            "another company's overview",
            Some(owner),
            "/graphql",
            OVERVIEW,
            json!({ "g": elsewhere }),
        ),
        (
            "another company's audit trail",
            Some(owner),
            "/graphql",
            "query($c: ID!) { auditTrail(conversationId: $c) { eventType } }",
            json!({ "c": gina.conversation }),
        ),
        (
            "another company's conversation's access log",
            Some(owner),
            "/graphql",
            "query($c: ID) { accessLog(conversationId: $c) { edges { cursor } } }",
            json!({ "c": gina.conversation }),
        ),
        (
            "another company's staff member's access log",
            Some(owner),
            "/graphql",
            "query($s: ID) { accessLog(staffId: $s) { edges { cursor } } }",
            json!({ "s": xavier.id }),
        ),
        // `node(id)`: another path to the same data, the same answer.
        (
            "another company's conversation as a node",
            Some(owner),
            "/graphql",
            NODE,
            json!({ "id": gina.conversation }),
        ),
        (
            "another company's staff member as a node",
            Some(owner),
            "/graphql",
            NODE,
            json!({ "id": xavier.id }),
        ),
        (
            "another company's group as a node",
            Some(owner),
            "/graphql",
            NODE,
            json!({ "id": elsewhere }),
        ),
        (
            "another company as a node",
            Some(owner),
            "/graphql",
            NODE,
            json!({ "id": globex_id }),
        ),
        (
            "another company's conversation as a customer's node",
            Some(&casey_token),
            "/customer/graphql",
            CUSTOMER_NODE,
            json!({ "id": gina.conversation }),
        ),
        (
            "another company's staff member as a customer's node",
            Some(&casey_token),
            "/customer/graphql",
            CUSTOMER_NODE,
            json!({ "id": xavier.id }),
        ),
    ];
    let mut failures = Vec::new();
    for (name, who, path, query, variables) in cases {
        let head = server.log_head();
        let body = json!({ "query": query, "variables": variables }).to_string();
        let reply = server
            .post(path, who.map(|m| m.token.as_str()), body.as_bytes())
            .await;
        let appended = server.log_head() - head;
        if reply.code() != Some("NOT_FOUND") || appended != 0 {
            failures.push(format!(
                "{name}: expected NOT_FOUND, got {:?} ({appended} events appended): {:.300}",
                reply.code(),
                reply.text
            ));
        }
    }
    // No oracle: `node` says the same of another company's objects as of an
    // id nobody holds.
    let message = |reply: &Reply| reply.body["errors"][0]["message"].clone();
    let nobody = json!({ "id": "0190a0c0-0000-7000-8000-000000000000" });
    let unknown = message(&server.staff(&owner.token, NODE, nobody.clone()).await);
    assert_eq!(unknown, json!("object not found"));
    for id in [&gina.conversation, &xavier.id, &elsewhere, &globex_id] {
        let reply = server.staff(&owner.token, NODE, json!({ "id": id })).await;
        assert_eq!(message(&reply), unknown, "{}", reply.text);
    }
    let customer_unknown = server
        .customer(Some(&casey.token), CUSTOMER_NODE, nobody)
        .await;
    assert_eq!(
        message(&customer_unknown),
        unknown,
        "{}",
        customer_unknown.text
    );
    // Globex's own view is untouched by all of it.
    let list = ok(&server, &xavier, LIST, json!({})).await;
    assert_eq!(listed(&list).1, 1, "{list}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    server.stop().await;
}
