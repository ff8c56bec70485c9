#![allow(clippy::unwrap_used, clippy::expect_used)]
//! An acknowledged mutation survives `kill -9` of the server (SPEC section 7),
//! through the API.
//!
//! The real `backchannel serve` binary runs as a child process on a temporary
//! data directory. Writer tasks post messages and open conversations over
//! HTTP, each with an idempotency key of its own, and record what the server
//! acknowledged (HTTP 200 with data). The server is killed with SIGKILL at a
//! random moment; then the stopped store's hash chain must verify and hold
//! every acknowledged mutation, and the restarted server must answer each of
//! them (the conversation, and each message in its conversation's timeline).
//! The next round runs on the same store.
//!
//! `BACKCHANNEL_KILL_ROUNDS` sets the number of rounds (3 by default):
//! `BACKCHANNEL_KILL_ROUNDS=20 cargo test -p backchannel-api --test durability`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backchannel_api::admin::init;
use backchannel_api::config::Config;
use backchannel_domain::events::Event;
use backchannel_eventlog::{Log, StoreSpec};
use rand::Rng;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECRET: &str = "durability-secret-durability-secret-0123456789";
const WRITERS: usize = 4;
const DEFAULT_ROUNDS: usize = 3;

const SEND: &str = "mutation($c: ID!, $b: String!, $k: String) {
    sendMessage(conversationId: $c, body: $b, visibility: PRIVATE, idempotencyKey: $k) {
        message { ... on PrivateMessage { id } } } }";
const OPEN: &str = "mutation($g: ID!, $n: String!, $k: String) {
    openConversation(groupId: $g, customerName: $n, channel: CHAT, idempotencyKey: $k) {
        conversationId } }";
const TIMELINE: &str = "query($c: ID!, $a: String) { conversation(id: $c) {
    id timeline(first: 20, after: $a) {
        edges { node { ... on PrivateMessage { id } } }
        pageInfo { hasNextPage endCursor } } } }";

/// What the server acknowledged: conversation id → the message ids posted to it.
type Acknowledged = BTreeMap<String, BTreeSet<String>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_mutations_survive_sigkill_of_the_server() {
    let rounds = std::env::var("BACKCHANNEL_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_ROUNDS);
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path().to_owned(), SocketAddr::from(([127, 0, 0, 1], 0)));
    config.secret = Some(SECRET.to_owned());
    let created = init(&config, "Acme", "Olivia Owner").await.unwrap();
    let owner = created.owner_token;

    // Setup through the first server: a group and one admin per writer (an
    // admin may whisper in any conversation of the company).
    let mut server = Server::start(dir.path()).await;
    let group = server
        .ok(
            &owner,
            "mutation { createGroup(name: \"Support\", routing: BROADCAST) { group { id } } }",
            json!({}),
        )
        .await["createGroup"]["group"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let id = server
            .ok(
                &owner,
                "mutation($n: String!) { addStaff(name: $n, role: ADMIN) { staff { id } } }",
                json!({ "n": format!("Writer {w}") }),
            )
            .await["addStaff"]["staff"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let token = server
            .ok(
                &owner,
                "mutation($s: ID!) { issueStaffToken(staffId: $s) { token } }",
                json!({ "s": id }),
            )
            .await["issueStaffToken"]["token"]
            .as_str()
            .unwrap()
            .to_owned();
        writers.push(token);
    }

    let acknowledged: Arc<Mutex<Acknowledged>> = Arc::default();
    let mut rng = rand::rng();
    for round in 0..rounds {
        if round > 0 {
            server = Server::start(dir.path()).await;
            // The restarted server answers everything acknowledged so far.
            let snapshot = acknowledged.lock().unwrap().clone();
            server.check(&owner, &snapshot).await;
        }
        let mut tasks = Vec::new();
        for (w, token) in writers.iter().enumerate() {
            tasks.push(tokio::spawn(write(
                server.addr,
                token.clone(),
                group.clone(),
                format!("r{round}-w{w}"),
                acknowledged.clone(),
            )));
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..1200))).await;
        server.kill();
        for task in tasks {
            task.await.unwrap();
        }

        // The stopped store: its chain verifies and holds every acknowledged
        // conversation and message.
        let snapshot = acknowledged.lock().unwrap().clone();
        let messages: usize = snapshot.values().map(BTreeSet::len).sum();
        let events = check_store(&dir.path().join("store"), &snapshot);
        eprintln!(
            "round {round}: {events} events; {} conversations and {messages} messages acknowledged so far",
            snapshot.len()
        );
        assert!(messages > 0, "round {round}: nothing was acknowledged");
    }

    // A last restart answers everything, and stops gracefully.
    let mut server = Server::start(dir.path()).await;
    let snapshot = acknowledged.lock().unwrap().clone();
    server.check(&owner, &snapshot).await;
    server.terminate();
    check_store(&dir.path().join("store"), &snapshot);
}

/// One writer: until the server goes away, opens a conversation, then posts
/// messages to it (a new conversation every tenth mutation), recording every
/// acknowledged one.
async fn write(
    addr: SocketAddr,
    token: String,
    group: String,
    prefix: String,
    acknowledged: Arc<Mutex<Acknowledged>>,
) {
    let mut conversation: Option<String> = None;
    for n in 0u64.. {
        let key = format!("{prefix}-{n}");
        match &conversation {
            Some(c) if n % 10 != 0 => {
                let variables = json!({ "c": c, "b": format!("Whisper {key}"), "k": key });
                let Ok(answer) = post(addr, &token, SEND, variables).await else {
                    return;
                };
                let Some(data) = answer else {
                    refused().await;
                    continue;
                };
                let id = data["sendMessage"]["message"]["id"].as_str().unwrap();
                acknowledged
                    .lock()
                    .unwrap()
                    .entry(c.clone())
                    .or_default()
                    .insert(id.to_owned());
            }
            _ => {
                let variables = json!({ "g": group, "n": format!("Customer {key}"), "k": key });
                let Ok(answer) = post(addr, &token, OPEN, variables).await else {
                    return;
                };
                let Some(data) = answer else {
                    refused().await;
                    continue;
                };
                let id = data["openConversation"]["conversationId"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                acknowledged.lock().unwrap().entry(id.clone()).or_default();
                conversation = Some(id);
            }
        }
    }
}

/// A mutation's data when the server acknowledged it (200 with data, no
/// errors), `Ok(None)` when it answered anything else (a refusal, such as a
/// rate limit), `Err` once the server is gone.
async fn post(
    addr: SocketAddr,
    token: &str,
    query: &str,
    variables: Value,
) -> std::io::Result<Option<Value>> {
    let (status, body) = request(addr, token, query, variables).await?;
    let acknowledged = status == 200 && body["errors"].is_null() && body["data"].is_object();
    Ok(acknowledged.then(|| body["data"].clone()))
}

/// Leaves a refused mutation unrecorded, and does not hurry the next one.
async fn refused() {
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// Verifies the stopped store's chain and that it holds every acknowledged
/// conversation and message; returns its number of events.
fn check_store(store: &Path, acknowledged: &Acknowledged) -> u64 {
    let log = Log::open(&StoreSpec::sled(store)).unwrap();
    let report = log.verify().unwrap();
    let mut conversations = BTreeSet::new();
    let mut messages = BTreeSet::new();
    for event in log.scan(1) {
        match event.unwrap().event {
            Event::ConversationOpened(e) => {
                conversations.insert(e.conversation.to_string());
            }
            Event::PrivateMessagePosted(e) => {
                messages.insert((e.conversation.to_string(), e.message.to_string()));
            }
            _ => {}
        }
    }
    for (conversation, posted) in acknowledged {
        assert!(
            conversations.contains(conversation),
            "acknowledged conversation {conversation} is missing from the log"
        );
        for message in posted {
            assert!(
                messages.contains(&(conversation.clone(), message.clone())),
                "acknowledged message {message} of {conversation} is missing from the log"
            );
        }
    }
    log.close().unwrap();
    report.events
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    async fn start(data_dir: &Path) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut child = Command::new(env!("CARGO_BIN_EXE_backchannel"))
            .args(["serve", "--no-graphiql"])
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--addr")
            .arg(addr.to_string())
            .env("BACKCHANNEL_SECRET", SECRET)
            .env("BACKCHANNEL_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        loop {
            if let Ok(mut stream) = TcpStream::connect(addr).await {
                let _ = stream
                    .write_all(b"GET /readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    .await;
                let mut raw = Vec::new();
                let _ = stream.read_to_end(&mut raw).await;
                if raw.starts_with(b"HTTP/1.1 200") {
                    return Server { child, addr };
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the server exited at start: {status}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the server did not get ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, and wait for the process to be gone.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM (a graceful stop), and wait for the process to be gone.
    fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exited = self.child.wait().unwrap();
        assert!(exited.success(), "the graceful stop failed: {exited}");
    }

    async fn ok(&self, token: &str, query: &str, variables: Value) -> Value {
        let (status, body) = request(self.addr, token, query, variables).await.unwrap();
        assert!(status == 200 && body["errors"].is_null(), "{status} {body}");
        body["data"].clone()
    }

    /// Every acknowledged conversation answers, with every acknowledged
    /// message in its timeline.
    async fn check(&self, token: &str, acknowledged: &Acknowledged) {
        for (conversation, posted) in acknowledged {
            let mut found = BTreeSet::new();
            let mut after = Value::Null;
            loop {
                let data = self
                    .ok(token, TIMELINE, json!({ "c": conversation, "a": after }))
                    .await;
                let timeline = &data["conversation"]["timeline"];
                for edge in timeline["edges"].as_array().unwrap() {
                    if let Some(id) = edge["node"]["id"].as_str() {
                        found.insert(id.to_owned());
                    }
                }
                if timeline["pageInfo"]["hasNextPage"] != true {
                    break;
                }
                after = timeline["pageInfo"]["endCursor"].clone();
            }
            let missing: Vec<_> = posted.difference(&found).collect();
            assert!(
                missing.is_empty(),
                "conversation {conversation}: acknowledged messages missing after the restart: {missing:?}"
            );
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One GraphQL POST on a connection of its own: the status and the JSON body.
async fn request(
    addr: SocketAddr,
    token: &str,
    query: &str,
    variables: Value,
) -> std::io::Result<(u16, Value)> {
    let body = json!({ "query": query, "variables": variables }).to_string();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("an incomplete HTTP answer"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    let mut body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    let json = serde_json::from_slice(&body).map_err(std::io::Error::other)?;
    Ok((status, json))
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") {
        let Some(size) = std::str::from_utf8(&body[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
        else {
            break;
        };
        let start = line_end + 2;
        if size == 0 || body.len() < start + size {
            break;
        }
        out.extend_from_slice(&body[start..start + size]);
        body = &body[start + size..];
        body = body.strip_prefix(b"\r\n").unwrap_or(body);
    }
    out
}
