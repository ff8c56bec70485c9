//! Random and mutated GraphQL requests against both endpoints of one real
//! server over HTTP (SPEC section 8: no request can crash or stall it).
//!
//! Each case is a document (a valid one truncated or with bytes spliced in;
//! deep nesting of every bracket; fragment graphs, cyclic or exploding;
//! aliases; huge literals; odd unicode) with variables (deep or odd JSON),
//! sent as JSON or as a broken body, anonymously or with a good or bad token.
//! Every answer must arrive within a generous timeout, be JSON, and carry
//! `extensions.code` on each error; the log may grow only by a mutation that
//! answered data. The server must answer an ordinary query at the end.
//!
//! 200 cases by default; `BACKCHANNEL_FUZZ_CASES=20000` runs longer.

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::{Value, json};

use backchannel_domain::events::StreamId;
use backchannel_testkit::demo::{CASEY, OWNER, SUPPORT};
use backchannel_testkit::*;

const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Valid documents of both schemas, the seeds of mutation.
const STAFF_SEEDS: &[&str] = &[
    "{ me { id name role } }",
    "query($f: ConversationFilter, $n: Int) { conversations(filter: $f, first: $n) { edges { cursor node { id status channel assignee { id } } } pageInfo { hasNextPage endCursor } } }",
    "query($c: ID!) { conversation(id: $c) { id customerName timeline(first: 10) { edges { node { __typename } } } } }",
    "query($g: ID!) { enquiryOverview(groupId: $g, first: 5) { queued { count items { id } } handling { count } closed { count } } }",
    "{ a: me { id } b: me { ...F } } fragment F on Staff { id name }",
    "mutation($u: ID!) { markNotificationsRead(upTo: $u) { unreadCount } }",
    "mutation($c: ID!, $b: String!) { sendMessage(conversationId: $c, body: $b, visibility: PRIVATE) { message { __typename } } }",
    "{ __schema { types { name kind fields { name type { name ofType { name } } } } } }",
];

const CUSTOMER_SEEDS: &[&str] = &[
    "{ conversation { id status messages(first: 5) { edges { node { body author } } } } }",
    "mutation($w: ID!, $g: ID!, $n: String!) { startConversation(widgetKey: $w, groupId: $g, customerName: $n) { token conversation { id } } }",
    "mutation($b: String!) { sendMessage(body: $b) { message { id } } }",
    "{ __typename }",
];

/// Pieces spliced into documents: GraphQL punctuation, keywords, odd unicode.
const PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    "...",
    "... on Query",
    ":",
    "@include(if: true)",
    "$",
    "!",
    "\"",
    "\"\"\"",
    "\\",
    "#",
    "\n",
    "\r",
    ",",
    "=",
    "|",
    "&",
    "query",
    "mutation",
    "subscription",
    "fragment F on Query",
    "...F",
    "on",
    "__typename",
    "null",
    "true",
    "-1e999",
    "99999999999999999999999999",
    "é",
    "😀",
    "\u{0}",
    "\u{feff}",
    "\u{202e}",
    "\u{ffff}",
    "\u{10ffff}",
    "\\u0000",
    "\\uD800",
    "a:",
    "me",
    "conversations",
];

fn nested(open: &str, inner: &str, close: &str, depth: usize) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

/// A document built to be costly: deep brackets, fragment graphs, aliases,
/// huge literals.
fn costly_document() -> BoxedStrategy<String> {
    prop_oneof![
        // Deep nesting of each kind, in an argument or as selections.
        (0usize..3000, 0usize..3).prop_map(|(depth, kind)| match kind {
            0 => format!(
                "{{ conversations(filter: {{ status: {} }}) {{ edges {{ node {{ id }} }} }} }}",
                nested("[", "QUEUED", "]", depth)
            ),
            1 => format!(
                "{{ conversations(filter: {}) {{ edges {{ node {{ id }} }} }} }}",
                nested("{status: ", "QUEUED", "}", depth)
            ),
            _ => format!("{}{}", "{ me ".repeat(depth), "}".repeat(depth)),
        }),
        // A fragment graph: each fragment spreads some others, maybe twice,
        // maybe in a cycle.
        (
            1usize..40,
            prop::collection::vec((0usize..40, 1usize..3), 0..80)
        )
            .prop_map(|(n, edges)| {
                let mut bodies: Vec<String> = vec!["__typename ".to_owned(); n];
                for (i, (to, times)) in edges.into_iter().enumerate() {
                    let from = i % n;
                    let to = to % n;
                    for _ in 0..times {
                        bodies[from].push_str(&format!("...F{to} "));
                    }
                }
                let mut query = "query { ...F0 }".to_owned();
                for (i, body) in bodies.iter().enumerate() {
                    query.push_str(&format!(" fragment F{i} on Query {{ {body} }}"));
                }
                query
            }),
        // The exploding chain: F(i) spreads F(i+1) twice.
        (1usize..40).prop_map(|levels| {
            let mut query = "{ ...F0 }".to_owned();
            for i in 0..levels {
                query.push_str(&format!(
                    " fragment F{i} on Query {{ ...F{n} ...F{n} }}",
                    n = i + 1
                ));
            }
            query.push_str(&format!(" fragment F{levels} on Query {{ __typename }}"));
            query
        }),
        // Many aliases of one field.
        (1usize..3000).prop_map(|n| {
            let fields: String = (0..n).map(|i| format!("a{i}: __typename ")).collect();
            format!("{{ {fields} }}")
        }),
        // A huge literal.
        (1usize..60_000, any::<bool>()).prop_map(|(len, string)| if string {
            format!(
                "{{ conversations(filter: {{ status: \"{}\" }}) {{ edges {{ node {{ id }} }} }} }}",
                "x".repeat(len)
            )
        } else {
            format!(
                "{{ conversations(first: {}) {{ edges {{ node {{ id }} }} }} }}",
                "9".repeat(len)
            )
        }),
    ]
    .boxed()
}

/// A seed document, truncated and/or with pieces spliced in.
fn mutated_document(seeds: &'static [&'static str]) -> BoxedStrategy<String> {
    (
        prop::sample::select(seeds),
        prop::collection::vec(
            (any::<prop::sample::Index>(), prop::sample::select(PIECES)),
            0..6,
        ),
        prop::option::of(any::<prop::sample::Index>()),
    )
        .prop_map(|(seed, splices, truncate)| {
            let mut doc: Vec<char> = seed.chars().collect();
            for (at, piece) in splices {
                let at = at.index(doc.len() + 1);
                doc.splice(at..at, piece.chars());
            }
            if let Some(at) = truncate {
                doc.truncate(at.index(doc.len() + 1));
            }
            doc.into_iter().collect()
        })
        .boxed()
}

/// Variables: the ones the seeds use, odd strings, or deep JSON.
fn variables() -> BoxedStrategy<Value> {
    let odd = prop_oneof![
        Just(String::new()),
        "[a-z]{1,12}",
        "\\PC{0,40}",
        Just("\u{0}\u{feff}\u{202e}😀".to_owned()),
        (1usize..20_000).prop_map(|n| "é".repeat(n)),
    ];
    prop_oneof![
        odd.prop_map(|s| json!({ "b": s, "n": "Ivy", "u": "1", "c": CASEY, "g": SUPPORT, "w": s })),
        (1usize..200, any::<bool>()).prop_map(|(depth, list)| {
            let mut v = json!("QUEUED");
            for _ in 0..depth {
                v = if list {
                    json!([v])
                } else {
                    json!({ "status": v })
                };
            }
            json!({ "f": v })
        }),
        Just(json!({ "n": 101, "f": { "status": "NOPE" } })),
        Just(Value::Null),
    ]
    .boxed()
}

#[derive(Debug, Clone)]
enum Caller {
    Anonymous,
    Owner,
    BadToken,
}

#[derive(Debug, Clone)]
struct Case {
    customer: bool,
    caller: Caller,
    document: String,
    variables: Value,
    /// Cut the JSON body short at this fraction (per mille), or send it whole.
    cut_body: Option<u16>,
}

fn any_case() -> impl Strategy<Value = Case> {
    let document = |customer: bool| {
        let seeds = if customer {
            CUSTOMER_SEEDS
        } else {
            STAFF_SEEDS
        };
        prop_oneof![
            3 => mutated_document(seeds),
            2 => costly_document(),
        ]
    };
    any::<bool>()
        .prop_flat_map(move |customer| {
            (
                Just(customer),
                prop_oneof![
                    Just(Caller::Anonymous),
                    Just(Caller::Owner),
                    Just(Caller::BadToken)
                ],
                document(customer),
                variables(),
                prop::option::weighted(0.1, 0u16..1000),
            )
        })
        .prop_map(|(customer, caller, document, variables, cut_body)| Case {
            customer,
            caller,
            document,
            variables,
            cut_body,
        })
}

/// Checks one answer: JSON, and every error carries a code.
fn check_answer(reply: &Reply) -> Result<(), TestCaseError> {
    let body = &reply.body;
    prop_assert!(
        body.is_object(),
        "not a JSON object (status {}): {body}",
        reply.status
    );
    match body.get("errors") {
        Some(Value::Array(errors)) => {
            prop_assert!(!errors.is_empty());
            for error in errors {
                prop_assert!(
                    error["extensions"]["code"].is_string(),
                    "an error without a code: {error}"
                );
            }
        }
        Some(other) => prop_assert!(false, "errors is not a list: {other}"),
        None => prop_assert!(
            body.get("data").is_some(),
            "neither data nor errors: {body}"
        ),
    }
    Ok(())
}

/// Did the answer carry data for some mutation field?
fn answered_mutation(document: &str, reply: &Reply) -> bool {
    document.contains("mutation")
        && reply
            .body
            .get("data")
            .and_then(Value::as_object)
            .is_some_and(|data| data.values().any(|v| !v.is_null()))
}

#[test]
fn random_and_mutated_requests_never_kill_or_hang_the_server() {
    let cases: u32 = std::env::var("BACKCHANNEL_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let app = runtime.block_on(TestServer::spawn_with(backchannel_testkit::demo_config(
        dir.path(),
    )));
    let owner = app.token("owner");

    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&any_case(), |case| {
        let path = if case.customer {
            "/customer/graphql"
        } else {
            "/graphql"
        };
        let token = match case.caller {
            Caller::Anonymous => None,
            Caller::Owner => Some(owner.as_str()),
            Caller::BadToken => Some("bad.token.here"),
        };
        let mut body = json!({ "query": case.document, "variables": case.variables })
            .to_string()
            .into_bytes();
        if let Some(per_mille) = case.cut_body {
            body.truncate(body.len() * usize::from(per_mille) / 1000);
        }
        let head = app.desk.log().head();
        let reply = runtime
            .block_on(async {
                tokio::time::timeout(CLIENT_TIMEOUT, app.post(path, token, &body)).await
            })
            .map_err(|_| TestCaseError::fail("no answer within the client timeout"))?;
        check_answer(&reply)?;
        // The read audit appends on its own (an owner's query may open
        // content): only other streams count as the log growing.
        let appended = runtime
            .block_on(app.desk.log().read_all(head + 1, 10_000))
            .map_err(|err| TestCaseError::fail(format!("cannot read the log: {err}")))?;
        let grew = appended
            .iter()
            .any(|e| !matches!(e.envelope.stream, StreamId::ReadAudit(_)));
        prop_assert!(
            !grew || answered_mutation(&case.document, &reply),
            "the log grew without a mutation answering data: {:?}",
            reply.body
        );
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    // Still serving.
    let reply = runtime.block_on(app.staff(&owner, "{ me { id } }", json!({})));
    assert_eq!(reply.data()["me"]["id"], OWNER, "{:?}", reply.body);
}
