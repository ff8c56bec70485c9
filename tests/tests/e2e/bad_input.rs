//! SPEC section 8, bad input: every malformed, oversized, overly deep or
//! costly, batched or badly authenticated request gets its code, and the log
//! is unchanged (its head before each request equals its head after).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::support::*;

const STAFF: &str = "/graphql";
const CUSTOMER: &str = "/customer/graphql";

/// One bad request and the answer it must get.
struct Bad {
    name: &'static str,
    path: &'static str,
    /// The `Authorization` header value.
    authorization: Option<String>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

fn request(query: &str, variables: Value) -> Vec<u8> {
    json!({ "query": query, "variables": variables })
        .to_string()
        .into_bytes()
}

fn bearer(token: &str) -> Option<String> {
    Some(format!("Bearer {token}"))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token as the server would sign it, with these claims and key.
fn forge(secret: &str, sub: &str, cid: &str, audience: &str, exp: u64) -> String {
    let claims = json!({
        "sub": sub, "cid": cid, "aud": audience, "iss": "backchannel",
        "iat": exp.saturating_sub(3600), "exp": exp,
    });
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A query nested deeper than the limit (15), through introspection's cycles.
fn deep_query() -> String {
    let mut selection = "name".to_owned();
    for _ in 0..7 {
        selection = format!("type {{ fields {{ {selection} }} }}");
    }
    format!("{{ __schema {{ queryType {{ fields {{ {selection} }} }} }} }}")
}

/// `count` copies of `field`, aliased.
fn aliases(count: usize, field: &str) -> String {
    (0..count).map(|i| format!("a{i}: {field} ")).collect()
}

#[tokio::test]
async fn bad_input_gets_its_code_and_appends_nothing() {
    let (mut server, created) = TestServer::with_companies(&["Acme"]).await;
    let acme = Company::new(&server, &created[0]);
    let company = created[0].company.to_string();
    let a = acme.add_staff("Alice Agent", "AGENT").await;
    let support = acme.add_group("Support", "BROADCAST", &[&a]).await;
    let casey = acme.start(&support, "Casey", "CHAT", "Hello").await;
    let c = casey.conversation.clone();
    ok(&server, &a, ASSIGN, json!({ "c": c, "s": a.id })).await;

    let send = |body: &str| request(SEND, json!({ "c": c, "b": body, "v": "PUBLIC" }));
    let customer_send = |body: &str| {
        request(
            "mutation($b: String!) { sendMessage(body: $b) { message { id } } }",
            json!({ "b": body }),
        )
    };
    let huge = "x".repeat(70 * 1024);
    let too_long = "y".repeat(10_001);
    let month_ago = now() - 31 * 24 * 3600;
    let staff_tok = bearer(&a.token);
    let customer_tok = bearer(&casey.token);

    let cases = vec![
        // Bodies are bounded (64 KiB).
        Bad {
            name: "oversized staff body",
            path: STAFF,
            authorization: staff_tok.clone(),
            body: send(&huge),
            status: 413,
            code: "PAYLOAD_TOO_LARGE",
        },
        Bad {
            name: "oversized customer body",
            path: CUSTOMER,
            authorization: customer_tok.clone(),
            body: customer_send(&huge),
            status: 413,
            code: "PAYLOAD_TOO_LARGE",
        },
        // Depth and complexity.
        Bad {
            name: "deep query",
            path: STAFF,
            authorization: staff_tok.clone(),
            body: request(&deep_query(), json!({})),
            status: 200,
            code: "QUERY_TOO_COMPLEX",
        },
        Bad {
            name: "costly pages",
            path: STAFF,
            authorization: staff_tok.clone(),
            body: request(
                &format!(
                    "{{ {} }}",
                    aliases(
                        3,
                        "conversations(first: 100) { edges { node { id customerName status channel private openedAt updatedAt } } }"
                    )
                ),
                json!({}),
            ),
            status: 200,
            code: "QUERY_TOO_COMPLEX",
        },
        Bad {
            name: "aliased queries",
            path: STAFF,
            authorization: staff_tok.clone(),
            body: request(&format!("{{ {} }}", aliases(1100, "me { id }")), json!({})),
            status: 200,
            code: "QUERY_TOO_COMPLEX",
        },
        Bad {
            name: "aliased mutations",
            path: STAFF,
            authorization: staff_tok.clone(),
            body: request(
                &format!(
                    "mutation($c: ID!) {{ {} }}",
                    aliases(
                        200,
                        "sendMessage(conversationId: $c, body: \"spam\", visibility: PUBLIC) { message { __typename ... on PublicMessage { id body at } } }"
                    )
                ),
                json!({ "c": c }),
            ),
            status: 200,
            code: "QUERY_TOO_COMPLEX",
        },
        Bad {
            name: "aliased customer queries",
            path: CUSTOMER,
            authorization: customer_tok.clone(),
            body: request(
                &format!(
                    "{{ {} }}",
                    aliases(
                        450,
                        "conversation { id messages { edges { node { id body author at } } } }"
                    )
                ),
                json!({}),
            ),
            status: 200,
            code: "QUERY_TOO_COMPLEX",
        },
        // Batches are refused.
        Bad {
            name: "batched queries",
            path: STAFF,
            authorization: staff_tok.clone(),
            body: br#"[{"query":"{ me { id } }"},{"query":"{ me { id } }"}]"#.to_vec(),
            status: 400,
            code: "VALIDATION",
        },
        Bad {
            name: "batched mutations",
            path: STAFF,
            authorization: staff_tok.clone(),
            body: format!(
                "[{}, {}]",
                String::from_utf8(send("one")).unwrap(),
                String::from_utf8(send("two")).unwrap()
            )
            .into_bytes(),
            status: 400,
            code: "VALIDATION",
        },
        Bad {
            name: "batched customer mutations",
            path: CUSTOMER,
            authorization: customer_tok.clone(),
            body: format!("  [{}]", String::from_utf8(customer_send("one")).unwrap()).into_bytes(),
            status: 400,
            code: "VALIDATION",
        },
        // Malformed documents, bodies, ids, cursors, enums, page sizes, keys.
        Bad {
            name: "not JSON",
            path: STAFF,
            authorization: staff_tok.clone(),
            body: b"query { me { id } }".to_vec(),
            status: 400,
            code: "VALIDATION",
        },
        Bad {
            name: "syntax error",
            path: STAFF,
            authorization: staff_tok.clone(),
            body: request("mutation { sendMessage(", json!({})),
            status: 200,
            code: "VALIDATION",
        },
        Bad {
            name: "unknown field",
            path: STAFF,
            authorization: staff_tok.clone(),
            body: request("mutation { dropEverything { id } }", json!({})),
            status: 200,
            code: "VALIDATION",
        },
        Bad {
            name: "malformed conversation id",
            path: STAFF,
            authorization: staff_tok.clone(),
            body: request(SEND, json!({ "c": "42", "b": "hi", "v": "PUBLIC" })),
            status: 200,
            code: "VALIDATION",
        },
        Bad {
            name: "malformed assignee id",
            path: STAFF,
            authorization: staff_tok.clone(),
            body: request(ASSIGN, json!({ "c": c, "s": "alice" })),
            status: 200,
            code: "VALIDATION",
        },
        Bad {
            name: "malformed lookup id",
            path: STAFF,
            authorization: staff_tok.clone(),
            body: request(CONVERSATION, json!({ "id": "../../etc/passwd" })),
            status: 200,
            code: "VALIDATION",
        },
        Bad {
            name: "malformed widget key",
            path: CUSTOMER,
            authorization: None,
            body: request(
                "mutation($g: ID!) { startConversation(widgetKey: \"nope\", groupId: $g, customerName: \"Eve\") { token } }",
                json!({ "g": support }),
            ),
            status: 200,
            code: "VALIDATION",
        },
        Bad {
            name: "garbage cursor",
            path: STAFF,
            authorization: staff_tok.clone(),
            body: request(
                "{ conversations(after: \"%%%\") { totalCount } }",
                json!({}),
            ),
            status: 200,
            code: "VALIDATION",
        },
        Bad {
            name: "malformed notification id",
            path: STAFF,
            authorization: staff_tok.clone(),
            body: request(
                "mutation { markNotificationsRead(upTo: \"latest\") { unreadCount } }",
                json!({}),
            ),
            status: 200,
            code: "VALIDATION",
        },
        Bad {
            name: "unknown visibility",
            path: STAFF,
            authorization: staff_tok.clone(),
            body: request(SEND, json!({ "c": c, "b": "hi", "v": "SECRET" })),
            status: 200,
            code: "VALIDATION",
        },
        Bad {
            name: "page of 101",
            path: STAFF,
            authorization: staff_tok.clone(),
            body: request("{ notifications(first: 101) { unreadCount } }", json!({})),
            status: 200,
            code: "VALIDATION",
        },
        Bad {
            name: "page of 0",
            path: STAFF,
            authorization: staff_tok.clone(),
            body: request("{ conversations(first: 0) { totalCount } }", json!({})),
            status: 200,
            code: "VALIDATION",
        },
        Bad {
            name: "idempotency key of 201 bytes",
            path: STAFF,
            authorization: staff_tok.clone(),
            body: request(
                SEND,
                json!({ "c": c, "b": "hi", "v": "PUBLIC", "k": "k".repeat(201) }),
            ),
            status: 200,
            code: "VALIDATION",
        },
        Bad {
            name: "empty idempotency key",
            path: STAFF,
            authorization: staff_tok.clone(),
            body: request(SEND, json!({ "c": c, "b": "hi", "v": "PUBLIC", "k": "" })),
            status: 200,
            code: "VALIDATION",
        },
        // Tokens.
        Bad {
            name: "no token",
            path: STAFF,
            authorization: None,
            body: send("hi"),
            status: 200,
            code: "UNAUTHENTICATED",
        },
        Bad {
            name: "not a JWT",
            path: STAFF,
            authorization: bearer("not-a-jwt"),
            body: send("hi"),
            status: 200,
            code: "UNAUTHENTICATED",
        },
        Bad {
            name: "not a bearer header",
            path: STAFF,
            authorization: Some(format!("Basic {}", a.token)),
            body: send("hi"),
            status: 200,
            code: "UNAUTHENTICATED",
        },
        Bad {
            name: "signed with another key",
            path: STAFF,
            authorization: bearer(&forge(
                "another-secret-another-secret-another",
                &a.id,
                &company,
                "backchannel-staff",
                now() + 3600,
            )),
            body: send("hi"),
            status: 200,
            code: "UNAUTHENTICATED",
        },
        Bad {
            name: "expired staff token",
            path: STAFF,
            authorization: bearer(&forge(
                SECRET,
                &a.id,
                &company,
                "backchannel-staff",
                month_ago,
            )),
            body: send("hi"),
            status: 200,
            code: "UNAUTHENTICATED",
        },
        Bad {
            name: "expired customer token",
            path: CUSTOMER,
            authorization: bearer(&forge(
                SECRET,
                &c,
                &company,
                "backchannel-customer",
                month_ago,
            )),
            body: customer_send("hi"),
            status: 200,
            code: "UNAUTHENTICATED",
        },
        Bad {
            name: "staff token of an unknown staff member",
            path: STAFF,
            authorization: bearer(&forge(
                SECRET,
                "01900000-0000-7000-8000-0000000fffff",
                &company,
                "backchannel-staff",
                now() + 3600,
            )),
            body: send("hi"),
            status: 200,
            code: "UNAUTHENTICATED",
        },
        Bad {
            name: "staff token naming another company",
            path: STAFF,
            authorization: bearer(&forge(
                SECRET,
                &a.id,
                "01900000-0000-7000-8000-0000000eeeee",
                "backchannel-staff",
                now() + 3600,
            )),
            body: send("hi"),
            status: 200,
            code: "UNAUTHENTICATED",
        },
        Bad {
            name: "customer token on the staff endpoint",
            path: STAFF,
            authorization: customer_tok.clone(),
            body: send("hi"),
            status: 200,
            code: "UNAUTHENTICATED",
        },
        Bad {
            name: "staff token on the customer endpoint",
            path: CUSTOMER,
            authorization: staff_tok.clone(),
            body: customer_send("hi"),
            status: 200,
            code: "UNAUTHENTICATED",
        },
        // Message bodies: non-empty after trimming, at most 10,000 characters.
        Bad {
            name: "empty staff message",
            path: STAFF,
            authorization: staff_tok.clone(),
            body: send(""),
            status: 200,
            code: "VALIDATION",
        },
        Bad {
            name: "blank staff message",
            path: STAFF,
            authorization: staff_tok.clone(),
            body: send(" \n\t "),
            status: 200,
            code: "VALIDATION",
        },
        Bad {
            name: "10,001-character staff message",
            path: STAFF,
            authorization: staff_tok.clone(),
            body: send(&too_long),
            status: 200,
            code: "VALIDATION",
        },
        Bad {
            name: "10,001-character private message",
            path: STAFF,
            authorization: staff_tok.clone(),
            body: request(SEND, json!({ "c": c, "b": too_long, "v": "PRIVATE" })),
            status: 200,
            code: "VALIDATION",
        },
        Bad {
            name: "empty customer message",
            path: CUSTOMER,
            authorization: customer_tok.clone(),
            body: customer_send(""),
            status: 200,
            code: "VALIDATION",
        },
        Bad {
            name: "10,001-character customer message",
            path: CUSTOMER,
            authorization: customer_tok.clone(),
            body: customer_send(&too_long),
            status: 200,
            code: "VALIDATION",
        },
        Bad {
            name: "10,001-character first message",
            path: CUSTOMER,
            authorization: None,
            body: request(
                "mutation($k: ID!, $g: ID!, $m: String) { startConversation(widgetKey: $k, groupId: $g, customerName: \"Eve\", message: $m) { token } }",
                json!({ "k": acme.widget_key, "g": support, "m": too_long }),
            ),
            status: 200,
            code: "VALIDATION",
        },
        Bad {
            name: "201-character customer name",
            path: CUSTOMER,
            authorization: None,
            body: request(
                "mutation($k: ID!, $g: ID!, $n: String!) { startConversation(widgetKey: $k, groupId: $g, customerName: $n) { token } }",
                json!({ "k": acme.widget_key, "g": support, "n": "n".repeat(201) }),
            ),
            status: 200,
            code: "VALIDATION",
        },
        Bad {
            name: "201-character group name",
            path: STAFF,
            authorization: bearer(&acme.owner.token),
            body: request(
                "mutation($n: String!) { createGroup(name: $n, routing: BROADCAST) { group { id } } }",
                json!({ "n": "g".repeat(201) }),
            ),
            status: 200,
            code: "VALIDATION",
        },
    ];

    let start = server.log_head();
    let mut failures = Vec::new();
    for bad in &cases {
        let head = server.log_head();
        let reply = server
            .post_as(bad.path, bad.authorization.as_deref(), &bad.body)
            .await;
        let appended = server.log_head() - head;
        if reply.status != bad.status || reply.code() != Some(bad.code) || appended != 0 {
            failures.push(format!(
                "{}: expected {} {}, got {} {:?} ({appended} events appended): {:.300}",
                bad.name,
                bad.status,
                bad.code,
                reply.status,
                reply.code(),
                reply.text
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} bad requests were answered wrongly:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(server.log_head(), start, "the log is unchanged");

    // The boundaries themselves are fine: 10,000 characters (of two bytes
    // each: characters are counted, not bytes) append exactly one event.
    let head = server.log_head();
    ok(
        &server,
        &a,
        SEND,
        json!({ "c": c, "b": "é".repeat(10_000), "v": "PUBLIC" }),
    )
    .await;
    assert_eq!(server.log_head(), head + 1);
    server.stop().await;
}

#[tokio::test]
async fn bad_subscriptions_get_their_code() {
    let (mut server, created) = TestServer::with_companies(&["Acme"]).await;
    let acme = Company::new(&server, &created[0]);
    let a = acme.add_staff("Alice Agent", "AGENT").await;
    let support = acme.add_group("Support", "BROADCAST", &[&a]).await;
    let casey = acme.start(&support, "Casey", "CHAT", "Hello").await;
    let c = casey.conversation.as_str();
    let expired = forge(
        SECRET,
        &a.id,
        &created[0].company.to_string(),
        "backchannel-staff",
        now() - 31 * 24 * 3600,
    );
    let costly = format!(
        "subscription($c: ID!) {{ conversationEvents(conversationId: $c) {{ ... on PublicMessage {{ {} }} }} }}",
        aliases(400, "author { id name role permissions active }")
    );
    let cases: [(&str, &str, String, Value, &str); 6] = [
        (
            "bad token",
            "not-a-jwt",
            EVENTS_LIVE.to_owned(),
            json!({ "c": c }),
            "4403",
        ),
        (
            "expired token",
            &expired,
            EVENTS_LIVE.to_owned(),
            json!({ "c": c }),
            "4403",
        ),
        (
            "customer token",
            &casey.token,
            NOTIFICATIONS_LIVE.to_owned(),
            json!({}),
            "4403",
        ),
        (
            "malformed id",
            &a.token,
            EVENTS_LIVE.to_owned(),
            json!({ "c": "42" }),
            "VALIDATION",
        ),
        (
            "too costly",
            &a.token,
            costly,
            json!({ "c": c }),
            "QUERY_TOO_COMPLEX",
        ),
        (
            "unknown field",
            &a.token,
            "subscription { everything { id } }".to_owned(),
            json!({}),
            "VALIDATION",
        ),
    ];
    let mut failures = Vec::new();
    for (name, token, query, variables, code) in cases {
        let mut subscription = server.subscribe_staff(token, &query, variables).await;
        let frame = subscription.next_within(Duration::from_secs(5)).await;
        // A token is refused at `connection_init`: the socket closes with 4403.
        let got = match &frame {
            Some(Frame::Closed(close)) => Some(close.to_string()),
            other => other.as_ref().and_then(Frame::code).map(str::to_owned),
        };
        if got.as_deref() != Some(code) {
            failures.push(format!("{name}: expected {code}, got {frame:?}"));
        }
    }
    let mut customer = server
        .subscribe_customer("not-a-jwt", CUSTOMER_MESSAGES_LIVE, json!({}))
        .await;
    let frame = customer.next().await;
    if frame != Frame::Closed(4403) {
        failures.push(format!("customer bad token: expected 4403, got {frame:?}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    server.stop().await;
}
