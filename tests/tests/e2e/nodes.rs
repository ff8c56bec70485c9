//! SPEC section 11: several API nodes on one PostgreSQL log. Each test starts
//! a throwaway cluster (pgtest: fails, never skips, without PostgreSQL) and
//! two real `backchannel serve --store postgres://… --demo` processes, A and
//! B, with their own data directories and the same secret (the e2e crate's
//! `backchannel-e2e-node` binary: the `backchannel` command line).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::support::{
    CONVERSATION, Client, EVENTS_LIVE, Frame, Node, Reply, SECRET, SharedLog, Subscription,
    TestServer, demo, demo_config, node,
};

const SEND: &str = "mutation($c: ID!, $b: String!, $k: String) { sendMessage(conversationId: $c, body: $b, visibility: PUBLIC, idempotencyKey: $k) { message { __typename ... on PublicMessage { id body } } } }";
const OPEN: &str = "mutation($g: ID!, $n: String!) { openConversation(groupId: $g, customerName: $n, channel: CALL) { conversationId conversation { assignee { id } } } }";

/// Two nodes on one fresh log, both started with `--demo`, B once A is ready
/// (B's demo finds every step already appended).
fn two_nodes(extra: &[&str]) -> (SharedLog, Node, Node) {
    let log = SharedLog::start();
    let a = node("A", &log.url, true, extra).ready();
    let b = node("B", &log.url, true, extra).ready();
    (log, a, b)
}

/// Every node's known head once both applied the demo: the demo's length,
/// or the demo was appended more than once.
async fn assert_demo_once(a: &Node, b: &Node) {
    let (single, _dir) = one_node_demo().await;
    let demo_events = single.desk.log().head();
    assert!(demo_events > 10);
    a.applied(demo_events).await;
    b.applied(demo_events).await;
    for node in [a, b] {
        assert_eq!(
            node.metric("backchannel_log_head").await,
            demo_events,
            "node {} sees the demo appended more than once",
            node.name
        );
        let ready = node.get("/readyz").await;
        assert_eq!((ready.status, ready.text.as_str()), (200, "ready\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_started_together_load_the_demo_once() {
    let log = SharedLog::start();
    // Both open the log and run the demo's steps at the same time: each
    // step is appended by one of them, and the other's answer is that one.
    let a = node("A", &log.url, true, &[]);
    let b = node("B", &log.url, true, &[]);
    let (a, b) = (a.ready(), b.ready());
    assert_demo_once(&a, &b).await;
}

/// The demo on one sled node in this process: its log's length.
async fn one_node_demo() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = demo_config(dir.path());
    config.secret = Some(SECRET.to_owned());
    (TestServer::spawn_with(config).await, dir)
}

fn public_count(answer: &Reply) -> u64 {
    answer.ok("conversation")["conversation"]["publicMessageCount"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_loads_no_demo_twice_and_reads_the_first_nodes_writes() {
    let (_log, a, b) = two_nodes(&["--min-position-wait-ms", "300"]);
    assert_demo_once(&a, &b).await;

    let alice = Node::staff_token(demo::ALICE);
    let before = public_count(
        &b.staff_with(&alice, "", CONVERSATION, json!({ "id": demo::CASEY }))
            .await,
    );
    for round in 0..5 {
        let sent = a
            .staff_with(
                &alice,
                "",
                SEND,
                json!({ "c": demo::CASEY, "b": format!("From A, {round}") }),
            )
            .await;
        sent.ok("sendMessage on A");
        let position = sent.position();
        assert_eq!(
            sent.header("x-log-position"),
            Some(position.to_string().as_str())
        );
        // B answers only once it holds A's write.
        let read = b
            .staff_with(
                &alice,
                &format!("X-Min-Position: {position}\r\n"),
                CONVERSATION,
                json!({ "id": demo::CASEY }),
            )
            .await;
        assert_eq!(public_count(&read), before + round + 1, "{}", read.text);
    }

    // Far beyond the head: a bounded wait, then NOT_CAUGHT_UP with a delay.
    let head = b.metric("backchannel_log_head").await;
    let far = b
        .staff_with(
            &alice,
            &format!("X-Min-Position: {}\r\n", head + 1_000_000),
            CONVERSATION,
            json!({ "id": demo::CASEY }),
        )
        .await;
    assert_eq!(far.status, 503, "{}", far.text);
    assert_eq!(far.code(), Some("NOT_CAUGHT_UP"));
    assert!(
        far.body["errors"][0]["extensions"]["retryAfterMs"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(far.header("retry-after").is_some());
    // A bad value: 400 at once.
    let bad = b
        .staff_with(
            &alice,
            "X-Min-Position: soon\r\n",
            CONVERSATION,
            json!({ "id": demo::CASEY }),
        )
        .await;
    assert_eq!(
        (bad.status, bad.code()),
        (400, Some("VALIDATION")),
        "{}",
        bad.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_on_b_receives_what_is_appended_through_a() {
    let (_log, a, b) = two_nodes(&[]);
    let alice = Node::staff_token(demo::ALICE);
    let sent = a
        .staff_with(
            &alice,
            "",
            SEND,
            json!({ "c": demo::CASEY, "b": "Before the socket" }),
        )
        .await;
    let position = sent.position();
    // minPosition at init: B acknowledges only once it holds A's write.
    let init = json!({ "Authorization": format!("Bearer {alice}"), "minPosition": position });
    let mut live = Subscription::open_with(
        b.addr,
        "/graphql",
        init,
        EVENTS_LIVE,
        json!({ "c": demo::CASEY }),
    )
    .await;
    for n in 0..3 {
        let body = format!("Through A, {n}");
        a.staff_with(&alice, "", SEND, json!({ "c": demo::CASEY, "b": body }))
            .await
            .ok("sendMessage on A");
        let item = live.next_data("conversationEvents").await;
        assert_eq!(item["body"], body.as_str(), "{item}");
    }

    // A far-future minPosition: B closes with 1013 (try again later).
    let init =
        json!({ "Authorization": format!("Bearer {alice}"), "minPosition": position + 1_000_000 });
    let mut refused = Subscription::open_with(
        b.addr,
        "/graphql",
        init,
        EVENTS_LIVE,
        json!({ "c": demo::CASEY }),
    )
    .await;
    assert_eq!(refused.next().await, Frame::Closed(1013));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_idempotency_key_sent_to_both_nodes_appends_once() {
    let (_log, a, b) = two_nodes(&[]);
    let alice = Node::staff_token(demo::ALICE);
    // One after the other: B answers A's append.
    let vars = json!({ "c": demo::CASEY, "b": "Once", "k": "key-sequential" });
    let first = a.staff_with(&alice, "", SEND, vars.clone()).await;
    let message = first.ok("first")["sendMessage"]["message"]["id"].clone();
    let second = b.staff_with(&alice, "", SEND, vars).await;
    assert_eq!(
        second.ok("retry on B")["sendMessage"]["message"]["id"],
        message
    );
    assert_eq!(second.position(), first.position());

    // At the same time, on both nodes, many times over.
    let mut last = second.position();
    for round in 0..10 {
        let vars = json!({ "c": demo::CASEY, "b": "Raced", "k": format!("key-raced-{round}") });
        let answers = join_all(
            [&a, &b, &a, &b]
                .into_iter()
                .map(|node| node.staff_with(&alice, "", SEND, vars.clone())),
        )
        .await;
        let ids: Vec<&Value> = answers
            .iter()
            .map(|answer| &answer.ok("raced")["sendMessage"]["message"]["id"])
            .collect();
        assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
        let positions: Vec<u64> = answers.iter().map(Reply::position).collect();
        assert!(
            positions.iter().all(|p| *p == positions[0]),
            "{positions:?}"
        );
        last = last.max(positions[0]);
    }
    // Eleven keys, one event each: the log grew by eleven, not more.
    let (single, _dir) = one_node_demo().await;
    assert_eq!(last, single.desk.log().head() + 11);
    let demo_count = public_count(
        &Client::new(single.addr)
            .staff_with(
                &Node::staff_token(demo::ALICE),
                "",
                CONVERSATION,
                json!({ "id": demo::CASEY }),
            )
            .await,
    );
    for node in [&a, &b] {
        let read = node
            .staff_with(
                &alice,
                &format!("X-Min-Position: {last}\r\n"),
                CONVERSATION,
                json!({ "id": demo::CASEY }),
            )
            .await;
        assert_eq!(public_count(&read), demo_count + 11, "node {}", node.name);
    }
}

/// The assignees of `n` openings in the demo's round-robin group, in log
/// order, opened through `nodes` in turn, `parallel` at a time.
async fn round_robin(nodes: &[SocketAddr], n: usize, parallel: usize) -> Vec<String> {
    let owner = Node::staff_token(demo::OWNER);
    let mut opened: Vec<(u64, String)> = Vec::new();
    let mut i = 0;
    while i < n {
        let batch = (i..n.min(i + parallel)).map(|k| {
            let addr = nodes[k % nodes.len()];
            let owner = owner.clone();
            async move {
                Client::new(addr)
                    .staff_with(
                        &owner,
                        "",
                        OPEN,
                        json!({ "g": demo::SALES, "n": format!("Caller {k}") }),
                    )
                    .await
            }
        });
        for answer in join_all(batch).await {
            let assignee =
                answer.ok("openConversation")["openConversation"]["conversation"]["assignee"]["id"]
                    .as_str()
                    .unwrap()
                    .to_owned();
            opened.push((answer.position(), assignee));
        }
        i += parallel;
    }
    opened.sort();
    opened.into_iter().map(|(_, assignee)| assignee).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_turns_hold_across_nodes() {
    let (_log, a, b) = two_nodes(&[]);
    let (single, _dir) = one_node_demo().await;
    // Alternating nodes, one at a time: the very sequence one node gives.
    let one = round_robin(&[single.addr], 12, 1).await;
    let two = round_robin(&[a.addr, b.addr], 12, 1).await;
    assert_eq!(two, one);
    // Both nodes at once: still fair, in log order no one twice in a row.
    let raced = round_robin(&[a.addr, b.addr], 24, 6).await;
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for assignee in &raced {
        *counts.entry(assignee.as_str()).or_default() += 1;
    }
    assert_eq!(counts.len(), 2, "{counts:?}");
    assert!(counts.keys().all(|k| [demo::BOB, demo::CAROL].contains(k)));
    let (low, high) = (
        counts.values().min().unwrap(),
        counts.values().max().unwrap(),
    );
    assert!(high - low <= 1, "{counts:?}");
    assert!(
        raced.windows(2).all(|pair| pair[0] != pair[1]),
        "someone got two turns in a row: {raced:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_log_changed_under_it_stops_serving_and_says_why() {
    let (log, a, b) = two_nodes(&[]);
    let alice = Node::staff_token(demo::ALICE);
    let sent = a
        .staff_with(
            &alice,
            "",
            SEND,
            json!({ "c": demo::CASEY, "b": "Applied everywhere" }),
        )
        .await;
    let position = sent.position();
    b.applied(position).await;
    for node in [&a, &b] {
        assert_eq!(node.get("/readyz").await.status, 200);
    }
    // What a failover that lost acknowledged data looks like to the nodes:
    // the record both applied at `position` is no longer the same.
    log.psql(&format!(
        "UPDATE backchannel.events SET record = overlay(record placing '\\xff'::bytea from length(record) for 1) WHERE position = {position}"
    ));
    // The next append makes the tails look again.
    let _ = a
        .staff_with(&alice, "", SEND, json!({ "c": demo::CASEY, "b": "After" }))
        .await;
    let mut halted = None;
    for _ in 0..200 {
        let ready = b.get("/readyz").await;
        if ready.status == 503 {
            halted = Some(ready);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready = halted.expect("B kept saying it is ready");
    assert!(ready.text.starts_with("not serving: "), "{}", ready.text);
    let answer = b
        .staff_with(&alice, "", CONVERSATION, json!({ "id": demo::CASEY }))
        .await;
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert_eq!(answer.code(), Some("NOT_CAUGHT_UP"));
    assert!(
        answer.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("stopped following the log"),
        "{}",
        answer.text
    );
}

/// `backchannel <args>` against the shared log with its own data dir: stdout.
fn cli(url: &str, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_backchannel-e2e-node"))
        .args(args)
        .args(["--store", url])
        .arg("--data-dir")
        .arg(dir.path())
        .env("BACKCHANNEL_SECRET", SECRET)
        .env_remove("BACKCHANNEL_STORE")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_and_token_work_on_the_shared_log_while_nodes_serve() {
    let log = SharedLog::start();
    let a = node("A", &log.url, false, &[]).ready();
    let created = cli(
        &log.url,
        &["init", "--company", "Acme", "--owner", "Olivia"],
    );
    let field = |name: &str| {
        created
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|rest| rest.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in {created}"))
    };
    let owner = field("owner ");
    let owner_token = created.lines().last().unwrap().trim().to_owned();
    // The running node follows the log: it knows the new owner.
    let head = a.metric("backchannel_log_head").await.max(1);
    let me = a
        .staff_with(
            &owner_token,
            &format!("X-Min-Position: {head}\r\n"),
            "{ me { name } }",
            json!({}),
        )
        .await;
    assert_eq!(me.ok("me")["me"]["name"], "Olivia");
    let minted = cli(&log.url, &["token", "--staff", &owner]);
    let me = a
        .staff_with(minted.trim(), "", "{ me { name } }", json!({}))
        .await;
    assert_eq!(me.ok("me with token's token")["me"]["name"], "Olivia");
}

/// SPEC sections 11 and 12: an erasure through A holds on B: B's
/// subscriptions get it live, B's reads (from its position on) show the
/// content erased, and B's own checkpoint is written again without the
/// customer's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_through_a_shows_erased_on_b() {
    let (_log, a, b) = two_nodes(&[]);
    let owner = Node::staff_token(demo::OWNER);
    let alice = Node::staff_token(demo::ALICE);
    let view = "query($c: ID!) { conversation(id: $c) { erased customerName timeline(first: 50) { edges { node { __typename ... on PublicMessage { body } ... on PrivateMessage { body } } } } } }";
    let before = b
        .staff_with(&alice, "", view, json!({ "c": demo::CASEY }))
        .await;
    let name = before.ok("B before")["conversation"]["customerName"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut live = Subscription::open_with(
        b.addr,
        "/graphql",
        json!({ "Authorization": format!("Bearer {alice}") }),
        EVENTS_LIVE,
        json!({ "c": demo::CASEY }),
    )
    .await;
    let erase = "mutation($c: ID!) { eraseConversation(conversationId: $c, reason: \"GDPR request\", idempotencyKey: \"e1\") { conversation { erased } } }";
    let erased = a
        .staff_with(&owner, "", erase, json!({ "c": demo::CASEY }))
        .await;
    assert_eq!(
        erased.ok("erase on A")["eraseConversation"]["conversation"]["erased"],
        true
    );
    let position = erased.position();
    let item = live.next_data("conversationEvents").await;
    assert_eq!(item["kind"], "ERASED", "{item}");

    let after = b
        .staff_with(
            &alice,
            &format!("X-Min-Position: {position}\r\n"),
            view,
            json!({ "c": demo::CASEY }),
        )
        .await;
    assert_eq!(
        after.body["data"]["conversation"]["erased"], true,
        "{}",
        after.text
    );
    assert_eq!(
        after.body["data"]["conversation"]["customerName"],
        Value::Null
    );
    assert_eq!(after.code(), Some("ERASED"));
    assert!(!after.text.contains(&name));
    let bodies: Vec<&Value> = after.body["data"]["conversation"]["timeline"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["node"]["__typename"] != "SystemEvent")
        .map(|e| &e["node"]["body"])
        .collect();
    assert!(
        !bodies.is_empty() && bodies.iter().all(|b| b.is_null()),
        "{bodies:?}"
    );
    // B, too, writes its checkpoint (it had none: it never stopped) right
    // after applying the erasure, and the name is not in it.
    let mut waited = 0;
    let files = loop {
        let files = b.checkpoint_files();
        if !files.is_empty() {
            break files;
        }
        assert!(waited < 200, "B wrote no checkpoint after the erasure");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    };
    for (path, bytes) in files {
        assert!(
            !bytes.windows(name.len()).any(|w| w == name.as_bytes()),
            "{} holds the name",
            path.display()
        );
    }
}
